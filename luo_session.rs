// SPDX-License-Identifier: GPL-2.0

//! Sessions: named groups of preserved files, and the file descriptors that stand for
//! them.
//!
//! An outgoing session is created through `/dev/liveupdate`; files are preserved into
//! it until reboot, and closing its fd unpreserves them all. An incoming session comes
//! from the previous kernel; it is retrieved once by name, its files are retrieved by
//! token, and finishing it (or closing its fd) hands everything back to the handlers.
//!
//! Every operation runs under the global [`LUO`](static@LUO) lock, which the reboot path keeps once
//! it has serialized everything, so that nothing can change behind the serialized
//! state. A session's mutable state is reached with the key that the lock holds
//! ([`CoreLocked`]), so it needs no lock of its own.

use core::ptr::{self, NonNull};

use kernel::{
    bindings,
    ffi::{c_long, c_uint, c_ulong},
    fs::{file::FileDescriptorReservation, File, LocalFile},
    prelude::*,
    sync::aref::ARef,
};

use crate::abi::format::{
    cut_c_str, FileEntry, SessionEntry, SessionName, FILE_ENTRY_SIZE, SESSION_NAME_LEN,
};
use crate::block_chain::OutgoingChain;
use crate::core_locked::{CoreKey, CoreLocked};
use crate::lean_vec::LeanVec;
use crate::luo_file::{FileHandler, LuoFile};
use crate::tree::Tree;
use crate::uapi::{
    ioctl_cmd, ioctl_nr, UserCommand, FD_ARG_SIZE, FINISH_ARG_SIZE, GET_NAME_ARG_SIZE,
};
use crate::{luo_flb, Core, Luo, LUO};

const CMD_PRESERVE_FD: u32 = 0x40;
const CMD_RETRIEVE_FD: u32 = 0x41;
const CMD_FINISH: u32 = 0x42;
const CMD_GET_NAME: u32 = 0x43;

/// Where a session is found by name.
#[derive(Clone, Copy)]
pub(crate) enum Indexed {
    /// An outgoing session, under this hash of its name.
    Outgoing(u64),
    /// A session from the previous kernel, in this record of the incoming sessions.
    Incoming(u32),
}

/// A session.
///
/// Kept by the outgoing index (boxed), or in its incoming record; its session fd points
/// to it, and only that fd's release frees it or lets it go.
pub(crate) struct Session {
    /// The name, unique among outgoing sessions and among incoming ones.
    pub(crate) name: SessionName,
    /// Where the session is indexed, which also tells whether it came from the previous
    /// kernel.
    pub(crate) indexed: Indexed,
    state: CoreLocked<SessionState>,
}

/// The mutable part of a session.
pub(crate) struct SessionState {
    /// Files in preservation order.
    files: LeanVec<LuoFile>,
    /// Outgoing: the blocks that will hold the file entries.
    blocks: OutgoingChain<FILE_ENTRY_SIZE>,
    /// Incoming: where the search for the next token to retrieve starts, just after the
    /// file retrieved last. Agents tend to retrieve files in the order they preserved
    /// them, which makes each search one comparison; any other order still finds every
    /// file, in at most one pass.
    retrieve_from: usize,
}

impl Session {
    /// A new outgoing session, under `hash` in the outgoing index.
    fn outgoing(name: &SessionName, hash: u64) -> Result<KBox<Self>> {
        // Built in place: moving a whole session into its box is a `memcpy()` call.
        KBox::init(
            init!(Self {
                name: *name,
                indexed: Indexed::Outgoing(hash),
                state: CoreLocked::new(SessionState {
                    files: LeanVec::new(),
                    blocks: OutgoingChain::new(),
                    retrieve_from: 0,
                }),
            }),
            GFP_KERNEL,
        )
    }

    /// The session of the previous kernel's record at `record`, with its `files`.
    pub(crate) fn incoming(name: SessionName, record: u32, files: LeanVec<LuoFile>) -> Self {
        Self {
            name,
            indexed: Indexed::Incoming(record),
            state: CoreLocked::new(SessionState {
                files,
                blocks: OutgoingChain::new(),
                retrieve_from: 0,
            }),
        }
    }

