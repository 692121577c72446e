// SPDX-License-Identifier: GPL-2.0

//! The Live Update Orchestrator (LUO) core, in Rust.
//!
//! LUO lets userspace carry file descriptors across a kexec-based kernel live update.
//! An agent opens `/dev/liveupdate`, creates named sessions and preserves files in them
//! (memfd first). At `reboot(LINUX_REBOOT_CMD_KEXEC)` the core freezes the files and
//! writes every session and file into chains of blocks preserved through Kexec HandOver
//! (KHO). Early in the next kernel's boot the chains are read back, validated, and the
//! sessions wait for the agent to retrieve them by name and their files by token, then
//! to finish them.
//!
//! This core replaces `kernel/liveupdate/luo_{core,session,file,flb}.c`: it keeps their
//! userspace API, the C API that file handlers use, and the serialized format ("luo-v5")
//! byte for byte, so kernels with either core can live update into each other.
//!
//! Files: `luo.rs` (global state, `/dev/liveupdate`, boot and reboot), `luo_session.rs`
//! (sessions and their fds), `luo_file.rs` (file handlers and preserved files),
//! `block_chain.rs` (outgoing chains), `kho.rs` (KHO calls), `uapi.rs` (ioctl
//! arguments), `boot.rs` (initcalls and the boot parameter), `abi/` (the serialized
//! format, kernel-independent).

use kernel::{
    bindings,
    fs::File,
    miscdevice::{MiscDevice, MiscDeviceOptions, MiscDeviceRegistration},
    prelude::*,
    sync::atomic::{Atomic, Relaxed},
};

pub mod abi;
mod block_chain;
mod boot;
mod core_locked;
#[cfg(CONFIG_LIVEUPDATE_RUST_CORRUPT_TEST)]
mod corrupt;
mod incoming;
mod kho;
#[cfg(CONFIG_KUNIT)]
mod kunit;
mod layout;
mod lean_vec;
mod luo_file;
mod luo_flb;
mod luo_session;
mod name_index;
mod tree;
mod uapi;

pub use luo_file::{liveupdate_register_file_handler, liveupdate_unregister_file_handler};
pub use luo_flb::{
    liveupdate_flb_get_incoming, liveupdate_flb_get_outgoing, liveupdate_flb_put_incoming,
    liveupdate_flb_put_outgoing, liveupdate_register_flb, liveupdate_unregister_flb,
};

use abi::format::{
    FlbHeader, Root, FLB_HEADER_SIZE, ROOT_SIZE, SESSION_ENTRY_SIZE, SESSION_NAME_LEN,
};
use abi::restore::RestoreError;
use block_chain::OutgoingChain;
use core::sync::atomic::AtomicU32;
use core_locked::CoreKey;
use incoming::{IncomingBuilder, IncomingSessions};
use kho::{PreservedPage, RestoredBlocks};
use luo_file::FileHandler;
use luo_session::Session;
use name_index::NameIndex;
use tree::Tree;

/// Prefix of every log line of the core.
const __LOG_PREFIX: &[u8] = b"luo\0";

/// The owner of the core's file operations: the kernel itself, as the core is built in.
struct LocalModule;

impl kernel::ModuleMetadata for LocalModule {
    const NAME: &'static CStr = c"luo";

    const THIS_MODULE: kernel::ThisModule = {
        // SAFETY: A null owner is what built-in code uses; module reference counting
        // accepts it.
        unsafe { kernel::ThisModule::from_ptr(core::ptr::null_mut()) }
    };
}

/// Whether a message that userspace can trigger at will may be logged now
/// (`printk_ratelimit()`: a burst of 10 every 5 seconds, shared with the kernel).
pub(crate) fn log_ratelimit() -> bool {
    // SAFETY: The name only identifies the caller in the "callbacks suppressed" note.
    unsafe { bindings::__printk_ratelimit(c"luo".as_char_ptr()) != 0 }
}

