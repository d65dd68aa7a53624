// SPDX-License-Identifier: GPL-2.0

//! One open file of `/dev/tlbrace`, and its ioctl dispatch.

use kernel::{
    fs::File,
    ioctl::_IOC_SIZE,
    miscdevice::{MiscDevice, MiscDeviceRegistration},
    prelude::*,
    uaccess::{UserPtr, UserSlice},
};

use crate::uapi::{self, tlbrace_version};

/// The state behind one open file descriptor.
#[pin_data]
pub(crate) struct TlbraceFile {}

#[vtable]
impl MiscDevice for TlbraceFile {
    type Ptr = Pin<KBox<Self>>;

    fn open(_file: &File, _misc: &MiscDeviceRegistration<Self>) -> Result<Pin<KBox<Self>>> {
        KBox::try_pin_init(try_pin_init!(TlbraceFile {}), GFP_KERNEL)
    }

    fn ioctl(me: Pin<&TlbraceFile>, _file: &File, cmd: u32, arg: usize) -> Result<isize> {
        let user = UserSlice::new(UserPtr::from_addr(arg), _IOC_SIZE(cmd));
        match cmd {
            uapi::TLBRACE_IOC_VERSION => me.version(user),
            _ => Err(ENOTTY),
        }
    }
}

impl TlbraceFile {
    fn version(&self, user: UserSlice) -> Result<isize> {
        let (mut reader, mut writer) = user.reader_writer();
        let mut v: tlbrace_version = reader.read()?;
        if v.size as usize != core::mem::size_of::<tlbrace_version>() || v.reserved != 0 {
            return Err(EINVAL);
        }
        v.abi_version = uapi::TLBRACE_ABI_VERSION;
        v.struct_size = core::mem::size_of::<tlbrace_version>() as u32;
        writer.write(&v)?;
        Ok(0)
    }
}
