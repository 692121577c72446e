// SPDX-License-Identifier: GPL-2.0

//! The whole restore path over a forged old-kernel memory; see `luo_abi_fuzz`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| luo_abi_fuzz::check_restore(data));