/// The `liveupdate=` boot parameter; forced off when KHO is off.
static ENABLED: Atomic<bool> = Atomic::new(false);

/// Whether live update is on.
pub(crate) fn enabled() -> bool {
    ENABLED.load(Relaxed)
}

/// Everything the core knows, behind one lock.
///
/// Handler callbacks run with the lock held, so they must not call back into
/// registration.
pub(crate) struct Luo {
    /// Registered file handlers, in registration order.
    pub(crate) handlers: KVec<FileHandler>,
    /// Which FLBs each handler's files depend on, in registration order.
    pub(crate) flb_links: KVec<(FileHandler, luo_flb::Flb)>,
    /// Outgoing sessions by name (the order of a chain is not part of the format: the
    /// next kernel looks sessions up by name).
    pub(crate) outgoing: NameIndex<KBox<Session>>,
    /// The blocks that will hold the outgoing session entries.
    pub(crate) session_blocks: OutgoingChain<SESSION_ENTRY_SIZE>,
    /// Sessions from the previous kernel.
    pub(crate) incoming: IncomingSessions,
    /// Ids of every file preserved in an outgoing session or retrieved and not yet
    /// finished: a file may be in only one place at a time.
    pub(crate) preserved: Tree<usize, ()>,
    /// Live update count of the previous kernel, 0 on a cold boot.
    liveupdate_num: u64,
    /// The outgoing root and FLB page, published in the KHO tree.
    out_root: Option<OutgoingRoot>,
    /// The previous kernel's sessions, until the first open reads them.
    pending: Option<PendingSessions>,
}

/// The pages that the next kernel finds first.
struct OutgoingRoot {
    root: PreservedPage,
    flbs: PreservedPage,
}

impl Luo {
    pub(crate) const fn new() -> Self {
        Self {
            handlers: KVec::new(),
            flb_links: KVec::new(),
            outgoing: NameIndex::new(),
            session_blocks: OutgoingChain::new(),
            incoming: IncomingSessions::new(),
            preserved: Tree::new(),
            liveupdate_num: 0,
            out_root: None,
            pending: None,
        }
    }

    /// The outgoing root page, for the corruption test.
    #[cfg(CONFIG_LIVEUPDATE_RUST_CORRUPT_TEST)]
    pub(crate) fn out_root_page(&mut self) -> Option<&mut PreservedPage> {
        self.out_root.as_mut().map(|out| &mut out.root)
    }

    /// Records `id` as preserved; `EBUSY` if it already is.
    pub(crate) fn mark_preserved(&mut self, id: usize) -> Result {
        if self.preserved.contains(&id) {
            return Err(EBUSY);
        }
        self.preserved.insert(id, ())
    }

    /// The FLBs that files of `handler` depend on, in registration order.
    pub(crate) fn flbs_of(
        &self,
        handler: FileHandler,
    ) -> impl DoubleEndedIterator<Item = luo_flb::Flb> + Clone + '_ {
        self.flb_links
            .iter()
            .filter(move |(h, _)| *h == handler)
            .map(|&(_, flb)| flb)
    }

    /// Forgets that `id` is preserved.
    pub(crate) fn unmark_preserved(&mut self, id: usize) {
        self.preserved.remove(&id);
    }
}

/// What the global lock holds: the core's state, and the key to every session's state.
///
/// Code that touches no session state reaches [`Luo`] through `Deref`; code that does
/// borrows the two fields apart.
pub(crate) struct Core {
    /// The core's state.
    pub(crate) luo: Luo,
    /// The key to each session's [`CoreLocked`](core_locked::CoreLocked) state.
    pub(crate) key: CoreKey,
}

impl core::ops::Deref for Core {
    type Target = Luo;

    fn deref(&self) -> &Luo {
        &self.luo
    }
}

impl core::ops::DerefMut for Core {
    fn deref_mut(&mut self) -> &mut Luo {
        &mut self.luo
    }
}

