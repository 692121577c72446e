// SPDX-License-Identifier: GPL-2.0

//! File handlers and the files preserved through them.
//!
//! A file handler (memfd's is the first) is a static C object that registers through
//! [`liveupdate_register_file_handler`]. The core calls back into it to preserve a file
//! before the live update, freeze it at reboot, and retrieve and finish it afterwards.
//! [`FileHandler`] confines those calls; [`LuoFile`] is one preserved file, on either
//! side of the update.

use core::{ffi::c_void, ptr::NonNull};

use kernel::{bindings, error::to_result, fs::File, prelude::*, sync::aref::ARef};

use crate::abi::format::{c_str_len, HANDLER_COMPAT_LEN};
use crate::{enabled, LUO};

/// A registered file handler.
///
/// # Invariants
///
/// `0` points at a `struct liveupdate_file_handler` that stays valid and unchanged while
/// it is registered, and while any file preserved or restored through it exists: its
/// module is pinned for every such file, and the C API requires that a handler be
/// unregistered only when none of its files remain.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileHandler(NonNull<bindings::liveupdate_file_handler>);

// SAFETY: A handler is a static, read-only C object whose callbacks may run on any thread.
unsafe impl Send for FileHandler {}
// SAFETY: See `Send`; the core only reads it.
unsafe impl Sync for FileHandler {}

/// What a handler's `preserve` or `freeze` leaves behind: its handle and private state.
#[derive(Clone, Copy)]
pub(crate) struct HandlerState {
    /// The opaque handle serialized for the next kernel.
    pub(crate) data: u64,
    /// The handler's private pointer, owned by the handler until `unpreserve`.
    private: *mut c_void,
}

// SAFETY: `private` is only handed back to the handler that created it, which owns it and
// accepts it on any thread.
unsafe impl Send for HandlerState {}

impl FileHandler {
    /// Wraps a handler pointer from C.
    pub(crate) fn from_raw(fh: *mut bindings::liveupdate_file_handler) -> Option<Self> {
        NonNull::new(fh).map(Self)
    }

    fn raw(&self) -> &bindings::liveupdate_file_handler {
        // SAFETY: Valid by the type invariant.
        unsafe { self.0.as_ref() }
    }

    fn ops(&self) -> &bindings::liveupdate_file_ops {
        // SAFETY: Registration refused handlers without ops, and the ops table is static.
        unsafe { &*self.raw().ops }
    }

    /// The handler's `compatible` array as it is: the string, its NUL, and whatever
    /// the handler's definition has after it (zeros for a static one).
    pub(crate) fn compatible_raw(&self) -> &[u8; HANDLER_COMPAT_LEN] {
        // SAFETY: `c_char` and `u8` have the same layout.
        unsafe {
            &*self
                .raw()
                .compatible
                .as_ptr()
                .cast::<[u8; HANDLER_COMPAT_LEN]>()
        }
    }

    /// The handler's compatible string, without its NUL.
    pub(crate) fn compatible(&self) -> &[u8] {
        let raw = self.compatible_raw();
        &raw[..c_str_len(raw).unwrap_or(0)]
    }

    fn args(&self, file: Option<&File>, state: HandlerState) -> bindings::liveupdate_file_op_args {
        bindings::liveupdate_file_op_args {
            handler: self.0.as_ptr(),
            retrieve_status: 0,
            file: file.map_or(core::ptr::null_mut(), |f| f.as_ptr()),
            serialized_data: state.data,
            private_data: state.private,
        }
    }

    /// Pins the module that provides the handler.
    pub(crate) fn get_module(&self) -> bool {
        // SAFETY: `owner` is null or a module that is live while its handler is registered.
        unsafe { bindings::try_module_get(self.ops().owner) }
    }

    /// Drops a pin taken by [`FileHandler::get_module`].
    pub(crate) fn put_module(&self) {
        // SAFETY: The caller took a reference with `get_module()`.
        unsafe { bindings::module_put(self.ops().owner) }
    }

    /// Whether the handler accepts `file`.
    pub(crate) fn can_preserve(&self, file: &File) -> bool {
        match self.ops().can_preserve {
            // SAFETY: The callback takes the handler and a live file.
            Some(can_preserve) => unsafe { can_preserve(self.0.as_ptr(), file.as_ptr()) },
            None => false,
        }
    }

