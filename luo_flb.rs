// SPDX-License-Identifier: GPL-2.0

//! File-Lifecycle-Bound objects (FLBs): state shared by several preserved files.
//!
//! A subsystem registers an FLB with each file handler whose files depend on it. The
//! FLB is preserved when the first such file is, and unpreserved when the last one is;
//! in the new kernel it is retrieved on first use and finished when the last file that
//! depended on it finishes. At reboot every FLB in use is written to the FLB page; the
//! next kernel reads that page at the first open of `/dev/liveupdate` or the first
//! retrieve of an FLB, whichever comes first, not in early boot.
//!
//! FLB state lives here, keyed by the `struct liveupdate_flb` address, not in its C
//! private area. It has its own lock, [`FLBS`](static@FLBS), taken after
//! [`LUO`](static@crate::LUO): handler callbacks run under `LUO` and may call
//! [`liveupdate_flb_get_outgoing`]. FLB callbacks run under `FLBS`, so they must not call
//! the FLB API themselves.

use core::{ffi::c_void, ptr::NonNull};

use kernel::{bindings, error::to_result, prelude::*};

use crate::abi::format::{
    c_str_bytes, FlbCompat, FlbEntry, FlbHeader, FLB_COMPAT_LEN, FLB_ENTRY_SIZE, FLB_HEADER_SIZE,
};
use crate::abi::restore::{restore_flb_page, OutOfMemory, Rejection};
use crate::incoming::log_rejection;
use crate::kho::{PreservedPage, RestoredBlocks};
use crate::luo_file::FileHandler;
use crate::{enabled, LUO};

/// Most FLBs in use at once: as many entries as fit in the one FLB page.
const FLB_MAX: usize = (kernel::page::PAGE_SIZE - FLB_HEADER_SIZE) / FLB_ENTRY_SIZE;

kernel::sync::global_lock! {
    // SAFETY: Initialized by the early initcall, before any other code can reach the core.
    unsafe(uninit) static FLBS: Mutex<FlbRegistry> = FlbRegistry::new();
}

/// Initializes the FLB lock.
///
/// # Safety
///
/// Must be called once, before any other use of the FLB API.
pub(crate) unsafe fn init() {
    // SAFETY: By the function's contract.
    unsafe { FLBS.init() };
}

/// An FLB definition provided by a subsystem.
///
/// # Invariants
///
/// `0` points at a `struct liveupdate_flb` that stays valid while it is registered or
/// has outgoing or incoming state: the C API requires this of its callers.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Flb(NonNull<bindings::liveupdate_flb>);

// SAFETY: An FLB definition is a static C object whose callbacks may run on any thread.
unsafe impl Send for Flb {}
// SAFETY: See `Send`; the core only reads the definition.
unsafe impl Sync for Flb {}

/// A live object pointer owned by an FLB's callbacks.
#[derive(Clone, Copy)]
struct FlbObject(*mut c_void);

// SAFETY: The pointer is only handed back to the FLB's own callbacks, on any thread.
unsafe impl Send for FlbObject {}

impl FlbObject {
    const NONE: Self = Self(core::ptr::null_mut());
}

impl Flb {
    fn from_raw(flb: *mut bindings::liveupdate_flb) -> Option<Self> {
        NonNull::new(flb).map(Self)
    }

    fn raw(&self) -> &bindings::liveupdate_flb {
        // SAFETY: Valid by the type invariant.
        unsafe { self.0.as_ref() }
    }

    fn ops(&self) -> Option<&bindings::liveupdate_flb_ops> {
        // SAFETY: The ops table, when set, is a static object.
        unsafe { self.raw().ops.as_ref() }
    }

    fn compatible(&self) -> &[u8] {
        // SAFETY: `c_char` and `u8` have the same layout.
        let raw: &[u8; FLB_COMPAT_LEN] = unsafe {
            &*self
                .raw()
                .compatible
                .as_ptr()
                .cast::<[u8; FLB_COMPAT_LEN]>()
        };
        c_str_bytes(raw)
    }

    /// The compatible string, for log messages.
    fn name(&self) -> &kernel::str::BStr {
        kernel::str::BStr::from_bytes(self.compatible())
    }

    fn args(&self, data: u64, obj: FlbObject) -> bindings::liveupdate_flb_op_args {
        bindings::liveupdate_flb_op_args {
            flb: self.0.as_ptr(),
            data,
            obj: obj.0,
        }
    }

