//! The running side of the alerts: the [`AlertBoard`] the admin API reads, the
//! [`AlertEngine`] that feeds the evaluator from the registry and the resource snapshot and
//! logs each transition, and the task that ticks it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use serde::Serialize;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::Instrument;

use super::{Alert, AlertThresholds, Evaluator, FigureWindow, Transition};
use crate::metrics::resources::{ResourceHandle, ResourceSnapshot};
use crate::metrics::totals::RegistryTotals;

/// A firing alert as `/admin/alerts` and the dashboard show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FiringAlert {
    pub name: &'static str,
    pub severity: &'static str,
    pub labels: BTreeMap<&'static str, String>,
    pub value: f64,
    pub threshold: f64,
    pub summary: String,
    /// When the breach began, seconds since the epoch.
    pub since_seconds: f64,
}

/// The firing alerts, shared between the evaluating task and the admin API.
#[derive(Clone, Default)]
pub struct AlertBoard {
    firing: Arc<ArcSwap<Vec<FiringAlert>>>,
}

impl AlertBoard {
    /// The alerts firing at the last evaluation.
    pub fn firing(&self) -> Arc<Vec<FiringAlert>> {
        self.firing.load_full()
    }

    /// The body of `GET /admin/alerts`: `{"alerts": [...]}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({ "alerts": &*self.firing() })
    }

    fn publish(&self, alerts: &[Alert], now: Instant, wall: SystemTime) {
        let wall = wall
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let firing = alerts
            .iter()
            .map(|alert| FiringAlert {
                name: alert.kind.as_str(),
                severity: alert.kind.severity().as_str(),
                labels: alert.labels.iter().cloned().collect(),
                value: alert.value,
                threshold: alert.threshold,
                summary: alert.summary(),
                since_seconds: wall - now.saturating_duration_since(alert.since).as_secs_f64(),
            })
            .collect();
        self.firing.store(Arc::new(firing));
    }
}

/// The evaluator, its window and its board: one per process.
pub struct AlertEngine {
    evaluator: Evaluator,
    window: FigureWindow,
    board: AlertBoard,
}

impl AlertEngine {
    /// An engine with `thresholds` and an empty board.
    pub fn new(thresholds: AlertThresholds) -> AlertEngine {
        AlertEngine {
            evaluator: Evaluator::new(thresholds),
            window: FigureWindow::default(),
            board: AlertBoard::default(),
        }
    }

    /// The board to hand to the admin API.
    pub fn board(&self) -> AlertBoard {
        self.board.clone()
    }

    /// One evaluation over `totals` and `resources` at `now`; logs and publishes transitions.
    pub fn tick(
        &mut self,
        totals: &RegistryTotals,
        resources: Option<&ResourceSnapshot>,
        now: Instant,
        wall: SystemTime,
    ) -> Vec<Transition> {
        let thresholds = self.evaluator.thresholds().clone();
        let figures = self.window.observe(now, totals, resources, &thresholds);
        let transitions = self.evaluator.evaluate(&figures, now);
        for transition in &transitions {
            match transition {
                Transition::Fired(alert) => tracing::warn!(
                    alert = alert.kind.as_str(),
                    severity = alert.kind.severity().as_str(),
                    value = alert.value,
                    threshold = alert.threshold,
                    summary = %alert.summary(),
                    "alert firing"
                ),
                Transition::Resolved(alert) => tracing::info!(
                    alert = alert.kind.as_str(),
                    summary = %alert.summary(),
                    "alert resolved"
                ),
            }
        }
        self.board.publish(&self.evaluator.firing(), now, wall);
        transitions
    }
}

/// Evaluates every `interval` until `shutdown` turns true; the app spawns this once.
pub async fn run(
    mut engine: AlertEngine,
    registry: prometheus::Registry,
    resources: Option<ResourceHandle>,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let span = tracing::info_span!("alerts", ?interval);
    async move {
        let mut ticker = tokio::time::interval(interval.max(Duration::from_millis(10)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if *shutdown.borrow() {
                break;
            }
            tokio::select! {
                _ = ticker.tick() => {
                    let totals = RegistryTotals::gather(&registry);
                    let snapshot = resources.as_ref().and_then(ResourceHandle::latest);
                    engine.tick(&totals, snapshot.as_deref(), Instant::now(), SystemTime::now());
                }
                changed = shutdown.changed() => if changed.is_err() { break },
            }
        }
    }
    .instrument(span)
    .await;
}
