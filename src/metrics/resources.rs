//! The resource sampler: process, tokio runtime and host figures read from `/proc` at an
//! interval, kept as a plain [`ResourceSnapshot`] and exported as Prometheus metrics.
//!
//! It owns the sampling loop and the snapshot the dashboard and the alert evaluator read; it
//! does not parse (see `procfs.rs`) and does not decide what is too much (see `alerts.rs`).
//! One pass reads nine small files into reused buffers and lists `/proc/self/fd`; the cost
//! is measured by `benches/sampler.rs`.
//!
//! Process figures use the standard `process_*` names every Prometheus client library exports
//! (`process_cpu_seconds_total`, `process_resident_memory_bytes`, ...), so stock dashboards
//! and rules work unchanged; everything else is `sluice_runtime_*` or `sluice_host_*`.

use std::fs::File;
use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use serde::Serialize;
use tokio::sync::watch;
use tracing::Instrument;

use super::procfs;
use super::resource_metrics::ResourceMetrics;

/// Clock ticks per second in the `/proc` ABI (`USER_HZ`): fixed at 100 by the kernel on
/// every architecture Sluice builds for, whatever the kernel's own `HZ`. Reading it with
/// `sysconf` would need `unsafe`; `tests/observability.rs` checks it against `getconf CLK_TCK`.
pub const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

/// At most this many disks and this many network interfaces get a label: a bounded set.
pub const MAX_LABELLED_DEVICES: usize = 16;

/// Why the sampler could not start or take a sample.
#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    #[error("reading {path}: {source}")]
    Read {
        path: &'static str,
        source: std::io::Error,
    },
    #[error("{path} has an unexpected format")]
    Format { path: &'static str },
    #[error("registering resource metrics: {0}")]
    Register(#[from] prometheus::Error),
}

/// The process's own figures, in base units.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ProcessFigures {
    /// User plus system CPU time.
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub open_fds: u64,
    /// The soft limit; `None` when unlimited.
    pub max_fds: Option<u64>,
    pub threads: u64,
    /// Seconds since the epoch, when boot time is known.
    pub start_time_seconds: Option<f64>,
}

/// Figures from the tokio runtime the sampler runs on (the stable metrics API only).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RuntimeFigures {
    pub workers: u64,
    pub alive_tasks: u64,
    pub global_queue_depth: u64,
    /// Busy time summed over workers: its rate is the number of busy workers.
    pub busy_seconds: f64,
}

/// Host CPU time by mode, summed over CPUs, in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct CpuSeconds {
    pub user: f64,
    pub nice: f64,
    pub system: f64,
    pub idle: f64,
    pub iowait: f64,
    pub irq: f64,
    pub softirq: f64,
    pub steal: f64,
}

impl CpuSeconds {
    /// Every mode with its label value.
    pub fn modes(&self) -> [(&'static str, f64); 8] {
        [
            ("user", self.user),
            ("nice", self.nice),
            ("system", self.system),
            ("idle", self.idle),
            ("iowait", self.iowait),
            ("irq", self.irq),
            ("softirq", self.softirq),
            ("steal", self.steal),
        ]
    }

    /// Time doing anything but waiting: everything except idle and iowait.
    pub fn busy(&self) -> f64 {
        self.user + self.nice + self.system + self.irq + self.softirq + self.steal
    }

    /// All time.
    pub fn total(&self) -> f64 {
        self.busy() + self.idle + self.iowait
    }
}

/// One whole disk, cumulative since boot.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DiskFigures {
    pub device: String,
    pub read_bytes: u64,
    pub written_bytes: u64,
    pub reads: u64,
    pub writes: u64,
    pub io_seconds: f64,
}

/// One network interface, cumulative since it appeared.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct InterfaceFigures {
    pub interface: String,
    pub receive_bytes: u64,
    pub transmit_bytes: u64,
    pub receive_packets: u64,
    pub transmit_packets: u64,
}

