// SPDX-License-Identifier: GPL-2.0

//! Writes the seed corpus: valid and near-valid states built with the crate's own
//! encoders, each checked by running it through its target first.
//!
//!     cargo run --example gen-corpus -- corpus      (from abi/fuzz/)

use std::path::Path;

use luo_abi::chain::ChainError;
use luo_abi::format::{
    handler_compat, BlockHeader, FileEntry, FlbEntry, FlbHeader, Root, SessionEntry, SessionName,
    FILE_ENTRY_SIZE, FLB_COMPAT_LEN, FLB_ENTRY_SIZE, FLB_HEADER_SIZE, MAX_BLOCKS, ROOT_SIZE,
    SESSION_ENTRY_SIZE, SESSION_NAME_LEN,
};
use luo_abi::restore::{Rejection, RestoreError};
use luo_abi_fuzz::{check_chain, restore_outcome, InputBuilder, PAGE};

const ROOT: u64 = 0x1000;

fn file(compat: &[u8], token: u64) -> [u8; FILE_ENTRY_SIZE] {
    let mut out = [0u8; FILE_ENTRY_SIZE];
    FileEntry {
        compatible: handler_compat(compat).unwrap(),
        data: token.wrapping_mul(0x1000) | 0x7,
        token,
    }
    .encode(&mut out);
    out
}

fn files(n: u64) -> Vec<[u8; FILE_ENTRY_SIZE]> {
    (0..n).map(|i| file(b"memfd-v1", i)).collect()
}

fn session(name: &[u8], files_pa: u64, files_count: u64) -> [u8; SESSION_ENTRY_SIZE] {
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

fn root(b: &mut InputBuilder, sessions_pa: u64, flbs_pa: u64) {
    let mut bytes = [0u8; ROOT_SIZE];
    Root {
        liveupdate_num: 2,
        sessions_pa,
        flbs_pa,
    }
    .encode(&mut bytes);
    b.page(ROOT)[..ROOT_SIZE].copy_from_slice(&bytes);
}

/// An FLB page whose header says `count`, with `min(count, entries)` entries.
fn flb(b: &mut InputBuilder, pa: u64, count: u64, entries: usize) {
    let mut bytes = [0u8; FLB_HEADER_SIZE];
    FlbHeader { pgcnt: 1, count }.encode(&mut bytes);
    let page = b.page(pa);
    page[..FLB_HEADER_SIZE].copy_from_slice(&bytes);
    for i in 0..entries.min(count as usize) {
        let mut name = [0u8; FLB_COMPAT_LEN];
        let text = format!("test-flb-{i}");
        name[..text.len()].copy_from_slice(text.as_bytes());
        let mut entry = [0u8; FLB_ENTRY_SIZE];
        FlbEntry {
            name,
            data: 0x100 + i as u64,
            count: 1,
        }
        .encode(&mut entry);
        page[FlbEntry::offset(i)..FlbEntry::offset(i) + FLB_ENTRY_SIZE].copy_from_slice(&entry);
    }
}

/// A one-block template holding `entry` once, for runs.
fn template<const N: usize>(entry: &[u8; N]) -> Vec<u8> {
    let mut t = vec![0u8; PAGE];
    luo_abi::chain::write_header(&mut t, BlockHeader { next: 0, count: 1 });
    *luo_abi::chain::entry_slot::<N>(&mut t, 0).unwrap() = *entry;
    t
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).unwrap();
    println!("{:>8} {}", bytes.len(), dir.join(name).display());
}

