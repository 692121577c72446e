// SPDX-License-Identifier: GPL-2.0

//! Outgoing block chains: preserved pages grown and shrunk with the entries they will
//! hold, and filled at reboot.
//!
//! Blocks are allocated when an entry is added and would not fit, and freed as soon as
//! they are no longer needed, so a chain always has exactly as many blocks as its
//! entries need and the reboot path never allocates. Blocks are linked when added; the
//! entries and counts are written only at reboot.

use kernel::{page::PAGE_SIZE, prelude::*};

use crate::abi::chain::{read_header, write_header};
use crate::abi::format::{
    blocks_for, entries_per_block, BlockHeader, BLOCK_HEADER_SIZE, MAX_BLOCKS,
};
use crate::kho::PreservedPage;
use crate::lean_vec::LeanVec;

/// A chain of preserved blocks for entries of `N` bytes.
///
/// # Invariants
///
/// Each block's header links to the next block, and the last block's to nothing.
pub(crate) struct OutgoingChain<const N: usize> {
    blocks: LeanVec<PreservedPage>,
}

impl<const N: usize> OutgoingChain<N> {
    /// Entries per block.
    pub(crate) const PER_BLOCK: usize = entries_per_block(PAGE_SIZE, N);

    /// An empty chain.
    pub(crate) const fn new() -> Self {
        Self {
            blocks: LeanVec::new(),
        }
    }

    /// Physical address of the first block, or 0 when the chain is empty.
    pub(crate) fn head(&self) -> u64 {
        self.blocks.first().map_or(0, PreservedPage::phys)
    }

    /// The blocks themselves, for the KUnit tests.
    #[cfg(CONFIG_KUNIT)]
    pub(crate) fn pages(&self) -> &[PreservedPage] {
        &self.blocks
    }

    /// The blocks themselves, for the corruption test.
    #[cfg(CONFIG_LIVEUPDATE_RUST_CORRUPT_TEST)]
    pub(crate) fn pages_mut(&mut self) -> &mut [PreservedPage] {
        &mut self.blocks
    }

    /// Number of blocks.
    pub(crate) fn len(&self) -> usize {
        self.blocks.len()
    }

    /// Makes room for `count` entries, all or nothing.
    ///
    /// Fails with `ENOSPC` when that takes more than `MAX_BLOCKS` blocks.
    pub(crate) fn reserve(&mut self, count: usize) -> Result {
        let needed = blocks_for(count, Self::PER_BLOCK);
        if needed > MAX_BLOCKS {
            return Err(ENOSPC);
        }
        let have = self.blocks.len();
        if needed <= have {
            return Ok(());
        }
        self.blocks.reserve(needed - have, GFP_KERNEL)?;
        while self.blocks.len() < needed {
            let page = match PreservedPage::new() {
                Ok(page) => page,
                Err(e) => {
                    self.truncate_blocks(have);
                    return Err(e);
                }
            };
            let next = page.phys();
            if let Some(last) = self.blocks.last_mut() {
                let count = read_header(last.bytes()).count;
                write_header(last.bytes_mut(), BlockHeader { next, count });
            }
            // Cannot fail: room was reserved above.
            if self.blocks.push_within_capacity(page).is_err() {
                self.truncate_blocks(have);
                return Err(ENOMEM);
            }
        }
        Ok(())
    }

    /// Frees the blocks that `count` entries do not need.
    // Inline: every session close calls it, and it rarely has anything to free.
    #[inline]
    pub(crate) fn shrink(&mut self, count: usize) {
        // Blocks are freed when the entries fit in one block less: one multiplication,
        // where counting the blocks they need is a division.
        let have = self.blocks.len();
        if have != 0 && count <= (have - 1) * Self::PER_BLOCK {
            self.truncate_blocks(blocks_for(count, Self::PER_BLOCK));
        }
    }

    fn truncate_blocks(&mut self, nblocks: usize) {
        if nblocks >= self.blocks.len() {
            return;
        }
        self.blocks.truncate(nblocks);
        // INVARIANT: The new last block no longer links to a freed one.
        if let Some(last) = self.blocks.last_mut() {
            let count = read_header(last.bytes()).count;
            write_header(last.bytes_mut(), BlockHeader { next: 0, count });
        }
    }

    /// Every entry slot, in chain order: for writing all entries one after the other.
    pub(crate) fn slots_mut(&mut self) -> impl Iterator<Item = &mut [u8; N]> {
        self.blocks.iter_mut().flat_map(|block| {
            block.bytes_mut()[BLOCK_HEADER_SIZE..]
                .chunks_exact_mut(N)
                .take(Self::PER_BLOCK)
                .filter_map(|slot| <&mut [u8; N]>::try_from(slot).ok())
        })
    }

    /// Zeroes every entry slot (the headers stay).
    pub(crate) fn clear_entries(&mut self) {
        for block in self.blocks.iter_mut() {
            if let Some(entries) = block.bytes_mut().get_mut(BLOCK_HEADER_SIZE..) {
                entries.fill(0);
            }
        }
    }

    /// Records that the chain holds its first `count` entries: every block's count is
    /// set, 0 for blocks past them.
    pub(crate) fn set_count(&mut self, count: usize) {
        for (i, block) in self.blocks.iter_mut().enumerate() {
            let filled = count
                .saturating_sub(i * Self::PER_BLOCK)
                .min(Self::PER_BLOCK);
            let next = read_header(block.bytes()).next;
            write_header(
                block.bytes_mut(),
                BlockHeader {
                    next,
                    count: filled as u64,
                },
            );
        }
    }
}
