//! Turns successive cumulative readings into the windowed [`Figures`] the alert rules judge,
//! and the rules themselves as one pure function, [`breaches`].
//!
//! The window keeps the readings that cover the rate window (5 minutes by default), plus a
//! thin ring of cache and reload counts that covers the longer windows. A rate is the change
//! between the oldest reading in the window and the newest, over the time between them;
//! with a single reading there is no rate and the rules that need one stay inactive.

use std::collections::{BTreeMap, VecDeque};

use tokio::time::Instant;

use super::{AlertKind, AlertThresholds};
use crate::metrics::resources::{CpuSeconds, ResourceSnapshot};
use crate::metrics::totals::{BackendHealth, RegistryTotals, RouteTotals};

/// One route over the rate window.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteFigures {
    pub route: String,
    pub request_rate: f64,
    /// 5xx over all; `None` under the minimum request rate.
    pub server_error_ratio: Option<f64>,
    /// `None` under the minimum request rate.
    pub latency_p99_seconds: Option<f64>,
}

/// The current figures the rules judge: plain numbers, absent when unknown.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Figures {
    pub routes: Vec<RouteFigures>,
    pub backends: Vec<BackendHealth>,
    /// Hit ratio over the rate window and over the baseline window.
    pub cache_hit_ratio: Option<(f64, f64)>,
    pub resident_bytes: Option<u64>,
    pub memory_budget_bytes: Option<u64>,
    /// Available and total bytes.
    pub host_memory: Option<(u64, u64)>,
    pub cpu_busy_ratio: Option<f64>,
    /// Failed and successful reloads over the reload window.
    pub reloads: Option<(u64, u64)>,
}

