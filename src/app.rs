//! Wiring: builds the shared state, binds the listeners and the admin API, and runs reloads,
//! signals and shutdown. The only module that knows about all the others.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::admin::{self, Admin, Reload, ReloadFuture};
use crate::config::{Config, ConfigError, TlsConfig};
use crate::metrics::access_log::AccessLog;
use crate::metrics::{Metrics, ReloadOutcome};
use crate::proxy::Proxy;
use crate::server::listener::{self, ListenerSpec};
use crate::server::tls::{self, CertResolver, TlsError};
use crate::shared::{BuildError, Shared, Snapshot};

/// Why the app could not start or reload.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error("listeners[{listener}]: cannot listen on {addr}: {source}")]
    Bind {
        listener: String,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("listeners[{listener}].tls: {source}")]
    Tls {
        listener: String,
        #[source]
        source: TlsError,
    },
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("access log: {0}")]
    AccessLog(std::io::Error),
    #[error("no configuration file to reload from")]
    NoSource,
    #[error("reload task failed: {0}")]
    Join(String),
}

/// Reloads the configuration from its file and the certificates from theirs.
pub struct Reloader {
    source: Option<PathBuf>,
    shared: Arc<Shared>,
    tls: Vec<(String, Arc<CertResolver>)>,
}

impl Reloader {
    /// Load -> validate -> build -> swap. On any error the running config stays and the error
    /// is returned (and logged, and counted).
    pub async fn reload(&self) -> Result<u64, AppError> {
        // One rebuild at a time (reloads, admin pool changes, discovery), so generations
        // are ordered.
        let _guard = self.shared.rebuild.lock().await;
        let result = self.reload_locked().await;
        let generation = self.shared.snapshot.load().generation;
        match &result {
            Ok(generation) => {
                self.shared
                    .metrics
                    .reloaded(ReloadOutcome::Success, *generation);
                tracing::info!(generation, "configuration reloaded");
            }
            Err(error) => {
                self.shared
                    .metrics
                    .reloaded(ReloadOutcome::Failure, generation);
                tracing::error!(error = %error, generation, "configuration reload failed; the running configuration stays");
            }
        }
        result
    }

    async fn reload_locked(&self) -> Result<u64, AppError> {
        let Some(source) = self.source.clone() else {
            // Without a file (sluice proxy) only the certificates can be reloaded.
            self.reload_certificates(&self.shared.snapshot.load().config);
            return Ok(self.shared.snapshot.load().generation);
        };
        let shared = Arc::clone(&self.shared);
        let snapshot = tokio::task::spawn_blocking(move || -> Result<Snapshot, AppError> {
            let config = Arc::new(Config::load(&source)?);
            let previous = shared.snapshot.load_full();
            let snapshot = Snapshot::build(
                config,
                previous.generation + 1,
                Some(&previous),
                &shared.metrics,
            )?;
            Ok(snapshot)
        })
        .await
        .map_err(|e| AppError::Join(e.to_string()))??;
        let old = self.shared.snapshot.load_full();
        for listener in &snapshot.config.listeners {
            let before = old
                .config
                .listeners
                .iter()
                .find(|l| l.name == listener.name);
            if before.is_none_or(|b| {
                b.addr != listener.addr
                    || b.http2 != listener.http2
                    || b.tls.is_some() != listener.tls.is_some()
            }) {
                tracing::warn!(listener = %listener.name, "listener changes need a restart; the running listener is unchanged");
            }
        }
        if snapshot.config.cache != old.config.cache {
            tracing::warn!("[cache] changes need a restart; the running cache is unchanged");
        }
        self.reload_certificates(&snapshot.config);
        let generation = snapshot.generation;
        self.shared.swap(snapshot);
        Ok(generation)
    }

    /// Reloads every listener's certificates from `config`; a set that fails keeps the old one.
    pub fn reload_certificates(&self, config: &Config) {
        for (name, resolver) in &self.tls {
            let Some(tls) = config
                .listeners
                .iter()
                .find(|l| &l.name == name)
                .and_then(|l| l.tls.as_ref())
            else {
                continue;
            };
            match resolver.reload(tls) {
                Ok(()) => tracing::info!(listener = %name, "certificates reloaded"),
                Err(error) => {
                    tracing::error!(listener = %name, %error, "certificate reload failed; the old certificates stay")
                }
            }
        }
    }
}

/// A handle the admin API holds to reload through.
struct AdminReload(Arc<Reloader>);

