//! The active health checker runs on tokio's clock: with time paused, minutes of check
//! intervals pass at once and the verdict lands exactly when the schedule says.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

mod common;

use std::time::Duration;

use common::*;
use sluice::balancer::HealthStatus;
use tokio::time::Instant;

#[tokio::test(start_paused = true)]
async fn with_paused_time_a_refusing_backend_turns_unhealthy_after_fall_checks() {
    let dead = closed_port().await;
    let app = start_proxy(&config_text(
        &[dead],
        "[pools.main.health]\ninterval = \"60s\"\njitter = \"0s\"\ntimeout = \"1s\"\nfall = 3\n",
    ))
    .await;
    let started = Instant::now();
    let health = || {
        app.shared().snapshot.load().pools[0].backends.backends()[0]
            .state
            .health()
    };
    while health() == HealthStatus::Healthy {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "never turned unhealthy"
        );
        // Virtual time: this returns as soon as nothing else can run.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // The first check falls within the first interval, then one per interval after the last
    // one ended: the third failure comes between two and three intervals in, plus up to a
    // timeout per check (the clock may jump to a check's timeout before the refusal arrives)
    // and the 1 s poll above.
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_secs(120) && elapsed <= Duration::from_secs(180 + 3 + 1),
        "unhealthy after {elapsed:?}"
    );
    app.shutdown().await;
}
