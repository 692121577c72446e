// SPDX-License-Identifier: GPL-2.0

//! Sessions by name: an open-addressing hash table.
//!
//! Every session operation finds its session by name, and a restore inserts every
//! incoming session at once, so a lookup, an insertion and a removal must cost the same
//! with 100 000 sessions as with ten. A table of slots probed linearly does that in
//! O(1) expected time, with one allocation per resize instead of one per entry.
//!
//! Names are hashed with the kernel's hash-table variant of SipHash (`hsiphash`: fewer
//! rounds, 32-bit result) under a key drawn at random when the index first allocates:
//! neither an agent choosing names nor a crafted handover from the previous kernel can
//! aim many names at one slot without knowing the key. The key never changes
//! afterwards, so a value may keep its hash and be removed without hashing its name
//! again.

use kernel::{bindings, prelude::*};

use crate::abi::format::SESSION_NAME_LEN;

/// One slot: a hash and its value, or nothing (and a hash of no meaning). All zero is
/// an empty slot, so a new table is one zeroed allocation.
type Slot<V> = (u64, Option<V>);

/// Fewest slots of a non-empty table.
const MIN_SLOTS: usize = 16;

/// Whether `len` values keep a table of `slots` slots under three quarters full: probes
/// stay short (about 2.5 slots to find a name, 8.5 to miss one, in consecutive
/// memory), and the table of 100 000 sessions is 2 MiB.
fn fits(len: usize, slots: usize) -> bool {
    len.saturating_mul(4) < slots.saturating_mul(3)
}

/// A set of values looked up by the hash of their names.
///
/// The index stores hashes, not names: lookups take the name's hash from
/// [`NameIndex::hash`] and a predicate that tells the value they want.
///
/// # Invariants
///
/// `slots` is empty or has a power-of-two length, with `len` under three quarters of
/// it. Each value sits at the slot its hash selects or after it, with no empty slot in
/// between (wrapping around). `key` is all zero until the first table is allocated, and fixed
/// from then on.
pub(crate) struct NameIndex<V> {
    slots: KVVec<Slot<V>>,
    len: usize,
    key: bindings::hsiphash_key_t,
}