    /// The key under which `file` is recorded as preserved: the handler's `get_id`, or the
    /// file itself.
    pub(crate) fn file_id(&self, file: &File) -> usize {
        match self.ops().get_id {
            // SAFETY: The callback takes a live file.
            Some(get_id) => unsafe { get_id(file.as_ptr()) },
            None => file.as_ptr() as usize,
        }
    }

    /// Preserves `file`; on success the handler owns state until `unpreserve` or `finish`.
    pub(crate) fn preserve(&self, file: &File) -> Result<HandlerState> {
        let mut args = self.args(Some(file), HandlerState::EMPTY);
        let preserve = self.ops().preserve.ok_or(EINVAL)?;
        // SAFETY: `args` names this handler and a live file.
        to_result(unsafe { preserve(&mut args) })?;
        Ok(HandlerState {
            data: args.serialized_data,
            private: args.private_data,
        })
    }

    /// Undoes [`FileHandler::preserve`].
    pub(crate) fn unpreserve(&self, file: &File, state: HandlerState) {
        let mut args = self.args(Some(file), state);
        if let Some(unpreserve) = self.ops().unpreserve {
            // SAFETY: `args` carries what `preserve` returned for this live file.
            unsafe { unpreserve(&mut args) };
        }
    }

    /// Lets the handler take its final snapshot at reboot; it may replace the handle.
    pub(crate) fn freeze(&self, file: &File, state: &mut HandlerState) -> Result {
        let Some(freeze) = self.ops().freeze else {
            return Ok(());
        };
        let mut args = self.args(Some(file), *state);
        // SAFETY: `args` carries what `preserve` returned for this live file.
        to_result(unsafe { freeze(&mut args) })?;
        state.data = args.serialized_data;
        Ok(())
    }

    /// Undoes [`FileHandler::freeze`] after a failed or cancelled reboot.
    pub(crate) fn unfreeze(&self, file: &File, state: HandlerState) {
        if let Some(unfreeze) = self.ops().unfreeze {
            let mut args = self.args(Some(file), state);
            // SAFETY: `args` carries the state of a frozen, live file.
            unsafe { unfreeze(&mut args) };
        }
    }

    /// Rebuilds a file from its handle in the new kernel.
    pub(crate) fn retrieve(&self, data: u64) -> Result<ARef<File>> {
        let retrieve = self.ops().retrieve.ok_or(EINVAL)?;
        let mut args = self.args(
            None,
            HandlerState {
                data,
                ..HandlerState::EMPTY
            },
        );
        // SAFETY: `args` carries the handle the previous kernel serialized for this handler.
        to_result(unsafe { retrieve(&mut args) })?;
        let file = NonNull::new(args.file).ok_or(EINVAL)?;
        // SAFETY: A successful `retrieve` hands over one reference to a live file.
        Ok(unsafe { ARef::from_raw(file.cast::<File>()) })
    }

    fn finish_args(
        &self,
        file: Option<&File>,
        data: u64,
        retrieve_status: i32,
    ) -> bindings::liveupdate_file_op_args {
        let mut args = self.args(
            file,
            HandlerState {
                data,
                ..HandlerState::EMPTY
            },
        );
        args.retrieve_status = retrieve_status;
        args
    }

    /// Whether the handler is ready to let the file go.
    pub(crate) fn can_finish(&self, file: Option<&File>, data: u64, retrieve_status: i32) -> bool {
        let Some(can_finish) = self.ops().can_finish else {
            return true;
        };
        let mut args = self.finish_args(file, data, retrieve_status);
        // SAFETY: `args` carries a restored handle and, if retrieved, its live file.
        unsafe { can_finish(&mut args) }
    }

    /// Releases everything the handler still holds for the file.
    pub(crate) fn finish(&self, file: Option<&File>, data: u64, retrieve_status: i32) {
        if let Some(finish) = self.ops().finish {
            let mut args = self.finish_args(file, data, retrieve_status);
            // SAFETY: As in `can_finish`; this is the last call for this handle.
            unsafe { finish(&mut args) };
        }
    }
}

impl HandlerState {
    const EMPTY: Self = Self {
        data: 0,
        private: core::ptr::null_mut(),
    };
}