impl Reload for AdminReload {
    fn reload(&self) -> ReloadFuture {
        let reloader = Arc::clone(&self.0);
        Box::pin(async move { reloader.reload().await.map_err(|e| e.to_string()) })
    }
}

/// A running Sluice: listeners, admin API and background tasks.
pub struct App {
    shared: Arc<Shared>,
    reloader: Arc<Reloader>,
    admin: Option<Arc<Admin>>,
    listeners: Vec<(String, SocketAddr)>,
    admin_addr: Option<SocketAddr>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    _watcher: Option<notify::RecommendedWatcher>,
}

impl App {
    /// Builds everything from `config` and starts serving. `source` is the file to reload from.
    pub async fn start(config: Config, source: Option<PathBuf>) -> Result<App, AppError> {
        let metrics = Arc::new(Metrics::new()?);
        let access_log = AccessLog::start(&config.access_log, metrics.access_log_dropped())
            .map_err(AppError::AccessLog)?;
        let config = Arc::new(config);
        let build_config = Arc::clone(&config);
        let build_metrics = Arc::clone(&metrics);
        let snapshot = tokio::task::spawn_blocking(move || {
            Snapshot::build(build_config, 1, None, &build_metrics)
        })
        .await
        .map_err(|e| AppError::Join(e.to_string()))??;
        let shared = Arc::new(Shared::new(snapshot, Arc::clone(&metrics), access_log));
        let proxy = Arc::new(Proxy::new(Arc::clone(&shared)));
        let (shutdown, shutdown_rx) = watch::channel(false);

        let mut tasks = Vec::new();
        let mut bound = Vec::new();
        let mut resolvers = Vec::new();
        for listener_config in &config.listeners {
            let acceptor = match &listener_config.tls {
                None => None,
                Some(tls_config) => {
                    let tls_error = |source| AppError::Tls {
                        listener: listener_config.name.clone(),
                        source,
                    };
                    let resolver = Arc::new(CertResolver::load(tls_config).map_err(tls_error)?);
                    let server_config =
                        tls::server_config(Arc::clone(&resolver), listener_config.http2)
                            .map_err(tls_error)?;
                    resolvers.push((listener_config.name.clone(), resolver));
                    Some(tokio_rustls::TlsAcceptor::from(server_config))
                }
            };
            let socket = TcpListener::bind(listener_config.addr)
                .await
                .map_err(|source| AppError::Bind {
                    listener: listener_config.name.clone(),
                    addr: listener_config.addr,
                    source,
                })?;
            let addr = socket.local_addr().unwrap_or(listener_config.addr);
            let spec = Arc::new(ListenerSpec::new(
                listener_config,
                config.timeouts,
                &config.limits,
                acceptor,
                metrics.listener(&listener_config.name),
            ));
            bound.push((listener_config.name.clone(), addr));
            tasks.push(tokio::spawn(listener::serve(
                socket,
                spec,
                Arc::clone(&proxy),
                shutdown_rx.clone(),
            )));
        }

        let reloader = Arc::new(Reloader {
            source,
            shared: Arc::clone(&shared),
            tls: resolvers,
        });

        tasks.push(tokio::spawn(
            crate::proxy::health_checker::run(Arc::clone(&shared), shutdown_rx.clone(), None)
                .instrument(tracing::info_span!("health_checker")),
        ));

        let observability = start_monitoring(&config, &metrics, &shutdown_rx, &mut tasks);
        tasks.push(tokio::spawn(sweep_cache(
            Arc::clone(&shared.cache),
            config.cache.sweep_interval,
            shutdown_rx.clone(),
        )));

        let mut admin_handle = None;
        let mut admin_addr = None;
        if let Some(addr) = config.admin {
            let socket = TcpListener::bind(addr)
                .await
                .map_err(|source| AppError::Bind {
                    listener: "admin".to_string(),
                    addr,
                    source,
                })?;
            admin_addr = Some(socket.local_addr().unwrap_or(addr));
            let admin = Arc::new(Admin::new(
                Arc::clone(&shared),
                Arc::new(AdminReload(Arc::clone(&reloader))),
                observability.clone(),
            ));
            tasks.push(tokio::spawn(admin::serve(
                socket,
                Arc::clone(&admin),
                shutdown_rx.clone(),
            )));
            admin_handle = Some(admin);
        }

        let watcher = watch_files(&config, Arc::clone(&reloader), shutdown_rx.clone());
        Ok(App {
            shared,
            reloader,
            admin: admin_handle,
            listeners: bound,
            admin_addr,
            shutdown,
            tasks,
            _watcher: watcher,
        })
    }

