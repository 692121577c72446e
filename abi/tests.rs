// SPDX-License-Identifier: GPL-2.0

//! Host unit tests of the serialized format and the chain reader.

use std::collections::BTreeMap;
use std::format;
use std::vec::Vec;

use crate::chain::*;
use crate::format::*;
use crate::restore::*;

const PAGE: usize = 4096;

/// Simulated memory of the previous kernel: preserved pages by physical address.
#[derive(Default)]
struct FakeMemory {
    pages: BTreeMap<u64, Vec<u8>>,
    claimed: Vec<u64>,
}

impl FakeMemory {
    fn page(&mut self, pa: u64) -> &mut Vec<u8> {
        self.pages.entry(pa).or_insert_with(|| std::vec![0u8; PAGE])
    }

    /// Writes a dense chain of `entries` at the given block addresses.
    fn write_chain<const N: usize>(&mut self, pas: &[u64], entries: &[[u8; N]]) {
        let per_block = entries_per_block(PAGE, N);
        for (i, chunk) in entries.chunks(per_block).enumerate() {
            let next = pas.get(i + 1).copied().unwrap_or(0);
            let block = self.page(pas[i]);
            write_header(
                block,
                BlockHeader {
                    next,
                    count: chunk.len() as u64,
                },
            );
            for (j, e) in chunk.iter().enumerate() {
                *entry_slot::<N>(block, j).unwrap() = *e;
            }
        }
    }
}

impl BlockSource for FakeMemory {
    fn block_size(&self) -> usize {
        PAGE
    }

    fn claim(&mut self, pa: u64) -> Result<&[u8], ClaimError> {
        if self.claimed.contains(&pa) {
            return Err(ClaimError::AlreadyClaimed);
        }
        if !self.pages.contains_key(&pa) {
            return Err(ClaimError::NotPreserved);
        }
        self.claimed.push(pa);
        Ok(&self.pages[&pa])
    }

    fn claimed(&self, pa: u64) -> Option<&[u8]> {
        if self.claimed.contains(&pa) {
            self.pages.get(&pa).map(|p| p.as_slice())
        } else {
            None
        }
    }
}

fn file_entry(i: u64) -> [u8; FILE_ENTRY_SIZE] {
    let mut out = [0u8; FILE_ENTRY_SIZE];
    FileEntry {
        compatible: handler_compat(b"memfd-v2").unwrap(),
        data: i * 3,
        token: i,
    }
    .encode(&mut out);
    out
}

fn read_files(mem: &mut FakeMemory, head: u64) -> Result<Vec<FileEntry>, ChainError> {
    let mut out = Vec::new();
    read_chain::<_, FILE_ENTRY_SIZE>(mem, head, |_, e| {
        out.push(FileEntry::decode(e)?);
        Ok(())
    })?;
    Ok(out)
}

#[test]
fn layout_sizes_match_upstream() {
    assert_eq!(entries_per_block(PAGE, SESSION_ENTRY_SIZE), 51);
    assert_eq!(entries_per_block(PAGE, FILE_ENTRY_SIZE), 63);
    assert_eq!(entries_per_block(65536, SESSION_ENTRY_SIZE), 819);
    assert_eq!(blocks_for(0, 51), 0);
    assert_eq!(blocks_for(51, 51), 1);
    assert_eq!(blocks_for(52, 51), 2);
}

#[test]
fn root_round_trip_and_compat_check() {
    let root = Root {
        liveupdate_num: 7,
        sessions_pa: 0x1000,
        flbs_pa: 0x2000,
    };
    let mut bytes = [0u8; ROOT_SIZE];
    root.encode(&mut bytes);
    assert_eq!(&bytes[..8], b"luo-v5\0\0");
    assert_eq!(Root::decode(&bytes), Ok(root));
    bytes[5] = b'4';
    assert_eq!(Root::decode(&bytes), Err(FormatError::IncompatibleRoot));
    bytes[5] = b'5';
    bytes[7] = 1;
    assert_eq!(Root::decode(&bytes), Err(FormatError::IncompatibleRoot));
}