impl<V> NameIndex<V>
where
    Option<V>: Zeroable,
{
    /// An empty index, which allocates nothing.
    pub(crate) const fn new() -> Self {
        Self {
            slots: KVVec::new(),
            len: 0,
            key: bindings::hsiphash_key_t { key: [0; 2] },
        }
    }

    /// Number of values.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The hash of `name` in this index; stable once the index has allocated (after a
    /// successful [`NameIndex::reserve`]).
    pub(crate) fn hash(&self, name: &[u8; SESSION_NAME_LEN]) -> u64 {
        // Names are NUL-padded, so the bytes up to the first NUL identify them.
        let len = name
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(SESSION_NAME_LEN);
        // SAFETY: `name` is readable for `len` bytes and `key` is a valid key.
        u64::from(unsafe { bindings::__hsiphash_unaligned(name.as_ptr().cast(), len, &self.key) })
    }

    /// Whether the index has a table, and so its final key: a hash taken now stays valid.
    pub(crate) fn has_table(&self) -> bool {
        !self.slots.is_empty()
    }

    fn home(&self, hash: u64) -> usize {
        hash as usize & self.slots.len().wrapping_sub(1)
    }

    /// The slot of the value with `hash` that `is` picks.
    fn find(&self, hash: u64, is: impl Fn(&V) -> bool) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut i = self.home(hash);
        // The table is never full, so the probe reaches an empty slot.
        while let (h, Some(value)) = &self.slots[i] {
            if *h == hash && is(value) {
                return Some(i);
            }
            i = (i + 1) & mask;
        }
        None
    }

    /// The value with `hash` that `is` picks.
    pub(crate) fn get(&self, hash: u64, is: impl Fn(&V) -> bool) -> Option<&V> {
        let i = self.find(hash, is)?;
        self.slots[i].1.as_ref()
    }

    /// Makes room for `additional` more values, so that as many inserts cannot fail.
    pub(crate) fn reserve(&mut self, additional: usize) -> Result {
        let needed = self.len.checked_add(additional).ok_or(ENOMEM)?;
        if fits(needed, self.slots.len()) {
            return Ok(());
        }
        let mut slots = MIN_SLOTS;
        while !fits(needed, slots) {
            slots = slots.checked_mul(2).ok_or(ENOMEM)?;
        }
        self.rehash(slots)
    }

    /// Moves every value into a new table of `nslots` slots.
    fn rehash(&mut self, nslots: usize) -> Result {
        let slots = KVVec::zeroed(nslots, GFP_KERNEL)?;
        if self.key.key == [0; 2] {
            // SAFETY: `key` is 16 writable bytes.
            unsafe {
                bindings::get_random_bytes(
                    (&raw mut self.key).cast(),
                    core::mem::size_of::<bindings::hsiphash_key_t>(),
                )
            };
        }
        let old = core::mem::replace(&mut self.slots, slots);
        for (hash, value) in old {
            if let Some(value) = value {
                self.place(hash, value);
            }
        }
        Ok(())
    }

    /// Puts `value` in the first free slot from its hash on, and returns it there; room
    /// must exist.
    fn place(&mut self, hash: u64, value: V) -> &V {
        let mask = self.slots.len() - 1;
        let mut i = self.home(hash);
        while self.slots[i].1.is_some() {
            i = (i + 1) & mask;
        }
        self.slots[i].0 = hash;
        self.slots[i].1.insert(value)
    }

    /// Adds `value` under `hash`, in room made by [`NameIndex::reserve`], and returns it
    /// where it now is; no other value may have the same name. Without room the value is
    /// handed back.
    pub(crate) fn insert_reserved(&mut self, hash: u64, value: V) -> core::result::Result<&V, V> {
        if !fits(self.len + 1, self.slots.len()) {
            return Err(value);
        }
        self.len += 1;
        Ok(self.place(hash, value))
    }

    /// Removes the value with `hash` that `is` picks, and returns it.
    pub(crate) fn remove(&mut self, hash: u64, is: impl Fn(&V) -> bool) -> Option<V> {
        let mut hole = self.find(hash, is)?;
        let value = self.slots[hole].1.take()?;
        self.len -= 1;
        // Shift back every later value of the run that may now be found one probe
        // earlier, so that no lookup stops at the hole before reaching its value.
        let mask = self.slots.len() - 1;
        let mut i = (hole + 1) & mask;
        while let &(hash, Some(_)) = &self.slots[i] {
            let home = self.home(hash);
            // Whether `home` lies cyclically in (hole, i]: then the value stays.
            let stays = if hole <= i {
                hole < home && home <= i
            } else {
                hole < home || home <= i
            };
            if !stays {
                self.slots[hole] = (hash, self.slots[i].1.take());
                hole = i;
            }
            i = (i + 1) & mask;
        }
        self.shrink();
        Some(value)
    }

    /// Gives memory back once the table is mostly empty.
    // Inline: every removal calls it, and it rarely has anything to give back.
    #[inline]
    fn shrink(&mut self) {
        if self.len == 0 {
            self.clear();
        } else if self.slots.len() > MIN_SLOTS && self.len * 8 < self.slots.len() {
            // Without memory for a smaller table the larger one stays.
            let _ = self.rehash(self.slots.len() / 2);
        }
    }

    /// Removes every value.
    pub(crate) fn clear(&mut self) {
        // Dropping even an empty `KVVec` calls the allocator; an index without a table
        // has nothing to free.
        if self.slots.capacity() != 0 {
            self.slots = KVVec::new();
        }
        self.len = 0;
    }

    /// Every value, in no particular order (the same order until the index changes).
    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.slots.iter().filter_map(|(_, value)| value.as_ref())
    }
}
