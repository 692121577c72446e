// SPDX-License-Identifier: GPL-2.0

//! Fuzzing support for the luo-v5 restore parser of `luo-abi`.
//!
//! A fuzz input describes the memory that a previous kernel handed over: a set of
//! 4 KiB pages at physical addresses of the fuzzer's choosing, whose bytes the fuzzer
//! writes freely, so it can forge roots, block headers, next pointers, counts and
//! names. [`FuzzSource`] serves that memory through [`BlockSource`] with claim-once
//! semantics, and the checks ([`check_restore`], [`check_chain`]) panic when the
//! parser breaks one of its promises.
//!
//! # Input format
//!
//! Every target starts with a small header of its own (see [`check_restore`] and
//! [`check_chain`]), followed by page records until the input ends. Integers are
//! little-endian; a field cut short by the end of the input reads as zero.
//!
//! ```text
//! record := tag:u8 pa:u64 body
//!   tag even  (page): len:u16 bytes[len]          one page at pa
//!   tag odd   (run):  count:u16 len:u16 bytes[len] `count` pages at pa, pa + 4096, ...
//! ```
//!
//! `bytes` (at most 4096, fewer when the input ends first) fill the start of the
//! page; the rest of the page is zero. The pages of a run are copies of one template
//! whose block header `next` field (bytes 0..8) is set to the following page of the
//! run, except in the last page, which keeps the template's own: a run is a linked
//! chain of any length (up to [`MAX_PAGES`] pages in all), so the fuzzer can reach
//! the [`MAX_BLOCKS`] limit with a few bytes. When addresses overlap, an explicit
//! page wins over a run and an earlier run over a later one. Addresses need not be
//! aligned: such pages exist, and the parser must never claim them.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use luo_abi::chain::{read_chain, read_chain_exact, BlockSource, ChainError, ClaimError};
use luo_abi::format::{
    blocks_for, c_str_len, entries_per_block, entry_offset, BlockHeader, FileEntry, FlbEntry,
    FormatError, SessionEntry, BLOCK_HEADER_SIZE, FILE_ENTRY_SIZE, FLB_COMPAT_LEN, FLB_ENTRY_SIZE,
    FLB_HEADER_SIZE, HANDLER_COMPAT_LEN, MAX_BLOCKS, SESSION_ENTRY_SIZE, SESSION_NAME_LEN,
};
use luo_abi::restore::{restore, OutOfMemory, Rejection, RestoreError, RestoreSink, Restored};

/// Size of every simulated page.
pub const PAGE: usize = 4096;
/// Most pages one input may describe: enough for a chain one block past
/// [`MAX_BLOCKS`] plus a few others.
pub const MAX_PAGES: usize = MAX_BLOCKS + 64;
/// Most runs one input may describe.
pub const MAX_RUNS: usize = 16;

/// File entries in one block.
const FILES_PER_BLOCK: usize = entries_per_block(PAGE, FILE_ENTRY_SIZE);
/// FLB entries that fit after the FLB header.
const FLB_CAPACITY: u64 = ((PAGE - FLB_HEADER_SIZE) / FLB_ENTRY_SIZE) as u64;

/// Reads fields off the fuzz input; past its end every field reads as zero.
pub struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader at the start of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    /// The next `n` bytes, or fewer when the input ends first.
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        head
    }

    fn int<const W: usize>(&mut self) -> [u8; 8] {
        let mut word = [0u8; 8];
        let bytes = self.bytes(W);
        word[..bytes.len()].copy_from_slice(bytes);
        word
    }

    /// A byte.
    pub fn u8(&mut self) -> u8 {
        self.int::<1>()[0]
    }

    /// A little-endian `u16`.
    pub fn u16(&mut self) -> u16 {
        u64::from_le_bytes(self.int::<2>()) as u16
    }

    /// A little-endian `u64`.
    pub fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.int::<8>())
    }

    /// Whether the input is used up.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// What is left of the input.
    pub fn rest(self) -> &'a [u8] {
        self.data
    }
}

