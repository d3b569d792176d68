//! Alerts Sluice evaluates itself, so they work without a Prometheus server: the same rules
//! as `config/alerts/sluice-rules.yml`, judged in-process on the registry and the resource
//! snapshot, with a `for` duration as Prometheus has.
//!
//! It owns the rule list ([`AlertKind`]), the thresholds, the pure [`Evaluator`] (figures and
//! `now` in, fired and resolved transitions out), the [`AlertBoard`] that `/admin/alerts` and
//! the dashboard read, and the task that ties them together. It logs one line when an alert
//! fires (warn) or clears (info). It does not send notifications anywhere.
//!
//! Rules over inputs the proxy does not produce (no cache metric, no pool health yet) see no
//! series and stay inactive.

mod engine;
mod window;

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

pub use engine::{AlertBoard, AlertEngine, FiringAlert, run};
pub use window::{Breach, FigureWindow, Figures, RouteFigures, breaches};

/// How bad an alert is, as a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Warning,
    Critical,
}

impl Severity {
    /// The label value.
    pub fn as_str(&self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// Every rule; the names match the Prometheus rule file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AlertKind {
    ServerErrorRatio,
    LatencyOverSlo,
    BackendDown,
    PoolDegraded,
    CacheHitRatioCollapse,
    MemoryNearBudget,
    HostMemoryLow,
    CpuSaturated,
    ReloadsFailing,
}

impl AlertKind {
    /// The alert's name, as in `sluice-rules.yml`.
    pub fn as_str(&self) -> &'static str {
        match self {
            AlertKind::ServerErrorRatio => "SluiceHighServerErrorRatio",
            AlertKind::LatencyOverSlo => "SluiceLatencyOverSlo",
            AlertKind::BackendDown => "SluiceBackendDown",
            AlertKind::PoolDegraded => "SluicePoolDegraded",
            AlertKind::CacheHitRatioCollapse => "SluiceCacheHitRatioCollapse",
            AlertKind::MemoryNearBudget => "SluiceMemoryNearBudget",
            AlertKind::HostMemoryLow => "SluiceHostMemoryLow",
            AlertKind::CpuSaturated => "SluiceCpuSaturated",
            AlertKind::ReloadsFailing => "SluiceConfigReloadsFailing",
        }
    }

    /// Its severity.
    pub fn severity(&self) -> Severity {
        match self {
            AlertKind::ServerErrorRatio | AlertKind::PoolDegraded | AlertKind::MemoryNearBudget => {
                Severity::Critical
            }
            _ => Severity::Warning,
        }
    }

    fn describe(&self, value: f64, threshold: f64) -> String {
        let percent = |v: f64| format!("{:.1}%", v * 100.0);
        match self {
            AlertKind::ServerErrorRatio => {
                format!("5xx ratio {} over {}", percent(value), percent(threshold))
            }
            AlertKind::LatencyOverSlo => format!(
                "p99 latency {:.0} ms over the {:.0} ms SLO",
                value * 1000.0,
                threshold * 1000.0
            ),
            AlertKind::BackendDown => "backend failing its health checks".to_string(),
            AlertKind::PoolDegraded => {
                format!("{value:.0} healthy backends, fewer than {threshold:.0}")
            }
            AlertKind::CacheHitRatioCollapse => format!(
                "cache hit ratio {} under {} (half its baseline)",
                percent(value),
                percent(threshold)
            ),
            AlertKind::MemoryNearBudget => {
                format!("resident memory at {} of the budget", percent(value))
            }
            AlertKind::HostMemoryLow => format!("host memory available {}", percent(value)),
            AlertKind::CpuSaturated => format!("host CPU busy {}", percent(value)),
            AlertKind::ReloadsFailing => {
                format!("{value:.0} failed config reloads and no success")
            }
        }
    }
}

/// The thresholds and `for` durations; the defaults match `sluice-rules.yml`.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertThresholds {
    /// Window of rates and ratios (PromQL `[5m]`).
    pub rate_window: Duration,
    /// Below this many requests per second a route's ratios are noise and are not judged.
    pub min_request_rate: f64,
    pub server_error_ratio: f64,
    pub server_error_for: Duration,
    pub latency_slo_seconds: f64,
    pub latency_for: Duration,
    pub backend_down_for: Duration,
    pub pool_min_healthy: u64,
    pub pool_for: Duration,
    /// The hit ratio is compared with itself over this longer window.
    pub cache_baseline_window: Duration,
    /// Fires when the hit ratio falls under this fraction of its baseline...
    pub cache_collapse_fraction: f64,
    /// ...and the baseline was at least this (a cache that never hit cannot collapse).
    pub cache_min_baseline: f64,
    pub cache_for: Duration,
    pub memory_budget_ratio: f64,
    pub memory_for: Duration,
    pub host_memory_available_ratio: f64,
    pub host_memory_for: Duration,
    pub cpu_busy_ratio: f64,
    pub cpu_for: Duration,
    /// Failed reloads with no success in this window fire at once.
    pub reload_window: Duration,
}