#[test]
fn session_names_are_validated() {
    let mut raw = [b'a'; SESSION_NAME_LEN];
    assert_eq!(
        SessionName::from_field(&raw),
        Err(FormatError::Unterminated)
    );
    raw[63] = 0;
    assert_eq!(SessionName::from_field(&raw).unwrap().as_bytes().len(), 63);
    raw[0] = 0;
    assert_eq!(SessionName::from_field(&raw), Err(FormatError::EmptyName));
    // Stale bytes after the NUL do not take part in the name.
    let mut raw = [0xffu8; SESSION_NAME_LEN];
    raw[..4].copy_from_slice(b"vm0\0");
    let name = SessionName::from_field(&raw).unwrap();
    assert_eq!(name.as_bytes(), b"vm0");
    assert!(name.as_field()[3..].iter().all(|&b| b == 0));
}

#[test]
fn multi_block_chain_round_trips() {
    let mut mem = FakeMemory::default();
    let entries: Vec<_> = (0..150).map(file_entry).collect();
    mem.write_chain(&[0x5000, 0x3000, 0x9000], &entries);
    let files = read_files(&mut mem, 0x5000).unwrap();
    assert_eq!(files.len(), 150);
    assert!(files
        .iter()
        .enumerate()
        .all(|(i, f)| f.token == i as u64 && f.data == 3 * i as u64));
    assert_eq!(files[0].compatible_str(), b"memfd-v2");
}

#[test]
fn empty_chain_is_empty() {
    let mut mem = FakeMemory::default();
    assert_eq!(read_files(&mut mem, 0).unwrap().len(), 0);
    assert!(
        read_chain_exact::<_, FILE_ENTRY_SIZE>(&mut mem, 0, 1, |_, _| {}, |_, _| Ok(())).is_err()
    );
    assert!(
        read_chain_exact::<_, FILE_ENTRY_SIZE>(&mut mem, 0, 0, |_, _| {}, |_, _| Ok(())).is_ok()
    );
}

#[test]
fn cycle_is_refused() {
    let mut mem = FakeMemory::default();
    let entries: Vec<_> = (0..126).map(file_entry).collect();
    mem.write_chain(&[0x1000, 0x2000], &entries);
    write_header(
        mem.page(0x2000),
        BlockHeader {
            next: 0x1000,
            count: 63,
        },
    );
    assert_eq!(read_files(&mut mem, 0x1000), Err(ChainError::Cycle(0x1000)));
}

#[test]
fn bad_addresses_and_counts_are_refused() {
    let mut mem = FakeMemory::default();
    assert_eq!(
        read_files(&mut mem, 0x1234),
        Err(ChainError::Unaligned(0x1234))
    );
    assert_eq!(
        read_files(&mut mem, 0x7000),
        Err(ChainError::NotPreserved(0x7000))
    );
    write_header(mem.page(0x1000), BlockHeader { next: 0, count: 0 });
    assert_eq!(
        read_files(&mut mem, 0x1000),
        Err(ChainError::BadCount {
            pa: 0x1000,
            count: 0
        })
    );
    let mut mem = FakeMemory::default();
    write_header(mem.page(0x1000), BlockHeader { next: 0, count: 64 });
    assert_eq!(
        read_files(&mut mem, 0x1000),
        Err(ChainError::BadCount {
            pa: 0x1000,
            count: 64
        })
    );
}

#[test]
fn overlong_chain_is_refused() {
    let mut mem = FakeMemory::default();
    let n = MAX_BLOCKS as u64 + 1;
    for i in 1..=n {
        let next = if i == n { 0 } else { (i + 1) * PAGE as u64 };
        let block = mem.page(i * PAGE as u64);
        write_header(block, BlockHeader { next, count: 1 });
        *entry_slot::<FILE_ENTRY_SIZE>(block, 0).unwrap() = file_entry(i);
    }
    assert_eq!(read_files(&mut mem, PAGE as u64), Err(ChainError::TooLong));
}

#[test]
fn count_mismatch_is_refused() {
    let mut mem = FakeMemory::default();
    let entries: Vec<_> = (0..10).map(file_entry).collect();
    mem.write_chain(&[0x1000], &entries);
    assert_eq!(
        read_chain_exact::<_, FILE_ENTRY_SIZE>(&mut mem, 0x1000, 11, |_, _| {}, |_, _| Ok(())),
        Err(ChainError::CountMismatch {
            expected: 11,
            found: 10
        })
    );
}