/// `count` linked pages at `base`, `base + PAGE`, ..., copies of `template`.
struct Run<'a> {
    base: u64,
    count: u64,
    template: &'a [u8],
    /// Index of its first page among all pages of the layout.
    first: usize,
}

/// One page of the layout: its leading bytes, and the `next` field a run sets.
#[derive(Clone, Copy)]
struct Page<'a> {
    template: &'a [u8],
    next: Option<u64>,
}

/// The simulated memory of the previous kernel, as decoded from a fuzz input.
pub struct Layout<'a> {
    /// Explicit pages: index among all pages, bytes.
    pages: BTreeMap<u64, (usize, &'a [u8])>,
    runs: Vec<Run<'a>>,
    total: usize,
}

impl<'a> Layout<'a> {
    /// Decodes page records until the input ends (see the crate documentation).
    pub fn decode(data: &'a [u8]) -> Self {
        let mut layout = Layout {
            pages: BTreeMap::new(),
            runs: Vec::new(),
            total: 0,
        };
        let mut r = Reader::new(data);
        while !r.is_empty() && layout.total < MAX_PAGES {
            let tag = r.u8();
            let pa = r.u64();
            if tag & 1 == 0 {
                let len = usize::from(r.u16()).min(PAGE);
                let template = r.bytes(len);
                if let std::collections::btree_map::Entry::Vacant(slot) = layout.pages.entry(pa) {
                    slot.insert((layout.total, template));
                    layout.total += 1;
                }
            } else {
                let count = usize::from(r.u16()).min(MAX_PAGES - layout.total);
                let len = usize::from(r.u16()).min(PAGE);
                let template = r.bytes(len);
                // The run stops where its addresses would wrap around.
                let room = (u64::MAX - pa) / PAGE as u64 + 1;
                let count = (count as u64).min(room);
                if count > 0 && layout.runs.len() < MAX_RUNS {
                    layout.runs.push(Run {
                        base: pa,
                        count,
                        template,
                        first: layout.total,
                    });
                    layout.total += count as usize;
                }
            }
        }
        layout
    }

    /// Upper bound of the number of distinct pages (overlaps are counted twice).
    pub fn pages(&self) -> usize {
        self.total
    }

    /// The page at `pa` and its index among all pages (distinct for distinct `pa`).
    fn lookup(&self, pa: u64) -> Option<(usize, Page<'a>)> {
        if let Some(&(index, template)) = self.pages.get(&pa) {
            let next = None;
            return Some((index, Page { template, next }));
        }
        self.runs.iter().find_map(|run| {
            let offset = pa.checked_sub(run.base)?;
            let index = offset / PAGE as u64;
            if offset % PAGE as u64 != 0 || index >= run.count {
                return None;
            }
            let last = index + 1 == run.count;
            let page = Page {
                template: run.template,
                next: (!last).then(|| pa + PAGE as u64),
            };
            Some((run.first + index as usize, page))
        })
    }

    /// Copies the page at `pa` into `out` (a page long), if the layout has one.
    pub fn read(&self, pa: u64, out: &mut [u8]) -> bool {
        self.lookup(pa).map(|(_, page)| fill(page, out)).is_some()
    }
}

fn fill(page: Page<'_>, out: &mut [u8]) {
    out[..page.template.len()].copy_from_slice(page.template);
    out[page.template.len()..].fill(0);
    if let Some(next) = page.next {
        out[BlockHeader::NEXT_OFFSET..BlockHeader::NEXT_OFFSET + 8]
            .copy_from_slice(&next.to_ne_bytes());
    }
}

/// Writes the page into `out`, which is all zero: returns how many leading bytes of
/// it may be non-zero now.
fn place(page: Page<'_>, out: &mut [u8]) -> usize {
    out[..page.template.len()].copy_from_slice(page.template);
    if let Some(next) = page.next {
        out[BlockHeader::NEXT_OFFSET..BlockHeader::NEXT_OFFSET + 8]
            .copy_from_slice(&next.to_ne_bytes());
        return page.template.len().max(BlockHeader::NEXT_OFFSET + 8);
    }
    page.template.len()
}

