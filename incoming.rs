// SPDX-License-Identifier: GPL-2.0

//! The sessions handed over by the previous kernel, from restore until they finish.
//!
//! Restore runs at the first open of `/dev/liveupdate` (early boot only reads the root)
//! and may bring back hundreds of thousands of sessions, most of which stay untouched
//! until userspace asks for them. Each is a record, the
//! [`Session`](crate::luo_session::Session) itself with two flags: the first few in
//! place, without an allocation, the others in arrays of 64 KiB. A retrieved session's
//! fd points into its record. One allocation per restored session was the dominant
//! cost of a large restore: after a kexec with KHO, the page allocator hands out single
//! unmovable pages slowly, one pageblock claim attempt per slab page, while requests of
//! 64 KiB claim a whole pageblock at once.

use core::cell::Cell;
use core::num::NonZeroU32;

use kernel::prelude::*;

use crate::abi::format::{
    c_str_bytes, FileEntry, HandlerCompat, SessionEntry, SessionName, SESSION_NAME_LEN,
};
use crate::abi::restore::{OutOfMemory, Rejection, RestoreSink};
use crate::lean_vec::LeanVec;
use crate::luo_file::{FileHandler, LuoFile};
use crate::luo_session::Session;
use crate::name_index::NameIndex;
use crate::Luo;

/// One session from the previous kernel.
///
/// Records are shared (`&IncomingSlot`) once restore is over, as a session fd may point
/// to its session in one at any time; what changes afterwards is in cells.
pub(crate) struct IncomingSlot {
    /// The session, with its files. Once retrieved, its session fd points here.
    pub(crate) session: Session,
    /// Whether a session fd holds the session now; only that fd's release clears it.
    retrieved: Cell<bool>,
    /// Whether the session finished: it is gone, although the index still finds the
    /// record (the lookup then answers that there is no such session).
    finished: Cell<bool>,
}

impl IncomingSlot {
    /// Whether a session fd holds the session now.
    pub(crate) fn is_retrieved(&self) -> bool {
        self.retrieved.get()
    }

    /// Records that a session fd now holds the session.
    pub(crate) fn mark_retrieved(&self) {
        self.retrieved.set(true);
    }
}

/// Bytes per array of records: large enough that each array is a multi-page allocation.
const CHUNK_BYTES: usize = 64 * 1024;

/// Records per array.
const PER_CHUNK: usize = CHUNK_BYTES / core::mem::size_of::<IncomingSlot>();

/// The name index's entry for the record at position `index`: the position plus one, so
/// that an empty slot is all zero. Positions stay far below `u32::MAX`, as there are at
/// most as many as sessions in a chain.
fn index_entry(index: u32) -> NonZeroU32 {
    NonZeroU32::MIN.saturating_add(index)
}

/// The position of the record that `entry` of the name index stands for.
fn entry_index(entry: NonZeroU32) -> u32 {
    entry.get() - 1
}

/// Sessions up to which names are compared one by one instead of hashed: a table costs
/// an allocation, a random key and a hash per lookup, more than a few comparisons.
const FEW: usize = 8;

/// The incoming sessions.
///
/// # Invariants
///
/// Records `0..FEW` are in `few`, the next `PER_CHUNK` in `first`, the others in `more`,
/// `PER_CHUNK` to an array. `by_name` is empty, with at most [`FEW`] records, or holds
/// every record: each value is the position of a record, under the hash of the
/// record's name. Records are added
/// only while restore runs, before any session fd exists; after that none is moved or
/// changed through a mutable reference, and none is removed while any is live: a
/// finished session's record stays, marked, until the last one finishes and all are
/// freed together. So a session fd's pointer to its session stays valid, and the index
/// never needs to forget a name to make room for another.
pub(crate) struct IncomingSessions {
    /// The first records, in place: the usual handover, a handful of sessions, neither
    /// allocates when it is restored nor frees when the last session is gone.
    few: [Option<IncomingSlot>; FEW],
    first: LeanVec<IncomingSlot>,
    more: LeanVec<LeanVec<IncomingSlot>>,
    by_name: NameIndex<NonZeroU32>,
    /// Records, live or not.
    records: usize,
    /// Records whose session has not finished.
    live: usize,
    /// Records that restore said to expect: the first arrays are no larger than that.
    expected: usize,
}

impl IncomingSessions {
    /// No sessions.
    pub(crate) const fn new() -> Self {
        Self {
            few: [const { None }; FEW],
            first: LeanVec::new(),
            more: LeanVec::new(),
            by_name: NameIndex::new(),
            records: 0,
            live: 0,
            expected: 0,
        }
    }