#[test]
fn unterminated_compatible_is_refused() {
    let mut e = file_entry(1);
    e[..HANDLER_COMPAT_LEN].fill(b'x');
    assert_eq!(FileEntry::decode(&e), Err(FormatError::Unterminated));
    assert!(handler_compat(&[b'x'; 48]).is_none());
    assert!(handler_compat(&[b'x'; 47]).is_some());
}

#[test]
fn flb_header_is_bounded() {
    let mut b = [0u8; FLB_HEADER_SIZE];
    FlbHeader {
        pgcnt: 1,
        count: 63,
    }
    .encode(&mut b);
    assert!(FlbHeader::decode(&b, PAGE).is_ok());
    FlbHeader {
        pgcnt: 1,
        count: 64,
    }
    .encode(&mut b);
    assert!(FlbHeader::decode(&b, PAGE).is_err());
    FlbHeader { pgcnt: 2, count: 0 }.encode(&mut b);
    assert!(FlbHeader::decode(&b, PAGE).is_err());
}

/// A sink that keeps sessions as (name, tokens) and every rejection.
#[derive(Default)]
struct Collect {
    sessions: Vec<(Vec<u8>, Vec<u64>)>,
    current: Option<(Vec<u8>, Vec<u64>)>,
    rejected: Vec<Rejection>,
    flbs: Vec<(FlbCompat, u64, u64)>,
    /// What `sessions_expected` said, and how many sessions had begun by then.
    expected: Option<(u64, usize)>,
}

impl RestoreSink for Collect {
    fn sessions_expected(&mut self, count: u64) {
        assert!(self.expected.is_none(), "sessions_expected called twice");
        self.expected = Some((count, self.sessions.len()));
    }

    fn begin_session(&mut self, entry: &SessionEntry) -> Result<bool, OutOfMemory> {
        let name = entry.name.as_bytes().to_vec();
        if self.sessions.iter().any(|(n, _)| *n == name) {
            return Ok(false);
        }
        self.current = Some((name, Vec::new()));
        Ok(true)
    }

    fn file(&mut self, entry: &FileEntry) -> Result<(), OutOfMemory> {
        self.current.as_mut().unwrap().1.push(entry.token);
        Ok(())
    }

    fn end_session(&mut self, valid: bool) -> Result<(), OutOfMemory> {
        let session = self.current.take().unwrap();
        if valid {
            self.sessions.push(session);
        }
        Ok(())
    }

    fn flb(&mut self, entry: &FlbEntry) -> Result<(), OutOfMemory> {
        self.flbs.push((entry.name, entry.data, entry.count));
        Ok(())
    }

    fn rejected(&mut self, what: Rejection) {
        self.rejected.push(what);
    }
}

fn session_entry(name: &[u8], files_pa: u64, files_count: u64) -> [u8; SESSION_ENTRY_SIZE] {
    let mut field = [0u8; SESSION_NAME_LEN];
    field[..name.len()].copy_from_slice(name);
    let mut out = [0u8; SESSION_ENTRY_SIZE];
    SessionEntry {
        name: SessionName::from_field(&field).unwrap(),
        files_pa,
        files_count,
    }
    .encode(&mut out);
    out
}

fn write_root(mem: &mut FakeMemory, pa: u64, sessions_pa: u64, flbs_pa: u64) {
    let mut bytes = [0u8; ROOT_SIZE];
    Root {
        liveupdate_num: 3,
        sessions_pa,
        flbs_pa,
    }
    .encode(&mut bytes);
    mem.page(pa)[..ROOT_SIZE].copy_from_slice(&bytes);
}

/// An FLB page with no entry at `pa`.
fn write_empty_flb_page(mem: &mut FakeMemory, pa: u64) {
    let mut flb = [0u8; FLB_HEADER_SIZE];
    FlbHeader { pgcnt: 1, count: 0 }.encode(&mut flb);
    mem.page(pa)[..FLB_HEADER_SIZE].copy_from_slice(&flb);
}

