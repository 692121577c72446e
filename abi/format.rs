// SPDX-License-Identifier: GPL-2.0

//! Byte layouts of the "luo-v5" structures.
//!
//! Every structure is packed, native-endian, and made of 64-bit words and fixed-size
//! character arrays, exactly as `include/linux/kho/abi/luo.h` and
//! `include/linux/kho/abi/block.h` define them. Values are encoded into and decoded
//! from fixed-size byte arrays, so no reference into memory handed over by the previous
//! kernel is ever reinterpreted as a Rust type.

/// Compatible string of the root, checked before anything else is read.
pub const LUO_COMPATIBLE: &[u8] = b"luo-v5";
/// Size of the compatible field of the root: the string, its NUL, padded to 8 bytes.
pub const LUO_COMPAT_LEN: usize = 8;
/// Size of `struct luo_ser`, the root.
pub const ROOT_SIZE: usize = 32;
/// Size of `struct kho_block_header_ser`, at the start of every block.
pub const BLOCK_HEADER_SIZE: usize = 16;
/// Size of a session name, NUL included (`LIVEUPDATE_SESSION_NAME_LENGTH`).
pub const SESSION_NAME_LEN: usize = 64;
/// Size of a file handler's compatible string (`LIVEUPDATE_HNDL_COMPAT_LENGTH`).
pub const HANDLER_COMPAT_LEN: usize = 48;
/// Size of an FLB's compatible string (`LIVEUPDATE_FLB_COMPAT_LENGTH`).
pub const FLB_COMPAT_LEN: usize = 48;
/// Size of `struct luo_session_ser`.
pub const SESSION_ENTRY_SIZE: usize = 80;
/// Size of `struct luo_file_ser`.
pub const FILE_ENTRY_SIZE: usize = 64;
/// Size of `struct luo_flb_header_ser`.
pub const FLB_HEADER_SIZE: usize = 16;
/// Size of `struct luo_flb_ser`.
pub const FLB_ENTRY_SIZE: usize = 64;
/// Most blocks one chain may have, when written and when read back.
pub const MAX_BLOCKS: usize = 10000;

/// Number of entries of `entry_size` bytes that fit in one block after its header.
pub const fn entries_per_block(block_size: usize, entry_size: usize) -> usize {
    (block_size - BLOCK_HEADER_SIZE) / entry_size
}

/// Number of blocks needed to hold `count` entries, `per_block` to a block.
pub const fn blocks_for(count: usize, per_block: usize) -> usize {
    count.div_ceil(per_block)
}

/// Byte offset of entry `index` inside its block.
pub const fn entry_offset(index: usize, entry_size: usize) -> usize {
    BLOCK_HEADER_SIZE + index * entry_size
}

/// Why a structure from the previous kernel was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormatError {
    /// The root does not start with [`LUO_COMPATIBLE`].
    IncompatibleRoot,
    /// A string field has no NUL inside its array.
    Unterminated,
    /// A session name is empty.
    EmptyName,
    /// The FLB header's page count or entry count is impossible.
    BadFlbHeader,
}

/// The `M` bytes at `offset`, zeros if `bytes` is too short.
///
/// Fixed-size copies go through arrays: an array copy stays inline, where
/// `copy_from_slice()` calls out of line (a length check, then `memcpy()`) in the
/// kernel's build of `core`, which cost more than the copy itself on the serialize,
/// restore and ioctl paths.
#[inline]
pub fn get_bytes<const M: usize>(bytes: &[u8], offset: usize) -> [u8; M] {
    offset
        .checked_add(M)
        .and_then(|end| bytes.get(offset..end))
        .and_then(|field| <[u8; M]>::try_from(field).ok())
        .unwrap_or([0; M])
}

/// Writes `src` at `offset`; nothing if `bytes` is too short.
#[inline]
pub fn put_bytes<const M: usize>(bytes: &mut [u8], offset: usize, src: &[u8; M]) {
    if let Some(field) = offset
        .checked_add(M)
        .and_then(|end| bytes.get_mut(offset..end))
        .and_then(|field| <&mut [u8; M]>::try_from(field).ok())
    {
        *field = *src;
    }
}

#[inline]
fn get_u64(bytes: &[u8], offset: usize) -> u64 {
    u64::from_ne_bytes(get_bytes(bytes, offset))
}

