//! The live dashboard: one self-contained HTML page (`dashboard.html`, no external assets)
//! and the JSON document it polls at `GET /admin/stats`.
//!
//! The document is built from a registry gather, the latest resource snapshot and the firing
//! alerts, so it needs no plumbing of its own. It carries cumulative figures and the server's
//! clock; the page computes rates and latency percentiles from successive polls. This module
//! does not route requests (the admin listener does) and does not sample anything.
//!
//! Document, `version` 1:
//! ```text
//! { "version": 1, "time": <unix seconds>,
//!   "requests": { "total": n, "by_status_class": { "2xx": n, ... } },
//!   "routes": [ { "route": s, "requests": n, "by_status_class": {..}, "latency": H } ],
//!   "latency": H,                       // all routes; H = { bounds, cumulative, count, sum }
//!   "upstream_errors": { kind: n }, "response_bytes": n,
//!   "connections": { "active": { listener: n }, "accepted": { listener: n } },
//!   "config": { "generation": n|null, "reloads": { outcome: n } },
//!   "cache": null | { "by_status": { status: n }, "hits": n, "lookups": n },
//!   "backends": [ { "pool": s, "backend": s, "healthy": bool } ],
//!   "resources": null | ResourceSnapshot,
//!   "alerts": [ FiringAlert ] }
//! ```

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::metrics::alerts::FiringAlert;
use crate::metrics::resources::ResourceSnapshot;
use crate::metrics::totals::RegistryTotals;

/// The dashboard page, served at `GET /` on the admin listener as `text/html`.
pub const DASHBOARD_HTML: &str = include_str!("dashboard.html");

/// The version of the document [`stats_json`] builds; bumped on an incompatible change.
pub const STATS_VERSION: u64 = 1;

/// The body of `GET /admin/stats`: everything the dashboard shows, as cumulative figures at
/// `now`. `resources` is the sampler's latest snapshot (`None` before the first sample or
/// without a sampler); `alerts` are the firing alerts from the alert board.
pub fn stats_json(
    registry: &prometheus::Registry,
    resources: Option<&ResourceSnapshot>,
    alerts: &[FiringAlert],
    now: SystemTime,
) -> Value {
    let totals = RegistryTotals::gather(registry);
    let mut by_status_class: BTreeMap<&str, u64> = BTreeMap::new();
    for route in totals.routes.values() {
        for (class, count) in &route.by_status_class {
            *by_status_class.entry(class.as_str()).or_default() += count;
        }
    }
    let routes: Vec<Value> = totals
        .routes
        .iter()
        .map(|(name, route)| {
            json!({
                "route": name,
                "requests": route.requests(),
                "by_status_class": route.by_status_class,
                "latency": route.latency,
            })
        })
        .collect();
    let cache = (!totals.cache.is_empty()).then(|| {
        json!({
            "by_status": totals.cache,
            "hits": totals.cache_hits(),
            "lookups": totals.cache_lookups(),
        })
    });
    json!({
        "version": STATS_VERSION,
        "time": now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64(),
        "requests": { "total": totals.requests(), "by_status_class": by_status_class },
        "routes": routes,
        "latency": totals.latency(),
        "upstream_errors": totals.upstream_errors,
        "response_bytes": totals.response_bytes,
        "connections": {
            "active": totals.connections_active,
            "accepted": totals.connections_accepted,
        },
        "config": { "generation": totals.config_generation, "reloads": totals.config_reloads },
        "cache": cache,
        "backends": totals.backends,
        "resources": resources,
        "alerts": alerts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::alerts::{AlertEngine, AlertThresholds};
    use crate::metrics::resources::ResourceSampler;
    use crate::metrics::{Metrics, ReloadOutcome};

    #[test]
    fn the_page_is_self_contained_and_polls_the_stats_endpoint() {
        assert!(DASHBOARD_HTML.starts_with("<!doctype html>"));
        assert!(DASHBOARD_HTML.contains("fetch(STATS_URL"));
        assert!(DASHBOARD_HTML.contains("const STATS_URL = \"/admin/stats\""));
        for external in ["src=\"http", "href=\"http", "@import", "<link"] {
            assert!(
                !DASHBOARD_HTML.contains(external),
                "external asset: {external}"
            );
        }
        for state in ["loading", "live", "error"] {
            assert!(DASHBOARD_HTML.contains(&format!("\"{state}\"")), "{state}");
        }
    }

    #[test]
    fn an_idle_proxy_gives_a_document_with_empty_parts() {
        let metrics = Metrics::new().unwrap();
        let doc = stats_json(metrics.registry(), None, &[], UNIX_EPOCH);
        assert_eq!(doc["version"], 1);
        assert_eq!(doc["time"], 0.0);
        assert_eq!(doc["requests"]["total"], 0);
        assert_eq!(doc["routes"], json!([]));
        assert_eq!(doc["cache"], Value::Null);
        assert_eq!(doc["resources"], Value::Null);
        assert_eq!(doc["backends"], json!([]));
        assert_eq!(doc["alerts"], json!([]));
    }

    #[test]
    fn traffic_resources_and_alerts_appear_in_the_document() {
        let metrics = Metrics::new().unwrap();
        let route = metrics.route("api");
        route.observe(200, 0.003, 1000);
        route.observe(502, 0.2, 10);
        metrics.route("static").observe(200, 0.001, 50);
        metrics.reloaded(ReloadOutcome::Success, 4);
        metrics
            .listener("main")
            .active(crate::metrics::ConnectionProtocol::Http1)
            .set(2);
        let mut sampler = ResourceSampler::new(metrics.registry()).unwrap();
        let snapshot = sampler.sample().unwrap();
        let mut engine = AlertEngine::new(AlertThresholds {
            memory_budget_ratio: 0.0,
            memory_for: std::time::Duration::ZERO,
            ..AlertThresholds::default()
        });
        let mut budgeted = (*snapshot).clone();
        budgeted.memory_budget_bytes = Some(1);
        let now = tokio::time::Instant::now();
        let totals = RegistryTotals::gather(metrics.registry());
        engine.tick(&totals, Some(&budgeted), now, SystemTime::now());
        let alerts = engine.board().firing();

        let doc = stats_json(
            metrics.registry(),
            Some(&snapshot),
            &alerts,
            SystemTime::now(),
        );
        assert_eq!(doc["requests"]["total"], 3);
        assert_eq!(doc["requests"]["by_status_class"]["5xx"], 1);
        assert_eq!(doc["routes"][0]["route"], "api");
        assert_eq!(doc["routes"][0]["requests"], 2);
        assert_eq!(doc["latency"]["count"], 3);
        assert_eq!(doc["latency"]["bounds"].as_array().unwrap().len(), 15);
        assert_eq!(doc["response_bytes"], 1060);
        assert_eq!(doc["connections"]["active"]["main"], 2);
        assert_eq!(doc["config"]["generation"], 4);
        let resident = doc["resources"]["process"]["resident_bytes"]
            .as_u64()
            .unwrap();
        assert!(resident > 0);
        assert!(doc["resources"]["host"]["cpu"]["idle"].as_f64().unwrap() > 0.0);
        assert_eq!(doc["alerts"][0]["name"], "SluiceMemoryNearBudget");
        assert_eq!(doc["alerts"][0]["severity"], "critical");
    }
}
