//! The built-in demo app: a small shop catalogue in SQLite behind a hyper HTTP/1.1 server, for
//! `sluice demo`, integration tests and benchmarks to put behind the proxy.
//!
//! It behaves like a well-mannered origin so that the proxy's cache has something real to
//! work against: every GET carries Cache-Control, a strong ETag, Last-Modified, a
//! Surrogate-Key and Date; If-None-Match and If-Modified-Since get 304; If-Match guards PUT
//! and DELETE (412); HEAD is GET without the body. Routes:
//!
//! | route | does | Cache-Control |
//! | --- | --- | --- |
//! | `GET /products/{id}` | one product, 404 if missing | `public, max-age=60, stale-while-revalidate=30` |
//! | `GET /products?category=&page=&per_page=&after=` | a page in id order (20, at most 100) | `public, max-age=10` |
//! | `GET /search?q=&page=&per_page=` | name search (FTS5, prefix per word) | `public, max-age=10` |
//! | `GET /users/{id}/orders` | one user's orders | `private, no-cache` |
//! | `POST /products`, `PUT /products/{id}`, `DELETE /products/{id}` | edits (201 + Location, 200, 204) | `no-store` |
//! | `GET /static/{app.css,app.js,logo.svg}` | assets | `public, max-age=31536000, immutable` |
//! | `GET /`, `GET /healthz` | index page, liveness | `public, max-age=300`, `no-store` |
//!
//! Data is seeded deterministically (`generator.rs`, splitmix64 with a fixed seed): product
//! 123 and its ETag are the same on every run and for every catalogue size.
//!
//! Concurrency: SQLite in WAL mode in a file (a temporary one unless `path` is given), with
//! one write connection and a few read-only connections (one per core, 2 to 8), each behind
//! its own `std::sync::Mutex`. WAL lets the readers run in parallel with each other and with
//! the writer, so reads never queue behind one global lock or behind a write; SQLite allows
//! one writer anyway, so one write connection costs nothing. Work runs on tokio's blocking
//! pool (`spawn_blocking`) because SQLite calls block. A semaphore per side, sized to its
//! connections, admits work before it is handed to the pool, so a burst of requests waits
//! asynchronously instead of parking hundreds of blocking threads on mutexes. Statements are
//! prepared once per connection (`prepare_cached`).
//!
//! This module does not reach into the proxy; it is a server the proxy talks to over TCP.

mod assets;
mod catalogue;
mod edits;
mod generator;
mod params;
mod reply;
mod routes;
mod schema;
mod server;
mod store;
mod validators;
mod words;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use rusqlite::Connection;
use tokio::sync::Semaphore;

pub use server::serve;

use reply::RequestError;
use store::{Store, TemporaryFile};

/// The largest catalogue `open` agrees to seed.
const MAX_PRODUCTS: usize = 10_000_000;

/// What catalogue [`DemoApp::open`] builds, and where.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// How many products to seed (ids `1..=products`). Users (1000) and orders (5000) are fixed.
    pub products: usize,
    /// The database file. `None`: a fresh temporary file, removed when the app is dropped.
    /// `Some`: created and seeded if it holds no catalogue yet, reused as it is otherwise.
    pub path: Option<PathBuf>,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            products: 50_000,
            path: None,
        }
    }
}

/// Why the demo app could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// SQLite refused to open, create or seed the database.
    #[error("demo database: {0}")]
    Database(#[from] rusqlite::Error),
    /// The database works but not the way the demo needs (for example no WAL mode).
    #[error("demo database is not usable: {0}")]
    Unsupported(String),
    /// More products were asked for than the demo seeds.
    #[error("{asked} products asked for; the demo seeds at most {MAX_PRODUCTS}")]
    TooManyProducts { asked: usize },
}

/// The demo app: the seeded catalogue and its connections. Share it with `Arc` and hand it
/// to [`serve`].
#[derive(Debug)]
pub struct DemoApp {
    // Field order matters: the connections close before the temporary file is removed.
    store: Store,
    read_permits: Arc<Semaphore>,
    write_permits: Arc<Semaphore>,
    changed_at_ms: AtomicI64,
    path: PathBuf,
    _temporary: Option<TemporaryFile>,
}

impl DemoApp {
    /// Opens and seeds a catalogue with `options.products` products. Blocks (seeding 50 000
    /// products takes a fraction of a second): call it from `spawn_blocking` in async code.
    pub fn open(options: DemoOptions) -> Result<Arc<DemoApp>, DemoError> {
        if options.products > MAX_PRODUCTS {
            return Err(DemoError::TooManyProducts {
                asked: options.products,
            });
        }
        let temporary = match options.path {
            Some(_) => None,
            None => Some(TemporaryFile::new()),
        };
        let path = match (&options.path, &temporary) {
            (Some(path), _) => path.clone(),
            (None, Some(temporary)) => temporary.path().to_path_buf(),
            (None, None) => return Err(DemoError::Unsupported("no database path".to_string())),
        };
        let products = u64::try_from(options.products).unwrap_or(u64::MAX);
        let store = Store::open(&path, products, store::default_reader_count())?;
        Ok(Arc::new(DemoApp {
            read_permits: Arc::new(Semaphore::new(store.reader_count())),
            write_permits: Arc::new(Semaphore::new(1)),
            changed_at_ms: AtomicI64::new(store.changed_at_ms),
            store,
            path,
            _temporary: temporary,
        }))
    }