thread_local! {
    /// Storage of claimed pages, kept from one run to the next and all zero between
    /// runs: allocating and clearing tens of megabytes for every input (chains of
    /// MAX_BLOCKS blocks) made page faults and memset most of the fuzzing time.
    static ARENA: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// [`BlockSource`] over a [`Layout`], with claim-once semantics.
///
/// Panics when the parser claims an unaligned address or reads a block it has not
/// claimed: both mean the parser lost track of what it owns.
pub struct FuzzSource<'a> {
    layout: Layout<'a>,
    arena: Vec<u8>,
    /// Per page index: 0 while unclaimed, else its place in `arena` plus one.
    slots: Vec<u32>,
    /// Per claimed block, in claim order: how many leading bytes were written.
    dirty: Vec<usize>,
    claimed: usize,
    /// The last address looked up by `claimed`, and its page index.
    last: Cell<Option<(u64, usize)>>,
    claims: Rc<Cell<u64>>,
}

impl<'a> FuzzSource<'a> {
    /// A source over `layout`; `claims` counts the successful claims.
    pub fn new(layout: Layout<'a>, claims: Rc<Cell<u64>>) -> Self {
        Self {
            slots: vec![0; layout.pages()],
            layout,
            arena: ARENA.take(),
            dirty: Vec::new(),
            claimed: 0,
            last: Cell::new(None),
            claims,
        }
    }

    /// Number of blocks claimed so far.
    pub fn claimed_blocks(&self) -> usize {
        self.claimed
    }

    /// The bytes of the block at `pa`, if it was claimed.
    pub fn claimed_bytes(&self, pa: u64) -> Option<&[u8]> {
        let index = match self.last.get() {
            Some((last, index)) if last == pa => index,
            _ => {
                let (index, _) = self.layout.lookup(pa)?;
                self.last.set(Some((pa, index)));
                index
            }
        };
        let slot = self.slots[index].checked_sub(1)? as usize;
        Some(&self.arena[slot * PAGE..(slot + 1) * PAGE])
    }
}

impl Drop for FuzzSource<'_> {
    fn drop(&mut self) {
        for (slot, &len) in self.dirty.iter().enumerate() {
            self.arena[slot * PAGE..slot * PAGE + len].fill(0);
        }
        ARENA.set(std::mem::take(&mut self.arena));
    }
}

impl BlockSource for FuzzSource<'_> {
    fn block_size(&self) -> usize {
        PAGE
    }

    fn claim(&mut self, pa: u64) -> Result<&[u8], ClaimError> {
        assert!(
            pa % PAGE as u64 == 0,
            "the parser claimed the unaligned address {pa:#x}"
        );
        let (index, page) = self.layout.lookup(pa).ok_or(ClaimError::NotPreserved)?;
        if self.slots[index] != 0 {
            return Err(ClaimError::AlreadyClaimed);
        }
        let offset = self.claimed * PAGE;
        if self.arena.len() < offset + PAGE {
            self.arena.resize(offset + PAGE, 0);
        }
        let len = place(page, &mut self.arena[offset..offset + PAGE]);
        self.dirty.push(len);
        self.claimed += 1;
        self.slots[index] = self.claimed as u32;
        self.claims.set(self.claims.get() + 1);
        assert!(
            self.claimed <= self.layout.pages(),
            "more blocks claimed than pages preserved"
        );
        Ok(&self.arena[offset..offset + PAGE])
    }

    fn claimed(&self, pa: u64) -> Option<&[u8]> {
        let bytes = self.claimed_bytes(pa);
        assert!(
            bytes.is_some(),
            "the parser read {pa:#x} without claiming it"
        );
        bytes
    }
}

/// A session the sink is receiving.
struct Current {
    name: Vec<u8>,
    files_count: u64,
    files: u64,
    claims_at_begin: u64,
}

