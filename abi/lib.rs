// SPDX-License-Identifier: GPL-2.0

//! Host build of the LUO serialized-state crate, for unit tests and fuzzing.
//!
//! The kernel includes these files through `abi/mod.rs`; this root only exists so
//! that `cargo test` can build the same code outside the kernel.

#![no_std]

#[cfg(test)]
extern crate std;

pub mod chain;
pub mod format;
pub mod restore;

#[cfg(test)]
mod tests;