#[test]
fn restore_reads_sessions_and_files() {
    let mut mem = FakeMemory::default();
    let files: Vec<_> = (0..70).map(file_entry).collect();
    mem.write_chain(&[0x10000, 0x11000], &files);
    let sessions = [
        session_entry(b"a", 0x10000, 70),
        session_entry(b"empty", 0, 0),
    ];
    mem.write_chain(&[0x20000], &sessions);
    write_empty_flb_page(&mut mem, 0x30000);
    write_root(&mut mem, 0x1000, 0x20000, 0x30000);

    let mut sink = Collect::default();
    let found = restore(&mut mem, 0x1000, ROOT_SIZE, &mut sink).unwrap();
    assert_eq!(found.root.liveupdate_num, 3);
    assert_eq!(found.sessions_seen, 2);
    assert!(sink.rejected.is_empty());
    assert_eq!(sink.sessions.len(), 2);
    assert_eq!(sink.sessions[0].1, (0..70).collect::<Vec<u64>>());
    assert_eq!(sink.sessions[1], (b"empty".to_vec(), Vec::new()));
    assert_eq!(sink.expected, Some((2, 0)));
}

#[test]
fn restore_in_steps_reads_each_part_when_asked() {
    let mut mem = FakeMemory::default();
    let files: Vec<_> = (0..3).map(file_entry).collect();
    mem.write_chain(&[0x10000], &files);
    mem.write_chain(&[0x20000], &[session_entry(b"a", 0x10000, 3)]);
    write_empty_flb_page(&mut mem, 0x30000);
    write_root(&mut mem, 0x1000, 0x20000, 0x30000);

    let mut sink = Collect::default();
    let root = restore_root(&mut mem, 0x1000, ROOT_SIZE, &mut sink).unwrap();
    assert_eq!(root.sessions_pa, 0x20000);
    assert_eq!(mem.claimed, [0x1000]);
    assert!(sink.sessions.is_empty());

    let mut flbs = 0;
    let found = restore_flb_page(&mut mem, root.flbs_pa, |_| {
        flbs += 1;
        Ok(())
    });
    assert_eq!((found, flbs), (Ok(Some(0)), 0));
    assert_eq!(mem.claimed, [0x1000, 0x30000]);
    assert!(sink.sessions.is_empty());

    let (seen, result) = restore_sessions(&mut mem, root.sessions_pa, &mut sink);
    assert_eq!((seen, result), (1, Ok(())));
    assert_eq!(
        sink.sessions,
        [(b"a".to_vec(), (0..3).collect::<Vec<u64>>())]
    );
    assert_eq!(mem.claimed, [0x1000, 0x30000, 0x20000, 0x10000]);

    // A second read of the same chain finds its blocks taken: rejected as a whole.
    let mut again = Collect::default();
    let (_, result) = restore_sessions(&mut mem, 0x20000, &mut again);
    assert_eq!(result, Err(RestoreError::Rejected));
    assert!(again.sessions.is_empty());
}

#[test]
fn sessions_expected_counts_every_entry_of_a_multi_block_chain() {
    let mut mem = FakeMemory::default();
    let names: Vec<Vec<u8>> = (0..120).map(|i| format!("s{i}").into_bytes()).collect();
    let mut sessions: Vec<_> = names.iter().map(|n| session_entry(n, 0, 0)).collect();
    // A bad entry is counted too: the count is of entries, not of valid sessions.
    sessions[7] = [0xffu8; SESSION_ENTRY_SIZE];
    mem.write_chain(&[0x20000, 0x21000, 0x22000], &sessions);
    write_root(&mut mem, 0x1000, 0x20000, 0);

    let mut sink = Collect::default();
    let found = restore(&mut mem, 0x1000, ROOT_SIZE, &mut sink).unwrap();
    assert_eq!(found.sessions_seen, 120);
    assert_eq!(sink.sessions.len(), 119);
    assert_eq!(sink.expected, Some((120, 0)));

    // No session chain: nothing to expect.
    let mut mem = FakeMemory::default();
    write_root(&mut mem, 0x1000, 0, 0);
    let mut sink = Collect::default();
    restore(&mut mem, 0x1000, ROOT_SIZE, &mut sink).unwrap();
    assert_eq!(sink.expected, None);
}

