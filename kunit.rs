// SPDX-License-Identifier: GPL-2.0

//! KUnit tests of the core's own logic, run at boot in kernels built with `CONFIG_KUNIT`.
//!
//! The serialized format and its reader are also tested on the host (`abi/tests.rs`);
//! here the kernel-side writer is checked against that reader, on real preserved pages.

#[kernel::macros::kunit_tests(luo_rust)]
mod tests {
    use kernel::{page::PAGE_SIZE, prelude::*, rbtree::RBTree};

    use crate::abi::chain::{read_chain, read_header, BlockSource, ClaimError};
    use crate::abi::format::{
        handler_compat, FileEntry, SessionEntry, SessionName, FILE_ENTRY_SIZE, HANDLER_COMPAT_LEN,
        MAX_BLOCKS, SESSION_ENTRY_SIZE,
    };
    use crate::block_chain::OutgoingChain;
    use crate::kho::{kho_enabled, PreservedPage};
    use crate::lean_vec::LeanVec;
    use crate::luo_file::LuoFile;
    use crate::luo_session::position_of_token;
    use crate::name_index::NameIndex;
    use crate::{uapi, Luo};
    use core::num::NonZeroUsize;

    /// Reads chains straight out of this kernel's own outgoing pages.
    struct OwnPages<'a> {
        pages: &'a [PreservedPage],
        claimed: RBTree<u64, usize>,
    }

    impl BlockSource for OwnPages<'_> {
        fn block_size(&self) -> usize {
            PAGE_SIZE
        }

        fn claim(&mut self, pa: u64) -> Result<&[u8], ClaimError> {
            if self.claimed.get(&pa).is_some() {
                return Err(ClaimError::AlreadyClaimed);
            }
            let index = self
                .pages
                .iter()
                .position(|p| p.phys() == pa)
                .ok_or(ClaimError::NotPreserved)?;
            self.claimed
                .try_create_and_insert(pa, index, GFP_KERNEL)
                .map_err(|_| ClaimError::NotPreserved)?;
            Ok(self.pages[index].bytes())
        }

        fn claimed(&self, pa: u64) -> Option<&[u8]> {
            self.claimed.get(&pa).map(|&i| self.pages[i].bytes())
        }
    }

    fn name(s: &[u8]) -> SessionName {
        let mut field = [0u8; 64];
        field[..s.len()].copy_from_slice(s);
        // Test names are short and non-empty.
        SessionName::from_field(&field).unwrap_or_else(|_| panic!("bad test name"))
    }

    #[test]
    fn ioctl_numbers_are_upstreams() {
        assert_eq!(uapi::ioctl_cmd(0x00), 0xba00);
        assert_eq!(uapi::ioctl_cmd(0x43), 0xba43);
        assert_eq!(uapi::ioctl_nr(0xba41), 0x41);
    }

    #[test]
    fn session_names_need_a_nul_and_a_byte() {
        let mut field = [b'n'; 64];
        assert!(SessionName::from_field(&field).is_err());
        field[63] = 0;
        assert_eq!(
            SessionName::from_field(&field).map(|n| n.as_bytes().len()),
            Ok(63)
        );
        field[0] = 0;
        assert!(SessionName::from_field(&field).is_err());
    }

    #[test]
    fn preserved_ids_are_exclusive() {
        let mut luo = Luo::new();
        assert!(luo.mark_preserved(7).is_ok());
        assert!(luo.mark_preserved(3).is_ok());
        assert_eq!(luo.mark_preserved(7), Err(EBUSY));
        luo.unmark_preserved(7);
        assert!(luo.mark_preserved(7).is_ok());
        assert!(luo.preserved.contains(&3));
        assert!(luo.preserved.contains(&7));
        luo.unmark_preserved(3);
        luo.unmark_preserved(7);
        assert!(!luo.preserved.contains(&3));
        assert!(!luo.preserved.contains(&7));
    }

    #[test]
    fn chains_grow_and_shrink_with_their_entries() {
        if !kho_enabled() {
            return;
        }
        let mut chain = OutgoingChain::<SESSION_ENTRY_SIZE>::new();
        assert_eq!(chain.head(), 0);
        assert_eq!(chain.reserve(51), Ok(()));
        assert_eq!(chain.len(), 1);
        assert_eq!(chain.reserve(52), Ok(()));
        assert_eq!(chain.len(), 2);
        chain.shrink(51);
        assert_eq!(chain.len(), 1);
        chain.shrink(0);
        assert_eq!(chain.len(), 0);
        assert_eq!(chain.reserve(MAX_BLOCKS * 51 + 1), Err(ENOSPC));
        assert_eq!(chain.len(), 0);
    }

    #[test]
    fn written_chains_read_back() {
        if !kho_enabled() {
            return;
        }
        let mut chain = OutgoingChain::<FILE_ENTRY_SIZE>::new();
        let count = 150;
        let compat = handler_compat(b"memfd-v2").unwrap_or([0; HANDLER_COMPAT_LEN]);
        assert_eq!(chain.reserve(count), Ok(()));
        let mut written = 0;
        for (i, slot) in (0..count).zip(chain.slots_mut()) {
            let entry = FileEntry {
                compatible: compat,
                data: 1000 + i as u64,
                token: i as u64,
            };
            entry.encode(slot);
            written += 1;
        }
        // The chain has a slot for every entry it was grown for.
        assert_eq!(written, count);
        chain.set_count(count);
        let head = chain.head();
        let pages = chain.pages();
        assert_eq!(pages.len(), 3);
        assert_eq!(read_header(pages[2].bytes()).count, 150 - 126);
        assert_eq!(read_header(pages[2].bytes()).next, 0);

        let mut source = OwnPages {
            pages,
            claimed: RBTree::new(),
        };
        let mut next_token = 0u64;
        let mut ok = true;
        let read = read_chain::<_, FILE_ENTRY_SIZE>(&mut source, head, |_, bytes| {
            let entry = FileEntry::decode(bytes)?;
            ok &= entry.token == next_token && entry.data == 1000 + next_token;
            next_token += 1;
            Ok(())
        });
        assert_eq!(read, Ok(150));
        assert!(ok);
    }

    #[test]
    fn session_entries_keep_names_and_heads() {
        let entry = SessionEntry {
            name: name(b"vm-42"),
            files_pa: 0x1234000,
            files_count: 9,
        };
        let mut bytes = [0u8; SESSION_ENTRY_SIZE];
        entry.encode(&mut bytes);
        assert_eq!(SessionEntry::decode(&bytes), Ok(entry));
    }

    /// A NUL-padded name field made from `n`.
    fn numbered(n: usize) -> [u8; 64] {
        let mut field = [0u8; 64];
        let mut digits = [0u8; 20];
        let (mut n, mut len) = (n, 0);
        loop {
            digits[len] = b'0' + (n % 10) as u8;
            len += 1;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        field[..2].copy_from_slice(b"s-");
        for i in 0..len {
            field[2 + i] = digits[len - 1 - i];
        }
        field
    }

    #[test]
    fn name_index_finds_what_it_holds_through_growth_and_removal() {
        const N: usize = 3000;
        // Values are never zero: an empty slot is.
        let value = |i: usize| NonZeroUsize::MIN.saturating_add(i);
        let mut index = NameIndex::<NonZeroUsize>::new();
        for i in 0..N {
            assert!(index.reserve(1).is_ok());
            let hash = index.hash(&numbered(i));
            assert!(index.get(hash, |&v| v == value(i)).is_none());
            assert!(index.insert_reserved(hash, value(i)).is_ok());
        }
        assert_eq!(index.len(), N);
        assert_eq!(index.values().count(), N);
        // Remove every third value, then check that every other one is still found:
        // removal shifts later values back and shrinks the table.
        for i in (0..N).step_by(3) {
            let hash = index.hash(&numbered(i));
            assert_eq!(index.remove(hash, |&v| v == value(i)), Some(value(i)));
            assert_eq!(index.remove(hash, |&v| v == value(i)), None);
        }
        for i in 0..N {
            let hash = index.hash(&numbered(i));
            assert_eq!(index.get(hash, |&v| v == value(i)).is_some(), i % 3 != 0);
        }
        for i in 0..N {
            if i % 3 != 0 {
                let hash = index.hash(&numbered(i));
                assert_eq!(index.remove(hash, |&v| v == value(i)), Some(value(i)));
            }
        }
        assert_eq!(index.len(), 0);
        assert_eq!(index.values().count(), 0);
        // The key stays: a hash taken before is still the hash of that name.
        let before = index.hash(&numbered(5));
        assert!(index.reserve(1).is_ok());
        assert_eq!(index.hash(&numbered(5)), before);
    }

    #[test]
    fn lean_vec_behaves_as_its_vector() {
        let mut v = LeanVec::<u64>::new();
        assert_eq!(v.capacity(), 0);
        drop(v);
        v = LeanVec::default();
        for i in 0..100 {
            assert!(v.push(i, GFP_KERNEL).is_ok());
        }
        assert_eq!(v.iter().sum::<u64>(), 4950);
        let taken = core::mem::take(&mut v);
        assert_eq!(taken.len(), 100);
        assert_eq!(v.len(), 0);
    }

    #[test]
    fn lean_vec_drops_each_element_once() {
        struct Counted<'a>(&'a core::cell::Cell<usize>);
        impl Drop for Counted<'_> {
            fn drop(&mut self) {
                self.0.set(self.0.get() + 1);
            }
        }
        let drops = core::cell::Cell::new(0);
        let mut v = LeanVec::new();
        for _ in 0..3000 {
            assert!(v.push(Counted(&drops), GFP_KERNEL).is_ok());
        }
        drop(v.pop());
        assert_eq!(drops.get(), 1);
        drop(v);
        assert_eq!(drops.get(), 3000);
    }

    #[test]
    fn token_search_starts_after_the_last_hit_and_wraps() {
        let mut files = KVec::new();
        for token in [5u64, 9, 2, 7] {
            assert!(files
                .push(LuoFile::incoming(None, 0, token), GFP_KERNEL)
                .is_ok());
        }
        assert_eq!(position_of_token(&files, 5, 0), Some(0));
        assert_eq!(position_of_token(&files, 2, 1), Some(2));
        assert_eq!(position_of_token(&files, 9, 3), Some(1));
        assert_eq!(position_of_token(&files, 7, 4), Some(3));
        assert_eq!(position_of_token(&files, 5, 99), Some(0));
        assert_eq!(position_of_token(&files, 3, 2), None);
        assert_eq!(position_of_token(&[], 5, 0), None);
    }
}