/// The machine's figures. A part whose file is missing (some containers) is `None` or empty.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HostFigures {
    pub cpu: Option<CpuSeconds>,
    pub cpus: u64,
    pub memory_total_bytes: Option<u64>,
    pub memory_available_bytes: Option<u64>,
    /// 1, 5 and 15 minute load averages.
    pub load: Option<[f64; 3]>,
    pub disks: Vec<DiskFigures>,
    pub interfaces: Vec<InterfaceFigures>,
}

/// Everything one sampling pass saw: plain numbers, cumulative where the source is.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ResourceSnapshot {
    /// Wall-clock time of the sample, seconds since the epoch.
    pub taken_at_seconds: f64,
    /// What the pass itself cost.
    pub sample_seconds: f64,
    pub process: ProcessFigures,
    /// `None` when sampled outside a tokio runtime.
    pub runtime: Option<RuntimeFigures>,
    pub host: HostFigures,
    /// The configured memory budget, when there is one.
    pub memory_budget_bytes: Option<u64>,
}

/// A cheap, clonable reader of the latest snapshot, for the dashboard and the alerts.
#[derive(Clone, Default)]
pub struct ResourceHandle {
    latest: Arc<ArcSwapOption<ResourceSnapshot>>,
}

impl ResourceHandle {
    /// The latest snapshot, or `None` before the first sample.
    pub fn latest(&self) -> Option<Arc<ResourceSnapshot>> {
        self.latest.load_full()
    }
}

/// Reads `/proc` and publishes the figures; one per process.
pub struct ResourceSampler {
    metrics: ResourceMetrics,
    handle: ResourceHandle,
    buffer: String,
    boot_time: Option<u64>,
    memory_budget_bytes: Option<u64>,
}

const SELF_STAT: &str = "/proc/self/stat";
const SELF_STATUS: &str = "/proc/self/status";
const SELF_LIMITS: &str = "/proc/self/limits";
const SELF_FD: &str = "/proc/self/fd";
const STAT: &str = "/proc/stat";
const MEMINFO: &str = "/proc/meminfo";
const LOADAVG: &str = "/proc/loadavg";
const DISKSTATS: &str = "/proc/diskstats";
const NET_DEV: &str = "/proc/net/dev";

/// Reads `path` into `buffer`, replacing its contents and keeping its allocation.
fn read_into(path: &'static str, buffer: &mut String) -> Result<(), ResourceError> {
    buffer.clear();
    File::open(path)
        .and_then(|mut file| file.read_to_string(buffer))
        .map(|_| ())
        .map_err(|source| ResourceError::Read { path, source })
}

fn ticks(value: u64) -> f64 {
    value as f64 / CLOCK_TICKS_PER_SECOND
}

impl ResourceSampler {
    /// Registers the resource metrics into `registry` and checks that `/proc` is readable.
    pub fn new(registry: &prometheus::Registry) -> Result<ResourceSampler, ResourceError> {
        let mut buffer = String::with_capacity(8 * 1024);
        read_into(STAT, &mut buffer)?;
        let boot_time = procfs::host_stat(&buffer).and_then(|stat| stat.boot_time);
        Ok(ResourceSampler {
            metrics: ResourceMetrics::register(registry)?,
            handle: ResourceHandle::default(),
            buffer,
            boot_time,
            memory_budget_bytes: None,
        })
    }

    /// Sets the memory budget the process should stay under; it is exported as
    /// `sluice_memory_budget_bytes` and carried in every snapshot.
    pub fn with_memory_budget(mut self, bytes: Option<u64>) -> ResourceSampler {
        self.memory_budget_bytes = bytes;
        self.metrics.set_budget(bytes);
        self
    }

    /// A reader of the latest snapshot.
    pub fn handle(&self) -> ResourceHandle {
        self.handle.clone()
    }

    /// One sampling pass: reads everything, updates the metrics and the handle, and returns
    /// the snapshot. Process figures are required; a missing host file leaves its part empty.
    pub fn sample(&mut self) -> Result<Arc<ResourceSnapshot>, ResourceError> {
        let started = Instant::now();
        let taken_at_seconds = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let process = self.process()?;
        let runtime = runtime_figures();
        let host = self.host();
        let snapshot = Arc::new(ResourceSnapshot {
            taken_at_seconds,
            sample_seconds: started.elapsed().as_secs_f64(),
            process,
            runtime,
            host,
            memory_budget_bytes: self.memory_budget_bytes,
        });
        self.metrics.publish(&snapshot);
        self.handle.latest.store(Some(Arc::clone(&snapshot)));
        Ok(snapshot)
    }