kernel::sync::global_lock! {
    // SAFETY: Initialized by the early initcall, before any other code can reach the core.
    unsafe(uninit) static LUO: Mutex<Core> = Core {
        luo: Luo::new(),
        // SAFETY: This is the one key, and it lives inside the global lock.
        key: unsafe { CoreKey::new() },
    };
}

/// Early boot: reads the root that the previous kernel handed over.
///
/// The sessions and the FLB page wait for the first open of `/dev/liveupdate`
/// ([`read_incoming_sessions`]), when every built-in file handler has registered and the
/// page allocator is past early boot, or for the first FLB retrieve, which may come
/// earlier; KHO keeps their blocks reserved until then. With live update off nobody can
/// open the device, so the FLB page and the session chain are read and freed here.
/// Anything malformed is logged and dropped; the core keeps working with whatever was
/// valid.
fn early_init() {
    // SAFETY: Called once, from the early initcall, before any other use of the locks.
    unsafe {
        LUO.init();
        luo_flb::init();
    }
    read_handover();
    if LUO.lock().pending.is_none() {
        DEVICE_STATE.store(INCOMING_READ, core::sync::atomic::Ordering::Relaxed);
    }
}

fn read_handover() {
    if !kho::kho_enabled() {
        if enabled() {
            pr_warn!("live update disabled because KHO is disabled\n");
        }
        ENABLED.store(false, Relaxed);
        return;
    }
    let (phys, size) = match kho::find_luo_subtree() {
        Ok(Some(found)) => found,
        Ok(None) => return,
        Err(e) => {
            pr_err!("cannot read the LUO entry of the KHO tree: {:?}\n", e);
            return;
        }
    };
    let mut blocks = RestoredBlocks::new();
    // Logs what it refuses and keeps nothing: the root is all that is read here.
    let mut discard = incoming::Discard { sessions: 0 };
    let Some(root) = abi::restore::restore_root(&mut blocks, phys, size, &mut discard) else {
        return;
    };
    let mut luo = LUO.lock();
    luo.liveupdate_num = root.liveupdate_num;
    luo_flb::set_incoming_page(root.flbs_pa);
    if enabled() {
        luo.pending = Some(PendingSessions {
            head: root.sessions_pa,
            pages: blocks.len(),
        });
    } else {
        // Read to be freed: the FLB API answers nothing with live update off.
        luo_flb::read_incoming_page(&mut blocks);
        let _ = abi::restore::restore_sessions(&mut blocks, root.sessions_pa, &mut discard);
        pr_info!(
            "Rust LUO core: live update is off: {} sessions of live update #{} dropped\n",
            discard.sessions,
            root.liveupdate_num
        );
    }
    // `blocks` goes out of scope here: the root (and with live update off everything
    // else) is freed.
}

/// The previous kernel's session chain, left by early boot for the first open.
struct PendingSessions {
    /// Address of the chain's first block (0: no session).
    head: u64,
    /// Pages that early boot claimed (the root), for the log.
    pages: usize,
}

/// Reads the sessions that early boot left, once, binding every file to its handler.
fn read_incoming_sessions(luo: &mut Luo) {
    let Some(pending) = luo.pending.take() else {
        return;
    };
    let num = luo.liveupdate_num;
    let mut blocks = RestoredBlocks::new();
    // Into the same set and before the sessions, as `abi::restore::restore` reads
    // them: a session chain that reuses the FLB page is refused as a cycle. The log
    // counts the root and the chains' blocks, not the FLB page, which an FLB retrieve
    // may have read already.
    let flb_pages = luo_flb::read_incoming_page(&mut blocks);
    let mut builder = IncomingBuilder::new(luo);
    let (seen, result) = abi::restore::restore_sessions(&mut blocks, pending.head, &mut builder);
    let (sessions, files) = (builder.sessions, builder.files);
    match result {
        Ok(()) => pr_info!(
            "Rust LUO core: live update #{}: restored {} of {} sessions, {} files, from {} pages\n",
            num,
            sessions,
            seen,
            files,
            pending.pages + blocks.len() - flb_pages
        ),
        // What was restored stays usable.
        Err(RestoreError::OutOfMemory) => pr_err!(
            "out of memory while restoring the previous kernel's sessions; kept {} of them\n",
            sessions
        ),
        // Already logged by the builder; only a refused chain ends here, before any
        // session was built.
        Err(RestoreError::Rejected) => luo.incoming.clear(),
    }
    // `blocks` goes out of scope here: every page claimed while reading is freed.
}