/// A [`RestoreSink`] that keeps sessions the way the kernel does (a name may be kept
/// once) and panics when [`restore`] breaks its contract.
///
/// It can also run out of memory on purpose: from its `oom_at`-th call on (1-based,
/// counting `flb`, `begin_session`, `file` and `end_session`), once or for good.
pub struct CheckingSink {
    claims: Rc<Cell<u64>>,
    oom_at: u32,
    oom_persistent: bool,
    calls: u32,
    oom_returned: bool,
    /// Kept sessions: name and number of files.
    pub kept: Vec<(Vec<u8>, u64)>,
    current: Option<Current>,
    session_claims: u64,
    flbs: u64,
    begins: u64,
    entry_rejections: u64,
    /// Every rejection, in order.
    pub rejections: Vec<Rejection>,
    expect_duplicate: Option<Vec<u8>>,
    expect_file_chain: Option<Vec<u8>>,
    finished: bool,
}

impl CheckingSink {
    /// A sink; `oom` selects the injected out-of-memory: its low 7 bits are the call
    /// that fails first (0: none; calls are `flb`, `begin_session`, `file` and
    /// `end_session`), its high bit makes every later call fail as well.
    pub fn new(claims: Rc<Cell<u64>>, oom: u8) -> Self {
        Self {
            claims,
            oom_at: u32::from(oom & 0x7f),
            oom_persistent: oom & 0x80 != 0,
            calls: 0,
            oom_returned: false,
            kept: Vec::new(),
            current: None,
            session_claims: 0,
            flbs: 0,
            begins: 0,
            entry_rejections: 0,
            rejections: Vec::new(),
            expect_duplicate: None,
            expect_file_chain: None,
            finished: false,
        }
    }

    fn allocate(&mut self) -> Result<(), OutOfMemory> {
        self.calls += 1;
        let fails = self.oom_at != 0
            && (self.calls == self.oom_at || (self.oom_persistent && self.calls > self.oom_at));
        if fails {
            self.oom_returned = true;
            return Err(OutOfMemory);
        }
        Ok(())
    }

    fn no_pending_report(&self) {
        assert!(
            self.expect_duplicate.is_none() && self.expect_file_chain.is_none(),
            "a dropped session was not reported before the next event"
        );
    }

    fn live(&self, what: &str) {
        assert!(!self.finished, "{what} after the restore was rejected");
    }

    /// Checks what [`restore`] returned against everything the sink saw.
    pub fn finish(&self, result: &Result<Restored, RestoreError>, source: &FuzzSource<'_>) {
        let outside = self.claims.get() - self.session_claims;
        // The root, the FLB page and at most MAX_BLOCKS blocks of the session chain.
        assert!(
            outside <= MAX_BLOCKS as u64 + 2,
            "{outside} blocks claimed outside the file chains"
        );
        assert_eq!(self.claims.get(), source.claimed_blocks() as u64);
        match result {
            Ok(restored) => {
                assert!(!self.oom_returned, "out of memory was swallowed");
                assert!(!self.finished, "Ok after a rejection of the whole state");
                assert!(self.current.is_none(), "a session was left open");
                self.no_pending_report();
                assert_eq!(
                    restored.sessions_seen,
                    self.begins + self.entry_rejections,
                    "sessions_seen does not match the entries reported"
                );
                assert!(
                    restored.flb_count <= FLB_CAPACITY,
                    "FLB count beyond its page"
                );
                let flb_rejected = self
                    .rejections
                    .iter()
                    .any(|r| matches!(r, Rejection::FlbPage(_)));
                if restored.root.flbs_pa == 0 || flb_rejected {
                    assert_eq!(restored.flb_count, 0, "FLB count without an FLB page");
                }
                assert_eq!(
                    restored.flb_count, self.flbs,
                    "FLB count differs from the FLB entries handed over"
                );
                if restored.root.sessions_pa == 0 {
                    assert_eq!(restored.sessions_seen, 0, "sessions without a chain");
                }
                let names: BTreeSet<_> = self.kept.iter().map(|(n, _)| n).collect();
                assert_eq!(names.len(), self.kept.len(), "a session name kept twice");
            }
            Err(RestoreError::OutOfMemory) => {
                assert!(
                    self.oom_returned,
                    "out of memory that the sink never reported"
                );
            }
            Err(RestoreError::Rejected) => {
                assert!(!self.oom_returned, "out of memory reported as a rejection");
                assert!(self.finished, "rejected without saying why");
                assert!(self.current.is_none(), "a session was left open");
            }
        }
    }
}