    /// The record at position `index`.
    fn record(&self, index: u32) -> Option<&IncomingSlot> {
        let i = index as usize;
        let Some(i) = i.checked_sub(FEW) else {
            return self.few.get(i)?.as_ref();
        };
        match i.checked_sub(PER_CHUNK) {
            None => self.first.get(i),
            Some(j) => self.more.get(j / PER_CHUNK)?.get(j % PER_CHUNK),
        }
    }

    /// Makes room for `count` more sessions.
    pub(crate) fn reserve(&mut self, count: usize) -> Result {
        let records = self.records.checked_add(count).ok_or(ENOMEM)?;
        self.expected = self.expected.max(records);
        let more = records.saturating_sub(FEW + PER_CHUNK).div_ceil(PER_CHUNK);
        let have = self.more.len();
        if more > have {
            self.more.reserve(more - have, GFP_KERNEL)?;
        }
        if self.by_name.has_table() {
            return self.by_name.reserve(count);
        }
        if records <= FEW {
            return Ok(());
        }
        // From a few sessions to many: every record goes into a new table. The few are
        // all in place, in position order.
        self.by_name.reserve(records)?;
        for (index, record) in (0u32..).zip(self.few.iter().flatten()) {
            let hash = self.by_name.hash(record.session.name.as_field());
            // Cannot fail: room for all was reserved above.
            let _ = self.by_name.insert_reserved(hash, index_entry(index));
        }
        Ok(())
    }

    /// The hash of `name`, once the index has its table (before, names are compared
    /// one by one).
    pub(crate) fn name_hash(&self, name: &[u8; SESSION_NAME_LEN]) -> Option<u64> {
        self.by_name.has_table().then(|| self.by_name.hash(name))
    }

    /// The position of the live session named `name`; `hash` is its [`name_hash`].
    ///
    /// [`name_hash`]: IncomingSessions::name_hash
    pub(crate) fn find_hashed(
        &self,
        hash: Option<u64>,
        name: &[u8; SESSION_NAME_LEN],
    ) -> Option<u32> {
        let is = |r: &IncomingSlot| !r.finished.get() && r.session.name.as_field() == name;
        match hash {
            Some(hash) => self
                .by_name
                .get(hash, |&entry| {
                    self.record(entry_index(entry)).is_some_and(is)
                })
                .map(|&entry| entry_index(entry)),
            None => self
                .few
                .iter()
                .position(|r| r.as_ref().is_some_and(is))
                .and_then(|i| i.try_into().ok()),
        }
    }

    /// The array that the next record goes into, with room for it, once the few places
    /// are taken.
    fn array_for_next(&mut self) -> Result<&mut LeanVec<IncomingSlot>> {
        // A few more sessions than the places take a small array (and a small free when
        // they are gone); many take whole 64 KiB arrays.
        let size = self
            .expected
            .saturating_sub(self.records)
            .clamp(1, PER_CHUNK);
        let beyond_few = self.records.saturating_sub(FEW);
        let array = if beyond_few < PER_CHUNK {
            &mut self.first
        } else {
            if (beyond_few - PER_CHUNK) % PER_CHUNK == 0 {
                let mut array = LeanVec::new();
                array.reserve(size, GFP_KERNEL)?;
                self.more.push(array, GFP_KERNEL)?;
            }
            self.more.last_mut().ok_or(ENOMEM)?
        };
        // A small array grows up to `PER_CHUNK` records; records move only now, while
        // restore runs.
        let additional = if array.capacity() == 0 { size } else { 1 };
        array.reserve(additional, GFP_KERNEL)?;
        Ok(array)
    }

