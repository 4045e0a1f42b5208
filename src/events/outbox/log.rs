//! One append-only log of records in a folder: numbered segment files and a cursor file
//! saying how far a reader has confirmed.
//!
//! One writer appends and one reader consumes. The reader reads outside the lock, only up to
//! the sizes the writer had finished when the read began, so it never sees a half-written
//! record of a live writer; a torn record can only come from a crash, and is skipped.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::budget::Budget;
use super::frame::{self, Frame};

const SEGMENT_SUFFIX: &str = ".seg";
const CURSOR_FILE: &str = "cursor";

/// A place in the log: a byte offset in a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Position {
    pub segment: u64,
    pub offset: u64,
}

/// What [`SegmentLog::append`] did with the records it was given.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Appended {
    pub stored: usize,
    /// Refused because the outbox is at its cap.
    pub refused: usize,
    /// Per record given, in order: where the log ends after it, or `None` if it was refused.
    pub ends: Vec<Option<Position>>,
}

/// Records read from the log, and where the reader stands after them.
#[derive(Debug, Default)]
pub struct Batch {
    pub payloads: Vec<Vec<u8>>,
    pub end: Position,
    /// Damaged or torn records stepped over.
    pub skipped: usize,
}

struct State {
    /// Every segment on disk and its complete size.
    segments: BTreeMap<u64, u64>,
    /// The segment being appended to (the last one), opened lazily.
    active: Option<(u64, File)>,
    /// Written without `sync` since the last [`SegmentLog::sync`]: the active segment, and
    /// segments closed since.
    dirty: bool,
    closed_unsynced: Vec<File>,
    cursor: Position,
}

pub struct SegmentLog {
    dir: PathBuf,
    segment_bytes: u64,
    budget: Arc<Budget>,
    state: Mutex<State>,
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}{SEGMENT_SUFFIX}"))
}