impl RestoreSink for CheckingSink {
    fn begin_session(&mut self, entry: &SessionEntry) -> Result<bool, OutOfMemory> {
        self.live("begin_session");
        self.no_pending_report();
        assert!(!self.oom_returned, "a session begins after out of memory");
        assert!(self.current.is_none(), "a session begins inside another");
        let name = entry.name.as_bytes();
        assert!(
            !name.is_empty() && name.len() < SESSION_NAME_LEN,
            "bad name length"
        );
        assert!(!name.contains(&0), "NUL inside a session name");
        assert!(
            entry.name.as_field()[name.len()..].iter().all(|&b| b == 0),
            "stale bytes after a session name"
        );
        self.allocate()?;
        self.begins += 1;
        if self.kept.iter().any(|(n, _)| n == name) {
            self.expect_duplicate = Some(name.to_vec());
            return Ok(false);
        }
        self.current = Some(Current {
            name: name.to_vec(),
            files_count: entry.files_count,
            files: 0,
            claims_at_begin: self.claims.get(),
        });
        Ok(true)
    }

    fn file(&mut self, entry: &FileEntry) -> Result<(), OutOfMemory> {
        self.live("file");
        assert!(!self.oom_returned, "a file after out of memory");
        let compat = &entry.compatible;
        let len = c_str_len(compat).expect("unterminated handler compatible");
        assert!(len > 0 && len < HANDLER_COMPAT_LEN, "bad compatible length");
        assert!(
            compat[len..].iter().all(|&b| b == 0),
            "stale bytes after a compatible string"
        );
        assert_eq!(entry.compatible_str().len(), len);
        self.allocate()?;
        let current = self.current.as_mut().expect("a file outside a session");
        current.files += 1;
        assert!(
            current.files <= (FILES_PER_BLOCK * MAX_BLOCKS) as u64,
            "more files than any chain can hold"
        );
        Ok(())
    }

    fn end_session(&mut self, valid: bool) -> Result<(), OutOfMemory> {
        self.live("end_session");
        let current = self
            .current
            .take()
            .expect("a session ends that never began");
        let blocks = self.claims.get() - current.claims_at_begin;
        self.session_claims += blocks;
        assert!(
            blocks <= MAX_BLOCKS as u64,
            "{blocks} blocks claimed for one file chain"
        );
        if valid {
            assert!(!self.oom_returned, "a valid session after out of memory");
            assert_eq!(
                current.files, current.files_count,
                "a kept session with another number of files than recorded"
            );
            let least = blocks_for(current.files as usize, FILES_PER_BLOCK) as u64;
            assert!(
                least <= blocks && blocks <= current.files,
                "{} files in {blocks} blocks",
                current.files
            );
        }
        let oom_before = self.oom_returned;
        self.allocate()?;
        if valid {
            self.kept.push((current.name, current.files));
        } else if !oom_before {
            self.expect_file_chain = Some(current.name);
        }
        Ok(())
    }

    fn flb(&mut self, entry: &FlbEntry) -> Result<(), OutOfMemory> {
        self.live("flb");
        assert!(!self.oom_returned, "an FLB entry after out of memory");
        assert!(
            self.begins == 0 && self.entry_rejections == 0 && self.rejections.is_empty(),
            "an FLB entry after the sessions"
        );
        let len = c_str_len(&entry.name).expect("unterminated FLB name");
        assert!(len > 0 && len < FLB_COMPAT_LEN, "bad FLB name length");
        assert!(
            entry.name[len..].iter().all(|&b| b == 0),
            "stale bytes after an FLB name"
        );
        self.allocate()?;
        self.flbs += 1;
        assert!(
            self.flbs <= FLB_CAPACITY,
            "more FLB entries than fit a page"
        );
        Ok(())
    }

