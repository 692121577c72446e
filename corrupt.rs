// SPDX-License-Identifier: GPL-2.0

//! Test-only damage to the outgoing state, to prove that the next kernel survives it.
//!
//! Built with `CONFIG_LIVEUPDATE_RUST_CORRUPT_TEST` only, and active only when the kernel
//! was booted with `luo_corrupt=<kind>`: after a successful serialization at reboot, the
//! blocks are damaged in the chosen way just before the jump. The next kernel must boot,
//! log one clear error, drop what the documented policy says, and keep serving
//! `/dev/liveupdate`.

use kernel::{
    bindings,
    page::PAGE_SIZE,
    prelude::*,
    sync::atomic::{Atomic, Relaxed},
};

use crate::abi::chain::{entry_slot, read_header, write_header};
use crate::abi::format::{
    BlockHeader, FileEntry, Root, SessionEntry, FILE_ENTRY_SIZE, MAX_BLOCKS, SESSION_ENTRY_SIZE,
    SESSION_NAME_LEN,
};
use crate::block_chain::OutgoingChain;
use crate::kho::PreservedPage;
use crate::{Core, Luo};

/// The kinds of damage, by their `luo_corrupt=` name.
const KINDS: &[&[u8]] = &[
    b"none",
    b"root-incompatible",
    b"session-cycle",
    b"session-too-long",
    b"session-zero-count",
    b"session-over-count",
    b"session-unaligned",
    b"session-unpreserved",
    b"session-unterminated-name",
    b"session-duplicate-name",
    b"file-cycle",
    b"file-unknown-compatible",
    b"freeze-fail",
];

/// Index into [`KINDS`] chosen on the command line.
static KIND: Atomic<u32> = Atomic::new(0);

/// Whether `freeze-fail` has failed a freeze already.
static FREEZE_FAILED: Atomic<bool> = Atomic::new(false);

/// For `freeze-fail`: which file of this reboot attempt, counting from 0 in the order
/// they are frozen, must fail to freeze. That happens once, to the second file of the
/// first attempt (so one frozen file must be thawed). Asked once per attempt, so that
/// freezing a file costs no more than a comparison.
pub(crate) fn freeze_to_fail() -> Option<usize> {
    let kind = KIND.load(Relaxed) as usize;
    if KINDS.get(kind) != Some(&&b"freeze-fail"[..]) || FREEZE_FAILED.load(Relaxed) {
        return None;
    }
    FREEZE_FAILED.store(true, Relaxed);
    Some(1)
}

/// Parses `luo_corrupt=<kind>`; returns whether the kind is known.
pub(crate) fn parse(value: &[u8]) -> bool {
    match KINDS.iter().position(|k| *k == value) {
        Some(index) => {
            KIND.store(index as u32, Relaxed);
            true
        }
        None => false,
    }
}

/// Damages the serialized state as asked, once everything has been written.
pub(crate) fn damage(core: &mut Core) {
    let kind = KIND.load(Relaxed) as usize;
    let Some(name) = KINDS
        .get(kind)
        .filter(|name| kind != 0 && **name != b"freeze-fail")
    else {
        return;
    };
    pr_warn!(
        "TEST ONLY: damaging the outgoing state ({:?})\n",
        kernel::str::BStr::from_bytes(name)
    );
    let luo = &mut core.luo;
    if let Err(e) = sort_sessions_by_name(luo) {
        pr_warn!("TEST ONLY: sessions not sorted: {:?}\n", e);
    }
    let result = match *name {
        b"root-incompatible" => damage_root(luo),
        b"session-cycle" => session_cycle(luo),
        b"session-too-long" => session_too_long(luo),
        b"session-zero-count" => session_count(luo, 0),
        b"session-over-count" => session_count(luo, 52),
        b"session-unaligned" => unaligned_head(luo),
        b"session-unpreserved" => session_unpreserved(luo),
        b"session-unterminated-name" => session_entry(luo, 0, |entry| {
            entry[..SESSION_NAME_LEN].fill(b'x');
        }),
        b"session-duplicate-name" => duplicate_name(luo),
        b"file-cycle" => file_chain(core, |pages| {
            let head = pages.first().map(PreservedPage::phys).ok_or(ENOENT)?;
            let last = pages.last_mut().ok_or(ENOENT)?;
            let count = read_header(last.bytes()).count;
            write_header(last.bytes_mut(), BlockHeader { next: head, count });
            Ok(())
        }),
        b"file-unknown-compatible" => file_chain(core, |pages| {
            let first = pages.first_mut().ok_or(ENOENT)?;
            let slot = entry_slot::<FILE_ENTRY_SIZE>(first.bytes_mut(), 0).ok_or(ENOENT)?;
            let compat = &mut slot[FileEntry::COMPATIBLE_OFFSET..FileEntry::DATA_OFFSET];
            compat.fill(0);
            compat[..8].copy_from_slice(b"bogus-v0");
            Ok(())
        }),
        _ => Ok(()),
    };
    if let Err(e) = result {
        pr_warn!("TEST ONLY: damage not applied: {:?}\n", e);
    }
}

