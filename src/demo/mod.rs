//! The built-in demo app server (stub while the real one is written).

use std::path::PathBuf;
use std::sync::Arc;

/// Options for [`DemoApp::open`].
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// How many products to seed.
    pub products: usize,
    /// Where the database lives; `None` means a temporary file removed on drop.
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

/// Errors from opening or serving the demo app.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The database failed.
    #[error("demo database: {0}")]
    Database(String),
}

/// The demo app: a seeded catalogue.
#[derive(Debug)]
pub struct DemoApp {
    _options: DemoOptions,
}

impl DemoApp {
    /// Opens and seeds a catalogue with `options.products` products.
    pub fn open(options: DemoOptions) -> Result<Arc<DemoApp>, DemoError> {
        Ok(Arc::new(DemoApp { _options: options }))
    }
}

/// Serves HTTP/1.1 (keep-alive) on `listener` until `shutdown` resolves, then lets in-flight
/// requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Arc<DemoApp>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let _ = (listener, app);
    shutdown.await;
    Ok(())
}
