// SPDX-License-Identifier: GPL-2.0

//! The serialized state that one kernel hands to the next ("luo-v5").
//!
//! Plain `no_std` Rust over bytes and physical addresses, with no dependency on the
//! kernel crate, so the same files build into the kernel and into a host crate
//! (`abi/Cargo.toml`) for unit tests and fuzzing.

pub mod chain;
pub mod format;
pub mod restore;