    fn rejected(&mut self, what: Rejection) {
        self.live("a rejection");
        assert!(
            !self.oom_returned,
            "a rejection reported after out of memory"
        );
        self.rejections.push(what);
        match what {
            Rejection::RootTooSmall(_)
            | Rejection::RootNotPreserved(_)
            | Rejection::RootIncompatible => {
                assert_eq!(self.rejections.len(), 1, "root rejected after other events");
                assert_eq!(self.calls, 0, "root rejected after sessions");
                self.finished = true;
            }
            Rejection::FlbPage(pa) => {
                assert_ne!(pa, 0, "FLB page 0 rejected");
                assert_eq!(self.rejections.len(), 1, "FLB page rejected late or twice");
                assert_eq!(
                    self.calls, 0,
                    "FLB page rejected after FLB entries or sessions"
                );
            }
            Rejection::SessionChain(error) => {
                self.no_pending_report();
                assert!(self.current.is_none(), "chain rejected inside a session");
                assert_ne!(error, ChainError::Consumer, "consumer error as a rejection");
                self.finished = true;
            }
            Rejection::SessionEntry { index, error } => {
                self.no_pending_report();
                assert!(self.current.is_none(), "entry rejected inside a session");
                assert_eq!(index, self.begins + self.entry_rejections, "wrong index");
                assert!(
                    matches!(error, FormatError::Unterminated | FormatError::EmptyName),
                    "unexpected session entry error {error:?}"
                );
                self.entry_rejections += 1;
            }
            Rejection::FileChain { name, error } => {
                assert_ne!(error, ChainError::Consumer, "consumer error as a rejection");
                let expected = self.expect_file_chain.take();
                assert_eq!(
                    expected.as_deref(),
                    Some(name.as_bytes()),
                    "file chain rejection for a session that was not dropped"
                );
            }
            Rejection::DuplicateSession(name) => {
                let expected = self.expect_duplicate.take();
                assert_eq!(
                    expected.as_deref(),
                    Some(name.as_bytes()),
                    "duplicate reported for a session that was not refused"
                );
            }
        }
    }
}

/// Fuzz target `restore`: the whole restore path.
///
/// Header: `root_pa:u64 root_size:u16 oom:u8` (`oom` as in [`CheckingSink::new`]),
/// then page records.
pub fn check_restore(data: &[u8]) {
    restore_outcome(data);
}

/// What one run of the `restore` target did, once every check passed.
#[derive(Debug)]
pub struct Outcome {
    /// What [`restore`] returned.
    pub result: Result<Restored, RestoreError>,
    /// Sessions kept by the sink (valid ones, first of each name): name, files.
    pub kept: Vec<(Vec<u8>, u64)>,
    /// Every rejection reported, in order.
    pub rejections: Vec<Rejection>,
    /// Blocks claimed in all.
    pub claimed: usize,
}

/// Runs the `restore` target on `data` and returns what it did.
pub fn restore_outcome(data: &[u8]) -> Outcome {
    let mut r = Reader::new(data);
    let root_pa = r.u64();
    let root_size = usize::from(r.u16());
    let oom = r.u8();
    let layout = Layout::decode(r.rest());
    let claims = Rc::new(Cell::new(0));
    let mut source = FuzzSource::new(layout, claims.clone());
    let mut sink = CheckingSink::new(claims, oom);
    let result = restore(&mut source, root_pa, root_size, &mut sink);
    sink.finish(&result, &source);
    Outcome {
        result,
        kept: sink.kept,
        rejections: sink.rejections,
        claimed: source.claimed_blocks(),
    }
}

/// Outcome of a chain walk: the entries visited, end to end, then how it ended.
type Walk = (Vec<u8>, Result<u64, ChainError>);