    fn get_module(&self) -> bool {
        let owner = self.ops().map_or(core::ptr::null_mut(), |ops| ops.owner);
        // SAFETY: `owner` is null or the live module that provides the FLB.
        unsafe { bindings::try_module_get(owner) }
    }

    fn put_module(&self) {
        let owner = self.ops().map_or(core::ptr::null_mut(), |ops| ops.owner);
        // SAFETY: Pairs with a successful `get_module`.
        unsafe { bindings::module_put(owner) }
    }

    fn preserve(&self) -> Result<(u64, FlbObject)> {
        let preserve = self.ops().and_then(|ops| ops.preserve).ok_or(EINVAL)?;
        let mut args = self.args(0, FlbObject::NONE);
        // SAFETY: `args` names this FLB; registration checked the callback.
        to_result(unsafe { preserve(&mut args) })?;
        Ok((args.data, FlbObject(args.obj)))
    }

    fn unpreserve(&self, data: u64, obj: FlbObject) {
        if let Some(unpreserve) = self.ops().and_then(|ops| ops.unpreserve) {
            let mut args = self.args(data, obj);
            // SAFETY: `args` carries what `preserve` returned.
            unsafe { unpreserve(&mut args) };
        }
    }

    fn retrieve(&self, data: u64) -> Result<FlbObject> {
        let retrieve = self.ops().and_then(|ops| ops.retrieve).ok_or(EINVAL)?;
        let mut args = self.args(data, FlbObject::NONE);
        // SAFETY: `args` carries the handle the previous kernel serialized for this FLB.
        to_result(unsafe { retrieve(&mut args) })?;
        Ok(FlbObject(args.obj))
    }

    fn finish(&self, obj: FlbObject) {
        if let Some(finish) = self.ops().and_then(|ops| ops.finish) {
            let mut args = self.args(0, obj);
            // SAFETY: `args` carries the object `retrieve` returned; this is its last use.
            unsafe { finish(&mut args) };
        }
    }
}

/// What the core knows of one FLB.
struct FlbState {
    flb: Flb,
    /// Handlers it is registered with; listed for serialization while non-zero.
    users: usize,
    out_count: u64,
    out_data: u64,
    out_obj: FlbObject,
    in_count: u64,
    in_obj: FlbObject,
    /// 0 before any retrieve, 1 after a successful one, or its errno.
    in_status: i32,
    in_finished: bool,
}

impl FlbState {
    fn new(flb: Flb) -> Self {
        Self {
            flb,
            users: 0,
            out_count: 0,
            out_data: 0,
            out_obj: FlbObject::NONE,
            in_count: 0,
            in_obj: FlbObject::NONE,
            in_status: 0,
            in_finished: false,
        }
    }
}

/// Every FLB the core has seen, and the previous kernel's FLB entries.
pub(crate) struct FlbRegistry {
    states: KVec<FlbState>,
    incoming: KVec<FlbEntry>,
    /// Whether the previous kernel's FLB page was read and good.
    incoming_active: bool,
    /// The previous kernel's FLB page while nobody has read it yet, else 0.
    unread_page: u64,
}

impl FlbRegistry {
    const fn new() -> Self {
        Self {
            states: KVec::new(),
            incoming: KVec::new(),
            incoming_active: false,
            unread_page: 0,
        }
    }

    /// Reads the previous kernel's FLB page, if nobody has, claiming it into `blocks`.
    ///
    /// A page that is malformed, or entries that do not fit in memory, leave no incoming
    /// FLB: every retrieve then fails with `-ENODATA`.
    fn read_incoming_page(&mut self, blocks: &mut RestoredBlocks) {
        let pa = core::mem::take(&mut self.unread_page);
        if pa == 0 {
            return;
        }
        let mut entries = KVec::new();
        let read = restore_flb_page(blocks, pa, |entry| {
            entries.push(*entry, GFP_KERNEL).map_err(|_| OutOfMemory)
        });
        match read {
            Ok(Some(_)) => {
                self.incoming = entries;
                self.incoming_active = true;
            }
            Ok(None) => log_rejection(Rejection::FlbPage(pa)),
            Err(OutOfMemory) => {
                pr_err!("no memory for the previous kernel's FLB entries: its FLBs are lost\n")
            }
        }
    }

    fn find(&mut self, flb: Flb) -> Option<&mut FlbState> {
        self.states.iter_mut().find(|s| s.flb == flb)
    }