/// Rewrites the session chain in name order. The order of a chain is not part of the
/// format, and the core's own order is that of a hash table: sorted, "the first
/// session" and "the first session with files" are the ones the test expects.
fn sort_sessions_by_name(luo: &mut Luo) -> Result {
    const PER_BLOCK: usize = OutgoingChain::<SESSION_ENTRY_SIZE>::PER_BLOCK;
    let count = luo.outgoing.len();
    let pages = luo.session_blocks.pages_mut();
    let mut entries = KVec::<[u8; SESSION_ENTRY_SIZE]>::with_capacity(count, GFP_KERNEL)?;
    for i in 0..count {
        let page = pages.get_mut(i / PER_BLOCK).ok_or(ENOENT)?;
        let slot = entry_slot::<SESSION_ENTRY_SIZE>(page.bytes_mut(), i % PER_BLOCK);
        entries.push(*slot.ok_or(ENOENT)?, GFP_KERNEL)?;
    }
    entries.sort_unstable_by(|a, b| a[..SESSION_NAME_LEN].cmp(&b[..SESSION_NAME_LEN]));
    for (i, entry) in entries.iter().enumerate() {
        let page = pages.get_mut(i / PER_BLOCK).ok_or(ENOENT)?;
        let slot = entry_slot::<SESSION_ENTRY_SIZE>(page.bytes_mut(), i % PER_BLOCK);
        *slot.ok_or(ENOENT)? = *entry;
    }
    Ok(())
}

fn damage_root(luo: &mut Luo) -> Result {
    let root = luo.out_root_page().ok_or(ENOENT)?;
    root.bytes_mut()[..6].copy_from_slice(b"luo-v0");
    Ok(())
}

fn unaligned_head(luo: &mut Luo) -> Result {
    let root = luo.out_root_page().ok_or(ENOENT)?;
    let field = &mut root.bytes_mut()[Root::SESSIONS_PA_OFFSET..][..8];
    let mut head = [0u8; 8];
    head.copy_from_slice(field);
    field.copy_from_slice(&(u64::from_ne_bytes(head) + 8).to_ne_bytes());
    Ok(())
}

fn session_cycle(luo: &mut Luo) -> Result {
    let pages = luo.session_blocks.pages_mut();
    let head = pages.first().map(PreservedPage::phys).ok_or(ENOENT)?;
    let last = pages.last_mut().ok_or(ENOENT)?;
    let count = read_header(last.bytes()).count;
    write_header(last.bytes_mut(), BlockHeader { next: head, count });
    Ok(())
}

fn session_count(luo: &mut Luo, count: u64) -> Result {
    let first = luo.session_blocks.pages_mut().first_mut().ok_or(ENOENT)?;
    let next = read_header(first.bytes()).next;
    write_header(first.bytes_mut(), BlockHeader { next, count });
    Ok(())
}

/// Appends `MAX_BLOCKS` blocks of one copied entry each, one more than a chain may have.
fn session_too_long(luo: &mut Luo) -> Result {
    let pages = luo.session_blocks.pages_mut();
    let first = pages.first().ok_or(ENOENT)?;
    let mut entry = [0u8; SESSION_ENTRY_SIZE];
    entry.copy_from_slice(
        first
            .bytes()
            .get(16..16 + SESSION_ENTRY_SIZE)
            .ok_or(ENOENT)?,
    );
    let mut next = 0;
    for _ in 0..MAX_BLOCKS {
        let mut page = PreservedPage::new()?;
        write_header(page.bytes_mut(), BlockHeader { next, count: 1 });
        if let Some(slot) = entry_slot::<SESSION_ENTRY_SIZE>(page.bytes_mut(), 0) {
            *slot = entry;
        }
        next = page.phys();
        // Handed over for good: the next kernel claims and frees it.
        core::mem::forget(page);
    }
    let last = pages.last_mut().ok_or(ENOENT)?;
    let count = read_header(last.bytes()).count;
    write_header(last.bytes_mut(), BlockHeader { next, count });
    Ok(())
}

/// Links the last session block to an ordinary, never-preserved page.
fn session_unpreserved(luo: &mut Luo) -> Result {
    let mut page = KVec::<u8>::with_capacity(PAGE_SIZE, GFP_KERNEL)?;
    // SAFETY: `page` is a live kmalloc allocation, so it is in the direct map.
    let next = unsafe { bindings::virt_to_phys(page.as_mut_ptr().cast()) };
    // The page stays allocated and unpreserved; kmalloc aligns power-of-two sizes.
    core::mem::forget(page);
    let last = luo.session_blocks.pages_mut().last_mut().ok_or(ENOENT)?;
    let count = read_header(last.bytes()).count;
    write_header(last.bytes_mut(), BlockHeader { next, count });
    Ok(())
}

fn session_entry(luo: &mut Luo, index: usize, edit: impl FnOnce(&mut [u8])) -> Result {
    let first = luo.session_blocks.pages_mut().first_mut().ok_or(ENOENT)?;
    let slot = entry_slot::<SESSION_ENTRY_SIZE>(first.bytes_mut(), index).ok_or(ENOENT)?;
    edit(&mut slot[..]);
    Ok(())
}

fn duplicate_name(luo: &mut Luo) -> Result {
    let mut name = [0u8; SESSION_NAME_LEN];
    session_entry(luo, 0, |entry| {
        name.copy_from_slice(&entry[SessionEntry::NAME_OFFSET..][..SESSION_NAME_LEN]);
    })?;
    session_entry(luo, 1, |entry| {
        entry[SessionEntry::NAME_OFFSET..][..SESSION_NAME_LEN].copy_from_slice(&name);
    })
}

/// Applies `edit` to the file chain of the first session, in name order, that has files.
fn file_chain(core: &mut Core, edit: impl FnOnce(&mut [PreservedPage]) -> Result) -> Result {
    let Core { luo, key } = core;
    let session = luo
        .outgoing
        .values()
        .filter(|session| !session.state(key).file_blocks_mut().pages_mut().is_empty())
        .min_by(|a, b| a.name.as_field().cmp(b.name.as_field()))
        .ok_or(ENOENT)?;
    edit(session.state(key).file_blocks_mut().pages_mut())
}