fn restore_seeds(dir: &Path) {
    let ok = |name: &str, b: InputBuilder, sessions: usize| {
        let bytes = b.finish();
        let out = restore_outcome(&bytes);
        assert!(out.result.is_ok(), "{name}: {out:?}");
        assert_eq!(out.kept.len(), sessions, "{name}: {out:?}");
        write(dir, name, &bytes);
        out
    };

    let mut b = InputBuilder::restore(ROOT, ROOT_SIZE as u16, 0);
    root(&mut b, 0, 0);
    ok("empty", b, 0);

    // Two sessions, one with files over two blocks, and an FLB page.
    let basic = || {
        let mut b = InputBuilder::restore(ROOT, PAGE as u16, 0);
        b.chain_at(&[0x10000, 0x11000], &files(70));
        b.chain_at(
            &[0x20000],
            &[session(b"a", 0x10000, 70), session(b"empty", 0, 0)],
        );
        flb(&mut b, 0x30000, 2, 2);
        root(&mut b, 0x20000, 0x30000);
        b
    };
    let out = ok("basic", basic(), 2);
    assert_eq!(out.kept[0], (b"a".to_vec(), 70));

    // 60 sessions over two blocks, each with 0..4 files, odd names and compatibles.
    let mut b = InputBuilder::restore(ROOT, ROOT_SIZE as u16, 0);
    let mut sessions = Vec::new();
    for i in 0..60u64 {
        let name = match i {
            0 => vec![b'n'; SESSION_NAME_LEN - 1],
            1 => b"\xff\x01 weird".to_vec(),
            _ => format!("vm-{i}").into_bytes(),
        };
        let count = i % 5;
        let pa = if count == 0 {
            0
        } else {
            0x100000 + i * PAGE as u64
        };
        if count != 0 {
            let mut entries = files(count);
            entries[0] = file(&[b'c'; 47], i);
            b.chain_at(&[pa], &entries);
        }
        sessions.push(session(&name, pa, count));
    }
    b.chain_at(&[0x40000, 0x7000], &sessions);
    // Stale bytes after the NUL of a name and of a compatible string.
    b.page(0x40000)[16 + 2 * 80 + 10..16 + 2 * 80 + 64].fill(0xaa);
    b.page(0x100000 + 2 * PAGE as u64)[16 + 64 + 20..16 + 64 + 48].fill(0x55);
    flb(&mut b, 0x60000, 63, 63);
    root(&mut b, 0x40000, 0x60000);
    let out = ok("many-sessions", b, 60);
    assert_eq!(out.result.unwrap().flb_count, 63);

    // Every kind of bad session next to good ones.
    let mut b = InputBuilder::restore(ROOT, ROOT_SIZE as u16, 0);
    b.chain_at(&[0x10000], &files(3));
    b.chain_at(&[0x11000, 0x12000], &files(64));
    luo_abi::chain::write_header(
        b.page(0x12000),
        BlockHeader {
            next: 0x11000,
            count: 1,
        },
    );
    let mut unterminated = session(b"x", 0, 0);
    unterminated[..SESSION_NAME_LEN].fill(b'x');
    let mut bad_files = files(2);
    bad_files[1][..48].fill(b'z');
    b.chain_at(&[0x13000], &bad_files);
    b.chain_at(
        &[0x20000],
        &[
            session(b"bad-count", 0x10000, 4),
            session(b"dup", 0, 0),
            session(b"dup", 0, 0),
            session(b"unaligned", 0x10008, 1),
            [0u8; SESSION_ENTRY_SIZE],
            unterminated,
            session(b"shared", 0x20000, 1),
            session(b"cycle", 0x11000, 64),
            session(b"bad-file", 0x13000, 2),
            session(b"not-preserved", 0x99000, 1),
            session(b"good", 0, 0),
        ],
    );
    flb(&mut b, 0x50000, 100, 3);
    root(&mut b, 0x20000, 0x50000);
    let out = ok("bad-mix", b, 2);
    assert_eq!(out.rejections.len(), 10, "{out:?}");

    // A file chain of exactly MAX_BLOCKS blocks, and one a block longer.
    for (name, blocks) in [("max-blocks", MAX_BLOCKS), ("too-long", MAX_BLOCKS + 1)] {
        let mut b = InputBuilder::restore(ROOT, ROOT_SIZE as u16, 0);
        b.run(0x1000000, blocks as u16, &template(&file(b"memfd-v1", 9)));
        b.chain_at(
            &[0x20000],
            &[
                session(b"long", 0x1000000, blocks as u64),
                session(b"after", 0, 0),
            ],
        );
        root(&mut b, 0x20000, 0);
        let out = ok(name, b, if blocks == MAX_BLOCKS { 2 } else { 1 });
        if blocks != MAX_BLOCKS {
            assert!(matches!(
                out.rejections[0],
                Rejection::FileChain {
                    error: ChainError::TooLong,
                    ..
                }
            ));
        }
    }

    // A session chain made of a run of blocks, one session each, ending in a loop.
    let mut b = InputBuilder::restore(ROOT, ROOT_SIZE as u16, 0);
    let mut looping = template(&session(b"same", 0, 0));
    looping[..8].copy_from_slice(&0x300000u64.to_ne_bytes());
    b.run(0x200000, 8, &looping);
    b.chain_at(&[0x300000], &[session(b"last", 0, 0)]);
    luo_abi::chain::write_header(
        b.page(0x300000),
        BlockHeader {
            next: 0x200000,
            count: 1,
        },
    );
    root(&mut b, 0x300000, 0);
    let bytes = b.finish();
    let out = restore_outcome(&bytes);
    assert_eq!(out.result, Err(RestoreError::Rejected), "{out:?}");
    write(dir, "session-cycle", &bytes);

    // Out of memory, once and for good.
    for (name, oom) in [("oom-once", 3u8), ("oom-always", 0x82)] {
        let mut bytes = basic().finish();
        bytes[10] = oom;
        let out = restore_outcome(&bytes);
        assert_eq!(out.result, Err(RestoreError::OutOfMemory), "{out:?}");
        write(dir, name, &bytes);
    }

    // A root of another version.
    let mut b = basic();
    b.page(ROOT)[5] = b'4';
    let bytes = b.finish();
    assert_eq!(restore_outcome(&bytes).result, Err(RestoreError::Rejected));
    write(dir, "old-root", &bytes);
}