/// What `read_chain` must do, written as plainly as possible: the oracle.
///
/// The whole chain is checked first; a chain that is refused hands out no entry.
fn reference_chain(layout: &Layout<'_>, head: u64, n: usize, fail_at: u64) -> Walk {
    let per_block = entries_per_block(PAGE, n) as u64;
    let mut page = vec![0u8; PAGE];
    let mut seen = BTreeSet::new();
    let mut blocks = Vec::new();
    let mut pa = head;
    while pa != 0 {
        if blocks.len() == MAX_BLOCKS {
            return (Vec::new(), Err(ChainError::TooLong));
        }
        if pa % PAGE as u64 != 0 {
            return (Vec::new(), Err(ChainError::Unaligned(pa)));
        }
        if !seen.insert(pa) {
            return (Vec::new(), Err(ChainError::Cycle(pa)));
        }
        if !layout.read(pa, &mut page) {
            return (Vec::new(), Err(ChainError::NotPreserved(pa)));
        }
        let header = BlockHeader::decode(page[..BLOCK_HEADER_SIZE].try_into().unwrap());
        if header.count == 0 || header.count > per_block {
            let count = header.count;
            return (Vec::new(), Err(ChainError::BadCount { pa, count }));
        }
        blocks.push((pa, header.count));
        pa = header.next;
    }
    let mut entries = Vec::new();
    let mut found = 0;
    for (pa, count) in blocks {
        layout.read(pa, &mut page);
        for index in 0..count as usize {
            if found + 1 == fail_at {
                return (entries, Err(ChainError::Consumer));
            }
            let start = entry_offset(index, n);
            entries.extend_from_slice(&page[start..start + n]);
            found += 1;
        }
    }
    (entries, Ok(found))
}

fn walk<const N: usize>(
    layout: Layout<'_>,
    head: u64,
    expected: Option<u64>,
    fail_at: u64,
) -> (Walk, usize) {
    let mut source = FuzzSource::new(layout, Rc::new(Cell::new(0)));
    let mut entries = Vec::new();
    let mut visited = 0;
    let visit = |source: &mut FuzzSource<'_>, entry: &[u8; N]| {
        // Entries are copied out of the block: the source is free to use here.
        assert!(source.block_size() == PAGE);
        if visited + 1 == fail_at {
            return Err(ChainError::Consumer);
        }
        visited += 1;
        entries.extend_from_slice(entry);
        Ok(())
    };
    let result = match expected {
        None => read_chain::<_, N>(&mut source, head, visit),
        Some(expected) => read_chain_exact::<_, N>(&mut source, head, expected, |_, _| {}, visit)
            .map(|()| expected),
    };
    let claimed = source.claimed_blocks();
    ((entries, result), claimed)
}

/// Fuzz target `chain`: one chain read alone, against a plain reference walk.
///
/// Header: `head:u64 expected:u64 mode:u8 fail_at:u16`, then page records. Bit 0 of
/// `mode` picks the entry size (file entries or session entries), bit 1 checks the
/// total against `expected` (`read_chain_exact`); the visitor fails at its
/// `fail_at`-th entry (1-based, 0: never). Returns what the reader returned.
pub fn check_chain(data: &[u8]) -> Result<u64, ChainError> {
    let mut r = Reader::new(data);
    let head = r.u64();
    let expected = r.u64();
    let mode = r.u8();
    let fail_at = u64::from(r.u16());
    let records = r.rest();
    let n = if mode & 1 == 0 {
        FILE_ENTRY_SIZE
    } else {
        SESSION_ENTRY_SIZE
    };
    let exact = mode & 2 != 0;
    let layout = Layout::decode(records);

    let per_block = entries_per_block(PAGE, n) as u64;
    let want =
        if exact && (expected > per_block * MAX_BLOCKS as u64 || (head == 0) != (expected == 0)) {
            (
                Vec::new(),
                Err(ChainError::CountMismatch { expected, found: 0 }),
            )
        } else {
            // The total is checked once the chain is, before any entry is visited.
            match reference_chain(&layout, head, n, 0).1 {
                Ok(found) if exact && found != expected => (
                    Vec::new(),
                    Err(ChainError::CountMismatch { expected, found }),
                ),
                _ => reference_chain(&layout, head, n, fail_at),
            }
        };

    let exact = exact.then_some(expected);
    let (got, claimed) = if n == FILE_ENTRY_SIZE {
        walk::<FILE_ENTRY_SIZE>(layout, head, exact, fail_at)
    } else {
        walk::<SESSION_ENTRY_SIZE>(layout, head, exact, fail_at)
    };
    assert!(
        claimed <= MAX_BLOCKS,
        "{claimed} blocks claimed for one chain"
    );
    assert_eq!(
        got.1, want.1,
        "read_chain disagrees with the reference walk"
    );
    assert!(got.0 == want.0, "read_chain handed out other entries");
    got.1
}