const MINUTE: Duration = Duration::from_secs(60);

impl Default for AlertThresholds {
    fn default() -> AlertThresholds {
        AlertThresholds {
            rate_window: 5 * MINUTE,
            min_request_rate: 0.1,
            server_error_ratio: 0.05,
            server_error_for: 5 * MINUTE,
            latency_slo_seconds: 0.5,
            latency_for: 10 * MINUTE,
            backend_down_for: MINUTE,
            pool_min_healthy: 2,
            pool_for: MINUTE,
            cache_baseline_window: 60 * MINUTE,
            cache_collapse_fraction: 0.5,
            cache_min_baseline: 0.2,
            cache_for: 10 * MINUTE,
            memory_budget_ratio: 0.9,
            memory_for: 5 * MINUTE,
            host_memory_available_ratio: 0.1,
            host_memory_for: 5 * MINUTE,
            cpu_busy_ratio: 0.9,
            cpu_for: 10 * MINUTE,
            reload_window: 15 * MINUTE,
        }
    }
}

impl AlertThresholds {
    /// How long a breach must last before `kind` fires.
    pub fn for_duration(&self, kind: AlertKind) -> Duration {
        match kind {
            AlertKind::ServerErrorRatio => self.server_error_for,
            AlertKind::LatencyOverSlo => self.latency_for,
            AlertKind::BackendDown => self.backend_down_for,
            AlertKind::PoolDegraded => self.pool_for,
            AlertKind::CacheHitRatioCollapse => self.cache_for,
            AlertKind::MemoryNearBudget => self.memory_for,
            AlertKind::HostMemoryLow => self.host_memory_for,
            AlertKind::CpuSaturated => self.cpu_for,
            AlertKind::ReloadsFailing => Duration::ZERO,
        }
    }
}

/// One alert series: a rule and its labels, with the latest value.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub kind: AlertKind,
    pub labels: Vec<(&'static str, String)>,
    pub value: f64,
    pub threshold: f64,
    /// When the breach began (not when it fired).
    pub since: Instant,
}

impl Alert {
    /// One line for people: the labels and what is wrong.
    pub fn summary(&self) -> String {
        let labels: Vec<String> = self
            .labels
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let what = self.kind.describe(self.value, self.threshold);
        if labels.is_empty() {
            what
        } else {
            format!("{}: {what}", labels.join(", "))
        }
    }
}

/// A change the evaluator saw.
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    Fired(Alert),
    Resolved(Alert),
}

type SeriesKey = (AlertKind, Vec<(&'static str, String)>);

struct Series {
    alert: Alert,
    firing: bool,
}

/// The pure part: which series are pending or firing, advanced by [`Evaluator::evaluate`].
pub struct Evaluator {
    thresholds: AlertThresholds,
    series: BTreeMap<SeriesKey, Series>,
}

impl Evaluator {
    /// An evaluator with nothing pending.
    pub fn new(thresholds: AlertThresholds) -> Evaluator {
        Evaluator {
            thresholds,
            series: BTreeMap::new(),
        }
    }

    /// The thresholds in force.
    pub fn thresholds(&self) -> &AlertThresholds {
        &self.thresholds
    }

    /// Judges `figures` at `now`: a breach starts pending, fires once it has lasted its `for`
    /// duration, and resolves as soon as it is gone (or its series is absent).
    pub fn evaluate(&mut self, figures: &Figures, now: Instant) -> Vec<Transition> {
        let mut transitions = Vec::new();
        let mut current: BTreeMap<SeriesKey, Breach> = BTreeMap::new();
        for breach in breaches(figures, &self.thresholds) {
            current.insert((breach.kind, breach.labels.clone()), breach);
        }
        self.series.retain(|key, series| {
            let stays = current.contains_key(key);
            if !stays && series.firing {
                transitions.push(Transition::Resolved(series.alert.clone()));
            }
            stays
        });
        for (key, breach) in current {
            let series = self.series.entry(key).or_insert_with(|| Series {
                alert: Alert {
                    kind: breach.kind,
                    labels: breach.labels.clone(),
                    value: breach.value,
                    threshold: breach.threshold,
                    since: now,
                },
                firing: false,
            });
            series.alert.value = breach.value;
            series.alert.threshold = breach.threshold;
            let lasted = now.saturating_duration_since(series.alert.since);
            if !series.firing && lasted >= self.thresholds.for_duration(breach.kind) {
                series.firing = true;
                transitions.push(Transition::Fired(series.alert.clone()));
            }
        }
        transitions
    }

    /// The alerts firing now, in a stable order.
    pub fn firing(&self) -> Vec<Alert> {
        self.series
            .values()
            .filter(|s| s.firing)
            .map(|s| s.alert.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests;