fn chain_seeds(dir: &Path) {
    let mut b = InputBuilder::chain(0x5000, 150, 2, 0);
    b.chain_at(&[0x5000, 0x3000, 0x9000], &files(150));
    let bytes = b.finish();
    assert_eq!(check_chain(&bytes), Ok(150));
    write(dir, "files-exact", &bytes);

    let mut b = InputBuilder::chain(0x5000, 0, 0, 100);
    b.chain_at(&[0x5000, 0x3000, 0x9000], &files(150));
    let bytes = b.finish();
    assert_eq!(check_chain(&bytes), Err(ChainError::Consumer));
    write(dir, "files-consumer-fails", &bytes);

    let sessions: Vec<_> = (0..60u64)
        .map(|i| session(format!("s{i}").as_bytes(), i * 0x1000, i))
        .collect();
    let mut b = InputBuilder::chain(0x20000, 0, 1, 0);
    b.chain_at(&[0x20000, 0x21000], &sessions);
    let bytes = b.finish();
    assert_eq!(check_chain(&bytes), Ok(60));
    write(dir, "sessions", &bytes);

    let mut b = InputBuilder::chain(0x20000, 0, 1, 0);
    b.chain_at(&[0x20000, 0x21000], &sessions);
    luo_abi::chain::write_header(
        b.page(0x21000),
        BlockHeader {
            next: 0x20000,
            count: 9,
        },
    );
    let bytes = b.finish();
    assert_eq!(check_chain(&bytes), Err(ChainError::Cycle(0x20000)));
    write(dir, "sessions-cycle", &bytes);

    let mut b = InputBuilder::chain(0x1000000, 0, 0, 0);
    b.run(
        0x1000000,
        (MAX_BLOCKS + 1) as u16,
        &template(&file(b"f", 1)),
    );
    let bytes = b.finish();
    assert_eq!(check_chain(&bytes), Err(ChainError::TooLong));
    write(dir, "too-long", &bytes);
}

fn main() {
    let out = std::env::args().nth(1).unwrap_or_else(|| "corpus".into());
    let out = Path::new(&out);
    for (target, seeds) in [
        ("restore", restore_seeds as fn(&Path)),
        ("chain", chain_seeds as fn(&Path)),
    ] {
        let dir = out.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        seeds(&dir);
    }
}