/// One rule's verdict on one series: over its threshold now.
#[derive(Debug, Clone, PartialEq)]
pub struct Breach {
    pub kind: AlertKind,
    pub labels: Vec<(&'static str, String)>,
    pub value: f64,
    pub threshold: f64,
}

struct Reading {
    at: Instant,
    routes: BTreeMap<String, RouteTotals>,
    cpu: Option<CpuSeconds>,
}

#[derive(Clone, Copy)]
struct Counts {
    at: Instant,
    cache_hits: u64,
    cache_lookups: u64,
    reload_failures: u64,
    reload_successes: u64,
}

/// Readings over the windows the rules need.
#[derive(Default)]
pub struct FigureWindow {
    readings: VecDeque<Reading>,
    counts: VecDeque<Counts>,
}

/// Drops readings older than `window` before `now`, keeping the one that starts it.
fn prune<T>(
    ring: &mut VecDeque<T>,
    at: impl Fn(&T) -> Instant,
    now: Instant,
    window: std::time::Duration,
) {
    while ring.len() >= 2
        && ring
            .get(1)
            .is_some_and(|next| now.duration_since(at(next)) >= window)
    {
        ring.pop_front();
    }
}

/// The oldest entry of `ring` no older than `window`, or the oldest at all.
fn start_of<T>(
    ring: &VecDeque<T>,
    at: impl Fn(&T) -> Instant,
    now: Instant,
    window: std::time::Duration,
) -> Option<&T> {
    ring.iter()
        .find(|entry| now.duration_since(at(entry)) <= window)
        .or(ring.front())
}

fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

impl FigureWindow {
    /// Adds a reading taken at `now` and returns the figures over the windows.
    pub fn observe(
        &mut self,
        now: Instant,
        totals: &RegistryTotals,
        resources: Option<&ResourceSnapshot>,
        thresholds: &AlertThresholds,
    ) -> Figures {
        self.readings.push_back(Reading {
            at: now,
            routes: totals.routes.clone(),
            cpu: resources.and_then(|r| r.host.cpu),
        });
        self.counts.push_back(Counts {
            at: now,
            cache_hits: totals.cache_hits(),
            cache_lookups: totals.cache_lookups(),
            reload_failures: totals.config_reloads.get("failure").copied().unwrap_or(0),
            reload_successes: totals.config_reloads.get("success").copied().unwrap_or(0),
        });
        prune(&mut self.readings, |r| r.at, now, thresholds.rate_window);
        let long = thresholds
            .cache_baseline_window
            .max(thresholds.reload_window);
        prune(&mut self.counts, |c| c.at, now, long);

        let mut figures = Figures {
            backends: totals.backends.clone(),
            resident_bytes: resources.map(|r| r.process.resident_bytes),
            memory_budget_bytes: resources.and_then(|r| r.memory_budget_bytes),
            host_memory: resources
                .and_then(|r| Some((r.host.memory_available_bytes?, r.host.memory_total_bytes?))),
            ..Figures::default()
        };
        if let Some(first) = self.readings.front().filter(|first| first.at < now) {
            let seconds = now.duration_since(first.at).as_secs_f64();
            figures.routes = route_figures(first, totals, seconds, thresholds);
            figures.cpu_busy_ratio =
                first
                    .cpu
                    .zip(resources.and_then(|r| r.host.cpu))
                    .and_then(|(then, now)| {
                        ratio_f(now.busy() - then.busy(), now.total() - then.total())
                    });
        }
        if let Some(latest) = self.counts.back().copied() {
            let window = |w| {
                start_of(&self.counts, |c| c.at, now, w)
                    .copied()
                    .filter(|c| c.at < now)
            };
            if let (Some(short), Some(base)) = (
                window(thresholds.rate_window),
                window(thresholds.cache_baseline_window),
            ) {
                let lookups = latest.cache_lookups.saturating_sub(short.cache_lookups);
                let rate = lookups as f64 / now.duration_since(short.at).as_secs_f64();
                let hit = ratio(latest.cache_hits.saturating_sub(short.cache_hits), lookups);
                let baseline = ratio(
                    latest.cache_hits.saturating_sub(base.cache_hits),
                    latest.cache_lookups.saturating_sub(base.cache_lookups),
                );
                if rate >= thresholds.min_request_rate {
                    figures.cache_hit_ratio = hit.zip(baseline);
                }
            }
            if let Some(start) = window(thresholds.reload_window) {
                figures.reloads = Some((
                    latest.reload_failures.saturating_sub(start.reload_failures),
                    latest
                        .reload_successes
                        .saturating_sub(start.reload_successes),
                ));
            }
        }
        figures
    }
}

fn ratio_f(part: f64, whole: f64) -> Option<f64> {
    (whole > 0.0).then(|| (part / whole).clamp(0.0, 1.0))
}

fn route_figures(
    first: &Reading,
    totals: &RegistryTotals,
    seconds: f64,
    thresholds: &AlertThresholds,
) -> Vec<RouteFigures> {
    let empty = RouteTotals::default();
    totals
        .routes
        .iter()
        .map(|(route, now)| {
            let then = first.routes.get(route).unwrap_or(&empty);
            let requests = now.requests().saturating_sub(then.requests());
            let errors = now.server_errors().saturating_sub(then.server_errors());
            let request_rate = requests as f64 / seconds;
            let busy = request_rate >= thresholds.min_request_rate;
            RouteFigures {
                route: route.clone(),
                request_rate,
                server_error_ratio: ratio(errors, requests).filter(|_| busy),
                latency_p99_seconds: now
                    .latency
                    .since(&then.latency)
                    .and_then(|window| window.quantile(0.99))
                    .filter(|_| busy),
            }
        })
        .collect()
}

/// Every series over its threshold in `figures`: the rules, as one pure function.
pub fn breaches(figures: &Figures, thresholds: &AlertThresholds) -> Vec<Breach> {
    let mut out = Vec::new();
    let mut breach = |kind, labels, value, threshold| {
        out.push(Breach {
            kind,
            labels,
            value,
            threshold,
        });
    };
    for route in &figures.routes {
        let labels = || vec![("route", route.route.clone())];
        if let Some(ratio) = route
            .server_error_ratio
            .filter(|r| *r > thresholds.server_error_ratio)
        {
            breach(
                AlertKind::ServerErrorRatio,
                labels(),
                ratio,
                thresholds.server_error_ratio,
            );
        }
        if let Some(p99) = route
            .latency_p99_seconds
            .filter(|p| *p > thresholds.latency_slo_seconds)
        {
            breach(
                AlertKind::LatencyOverSlo,
                labels(),
                p99,
                thresholds.latency_slo_seconds,
            );
        }
    }
    let mut pools: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for backend in &figures.backends {
        let pool = pools.entry(backend.pool.as_str()).or_default();
        pool.1 += 1;
        if backend.healthy {
            pool.0 += 1;
        } else {
            let labels = vec![
                ("pool", backend.pool.clone()),
                ("backend", backend.backend.clone()),
            ];
            breach(AlertKind::BackendDown, labels, 0.0, 1.0);
        }
    }
    for (pool, (healthy, total)) in pools {
        // A pool smaller than the minimum is judged against its size: all must be up.
        let minimum = thresholds.pool_min_healthy.min(total);
        if healthy < minimum {
            breach(
                AlertKind::PoolDegraded,
                vec![("pool", pool.to_string())],
                healthy as f64,
                minimum as f64,
            );
        }
    }
    if let Some((ratio, baseline)) = figures.cache_hit_ratio {
        let floor = baseline * thresholds.cache_collapse_fraction;
        if baseline >= thresholds.cache_min_baseline && ratio < floor {
            breach(AlertKind::CacheHitRatioCollapse, Vec::new(), ratio, floor);
        }
    }
    if let (Some(resident), Some(budget)) = (figures.resident_bytes, figures.memory_budget_bytes)
        && budget > 0
    {
        let used = resident as f64 / budget as f64;
        if used > thresholds.memory_budget_ratio {
            breach(
                AlertKind::MemoryNearBudget,
                Vec::new(),
                used,
                thresholds.memory_budget_ratio,
            );
        }
    }
    if let Some(available) = figures.host_memory.and_then(|(a, t)| ratio(a, t))
        && available < thresholds.host_memory_available_ratio
    {
        breach(
            AlertKind::HostMemoryLow,
            Vec::new(),
            available,
            thresholds.host_memory_available_ratio,
        );
    }
    if let Some(busy) = figures
        .cpu_busy_ratio
        .filter(|b| *b > thresholds.cpu_busy_ratio)
    {
        breach(
            AlertKind::CpuSaturated,
            Vec::new(),
            busy,
            thresholds.cpu_busy_ratio,
        );
    }
    if let Some((failures, successes)) = figures.reloads
        && failures > 0
        && successes == 0
    {
        breach(AlertKind::ReloadsFailing, Vec::new(), failures as f64, 0.0);
    }
    out
}