    /// Adds a session, whose name must be absent; `hash` is its [`name_hash`] if that
    /// was taken. Only restore adds sessions. On failure the files are handed back.
    ///
    /// [`name_hash`]: IncomingSessions::name_hash
    pub(crate) fn add(
        &mut self,
        name: SessionName,
        hash: Option<u64>,
        files: LeanVec<LuoFile>,
    ) -> core::result::Result<(), LeanVec<LuoFile>> {
        let Ok(index) = u32::try_from(self.records) else {
            return Err(files);
        };
        if self.reserve(1).is_err() {
            return Err(files);
        }
        // Stable: the key is fixed once the index has a table, and `hash` was taken
        // with one.
        let hash = match (self.by_name.has_table(), hash) {
            (false, _) => None,
            (true, Some(hash)) => Some(hash),
            (true, None) => Some(self.by_name.hash(name.as_field())),
        };
        let record = IncomingSlot {
            session: Session::incoming(name, index, files),
            retrieved: Cell::new(false),
            finished: Cell::new(false),
        };
        if let Some(place) = self.few.get_mut(self.records) {
            *place = Some(record);
        } else {
            let array = match self.array_for_next() {
                Ok(array) => array,
                Err(_) => return Err(record.session.into_files()),
            };
            if let Err(err) = array.push_within_capacity(record) {
                return Err(err.0.session.into_files());
            }
        }
        // INVARIANT: The record just pushed is at `index`, under its name, if the index
        // has a table.
        let indexed = match hash {
            Some(hash) => self
                .by_name
                .insert_reserved(hash, index_entry(index))
                .map(|_| ()),
            None => Ok(()),
        };
        if indexed.is_err() {
            // Cannot happen, room was reserved above; the record is taken back out.
            let record = match self.few.get_mut(self.records) {
                Some(place) => place.take(),
                None if self.records - FEW < PER_CHUNK => self.first.pop(),
                None => self.more.last_mut().and_then(|array| array.pop()),
            };
            return Err(record.map_or_else(LeanVec::new, |record| record.session.into_files()));
        }
        self.records += 1;
        self.live += 1;
        Ok(())
    }

    /// The live session named `name`.
    pub(crate) fn get(&self, name: &[u8; SESSION_NAME_LEN]) -> Option<&IncomingSlot> {
        self.record(self.find_hashed(self.name_hash(name), name)?)
    }

    /// Makes the session at position `index` retrievable again, with its files, when
    /// the session fd that held it is gone without finishing them.
    pub(crate) fn give_back(&self, index: u32) {
        if let Some(record) = self.record(index) {
            record.retrieved.set(false);
        }
    }

    /// Forgets the finished session at position `index`: its record is marked, and
    /// every record freed once none is live.
    pub(crate) fn remove(&mut self, index: u32) {
        let Some(record) = self.record(index) else {
            return;
        };
        if record.finished.get() {
            return;
        }
        record.finished.set(true);
        record.retrieved.set(false);
        self.live -= 1;
        if self.live == 0 {
            self.clear();
        }
    }

    /// Drops every session; none may be retrieved.
    pub(crate) fn clear(&mut self) {
        self.by_name.clear();
        for place in self.few.iter_mut().take(self.records) {
            *place = None;
        }
        self.first = LeanVec::new();
        self.more = LeanVec::new();
        self.records = 0;
        self.live = 0;
        self.expected = 0;
    }
}

/// Builds the incoming sessions from what [`abi::restore`] reads, matching every file
/// with its registered handler on the way.
///
/// [`abi::restore`]: crate::abi::restore
pub(crate) struct IncomingBuilder<'a> {
    luo: &'a mut Luo,
    current: Option<CurrentSession>,
    /// Sessions restored so far.
    pub(crate) sessions: usize,
    /// Files restored so far.
    pub(crate) files: usize,
    /// The handler found last, and the file type it was found for.
    last_handler: Option<(HandlerCompat, FileHandler)>,
}

/// The session being read.
struct CurrentSession {
    /// The hash of the name, if the index had its table when the session began.
    hash: Option<u64>,
    name: SessionName,
    files: LeanVec<LuoFile>,
    /// The type of a file that no registered handler takes, if any: the session is then
    /// dropped at its end.
    unclaimed: Option<HandlerCompat>,
}

impl<'a> IncomingBuilder<'a> {
    /// A builder that adds to `luo`'s incoming sessions.
    pub(crate) fn new(luo: &'a mut Luo) -> Self {
        Self {
            luo,
            current: None,
            sessions: 0,
            files: 0,
            last_handler: None,
        }
    }

    /// The registered handler of files of type `compatible`, with its module pinned.
    fn handler_for(&mut self, compatible: &HandlerCompat) -> Option<FileHandler> {
        // The files of a session are mostly of one type: the last match is tried first.
        let handler = match self.last_handler {
            Some((ref last, handler)) if last == compatible => Some(handler),
            _ => {
                let wanted = c_str_bytes(compatible);
                let found = self
                    .luo
                    .handlers
                    .iter()
                    .find(|h| h.compatible() == wanted)
                    .copied();
                if let Some(handler) = found {
                    self.last_handler = Some((*compatible, handler));
                }
                found
            }
        };
        handler.filter(FileHandler::get_module)
    }
}

/// Drops the module pins of `files`, which are going away unused.
fn release_handlers(files: &mut LeanVec<LuoFile>) {
    for file in files.iter_mut() {
        if let Some(h) = file.handler.take() {
            h.put_module();
        }
    }
}