    /// The session's files, taken out of it.
    pub(crate) fn into_files(self) -> LeanVec<LuoFile> {
        self.state.into_inner().files
    }

    /// The session's mutable state, reached with the global lock's key.
    pub(crate) fn state<'a>(&'a self, key: &'a mut CoreKey) -> &'a mut SessionState {
        self.state.get_mut(key)
    }

    /// Whether the session came from the previous kernel.
    pub(crate) fn is_incoming(&self) -> bool {
        matches!(self.indexed, Indexed::Incoming(_))
    }
}

#[cfg(CONFIG_LIVEUPDATE_RUST_CORRUPT_TEST)]
impl SessionState {
    /// The blocks of the session's file entries, for the corruption test.
    pub(crate) fn file_blocks_mut(&mut self) -> &mut OutgoingChain<FILE_ENTRY_SIZE> {
        &mut self.blocks
    }
}

/// The file operations of a session fd.
const SESSION_FOPS: bindings::file_operations = {
    let mut fops: bindings::file_operations = pin_init::zeroed();
    fops.release = Some(session_release);
    fops.unlocked_ioctl = Some(session_ioctl);
    fops
};

/// Creates the anonymous file `[luo_session] <name>` that stands for `session`.
///
/// # Safety
///
/// The session must stay where it is until the file's release, and be freed by nothing
/// else.
unsafe fn session_file(session: &Session) -> Result<ARef<File>> {
    const PREFIX: &[u8] = b"[luo_session] ";
    let mut name = [0u8; PREFIX.len() + SESSION_NAME_LEN];
    name[..PREFIX.len()].copy_from_slice(PREFIX);
    let len = session.name.as_bytes().len();
    name[PREFIX.len()..PREFIX.len() + len].copy_from_slice(session.name.as_bytes());

    // SAFETY: `name` is NUL-terminated (a session name is at most 63 bytes), the fops
    // are static, and the session outlives the file (this function's contract).
    let file = unsafe {
        bindings::anon_inode_getfile(
            name.as_ptr().cast(),
            &SESSION_FOPS,
            ptr::from_ref(session).cast_mut().cast(),
            bindings::O_RDWR as c_int,
        )
    };
    let file = kernel::error::from_err_ptr(file)?;
    // SAFETY: `anon_inode_getfile()` returned a new file with one reference, ours.
    Ok(unsafe { ARef::from_raw(NonNull::new_unchecked(file.cast::<File>())) })
}

/// `LIVEUPDATE_IOCTL_CREATE_SESSION`: a new outgoing session named `field`.
pub(crate) fn create_session(field: &[u8; SESSION_NAME_LEN]) -> Result<ARef<File>> {
    let name = SessionName::from_field(field).map_err(|_| EINVAL)?;
    let mut core = LUO.lock();
    let luo = &mut core.luo;
    let count = luo.outgoing.len();
    luo.session_blocks.reserve(count + 1)?;
    let result = (|| {
        // Room first: the hash of a name is stable once the index has a table.
        luo.outgoing.reserve(1)?;
        let hash = luo.outgoing.hash(name.as_field());
        if luo.outgoing.get(hash, |s| s.name == name).is_some() {
            return Err(EEXIST);
        }
        let session = Session::outgoing(&name, hash)?;
        let session = luo
            .outgoing
            .insert_reserved(hash, session)
            .map_err(|_| ENOMEM)?;
        // SAFETY: The session stays in the index until the file's release removes it
        // (or until the line below, when there is no file).
        let file = unsafe { session_file(session) };
        file.inspect_err(|_| {
            luo.outgoing.remove(hash, |s| s.name == name);
        })
    })();
    if result.is_err() {
        luo.session_blocks.shrink(luo.outgoing.len());
    }
    result
}