/// Late boot: publishes the outgoing root and registers `/dev/liveupdate`.
fn late_init() -> Result {
    if !enabled() {
        pr_info!("Rust LUO core: live update is off (boot with liveupdate=on)\n");
        return Ok(());
    }
    if let Err(e) = setup_outgoing() {
        pr_err!(
            "Rust LUO core: cannot prepare the outgoing state ({:?}); live update off\n",
            e
        );
        ENABLED.store(false, Relaxed);
        return Err(e);
    }
    let device = KBox::pin_init(
        MiscDeviceRegistration::<LuoDevice>::register(MiscDeviceOptions {
            name: c"liveupdate",
        }),
        GFP_KERNEL,
    )?;
    // The device stays registered for the kernel's lifetime.
    core::mem::forget(device);
    pr_info!(
        "Rust LUO core ready: /dev/liveupdate (live update #{})\n",
        LUO.lock().liveupdate_num
    );
    Ok(())
}

fn setup_outgoing() -> Result {
    let mut luo = LUO.lock();
    let mut root = PreservedPage::new()?;
    let mut flbs = PreservedPage::new()?;
    let flb_header = FlbHeader { pgcnt: 1, count: 0 };
    if let Some(b) = flbs
        .bytes_mut()
        .get_mut(..FLB_HEADER_SIZE)
        .and_then(|b| b.try_into().ok())
    {
        flb_header.encode(b);
    }
    let out = Root {
        liveupdate_num: luo.liveupdate_num + 1,
        sessions_pa: 0,
        flbs_pa: flbs.phys(),
    };
    write_root(&mut root, &out);
    kho::add_luo_subtree(&root, ROOT_SIZE)?;
    luo.out_root = Some(OutgoingRoot { root, flbs });
    Ok(())
}

fn write_root(page: &mut PreservedPage, root: &Root) {
    if let Some(b) = page
        .bytes_mut()
        .get_mut(..ROOT_SIZE)
        .and_then(|b| b.try_into().ok())
    {
        root.encode(b);
    }
}

/// Whether live update is on.
#[no_mangle]
pub extern "C" fn liveupdate_enabled() -> bool {
    enabled()
}

/// Serializes every session and file for the next kernel; called by `kernel_kexec()`.
///
/// On success the core stays locked: every later session operation waits until the
/// machine jumps. On failure everything is as before and the errno is returned.
#[no_mangle]
pub extern "C" fn liveupdate_reboot() -> c_int {
    if !enabled() {
        return 0;
    }
    let mut luo = LUO.lock();
    let luo_ref = &mut *luo;
    let head = match luo_session::serialize(luo_ref) {
        Ok(head) => head,
        Err(e) => return e.to_errno(),
    };
    if let Some(out) = luo_ref.out_root.as_mut() {
        luo_flb::serialize(&mut out.flbs);
    }
    let num = luo_ref.liveupdate_num + 1;
    let sessions = luo_ref.outgoing.len();
    let nblocks = luo_ref.session_blocks.len();
    if let Some(out) = luo_ref.out_root.as_mut() {
        let flbs_pa = out.flbs.phys();
        write_root(
            &mut out.root,
            &Root {
                liveupdate_num: num,
                sessions_pa: head,
                flbs_pa,
            },
        );
    }
    #[cfg(CONFIG_LIVEUPDATE_RUST_CORRUPT_TEST)]
    corrupt::damage(luo_ref);
    // Debug level: on a serial console one more line would lengthen the blackout.
    pr_debug!(
        "Rust LUO core: {} sessions serialized in {} blocks for live update #{}\n",
        sessions,
        nblocks,
        num
    );
    // Nothing may change the serialized state before the jump.
    core::mem::forget(luo);
    0
}

