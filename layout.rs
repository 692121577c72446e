// SPDX-License-Identifier: GPL-2.0

//! Build-time proof that the serialized format in `abi/` is the C one.
//!
//! `abi/` encodes every structure by offset, without kernel dependencies. Here each
//! size and offset it uses is compared with what bindgen sees in
//! `include/linux/kho/abi/`, so any drift on either side fails the build.

use core::mem::{offset_of, size_of};

use kernel::bindings;

use crate::abi::format::*;

/// Whether `c` is `rust` followed by its NUL.
const fn same_c_string(rust: &[u8], c: &[u8]) -> bool {
    if c.len() != rust.len() + 1 || c[rust.len()] != 0 {
        return false;
    }
    let mut i = 0;
    while i < rust.len() {
        if rust[i] != c[i] {
            return false;
        }
        i += 1;
    }
    true
}

macro_rules! same {
    ($rust:expr, $c:expr) => {
        const _: () = assert!($rust == $c, "serialized ABI differs from the C headers");
    };
}

same!(ROOT_SIZE, size_of::<bindings::luo_ser>());
same!(
    Root::COMPATIBLE_OFFSET,
    offset_of!(bindings::luo_ser, compatible)
);
same!(
    LUO_COMPAT_LEN,
    offset_of!(bindings::luo_ser, liveupdate_num) - offset_of!(bindings::luo_ser, compatible)
);
const _: () = assert!(
    same_c_string(LUO_COMPATIBLE, bindings::LUO_ABI_COMPATIBLE),
    "compatible string differs from LUO_ABI_COMPATIBLE"
);
same!(
    Root::LIVEUPDATE_NUM_OFFSET,
    offset_of!(bindings::luo_ser, liveupdate_num)
);
same!(
    Root::SESSIONS_PA_OFFSET,
    offset_of!(bindings::luo_ser, sessions_pa)
);
same!(Root::FLBS_PA_OFFSET, offset_of!(bindings::luo_ser, flbs_pa));

same!(
    BLOCK_HEADER_SIZE,
    size_of::<bindings::kho_block_header_ser>()
);
same!(
    BlockHeader::NEXT_OFFSET,
    offset_of!(bindings::kho_block_header_ser, next)
);
same!(
    BlockHeader::COUNT_OFFSET,
    offset_of!(bindings::kho_block_header_ser, count)
);

same!(SESSION_ENTRY_SIZE, size_of::<bindings::luo_session_ser>());
same!(
    SESSION_NAME_LEN,
    bindings::LIVEUPDATE_SESSION_NAME_LENGTH as usize
);
same!(
    SessionEntry::NAME_OFFSET,
    offset_of!(bindings::luo_session_ser, name)
);
same!(
    SessionEntry::FILES_PA_OFFSET,
    offset_of!(bindings::luo_session_ser, file_set_ser)
        + offset_of!(bindings::luo_file_set_ser, files)
);
same!(
    SessionEntry::FILES_COUNT_OFFSET,
    offset_of!(bindings::luo_session_ser, file_set_ser)
        + offset_of!(bindings::luo_file_set_ser, count)
);

same!(FILE_ENTRY_SIZE, size_of::<bindings::luo_file_ser>());
same!(
    HANDLER_COMPAT_LEN,
    bindings::LIVEUPDATE_HNDL_COMPAT_LENGTH as usize
);
same!(
    FileEntry::COMPATIBLE_OFFSET,
    offset_of!(bindings::luo_file_ser, compatible)
);
same!(
    FileEntry::DATA_OFFSET,
    offset_of!(bindings::luo_file_ser, data)
);
same!(
    FileEntry::TOKEN_OFFSET,
    offset_of!(bindings::luo_file_ser, token)
);

same!(FLB_HEADER_SIZE, size_of::<bindings::luo_flb_header_ser>());
same!(
    FlbHeader::PGCNT_OFFSET,
    offset_of!(bindings::luo_flb_header_ser, pgcnt)
);
same!(
    FlbHeader::COUNT_OFFSET,
    offset_of!(bindings::luo_flb_header_ser, count)
);
same!(FLB_ENTRY_SIZE, size_of::<bindings::luo_flb_ser>());
same!(
    FLB_COMPAT_LEN,
    bindings::LIVEUPDATE_FLB_COMPAT_LENGTH as usize
);
same!(
    FlbEntry::NAME_OFFSET,
    offset_of!(bindings::luo_flb_ser, name)
);
same!(
    FlbEntry::DATA_OFFSET,
    offset_of!(bindings::luo_flb_ser, data)
);
same!(
    FlbEntry::COUNT_OFFSET,
    offset_of!(bindings::luo_flb_ser, count)
);
