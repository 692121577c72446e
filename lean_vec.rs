// SPDX-License-Identifier: GPL-2.0

//! A vector that costs nothing to drop while it has never allocated, and little when it
//! has.
//!
//! Dropping a `KVVec` always calls into the allocator, even when the vector owns no
//! memory. Sessions and their file lists are empty more often than not, and are created
//! and dropped on every session operation, so those calls showed up as a large part of
//! closing a session. When there is memory, the kernel crate frees it by a reallocation
//! to size zero (a helper, `kvrealloc()`, `krealloc()`, then `kfree()`); `kvfree()`
//! goes straight to the right free.

use core::mem::ManuallyDrop;
use core::ops::{Deref, DerefMut};
use core::ptr;

use kernel::bindings;
use kernel::prelude::*;

/// A `KVVec<T>` whose drop skips the allocator when the capacity is zero.
pub(crate) struct LeanVec<T>(ManuallyDrop<KVVec<T>>);

impl<T> LeanVec<T> {
    /// An empty vector, which allocates nothing.
    pub(crate) const fn new() -> Self {
        Self(ManuallyDrop::new(KVVec::new()))
    }
}

impl<T> Default for LeanVec<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Deref for LeanVec<T> {
    type Target = KVVec<T>;

    fn deref(&self) -> &KVVec<T> {
        &self.0
    }
}

impl<T> DerefMut for LeanVec<T> {
    fn deref_mut(&mut self) -> &mut KVVec<T> {
        &mut self.0
    }
}

impl<T> Drop for LeanVec<T> {
    fn drop(&mut self) {
        // SAFETY: `self.0` is taken once, here, and `self` is not used afterwards.
        let vec = unsafe { ManuallyDrop::take(&mut self.0) };
        if vec.capacity() == 0 {
            // No memory and no elements: there is nothing to release.
            core::mem::forget(vec);
            return;
        }
        let (elements, len, _) = vec.into_raw_parts();
        // SAFETY: The vector owned its first `len` elements, initialised, at `elements`;
        // they are dropped once, here, and not used afterwards.
        unsafe { ptr::drop_in_place(ptr::slice_from_raw_parts_mut(elements, len)) };
        if core::mem::size_of::<T>() == 0 {
            // Elements without size take no memory.
            return;
        }
        // SAFETY: A `KVVec` with memory got it from `KVmalloc`, that is from the kvmalloc
        // family, whose memory `kvfree()` releases; `elements` is the start of it. The
        // vector gave it up above and nothing else refers to it.
        unsafe { bindings::kvfree(elements.cast()) };
    }
}
