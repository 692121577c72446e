// SPDX-License-Identifier: GPL-2.0

//! Host unit tests of the serialized format and the chain reader.

use std::collections::BTreeMap;
use std::vec::Vec;

use crate::chain::*;
use crate::format::*;

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
    read_chain::<_, FILE_ENTRY_SIZE>(mem, head, |e| {
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
    assert!(read_chain_exact::<_, FILE_ENTRY_SIZE>(&mut mem, 0, 1, |_| Ok(())).is_err());
    assert!(read_chain_exact::<_, FILE_ENTRY_SIZE>(&mut mem, 0, 0, |_| Ok(())).is_ok());
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
        read_chain_exact::<_, FILE_ENTRY_SIZE>(&mut mem, 0x1000, 11, |_| Ok(())),
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
