//! The database file and its connections: one writer and a few readers, each behind its own
//! mutex, used from tokio's blocking pool.
//!
//! Owns opening (and seeding, through `schema.rs`), the pragmas, the temporary file's life, and
//! handing a free connection to a closure. It knows nothing of HTTP or of the queries.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, OpenFlags};
use tracing::{debug, info};

use super::DemoError;
use super::schema;

/// Readers beyond this bring nothing on the machines we run on.
const MAX_READERS: usize = 8;

const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Removes the temporary database (and its WAL and shared-memory files) when dropped.
#[derive(Debug)]
pub(crate) struct TemporaryFile {
    path: PathBuf,
}

impl TemporaryFile {
    /// A fresh, unique path in the system temporary directory; nothing is created yet.
    pub(crate) fn new() -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_nanos())
            .unwrap_or(0);
        let name = format!(
            "sluice-demo-{}-{nanos}-{}.sqlite",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        Self {
            path: std::env::temp_dir().join(name),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TemporaryFile {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut name = self.path.clone().into_os_string();
            name.push(suffix);
            match std::fs::remove_file(&name) {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => debug!(path = ?name, %error, "could not remove the demo database"),
            }
        }
    }
}

/// The connections. Drop closes them all; the owner drops the temporary file after this.
#[derive(Debug)]
pub(crate) struct Store {
    writer: Mutex<Connection>,
    readers: Box<[Mutex<Connection>]>,
    next_reader: AtomicUsize,
    /// When the catalogue last changed, as stored in `meta` at open.
    pub(crate) changed_at_ms: i64,
}

impl Store {
    /// Opens `path`, seeds it with `products` products unless it already holds a catalogue, and
    /// opens `readers` read-only connections.
    pub(crate) fn open(path: &Path, products: u64, readers: usize) -> Result<Self, DemoError> {
        let mut writer = Connection::open(path)?;
        // WAL lets readers run while the writer writes; the mode is stored in the file, so the
        // readers opened below inherit it.
        let mode: String = writer.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(DemoError::Unsupported(format!(
                "journal mode {mode} instead of wal"
            )));
        }
        configure(&writer)?;
        if schema::is_seeded(&writer)? {
            info!(path = %path.display(), "demo catalogue reused");
        } else {
            let seeded = schema::seed(&mut writer, products)?;
            info!(products = seeded.products, elapsed = ?seeded.elapsed, "demo catalogue seeded");
        }
        let changed_at_ms = writer.query_row(
            "SELECT value FROM meta WHERE key = ?1",
            [schema::CHANGED_AT],
            |row| row.get(0),
        )?;
        let readers = (0..readers.max(1))
            .map(|_| open_reader(path).map(Mutex::new))
            .collect::<Result<Vec<_>, _>>()?
            .into_boxed_slice();
        Ok(Self {
            writer: Mutex::new(writer),
            readers,
            next_reader: AtomicUsize::new(0),
            changed_at_ms,
        })
    }

    /// How many read connections there are (the most reads that run at once).
    pub(crate) fn reader_count(&self) -> usize {
        self.readers.len()
    }

    /// Runs `read` on a free read connection. Blocks: call it from the blocking pool.
    pub(crate) fn read<T, E>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, E>,
    ) -> Result<T, E> {
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed);
        let count = self.readers.len();
        // Take the first idle connection from a rotating start; wait only if all are busy.
        let idle = (0..count).find_map(|step| {
            let index = start.wrapping_add(step) % count;
            self.readers
                .get(index)
                .and_then(|reader| reader.try_lock().ok())
        });
        let connection = match idle {
            Some(guard) => guard,
            None => match self.readers.get(start % count.max(1)) {
                Some(reader) => lock(reader),
                None => lock(&self.writer),
            },
        };
        read(&connection)
    }

    /// Runs `write` on the one write connection. Blocks: call it from the blocking pool.
    pub(crate) fn write<T, E>(
        &self,
        write: impl FnOnce(&mut Connection) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut connection = lock(&self.writer);
        write(&mut connection)
    }
}

/// A panic while a connection was held leaves it usable (statements reset on drop), so a
/// poisoned mutex is taken over rather than turned into a permanent outage.
fn lock(mutex: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn open_reader(path: &Path) -> Result<Connection, DemoError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let reader = Connection::open_with_flags(path, flags)?;
    configure(&reader)?;
    Ok(reader)
}

fn configure(connection: &Connection) -> rusqlite::Result<()> {
    connection.busy_timeout(BUSY_TIMEOUT)?;
    // NORMAL is durable enough for a demo in WAL mode and avoids an fsync per commit.
    connection.execute_batch(
        "PRAGMA synchronous = NORMAL; PRAGMA cache_size = -16000; PRAGMA mmap_size = 268435456;
         PRAGMA temp_store = MEMORY;",
    )?;
    connection.set_prepared_statement_cache_capacity(32);
    Ok(())
}

/// How many readers to open: one per core, at least two, at most [`MAX_READERS`].
pub(crate) fn default_reader_count() -> usize {
    std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(2)
        .clamp(2, MAX_READERS)
}