#[inline]
fn put_u64(bytes: &mut [u8], offset: usize, value: u64) {
    put_bytes(bytes, offset, &value.to_ne_bytes());
}

/// The high bit of every zero byte of `word`, and maybe of bytes above the lowest
/// zero byte: the lowest set bit marks the first zero byte in memory order of a
/// little-endian word.
#[inline]
fn zero_bytes(word: u64) -> u64 {
    word.wrapping_sub(0x0101_0101_0101_0101) & !word & 0x8080_8080_8080_8080
}

/// Cuts the C string in `field` at its first NUL: zeroes every byte after it, and
/// returns the string's length, or `None` when no NUL terminates it.
///
/// Eight bytes at a time (`M` is a multiple of 8): names are read for every restored
/// session and file, and a byte loop plus a `memset()` call cost more than the rest of
/// reading an entry.
#[inline]
pub fn cut_c_str<const M: usize>(field: &mut [u8; M]) -> Option<usize> {
    let mut at = 0;
    while at + 8 <= M {
        let word = u64::from_le_bytes(get_bytes(field, at));
        let zeros = zero_bytes(word);
        if zeros != 0 {
            let nul = (zeros.trailing_zeros() / 8) as usize;
            let keep = u64::MAX.checked_shr(64 - 8 * nul as u32).unwrap_or(0);
            put_bytes(field, at, &(word & keep).to_le_bytes());
            // The rest is zero already but for stale bytes of another writer.
            let mut rest = 0u64;
            let mut next = at + 8;
            while next + 8 <= M {
                rest |= u64::from_ne_bytes(get_bytes(field, next));
                next += 8;
            }
            if rest != 0 {
                if let Some(tail) = field.get_mut(at + 8..) {
                    tail.fill(0);
                }
            }
            return Some(at + nul);
        }
        at += 8;
    }
    None
}

/// Writes the C string in `field` at `offset` of `out`, eight bytes at a time up to
/// the eight that hold its NUL (or all of `field` if it has none); the rest of the
/// destination must be zero already, and stays so.
#[inline]
fn put_c_str_over_zero<const M: usize>(out: &mut [u8], offset: usize, field: &[u8; M]) {
    let mut at = 0;
    while at + 8 <= M {
        let word: [u8; 8] = get_bytes(field, at);
        put_bytes(out, offset + at, &word);
        if zero_bytes(u64::from_le_bytes(word)) != 0 {
            break;
        }
        at += 8;
    }
}

/// Length of the C string in `bytes`, or `None` when no NUL terminates it.
pub fn c_str_len(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == 0)
}

/// The C string in `bytes` without its NUL, or all of `bytes` when none terminates it.
pub fn c_str_bytes(bytes: &[u8]) -> &[u8] {
    &bytes[..c_str_len(bytes).unwrap_or(bytes.len())]
}

/// Copies the C string `src` into `dst`, NUL-padding the rest; `src` must fit with its NUL.
fn put_c_str(dst: &mut [u8], src: &[u8]) {
    let len = src.len().min(dst.len() - 1);
    dst[..len].copy_from_slice(&src[..len]);
    dst[len..].fill(0);
}

/// `struct luo_ser`: the root, in its own preserved page, found through the KHO tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Root {
    /// How many live updates led to the kernel that wrote this root.
    pub liveupdate_num: u64,
    /// Physical address of the first session block, 0 when there are no sessions.
    pub sessions_pa: u64,
    /// Physical address of the FLB page, 0 when there is none.
    pub flbs_pa: u64,
}

impl Root {
    /// Offset of `compatible`.
    pub const COMPATIBLE_OFFSET: usize = 0;
    /// Offset of `liveupdate_num`.
    pub const LIVEUPDATE_NUM_OFFSET: usize = 8;
    /// Offset of `sessions_pa`.
    pub const SESSIONS_PA_OFFSET: usize = 16;
    /// Offset of `flbs_pa`.
    pub const FLBS_PA_OFFSET: usize = 24;

    /// Writes the root, compatible string included.
    pub fn encode(&self, out: &mut [u8; ROOT_SIZE]) {
        let compat = Self::COMPATIBLE_OFFSET;
        put_c_str(&mut out[compat..compat + LUO_COMPAT_LEN], LUO_COMPATIBLE);
        put_u64(out, Self::LIVEUPDATE_NUM_OFFSET, self.liveupdate_num);
        put_u64(out, Self::SESSIONS_PA_OFFSET, self.sessions_pa);
        put_u64(out, Self::FLBS_PA_OFFSET, self.flbs_pa);
    }