/// One preserved file.
///
/// Outgoing, it holds the core's reference to the file and the handler's state. Incoming,
/// it holds the handle from the previous kernel and, once retrieved, the core's
/// reference to the rebuilt file, kept until the session finishes.
pub(crate) struct LuoFile {
    /// The handler; for an incoming file, found by the recorded compatible string when
    /// the sessions are read (the session is dropped if there is none). The string is
    /// the handler's: it is not kept here.
    pub(crate) handler: Option<FileHandler>,
    /// The token userspace chose.
    pub(crate) token: u64,
    /// The handler's handle and private state.
    pub(crate) state: HandlerState,
    /// The file itself: outgoing always, incoming once retrieved.
    pub(crate) file: Option<ARef<File>>,
    /// 0 before any retrieve, 1 after a successful one, or the errno of a failed one.
    pub(crate) retrieve_status: i32,
}

impl LuoFile {
    /// An incoming file as the previous kernel recorded it.
    pub(crate) fn incoming(handler: Option<FileHandler>, data: u64, token: u64) -> Self {
        Self {
            handler,
            token,
            state: HandlerState {
                data,
                ..HandlerState::EMPTY
            },
            file: None,
            retrieve_status: 0,
        }
    }

    /// An outgoing file just preserved by `handler`.
    pub(crate) fn outgoing(
        handler: FileHandler,
        file: ARef<File>,
        token: u64,
        state: HandlerState,
    ) -> Self {
        Self {
            handler: Some(handler),
            token,
            state,
            file: Some(file),
            retrieve_status: 0,
        }
    }
}

/// Checks a handler before it joins the registry.
fn validate_handler(fh: &FileHandler) -> Result {
    let raw = fh.raw();
    if raw.ops.is_null() {
        return Err(EINVAL);
    }
    let ops = fh.ops();
    if ops.can_preserve.is_none()
        || ops.preserve.is_none()
        || ops.unpreserve.is_none()
        || ops.retrieve.is_none()
        || ops.finish.is_none()
    {
        return Err(EINVAL);
    }
    // SAFETY: `c_char` and `u8` have the same layout.
    let compat: &[u8; HANDLER_COMPAT_LEN] =
        unsafe { &*raw.compatible.as_ptr().cast::<[u8; HANDLER_COMPAT_LEN]>() };
    match c_str_len(compat) {
        Some(len) if len > 0 => Ok(()),
        _ => Err(EINVAL),
    }
}

fn register_file_handler(fh: *mut bindings::liveupdate_file_handler) -> Result {
    if !enabled() {
        return Err(EOPNOTSUPP);
    }
    let fh = FileHandler::from_raw(fh).ok_or(EINVAL)?;
    validate_handler(&fh)?;
    {
        let mut luo = LUO.lock();
        if luo
            .handlers
            .iter()
            .any(|h| *h == fh || h.compatible() == fh.compatible())
        {
            return Err(EEXIST);
        }
        luo.handlers.push(fh, GFP_KERNEL)?;
    }
    #[cfg(CONFIG_LIVEUPDATE_TEST)]
    {
        // Declared in `kernel/liveupdate/luo_internal.h`, which bindgen does not see; the
        // handler goes through as an opaque pointer.
        extern "C" {
            fn liveupdate_test_register(fh: *mut c_void);
        }
        // SAFETY: The handler is registered and valid; the test hook registers its FLBs
        // with it and takes the core's locks itself.
        unsafe { liveupdate_test_register(fh.0.as_ptr().cast()) };
    }
    Ok(())
}

/// Registers a file handler with the core.
///
/// Returns 0, `-EOPNOTSUPP` when live update is off, `-EINVAL` when a required callback
/// or the compatible string is missing, `-EEXIST` when the compatible string is taken,
/// or `-ENOMEM`.
///
/// # Safety
///
/// `fh` must point at a handler that stays valid until it is unregistered, and that is
/// unregistered only once none of its files are preserved or restored.
#[no_mangle]
pub unsafe extern "C" fn liveupdate_register_file_handler(
    fh: *mut bindings::liveupdate_file_handler,
) -> c_int {
    match register_file_handler(fh) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// Removes a file handler from the core; files already preserved keep their module pinned.
///
/// # Safety
///
/// `fh` must be null or a handler passed to [`liveupdate_register_file_handler`].
#[no_mangle]
pub unsafe extern "C" fn liveupdate_unregister_file_handler(
    fh: *mut bindings::liveupdate_file_handler,
) {
    if !enabled() {
        return;
    }
    let Some(fh) = FileHandler::from_raw(fh) else {
        return;
    };
    let mut luo = LUO.lock();
    crate::luo_flb::unregister_all(&mut luo, fh);
    luo.handlers.retain(|h| *h != fh);
}
