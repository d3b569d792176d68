//! Unit tests of the rules, the evaluator and the window, with time as a parameter.

use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::time::Instant;

use super::*;
use crate::metrics::resources::{CpuSeconds, ResourceSnapshot};
use crate::metrics::totals::{BackendHealth, RegistryTotals, RouteTotals};

const SECOND: Duration = Duration::from_secs(1);

fn route(route: &str, ratio: f64) -> RouteFigures {
    RouteFigures {
        route: route.into(),
        request_rate: 10.0,
        server_error_ratio: Some(ratio),
        latency_p99_seconds: Some(0.05),
    }
}

fn with_routes(routes: Vec<RouteFigures>) -> Figures {
    Figures {
        routes,
        ..Figures::default()
    }
}

fn names(transitions: &[Transition]) -> Vec<String> {
    transitions
        .iter()
        .map(|t| match t {
            Transition::Fired(a) => format!("fired {} {:?}", a.kind.as_str(), a.labels),
            Transition::Resolved(a) => format!("resolved {} {:?}", a.kind.as_str(), a.labels),
        })
        .collect()
}

#[test]
fn a_breach_fires_only_after_its_for_duration_and_resolves_when_gone() {
    let mut evaluator = Evaluator::new(AlertThresholds::default());
    let start = Instant::now();
    let bad = with_routes(vec![route("api", 0.2), route("static", 0.0)]);
    assert!(
        evaluator.evaluate(&bad, start).is_empty(),
        "pending, not firing"
    );
    assert!(evaluator.evaluate(&bad, start + 4 * 60 * SECOND).is_empty());
    let fired = evaluator.evaluate(&bad, start + 5 * 60 * SECOND);
    assert_eq!(
        names(&fired),
        vec![r#"fired SluiceHighServerErrorRatio [("route", "api")]"#]
    );
    assert!(
        evaluator.evaluate(&bad, start + 6 * 60 * SECOND).is_empty(),
        "fires once"
    );
    assert_eq!(evaluator.firing().len(), 1);
    let good = with_routes(vec![route("api", 0.01)]);
    let resolved = evaluator.evaluate(&good, start + 7 * 60 * SECOND);
    assert_eq!(
        names(&resolved),
        vec![r#"resolved SluiceHighServerErrorRatio [("route", "api")]"#]
    );
    assert!(evaluator.firing().is_empty());
}

#[test]
fn a_breach_that_ends_while_pending_never_fires_and_restarts_its_clock() {
    let mut evaluator = Evaluator::new(AlertThresholds::default());
    let start = Instant::now();
    let bad = with_routes(vec![route("api", 0.5)]);
    evaluator.evaluate(&bad, start);
    assert!(
        evaluator
            .evaluate(&Figures::default(), start + 60 * SECOND)
            .is_empty()
    );
    evaluator.evaluate(&bad, start + 120 * SECOND);
    assert!(evaluator.evaluate(&bad, start + 300 * SECOND).is_empty());
    assert_eq!(evaluator.evaluate(&bad, start + 420 * SECOND).len(), 1);
}

#[test]
fn absent_inputs_leave_every_rule_inactive() {
    let mut evaluator = Evaluator::new(AlertThresholds::default());
    let start = Instant::now();
    for minute in 0..120 {
        let now = start + minute * 60 * SECOND;
        assert!(evaluator.evaluate(&Figures::default(), now).is_empty());
    }
    assert!(breaches(&Figures::default(), &AlertThresholds::default()).is_empty());
}

fn backend(pool: &str, backend: &str, healthy: bool) -> BackendHealth {
    BackendHealth {
        pool: pool.into(),
        backend: backend.into(),
        healthy,
    }
}

#[test]
fn backends_down_and_pools_below_their_minimum_are_separate_series() {
    let figures = Figures {
        backends: vec![
            backend("web", "a:80", true),
            backend("web", "b:80", false),
            backend("web", "c:80", false),
            backend("solo", "s:80", true),
            backend("lone", "l:80", false),
        ],
        ..Figures::default()
    };
    type Found = (AlertKind, Vec<(&'static str, String)>, f64);
    let found: Vec<Found> = breaches(&figures, &AlertThresholds::default())
        .into_iter()
        .map(|b| (b.kind, b.labels, b.value))
        .collect();
    let pool = |p: &str| vec![("pool", p.to_string())];
    let down = |p: &str, b: &str| vec![("pool", p.to_string()), ("backend", b.to_string())];
    assert_eq!(
        found,
        vec![
            (AlertKind::BackendDown, down("web", "b:80"), 0.0),
            (AlertKind::BackendDown, down("web", "c:80"), 0.0),
            (AlertKind::BackendDown, down("lone", "l:80"), 0.0),
            (AlertKind::PoolDegraded, pool("lone"), 0.0),
            (AlertKind::PoolDegraded, pool("web"), 1.0),
        ]
    );
}

#[test]
fn latency_memory_cpu_and_reload_rules_judge_their_figures() {
    let thresholds = AlertThresholds::default();
    let mut slow = route("api", 0.0);
    slow.latency_p99_seconds = Some(0.9);
    let figures = Figures {
        routes: vec![slow],
        resident_bytes: Some(950),
        memory_budget_bytes: Some(1000),
        host_memory: Some((5, 100)),
        cpu_busy_ratio: Some(0.97),
        reloads: Some((2, 0)),
        cache_hit_ratio: Some((0.1, 0.8)),
        ..Figures::default()
    };
    let kinds: Vec<AlertKind> = breaches(&figures, &thresholds)
        .iter()
        .map(|b| b.kind)
        .collect();
    assert_eq!(
        kinds,
        vec![
            AlertKind::LatencyOverSlo,
            AlertKind::CacheHitRatioCollapse,
            AlertKind::MemoryNearBudget,
            AlertKind::HostMemoryLow,
            AlertKind::CpuSaturated,
            AlertKind::ReloadsFailing,
        ]
    );
    let calm = Figures {
        reloads: Some((2, 1)),
        cache_hit_ratio: Some((0.1, 0.15)),
        memory_budget_bytes: None,
        resident_bytes: Some(950),
        host_memory: Some((50, 100)),
        cpu_busy_ratio: Some(0.5),
        ..Figures::default()
    };
    assert!(breaches(&calm, &thresholds).is_empty());
}

#[test]
fn reload_failures_fire_at_once() {
    let mut evaluator = Evaluator::new(AlertThresholds::default());
    let figures = Figures {
        reloads: Some((1, 0)),
        ..Figures::default()
    };
    let fired = evaluator.evaluate(&figures, Instant::now());
    assert_eq!(names(&fired), vec!["fired SluiceConfigReloadsFailing []"]);
}

fn totals(requests_2xx: u64, requests_5xx: u64) -> RegistryTotals {
    let mut route = RouteTotals::default();
    route.by_status_class.insert("2xx".into(), requests_2xx);
    route.by_status_class.insert("5xx".into(), requests_5xx);
    let mut totals = RegistryTotals::default();
    totals.routes.insert("api".into(), route);
    totals
}

#[test]
fn the_window_turns_counters_into_rates_over_its_span() {
    let thresholds = AlertThresholds::default();
    let mut window = FigureWindow::default();
    let start = Instant::now();
    let first = window.observe(start, &totals(1000, 0), None, &thresholds);
    assert!(first.routes.is_empty(), "one reading has no rate");
    let later = window.observe(start + 100 * SECOND, &totals(1900, 100), None, &thresholds);
    let api = later.routes.first().unwrap();
    assert!((api.request_rate - 10.0).abs() < 1e-9);
    assert_eq!(api.server_error_ratio, Some(0.1));
    // Ten minutes later, the first reading has left the five-minute window.
    let quiet = window.observe(start + 700 * SECOND, &totals(1901, 100), None, &thresholds);
    let api = quiet.routes.first().unwrap();
    assert!(api.request_rate < thresholds.min_request_rate);
    assert_eq!(api.server_error_ratio, None, "too few requests to judge");
}

fn with_cache(hits: u64, misses: u64) -> RegistryTotals {
    let mut totals = RegistryTotals::default();
    totals.cache.insert("hit".into(), hits);
    totals.cache.insert("miss".into(), misses);
    totals.cache.insert("bypass".into(), 1_000_000);
    totals
}

#[test]
fn the_cache_ratio_is_compared_with_its_own_baseline() {
    let thresholds = AlertThresholds::default();
    let mut window = FigureWindow::default();
    let start = Instant::now();
    // Fifty minutes at 90% hits, then five minutes at 10%.
    let (mut hits, mut misses) = (0, 0);
    let mut figures = Figures::default();
    for minute in 0..=55u32 {
        let rate = if minute <= 50 { (90, 10) } else { (10, 90) };
        hits += rate.0 * 60;
        misses += rate.1 * 60;
        let now = start + minute * 60 * SECOND;
        figures = window.observe(now, &with_cache(hits, misses), None, &thresholds);
    }
    let (ratio, baseline) = figures.cache_hit_ratio.unwrap();
    assert!((ratio - 0.1).abs() < 0.01, "{ratio}");
    assert!(baseline > 0.75, "{baseline}");
    let kinds: Vec<AlertKind> = breaches(&figures, &thresholds)
        .iter()
        .map(|b| b.kind)
        .collect();
    assert_eq!(kinds, vec![AlertKind::CacheHitRatioCollapse]);
}

fn snapshot(busy: f64, idle: f64) -> ResourceSnapshot {
    let mut snapshot = ResourceSnapshot::default();
    snapshot.host.cpu = Some(CpuSeconds {
        user: busy,
        idle,
        ..CpuSeconds::default()
    });
    snapshot
}

#[test]
fn the_engine_logs_publishes_and_clears_the_board() {
    let thresholds = AlertThresholds {
        cpu_for: Duration::ZERO,
        ..AlertThresholds::default()
    };
    let mut engine = AlertEngine::new(thresholds);
    let board = engine.board();
    let start = Instant::now();
    let wall = SystemTime::now();
    let empty = RegistryTotals::default();
    engine.tick(&empty, Some(&snapshot(100.0, 100.0)), start, wall);
    let fired = engine.tick(
        &empty,
        Some(&snapshot(199.0, 101.0)),
        start + 10 * SECOND,
        wall,
    );
    assert_eq!(names(&fired), vec!["fired SluiceCpuSaturated []"]);
    let json = board.to_json();
    let alert = &json["alerts"][0];
    assert_eq!(alert["name"], "SluiceCpuSaturated");
    assert_eq!(alert["severity"], "warning");
    assert_eq!(alert["summary"], "host CPU busy 99.0%");
    // Later, mostly idle: the five-minute window now starts at the busy reading.
    let later = start + 400 * SECOND;
    let resolved = engine.tick(&empty, Some(&snapshot(200.0, 500.0)), later, wall);
    assert_eq!(names(&resolved), vec!["resolved SluiceCpuSaturated []"]);
    assert!(board.firing().is_empty());
}

#[tokio::test(start_paused = true)]
async fn run_evaluates_until_shutdown() {
    let engine = AlertEngine::new(AlertThresholds::default());
    let board = engine.board();
    let registry = prometheus::Registry::new();
    let (stop, shutdown) = watch::channel(false);
    let task = tokio::spawn(run(
        engine,
        registry,
        None,
        Duration::from_secs(10),
        shutdown,
    ));
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(board.firing().is_empty());
    stop.send(true).unwrap();
    task.await.unwrap();
}
