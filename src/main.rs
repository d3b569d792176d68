//! The `sluice` command line: parse arguments, set up logging, call into the library.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use sluice::app::App;
use sluice::config::{self, Config};

/// mimalloc: measured faster than glibc malloc on the proxy's many small, short-lived
/// allocations (header maps, request records); see the commit that added it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit status for a configuration that does not validate (EX_USAGE, as `sluice check` uses).
const EXIT_CONFIG: u8 = 64;

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "An edge reverse proxy: HTTP/1.1, HTTP/2, TLS, caching, load balancing"
)]
struct Cli {
    /// Configuration file, for the default `run` command.
    #[arg(short, long, global = false, default_value = "config/sluice.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy from a configuration file (the default command).
    Run {
        /// Configuration file.
        #[arg(short, long, default_value = "config/sluice.toml")]
        config: PathBuf,
    },
    /// Validate a configuration file, print every problem with file, line and key; exit 64 on
    /// error, 0 when valid.
    Check {
        /// Configuration file.
        #[arg(short, long, default_value = "config/sluice.toml")]
        config: PathBuf,
    },
    /// A one-line reverse proxy without a configuration file.
    Proxy {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Backend address (repeat for several; picked round robin).
        #[arg(long = "to", required = true)]
        to: Vec<String>,
        /// Address of the admin API (health, metrics).
        #[arg(long)]
        admin: Option<SocketAddr>,
        /// Access log: "stdout", "off" or a file path.
        #[arg(long, default_value = "stdout")]
        access_log: String,
        /// Cache what the backends mark cacheable (RFC 9111), in a store of this size
        /// ("256MiB", "2GiB").
        #[arg(long, value_name = "SIZE")]
        cache: Option<String>,
        /// No per-request metrics, resource sampler or alerts (what `[monitoring]
        /// request_metrics = false` and `enabled = false` do), to measure their cost.
        #[arg(long)]
        no_metrics: bool,
    },
    /// The proxy in front of the built-in demo app (an SQLite catalogue), with the admin API.
    Demo {
        /// Configuration file (default: the built-in config/demo.toml).
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// Number of products to seed.
        #[arg(long, default_value_t = 50_000)]
        products: usize,
    },
    /// Generate a development CA and a localhost certificate.
    Certs {
        /// Directory to write the PEM files into.
        #[arg(long, default_value = "certs")]
        out: PathBuf,
    },
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`); the filter can be changed at
/// runtime through the admin API.
fn init_tracing() {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::{EnvFilter, reload};
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .init();
    sluice::admin::install_log_control(Box::new(move |directive: &str| {
        let parsed = EnvFilter::try_new(directive).map_err(|e| e.to_string())?;
        let shown = parsed.to_string();
        handle.reload(parsed).map_err(|e| e.to_string())?;
        tracing::info!(filter = %shown, "log filter changed");
        Ok(shown)
    }));
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let command = cli.command.unwrap_or(Command::Run { config: cli.config });
    match command {
        Command::Check { config } => check(&config),
        Command::Certs { out } => match certs(&out) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("sluice certs: {error:#}");
                ExitCode::FAILURE
            }
        },
        command => {
            // The global queue is polled every second tick. Tokio tunes the interval itself
            // toward 200 µs of task polls; a proxy's tasks run for microseconds, so that is a
            // hundred-odd ticks. A stream task that overflowed into the global queue (HTTP/2
            // spawns one per stream; 640 streams in flight fill the 256-slot local queue) then
            // waited that long. h2load -c64 -m10 on one worker, cached 1 KiB hits: p99 67-71 ms
            // -> 18 ms, for about 3 % of h2 req/s; HTTP/1.1 req/s unchanged.
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .global_queue_interval(2)
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => {
                    eprintln!("sluice: cannot start the runtime: {error}");
                    return ExitCode::FAILURE;
                }
            };
            runtime.block_on(serve(command))
        }
    }
}

fn check(path: &Path) -> ExitCode {
    let problems = sluice::app::check(path);
    if problems.is_empty() {
        println!("{}: configuration is valid", path.display());
        ExitCode::SUCCESS
    } else {
        for problem in &problems {
            eprintln!("{problem}");
        }
        eprintln!("{}: {} problem(s) found", path.display(), problems.len());
        ExitCode::from(EXIT_CONFIG)
    }
}

fn certs(out: &Path) -> anyhow::Result<()> {
    let written = sluice::certs::generate(out, &[sluice::certs::localhost()])?;
    println!("wrote {}", written.ca_cert.display());
    for (cert, key) in &written.leaves {
        println!("wrote {} and {}", cert.display(), key.display());
    }
    println!(
        "trust {} in your client to use them (development only)",
        written.ca_cert.display()
    );
    Ok(())
}

async fn serve(command: Command) -> ExitCode {
    let mut demo_backend = None;
    let started = match command {
        Command::Run { config } => match Config::load(&config) {
            Ok(parsed) => start(parsed, Some(config)).await,
            Err(error) => Err(config_failure(&error)),
        },
        Command::Proxy {
            listen,
            to,
            admin,
            access_log,
            cache,
            no_metrics,
        } => match config::one_line(listen, &to, admin, &access_log, cache.as_deref()) {
            Ok(mut parsed) => {
                if no_metrics {
                    parsed.monitoring.enabled = false;
                    parsed.monitoring.request_metrics = false;
                }
                start(parsed, None).await
            }
            Err(error) => Err(config_failure(&error)),
        },
        Command::Demo { config, products } => demo(config, products).await.map(|(app, backend)| {
            demo_backend = Some(backend);
            app
        }),
        Command::Check { .. } | Command::Certs { .. } => Err(ExitCode::FAILURE),
    };
    let app = match started {
        Ok(app) => app,
        Err(code) => return code,
    };
    let result = app.run_until_signal().await;
    if let Some(backend) = demo_backend {
        backend.stop().await;
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("sluice: {error}");
            ExitCode::FAILURE
        }
    }
}

fn config_failure(error: &config::ConfigError) -> ExitCode {
    for problem in error.problems() {
        eprintln!("{problem}");
    }
    ExitCode::from(EXIT_CONFIG)
}

async fn start(config: Config, source: Option<PathBuf>) -> Result<App, ExitCode> {
    match App::start(config, source).await {
        Ok(app) => {
            for (name, addr) in app.listener_addrs() {
                println!("sluice: listener {name} on {addr}");
            }
            if let Some(addr) = app.admin_addr() {
                println!("sluice: admin on {addr}");
            }
            Ok(app)
        }
        Err(error) => {
            eprintln!("sluice: {error}");
            Err(ExitCode::from(EXIT_CONFIG))
        }
    }
}

async fn demo(
    config: Option<PathBuf>,
    products: usize,
) -> Result<(App, sluice::app::DemoBackend), ExitCode> {
    let result = async {
        let parsed = match &config {
            Some(path) => Config::load(path)?,
            None => Config::parse(
                sluice::app::DEMO_CONFIG,
                "config/demo.toml (built in)",
                Path::new("."),
            )?,
        };
        let backend = sluice::app::start_demo_backend(&parsed, products)
            .await
            .context("starting the demo app")?;
        anyhow::Ok((parsed, backend))
    }
    .await;
    let (parsed, backend) = match result {
        Ok(pair) => pair,
        Err(error) => {
            eprintln!("sluice demo: {error:#}");
            return Err(ExitCode::FAILURE);
        }
    };
    let app_addr = backend.addr;
    let app = start(parsed, config).await?;
    let proxy = app.addr().map(|a| a.to_string()).unwrap_or_default();
    println!("sluice: demo app (SQLite catalogue, {products} products) on http://{app_addr}");
    println!();
    println!("  through the proxy:  curl -i http://{proxy}/products/42");
    println!("                      curl -i 'http://{proxy}/products?category=books&page=2'");
    println!("                      curl -i 'http://{proxy}/search?q=lamp'");
    println!("  (repeat a request: the second is a hit, see the Age and Cache-Status headers)");
    if let Some(admin) = app.admin_addr() {
        println!("  dashboard:          http://{admin}/");
        println!("  metrics:            curl http://{admin}/metrics");
        println!("  health:             curl http://{admin}/healthz");
        println!(
            "  purge a tag:        curl -X POST -H 'Authorization: Bearer demo-purge-token-change-me' \\"
        );
        println!(
            "                        -d '{{\"tags\":[\"product-42\"]}}' http://{admin}/admin/purge"
        );
    }
    println!();
    Ok((app, backend))
}