    fn process(&mut self) -> Result<ProcessFigures, ResourceError> {
        read_into(SELF_STAT, &mut self.buffer)?;
        let stat =
            procfs::process_stat(&self.buffer).ok_or(ResourceError::Format { path: SELF_STAT })?;
        read_into(SELF_STATUS, &mut self.buffer)?;
        let resident_kb = procfs::status_resident_kb(&self.buffer)
            .ok_or(ResourceError::Format { path: SELF_STATUS })?;
        let max_fds = read_into(SELF_LIMITS, &mut self.buffer)
            .ok()
            .and_then(|()| procfs::limits_max_open_files(&self.buffer));
        // The listing holds the descriptor `read_dir` itself opened: not ours to count.
        let open_fds = std::fs::read_dir(SELF_FD)
            .map_err(|source| ResourceError::Read {
                path: SELF_FD,
                source,
            })?
            .count()
            .saturating_sub(1) as u64;
        Ok(ProcessFigures {
            cpu_seconds: ticks(stat.user_ticks.saturating_add(stat.system_ticks)),
            resident_bytes: resident_kb.saturating_mul(1024),
            virtual_bytes: stat.virtual_bytes,
            open_fds,
            max_fds,
            threads: stat.threads,
            start_time_seconds: self
                .boot_time
                .map(|boot| boot as f64 + ticks(stat.start_ticks)),
        })
    }

    fn host(&mut self) -> HostFigures {
        let mut host = HostFigures::default();
        if read_into(STAT, &mut self.buffer).is_ok()
            && let Some(stat) = procfs::host_stat(&self.buffer)
        {
            let cpu = stat.cpu;
            host.cpu = Some(CpuSeconds {
                user: ticks(cpu.user),
                nice: ticks(cpu.nice),
                system: ticks(cpu.system),
                idle: ticks(cpu.idle),
                iowait: ticks(cpu.iowait),
                irq: ticks(cpu.irq),
                softirq: ticks(cpu.softirq),
                steal: ticks(cpu.steal),
            });
            host.cpus = stat.cpus;
        }
        if read_into(MEMINFO, &mut self.buffer).is_ok()
            && let Some(memory) = procfs::meminfo(&self.buffer)
        {
            host.memory_total_bytes = Some(memory.total_kb.saturating_mul(1024));
            host.memory_available_bytes = Some(memory.available_kb.saturating_mul(1024));
        }
        if read_into(LOADAVG, &mut self.buffer).is_ok() {
            host.load = procfs::loadavg(&self.buffer);
        }
        if read_into(DISKSTATS, &mut self.buffer).is_ok() {
            host.disks = procfs::diskstats(&self.buffer, MAX_LABELLED_DEVICES)
                .into_iter()
                .map(|disk| DiskFigures {
                    device: disk.device,
                    read_bytes: disk.read_sectors.saturating_mul(512),
                    written_bytes: disk.written_sectors.saturating_mul(512),
                    reads: disk.reads,
                    writes: disk.writes,
                    io_seconds: disk.io_millis as f64 / 1000.0,
                })
                .collect();
        }
        if read_into(NET_DEV, &mut self.buffer).is_ok() {
            host.interfaces = procfs::net_dev(&self.buffer, MAX_LABELLED_DEVICES)
                .into_iter()
                .map(|line| InterfaceFigures {
                    interface: line.interface,
                    receive_bytes: line.receive_bytes,
                    transmit_bytes: line.transmit_bytes,
                    receive_packets: line.receive_packets,
                    transmit_packets: line.transmit_packets,
                })
                .collect();
        }
        host
    }
}