    /// The database file (a temporary one unless [`DemoOptions::path`] was given).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// When the catalogue last changed (ms since the Unix epoch): the Last-Modified of lists.
    pub(crate) fn changed_at_ms(&self) -> i64 {
        self.changed_at_ms.load(Ordering::Acquire)
    }

    /// Records a committed write. Called after the commit, so a reader that sees the new time
    /// also sees the new rows.
    pub(crate) fn note_change(&self, changed_at_ms: i64) {
        self.changed_at_ms
            .fetch_max(changed_at_ms, Ordering::AcqRel);
    }

    /// Runs `read` on a read connection in the blocking pool.
    pub(crate) async fn read<T, F>(self: &Arc<Self>, read: F) -> Result<T, RequestError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, RequestError> + Send + 'static,
    {
        let permit = Arc::clone(&self.read_permits)
            .acquire_owned()
            .await
            .map_err(closed)?;
        let app = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            app.store.read(read)
        })
        .await?
    }

    /// Runs `write` on the write connection in the blocking pool.
    pub(crate) async fn write<T, F>(self: &Arc<Self>, write: F) -> Result<T, RequestError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, RequestError> + Send + 'static,
    {
        let permit = Arc::clone(&self.write_permits)
            .acquire_owned()
            .await
            .map_err(closed)?;
        let app = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            app.store.write(write)
        })
        .await?
    }
}

fn closed(error: tokio::sync::AcquireError) -> RequestError {
    RequestError::Internal(format!("connection permits: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_error_is_send_sync_and_static() {
        fn assert_bounds<T: Send + Sync + 'static>() {}
        assert_bounds::<DemoError>();
        assert_bounds::<DemoApp>();
    }

    #[test]
    fn the_temporary_database_is_removed_when_the_app_drops() {
        let app = DemoApp::open(DemoOptions {
            products: 10,
            path: None,
        })
        .unwrap();
        let path = app.path().to_path_buf();
        assert!(path.exists());
        drop(app);
        assert!(!path.exists());
        let mut wal = path.into_os_string();
        wal.push("-wal");
        assert!(!std::path::Path::new(&wal).exists());
    }

    #[test]
    fn a_given_path_is_seeded_once_and_reused() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("shop.sqlite");
        let options = DemoOptions {
            products: 30,
            path: Some(path.clone()),
        };
        let first = DemoApp::open(options.clone()).unwrap();
        drop(first);
        // A second open with another count keeps the existing catalogue.
        let second = DemoApp::open(DemoOptions {
            products: 5,
            ..options
        })
        .unwrap();
        let count: i64 = second
            .store
            .read(|connection| {
                connection.query_row("SELECT count(*) FROM products", [], |row| row.get(0))
            })
            .unwrap();
        assert_eq!(count, 30);
        assert!(path.exists());
    }

    #[test]
    fn too_many_products_is_refused() {
        let error = DemoApp::open(DemoOptions {
            products: MAX_PRODUCTS + 1,
            path: None,
        })
        .unwrap_err();
        assert!(matches!(error, DemoError::TooManyProducts { .. }));
    }
}

#[cfg(test)]
mod measurements {
    use super::*;
    use std::time::Instant;

    #[test]
    #[ignore = "measures seeding the default 50 000 products; run with --ignored --nocapture"]
    fn seeding_the_default_catalogue_is_fast() {
        let started = Instant::now();
        let app = DemoApp::open(DemoOptions::default()).unwrap();
        println!("open + seed 50 000 products: {:?}", started.elapsed());
        let size = std::fs::metadata(app.path()).map(|m| m.len()).unwrap_or(0);
        println!("database file: {} KiB", size / 1024);
        let slice = catalogue::Slice {
            after: 0,
            offset: 0,
            limit: 21,
        };
        for (label, words) in [
            ("search lamp", "lamp"),
            ("search oak desk", "oak desk"),
            ("search s", "s"),
        ] {
            let query = catalogue::fts_query(words).unwrap();
            let started = Instant::now();
            let rounds = 50;
            for _ in 0..rounds {
                app.store
                    .read(|c| catalogue::search(c, &query, &slice))
                    .unwrap();
            }
            println!("{label}: {:?} per query", started.elapsed() / rounds);
        }
        let started = Instant::now();
        for id in 1..=10_000 {
            app.store.read(|c| catalogue::product(c, id)).unwrap();
        }
        println!("product by id: {:?} per query", started.elapsed() / 10_000);
        let deep = catalogue::Slice {
            after: 0,
            offset: 49_000,
            limit: 21,
        };
        let started = Instant::now();
        app.store
            .read(|c| catalogue::products(c, None, &deep))
            .unwrap();
        println!(
            "page 2451 of all products (OFFSET 49000): {:?}",
            started.elapsed()
        );
    }
}
