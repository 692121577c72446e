// SPDX-License-Identifier: GPL-2.0

//! Reading back everything the previous kernel handed over, with a policy for what
//! survives bad input.
//!
//! [`restore`] reads the root, the FLB header, the session chain and every session's
//! file chain from a [`BlockSource`], and reports what it found to a [`RestoreSink`].
//! Nothing is allocated here; the sink builds whatever it keeps. The kernel reads the
//! root early in boot ([`restore_root`]), the FLB page ([`restore_flb_page`]) and the
//! sessions ([`restore_sessions`]) later, when they are first needed.
//!
//! Policy:
//! - a bad root (too small, not preserved, wrong compatible string) or a bad session
//!   chain rejects everything: no session is restored;
//! - a session whose entry, name or file chain is bad, or whose name repeats an earlier
//!   session's, is dropped alone; the others are restored;
//! - a bad FLB page is ignored (the sessions do not depend on it);
//! - every rejection is reported to the sink once, so the kernel can log it.
//!
//! Blocks of a dropped session stay claimed by the source and are released with it.

use super::chain::{read_chain_counted, read_chain_exact, BlockSource, ChainError};
use super::format::{
    FileEntry, FlbEntry, FlbHeader, FormatError, Root, SessionEntry, SessionName, FILE_ENTRY_SIZE,
    FLB_ENTRY_SIZE, FLB_HEADER_SIZE, HANDLER_COMPAT_LEN, ROOT_SIZE, SESSION_ENTRY_SIZE,
};

/// Something the reader refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// The root blob is smaller than a root.
    RootTooSmall(usize),
    /// The root is not in preserved memory.
    RootNotPreserved(u64),
    /// The root is not "luo-v5".
    RootIncompatible,
    /// The session chain is malformed; no session was restored.
    SessionChain(ChainError),
    /// Session number `index` of the chain is malformed and was dropped.
    SessionEntry {
        /// Its position in the chain.
        index: u64,
        /// What is wrong with it.
        error: FormatError,
    },
    /// A session's file chain is malformed; the session was dropped.
    FileChain {
        /// The session.
        name: SessionName,
        /// What is wrong with its files.
        error: ChainError,
    },
    /// A second session with the same name was dropped.
    DuplicateSession(SessionName),
    /// The FLB page is malformed or not preserved; it was ignored.
    FlbPage(u64),
}

/// Why [`restore`] stopped before the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreError {
    /// The state was rejected as a whole; see the reported [`Rejection`].
    Rejected,
    /// The sink ran out of memory.
    OutOfMemory,
}

/// What the sink could not do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfMemory;

/// The consumer of what [`restore`] reads.
pub trait RestoreSink {
    /// The session chain holds `count` entries, valid or not: called once, before the
    /// first session, so that the sink can size its tables. A sink that cannot may
    /// ignore it; sessions are offered one by one all the same.
    fn sessions_expected(&mut self, _count: u64) {}
    /// A session starts; `Ok(false)` when its name is taken (it is then skipped).
    fn begin_session(&mut self, entry: &SessionEntry) -> Result<bool, OutOfMemory>;
    /// The current session's file chain is valid and holds `count` files: called before
    /// the first of them, and only for a chain that has files.
    fn files_expected(&mut self, _count: u64) {}
    /// A file of the current session.
    fn file(&mut self, entry: &FileEntry) -> Result<(), OutOfMemory>;
    /// The current session ends: keep it if `valid`, else drop it and its files.
    fn end_session(&mut self, valid: bool) -> Result<(), OutOfMemory>;
    /// An FLB object of the previous kernel; ignored unless the sink keeps FLBs.
    fn flb(&mut self, _entry: &FlbEntry) -> Result<(), OutOfMemory> {
        Ok(())
    }
    /// Something was refused.
    fn rejected(&mut self, what: Rejection);
}