#[test]
fn restore_drops_only_the_bad_session() {
    let mut mem = FakeMemory::default();
    let files: Vec<_> = (0..3).map(file_entry).collect();
    mem.write_chain(&[0x10000], &files);
    let sessions = [
        session_entry(b"bad-count", 0x10000, 4),
        session_entry(b"dup", 0, 0),
        session_entry(b"dup", 0, 0),
        session_entry(b"unaligned", 0x10008, 1),
        session_entry(b"good", 0, 0),
    ];
    mem.write_chain(&[0x20000], &sessions);
    write_root(&mut mem, 0x1000, 0x20000, 0);

    let mut sink = Collect::default();
    restore(&mut mem, 0x1000, ROOT_SIZE, &mut sink).unwrap();
    let names: Vec<_> = sink.sessions.iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(names, [b"dup".to_vec(), b"good".to_vec()]);
    assert_eq!(sink.rejected.len(), 3);
    assert!(matches!(
        sink.rejected[0],
        Rejection::FileChain {
            error: ChainError::CountMismatch {
                expected: 4,
                found: 3
            },
            ..
        }
    ));
    assert!(matches!(sink.rejected[1], Rejection::DuplicateSession(_)));
    assert!(matches!(
        sink.rejected[2],
        Rejection::FileChain {
            error: ChainError::Unaligned(0x10008),
            ..
        }
    ));
}

#[test]
fn restore_rejects_bad_roots_and_chains() {
    let mut mem = FakeMemory::default();
    let mut sink = Collect::default();
    assert_eq!(
        restore(&mut mem, 0x1000, 8, &mut sink),
        Err(RestoreError::Rejected)
    );
    assert_eq!(
        restore(&mut mem, 0x1000, ROOT_SIZE, &mut sink),
        Err(RestoreError::Rejected)
    );
    mem.page(0x1000)[..8].copy_from_slice(b"luo-v4\0\0");
    assert_eq!(
        restore(&mut mem, 0x1000, ROOT_SIZE, &mut sink),
        Err(RestoreError::Rejected)
    );
    assert_eq!(
        sink.rejected,
        [
            Rejection::RootTooSmall(8),
            Rejection::RootNotPreserved(0x1000),
            Rejection::RootIncompatible
        ]
    );

    // A session chain that loops back on itself rejects every session.
    let mut mem = FakeMemory::default();
    let sessions: Vec<_> = (0..52)
        .map(|i| session_entry(format!("s{i}").as_bytes(), 0, 0))
        .collect();
    mem.write_chain(&[0x20000, 0x21000], &sessions);
    write_header(
        mem.page(0x21000),
        BlockHeader {
            next: 0x20000,
            count: 1,
        },
    );
    write_root(&mut mem, 0x1000, 0x20000, 0);
    let mut sink = Collect::default();
    assert_eq!(
        restore(&mut mem, 0x1000, ROOT_SIZE, &mut sink),
        Err(RestoreError::Rejected)
    );
    assert_eq!(
        sink.rejected.last(),
        Some(&Rejection::SessionChain(ChainError::Cycle(0x20000)))
    );
}

#[test]
fn restore_refuses_a_file_chain_shared_with_the_session_chain() {
    let mut mem = FakeMemory::default();
    let sessions = [
        session_entry(b"evil", 0x20000, 1),
        session_entry(b"ok", 0, 0),
    ];
    mem.write_chain(&[0x20000], &sessions);
    write_root(&mut mem, 0x1000, 0x20000, 0);
    let mut sink = Collect::default();
    restore(&mut mem, 0x1000, ROOT_SIZE, &mut sink).unwrap();
    assert_eq!(sink.sessions.len(), 1);
    assert!(matches!(
        sink.rejected[0],
        Rejection::FileChain {
            error: ChainError::Cycle(0x20000),
            ..
        }
    ));
}

#[test]
fn restore_reads_flb_entries() {
    let mut mem = FakeMemory::default();
    let mut flb = [0u8; FLB_HEADER_SIZE];
    FlbHeader { pgcnt: 1, count: 2 }.encode(&mut flb);
    let page = mem.page(0x30000);
    page[..FLB_HEADER_SIZE].copy_from_slice(&flb);
    for (i, name) in [&b"test-flb-0"[..], b"test-flb-1"].iter().enumerate() {
        let mut field = [0u8; FLB_COMPAT_LEN];
        field[..name.len()].copy_from_slice(name);
        let mut bytes = [0u8; FLB_ENTRY_SIZE];
        FlbEntry {
            name: field,
            data: 100 + i as u64,
            count: 3,
        }
        .encode(&mut bytes);
        page[FlbEntry::offset(i)..FlbEntry::offset(i) + FLB_ENTRY_SIZE].copy_from_slice(&bytes);
    }
    write_root(&mut mem, 0x1000, 0, 0x30000);
    let mut sink = Collect::default();
    let found = restore(&mut mem, 0x1000, ROOT_SIZE, &mut sink).unwrap();
    assert_eq!(found.flb_count, 2);
    assert_eq!(sink.flbs.len(), 2);
    assert_eq!(sink.flbs[1].1, 101);
    assert_eq!(c_str_bytes(&sink.flbs[0].0), b"test-flb-0");

    // An unterminated name makes the whole page be ignored, sessions still restored.
    mem.page(0x30000)[FlbEntry::offset(1)..FlbEntry::offset(1) + FLB_COMPAT_LEN].fill(b'x');
    mem.claimed.clear();
    let mut sink = Collect::default();
    let found = restore(&mut mem, 0x1000, ROOT_SIZE, &mut sink).unwrap();
    assert_eq!(found.flb_count, 0);
    assert!(sink.flbs.is_empty());
    assert_eq!(sink.rejected, [Rejection::FlbPage(0x30000)]);
}