/// `LIVEUPDATE_IOCTL_RETRIEVE_SESSION`: the incoming session named `field`, once.
pub(crate) fn retrieve_session(field: &[u8; SESSION_NAME_LEN]) -> Result<ARef<File>> {
    // Names are compared over at most 64 bytes; one without a NUL matches nothing.
    let mut key = *field;
    cut_c_str(&mut key).ok_or(ENOENT)?;

    let luo = LUO.lock();
    let record = luo.incoming.get(&key).ok_or(ENOENT)?;
    if record.is_retrieved() {
        return Err(EINVAL);
    }
    // SAFETY: Records do not move once restored, and a retrieved record's session stays
    // until the file's release lets it go. Without a file, nothing changed.
    let file = unsafe { session_file(&record.session) }?;
    record.mark_retrieved();
    Ok(file)
}

/// Takes a file out of the outgoing set: the handler's state, the preserved mark, the
/// module pin, and the core's reference to the file.
fn unpreserve(luo: &mut Luo, file: LuoFile) {
    let (Some(handler), Some(f)) = (file.handler, file.file.as_ref()) else {
        return;
    };
    handler.unpreserve(f, file.state);
    luo_flb::file_unpreserve(luo.flbs_of(handler));
    luo.unmark_preserved(handler.file_id(f));
    handler.put_module();
}

/// `LIVEUPDATE_SESSION_PRESERVE_FD`.
fn preserve_fd(luo: &mut Luo, state: &mut SessionState, token: u64, fd: i32) -> Result {
    if state.files.iter().any(|f| f.token == token) {
        return Err(EEXIST);
    }
    state.blocks.reserve(state.files.len() + 1)?;
    let result = preserve_fd_in(luo, state, token, fd);
    if result.is_err() {
        state.blocks.shrink(state.files.len());
    }
    result
}

fn preserve_fd_in(luo: &mut Luo, state: &mut SessionState, token: u64, fd: i32) -> Result {
    let fd = u32::try_from(fd).map_err(|_| EBADF)?;
    let file = LocalFile::fget(fd)?;
    // SAFETY: This thread holds no `fdget_pos()` on the file being preserved.
    let file = unsafe { LocalFile::assume_no_fdget_pos(file) };
    let handler = find_handler(luo, &file).ok_or(ENOENT)?;
    let result = (|| {
        let id = handler.file_id(&file);
        luo.mark_preserved(id)?;
        let preserved = (|| {
            state.files.reserve(1, GFP_KERNEL)?;
            luo_flb::file_preserve(luo.flbs_of(handler))?;
            handler.preserve(&file).inspect_err(|_| {
                luo_flb::file_unpreserve(luo.flbs_of(handler));
            })
        })();
        match preserved {
            Ok(handler_state) => {
                let entry = LuoFile::outgoing(handler, file.clone(), token, handler_state);
                // Room was reserved above.
                if let Err(err) = state.files.push_within_capacity(entry) {
                    unpreserve(luo, err.0);
                    return Err(ENOMEM);
                }
                Ok(())
            }
            Err(e) => {
                luo.unmark_preserved(id);
                Err(e)
            }
        }
    })();
    if result.is_err() {
        handler.put_module();
    }
    result
}

/// The first registered handler that takes `file`, with its module pinned; none when
/// that handler's module is going away.
fn find_handler(luo: &Luo, file: &File) -> Option<FileHandler> {
    luo.handlers
        .iter()
        .find(|h| h.can_preserve(file))
        .copied()
        .filter(FileHandler::get_module)
}

/// The position of the file with `token` in `files`, searched from position `from` to
/// the end, then from the start.
pub(crate) fn position_of_token(files: &[LuoFile], token: u64, from: usize) -> Option<usize> {
    let from = from.min(files.len());
    let (before, after) = files.split_at(from);
    let found = |f: &LuoFile| f.token == token;
    match after.iter().position(found) {
        Some(i) => Some(from + i),
        None => before.iter().position(found),
    }
}