    /// Reads a root, refusing any other compatible string or padding.
    pub fn decode(bytes: &[u8; ROOT_SIZE]) -> Result<Self, FormatError> {
        let mut expected = [0u8; LUO_COMPAT_LEN];
        put_c_str(&mut expected, LUO_COMPATIBLE);
        let compat = Self::COMPATIBLE_OFFSET;
        if bytes[compat..compat + LUO_COMPAT_LEN] != expected {
            return Err(FormatError::IncompatibleRoot);
        }
        Ok(Self {
            liveupdate_num: get_u64(bytes, Self::LIVEUPDATE_NUM_OFFSET),
            sessions_pa: get_u64(bytes, Self::SESSIONS_PA_OFFSET),
            flbs_pa: get_u64(bytes, Self::FLBS_PA_OFFSET),
        })
    }
}

/// `struct kho_block_header_ser`: the link and fill level at the start of a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BlockHeader {
    /// Physical address of the next block, 0 in the last one.
    pub next: u64,
    /// Number of valid entries in this block.
    pub count: u64,
}

impl BlockHeader {
    /// Offset of `next`.
    pub const NEXT_OFFSET: usize = 0;
    /// Offset of `count`.
    pub const COUNT_OFFSET: usize = 8;

    /// Writes the header.
    #[inline]
    pub fn encode(&self, out: &mut [u8; BLOCK_HEADER_SIZE]) {
        put_u64(out, Self::NEXT_OFFSET, self.next);
        put_u64(out, Self::COUNT_OFFSET, self.count);
    }

    /// Reads a header; the caller checks `count` against the block's capacity.
    #[inline]
    pub fn decode(bytes: &[u8; BLOCK_HEADER_SIZE]) -> Self {
        Self {
            next: get_u64(bytes, Self::NEXT_OFFSET),
            count: get_u64(bytes, Self::COUNT_OFFSET),
        }
    }
}

/// A session name: 1 to 63 bytes, stored NUL-padded in 64.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SessionName {
    bytes: [u8; SESSION_NAME_LEN],
    len: u8,
}

impl SessionName {
    /// Accepts `raw` (a 64-byte name field) when it holds a non-empty NUL-terminated
    /// string; bytes after the NUL are ignored, as the writer may leave stale ones there.
    pub fn from_field(raw: &[u8; SESSION_NAME_LEN]) -> Result<Self, FormatError> {
        // Cut in place: a 64-byte move is a `memcpy()` call in a kernel built for size.
        let mut name = Self {
            bytes: *raw,
            len: 0,
        };
        let len = cut_c_str(&mut name.bytes).ok_or(FormatError::Unterminated)?;
        if len == 0 {
            return Err(FormatError::EmptyName);
        }
        // A NUL was found within 64 bytes, so `len` is at most 63.
        name.len = len as u8;
        Ok(name)
    }

    /// The name without its NUL.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// The NUL-padded 64-byte field.
    pub fn as_field(&self) -> &[u8; SESSION_NAME_LEN] {
        &self.bytes
    }
}

impl core::fmt::Debug for SessionName {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for &b in self.as_bytes() {
            if b.is_ascii_graphic() || b == b' ' {
                write!(f, "{}", b as char)?;
            } else {
                write!(f, "\\x{:02x}", b)?;
            }
        }
        Ok(())
    }
}

/// `struct luo_session_ser`: one session and the head of its file chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionEntry {
    /// The session's name.
    pub name: SessionName,
    /// Physical address of the first file block, 0 when the session has no files.
    pub files_pa: u64,
    /// Number of files in the session's chain.
    pub files_count: u64,
}

impl SessionEntry {
    /// Offset of `name`.
    pub const NAME_OFFSET: usize = 0;
    /// Offset of `file_set_ser.files`.
    pub const FILES_PA_OFFSET: usize = 64;
    /// Offset of `file_set_ser.count`.
    pub const FILES_COUNT_OFFSET: usize = 72;

    /// Writes the entry.
    pub fn encode(&self, out: &mut [u8; SESSION_ENTRY_SIZE]) {
        put_bytes(out, Self::NAME_OFFSET, self.name.as_field());
        put_u64(out, Self::FILES_PA_OFFSET, self.files_pa);
        put_u64(out, Self::FILES_COUNT_OFFSET, self.files_count);
    }