    /// The bound address of each listener, by name, in config order.
    pub fn listener_addrs(&self) -> &[(String, SocketAddr)] {
        &self.listeners
    }

    /// The bound address of the first listener.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.listeners.first().map(|(_, a)| *a)
    }

    /// The admin API's bound address.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// The shared state.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Reloads the configuration (and certificates) now, as SIGHUP does.
    pub async fn reload(&self) -> Result<u64, AppError> {
        self.reloader.reload().await
    }

    /// Stops accepting, lets in-flight requests finish within the grace period, then returns.
    pub async fn shutdown(self) {
        if let Some(admin) = &self.admin {
            admin.drain();
        }
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }

    /// Serves until SIGTERM or SIGINT, reloading on SIGHUP and reopening the access log on
    /// SIGUSR1; then shuts down gracefully.
    pub async fn run_until_signal(self) -> std::io::Result<()> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut hangup = signal(SignalKind::hangup())?;
        let mut user1 = signal(SignalKind::user_defined1())?;
        loop {
            tokio::select! {
                _ = terminate.recv() => { tracing::info!("SIGTERM: shutting down"); break; }
                _ = interrupt.recv() => { tracing::info!("SIGINT: shutting down"); break; }
                _ = hangup.recv() => {
                    tracing::info!("SIGHUP: reloading");
                    let _ = self.reload().await;
                }
                _ = user1.recv() => {
                    tracing::info!("SIGUSR1: reopening the access log");
                    self.shared.access_log.reopen();
                }
            }
        }
        self.shutdown().await;
        Ok(())
    }
}

/// Starts the resource sampler and the alert evaluator when monitoring is on; what they
/// publish is read by the admin API.
/// The most expired entries one sweep removes, so a sweep never holds a runtime thread long.
const SWEEP_STEPS: usize = 10_000;

/// Removes expired entries every `interval` until shutdown: a bounded amount per tick, never a
/// scan of the whole store.
async fn sweep_cache(
    cache: Arc<crate::cache::Cache>,
    interval: std::time::Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                let removed = cache.sweep(std::time::SystemTime::now(), SWEEP_STEPS);
                if removed > 0 {
                    tracing::debug!(removed, "expired cache entries swept");
                }
            }
            _ = shutdown.changed() => break,
        }
    }
}

fn start_monitoring(
    config: &Config,
    metrics: &Metrics,
    shutdown: &watch::Receiver<bool>,
    tasks: &mut Vec<JoinHandle<()>>,
) -> admin::Observability {
    use crate::metrics::{alerts, resources};
    let monitoring = config.monitoring;
    if !monitoring.enabled {
        return admin::Observability::default();
    }
    let handle = match resources::ResourceSampler::new(metrics.registry()) {
        Ok(sampler) => {
            let sampler = sampler.with_memory_budget(monitoring.memory_budget);
            let handle = sampler.handle();
            tasks.push(tokio::spawn(resources::run(
                sampler,
                monitoring.sample_interval,
                shutdown.clone(),
            )));
            Some(handle)
        }
        Err(error) => {
            tracing::warn!(%error, "resource sampling is unavailable");
            None
        }
    };
    let engine = alerts::AlertEngine::new(alerts::AlertThresholds::default());
    let board = engine.board();
    tasks.push(tokio::spawn(alerts::run(
        engine,
        metrics.registry().clone(),
        handle.clone(),
        monitoring.alert_interval,
        shutdown.clone(),
    )));
    admin::Observability {
        resources: handle,
        alerts: board,
    }
}

/// What a file change asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    /// The config file changed: reload everything.
    Config,
    /// Only certificate files changed.
    Certificates,
}