/// Builds fuzz inputs, for the seed corpus and for tests.
pub struct InputBuilder {
    out: Vec<u8>,
    pages: BTreeMap<u64, Vec<u8>>,
    runs: Vec<(u64, u16, Vec<u8>)>,
}

impl InputBuilder {
    /// An input for [`check_restore`].
    pub fn restore(root_pa: u64, root_size: u16, oom: u8) -> Self {
        let mut out = Vec::new();
        out.extend_from_slice(&root_pa.to_le_bytes());
        out.extend_from_slice(&root_size.to_le_bytes());
        out.push(oom);
        Self::with_header(out)
    }

    /// An input for [`check_chain`].
    pub fn chain(head: u64, expected: u64, mode: u8, fail_at: u16) -> Self {
        let mut out = Vec::new();
        out.extend_from_slice(&head.to_le_bytes());
        out.extend_from_slice(&expected.to_le_bytes());
        out.push(mode);
        out.extend_from_slice(&fail_at.to_le_bytes());
        Self::with_header(out)
    }

    fn with_header(out: Vec<u8>) -> Self {
        Self {
            out,
            pages: BTreeMap::new(),
            runs: Vec::new(),
        }
    }

    /// The page at `pa`, zero-filled when new.
    pub fn page(&mut self, pa: u64) -> &mut Vec<u8> {
        self.pages.entry(pa).or_insert_with(|| vec![0u8; PAGE])
    }

    /// A run of `count` linked pages from `pa` (see the crate documentation).
    pub fn run(&mut self, pa: u64, count: u16, template: &[u8]) {
        self.runs.push((pa, count, template.to_vec()));
    }

    /// Writes a dense chain of `entries` into the blocks at `pas`.
    pub fn chain_at<const N: usize>(&mut self, pas: &[u64], entries: &[[u8; N]]) {
        let per_block = entries_per_block(PAGE, N);
        for (i, chunk) in entries.chunks(per_block).enumerate() {
            let next = pas.get(i + 1).copied().unwrap_or(0);
            let block = self.page(pas[i]);
            luo_abi::chain::write_header(
                block,
                BlockHeader {
                    next,
                    count: chunk.len() as u64,
                },
            );
            for (j, e) in chunk.iter().enumerate() {
                *luo_abi::chain::entry_slot::<N>(block, j).unwrap() = *e;
            }
        }
    }

    /// The input bytes; trailing zeros of every page are left out.
    pub fn finish(self) -> Vec<u8> {
        let mut out = self.out;
        for (pa, bytes) in self.pages {
            let len = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
            out.push(0);
            out.extend_from_slice(&pa.to_le_bytes());
            out.extend_from_slice(&(len as u16).to_le_bytes());
            out.extend_from_slice(&bytes[..len]);
        }
        for (pa, count, template) in self.runs {
            let len = template.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
            out.push(1);
            out.extend_from_slice(&pa.to_le_bytes());
            out.extend_from_slice(&count.to_le_bytes());
            out.extend_from_slice(&(len as u16).to_le_bytes());
            out.extend_from_slice(&template[..len]);
        }
        out
    }
}
