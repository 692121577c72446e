// SPDX-License-Identifier: GPL-2.0

//! The ioctl argument protocol of `include/uapi/linux/liveupdate.h`.
//!
//! Every argument structure starts with a `u32` size that userspace sets to the size it
//! knows. The kernel accepts smaller structures down to a minimum (missing fields read
//! as zero) and larger ones whose extra bytes are all zero, and writes back no more than
//! userspace gave.

use kernel::{
    bindings,
    prelude::*,
    uaccess::{UserPtr, UserSlice},
};

use crate::abi::format::{get_bytes, put_bytes};

/// The ioctl type of every LUO command.
const LIVEUPDATE_IOCTL_TYPE: u32 = 0xBA;

/// The command number `_IO(0xBA, nr)`: LUO commands carry no direction or size bits.
pub(crate) const fn ioctl_cmd(nr: u32) -> u32 {
    (LIVEUPDATE_IOCTL_TYPE << 8) | nr
}

/// The number part of an ioctl command (`_IOC_NR`).
pub(crate) const fn ioctl_nr(cmd: u32) -> u32 {
    cmd & 0xff
}

/// Size of `struct liveupdate_ioctl_create_session` and `..._retrieve_session`.
pub(crate) const SESSION_ARG_SIZE: usize = 72;
/// Size of `struct liveupdate_session_preserve_fd` and `..._retrieve_fd`.
pub(crate) const FD_ARG_SIZE: usize = 16;
/// Size of `struct liveupdate_session_finish`.
pub(crate) const FINISH_ARG_SIZE: usize = 8;
/// Size of `struct liveupdate_session_get_name`.
pub(crate) const GET_NAME_ARG_SIZE: usize = 72;

// The layouts above are the ones bindgen sees in the UAPI header.
const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<bindings::liveupdate_ioctl_create_session>() == SESSION_ARG_SIZE);
    assert!(size_of::<bindings::liveupdate_ioctl_retrieve_session>() == SESSION_ARG_SIZE);
    assert!(offset_of!(bindings::liveupdate_ioctl_create_session, fd) == 4);
    assert!(offset_of!(bindings::liveupdate_ioctl_create_session, name) == 8);
    assert!(size_of::<bindings::liveupdate_session_preserve_fd>() == FD_ARG_SIZE);
    assert!(size_of::<bindings::liveupdate_session_retrieve_fd>() == FD_ARG_SIZE);
    assert!(offset_of!(bindings::liveupdate_session_preserve_fd, token) == 8);
    assert!(size_of::<bindings::liveupdate_session_finish>() == FINISH_ARG_SIZE);
    assert!(size_of::<bindings::liveupdate_session_get_name>() == GET_NAME_ARG_SIZE);
    assert!(offset_of!(bindings::liveupdate_session_get_name, name) == 8);
};

/// One ioctl's argument structure of `K` bytes, copied in from userspace.
pub(crate) struct UserCommand<const K: usize> {
    arg: usize,
    user_size: usize,
    /// The structure, zero-filled past what userspace provided.
    pub(crate) buf: [u8; K],
}

/// Reads the leading size field of the argument at `arg`.
pub(crate) fn user_size(arg: usize) -> Result<u32> {
    UserSlice::new(UserPtr::from_addr(arg), 4)
        .reader()
        .read::<u32>()
}

impl<const K: usize> UserCommand<K> {
    /// Copies in the argument of a command whose number is valid; `cmd_matches` tells
    /// whether the whole command is the one that number stands for (`ENOTTY` if not),
    /// `allowed` whether the command applies to its target (`EINVAL` if not).
    ///
    /// The structure is `K` bytes in every known version. When userspace says so, one
    /// copy of `K` bytes reads the size and the fields together; every other case
    /// (another size, a fault) is read again field by field, with the checks in the
    /// same order: size readable (`EFAULT`), command, target, size, extra bytes.
    pub(crate) fn read(arg: usize, cmd_matches: bool, allowed: bool) -> Result<Self> {
        let mut buf = [0u8; K];
        let whole = UserSlice::new(UserPtr::from_addr(arg), K)
            .reader()
            .read_slice(&mut buf)
            .is_ok()
            && u32::from_ne_bytes(get_bytes(&buf, 0)) as usize == K;
        let size = if whole { K as u32 } else { user_size(arg)? };
        if !cmd_matches {
            return Err(ENOTTY);
        }
        if !allowed {
            return Err(EINVAL);
        }
        if whole {
            return Ok(Self {
                arg,
                user_size: K,
                buf,
            });
        }
        Self::fetch(arg, size, K)
    }

    /// Copies in the structure after its size field was read and checked against the
    /// command; fails with `EINVAL` below `min_size` and `E2BIG` for non-zero extra bytes.
    pub(crate) fn fetch(arg: usize, user_size: u32, min_size: usize) -> Result<Self> {
        let user_size = user_size as usize;
        if user_size < min_size {
            return Err(EINVAL);
        }
        if user_size > K {
            // The tail is checked first, and up to its first non-zero byte only, so a
            // fault after that byte still answers E2BIG, as upstream does.
            let tail = UserPtr::from_addr(arg).wrapping_byte_add(K);
            // SAFETY: `check_zeroed_user()` validates the user range itself.
            match unsafe { bindings::check_zeroed_user(tail.as_const_ptr(), user_size - K) } {
                0 => return Err(E2BIG),
                n if n < 0 => return Err(EFAULT),
                _ => {}
            }
        }
        let known = user_size.min(K);
        let mut buf = [0u8; K];
        UserSlice::new(UserPtr::from_addr(arg), known)
            .reader()
            .read_slice(&mut buf[..known])?;
        Ok(Self {
            arg,
            user_size,
            buf,
        })
    }

    /// Reads a native-endian `u32` field.
    pub(crate) fn u32_at(&self, offset: usize) -> u32 {
        u32::from_ne_bytes(get_bytes(&self.buf, offset))
    }

    /// Reads a native-endian `u64` field.
    pub(crate) fn u64_at(&self, offset: usize) -> u64 {
        u64::from_ne_bytes(get_bytes(&self.buf, offset))
    }

    /// Writes a native-endian `i32` field of the reply.
    pub(crate) fn set_i32(&mut self, offset: usize, value: i32) {
        put_bytes(&mut self.buf, offset, &value.to_ne_bytes());
    }

    /// Copies the reply back, no more than userspace's size.
    pub(crate) fn respond(&self) -> Result {
        let len = self.user_size.min(K);
        UserSlice::new(UserPtr::from_addr(self.arg), len)
            .writer()
            .write_slice(&self.buf[..len])
    }
}