/// Watches the config file (when there is one) and the certificate files of every TLS
/// listener, and reloads when they change. Changes are debounced so an editor's or a
/// deployment tool's burst of writes gives one reload.
fn watch_files(
    config: &Config,
    reloader: Arc<Reloader>,
    mut shutdown: watch::Receiver<bool>,
) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    let certificates: Vec<PathBuf> = config
        .listeners
        .iter()
        .filter_map(|l| l.tls.as_ref())
        .flat_map(|t: &TlsConfig| tls::files(t))
        .map(|f| canonical(&f))
        .collect();
    let config_file = reloader.source.as_deref().map(canonical);
    if certificates.is_empty() && config_file.is_none() {
        return None;
    }
    let (sender, mut receiver) = mpsc::unbounded_channel::<Change>();
    let watched_config = config_file.clone();
    let watched_certificates = certificates.clone();
    let mut watcher = match notify::recommended_watcher(
        move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else { return };
            if event.kind.is_access() {
                return;
            }
            for path in event.paths.iter().map(|p| canonical(p)) {
                if watched_config.as_ref() == Some(&path) {
                    let _ = sender.send(Change::Config);
                } else if watched_certificates.contains(&path) {
                    let _ = sender.send(Change::Certificates);
                }
            }
        },
    ) {
        Ok(watcher) => watcher,
        Err(error) => {
            tracing::warn!(%error, "file watching is unavailable; reload with SIGHUP or POST /admin/reload");
            return None;
        }
    };
    let mut directories: Vec<PathBuf> = certificates
        .iter()
        .chain(config_file.iter())
        .filter_map(|f| f.parent().map(Path::to_path_buf))
        .collect();
    directories.sort();
    directories.dedup();
    for directory in &directories {
        if let Err(error) = watcher.watch(directory, notify::RecursiveMode::NonRecursive) {
            tracing::warn!(directory = %directory.display(), %error, "cannot watch directory");
        }
    }
    tokio::spawn(async move {
        loop {
            tokio::select! {
                change = receiver.recv() => {
                    let Some(mut change) = change else { break };
                    // Let a burst of writes (cert and key, editors' temp files) settle.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    while let Ok(more) = receiver.try_recv() {
                        if more == Change::Config {
                            change = Change::Config;
                        }
                    }
                    match change {
                        Change::Config => {
                            tracing::info!("configuration file changed: reloading");
                            let _ = reloader.reload().await;
                        }
                        Change::Certificates => {
                            let config = Arc::clone(&reloader.shared.snapshot.load().config);
                            reloader.reload_certificates(&config);
                        }
                    }
                }
                _ = shutdown.changed() => break,
            }
        }
    });
    Some(watcher)
}

fn canonical(path: &Path) -> PathBuf {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    };
    match (
        absolute.parent().and_then(|p| p.canonicalize().ok()),
        absolute.file_name(),
    ) {
        (Some(parent), Some(name)) => parent.join(name),
        _ => absolute,
    }
}

/// The configuration `sluice demo` uses unless given another.
pub const DEMO_CONFIG: &str = include_str!("../config/demo.toml");

/// Validates a configuration file as `sluice check` does: the file itself, then what only
/// loading shows (certificates and keys that do not parse, CA files). Returns every problem.
pub fn check(path: &Path) -> Vec<String> {
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(error) => return error.problems(),
    };
    let mut problems = Vec::new();
    for listener in &config.listeners {
        if let Some(tls) = &listener.tls
            && let Err(error) = CertResolver::load(tls)
        {
            problems.push(format!(
                "{}: listeners[{}].tls: {error}",
                path.display(),
                listener.name
            ));
        }
    }
    for pool in &config.pools {
        if let Err(error) = crate::proxy::upstream::UpstreamClient::new(pool, &config.timeouts) {
            problems.push(format!("{}: {error}", path.display()));
        }
    }
    problems
}

/// The demo app serving behind `sluice demo`; [`DemoBackend::stop`] ends it.
pub struct DemoBackend {
    /// The address it serves on.
    pub addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl DemoBackend {
    /// Stops accepting, lets in-flight requests finish, and waits for the app to end.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Starts the built-in demo app on the first backend address of the demo config's first pool,
/// seeded with `products` products.
pub async fn start_demo_backend(
    config: &Config,
    products: usize,
) -> Result<DemoBackend, std::io::Error> {
    let addr = config
        .pools
        .first()
        .and_then(|p| p.backends.first())
        .and_then(|b| b.addr.parse::<SocketAddr>().ok())
        .ok_or_else(|| {
            std::io::Error::other("the demo config needs a pool whose first backend is an ip:port")
        })?;
    let options = crate::demo::DemoOptions {
        products,
        ..crate::demo::DemoOptions::default()
    };
    let demo = tokio::task::spawn_blocking(move || crate::demo::DemoApp::open(options))
        .await
        .map_err(std::io::Error::other)?
        .map_err(std::io::Error::other)?;
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let shutdown = async move {
            let _ = stopped.await;
        };
        if let Err(error) = crate::demo::serve(listener, demo, shutdown).await {
            tracing::error!(%error, "demo app stopped");
        }
    });
    Ok(DemoBackend {
        addr: bound,
        stop,
        task,
    })
}