/// `/dev/liveupdate`: [`DEVICE_OPEN`] and [`INCOMING_READ`], in one word so that an open
/// is one atomic operation.
///
/// A `core` atomic: the kernel crate's atomics call out-of-line C helpers unless the
/// kernel is built with `CONFIG_RUST_INLINE_HELPERS` (clang and rustc on the same
/// LLVM), and that call was most of what the core added to an open. The word is only
/// compared-and-exchanged (sequentially consistent: `lock cmpxchg`, as C's
/// `atomic_cmpxchg()`) and stored with release or, before the device exists, relaxed.
static DEVICE_STATE: AtomicU32 = AtomicU32::new(0);

/// Set while a process holds `/dev/liveupdate` open: only one may.
const DEVICE_OPEN: u32 = 1;

/// Set once the previous kernel's sessions have been read (at the first open), or when
/// there are none to read.
const INCOMING_READ: u32 = 2;

/// The first open, which reads the previous kernel's sessions, or an open while the device
/// is busy.
// Apart, so that the frequent open saves no registers for it.
#[inline(never)]
fn first_open() -> Result<()> {
    use core::sync::atomic::Ordering::{Release, SeqCst};
    if DEVICE_STATE
        .compare_exchange(0, DEVICE_OPEN, SeqCst, SeqCst)
        .is_err()
    {
        return Err(EBUSY);
    }
    read_incoming_sessions(&mut LUO.lock());
    DEVICE_STATE.store(INCOMING_READ | DEVICE_OPEN, Release);
    Ok(())
}

const CMD_CREATE_SESSION: u32 = 0x00;
const CMD_RETRIEVE_SESSION: u32 = 0x01;

/// `/dev/liveupdate`.
struct LuoDevice;

#[vtable]
impl MiscDevice for LuoDevice {
    type Ptr = ();

    fn open(_file: &File, _misc: &MiscDeviceRegistration<Self>) -> Result<()> {
        use core::sync::atomic::Ordering::SeqCst;
        if DEVICE_STATE
            .compare_exchange(INCOMING_READ, INCOMING_READ | DEVICE_OPEN, SeqCst, SeqCst)
            .is_ok()
        {
            return Ok(());
        }
        first_open()
    }

    fn release(_device: (), _file: &File) {
        // Only the holder changes the state while the device is open.
        DEVICE_STATE.store(INCOMING_READ, core::sync::atomic::Ordering::Release);
    }

    fn ioctl(_device: (), _file: &File, cmd: u32, arg: usize) -> Result<isize> {
        let nr = uapi::ioctl_nr(cmd);
        if nr > CMD_RETRIEVE_SESSION {
            return Err(EINVAL);
        }
        let mut ucmd = uapi::UserCommand::<{ uapi::SESSION_ARG_SIZE }>::read(
            arg,
            cmd == uapi::ioctl_cmd(nr),
            true,
        )?;
        let reservation =
            kernel::fs::file::FileDescriptorReservation::get_unused_fd_flags(bindings::O_CLOEXEC)?;
        ucmd.set_i32(4, reservation.reserved_fd() as i32);
        // The name field, read where it is (`fd` above is outside it).
        let name: &[u8; SESSION_NAME_LEN] = ucmd.buf[8..].first_chunk().ok_or(EINVAL)?;
        if nr == CMD_CREATE_SESSION {
            let file = luo_session::create_session(name)?;
            // On failure the file is dropped, and with it the new session.
            ucmd.respond()?;
            reservation.fd_install(file);
        } else {
            let file = luo_session::retrieve_session(name)?;
            // On failure the file is dropped, which finishes the session, as upstream.
            ucmd.respond()?;
            reservation.fd_install(file);
        }
        Ok(0)
    }
}
