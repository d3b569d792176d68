use std::num::NonZeroU32;
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::time::Instant;

use crate::balancer::check::*;
use crate::balancer::health::*;

fn checks(rise: u32, fall: u32) -> HealthCheckConfig {
    HealthCheckConfig {
        rise: NonZeroU32::new(rise).unwrap(),
        fall: NonZeroU32::new(fall).unwrap(),
        ..HealthCheckConfig::default()
    }
}

fn outliers() -> OutlierConfig {
    OutlierConfig {
        consecutive_server_errors: NonZeroU32::new(3).unwrap(),
        consecutive_connect_failures: NonZeroU32::new(2).unwrap(),
        base_ejection: Duration::from_secs(10),
        max_ejection: Duration::from_secs(60),
        reset_after: Duration::from_secs(120),
    }
}

fn allowed() -> EjectionPermission {
    EjectionPermission::Allowed
}

#[test]
fn a_healthy_backend_becomes_unhealthy_after_fall_failures_in_a_row() {
    let config = checks(2, 3);
    let mut health = ActiveHealth::new(HealthStatus::Healthy);
    assert_eq!(health.observe(CheckResult::Failed, &config), None);
    assert_eq!(health.observe(CheckResult::Failed, &config), None);
    assert_eq!(
        health.observe(CheckResult::Failed, &config),
        Some(HealthTransition::BecameUnhealthy)
    );
    assert_eq!(health.status(), HealthStatus::Unhealthy);
    assert_eq!(health.observe(CheckResult::Failed, &config), None);
}

#[test]
fn an_unhealthy_backend_becomes_healthy_after_rise_passes_in_a_row() {
    let config = checks(2, 3);
    let mut health = ActiveHealth::new(HealthStatus::Unhealthy);
    assert_eq!(health.observe(CheckResult::Passed, &config), None);
    assert_eq!(
        health.observe(CheckResult::Passed, &config),
        Some(HealthTransition::BecameHealthy)
    );
    assert_eq!(health.status(), HealthStatus::Healthy);
}

#[test]
fn one_result_of_the_other_kind_restarts_the_run() {
    let config = checks(2, 2);
    let mut health = ActiveHealth::new(HealthStatus::Healthy);
    health.observe(CheckResult::Failed, &config);
    health.observe(CheckResult::Passed, &config);
    assert_eq!(health.observe(CheckResult::Failed, &config), None);
    assert_eq!(
        health.observe(CheckResult::Failed, &config),
        Some(HealthTransition::BecameUnhealthy)
    );
    health.observe(CheckResult::Passed, &config);
    health.observe(CheckResult::Failed, &config);
    assert_eq!(health.observe(CheckResult::Passed, &config), None);
    assert_eq!(health.status(), HealthStatus::Unhealthy);
}

#[test]
fn consecutive_server_errors_eject_a_backend_for_the_base_backoff() {
    let config = outliers();
    let now = Instant::now();
    let mut detector = OutlierDetector::new();
    assert_eq!(
        detector.observe(Outcome::ServerError, now, &config, allowed),
        None
    );
    assert_eq!(
        detector.observe(Outcome::ServerError, now, &config, allowed),
        None
    );
    let until = now + Duration::from_secs(10);
    assert_eq!(
        detector.observe(Outcome::ServerError, now, &config, allowed),
        Some(HealthTransition::Ejected {
            until,
            ejections: 1
        })
    );
    assert_eq!(detector.ejected_until(), Some(until));
}

#[test]
fn connect_failures_eject_sooner_than_server_errors() {
    let config = outliers();
    let now = Instant::now();
    let mut detector = OutlierDetector::new();
    detector.observe(Outcome::ConnectFailure, now, &config, allowed);
    assert!(matches!(
        detector.observe(Outcome::Timeout, now, &config, allowed),
        Some(HealthTransition::Ejected { ejections: 1, .. })
    ));
}