    /// Writes an entry from its fields (the NUL-padded name of a valid [`SessionName`],
    /// the head of the file chain and its number of files) into one whose name field is
    /// all zeros: the name is written up to the eight bytes that hold its NUL, the rest
    /// stays zero.
    ///
    /// The reboot path writes every session this way, into blocks that are zeroed when
    /// allocated and cleared again when a reboot attempt fails: a whole 64-byte copy is
    /// a call to `memcpy()` in a kernel built for size, and most names are short.
    #[inline]
    pub fn encode_fields_over_zero(
        out: &mut [u8; SESSION_ENTRY_SIZE],
        name: &[u8; SESSION_NAME_LEN],
        files_pa: u64,
        files_count: u64,
    ) {
        put_c_str_over_zero(out, Self::NAME_OFFSET, name);
        put_u64(out, Self::FILES_PA_OFFSET, files_pa);
        put_u64(out, Self::FILES_COUNT_OFFSET, files_count);
    }

    /// Reads the entry, validating the name.
    #[inline]
    pub fn decode(bytes: &[u8; SESSION_ENTRY_SIZE]) -> Result<Self, FormatError> {
        let raw: [u8; SESSION_NAME_LEN] = get_bytes(bytes, Self::NAME_OFFSET);
        Ok(Self {
            name: SessionName::from_field(&raw)?,
            files_pa: get_u64(bytes, Self::FILES_PA_OFFSET),
            files_count: get_u64(bytes, Self::FILES_COUNT_OFFSET),
        })
    }
}

/// A handler's compatible string, as stored in a file entry.
pub type HandlerCompat = [u8; HANDLER_COMPAT_LEN];

/// `struct luo_file_ser`: one preserved file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileEntry {
    /// Compatible string of the handler that preserved the file, NUL-padded.
    pub compatible: HandlerCompat,
    /// The handler's opaque handle to its preserved state.
    pub data: u64,
    /// The token userspace chose for the file.
    pub token: u64,
}

impl FileEntry {
    /// Offset of `compatible`.
    pub const COMPATIBLE_OFFSET: usize = 0;
    /// Offset of `data`.
    pub const DATA_OFFSET: usize = 48;
    /// Offset of `token`.
    pub const TOKEN_OFFSET: usize = 56;

    /// Writes an entry from its fields into one whose compatible field is all zeros:
    /// the string in `compatible` is written up to the eight bytes that hold its NUL,
    /// the rest stays zero (see [`SessionEntry::encode_fields_over_zero`]).
    #[inline]
    pub fn encode_fields_over_zero(
        out: &mut [u8; FILE_ENTRY_SIZE],
        compatible: &HandlerCompat,
        data: u64,
        token: u64,
    ) {
        put_c_str_over_zero(out, Self::COMPATIBLE_OFFSET, compatible);
        put_u64(out, Self::DATA_OFFSET, data);
        put_u64(out, Self::TOKEN_OFFSET, token);
    }

    /// Writes the entry.
    #[inline]
    pub fn encode(&self, out: &mut [u8; FILE_ENTRY_SIZE]) {
        let compat = Self::COMPATIBLE_OFFSET;
        put_bytes(out, compat, &self.compatible);
        put_u64(out, Self::DATA_OFFSET, self.data);
        put_u64(out, Self::TOKEN_OFFSET, self.token);
    }

    /// Reads the entry; the compatible string must be NUL-terminated and non-empty.
    #[inline]
    pub fn decode(bytes: &[u8; FILE_ENTRY_SIZE]) -> Result<Self, FormatError> {
        let mut entry = Self {
            compatible: [0; HANDLER_COMPAT_LEN],
            data: 0,
            token: 0,
        };
        entry.decode_from(bytes).map(|()| entry)
    }

    /// [`FileEntry::decode`] into `self`, for readers of many entries: moving an entry
    /// is a call to `memcpy()` in a kernel built for size. On error `self` holds
    /// garbage.
    #[inline]
    pub fn decode_from(&mut self, bytes: &[u8; FILE_ENTRY_SIZE]) -> Result<(), FormatError> {
        self.compatible = get_bytes(bytes, Self::COMPATIBLE_OFFSET);
        self.data = get_u64(bytes, Self::DATA_OFFSET);
        self.token = get_u64(bytes, Self::TOKEN_OFFSET);
        // Only the string is kept: stale bytes after the NUL must not take part in
        // handler lookup.
        match cut_c_str(&mut self.compatible) {
            None => Err(FormatError::Unterminated),
            Some(0) => Err(FormatError::EmptyName),
            Some(_) => Ok(()),
        }
    }