/// `LIVEUPDATE_SESSION_RETRIEVE_FD`.
fn retrieve_fd(luo: &mut Luo, state: &mut SessionState, token: u64) -> Result<ARef<File>> {
    let at = position_of_token(&state.files, token, state.retrieve_from).ok_or(ENOENT)?;
    state.retrieve_from = at + 1;
    let file = &mut state.files[at];
    if file.retrieve_status < 0 {
        return Err(Error::from_errno(file.retrieve_status));
    }
    if let Some(f) = &file.file {
        return Ok(f.clone());
    }
    let handler = file.handler.ok_or(ENOENT)?;
    let slot = Tree::slot()?;
    match handler.retrieve(file.state.data) {
        Ok(f) => {
            // Until finished, the file cannot be preserved again.
            let id = handler.file_id(&f);
            if luo.preserved.contains(&id) {
                if crate::log_ratelimit() {
                    pr_warn!("a retrieved file is already preserved elsewhere\n");
                }
            } else {
                luo.preserved.insert_in(slot, id, ());
            }
            file.retrieve_status = 1;
            file.file = Some(f.clone());
            Ok(f)
        }
        Err(e) => {
            file.retrieve_status = e.to_errno();
            Err(e)
        }
    }
}

/// `LIVEUPDATE_SESSION_FINISH`: hands every file back to its handler, or none.
// Inline: most sessions have no files left when they finish or close.
#[inline(always)]
fn finish(luo: &mut Luo, state: &mut SessionState) -> Result {
    if state.files.is_empty() {
        return Ok(());
    }
    finish_files(luo, state)
}

fn finish_files(luo: &mut Luo, state: &mut SessionState) -> Result {
    let ready = state.files.iter().all(|f| match f.handler {
        Some(h) => h.can_finish(f.file.as_deref(), f.state.data, f.retrieve_status),
        None => true,
    });
    if !ready {
        return Err(EBUSY);
    }
    while let Some(file) = state.files.pop() {
        let Some(handler) = file.handler else {
            continue;
        };
        handler.finish(file.file.as_deref(), file.state.data, file.retrieve_status);
        luo_flb::file_finish(luo.flbs_of(handler));
        if let Some(f) = &file.file {
            luo.unmark_preserved(handler.file_id(f));
        }
        handler.put_module();
    }
    // Gives the (possibly vmalloc'd) array back now rather than at close.
    state.files = LeanVec::new();
    Ok(())
}

/// The session fd of `session` is gone: an outgoing session is unpreserved and freed, an
/// incoming one finished (its record is freed with the last one), or kept for a new
/// retrieve when it cannot finish.
///
/// # Safety
///
/// `session` is the session of a session file whose release this is.
unsafe fn session_closed(session: NonNull<Session>) {
    let mut core = LUO.lock();
    let Core { luo, key } = &mut *core;
    // SAFETY: The session lives until this release lets it go (`session_file`); the
    // reference is not used after that.
    let this = unsafe { session.as_ref() };
    let state = this.state(key);
    match this.indexed {
        Indexed::Incoming(record) => {
            if finish(luo, state).is_ok() {
                // The session is in its record: marked finished, and freed with the
                // last record.
                luo.incoming.remove(record);
                return;
            }
            if crate::log_ratelimit() {
                pr_warn!(
                    "session {:?} closed before its files could finish; it can be retrieved again\n",
                    this.name
                );
            }
            // The session stays in its record, with its files, where a new retrieve
            // finds it.
            luo.incoming.give_back(record);
        }
        Indexed::Outgoing(hash) => {
            while let Some(file) = state.files.pop() {
                unpreserve(luo, file);
            }
            state.blocks.shrink(0);
            let owned = luo
                .outgoing
                .remove(hash, |s| ptr::eq(&**s, session.as_ptr()));
            luo.session_blocks.shrink(luo.outgoing.len());
            drop(core);
            // Freed outside the lock.
            drop(owned);
        }
    }
}

/// # Safety
///
/// Called by the VFS for a session file created by [`session_file`], once.
unsafe extern "C" fn session_release(
    _inode: *mut bindings::inode,
    file: *mut bindings::file,
) -> c_int {
    // SAFETY: The VFS passes the file being released.
    let private = unsafe { (*file).private_data };
    if let Some(session) = NonNull::new(private.cast::<Session>()) {
        // SAFETY: `session_file` made `private_data` point to the session of this file,
        // and this is its release.
        unsafe { session_closed(session) };
    }
    0
}

