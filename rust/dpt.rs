// SPDX-License-Identifier: GPL-2.0

//! The device page table (dPT): the device's shadow of the process's page
//! tables, filled by device faults and kept coherent by the notifier.
//!
//! Like `lib/test_hmm.c`'s mirror, it maps a virtual page number to a
//! translation; an rbtree keeps range invalidation `O(log n + k)`.  Callers
//! hold the device's MMU lock; nodes are allocated before taking it.
//!
//! It holds at most [`MAX_PAGES`] entries, as a device's page table has a
//! fixed size: every entry costs unswappable kernel memory (the node and a
//! page reference), which a read fault of untouched memory would otherwise
//! hand out for free (it maps the zero page).  The bound also bounds the
//! work of an invalidation, which walks and frees its entries with the MMU
//! spinlock held.

use kernel::{
    prelude::*,
    rbtree::{RBTree, RBTreeNodeReservation},
};

use crate::{
    translation::{Translation, Vpn},
    uapi,
};

/// Entries one dPT holds at most.
pub(crate) const MAX_PAGES: usize = uapi::TLBRACE_DPT_MAX_PAGES as usize;

/// The device page table.
///
/// # Invariants
///
/// `len` is the number of entries of `tree`, at most [`MAX_PAGES`].
pub(crate) struct Dpt {
    tree: RBTree<Vpn, Translation>,
    len: usize,
}

/// Memory for a dPT entry, allocated ahead of time so that the entry can be
/// inserted under the MMU spinlock.
pub(crate) type DptReservation = RBTreeNodeReservation<Vpn, Translation>;

impl Dpt {
    /// An empty dPT.
    pub(crate) fn new() -> Self {
        Self {
            tree: RBTree::new(),
            len: 0,
        }
    }

    /// The number of entries.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether an entry of `vpn` may be inserted: it replaces one, or the
    /// dPT is below [`MAX_PAGES`].
    pub(crate) fn has_room_for(&self, vpn: Vpn) -> bool {
        self.len < MAX_PAGES || self.tree.get(&vpn).is_some()
    }

    /// The number of entries of `[start, end)`.
    pub(crate) fn count_in(&self, start: Vpn, end: Vpn) -> usize {
        self.iter_in(start, end).count()
    }

    /// The translation of `vpn`, if present.
    pub(crate) fn get(&self, vpn: Vpn) -> Option<&Translation> {
        self.tree.get(&vpn)
    }

    /// Inserts the translation `t` of `vpn` into the preallocated `node`,
    /// replacing any entry of the same page; fails with `ENOSPC` if that
    /// would take the dPT past [`MAX_PAGES`].
    pub(crate) fn insert(&mut self, vpn: Vpn, t: Translation, node: DptReservation) -> Result {
        if !self.has_room_for(vpn) {
            return Err(ENOSPC);
        }
        if self.tree.insert(node.into_node(vpn, t)).is_none() {
            // INVARIANT: a new page, and there was room for it.
            self.len += 1;
        }
        Ok(())
    }

    /// Calls `f` on every entry of `[start, end)`.
    pub(crate) fn for_each_in(
        &mut self,
        start: Vpn,
        end: Vpn,
        mut f: impl FnMut(Vpn, &mut Translation),
    ) {
        let Some(mut cursor) = self.tree.cursor_lower_bound_mut(&start) else {
            return;
        };
        loop {
            let (vpn, t) = cursor.current_mut();
            if *vpn >= end {
                return;
            }
            f(*vpn, t);
            match cursor.move_next() {
                Some(c) => cursor = c,
                None => return,
            }
        }
    }

    /// Entries of `[start, end)` in address order, for snapshots.
    pub(crate) fn iter_in(
        &self,
        start: Vpn,
        end: Vpn,
    ) -> impl Iterator<Item = (Vpn, &Translation)> {
        self.tree
            .iter()
            .map(|(v, t)| (*v, t))
            .skip_while(move |(v, _)| *v < start)
            .take_while(move |(v, _)| *v < end)
    }

    /// Drops the entries of `[start, end)`; returns how many.
    pub(crate) fn invalidate(&mut self, start: Vpn, end: Vpn) -> usize {
        self.invalidate_each(start, end, |_| {})
    }

    /// Drops the entries of `[start, end)`, calling `f` with each page
    /// dropped; returns how many.
    pub(crate) fn invalidate_each(
        &mut self,
        start: Vpn,
        end: Vpn,
        mut f: impl FnMut(Vpn),
    ) -> usize {
        let mut n = 0;
        let mut cursor = self.tree.cursor_lower_bound_mut(&start);
        while let Some(c) = cursor {
            let vpn = *c.current().0;
            if vpn >= end {
                break;
            }
            let (next, _node) = c.remove_current();
            f(vpn);
            n += 1;
            // INVARIANT: one entry fewer.
            self.len -= 1;
            // Past the last node, `remove_current` steps back to the previous.
            cursor = next.filter(|c| *c.current().0 > vpn);
        }
        n
    }

    /// Takes every entry out, leaving the dPT empty: `O(1)`, so that the
    /// caller can free them after dropping the MMU lock.
    pub(crate) fn take(&mut self) -> Self {
        core::mem::replace(self, Self::new())
    }
}