    fn find_or_add(&mut self, flb: Flb) -> Result<&mut FlbState> {
        let index = match self.states.iter().position(|s| s.flb == flb) {
            Some(index) => index,
            None => {
                self.states.push(FlbState::new(flb), GFP_KERNEL)?;
                self.states.len() - 1
            }
        };
        self.states.get_mut(index).ok_or(ENOMEM)
    }

    fn listed(&self) -> usize {
        self.states.iter().filter(|s| s.users > 0).count()
    }

    /// First-use retrieval of an incoming FLB.
    fn retrieve(&mut self, flb: Flb) -> Result {
        // Before the first open of `/dev/liveupdate` nobody may have read the page yet.
        self.read_incoming_page(&mut RestoredBlocks::new());
        let Self {
            states,
            incoming,
            incoming_active,
            ..
        } = self;
        let state = states.iter_mut().find(|s| s.flb == flb).ok_or(ENOENT)?;
        if state.in_finished {
            return Err(ENODATA);
        }
        if state.in_status < 0 {
            return Err(Error::from_errno(state.in_status));
        }
        if state.in_status > 0 {
            return Ok(());
        }
        if !*incoming_active {
            return Err(ENODATA);
        }
        let entry = incoming
            .iter()
            .find(|e| c_str_bytes(&e.name) == flb.compatible())
            .ok_or(ENOENT)?;
        state.in_count = entry.count;
        if !flb.get_module() {
            return Err(ENODEV);
        }
        match flb.retrieve(entry.data) {
            Ok(obj) => {
                state.in_obj = obj;
                state.in_status = 1;
                Ok(())
            }
            Err(e) => {
                state.in_status = e.to_errno();
                flb.put_module();
                Err(e)
            }
        }
    }

    fn put_outgoing(&mut self, flb: Flb) {
        let Some(state) = self.find(flb) else {
            return;
        };
        if drop_ref(&mut state.out_count, flb) {
            flb.unpreserve(state.out_data, state.out_obj);
            state.out_data = 0;
            state.out_obj = FlbObject::NONE;
            flb.put_module();
        }
    }

    fn put_incoming(&mut self, flb: Flb) {
        let Some(state) = self.find(flb) else {
            return;
        };
        if !drop_ref(&mut state.in_count, flb) {
            return;
        }
        if state.in_status <= 0 && self.retrieve(flb).is_err() {
            pr_warn!(
                "incoming FLB {:?} cannot be retrieved to finish it\n",
                flb.name()
            );
            return;
        }
        let Some(state) = self.find(flb) else {
            return;
        };
        flb.finish(state.in_obj);
        state.in_obj = FlbObject::NONE;
        state.in_finished = true;
        flb.put_module();
    }
}

/// Drops one reference of `flb`; returns whether it was the last.
fn drop_ref(count: &mut u64, flb: Flb) -> bool {
    if *count == 0 {
        pr_warn!("FLB {:?} released more often than taken\n", flb.name());
        return false;
    }
    *count -= 1;
    *count == 0
}

/// Records where the previous kernel's FLB page is (0: it handed over none), to be read
/// at its first use.
pub(crate) fn set_incoming_page(pa: u64) {
    FLBS.lock().unread_page = pa;
}

/// Reads the previous kernel's FLB page now, if nothing has yet, claiming it into
/// `blocks`; returns the number of pages claimed.
pub(crate) fn read_incoming_page(blocks: &mut RestoredBlocks) -> usize {
    let before = blocks.len();
    FLBS.lock().read_incoming_page(blocks);
    blocks.len() - before
}

/// Takes a reference on every FLB of a file being preserved, preserving those not yet in
/// use; all or nothing.
pub(crate) fn file_preserve(flbs: impl DoubleEndedIterator<Item = Flb> + Clone) -> Result {
    let mut registry = FLBS.lock();
    for (done, flb) in flbs.clone().enumerate() {
        let result = (|| {
            let state = registry.find_or_add(flb)?;
            if state.out_count == 0 {
                if !flb.get_module() {
                    return Err(ENODEV);
                }
                match flb.preserve() {
                    Ok((data, obj)) => {
                        state.out_data = data;
                        state.out_obj = obj;
                    }
                    Err(e) => {
                        flb.put_module();
                        return Err(e);
                    }
                }
            }
            state.out_count += 1;
            Ok(())
        })();
        if let Err(e) = result {
            let total = flbs.clone().count();
            for flb in flbs.rev().skip(total - done) {
                registry.put_outgoing(flb);
            }
            return Err(e);
        }
    }
    Ok(())
}

