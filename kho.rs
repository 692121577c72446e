// SPDX-License-Identifier: GPL-2.0

//! Safe wrappers around the Kexec HandOver (KHO) services that the core uses.
//!
//! KHO stays in C. This file confines every raw call into it: pages preserved for the
//! next kernel ([`PreservedPage`]), blocks claimed from the previous one
//! ([`RestoredBlocks`]), and the `LUO` entry of the KHO tree.

use core::{cell::Cell, ptr::NonNull};

use kernel::{
    bindings,
    error::{from_err_ptr, to_result},
    page::PAGE_SIZE,
    prelude::*,
    rbtree::RBTree,
};

use crate::abi::chain::{BlockSource, ClaimError};

/// Name of the KHO subtree that carries the root.
const LUO_KHO_ENTRY_NAME: &CStr = c"LUO";

/// Whether KHO is on in this kernel (`kho=`, or its Kconfig default).
pub(crate) fn kho_enabled() -> bool {
    // SAFETY: Reads a flag that KHO sets while parsing the command line.
    unsafe { bindings::kho_is_enabled() }
}

/// A zeroed page, preserved for the next kernel for as long as this value lives.
///
/// # Invariants
///
/// `ptr` is the kernel address of one page returned by `kho_alloc_preserve()`, owned by
/// this value and not yet passed to `kho_unpreserve_free()`.
pub(crate) struct PreservedPage {
    ptr: NonNull<u8>,
}

// SAFETY: The page is plain memory owned by this value; any thread may use or free it.
unsafe impl Send for PreservedPage {}
// SAFETY: Shared references only read the page.
unsafe impl Sync for PreservedPage {}

impl PreservedPage {
    /// Allocates a zeroed page and registers it with KHO.
    pub(crate) fn new() -> Result<Self> {
        // SAFETY: Any non-zero size may be requested; the call may sleep, and callers run
        // in process context.
        let ptr = from_err_ptr(unsafe { bindings::kho_alloc_preserve(PAGE_SIZE) })?;
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or(ENOMEM)?;
        // INVARIANT: A successful `kho_alloc_preserve()` returned a preserved page.
        Ok(Self { ptr })
    }

    /// Physical address of the page, as the next kernel will see it.
    pub(crate) fn phys(&self) -> u64 {
        // SAFETY: By the type invariant `ptr` is a direct-map address of a live page.
        unsafe { bindings::virt_to_phys(self.ptr.as_ptr().cast()) }
    }

    /// The page's bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        // SAFETY: By the type invariant the page is live, `PAGE_SIZE` long and owned by
        // `self`; the shared borrow of `self` prevents writes for the slice's lifetime.
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), PAGE_SIZE) }
    }

    /// The page's bytes, for writing.
    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: As in `bytes`, and the exclusive borrow of `self` makes this the only
        // reference to the page.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr(), PAGE_SIZE) }
    }
}

impl Drop for PreservedPage {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the page came from `kho_alloc_preserve()` and is
        // released exactly once, here.
        unsafe { bindings::kho_unpreserve_free(self.ptr.as_ptr().cast()) };
    }
}

/// Publishes `root` as the `LUO` subtree of the outgoing KHO tree.
///
/// The page must stay preserved until the kernel jumps: the caller keeps it forever.
pub(crate) fn add_luo_subtree(root: &PreservedPage, size: usize) -> Result {
    // SAFETY: The name is a static NUL-terminated string and `root` is a live preserved
    // page of at least `size` bytes that the caller keeps until reboot.
    to_result(unsafe {
        bindings::kho_add_subtree(
            LUO_KHO_ENTRY_NAME.as_char_ptr(),
            root.ptr.as_ptr().cast(),
            size,
        )
    })
}

/// Looks up the `LUO` subtree handed over by the previous kernel.
///
/// Returns `Ok(None)` on a cold boot or when the previous kernel had no LUO.
pub(crate) fn find_luo_subtree() -> Result<Option<(u64, usize)>> {
    let mut phys: bindings::phys_addr_t = 0;
    let mut size: usize = 0;
    // SAFETY: The name is a static NUL-terminated string and both outputs are valid.
    let err = unsafe {
        bindings::kho_retrieve_subtree(LUO_KHO_ENTRY_NAME.as_char_ptr(), &mut phys, &mut size)
    };
    match to_result(err) {
        Ok(()) => Ok(Some((phys, size))),
        Err(e) if e == ENOENT => Ok(None),
        Err(e) => Err(e),
    }
}

/// A page handed over by the previous kernel and claimed from KHO.
///
/// # Invariants
///
/// `folio` was returned by `kho_restore_folio()`, is an order-0 folio owned by this value,
/// and its reference is dropped only in [`Drop`]. `addr` is its direct-map address.
struct RestoredPage {
    folio: NonNull<bindings::folio>,
    addr: NonNull<u8>,
}