/// The stable tokio runtime metrics of the runtime we are on, if any.
fn runtime_figures() -> Option<RuntimeFigures> {
    let handle = tokio::runtime::Handle::try_current().ok()?;
    let metrics = handle.metrics();
    let workers = metrics.num_workers();
    let busy_seconds = (0..workers)
        .map(|worker| metrics.worker_total_busy_duration(worker).as_secs_f64())
        .sum();
    Some(RuntimeFigures {
        workers: workers as u64,
        alive_tasks: metrics.num_alive_tasks() as u64,
        global_queue_depth: metrics.global_queue_depth() as u64,
        busy_seconds,
    })
}

/// Samples every `interval` until `shutdown` turns true; the app spawns this once.
///
/// The reads happen on the runtime thread: procfs files are generated in memory and one pass
/// costs tens of microseconds, less than a `spawn_blocking` round trip.
pub async fn run(
    mut sampler: ResourceSampler,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let span = tracing::info_span!("resource_sampler", ?interval);
    async move {
        let mut ticker = tokio::time::interval(interval.max(Duration::from_millis(10)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            if *shutdown.borrow() {
                break;
            }
            tokio::select! {
                _ = ticker.tick() => match sampler.sample() {
                    Ok(_) => failing = false,
                    Err(error) => {
                        // Once per run of failures, not once per tick.
                        if !failing {
                            tracing::warn!(%error, "resource sampling failed");
                        }
                        failing = true;
                    }
                },
                changed = shutdown.changed() => if changed.is_err() { break },
            }
        }
    }
    .instrument(span)
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_sees_this_process_and_the_host() {
        let registry = prometheus::Registry::new();
        let mut sampler = ResourceSampler::new(&registry)
            .unwrap()
            .with_memory_budget(Some(1 << 30));
        let snapshot = sampler.sample().unwrap();
        assert!(snapshot.process.resident_bytes > 1024 * 1024);
        assert!(snapshot.process.threads >= 1);
        assert!(snapshot.process.open_fds >= 3);
        assert!(snapshot.runtime.is_none(), "no runtime in a plain test");
        let cpu = snapshot.host.cpu.unwrap();
        assert!(cpu.total() > 0.0 && cpu.busy() <= cpu.total());
        assert!(snapshot.host.cpus >= 1);
        assert!(snapshot.host.memory_available_bytes <= snapshot.host.memory_total_bytes);
        assert_eq!(sampler.handle().latest().as_deref(), Some(&*snapshot));
    }

    #[test]
    fn sampled_figures_are_exported_under_their_names() {
        let registry = prometheus::Registry::new();
        let mut sampler = ResourceSampler::new(&registry)
            .unwrap()
            .with_memory_budget(Some(1 << 30));
        sampler.sample().unwrap();
        sampler.sample().unwrap();
        let names: Vec<String> = registry
            .gather()
            .iter()
            .map(|family| family.name().to_string())
            .collect();
        for name in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_threads",
            "sluice_host_cpu_seconds_total",
            "sluice_host_memory_available_bytes",
            "sluice_host_load1",
            "sluice_memory_budget_bytes",
            "sluice_resource_sample_duration_seconds",
        ] {
            assert!(names.iter().any(|n| n == name), "{name} missing: {names:?}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn inside_a_runtime_the_tokio_figures_are_read() {
        let registry = prometheus::Registry::new();
        let mut sampler = ResourceSampler::new(&registry).unwrap();
        let (_keep, waiting) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(waiting);
        let runtime = sampler.sample().unwrap().runtime.clone().unwrap();
        assert_eq!(runtime.workers, 2);
        assert!(runtime.alive_tasks >= 1, "the waiting task is alive");
        task.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn run_samples_until_shutdown() {
        let registry = prometheus::Registry::new();
        let sampler = ResourceSampler::new(&registry).unwrap();
        let handle = sampler.handle();
        let (stop, shutdown) = watch::channel(false);
        let task = tokio::spawn(run(sampler, Duration::from_secs(5), shutdown));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(handle.latest().is_some(), "the first tick samples at once");
        stop.send(true).unwrap();
        task.await.unwrap();
    }
}
