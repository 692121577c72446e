// SPDX-License-Identifier: GPL-2.0

//! Chains of linked blocks, as written by one kernel and walked by the next.
//!
//! A chain is a singly linked list of one-page blocks. Each block starts with a
//! [`BlockHeader`] (the physical address of the next block and the number of entries
//! it holds) followed by fixed-size entries packed from byte 16. A writer fills blocks
//! densely, so every block holds at least one entry and only the last may be partial.
//!
//! The reader treats every block as untrusted: addresses must be block-aligned and
//! point at memory the previous kernel preserved, a block may appear only once across
//! everything read (so cycles and shared blocks are caught before any entry is used),
//! counts must lie between 1 and the block's capacity, and a chain may not exceed
//! [`MAX_BLOCKS`].

use super::format::{
    entries_per_block, entry_offset, BlockHeader, FormatError, BLOCK_HEADER_SIZE, MAX_BLOCKS,
};

/// Why a [`BlockSource`] could not hand out a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimError {
    /// The address is not a block the previous kernel preserved.
    NotPreserved,
    /// The block was already claimed during this restore.
    AlreadyClaimed,
}

/// Memory handed over by the previous kernel, one block at a time.
pub trait BlockSource {
    /// Size of every block, in bytes (the page size).
    fn block_size(&self) -> usize;

    /// Takes ownership of the block at `pa` and returns its bytes.
    ///
    /// Must return [`ClaimError::AlreadyClaimed`] for a block claimed before, and never
    /// a slice shorter than [`BlockSource::block_size`].
    fn claim(&mut self, pa: u64) -> Result<&[u8], ClaimError>;

    /// The bytes of a block claimed before, if any.
    fn claimed(&self, pa: u64) -> Option<&[u8]>;
}

/// Why a chain was refused. A refused chain is dropped whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainError {
    /// A block address is not aligned to the block size.
    Unaligned(u64),
    /// A block address does not point at preserved memory.
    NotPreserved(u64),
    /// A block is reached twice: the chain loops or shares blocks with another.
    Cycle(u64),
    /// The chain has more than [`MAX_BLOCKS`] blocks.
    TooLong,
    /// A block's entry count is zero or beyond its capacity.
    BadCount {
        /// The block.
        pa: u64,
        /// Its count.
        count: u64,
    },
    /// The entries add up to another total than the one recorded for the chain.
    CountMismatch {
        /// The recorded total.
        expected: u64,
        /// The entries found.
        found: u64,
    },
    /// An entry is malformed.
    Entry(FormatError),
    /// The consumer of the entries could not take one (out of memory).
    Consumer,
}

impl From<FormatError> for ChainError {
    fn from(err: FormatError) -> Self {
        ChainError::Entry(err)
    }
}

/// Walks the chain that starts at `head` and hands each entry of `N` bytes to `visit`,
/// in order. Returns the number of entries.
///
/// `head == 0` is the empty chain. The whole chain is claimed from `source` and checked
/// (addresses, cycles, length, counts) before the first entry is visited, so a chain
/// that is refused never reaches `visit`. On error the caller drops everything it
/// collected, and the source releases the blocks it handed out. Each entry is copied out
/// before `visit` sees it, so `visit` may walk other chains of the same source (a
/// session's files, for instance).
pub fn read_chain<S: BlockSource, const N: usize>(
    source: &mut S,
    head: u64,
    visit: impl FnMut(&mut S, &[u8; N]) -> Result<(), ChainError>,
) -> Result<u64, ChainError> {
    read_chain_counted(source, head, |_, _| {}, visit)
}

/// Like [`read_chain`]; `counted` learns the number of entries once the whole chain is
/// claimed and checked, before the first entry is visited, so that the consumer can
/// size its tables once.
pub fn read_chain_counted<S: BlockSource, const N: usize>(
    source: &mut S,
    head: u64,
    counted: impl FnOnce(&mut S, u64),
    visit: impl FnMut(&mut S, &[u8; N]) -> Result<(), ChainError>,
) -> Result<u64, ChainError> {
    let (blocks, total) = claim_chain::<S, N>(source, head)?;
    counted(source, total);
    visit_chain(source, head, blocks, visit)
}