/// What [`restore`] found in a valid root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restored {
    /// The root.
    pub root: Root,
    /// Entries of the FLB header, 0 when there is none or it was ignored.
    pub flb_count: u64,
    /// Session entries in the chain, valid or not.
    pub sessions_seen: u64,
}

/// Reads the state whose root is the `root_size`-byte blob at `root_pa`: the root, the
/// FLB page and every session ([`restore_root`], [`restore_flb_page`], then
/// [`restore_sessions`]).
pub fn restore<S: BlockSource, K: RestoreSink>(
    source: &mut S,
    root_pa: u64,
    root_size: usize,
    sink: &mut K,
) -> Result<Restored, RestoreError> {
    let root = restore_root(source, root_pa, root_size, sink).ok_or(RestoreError::Rejected)?;
    let flb_count = match restore_flb_page(source, root.flbs_pa, |entry| sink.flb(entry)) {
        Ok(Some(count)) => count,
        Ok(None) => {
            sink.rejected(Rejection::FlbPage(root.flbs_pa));
            0
        }
        Err(OutOfMemory) => return Err(RestoreError::OutOfMemory),
    };
    let (sessions_seen, result) = restore_sessions(source, root.sessions_pa, sink);
    result.map(|()| Restored {
        root,
        flb_count,
        sessions_seen,
    })
}

/// Reads and checks the root, leaving the FLB page and the session chain unread.
///
/// Returns `None` when the root is refused; the sink has been told why.
pub fn restore_root<S: BlockSource, K: RestoreSink>(
    source: &mut S,
    root_pa: u64,
    root_size: usize,
    sink: &mut K,
) -> Option<Root> {
    read_root(source, root_pa, root_size)
        .map_err(|what| sink.rejected(what))
        .ok()
}

/// Reads the FLB page at `flbs_pa`, handing every entry to `each` once all are checked.
///
/// Returns the number of entries (0 when `flbs_pa` is 0), or `Ok(None)` when the page is
/// malformed or not preserved; no entry was handed over then, and the caller decides
/// how to report [`Rejection::FlbPage`].
pub fn restore_flb_page<S: BlockSource>(
    source: &mut S,
    flbs_pa: u64,
    each: impl FnMut(&FlbEntry) -> Result<(), OutOfMemory>,
) -> Result<Option<u64>, OutOfMemory> {
    if flbs_pa == 0 {
        return Ok(Some(0));
    }
    read_flbs(source, flbs_pa, each)
}

/// Reads the session chain at `sessions_pa` and every session's file chain.
///
/// Returns the number of session entries seen, valid or not, with the outcome.
pub fn restore_sessions<S: BlockSource, K: RestoreSink>(
    source: &mut S,
    sessions_pa: u64,
    sink: &mut K,
) -> (u64, Result<(), RestoreError>) {
    let mut out_of_memory = false;
    let mut index = 0u64;
    // Handed to the sink with the first entry: both closures cannot hold the sink.
    let expected = core::cell::Cell::new(None);
    let read = read_chain_counted::<_, SESSION_ENTRY_SIZE>(
        source,
        sessions_pa,
        |_, count| expected.set(Some(count)),
        |source, bytes| {
            if let Some(count) = expected.take() {
                sink.sessions_expected(count);
            }
            let this = index;
            index += 1;
            match read_session(source, bytes, sink, this) {
                Ok(()) => Ok(()),
                Err(RestoreError::OutOfMemory) => {
                    out_of_memory = true;
                    Err(ChainError::Consumer)
                }
                Err(RestoreError::Rejected) => Ok(()),
            }
        },
    );
    if out_of_memory {
        return (index, Err(RestoreError::OutOfMemory));
    }
    if let Err(error) = read {
        sink.rejected(Rejection::SessionChain(error));
        return (index, Err(RestoreError::Rejected));
    }
    (index, Ok(()))
}

