// SPDX-License-Identifier: GPL-2.0

//! Data that the global core lock protects, wherever it lives.
//!
//! Every session operation already runs under the global [`LUO`](static@crate::LUO)
//! lock, so a lock per session would only be taken and released again inside it: two
//! calls and a lockdep hook per operation and per session serialized at reboot, for no
//! added exclusion. A [`CoreLocked`] value is reached instead with the one
//! [`CoreKey`], which lives inside the global lock: holding the key mutably proves that
//! the caller holds the lock and that no other reference into any `CoreLocked` value is
//! alive.
//!
//! The kernel crate's `GlobalLockedBy` does the same with the lock's guard as the proof,
//! but it borrows the whole guard: the core's own state could not be used while a
//! session's state is, and nearly every session operation needs both. The key is a
//! field of its own beside that state, so the two borrow apart.

use core::cell::UnsafeCell;

/// The proof of holding the global core lock; exactly one exists, inside it.
pub(crate) struct CoreKey(());

impl CoreKey {
    /// The key.
    ///
    /// # Safety
    ///
    /// At most one key may ever exist, and it must be reachable only through the global
    /// core lock.
    pub(crate) const unsafe fn new() -> Self {
        Self(())
    }
}

/// A `T` that only the holder of the [`CoreKey`] may reach.
pub(crate) struct CoreLocked<T> {
    data: UnsafeCell<T>,
}

// SAFETY: The value is reached only through the unique key, one thread at a time, so
// sharing a `CoreLocked` across threads only hands `T` from thread to thread.
unsafe impl<T: Send> Sync for CoreLocked<T> {}

impl<T> CoreLocked<T> {
    /// Wraps `data`.
    pub(crate) const fn new(data: T) -> Self {
        Self {
            data: UnsafeCell::new(data),
        }
    }

    /// The value, taken out.
    pub(crate) fn into_inner(self) -> T {
        self.data.into_inner()
    }

    /// The value, for as long as the key is lent.
    pub(crate) fn get_mut<'a>(&'a self, _key: &'a mut CoreKey) -> &'a mut T {
        // SAFETY: Only one key exists, so while it is borrowed mutably for `'a` no other
        // reference obtained through it (into this value or any other) can be alive, and
        // none is obtained without it.
        unsafe { &mut *self.data.get() }
    }
}