/// Drops the references a preserved file held, newest FLB first.
pub(crate) fn file_unpreserve(flbs: impl DoubleEndedIterator<Item = Flb>) {
    let mut registry = FLBS.lock();
    for flb in flbs.rev() {
        registry.put_outgoing(flb);
    }
}

/// Drops the references a restored file held as it finishes, newest FLB first.
pub(crate) fn file_finish(flbs: impl DoubleEndedIterator<Item = Flb>) {
    let mut registry = FLBS.lock();
    for flb in flbs.rev() {
        registry.put_incoming(flb);
    }
}

/// Writes every FLB in use into the outgoing FLB page.
pub(crate) fn serialize(page: &mut PreservedPage) {
    let registry = FLBS.lock();
    let bytes = page.bytes_mut();
    let mut count = 0;
    for state in registry
        .states
        .iter()
        .filter(|s| s.users > 0 && s.out_count > 0)
    {
        let mut name: FlbCompat = [0; FLB_COMPAT_LEN];
        let compat = state.flb.compatible();
        name[..compat.len()].copy_from_slice(compat);
        let entry = FlbEntry {
            name,
            data: state.out_data,
            count: state.out_count,
        };
        let start = FlbEntry::offset(count);
        let Some(slot) = bytes
            .get_mut(start..start + FLB_ENTRY_SIZE)
            .and_then(|b| <&mut [u8; FLB_ENTRY_SIZE]>::try_from(b).ok())
        else {
            break;
        };
        entry.encode(slot);
        count += 1;
    }
    if let Some(header) = bytes
        .get_mut(..FLB_HEADER_SIZE)
        .and_then(|b| <&mut [u8; FLB_HEADER_SIZE]>::try_from(b).ok())
    {
        FlbHeader {
            pgcnt: 1,
            count: count as u64,
        }
        .encode(header);
    }
}

fn register_flb(fh: FileHandler, flb: Flb) -> Result {
    if !enabled() {
        return Err(EOPNOTSUPP);
    }
    let complete = flb.ops().is_some_and(|ops| {
        ops.preserve.is_some()
            && ops.unpreserve.is_some()
            && ops.retrieve.is_some()
            && ops.finish.is_some()
    });
    let compat = flb.compatible();
    if !complete || compat.is_empty() || compat.len() >= FLB_COMPAT_LEN {
        pr_warn!("FLB registration refused: callbacks or compatible string missing\n");
        return Err(EINVAL);
    }
    let mut luo = LUO.lock();
    if !luo.handlers.contains(&fh) {
        pr_warn!(
            "FLB {:?} registered with an unknown file handler\n",
            flb.name()
        );
        return Err(EINVAL);
    }
    if luo.flb_links.iter().any(|&(h, f)| h == fh && f == flb) {
        return Err(EEXIST);
    }
    luo.flb_links.reserve(1, GFP_KERNEL)?;
    let mut registry = FLBS.lock();
    let listed = registry.listed();
    let taken = registry
        .states
        .iter()
        .any(|s| s.users > 0 && s.flb != flb && s.flb.compatible() == flb.compatible());
    let state = registry.find_or_add(flb)?;
    if state.users == 0 {
        if listed == FLB_MAX {
            return Err(ENOSPC);
        }
        if taken {
            return Err(EEXIST);
        }
    }
    state.users += 1;
    luo.flb_links
        .push_within_capacity((fh, flb))
        .map_err(|_| ENOMEM)
}

/// Drops every FLB link of a handler that is going away.
pub(crate) fn unregister_all(luo: &mut crate::Luo, fh: FileHandler) {
    let mut registry = FLBS.lock();
    luo.flb_links.retain(|&mut (h, flb)| {
        if h != fh {
            return true;
        }
        if let Some(state) = registry.find(flb) {
            state.users = state.users.saturating_sub(1);
        }
        false
    });
}