fn read_root<S: BlockSource>(source: &mut S, pa: u64, size: usize) -> Result<Root, Rejection> {
    if size < ROOT_SIZE {
        return Err(Rejection::RootTooSmall(size));
    }
    if pa % source.block_size() as u64 != 0 {
        return Err(Rejection::RootNotPreserved(pa));
    }
    let bytes: [u8; ROOT_SIZE] = source
        .claim(pa)
        .ok()
        .and_then(|page| page.get(..ROOT_SIZE))
        .and_then(|b| b.try_into().ok())
        .ok_or(Rejection::RootNotPreserved(pa))?;
    Root::decode(&bytes).map_err(|_| Rejection::RootIncompatible)
}

/// Reads the FLB page; `Ok(None)` when it is malformed, in which case no entry was
/// handed over.
fn read_flbs<S: BlockSource>(
    source: &mut S,
    pa: u64,
    mut each: impl FnMut(&FlbEntry) -> Result<(), OutOfMemory>,
) -> Result<Option<u64>, OutOfMemory> {
    let block_size = source.block_size();
    if pa % block_size as u64 != 0 {
        return Ok(None);
    }
    let Ok(page) = source.claim(pa) else {
        return Ok(None);
    };
    let header = page
        .get(..FLB_HEADER_SIZE)
        .and_then(|b| <&[u8; FLB_HEADER_SIZE]>::try_from(b).ok())
        .and_then(|b| FlbHeader::decode(b, block_size).ok());
    let Some(header) = header else {
        return Ok(None);
    };
    // Every entry is checked before the first one is handed over.
    for index in 0..header.count as usize {
        if flb_entry(page, index).is_none() {
            return Ok(None);
        }
    }
    for index in 0..header.count as usize {
        let Some(entry) = source.claimed(pa).and_then(|page| flb_entry(page, index)) else {
            return Ok(None);
        };
        each(&entry)?;
    }
    Ok(Some(header.count))
}

fn flb_entry(page: &[u8], index: usize) -> Option<FlbEntry> {
    let start = FlbEntry::offset(index);
    let bytes = page.get(start..start + FLB_ENTRY_SIZE)?;
    FlbEntry::decode(<&[u8; FLB_ENTRY_SIZE]>::try_from(bytes).ok()?).ok()
}

/// Reads one session entry and its file chain into the sink.
fn read_session<S: BlockSource, K: RestoreSink>(
    source: &mut S,
    bytes: &[u8; SESSION_ENTRY_SIZE],
    sink: &mut K,
    index: u64,
) -> Result<(), RestoreError> {
    let entry = match SessionEntry::decode(bytes) {
        Ok(entry) => entry,
        Err(error) => {
            sink.rejected(Rejection::SessionEntry { index, error });
            return Err(RestoreError::Rejected);
        }
    };
    if !sink
        .begin_session(&entry)
        .map_err(|OutOfMemory| RestoreError::OutOfMemory)?
    {
        sink.rejected(Rejection::DuplicateSession(entry.name));
        return Err(RestoreError::Rejected);
    }
    let mut out_of_memory = false;
    let expected = core::cell::Cell::new(None);
    // One entry, decoded into again for every file.
    let mut file = FileEntry {
        compatible: [0; HANDLER_COMPAT_LEN],
        data: 0,
        token: 0,
    };
    let files = read_chain_exact::<_, FILE_ENTRY_SIZE>(
        source,
        entry.files_pa,
        entry.files_count,
        |_, count| expected.set(Some(count)),
        |_, bytes| {
            if let Some(count) = expected.take() {
                sink.files_expected(count);
            }
            file.decode_from(bytes)?;
            sink.file(&file).map_err(|OutOfMemory| {
                out_of_memory = true;
                ChainError::Consumer
            })
        },
    );
    let valid = files.is_ok();
    sink.end_session(valid)
        .map_err(|OutOfMemory| RestoreError::OutOfMemory)?;
    if out_of_memory {
        return Err(RestoreError::OutOfMemory);
    }
    if let Err(error) = files {
        sink.rejected(Rejection::FileChain {
            name: entry.name,
            error,
        });
        return Err(RestoreError::Rejected);
    }
    Ok(())
}