impl SegmentLog {
    /// Opens (creating) the log in `dir`. Appends go to a new segment, so a tail torn by a
    /// crash stays where it is, behind records written before it, and is skipped when read.
    pub fn open(dir: &Path, segment_bytes: u64, budget: Arc<Budget>) -> io::Result<SegmentLog> {
        fs::create_dir_all(dir)?;
        let mut segments = BTreeMap::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(id) = name
                .to_str()
                .and_then(|n| n.strip_suffix(SEGMENT_SUFFIX))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            segments.insert(id, entry.metadata()?.len());
        }
        budget.add_existing(segments.values().sum());
        let cursor = read_cursor(dir)?.unwrap_or(Position {
            segment: segments.keys().next().copied().unwrap_or(0),
            offset: 0,
        });
        Ok(SegmentLog {
            dir: dir.to_path_buf(),
            segment_bytes: segment_bytes.max(1),
            budget,
            state: Mutex::new(State {
                segments,
                active: None,
                dirty: false,
                closed_unsynced: Vec::new(),
                cursor,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends `payloads` in order, each within the outbox's cap, then (if `sync`) flushes
    /// them to disk. A failed write leaves nothing of this call in the log.
    ///
    /// The flush happens after the lock is released: it takes milliseconds, and the drainer
    /// reading and confirming this log must not wait for it. A reader may therefore send a
    /// record before it is on disk, which loses nothing. A failed flush is reported (the
    /// caller counts the records as not kept) although the records stay readable.
    pub fn append(&self, payloads: &[Vec<u8>], sync: bool) -> io::Result<Appended> {
        let mut appended = Appended::default();
        let mut unsynced = Vec::new();
        {
            let mut state = self.lock();
            let mut pending = Vec::new();
            for payload in payloads {
                let len = frame::framed_len(payload);
                if !self.budget.try_reserve(len) {
                    appended.refused += 1;
                    appended.ends.push(None);
                    continue;
                }
                let active_size = state
                    .active
                    .as_ref()
                    .and_then(|(id, _)| state.segments.get(id).copied());
                if active_size.is_some_and(|size| size + pending.len() as u64 >= self.segment_bytes)
                {
                    unsynced.extend(self.write_active(&mut state, &mut pending, sync)?);
                    if let Some((_, file)) = state.active.take() {
                        if !sync && std::mem::take(&mut state.dirty) {
                            state.closed_unsynced.push(file);
                        }
                    }
                }
                if state.active.is_none() {
                    let id = state.segments.keys().next_back().map_or(0, |last| last + 1);
                    let id = id.max(state.cursor.segment);
                    let file = OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(segment_path(&self.dir, id))?;
                    state.segments.insert(id, 0);
                    state.active = Some((id, file));
                }
                frame::encode(payload, &mut pending);
                appended.stored += 1;
                if let Some((id, _)) = &state.active {
                    let size = state.segments.get(id).copied().unwrap_or(0);
                    appended.ends.push(Some(Position {
                        segment: *id,
                        offset: size + pending.len() as u64,
                    }));
                }
            }
            unsynced.extend(self.write_active(&mut state, &mut pending, sync)?);
        }
        for file in unsynced {
            file.sync_data()?;
        }
        Ok(appended)
    }

    /// Writes `pending` to the active segment; on error truncates it back and frees the budget.
    /// With `sync`, returns a handle on the segment for the caller to flush once unlocked.
    fn write_active(
        &self,
        state: &mut State,
        pending: &mut Vec<u8>,
        sync: bool,
    ) -> io::Result<Option<File>> {
        if pending.is_empty() {
            return Ok(None);
        }
        let bytes = pending.len() as u64;
        let State {
            segments,
            active,
            dirty,
            ..
        } = state;
        let Some((id, file)) = active.as_mut() else {
            return Ok(None);
        };
        let size = segments.get(id).copied().unwrap_or(0);
        let written = file
            .write_all(pending)
            .and_then(|()| sync.then(|| file.try_clone()).transpose());
        pending.clear();
        match written {
            Ok(unsynced) => {
                segments.insert(*id, size + bytes);
                *dirty |= !sync;
                Ok(unsynced)
            }
            Err(err) => {
                self.budget.release(bytes);
                // Leaves the file as it was; if even that fails the next append starts a new
                // segment, so the damage stays a torn tail that readers skip.
                if file.set_len(size).is_err() {
                    *active = None;
                }
                Err(err)
            }
        }
    }

    /// Flushes to disk what was appended without `sync` (on an interval, for logs whose appends
    /// must not wait for the disk).
    pub fn sync(&self) -> io::Result<()> {
        let files = {
            let mut state = self.lock();
            let mut files = std::mem::take(&mut state.closed_unsynced);
            if std::mem::take(&mut state.dirty) {
                if let Some((_, file)) = &state.active {
                    files.push(file.try_clone()?);
                }
            }
            files
        };
        for file in files {
            file.sync_data()?;
        }
        Ok(())
    }

    /// True when every record appended has been confirmed by [`SegmentLog::commit`].
    pub fn is_empty(&self) -> bool {
        let state = self.lock();
        is_drained(&state)
    }

    /// Up to `max` records after the cursor (the cursor does not move until `commit`).
    pub fn read(&self, max: usize) -> io::Result<Batch> {
        let (segments, cursor) = {
            let state = self.lock();
            (state.segments.clone(), state.cursor)
        };
        let mut batch = Batch {
            end: cursor,
            ..Batch::default()
        };
        for (&id, &size) in segments.range(cursor.segment..) {
            if batch.payloads.len() >= max {
                break;
            }
            let offset = if id == cursor.segment {
                cursor.offset
            } else {
                0
            };
            batch.end = Position {
                segment: id,
                offset,
            };
            if offset >= size {
                continue;
            }
            let mut file = File::open(segment_path(&self.dir, id))?;
            file.seek(SeekFrom::Start(offset))?;
            // Only what was complete when this read began: a live append is never half-read.
            let mut reader = BufReader::new(file.take(size - offset));
            while batch.payloads.len() < max {
                match frame::read(&mut reader)? {
                    Frame::Record { payload, len } => {
                        batch.payloads.push(payload);
                        batch.end.offset += len;
                    }
                    Frame::Corrupt { len } => {
                        tracing::warn!(segment = %segment_path(&self.dir, id).display(), offset = batch.end.offset, "outbox record fails its checksum; skipped");
                        batch.skipped += 1;
                        batch.end.offset += len;
                    }
                    Frame::Torn => {
                        tracing::warn!(segment = %segment_path(&self.dir, id).display(), offset = batch.end.offset, "outbox segment ends in a torn record (crash mid-write); rest of segment skipped");
                        batch.skipped += 1;
                        batch.end.offset = size;
                        break;
                    }
                    Frame::End => break,
                }
            }
        }
        Ok(batch)
    }

    /// Confirms everything before `to`: the cursor moves there (and is saved, so a restart
    /// does not send it again), and segments wholly before it are deleted.
    pub fn commit(&self, to: Position) -> io::Result<()> {
        let mut state = self.lock();
        state.cursor = state.cursor.max(to);
        let done: Vec<(u64, u64)> = if is_drained(&state) {
            // Everything sent: start afresh so that an idle outbox holds no files.
            state.active = None;
            state.cursor = Position {
                segment: state.segments.keys().next_back().map_or(0, |last| last + 1),
                offset: 0,
            };
            std::mem::take(&mut state.segments).into_iter().collect()
        } else {
            let before = state.cursor.segment;
            let done: Vec<(u64, u64)> = state
                .segments
                .range(..before)
                .map(|(k, v)| (*k, *v))
                .collect();
            for (id, _) in &done {
                state.segments.remove(id);
            }
            done
        };
        // The cursor is saved before segments go, so a crash between the two re-sends at most.
        write_cursor(&self.dir, state.cursor)?;
        for (id, size) in done {
            match fs::remove_file(segment_path(&self.dir, id)) {
                Ok(()) => self.budget.release(size),
                Err(e) if e.kind() == io::ErrorKind::NotFound => self.budget.release(size),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

fn is_drained(state: &State) -> bool {
    state
        .segments
        .iter()
        .filter(|(id, _)| **id >= state.cursor.segment)
        .all(|(id, size)| *id == state.cursor.segment && state.cursor.offset >= *size)
}

fn read_cursor(dir: &Path) -> io::Result<Option<Position>> {
    let text = match fs::read_to_string(dir.join(CURSOR_FILE)) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut parts = text.split_whitespace().map(str::parse::<u64>);
    match (parts.next(), parts.next()) {
        (Some(Ok(segment)), Some(Ok(offset))) => Ok(Some(Position { segment, offset })),
        _ => {
            tracing::warn!(dir = %dir.display(), "outbox cursor unreadable; replaying the log from its start");
            Ok(None)
        }
    }
}

/// Replaces the cursor file atomically (write then rename), so it is never half-written.
fn write_cursor(dir: &Path, at: Position) -> io::Result<()> {
    let tmp = dir.join(format!("{CURSOR_FILE}.tmp"));
    fs::write(&tmp, format!("{} {}\n", at.segment, at.offset))?;
    fs::rename(tmp, dir.join(CURSOR_FILE))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(dir: &Path, segment_bytes: u64, cap: u64) -> (SegmentLog, Arc<Budget>) {
        let budget = Arc::new(Budget::new(cap));
        let log = SegmentLog::open(dir, segment_bytes, budget.clone()).expect("open");
        (log, budget)
    }

    fn payloads(range: std::ops::Range<u32>) -> Vec<Vec<u8>> {
        range.map(|i| format!("record-{i}").into_bytes()).collect()
    }

    #[test]
    fn records_come_back_in_order_across_segments_and_drained_logs_leave_no_files() {
        let dir = tempfile::tempdir().expect("dir");
        let (log, budget) = log(dir.path(), 40, 1 << 20);
        let all = payloads(0..10);
        assert_eq!(log.append(&all, true).expect("append").stored, 10);
        assert!(
            fs::read_dir(dir.path()).expect("ls").count() > 2,
            "rolled over segments"
        );
        let mut seen = Vec::new();
        while !log.is_empty() {
            let batch = log.read(3).expect("read");
            assert!(batch.payloads.len() <= 3);
            seen.extend(batch.payloads);
            log.commit(batch.end).expect("commit");
        }
        assert_eq!(seen, all);
        assert_eq!(budget.used(), 0);
        let files: Vec<_> = fs::read_dir(dir.path())
            .expect("ls")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(files, vec![std::ffi::OsString::from(CURSOR_FILE)]);
    }

    #[test]
    fn an_uncommitted_read_is_read_again_after_a_restart() {
        let dir = tempfile::tempdir().expect("dir");
        {
            let (log, _) = log(dir.path(), 1 << 20, 1 << 20);
            log.append(&payloads(0..5), true).expect("append");
            let first = log.read(2).expect("read");
            log.commit(first.end).expect("commit");
            let _sent_but_not_confirmed = log.read(2).expect("read");
        }
        let (log, budget) = log(dir.path(), 1 << 20, 1 << 20);
        assert!(budget.used() > 0, "bytes on disk are counted at start");
        assert_eq!(log.read(10).expect("read").payloads, payloads(2..5));
    }

    #[test]
    fn the_cap_refuses_records_and_counts_them() {
        let dir = tempfile::tempdir().expect("dir");
        let one = frame::framed_len(b"record-0");
        let (log, budget) = log(dir.path(), 1 << 20, one * 3);
        let appended = log.append(&payloads(0..5), true).expect("append");
        assert_eq!((appended.stored, appended.refused), (3, 2));
        let ends: Vec<Option<u64>> = appended.ends.iter().map(|e| e.map(|p| p.offset)).collect();
        assert_eq!(
            ends,
            vec![Some(one), Some(2 * one), Some(3 * one), None, None]
        );
        assert!(budget.is_full());
        assert_eq!(log.read(10).expect("read").payloads, payloads(0..3));
    }

    #[test]
    fn a_torn_tail_and_a_corrupt_record_are_skipped_and_later_records_still_read() {
        let dir = tempfile::tempdir().expect("dir");
        {
            let (log, _) = log(dir.path(), 1 << 20, 1 << 20);
            log.append(&payloads(0..3), true).expect("append");
        }
        let segment = fs::read_dir(dir.path())
            .expect("ls")
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == "seg"))
            .expect("segment");
        let mut bytes = fs::read(&segment).expect("read");
        // Damage the second record's payload, and leave half a record at the end.
        let second = frame::framed_len(b"record-0") as usize + frame::HEADER_BYTES;
        bytes[second] ^= 0xff;
        let mut torn = Vec::new();
        frame::encode(b"half written", &mut torn);
        bytes.extend_from_slice(&torn[..torn.len() - 4]);
        fs::write(&segment, bytes).expect("write");
        let (log, _) = log(dir.path(), 1 << 20, 1 << 20);
        log.append(&payloads(3..4), true)
            .expect("append after restart");
        let mut seen = Vec::new();
        let mut skipped = 0;
        while !log.is_empty() {
            let batch = log.read(10).expect("read");
            seen.extend(batch.payloads);
            skipped += batch.skipped;
            log.commit(batch.end).expect("commit");
        }
        assert_eq!(
            seen,
            vec![
                b"record-0".to_vec(),
                b"record-2".to_vec(),
                b"record-3".to_vec()
            ]
        );
        assert_eq!(skipped, 2);
    }
}