#[test]
fn refused_chain_visits_nothing() {
    let mut mem = FakeMemory::default();
    let entries: Vec<_> = (0..100).map(file_entry).collect();
    mem.write_chain(&[0x1000, 0x2000], &entries);
    write_header(mem.page(0x2000), BlockHeader { next: 0, count: 64 });
    let mut visited = 0;
    let result = read_chain::<_, FILE_ENTRY_SIZE>(&mut mem, 0x1000, |_, _| {
        visited += 1;
        Ok(())
    });
    assert_eq!(
        result,
        Err(ChainError::BadCount {
            pa: 0x2000,
            count: 64
        })
    );
    assert_eq!(visited, 0);
}

// Edge cases from the fuzzing campaign (abi/fuzz): each pins a contract that the
// fuzz harness checks on every input.

/// A [`Collect`] that runs out of memory at its `fail_at`-th call (1-based) and
/// records every call made after that.
struct Oom {
    inner: Collect,
    calls: u32,
    fail_at: u32,
    after: Vec<&'static str>,
}

impl Oom {
    fn new(fail_at: u32) -> Self {
        Self {
            inner: Collect::default(),
            calls: 0,
            fail_at,
            after: Vec::new(),
        }
    }

    fn call(&mut self, what: &'static str) -> Result<(), OutOfMemory> {
        self.calls += 1;
        if self.calls > self.fail_at {
            self.after.push(what);
        }
        if self.calls == self.fail_at {
            Err(OutOfMemory)
        } else {
            Ok(())
        }
    }
}

impl RestoreSink for Oom {
    fn begin_session(&mut self, entry: &SessionEntry) -> Result<bool, OutOfMemory> {
        self.call("begin_session")?;
        self.inner.begin_session(entry)
    }

    fn file(&mut self, entry: &FileEntry) -> Result<(), OutOfMemory> {
        self.call("file")?;
        self.inner.file(entry)
    }

    fn end_session(&mut self, valid: bool) -> Result<(), OutOfMemory> {
        self.call("end_session")?;
        self.inner.end_session(valid)
    }

    fn flb(&mut self, entry: &FlbEntry) -> Result<(), OutOfMemory> {
        self.call("flb")?;
        self.inner.flb(entry)
    }

    fn rejected(&mut self, what: Rejection) {
        self.after.push("rejected");
        self.inner.rejected(what);
    }
}

/// A root at 0x1000, one FLB entry at 0x30000, sessions "a" (70 files over two
/// blocks) and "b" (no files) in the block at 0x20000.
fn small_state() -> FakeMemory {
    let mut mem = FakeMemory::default();
    let files: Vec<_> = (0..70).map(file_entry).collect();
    mem.write_chain(&[0x10000, 0x11000], &files);
    let sessions = [session_entry(b"a", 0x10000, 70), session_entry(b"b", 0, 0)];
    mem.write_chain(&[0x20000], &sessions);
    let mut flb = [0u8; FLB_HEADER_SIZE];
    FlbHeader { pgcnt: 1, count: 1 }.encode(&mut flb);
    let mut entry = [0u8; FLB_ENTRY_SIZE];
    let mut name = [0u8; FLB_COMPAT_LEN];
    name[..5].copy_from_slice(b"flb-0");
    FlbEntry {
        name,
        data: 1,
        count: 1,
    }
    .encode(&mut entry);
    let page = mem.page(0x30000);
    page[..FLB_HEADER_SIZE].copy_from_slice(&flb);
    page[FlbEntry::offset(0)..FlbEntry::offset(0) + FLB_ENTRY_SIZE].copy_from_slice(&entry);
    write_root(&mut mem, 0x1000, 0x20000, 0x30000);
    mem
}

