// SPDX-License-Identifier: GPL-2.0

//! A red-black tree that can live in a statically initialized structure.
//!
//! `RBTree::new()` is not `const`, and the core's state sits in a static lock, so the
//! tree is created with its first entry. Every lookup, insertion and removal is
//! O(log n). The core keeps the ids of preserved files in one; sessions are found by
//! name through [`NameIndex`](crate::name_index::NameIndex).

use kernel::{
    prelude::*,
    rbtree::{RBTree, RBTreeNode, RBTreeNodeReservation},
};

/// An ordered map from `K` to `V`.
pub(crate) struct Tree<K, V> {
    tree: Option<RBTree<K, V>>,
}

/// Memory for one entry, taken before a step that must not fail afterwards.
pub(crate) type TreeSlot<K, V> = RBTreeNodeReservation<K, V>;

impl<K: Ord, V> Tree<K, V> {
    /// An empty tree.
    pub(crate) const fn new() -> Self {
        Self { tree: None }
    }

    /// The value of `key`.
    pub(crate) fn get(&self, key: &K) -> Option<&V> {
        self.tree.as_ref()?.get(key)
    }

    /// Whether `key` is present.
    pub(crate) fn contains(&self, key: &K) -> bool {
        self.get(key).is_some()
    }

    /// Allocates room for one entry.
    pub(crate) fn slot() -> Result<TreeSlot<K, V>> {
        RBTreeNodeReservation::new(GFP_KERNEL)
    }

    /// Adds `key`, which must be absent, in memory taken by [`Tree::slot`].
    pub(crate) fn insert_in(&mut self, slot: TreeSlot<K, V>, key: K, value: V) {
        let node: RBTreeNode<K, V> = slot.into_node(key, value);
        self.tree.get_or_insert_with(RBTree::new).insert(node);
    }

    /// Adds `key`, which must be absent.
    pub(crate) fn insert(&mut self, key: K, value: V) -> Result {
        self.insert_in(Self::slot()?, key, value);
        Ok(())
    }

    /// Removes `key` and returns its value.
    pub(crate) fn remove(&mut self, key: &K) -> Option<V> {
        self.tree.as_mut()?.remove(key)
    }
}
