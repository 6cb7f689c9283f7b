//! What the writer thread and the readers share: sled's handles, behind one
//! lock so that the writer can reopen the database after a failure, and the
//! store's health.
//!
//! After an I/O error (a full disk above all) sled 0.34 fails every write
//! until it is reopened, and reopening means dropping every handle to the
//! old database first: sled holds a file lock per directory. So every read
//! goes through [`Shared::read`], which holds the lock's read side for the
//! length of one read (no handle outlives it), and the writer takes the
//! write side to swap the handles: reads in flight finish first, reads
//! that arrive meanwhile wait for the reopen (a fraction of a second)
//! instead of failing. While the database cannot be opened at all the
//! slot is empty and reads fail with [`StoreError::Unavailable`].
//!
//! [`Faults`] is the seam tests inject storage failures through.

use super::StoreError;
use crate::feed::publish::StorageHealth;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

/// sled's page cache; posts are small and recent ones are what is read.
const CACHE_BYTES: u64 = 64 << 20;
/// How long an open retries a locked data directory: sled releases its
/// lock from background threads a moment after a store of this process
/// closes, so reopening at once (a restart or a reopen in the same
/// process) may find it held.
const LOCK_GRACE: Duration = Duration::from_secs(1);
/// Pause between those retries.
const LOCK_RETRY: Duration = Duration::from_millis(10);
/// The tree holding everything (see `keys`).
pub(super) const TREE: &str = "feed";
/// The file inside a sled 0.34 directory that holds the log.
const SLED_DATA_FILE: &str = "db";
/// `ENOSPC`: what an injected fault fails with.
const NO_SPACE: i32 = 28;

/// One open database: what reads and writes go through.
pub(super) struct Handles {
    pub(super) db: sled::Db,
    pub(super) tree: sled::Tree,
    /// sled's data file. sled 0.34's flush ends with `sync_file_range`,
    /// which neither forces the drive's cache nor the file's size to disk;
    /// an `fdatasync` of this file after each flush does, so a 201 also
    /// survives a power loss, not only a killed process.
    pub(super) data_file: Option<File>,
}

/// Opens the database in `dir`, waiting out a lock that a store of this
/// process is still releasing.
pub(super) fn open(dir: &Path, faults: &Faults) -> Result<Handles, StoreError> {
    faults.check(Stage::Open).map_err(sled::Error::Io)?;
    let started = Instant::now();
    let db = loop {
        let opened = sled::Config::new()
            .path(dir)
            .cache_capacity(CACHE_BYTES)
            .open();
        match opened {
            Ok(db) => break db,
            Err(e) if is_lock_error(&e) => {
                if started.elapsed() >= LOCK_GRACE {
                    return Err(StoreError::Locked(dir.display().to_string()));
                }
                std::thread::sleep(LOCK_RETRY);
            }
            Err(e) => return Err(StoreError::Sled(e)),
        }
    };
    let tree = db.open_tree(TREE)?;
    let data_file = File::open(dir.join(SLED_DATA_FILE))
        .map_err(|e| log::warn!("cannot open {SLED_DATA_FILE} for fdatasync: {e}"))
        .ok();
    Ok(Handles {
        db,
        tree,
        data_file,
    })
}

/// sled reports a held file lock as an I/O error with this text.
fn is_lock_error(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io)
        if io.kind() == std::io::ErrorKind::WouldBlock
            || io.to_string().contains("could not acquire lock"))
}

/// The handles and the health, shared by the store's readers and its
/// writer thread.
pub(super) struct Shared {
    /// The data directory.
    pub(super) dir: PathBuf,
    /// Bytes set aside in the data directory (see `reserve`).
    pub(super) reserve: u64,
    slot: RwLock<Option<Handles>>,
    pub(super) health: Health,
    pub(super) faults: Arc<Faults>,
}

impl Shared {
    pub(super) fn new(dir: &Path, handles: Handles, reserve: u64, faults: Arc<Faults>) -> Self {
        Self {
            dir: dir.to_owned(),
            reserve,
            slot: RwLock::new(Some(handles)),
            health: Health::default(),
            faults,
        }
    }

    /// Runs `read` on the open database; waits while the writer reopens it.
    /// Never call it from inside `read`: a writer waiting in between would
    /// deadlock the two.
    pub(super) fn read<T>(
        &self,
        read: impl FnOnce(&Handles) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let slot = self.slot.read().unwrap_or_else(PoisonError::into_inner);
        match slot.as_ref() {
            Some(handles) => read(handles),
            None => Err(StoreError::Unavailable),
        }
    }

    /// Whether a database is open.
    pub(super) fn is_open(&self) -> bool {
        self.read(|_| Ok(())).is_ok()
    }

