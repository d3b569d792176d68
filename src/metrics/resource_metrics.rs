//! The Prometheus side of the resource sampler: every resource metric name, registered once,
//! and the code that copies a [`ResourceSnapshot`] into them.
//!
//! `/proc` gives cumulative counts; a Prometheus counter only goes up, so each one is moved to
//! the new value by its difference (and reset if the source went backwards, as a network
//! interface does when it is re-created). Disk and interface labels come from a bounded set
//! (see `MAX_LABELLED_DEVICES`); a device that disappears has its series removed.

use prometheus::{Counter, CounterVec, Gauge, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

use super::resources::ResourceSnapshot;

/// Moves a float counter to `value`.
fn set_counter(counter: &Counter, value: f64) {
    let delta = value - counter.get();
    if delta >= 0.0 {
        counter.inc_by(delta);
    } else {
        counter.reset();
        counter.inc_by(value.max(0.0));
    }
}

/// Moves an integer counter to `value`.
fn set_int_counter(counter: &IntCounter, value: u64) {
    let current = counter.get();
    if let Some(delta) = value.checked_sub(current) {
        counter.inc_by(delta);
    } else {
        counter.reset();
        counter.inc_by(value);
    }
}

fn saturating_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The typed handles, one per exported name.
pub(crate) struct ResourceMetrics {
    cpu_seconds: Counter,
    resident_bytes: IntGauge,
    virtual_bytes: IntGauge,
    open_fds: IntGauge,
    max_fds: IntGauge,
    threads: IntGauge,
    start_time: Gauge,
    runtime_workers: IntGauge,
    runtime_alive_tasks: IntGauge,
    runtime_global_queue_depth: IntGauge,
    runtime_busy_seconds: Counter,
    host_cpu_seconds: CounterVec,
    host_cpus: IntGauge,
    host_memory_total: IntGauge,
    host_memory_available: IntGauge,
    host_load: [Gauge; 3],
    disk_read_bytes: IntCounterVec,
    disk_written_bytes: IntCounterVec,
    disk_reads: IntCounterVec,
    disk_writes: IntCounterVec,
    disk_io_seconds: CounterVec,
    network_receive_bytes: IntCounterVec,
    network_transmit_bytes: IntCounterVec,
    network_receive_packets: IntCounterVec,
    network_transmit_packets: IntCounterVec,
    memory_budget: IntGauge,
    budget_registered: bool,
    registry: Registry,
    sample_seconds: Gauge,
    disks: Vec<String>,
    interfaces: Vec<String>,
}

fn add<T: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    metric: T,
) -> Result<T, prometheus::Error> {
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

fn gauge(registry: &Registry, name: &str, help: &str) -> Result<IntGauge, prometheus::Error> {
    add(registry, IntGauge::new(name, help)?)
}

fn float_gauge(registry: &Registry, name: &str, help: &str) -> Result<Gauge, prometheus::Error> {
    add(registry, Gauge::new(name, help)?)
}

fn counters(
    registry: &Registry,
    name: &str,
    help: &str,
    label: &str,
) -> Result<IntCounterVec, prometheus::Error> {
    add(
        registry,
        IntCounterVec::new(Opts::new(name, help), &[label])?,
    )
}

impl ResourceMetrics {
    /// Registers every resource metric; fails on a name already in `registry`.
    pub(crate) fn register(registry: &Registry) -> Result<ResourceMetrics, prometheus::Error> {
        let r = registry;
        Ok(ResourceMetrics {
            cpu_seconds: add(
                r,
                Counter::new(
                    "process_cpu_seconds_total",
                    "Total user and system CPU time spent in seconds.",
                )?,
            )?,
            resident_bytes: gauge(
                r,
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
            )?,
            virtual_bytes: gauge(
                r,
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
            )?,
            open_fds: gauge(r, "process_open_fds", "Number of open file descriptors.")?,
            max_fds: gauge(
                r,
                "process_max_fds",
                "Maximum number of open file descriptors.",
            )?,
            threads: gauge(r, "process_threads", "Number of OS threads in the process.")?,
            start_time: float_gauge(
                r,
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
            )?,
            runtime_workers: gauge(
                r,
                "sluice_runtime_workers",
                "Worker threads of the tokio runtime.",
            )?,
            runtime_alive_tasks: gauge(
                r,
                "sluice_runtime_alive_tasks",
                "Tasks alive in the tokio runtime.",
            )?,
            runtime_global_queue_depth: gauge(
                r,
                "sluice_runtime_global_queue_depth",
                "Tasks waiting in the tokio runtime's global queue.",
            )?,
            runtime_busy_seconds: add(
                r,
                Counter::new(
                    "sluice_runtime_worker_busy_seconds_total",
                    "Time tokio workers spent busy, summed over workers.",
                )?,
            )?,
            host_cpu_seconds: add(
                r,
                CounterVec::new(
                    Opts::new(
                        "sluice_host_cpu_seconds_total",
                        "Host CPU time by mode, summed over CPUs.",
                    ),
                    &["mode"],
                )?,
            )?,
            host_cpus: gauge(r, "sluice_host_cpus", "CPUs online on the host.")?,
            host_memory_total: gauge(r, "sluice_host_memory_total_bytes", "Host memory in bytes.")?,
            host_memory_available: gauge(
                r,
                "sluice_host_memory_available_bytes",
                "Host memory available for new work, in bytes.",
            )?,
            host_load: [
                float_gauge(r, "sluice_host_load1", "Host load average over 1 minute.")?,
                float_gauge(r, "sluice_host_load5", "Host load average over 5 minutes.")?,
                float_gauge(
                    r,
                    "sluice_host_load15",
                    "Host load average over 15 minutes.",
                )?,
            ],
            disk_read_bytes: counters(
                r,
                "sluice_host_disk_read_bytes_total",
                "Bytes read from a whole disk.",
                "device",
            )?,
            disk_written_bytes: counters(
                r,
                "sluice_host_disk_written_bytes_total",
                "Bytes written to a whole disk.",
                "device",
            )?,
            disk_reads: counters(
                r,
                "sluice_host_disk_reads_completed_total",
                "Reads completed by a whole disk.",
                "device",
            )?,
            disk_writes: counters(
                r,
                "sluice_host_disk_writes_completed_total",
                "Writes completed by a whole disk.",
                "device",
            )?,
            disk_io_seconds: add(
                r,
                CounterVec::new(
                    Opts::new(
                        "sluice_host_disk_io_time_seconds_total",
                        "Time a whole disk spent doing I/O.",
                    ),
                    &["device"],
                )?,
            )?,
            network_receive_bytes: counters(
                r,
                "sluice_host_network_receive_bytes_total",
                "Bytes received by a network interface.",
                "interface",
            )?,
            network_transmit_bytes: counters(
                r,
                "sluice_host_network_transmit_bytes_total",
                "Bytes sent by a network interface.",
                "interface",
            )?,
            network_receive_packets: counters(
                r,
                "sluice_host_network_receive_packets_total",
                "Packets received by a network interface.",
                "interface",
            )?,
            network_transmit_packets: counters(
                r,
                "sluice_host_network_transmit_packets_total",
                "Packets sent by a network interface.",
                "interface",
            )?,
            memory_budget: IntGauge::new(
                "sluice_memory_budget_bytes",
                "Memory the process is configured to stay under, in bytes.",
            )?,
            budget_registered: false,
            registry: r.clone(),
            sample_seconds: float_gauge(
                r,
                "sluice_resource_sample_duration_seconds",
                "Time the last resource sampling pass took.",
            )?,
            disks: Vec::new(),
            interfaces: Vec::new(),
        })
    }

    /// Exports the memory budget; the gauge exists only while there is one, so a rule over
    /// it stays inactive without a budget.
    pub(crate) fn set_budget(&mut self, bytes: Option<u64>) {
        match bytes {
            Some(bytes) => {
                self.memory_budget.set(saturating_i64(bytes));
                if !self.budget_registered {
                    self.budget_registered = self
                        .registry
                        .register(Box::new(self.memory_budget.clone()))
                        .is_ok();
                }
            }
            None if self.budget_registered => {
                self.budget_registered = self
                    .registry
                    .unregister(Box::new(self.memory_budget.clone()))
                    .is_err();
            }
            None => {}
        }
    }

    /// Copies one snapshot into the metrics.
    pub(crate) fn publish(&mut self, snapshot: &ResourceSnapshot) {
        let process = &snapshot.process;
        set_counter(&self.cpu_seconds, process.cpu_seconds);
        self.resident_bytes
            .set(saturating_i64(process.resident_bytes));
        self.virtual_bytes
            .set(saturating_i64(process.virtual_bytes));
        self.open_fds.set(saturating_i64(process.open_fds));
        self.max_fds
            .set(process.max_fds.map_or(i64::MAX, saturating_i64));
        self.threads.set(saturating_i64(process.threads));
        if let Some(start) = process.start_time_seconds {
            self.start_time.set(start);
        }
        if let Some(runtime) = &snapshot.runtime {
            self.runtime_workers.set(saturating_i64(runtime.workers));
            self.runtime_alive_tasks
                .set(saturating_i64(runtime.alive_tasks));
            self.runtime_global_queue_depth
                .set(saturating_i64(runtime.global_queue_depth));
            set_counter(&self.runtime_busy_seconds, runtime.busy_seconds);
        }
        let host = &snapshot.host;
        if let Some(cpu) = &host.cpu {
            for (mode, seconds) in cpu.modes() {
                set_counter(&self.host_cpu_seconds.with_label_values(&[mode]), seconds);
            }
        }
        self.host_cpus.set(saturating_i64(host.cpus));
        if let Some(total) = host.memory_total_bytes {
            self.host_memory_total.set(saturating_i64(total));
        }
        if let Some(available) = host.memory_available_bytes {
            self.host_memory_available.set(saturating_i64(available));
        }
        if let Some(load) = host.load {
            for (gauge, value) in self.host_load.iter().zip(load) {
                gauge.set(value);
            }
        }
        self.sample_seconds.set(snapshot.sample_seconds);
        self.publish_disks(snapshot);
        self.publish_interfaces(snapshot);
    }

    fn publish_disks(&mut self, snapshot: &ResourceSnapshot) {
        let disks = &snapshot.host.disks;
        for gone in self
            .disks
            .iter()
            .filter(|d| !disks.iter().any(|n| &n.device == *d))
        {
            let labels = [gone.as_str()];
            for vec in [
                &self.disk_read_bytes,
                &self.disk_written_bytes,
                &self.disk_reads,
                &self.disk_writes,
            ] {
                let _ = vec.remove_label_values(&labels);
            }
            let _ = self.disk_io_seconds.remove_label_values(&labels);
        }
        for disk in disks {
            let labels = [disk.device.as_str()];
            set_int_counter(
                &self.disk_read_bytes.with_label_values(&labels),
                disk.read_bytes,
            );
            set_int_counter(
                &self.disk_written_bytes.with_label_values(&labels),
                disk.written_bytes,
            );
            set_int_counter(&self.disk_reads.with_label_values(&labels), disk.reads);
            set_int_counter(&self.disk_writes.with_label_values(&labels), disk.writes);
            set_counter(
                &self.disk_io_seconds.with_label_values(&labels),
                disk.io_seconds,
            );
        }
        self.disks = disks.iter().map(|d| d.device.clone()).collect();
    }

    fn publish_interfaces(&mut self, snapshot: &ResourceSnapshot) {
        let interfaces = &snapshot.host.interfaces;
        let vecs = [
            &self.network_receive_bytes,
            &self.network_transmit_bytes,
            &self.network_receive_packets,
            &self.network_transmit_packets,
        ];
        for gone in self
            .interfaces
            .iter()
            .filter(|i| !interfaces.iter().any(|n| &n.interface == *i))
        {
            for vec in vecs {
                let _ = vec.remove_label_values(&[gone.as_str()]);
            }
        }
        for line in interfaces {
            let values = [
                line.receive_bytes,
                line.transmit_bytes,
                line.receive_packets,
                line.transmit_packets,
            ];
            for (vec, value) in vecs.iter().zip(values) {
                set_int_counter(&vec.with_label_values(&[line.interface.as_str()]), value);
            }
        }
        self.interfaces = interfaces.iter().map(|i| i.interface.clone()).collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::resources::{DiskFigures, InterfaceFigures};

    #[test]
    fn counters_follow_the_source_and_reset_when_it_goes_back() {
        let counter = IntCounter::new("c_total", "c").unwrap();
        set_int_counter(&counter, 10);
        set_int_counter(&counter, 25);
        assert_eq!(counter.get(), 25);
        set_int_counter(&counter, 3);
        assert_eq!(counter.get(), 3);
        let float = Counter::new("f_total", "f").unwrap();
        set_counter(&float, 1.5);
        set_counter(&float, 2.25);
        assert!((float.get() - 2.25).abs() < 1e-9);
        set_counter(&float, 0.5);
        assert!((float.get() - 0.5).abs() < 1e-9);
    }

    #[test]
    fn a_device_that_disappears_loses_its_series() {
        let registry = Registry::new();
        let mut metrics = ResourceMetrics::register(&registry).unwrap();
        let mut snapshot = ResourceSnapshot::default();
        snapshot.host.disks = vec![DiskFigures {
            device: "vda".into(),
            read_bytes: 512,
            ..Default::default()
        }];
        snapshot.host.interfaces = vec![InterfaceFigures {
            interface: "eth9".into(),
            receive_bytes: 7,
            ..Default::default()
        }];
        metrics.publish(&snapshot);
        let text = render(&registry);
        assert!(
            text.contains("sluice_host_disk_read_bytes_total{device=\"vda\"} 512"),
            "{text}"
        );
        assert!(text.contains("sluice_host_network_receive_bytes_total{interface=\"eth9\"} 7"));
        snapshot.host.disks.clear();
        snapshot.host.interfaces.clear();
        metrics.publish(&snapshot);
        let text = render(&registry);
        assert!(!text.contains("vda") && !text.contains("eth9"), "{text}");
    }

    #[test]
    fn the_budget_gauge_exists_only_with_a_budget() {
        let registry = Registry::new();
        let mut metrics = ResourceMetrics::register(&registry).unwrap();
        assert!(!render(&registry).contains("sluice_memory_budget_bytes"));
        metrics.set_budget(Some(4096));
        assert!(render(&registry).contains("sluice_memory_budget_bytes 4096"));
        metrics.set_budget(None);
        assert!(!render(&registry).contains("sluice_memory_budget_bytes"));
    }

    fn render(registry: &Registry) -> String {
        let mut out = Vec::new();
        prometheus::Encoder::encode(
            &prometheus::TextEncoder::new(),
            &registry.gather(),
            &mut out,
        )
        .unwrap();
        String::from_utf8(out).unwrap()
    }
}