/// # Safety
///
/// Called by the VFS for a live session file created by [`session_file`].
unsafe extern "C" fn session_ioctl(file: *mut bindings::file, cmd: c_uint, arg: c_ulong) -> c_long {
    // SAFETY: `private_data` points to the session of this file (`session_file`), which
    // lives until the file's release, and the file is live for the call.
    let session = unsafe { &*(*file).private_data.cast::<Session>() };
    match session_command(session, cmd, arg) {
        Ok(()) => 0,
        Err(e) => e.to_errno() as c_long,
    }
}

fn session_command(session: &Session, cmd: u32, arg: usize) -> Result {
    let nr = ioctl_nr(cmd);
    if !(CMD_PRESERVE_FD..=CMD_GET_NAME).contains(&nr) {
        return Err(EINVAL);
    }
    let cmd_matches = cmd == ioctl_cmd(nr);
    let wrong_side = match nr {
        CMD_PRESERVE_FD => session.is_incoming(),
        CMD_RETRIEVE_FD | CMD_FINISH => !session.is_incoming(),
        _ => false,
    };
    match nr {
        CMD_PRESERVE_FD => {
            let ucmd = UserCommand::<FD_ARG_SIZE>::read(arg, cmd_matches, !wrong_side)?;
            let (fd, token) = (ucmd.u32_at(4) as i32, ucmd.u64_at(8));
            let mut core = LUO.lock();
            let Core { luo, key } = &mut *core;
            preserve_fd(luo, session.state(key), token, fd)?;
            if ucmd.respond().is_err() {
                if crate::log_ratelimit() {
                    pr_warn!("file preserved, but the reply could not be copied to userspace\n");
                }
                return Err(EFAULT);
            }
            Ok(())
        }
        CMD_RETRIEVE_FD => {
            let mut ucmd = UserCommand::<FD_ARG_SIZE>::read(arg, cmd_matches, !wrong_side)?;
            let reservation = FileDescriptorReservation::get_unused_fd_flags(bindings::O_CLOEXEC)?;
            let file = {
                let mut core = LUO.lock();
                let Core { luo, key } = &mut *core;
                retrieve_fd(luo, session.state(key), ucmd.u64_at(8))?
            };
            ucmd.set_i32(4, reservation.reserved_fd() as i32);
            ucmd.respond()?;
            reservation.fd_install(file);
            Ok(())
        }
        CMD_FINISH => {
            let ucmd = UserCommand::<FINISH_ARG_SIZE>::read(arg, cmd_matches, !wrong_side)?;
            if ucmd.u32_at(4) != 0 {
                return Err(EINVAL);
            }
            {
                let mut core = LUO.lock();
                let Core { luo, key } = &mut *core;
                finish(luo, session.state(key))?;
            }
            ucmd.respond()
        }
        _ => {
            let mut ucmd = UserCommand::<GET_NAME_ARG_SIZE>::read(arg, cmd_matches, !wrong_side)?;
            if ucmd.u32_at(4) != 0 {
                return Err(EINVAL);
            }
            // Taken so that, as for every other command, nothing answers after reboot.
            let _luo = LUO.lock();
            let dst = &mut ucmd.buf[8..8 + SESSION_NAME_LEN];
            // Copied the way upstream copies it (`strscpy()`), which leaves some of the
            // caller's bytes after the NUL: userspace sees the same bytes from either core.
            // SAFETY: `dst` is 64 writable bytes and the source a NUL-terminated name in
            // a 64-byte field.
            unsafe {
                bindings::sized_strscpy(
                    dst.as_mut_ptr(),
                    session.name.as_field().as_ptr(),
                    SESSION_NAME_LEN,
                )
            };
            ucmd.respond()
        }
    }
}

