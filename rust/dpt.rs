// SPDX-License-Identifier: GPL-2.0

//! The device page table (dPT): the device's shadow of the process's page
//! tables, filled by device faults and kept coherent by the notifier.
//!
//! Like `lib/test_hmm.c`'s mirror, it maps a virtual page number to a
//! translation; an rbtree keeps range invalidation `O(log n + k)`.  Callers
//! hold the device's MMU lock; nodes are allocated before taking it.

use kernel::rbtree::{RBTree, RBTreeNode};

use crate::translation::{Translation, Vpn};

/// The device page table.
pub(crate) struct Dpt {
    tree: RBTree<Vpn, Translation>,
}

/// A dPT entry allocated ahead of time, so that it can be inserted under the
/// MMU spinlock.
pub(crate) type DptNode = RBTreeNode<Vpn, Translation>;

impl Dpt {
    /// An empty dPT.
    pub(crate) fn new() -> Self {
        Self {
            tree: RBTree::new(),
        }
    }

    /// The translation of `vpn`, if present.
    pub(crate) fn get(&self, vpn: Vpn) -> Option<&Translation> {
        self.tree.get(&vpn)
    }

    /// Inserts a preallocated entry, replacing any entry of the same page.
    pub(crate) fn insert(&mut self, node: DptNode) {
        self.tree.insert(node);
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
            // Past the last node, `remove_current` steps back to the previous.
            cursor = next.filter(|c| *c.current().0 > vpn);
        }
        n
    }

    /// Drops every entry; returns how many.
    pub(crate) fn clear(&mut self) -> usize {
        self.invalidate(0, Vpn::MAX)
    }
}