impl RestoredPage {
    /// Claims the page at `phys`, if the previous kernel preserved exactly one page there.
    fn claim(phys: u64) -> Option<Self> {
        // KNOWN SHORTCOMING: KHO warns once (WARN_ON_ONCE in kho_restore_page()) when
        // `phys` is RAM that was never preserved; KHO has no quiet probe to ask first.
        // SAFETY: `kho_restore_folio()` accepts any address: it checks that the page is
        // online and carries KHO's preservation magic before touching it.
        let folio = NonNull::new(unsafe { bindings::kho_restore_folio(phys) })?;
        // SAFETY: `folio` is a live folio we own; it is in the direct map, as all memory
        // that KHO preserves.
        let addr = unsafe { bindings::folio_address(folio.as_ptr()) };
        let Some(addr) = NonNull::new(addr.cast::<u8>()) else {
            // SAFETY: The reference from `kho_restore_folio()` is ours to drop.
            unsafe { bindings::folio_put(folio.as_ptr()) };
            return None;
        };
        // INVARIANT: The folio is ours now; checked for order 0 below.
        let page = Self { folio, addr };
        // SAFETY: `folio` is a live folio we own.
        if unsafe { bindings::folio_order(page.folio.as_ptr()) } != 0 {
            return None;
        }
        Some(page)
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: The folio is an order-0 folio we own, so its direct-map address spans
        // `PAGE_SIZE` bytes that nobody else writes while we hold it.
        unsafe { core::slice::from_raw_parts(self.addr.as_ptr(), PAGE_SIZE) }
    }
}

impl Drop for RestoredPage {
    fn drop(&mut self) {
        // SAFETY: By the type invariant we own one reference to the folio.
        unsafe { bindings::folio_put(self.folio.as_ptr()) };
    }
}

/// Blocks kept without an allocation each, before [`RestoredBlocks`] uses its tree.
const FIRST_BLOCKS: usize = 8;

/// Every block claimed while restoring the previous kernel's state.
///
/// Claiming goes through KHO, which only hands out pages that the previous kernel
/// preserved, and only once; the index here lets a second visit of the same block be
/// reported as a cycle instead of reaching KHO again. Dropping this value frees every
/// claimed page.
pub(crate) struct RestoredBlocks {
    /// The first blocks claimed, with their addresses: early boot claims only the root
    /// and the FLB page, and a small handover few more; a tree node each would cost an
    /// allocation and a free per page.
    first: [Option<(u64, RestoredPage)>; FIRST_BLOCKS],
    /// The blocks claimed after those.
    pages: RBTree<u64, RestoredPage>,
    count: usize,
    /// The block looked up last, and where its bytes are: readers take a block's
    /// entries one after the other, so most lookups are of the same block again.
    last: Cell<Option<(u64, NonNull<u8>)>>,
}

impl RestoredBlocks {
    /// An empty set.
    pub(crate) fn new() -> Self {
        Self {
            first: [const { None }; FIRST_BLOCKS],
            pages: RBTree::new(),
            count: 0,
            last: Cell::new(None),
        }
    }

    /// Number of pages claimed.
    pub(crate) fn len(&self) -> usize {
        self.count
    }

    fn find(&self, pa: u64) -> Option<&RestoredPage> {
        self.first
            .iter()
            .take(self.count.min(FIRST_BLOCKS))
            .find_map(|slot| slot.as_ref().filter(|(at, _)| *at == pa))
            .map(|(_, page)| page)
            .or_else(|| self.pages.get(&pa))
    }
}

impl BlockSource for RestoredBlocks {
    fn block_size(&self) -> usize {
        PAGE_SIZE
    }

    fn claim(&mut self, pa: u64) -> Result<&[u8], ClaimError> {
        if self.find(pa).is_some() {
            return Err(ClaimError::AlreadyClaimed);
        }
        let page = RestoredPage::claim(pa).ok_or(ClaimError::NotPreserved)?;
        if let Some(slot) = self.first.get_mut(self.count) {
            self.count += 1;
            let (_, page) = slot.insert((pa, page));
            return Ok(page.bytes());
        }
        // Without memory for the index the block cannot be tracked; refusing it drops
        // the chain, and `page` goes back to the allocator.
        self.pages
            .try_create_and_insert(pa, page, GFP_KERNEL)
            .map_err(|_| ClaimError::NotPreserved)?;
        self.count += 1;
        self.pages
            .get(&pa)
            .map(RestoredPage::bytes)
            .ok_or(ClaimError::NotPreserved)
    }

    fn claimed(&self, pa: u64) -> Option<&[u8]> {
        if let Some((last_pa, addr)) = self.last.get() {
            if last_pa == pa {
                // SAFETY: `addr` is the address of a page that `self` holds until it is
                // dropped, and the page spans `PAGE_SIZE` bytes that nobody else writes
                // (see `RestoredPage::bytes`).
                return Some(unsafe { core::slice::from_raw_parts(addr.as_ptr(), PAGE_SIZE) });
            }
        }
        let page = self.find(pa)?;
        self.last.set(Some((pa, page.addr)));
        Some(page.bytes())
    }
}