    /// The compatible string without its NUL.
    pub fn compatible_str(&self) -> &[u8] {
        c_str_bytes(&self.compatible)
    }
}

/// `struct luo_flb_header_ser`: the start of the FLB page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlbHeader {
    /// Pages that the FLB area spans; always 1 from either core.
    pub pgcnt: u64,
    /// Number of FLB entries that follow the header.
    pub count: u64,
}

impl FlbHeader {
    /// Offset of `pgcnt`.
    pub const PGCNT_OFFSET: usize = 0;
    /// Offset of `count`.
    pub const COUNT_OFFSET: usize = 8;

    /// Writes the header.
    pub fn encode(&self, out: &mut [u8; FLB_HEADER_SIZE]) {
        put_u64(out, Self::PGCNT_OFFSET, self.pgcnt);
        put_u64(out, Self::COUNT_OFFSET, self.count);
    }

    /// Reads the header and checks that its entries fit in its pages.
    pub fn decode(bytes: &[u8; FLB_HEADER_SIZE], page_size: usize) -> Result<Self, FormatError> {
        let header = Self {
            pgcnt: get_u64(bytes, Self::PGCNT_OFFSET),
            count: get_u64(bytes, Self::COUNT_OFFSET),
        };
        if header.pgcnt != 1 {
            return Err(FormatError::BadFlbHeader);
        }
        let capacity = (page_size - FLB_HEADER_SIZE) / FLB_ENTRY_SIZE;
        if header.count > capacity as u64 {
            return Err(FormatError::BadFlbHeader);
        }
        Ok(header)
    }
}

/// An FLB's compatible string, as stored in an FLB entry.
pub type FlbCompat = [u8; FLB_COMPAT_LEN];

/// `struct luo_flb_ser`: one File-Lifecycle-Bound object, after the FLB header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlbEntry {
    /// The FLB's compatible string, NUL-padded.
    pub name: FlbCompat,
    /// The FLB's opaque handle.
    pub data: u64,
    /// How many preserved files depend on it.
    pub count: u64,
}

impl FlbEntry {
    /// Offset of `name`.
    pub const NAME_OFFSET: usize = 0;
    /// Offset of `data`.
    pub const DATA_OFFSET: usize = 48;
    /// Offset of `count`.
    pub const COUNT_OFFSET: usize = 56;

    /// Writes the entry.
    pub fn encode(&self, out: &mut [u8; FLB_ENTRY_SIZE]) {
        let name = Self::NAME_OFFSET;
        put_bytes(out, name, &self.name);
        put_u64(out, Self::DATA_OFFSET, self.data);
        put_u64(out, Self::COUNT_OFFSET, self.count);
    }

    /// Reads the entry; the name must be NUL-terminated and non-empty.
    pub fn decode(bytes: &[u8; FLB_ENTRY_SIZE]) -> Result<Self, FormatError> {
        let field = &bytes[Self::NAME_OFFSET..Self::NAME_OFFSET + FLB_COMPAT_LEN];
        let mut name = [0u8; FLB_COMPAT_LEN];
        match c_str_len(field) {
            None => return Err(FormatError::Unterminated),
            Some(0) => return Err(FormatError::EmptyName),
            Some(len) => name[..len].copy_from_slice(&field[..len]),
        }
        Ok(Self {
            name,
            data: get_u64(bytes, Self::DATA_OFFSET),
            count: get_u64(bytes, Self::COUNT_OFFSET),
        })
    }

    /// Byte offset of FLB entry `index` in the FLB page.
    pub const fn offset(index: usize) -> usize {
        FLB_HEADER_SIZE + index * FLB_ENTRY_SIZE
    }
}

/// Copies the C string `src` (without NUL) into a NUL-padded handler compatible field.
///
/// Returns `None` when it does not fit with its NUL.
pub fn handler_compat(src: &[u8]) -> Option<HandlerCompat> {
    if src.is_empty() || src.len() >= HANDLER_COMPAT_LEN || src.contains(&0) {
        return None;
    }
    let mut out = [0u8; HANDLER_COMPAT_LEN];
    out[..src.len()].copy_from_slice(src);
    Some(out)
}