#[test]
fn out_of_memory_stops_restore_at_once() {
    // flb, begin a, 70 files, end a, begin b, end b.
    let calls = 1 + 1 + 70 + 1 + 2;
    let mut sink = Oom::new(u32::MAX);
    restore(&mut small_state(), 0x1000, ROOT_SIZE, &mut sink).unwrap();
    assert_eq!(sink.calls, calls);
    for fail_at in 1..=calls {
        let mut sink = Oom::new(fail_at);
        let result = restore(&mut small_state(), 0x1000, ROOT_SIZE, &mut sink);
        assert_eq!(result, Err(RestoreError::OutOfMemory), "fail_at {fail_at}");
        // Only the open session may still be closed (as invalid); nothing else, and
        // no rejection, reaches the sink.
        match fail_at {
            3..=72 => assert_eq!(sink.after, ["end_session"], "fail_at {fail_at}"),
            _ => assert!(sink.after.is_empty(), "fail_at {fail_at}: {:?}", sink.after),
        }
        assert!(sink.inner.rejected.is_empty());
        // "a" was kept only if its end_session (call 73) succeeded.
        let kept_a = sink.inner.sessions.iter().any(|(name, _)| name == b"a");
        assert_eq!(kept_a, fail_at > 73, "fail_at {fail_at}");
    }
}

#[test]
fn chain_of_exactly_max_blocks_is_read() {
    let mut mem = FakeMemory::default();
    let n = MAX_BLOCKS as u64;
    for i in 1..=n {
        let next = if i == n { 0 } else { (i + 1) * PAGE as u64 };
        let block = mem.page(i * PAGE as u64);
        write_header(block, BlockHeader { next, count: 1 });
        *entry_slot::<FILE_ENTRY_SIZE>(block, 0).unwrap() = file_entry(i);
    }
    let mut tokens = Vec::new();
    read_chain_exact::<_, FILE_ENTRY_SIZE>(
        &mut mem,
        PAGE as u64,
        n,
        |_, _| {},
        |_, e| {
            tokens.push(FileEntry::decode(e)?.token);
            Ok(())
        },
    )
    .unwrap();
    assert_eq!(tokens, (1..=n).collect::<Vec<_>>());
}

#[test]
fn unaligned_root_and_flb_are_refused_unclaimed() {
    let mut mem = small_state();
    let mut sink = Collect::default();
    assert_eq!(
        restore(&mut mem, 0x1008, ROOT_SIZE, &mut sink),
        Err(RestoreError::Rejected)
    );
    assert_eq!(sink.rejected, [Rejection::RootNotPreserved(0x1008)]);
    assert!(mem.claimed.is_empty());

    let mut mem = small_state();
    write_root(&mut mem, 0x1000, 0x20000, 0x30008);
    let mut sink = Collect::default();
    restore(&mut mem, 0x1000, ROOT_SIZE, &mut sink).unwrap();
    assert_eq!(sink.rejected, [Rejection::FlbPage(0x30008)]);
    assert!(sink.flbs.is_empty());
    assert_eq!(sink.sessions.len(), 2);
    assert!(!mem.claimed.contains(&0x30000));
}

#[test]
fn links_into_the_root_or_flb_page_are_cycles() {
    // A session chain that starts at the root page rejects every session.
    let mut mem = small_state();
    write_root(&mut mem, 0x1000, 0x1000, 0x30000);
    let mut sink = Collect::default();
    assert_eq!(
        restore(&mut mem, 0x1000, ROOT_SIZE, &mut sink),
        Err(RestoreError::Rejected)
    );
    assert_eq!(
        sink.rejected.last(),
        Some(&Rejection::SessionChain(ChainError::Cycle(0x1000)))
    );

    // A file chain into the FLB page or the root drops its session alone.
    let mut mem = small_state();
    let sessions = [
        session_entry(b"into-flb", 0x30000, 1),
        session_entry(b"into-root", 0x1000, 1),
        session_entry(b"b", 0, 0),
    ];
    mem.write_chain(&[0x20000], &sessions);
    let mut sink = Collect::default();
    restore(&mut mem, 0x1000, ROOT_SIZE, &mut sink).unwrap();
    assert_eq!(sink.sessions, [(b"b".to_vec(), Vec::new())]);
    assert!(matches!(
        sink.rejected[..],
        [
            Rejection::FileChain {
                error: ChainError::Cycle(0x30000),
                ..
            },
            Rejection::FileChain {
                error: ChainError::Cycle(0x1000),
                ..
            }
        ]
    ));
}

