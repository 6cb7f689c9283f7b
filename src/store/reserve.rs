//! The reserve: a file of `--storage-reserve` bytes that livefeed keeps in
//! its data directory while it takes writes.
//!
//! When a write fails because the disk is full, sled must be reopened
//! before it takes writes again, and sled's recovery itself writes (it
//! zeroes the torn end of its log and writes a snapshot): on a disk with no
//! room at all the reopen fails too. So the store deletes the reserve first,
//! which gives the reopen room (the posts stay readable from the reopened
//! database), and takes writes again only once it could set the reserve
//! aside anew with as much room again to spare (it writes twice the
//! reserve, then gives half of it back): that is how it finds out that
//! space is back, and it leaves the same headroom for the next time. (Were
//! the reserve's own room enough, the store would take writes again the
//! moment it had freed it, fail at once, and so on.)
//!
//! The file is filled with random bytes, so that a compressing or
//! deduplicating file system really sets the space aside, and written under
//! a temporary name, then renamed: a reserve of the right size under its
//! own name is a complete one.

use super::shared::{Faults, Stage};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

/// The reserve's name in the data directory (sled ignores other files).
pub(super) const FILE: &str = "livefeed.reserve";
/// Where it is written before it is complete.
const PARTIAL: &str = "livefeed.reserve.partial";
/// Bytes written at a time.
const CHUNK: usize = 1 << 20;

/// How much room [`make`] wants besides the reserve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Room {
    /// Room for the reserve.
    Reserve,
    /// Room for the reserve and as much again (after a failure).
    Twice,
}

/// Makes sure the reserve of `size` bytes is in `dir` (none when `size` is
/// 0); an error when the disk has not the `room` for it.
pub(super) fn make(dir: &Path, size: u64, room: Room, faults: &Faults) -> io::Result<()> {
    let path = dir.join(FILE);
    if size == 0 {
        return release(dir);
    }
    if room == Room::Reserve && fs::metadata(&path).is_ok_and(|m| m.len() == size) {
        return Ok(());
    }
    let partial = dir.join(PARTIAL);
    let wanted = match room {
        Room::Reserve => size,
        Room::Twice => size.saturating_mul(2),
    };
    let written = fill(&partial, wanted, faults)
        .and_then(|file| file.set_len(size))
        .and_then(|()| fs::rename(&partial, &path));
    if written.is_err() {
        fs::remove_file(&partial).ok();
    }
    written
}

fn fill(path: &Path, size: u64, faults: &Faults) -> io::Result<File> {
    faults.check(Stage::Reserve)?;
    let mut file = File::create(path)?;
    let mut chunk = vec![0u8; CHUNK];
    let mut left = size;
    while left > 0 {
        // A `left` too big for a usize is more than a chunk anyway.
        let n = usize::try_from(left).map_or(CHUNK, |left| left.min(CHUNK));
        fastrand::fill(&mut chunk[..n]);
        file.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    // Space is taken when the data is written; no need to wait for the
    // drive as well.
    file.flush()?;
    Ok(file)
}

/// Deletes the reserve, giving its room to sled.
pub(super) fn release(dir: &Path) -> io::Result<()> {
    for name in [FILE, PARTIAL] {
        match fs::remove_file(dir.join(name)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserve_is_made_once_and_released() {
        let dir = tempfile::tempdir().unwrap();
        let faults = Faults::default();
        make(dir.path(), 3 * CHUNK as u64 + 5, Room::Reserve, &faults).unwrap();
        let path = dir.path().join(FILE);
        assert_eq!(fs::metadata(&path).unwrap().len(), 3 * CHUNK as u64 + 5);
        // Another size replaces it (so does the check for twice the room);
        // 0 removes it.
        make(dir.path(), 10, Room::Reserve, &faults).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().len(), 10);
        make(dir.path(), 7, Room::Twice, &faults).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().len(), 7);
        make(dir.path(), 0, Room::Reserve, &faults).unwrap();
        assert!(!path.exists());
        // A reserve that cannot be written leaves nothing behind.
        faults.fail(&[Stage::Reserve]);
        let err = make(dir.path(), 10, Room::Twice, &faults).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(28));
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
