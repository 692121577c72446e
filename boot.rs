// SPDX-License-Identifier: GPL-2.0

//! Boot-time entry points: the `liveupdate=` parameter and the two initcalls.
//!
//! The core is built in, and needs an early initcall (to read the previous kernel's
//! state before anything allocates over it) and a late one (after KHO set up its
//! outgoing tree). The kernel crate's `module!` only offers the device level, so the
//! entries are placed in the initcall sections here, the way `module!` does it.

use kernel::ffi::{c_char, c_int};

use kernel::{bindings, prelude::*};

/// An `early_param()` entry: `struct obs_kernel_param` of `include/linux/init.h`, which
/// bindgen does not see.
#[repr(C)]
struct SetupParam {
    name: *const c_char,
    setup: Option<unsafe extern "C" fn(*mut c_char) -> c_int>,
    early: c_int,
}

// SAFETY: The entry is immutable and only read by the boot parameter parser.
unsafe impl Sync for SetupParam {}

#[link_section = ".init.setup"]
#[used]
static LIVEUPDATE_PARAM: SetupParam = SetupParam {
    name: kernel::str::as_char_ptr_in_const_context(c"liveupdate"),
    setup: Some(parse_liveupdate_param),
    early: 1,
};

/// Parses `liveupdate=<bool>`.
///
/// # Safety
///
/// `arg` is null or a NUL-terminated string, as the boot parameter parser passes.
unsafe extern "C" fn parse_liveupdate_param(arg: *mut c_char) -> c_int {
    if arg.is_null() {
        return -(bindings::EINVAL as c_int);
    }
    let mut value = false;
    // SAFETY: `arg` is a NUL-terminated string by the function's contract.
    let err = unsafe { bindings::kstrtobool(arg.cast_const().cast(), &mut value) };
    if err == 0 {
        crate::ENABLED.store(value, kernel::sync::atomic::Relaxed);
    }
    err
}

/// The `luo_corrupt=` entry (`__setup`), test kernels only.
#[cfg(CONFIG_LIVEUPDATE_RUST_CORRUPT_TEST)]
#[link_section = ".init.setup"]
#[used]
static LUO_CORRUPT_PARAM: SetupParam = SetupParam {
    name: kernel::str::as_char_ptr_in_const_context(c"luo_corrupt="),
    setup: Some(parse_corrupt_param),
    early: 0,
};

/// Parses `luo_corrupt=<kind>`; returns 1 (consumed) for a known kind.
///
/// # Safety
///
/// `arg` is null or a NUL-terminated string, as the boot parameter parser passes.
#[cfg(CONFIG_LIVEUPDATE_RUST_CORRUPT_TEST)]
unsafe extern "C" fn parse_corrupt_param(arg: *mut c_char) -> c_int {
    if arg.is_null() {
        return 0;
    }
    // SAFETY: `arg` is a NUL-terminated string by the function's contract.
    let value = unsafe { CStr::from_char_ptr(arg) };
    c_int::from(crate::corrupt::parse(value.to_bytes()))
}

extern "C" fn luo_early_initcall() -> c_int {
    crate::early_init();
    0
}

extern "C" fn luo_late_initcall() -> c_int {
    match crate::late_init() {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

#[cfg(CONFIG_HAVE_ARCH_PREL32_RELOCATIONS)]
core::arch::global_asm!(
    ".pushsection \".initcallearly.init\", \"a\"",
    ".balign 4",
    ".long {early} - .",
    ".popsection",
    ".pushsection \".initcall7.init\", \"a\"",
    ".balign 4",
    ".long {late} - .",
    ".popsection",
    early = sym luo_early_initcall,
    late = sym luo_late_initcall,
);

#[cfg(not(CONFIG_HAVE_ARCH_PREL32_RELOCATIONS))]
mod initcalls {
    #[link_section = ".initcallearly.init"]
    #[used]
    static EARLY: extern "C" fn() -> core::ffi::c_int = super::luo_early_initcall;

    #[link_section = ".initcall7.init"]
    #[used]
    static LATE: extern "C" fn() -> core::ffi::c_int = super::luo_late_initcall;
}