/// Freezes every outgoing session's files and writes all sessions and files into their
/// blocks. On failure everything frozen is thawed and the blocks read as empty again.
pub(crate) fn serialize(core: &mut Core) -> Result<u64> {
    let Core {
        luo: Luo {
            outgoing,
            session_blocks,
            ..
        },
        key,
    } = core;
    // Counts down the files to freeze before the one the corruption test fails.
    #[cfg(CONFIG_LIVEUPDATE_RUST_CORRUPT_TEST)]
    let mut fail_in = crate::corrupt::freeze_to_fail();
    #[cfg(not(CONFIG_LIVEUPDATE_RUST_CORRUPT_TEST))]
    let mut fail_in = None;
    let mut slots = session_blocks.slots_mut();
    for (i, session) in outgoing.values().enumerate() {
        let state = session.state(key);
        let frozen = if state.files.is_empty() {
            Ok(())
        } else {
            freeze_files(state, &mut fail_in)
        };
        if let Err(e) = frozen {
            pr_err!(
                "live update aborted: a file of session {:?} failed to freeze ({:?})\n",
                session.name,
                e
            );
            drop(slots);
            // Sessions are independent: the order they are thawed in does not matter.
            for earlier in outgoing.values().take(i) {
                let state = earlier.state(key);
                thaw_files(state, usize::MAX);
                state.blocks.set_count(0);
            }
            session_blocks.set_count(0);
            // The next attempt writes names over zeros.
            session_blocks.clear_entries();
            return Err(e);
        }
        // The chain has a slot for every session: it grows with each create.
        let slot = slots.next().ok_or(ENOSPC)?;
        // Slots are zero: blocks are zeroed when allocated, and cleared when an attempt
        // fails (below).
        SessionEntry::encode_fields_over_zero(
            slot,
            session.name.as_field(),
            state.blocks.head(),
            state.files.len() as u64,
        );
    }
    drop(slots);
    session_blocks.set_count(outgoing.len());
    Ok(session_blocks.head())
}

/// Freezes the files of one session in order and writes their entries.
///
/// `fail_in`: the number of files to freeze before one fails with `EIO`, for the
/// corruption test; counted down across sessions.
fn freeze_files(state: &mut SessionState, fail_in: &mut Option<usize>) -> Result {
    let SessionState { files, blocks, .. } = state;
    // The chain has a slot for every file: it grows with each preserve.
    let mut slots = blocks.slots_mut();
    let mut failed = None;
    for (i, file) in files.iter_mut().enumerate() {
        let fail = match fail_in {
            Some(0) => true,
            Some(n) => {
                *n -= 1;
                false
            }
            None => false,
        };
        let frozen = match (file.handler, file.file.as_ref()) {
            _ if fail => {
                pr_warn!("TEST ONLY: failing the freeze of a file\n");
                Err(EIO)
            }
            (Some(handler), Some(f)) => handler.freeze(f, &mut file.state).map(|()| handler),
            _ => Err(EINVAL),
        };
        let handler = match frozen {
            Ok(handler) => handler,
            Err(e) => {
                failed = Some((i, e));
                break;
            }
        };
        let Some(slot) = slots.next() else {
            failed = Some((i + 1, ENOSPC));
            break;
        };
        // The handler's compatible string is written up to its NUL, over the zeros of a
        // fresh or cleared slot.
        FileEntry::encode_fields_over_zero(
            slot,
            handler.compatible_raw(),
            file.state.data,
            file.token,
        );
    }
    drop(slots);
    if let Some((frozen, e)) = failed {
        thaw_files(state, frozen);
        return Err(e);
    }
    state.blocks.set_count(state.files.len());
    Ok(())
}

/// Thaws the first `count` files of a session.
fn thaw_files(state: &mut SessionState, count: usize) {
    for file in state.files.iter().take(count).rev() {
        if let (Some(handler), Some(f)) = (file.handler, file.file.as_ref()) {
            handler.unfreeze(f, file.state);
        }
    }
    state.blocks.set_count(0);
    // The next attempt writes compatible strings over zeros.
    state.blocks.clear_entries();
}