/// Registers `flb` as a dependency of the files of `fh`.
///
/// Returns 0, `-EOPNOTSUPP` when live update is off, `-EINVAL` when a callback is
/// missing or `fh` is not registered, `-EEXIST` when already linked or the compatible
/// string is taken, `-ENOSPC` when the FLB page is full, or `-ENOMEM`.
///
/// # Safety
///
/// `fh` must be a registered handler and `flb` a valid FLB that outlives its use.
#[no_mangle]
pub unsafe extern "C" fn liveupdate_register_flb(
    fh: *mut bindings::liveupdate_file_handler,
    flb: *mut bindings::liveupdate_flb,
) -> c_int {
    let (Some(fh), Some(flb)) = (FileHandler::from_raw(fh), Flb::from_raw(flb)) else {
        return EINVAL.to_errno();
    };
    match register_flb(fh, flb) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// Unlinks `flb` from `fh`.
///
/// # Safety
///
/// `fh` and `flb` must be null or the objects passed to [`liveupdate_register_flb`].
#[no_mangle]
pub unsafe extern "C" fn liveupdate_unregister_flb(
    fh: *mut bindings::liveupdate_file_handler,
    flb: *mut bindings::liveupdate_flb,
) {
    if !enabled() {
        return;
    }
    let (Some(fh), Some(flb)) = (FileHandler::from_raw(fh), Flb::from_raw(flb)) else {
        return;
    };
    let mut luo = LUO.lock();
    let Some(pos) = luo.flb_links.iter().position(|&l| l == (fh, flb)) else {
        pr_warn!(
            "FLB {:?} is not registered with this file handler\n",
            flb.name()
        );
        return;
    };
    let _ = luo.flb_links.remove(pos);
    if let Some(state) = FLBS.lock().find(flb) {
        state.users = state.users.saturating_sub(1);
    }
}

/// Takes a reference on the incoming object of `flb`, retrieving it on first use.
///
/// Returns 0 and sets `*objp`, `-EOPNOTSUPP`, `-ENODATA` (nothing handed over, or
/// already finished), `-ENOENT` (not handed over), `-ENODEV`, or the error of a failed
/// retrieve.
///
/// # Safety
///
/// `flb` must be a valid FLB and `objp` valid for writing.
#[no_mangle]
pub unsafe extern "C" fn liveupdate_flb_get_incoming(
    flb: *mut bindings::liveupdate_flb,
    objp: *mut *mut c_void,
) -> c_int {
    if !enabled() {
        return EOPNOTSUPP.to_errno();
    }
    let Some(flb) = Flb::from_raw(flb) else {
        return EINVAL.to_errno();
    };
    let result = (|| -> Result<*mut c_void> {
        let mut registry = FLBS.lock();
        registry.find_or_add(flb)?;
        let retrieved = registry.find(flb).is_some_and(|s| !s.in_obj.0.is_null());
        if !retrieved {
            registry.retrieve(flb)?;
        }
        let state = registry.find(flb).ok_or(ENOENT)?;
        state.in_count += 1;
        Ok(state.in_obj.0)
    })();
    match result {
        Ok(obj) => {
            // SAFETY: `objp` is valid for writing by the function's contract.
            unsafe { objp.write(obj) };
            0
        }
        Err(e) => e.to_errno(),
    }
}

/// Drops a reference taken by [`liveupdate_flb_get_incoming`]; the last one finishes the
/// object.
///
/// # Safety
///
/// `flb` must be a valid FLB.
#[no_mangle]
pub unsafe extern "C" fn liveupdate_flb_put_incoming(flb: *mut bindings::liveupdate_flb) {
    if let Some(flb) = Flb::from_raw(flb) {
        FLBS.lock().put_incoming(flb);
    }
}

/// Takes a reference on the outgoing object of `flb`, which some preserved file must
/// already hold.
///
/// Returns 0 and sets `*objp`, `-EOPNOTSUPP`, or `-ENOENT` when `flb` is not preserved.
///
/// # Safety
///
/// `flb` must be a valid FLB and `objp` valid for writing.
#[no_mangle]
pub unsafe extern "C" fn liveupdate_flb_get_outgoing(
    flb: *mut bindings::liveupdate_flb,
    objp: *mut *mut c_void,
) -> c_int {
    if !enabled() {
        return EOPNOTSUPP.to_errno();
    }
    let Some(flb) = Flb::from_raw(flb) else {
        return EINVAL.to_errno();
    };
    let mut registry = FLBS.lock();
    let Some(state) = registry.find(flb).filter(|s| !s.out_obj.0.is_null()) else {
        return ENOENT.to_errno();
    };
    state.out_count += 1;
    // SAFETY: `objp` is valid for writing by the function's contract.
    unsafe { objp.write(state.out_obj.0) };
    0
}

/// Drops a reference on the outgoing object of `flb`; the last one unpreserves it.
///
/// # Safety
///
/// `flb` must be a valid FLB.
#[no_mangle]
pub unsafe extern "C" fn liveupdate_flb_put_outgoing(flb: *mut bindings::liveupdate_flb) {
    if let Some(flb) = Flb::from_raw(flb) {
        FLBS.lock().put_outgoing(flb);
    }
}