/// Hands every entry of the `blocks` claimed blocks from `head` on to `visit`.
fn visit_chain<S: BlockSource, const N: usize>(
    source: &mut S,
    head: u64,
    blocks: usize,
    mut visit: impl FnMut(&mut S, &[u8; N]) -> Result<(), ChainError>,
) -> Result<u64, ChainError> {
    let mut pa = head;
    let mut entries = 0u64;
    for _ in 0..blocks {
        let header = source
            .claimed(pa)
            .and_then(header_of)
            .ok_or(ChainError::NotPreserved(pa))?;
        for index in 0..header.count as usize {
            let start = entry_offset(index, N);
            let entry: [u8; N] = source
                .claimed(pa)
                .and_then(|block| block.get(start..start + N))
                .and_then(|bytes| <[u8; N]>::try_from(bytes).ok())
                .ok_or(ChainError::NotPreserved(pa))?;
            visit(source, &entry)?;
        }
        entries += header.count;
        pa = header.next;
    }
    Ok(entries)
}

/// Claims and checks every block of the chain at `head`; returns how many blocks and
/// entries it has.
fn claim_chain<S: BlockSource, const N: usize>(
    source: &mut S,
    head: u64,
) -> Result<(usize, u64), ChainError> {
    let block_size = source.block_size();
    let per_block = entries_per_block(block_size, N) as u64;
    let mut pa = head;
    let mut blocks = 0usize;
    let mut entries = 0u64;

    while pa != 0 {
        if blocks == MAX_BLOCKS {
            return Err(ChainError::TooLong);
        }
        if pa % block_size as u64 != 0 {
            return Err(ChainError::Unaligned(pa));
        }
        let header = match source.claim(pa) {
            Ok(block) if block.len() >= block_size => header_of(block),
            Ok(_) | Err(ClaimError::NotPreserved) => None,
            Err(ClaimError::AlreadyClaimed) => return Err(ChainError::Cycle(pa)),
        };
        let header = header.ok_or(ChainError::NotPreserved(pa))?;
        if header.count == 0 || header.count > per_block {
            return Err(ChainError::BadCount {
                pa,
                count: header.count,
            });
        }
        blocks += 1;
        entries += header.count;
        pa = header.next;
    }
    Ok((blocks, entries))
}

/// Like [`read_chain`], and also checks the number of entries against `expected`,
/// before the first entry is visited; `counted` then learns that it matched.
pub fn read_chain_exact<S: BlockSource, const N: usize>(
    source: &mut S,
    head: u64,
    expected: u64,
    counted: impl FnOnce(&mut S, u64),
    visit: impl FnMut(&mut S, &[u8; N]) -> Result<(), ChainError>,
) -> Result<(), ChainError> {
    // A recorded total that no chain could hold is refused before anything is claimed.
    let per_block = entries_per_block(source.block_size(), N) as u64;
    if expected > per_block * MAX_BLOCKS as u64 || (head == 0) != (expected == 0) {
        return Err(ChainError::CountMismatch { expected, found: 0 });
    }
    let (blocks, found) = claim_chain::<S, N>(source, head)?;
    if found != expected {
        return Err(ChainError::CountMismatch { expected, found });
    }
    counted(source, found);
    visit_chain(source, head, blocks, visit)?;
    Ok(())
}

#[inline]
fn header_of(block: &[u8]) -> Option<BlockHeader> {
    let bytes = block.get(..BLOCK_HEADER_SIZE)?;
    Some(BlockHeader::decode(
        <&[u8; BLOCK_HEADER_SIZE]>::try_from(bytes).ok()?,
    ))
}

/// Writes a block's header.
///
/// `block` is a whole block of the writer's own; shorter slices are left alone.
#[inline]
pub fn write_header(block: &mut [u8], header: BlockHeader) {
    if let Some(bytes) = block
        .get_mut(..BLOCK_HEADER_SIZE)
        .and_then(|b| <&mut [u8; BLOCK_HEADER_SIZE]>::try_from(b).ok())
    {
        header.encode(bytes);
    }
}

/// Reads back the header of a block of the writer's own.
#[inline]
pub fn read_header(block: &[u8]) -> BlockHeader {
    header_of(block).unwrap_or_default()
}

/// The `index`-th entry slot of `N` bytes in a block, if the block holds that many.
#[inline]
pub fn entry_slot<const N: usize>(block: &mut [u8], index: usize) -> Option<&mut [u8; N]> {
    if index >= entries_per_block(block.len(), N) {
        return None;
    }
    let start = entry_offset(index, N);
    block
        .get_mut(start..start + N)
        .and_then(|bytes| <&mut [u8; N]>::try_from(bytes).ok())
}
