// SPDX-License-Identifier: GPL-2.0

//! One chain read alone, checked against a reference walk; see `luo_abi_fuzz`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = luo_abi_fuzz::check_chain(data);
});