#[test]
fn impossible_file_counts_are_refused_before_claiming() {
    for (files_pa, files_count) in [(0x10000, u64::MAX), (0x10000, 0), (0, 1)] {
        let mut mem = small_state();
        let sessions = [session_entry(b"a", files_pa, files_count)];
        mem.write_chain(&[0x20000], &sessions);
        let mut sink = Collect::default();
        restore(&mut mem, 0x1000, ROOT_SIZE, &mut sink).unwrap();
        assert!(sink.sessions.is_empty());
        assert!(matches!(
            sink.rejected[..],
            [Rejection::FileChain {
                error: ChainError::CountMismatch { found: 0, .. },
                ..
            }]
        ));
        assert!(!mem.claimed.contains(&0x10000));
    }
}

#[test]
fn more_files_than_recorded_drop_the_session() {
    let mut mem = small_state();
    let sessions = [session_entry(b"a", 0x10000, 69), session_entry(b"b", 0, 0)];
    mem.write_chain(&[0x20000], &sessions);
    let mut sink = Collect::default();
    restore(&mut mem, 0x1000, ROOT_SIZE, &mut sink).unwrap();
    assert_eq!(sink.sessions, [(b"b".to_vec(), Vec::new())]);
    assert!(matches!(
        sink.rejected[..],
        [Rejection::FileChain {
            error: ChainError::CountMismatch {
                expected: 69,
                found: 70
            },
            ..
        }]
    ));
}

#[test]
fn cut_c_str_matches_a_byte_by_byte_cut() {
    // Every length, with stale non-zero bytes after the NUL, and no NUL at all.
    for len in 0..=64usize {
        let mut field = [0u8; 64];
        for (i, b) in field.iter_mut().enumerate() {
            *b = if i < len { 0x80 | (i as u8 + 1) } else { 0xa5 };
        }
        if len < 64 {
            field[len] = 0;
        }
        let mut cut = field;
        let found = cut_c_str(&mut cut);
        if len == 64 {
            assert_eq!(found, None);
            continue;
        }
        assert_eq!(found, Some(len), "length {len}");
        assert_eq!(&cut[..len], &field[..len]);
        assert!(cut[len..].iter().all(|&b| b == 0), "tail of {len}");
    }
    // 0x01 bytes before the NUL must not be taken for it.
    let mut field = [1u8; 48];
    field[20] = 0;
    assert_eq!(cut_c_str(&mut field), Some(20));
    assert!(field[..20].iter().all(|&b| b == 1));
}

#[test]
fn encode_over_zero_writes_what_a_whole_encode_writes() {
    for len in 1..SESSION_NAME_LEN {
        let text: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
        let name = SessionName::from_field(&{
            let mut raw = [0u8; SESSION_NAME_LEN];
            raw[..len].copy_from_slice(&text);
            raw
        })
        .unwrap();
        let mut whole = [0u8; SESSION_ENTRY_SIZE];
        SessionEntry {
            name,
            files_pa: 0x5000,
            files_count: 7,
        }
        .encode(&mut whole);
        let mut over_zero = [0u8; SESSION_ENTRY_SIZE];
        SessionEntry::encode_fields_over_zero(&mut over_zero, name.as_field(), 0x5000, 7);
        assert_eq!(whole, over_zero, "name length {len}");
    }
}

#[test]
fn file_encode_over_zero_writes_what_a_whole_encode_writes() {
    for len in 1..HANDLER_COMPAT_LEN {
        let text: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
        let compatible = handler_compat(&text).unwrap();
        let mut whole = [0u8; FILE_ENTRY_SIZE];
        FileEntry {
            compatible,
            data: 9,
            token: 10,
        }
        .encode(&mut whole);
        let mut over_zero = [0u8; FILE_ENTRY_SIZE];
        FileEntry::encode_fields_over_zero(&mut over_zero, &compatible, 9, 10);
        assert_eq!(whole, over_zero, "compatible length {len}");
    }
}