#[test]
fn a_success_or_a_server_error_breaks_a_run_of_connect_failures() {
    let config = outliers();
    let now = Instant::now();
    let mut detector = OutlierDetector::new();
    detector.observe(Outcome::ConnectFailure, now, &config, allowed);
    detector.observe(Outcome::Success, now, &config, allowed);
    assert_eq!(
        detector.observe(Outcome::ConnectFailure, now, &config, allowed),
        None
    );
    // A 5xx resets the connect run but continues the error run (now two errors).
    assert_eq!(
        detector.observe(Outcome::ServerError, now, &config, allowed),
        None
    );
    assert_eq!(
        detector
            .observe(Outcome::ConnectFailure, now, &config, allowed)
            .map(|t| t.as_str()),
        Some("ejected")
    );
}

#[test]
fn a_cancelled_request_says_nothing_about_the_backend() {
    let config = outliers();
    let now = Instant::now();
    let mut detector = OutlierDetector::new();
    detector.observe(Outcome::ServerError, now, &config, allowed);
    detector.observe(Outcome::ServerError, now, &config, allowed);
    assert_eq!(
        detector.observe(Outcome::Cancelled, now, &config, allowed),
        None
    );
    assert!(
        detector
            .observe(Outcome::ServerError, now, &config, allowed)
            .is_some()
    );
}

#[test]
fn the_backoff_doubles_with_each_ejection_in_a_row_up_to_the_cap() {
    let config = outliers();
    let lengths: Vec<u64> = (1..=5)
        .map(|n| ejection_backoff(n, &config).as_secs())
        .collect();
    assert_eq!(lengths, vec![10, 20, 40, 60, 60]);
    assert_eq!(ejection_backoff(u32::MAX, &config), Duration::from_secs(60));
}

#[test]
fn repeated_ejections_grow_the_backoff_and_a_quiet_period_resets_it() {
    let config = outliers();
    let mut now = Instant::now();
    let mut detector = OutlierDetector::new();
    let eject = |detector: &mut OutlierDetector, now: Instant| {
        detector.observe(Outcome::ConnectFailure, now, &config, allowed);
        match detector.observe(Outcome::ConnectFailure, now, &config, allowed) {
            Some(HealthTransition::Ejected { until, ejections }) => (until - now, ejections),
            other => panic!("expected an ejection, got {other:?}"),
        }
    };
    assert_eq!(eject(&mut detector, now), (Duration::from_secs(10), 1));
    now += Duration::from_secs(10);
    assert_eq!(eject(&mut detector, now), (Duration::from_secs(20), 2));
    now += Duration::from_secs(20);
    assert_eq!(eject(&mut detector, now), (Duration::from_secs(40), 3));
    // Back for longer than reset_after: the next ejection is short again.
    now += Duration::from_secs(40 + 120);
    assert_eq!(eject(&mut detector, now), (Duration::from_secs(10), 1));
}

#[test]
fn an_ejection_ends_when_its_backoff_has_passed() {
    let config = outliers();
    let now = Instant::now();
    let mut detector = OutlierDetector::new();
    detector.observe(Outcome::ConnectFailure, now, &config, allowed);
    detector.observe(Outcome::ConnectFailure, now, &config, allowed);
    assert_eq!(detector.poll(now + Duration::from_secs(9)), None);
    assert_eq!(
        detector.poll(now + Duration::from_secs(10)),
        Some(HealthTransition::Returned)
    );
    assert_eq!(detector.ejected_until(), None);
    assert_eq!(detector.poll(now + Duration::from_secs(11)), None);
}

#[test]
fn failures_while_ejected_do_not_extend_the_ejection() {
    let config = outliers();
    let now = Instant::now();
    let mut detector = OutlierDetector::new();
    detector.observe(Outcome::ConnectFailure, now, &config, allowed);
    detector.observe(Outcome::ConnectFailure, now, &config, allowed);
    let later = now + Duration::from_secs(5);
    for _ in 0..10 {
        assert_eq!(
            detector.observe(Outcome::ConnectFailure, later, &config, allowed),
            None
        );
    }
    assert_eq!(
        detector.ejected_until(),
        Some(now + Duration::from_secs(10))
    );
}

#[test]
fn a_refused_ejection_is_reported_and_tried_again_on_the_next_failure() {
    let config = outliers();
    let now = Instant::now();
    let mut detector = OutlierDetector::new();
    let refused = || EjectionPermission::Refused;
    detector.observe(Outcome::ConnectFailure, now, &config, refused);
    assert_eq!(
        detector.observe(Outcome::ConnectFailure, now, &config, refused),
        Some(HealthTransition::EjectionRefused)
    );
    assert_eq!(detector.ejected_until(), None);
    assert!(matches!(
        detector.observe(Outcome::ConnectFailure, now, &config, allowed),
        Some(HealthTransition::Ejected { .. })
    ));
}