    /// Drops the open database and opens it again (the writer thread's
    /// job). Reads wait meanwhile; if the open fails, the slot stays empty.
    pub(super) fn reopen(&self) -> Result<(), StoreError> {
        let mut slot = self.slot.write().unwrap_or_else(PoisonError::into_inner);
        // Every handle to the old database is in the slot: dropping it
        // releases sled's lock on the directory.
        *slot = None;
        *slot = Some(open(&self.dir, &self.faults)?);
        Ok(())
    }

    /// Drops the open database for good (after the store is closed).
    pub(super) fn close(&self) -> Result<(), StoreError> {
        let mut slot = self.slot.write().unwrap_or_else(PoisonError::into_inner);
        let flushed = match slot.as_ref() {
            Some(handles) => handles.db.flush().map(drop).map_err(StoreError::from),
            None => Ok(()),
        };
        *slot = None;
        flushed
    }
}

/// The store's health: what `/healthz`, `/readyz` and `/metrics` report.
#[derive(Debug, Default)]
pub(super) struct Health {
    /// 0: ok; 1: failing (no writes); 2: unavailable (no reads either).
    state: AtomicU8,
    /// 0: none; 1: the disk is full; 2: another I/O error.
    reason: AtomicU8,
    /// Writes that failed, each sending the store into recovery.
    pub(super) failures: AtomicU64,
    /// Times the database was reopened after a failure.
    pub(super) reopens: AtomicU64,
}

/// How a store that is not ok stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Failing {
    /// It takes no writes; reads are served.
    Writes = 1,
    /// It could not be reopened: reads fail too.
    Everything = 2,
}

impl Health {
    pub(super) fn set_ok(&self) {
        self.state.store(0, Ordering::SeqCst);
        self.reason.store(0, Ordering::SeqCst);
    }

    /// Records that the store is failing, because of `error`.
    pub(super) fn set_failing(&self, how: Failing, error: &StoreError) {
        self.reason
            .store(if disk_full(error) { 1 } else { 2 }, Ordering::SeqCst);
        self.state.store(how as u8, Ordering::SeqCst);
    }

    /// Records that the store is failing as before, but `how`.
    pub(super) fn set_state(&self, how: Failing) {
        self.state.store(how as u8, Ordering::SeqCst);
    }

    pub(super) fn get(&self) -> StorageHealth {
        let state = match self.state.load(Ordering::SeqCst) {
            0 => return StorageHealth::OK,
            1 => "failing",
            _ => "unavailable",
        };
        let reason = match self.reason.load(Ordering::SeqCst) {
            1 => "disk_full",
            _ => "io_error",
        };
        StorageHealth {
            state,
            reason: Some(reason),
        }
    }
}

/// Whether `error` says the disk (or the user's quota) is full.
fn disk_full(error: &StoreError) -> bool {
    let StoreError::Sled(sled::Error::Io(io)) = error else {
        return false;
    };
    use std::io::ErrorKind::{QuotaExceeded, StorageFull};
    matches!(io.kind(), StorageFull | QuotaExceeded) || io.raw_os_error() == Some(NO_SPACE)
}

/// A step of the store's I/O that a test can make fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Writing a batch into sled: nothing of it is stored.
    Write = 1,
    /// The `fdatasync` after sled's flush: the batch is in sled's file, but
    /// not known to be durable.
    Sync = 2,
    /// Setting the reserve aside, which is how the store finds out that
    /// there is room again.
    Reserve = 4,
    /// Opening the database, as the store does after a failure.
    Open = 8,
}

/// Storage failures injected by tests (`Config::storage_faults`): every
/// stage set here fails with "no space left on device" until it is healed.
/// A real deployment never sets any.
#[derive(Debug, Default)]
pub struct Faults {
    failing: AtomicU8,
    once: AtomicU8,
}

fn bits(stages: &[Stage]) -> u8 {
    stages.iter().fold(0, |bits, stage| bits | *stage as u8)
}

impl Faults {
    /// From now on, `stages` fail (and no others).
    pub fn fail(&self, stages: &[Stage]) {
        self.failing.store(bits(stages), Ordering::SeqCst);
    }

    /// The next time each of `stages` runs, it fails.
    pub fn fail_once(&self, stages: &[Stage]) {
        self.once.fetch_or(bits(stages), Ordering::SeqCst);
    }

    /// From now on, nothing fails.
    pub fn heal(&self) {
        self.failing.store(0, Ordering::SeqCst);
        self.once.store(0, Ordering::SeqCst);
    }

    /// An error if `stage` is set to fail.
    pub(super) fn check(&self, stage: Stage) -> std::io::Result<()> {
        let bit = stage as u8;
        let failing = self.failing.load(Ordering::SeqCst) & bit != 0
            || self.once.fetch_and(!bit, Ordering::SeqCst) & bit != 0;
        if failing {
            Err(std::io::Error::from_raw_os_error(NO_SPACE))
        } else {
            Ok(())
        }
    }
}