impl RestoreSink for IncomingBuilder<'_> {
    fn sessions_expected(&mut self, count: u64) {
        // Everything at once; without the memory, the tables grow as sessions come.
        let _ = self
            .luo
            .incoming
            .reserve(usize::try_from(count).unwrap_or(usize::MAX));
    }

    fn begin_session(&mut self, entry: &SessionEntry) -> Result<bool, OutOfMemory> {
        let incoming = &self.luo.incoming;
        let hash = incoming.name_hash(entry.name.as_field());
        if incoming.find_hashed(hash, entry.name.as_field()).is_some() {
            return Ok(false);
        }
        self.current = Some(CurrentSession {
            hash,
            name: entry.name,
            files: LeanVec::new(),
            unclaimed: None,
        });
        Ok(true)
    }

    fn files_expected(&mut self, count: u64) {
        if let Some(current) = self.current.as_mut() {
            // A hint: without the memory, the array grows as files come.
            let _ = current
                .files
                .reserve(usize::try_from(count).unwrap_or(usize::MAX), GFP_KERNEL);
        }
    }

    fn file(&mut self, entry: &FileEntry) -> Result<(), OutOfMemory> {
        let unclaimed = self.current.as_ref().ok_or(OutOfMemory)?.unclaimed;
        // Once a file is unclaimed the session is dropped: the rest need no handler.
        let handler = match unclaimed {
            None => self.handler_for(&entry.compatible),
            Some(_) => None,
        };
        let current = self.current.as_mut().ok_or(OutOfMemory)?;
        if handler.is_none() && current.unclaimed.is_none() {
            current.unclaimed = Some(entry.compatible);
        }
        let file = LuoFile::incoming(handler, entry.data, entry.token);
        let pushed = match current.files.reserve(1, GFP_KERNEL) {
            Ok(()) => current
                .files
                .push_within_capacity(file)
                .map_err(|err| err.0),
            Err(_) => Err(file),
        };
        pushed.map_err(|file| {
            if let Some(h) = file.handler {
                h.put_module();
            }
            OutOfMemory
        })
    }

    fn end_session(&mut self, valid: bool) -> Result<(), OutOfMemory> {
        let Some(mut current) = self.current.take() else {
            return Ok(());
        };
        if !valid {
            release_handlers(&mut current.files);
            return Ok(());
        }
        if let Some(compatible) = current.unclaimed {
            pr_err!(
                "session {:?} from the previous kernel dropped: no handler for file type {:?}\n",
                current.name,
                kernel::str::BStr::from_bytes(c_str_bytes(&compatible))
            );
            release_handlers(&mut current.files);
            return Ok(());
        }
        let nfiles = current.files.len();
        self.luo
            .incoming
            .add(current.name, current.hash, current.files)
            .map_err(|mut files| {
                release_handlers(&mut files);
                OutOfMemory
            })?;
        self.sessions += 1;
        self.files += nfiles;
        Ok(())
    }

    fn rejected(&mut self, what: Rejection) {
        log_rejection(what);
    }
}

/// Logs what restore refused.
pub(crate) fn log_rejection(what: Rejection) {
    match what {
        Rejection::FileChain { name, error } => pr_err!(
            "session {:?} from the previous kernel dropped: bad file chain: {:?}\n",
            name,
            error
        ),
        Rejection::DuplicateSession(name) => pr_err!(
            "session {:?} from the previous kernel dropped: its name repeats\n",
            name
        ),
        Rejection::SessionEntry { index, error } => pr_err!(
            "session #{} from the previous kernel dropped: bad entry: {:?}\n",
            index,
            error
        ),
        Rejection::FlbPage(pa) => pr_err!(
            "FLB page at {:#x} from the previous kernel ignored: malformed\n",
            pa
        ),
        other => pr_err!(
            "state from the previous kernel rejected, no session restored: {:?}\n",
            other
        ),
    }
}

/// Reads the previous kernel's state without keeping any of it, logging what it refuses:
/// for the root at early boot, and for the sessions with live update off, when nobody
/// can retrieve them but their blocks are freed all the same.
pub(crate) struct Discard {
    /// Sessions read.
    pub(crate) sessions: usize,
}

impl RestoreSink for Discard {
    fn begin_session(&mut self, _entry: &SessionEntry) -> Result<bool, OutOfMemory> {
        Ok(true)
    }

    fn file(&mut self, _entry: &FileEntry) -> Result<(), OutOfMemory> {
        Ok(())
    }

    fn end_session(&mut self, valid: bool) -> Result<(), OutOfMemory> {
        self.sessions += usize::from(valid);
        Ok(())
    }

    fn rejected(&mut self, what: Rejection) {
        log_rejection(what);
    }
}