#[test]
fn permission_is_only_asked_when_a_threshold_is_reached() {
    let config = outliers();
    let now = Instant::now();
    let mut detector = OutlierDetector::new();
    let mut asked = 0;
    detector.observe(Outcome::ConnectFailure, now, &config, || {
        asked += 1;
        EjectionPermission::Allowed
    });
    assert_eq!(asked, 0);
}

#[test]
fn at_most_the_configured_share_of_a_pool_may_be_excluded() {
    assert_eq!(max_excluded(10, 0.5), 5);
    assert_eq!(max_excluded(3, 0.5), 1);
    assert_eq!(max_excluded(10, 0.1), 1);
    // Small pools may still exclude one backend, unless the share is zero.
    assert_eq!(max_excluded(2, 0.1), 1);
    assert_eq!(max_excluded(2, 0.0), 0);
    // One backend alone is never excluded by the minimum rule.
    assert_eq!(max_excluded(1, 0.5), 0);
    assert_eq!(max_excluded(4, 1.0), 4);
    assert_eq!(max_excluded(4, f64::NAN), 0);
    assert_eq!(max_excluded(4, 7.0), 4);
    assert_eq!(ejection_permission(4, 10, 0.5), EjectionPermission::Allowed);
    assert_eq!(ejection_permission(5, 10, 0.5), EjectionPermission::Refused);
}

#[test]
fn checks_are_due_one_interval_later_give_or_take_the_jitter() {
    let config = HealthCheckConfig {
        interval: Duration::from_secs(10),
        jitter: Duration::from_secs(1),
        ..HealthCheckConfig::default()
    };
    let mut rng = SmallRng::seed_from_u64(1);
    let last = Instant::now();
    let delays: Vec<Duration> = (0..1000)
        .map(|_| next_check_at(last, &config, &mut rng) - last)
        .collect();
    assert!(
        delays
            .iter()
            .all(|d| (Duration::from_secs(9)..=Duration::from_secs(11)).contains(d))
    );
    let mean = delays.iter().sum::<Duration>() / 1000;
    assert!((mean.as_secs_f64() - 10.0).abs() < 0.1, "{mean:?}");
    assert!(delays.iter().any(|d| *d < Duration::from_millis(9500)));
    assert!(delays.iter().any(|d| *d > Duration::from_millis(10500)));
}

#[test]
fn jitter_larger_than_the_interval_never_schedules_into_the_past() {
    let config = HealthCheckConfig {
        interval: Duration::from_secs(1),
        jitter: Duration::from_secs(5),
        ..HealthCheckConfig::default()
    };
    let mut rng = SmallRng::seed_from_u64(2);
    let last = Instant::now();
    assert!((0..1000).all(|_| next_check_at(last, &config, &mut rng) >= last));
}

#[test]
fn first_checks_spread_over_one_interval() {
    let config = HealthCheckConfig::default();
    let mut rng = SmallRng::seed_from_u64(3);
    let now = Instant::now();
    let firsts: Vec<Instant> = (0..1000)
        .map(|_| first_check_at(now, &config, &mut rng))
        .collect();
    assert!(
        firsts
            .iter()
            .all(|t| *t >= now && *t < now + config.interval)
    );
    assert!(firsts.iter().any(|t| *t - now < config.interval / 4));
    assert!(firsts.iter().any(|t| *t - now > config.interval * 3 / 4));
}

#[test]
fn expected_status_is_an_inclusive_range() {
    let expected = ExpectedStatus::default();
    assert!(expected.matches(200) && expected.matches(399));
    assert!(!expected.matches(404) && !expected.matches(199));
}

#[test]
fn labels_are_stable() {
    assert_eq!(HealthStatus::Unhealthy.as_str(), "unhealthy");
    assert_eq!(Outcome::ConnectFailure.as_str(), "connect_failure");
    assert_eq!(
        HealthTransition::EjectionRefused.as_str(),
        "ejection_refused"
    );
}
