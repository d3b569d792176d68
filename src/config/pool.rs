//! The balancing keys of a pool: algorithm, hashing, health checks, outlier detection, slow
//! start, retries and limits, from `RawPool` to the balancer's plain settings.
//!
//! Owns the rules of these keys only (ranges, names, which keys go together); each problem is
//! reported with its key so the caller's `Problems` can name its line. The settings are the
//! balancer's own data types ([`PoolOptions`], [`HealthCheckConfig`]): they are plain values,
//! and a second copy of them here would only drift.

use std::num::{NonZeroU32, NonZeroU64};
use std::time::Duration;

use super::raw::{RawHealth, RawOutlier, RawPool, RawStatus};
use super::units::parse_duration;
use super::validate::Problems;
use crate::balancer::{
    Algorithm, ExpectedStatus, HashOn, HashOptions, HealthCheckConfig, Limits, OutlierConfig,
    PoolOptions, RetryBudgetConfig, SlowStart,
};

/// How a pool balances, checks and retries, as validated.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PoolBalance {
    /// Everything the balancer's pool is built with.
    pub options: PoolOptions,
    /// Active health checks; `None`: backends are only checked passively.
    pub health: Option<HealthCheckConfig>,
    /// Response statuses that send a replayable request to another backend.
    pub retry_on: Vec<u16>,
}

/// The config names of the algorithms, for messages.
const ALGORITHMS: &str =
    "round_robin, weighted_round_robin, least_requests, p2c_ewma, consistent_hash, random";

pub(super) fn balance(problems: &mut Problems<'_>, prefix: &str, raw: &RawPool) -> PoolBalance {
    let defaults = PoolOptions::default();
    let hash_on = raw
        .hash_on
        .as_deref()
        .and_then(|text| hash_on(problems, &format!("{prefix}.hash_on"), text));
    let load_factor = match raw.hash_load_factor {
        None => HashOptions::default().load_factor,
        Some(c) if c.is_finite() && c >= 1.0 => Some(c),
        Some(c) => {
            problems.add(
                format!("{prefix}.hash_load_factor"),
                format!("{c} must be a number of at least 1"),
            );
            None
        }
    };
    let algorithm = match raw.algorithm.as_deref() {
        None | Some("p2c_ewma") => Algorithm::PeakEwma,
        Some("round_robin") => Algorithm::RoundRobin,
        Some("weighted_round_robin") => Algorithm::WeightedRoundRobin,
        Some("least_requests") => Algorithm::LeastRequest,
        Some("random") => Algorithm::Random,
        Some("consistent_hash") => Algorithm::ConsistentHash(HashOptions {
            on: hash_on.clone().unwrap_or(HashOn::ClientIp),
            load_factor,
        }),
        Some(other) => {
            problems.add(
                format!("{prefix}.algorithm"),
                format!("{other:?} is not a known algorithm ({ALGORITHMS})"),
            );
            Algorithm::PeakEwma
        }
    };
    let hashing = matches!(algorithm, Algorithm::ConsistentHash(_));
    for (key, given) in [
        ("hash_on", raw.hash_on.is_some()),
        ("hash_load_factor", raw.hash_load_factor.is_some()),
    ] {
        if given && !hashing {
            problems.add(
                format!("{prefix}.{key}"),
                "is only used with algorithm = \"consistent_hash\"",
            );
        }
    }
    let (outlier, max_ejected_share) = match &raw.outlier {
        None => (defaults.outlier.clone(), defaults.max_ejected_share),
        Some(raw) => outlier(problems, &format!("{prefix}.outlier"), raw),
    };
    let slow_start = raw.slow_start.as_ref().map(|text| SlowStart {
        window: positive_duration(
            problems,
            &format!("{prefix}.slow_start"),
            text,
            SlowStart::default().window,
        ),
        ..SlowStart::default()
    });
    let mut retry_budget = RetryBudgetConfig::default();
    if let Some(budget) = &raw.retry_budget {
        let key = format!("{prefix}.retry_budget");
        match budget.ratio {
            None => {}
            Some(r) if r.is_finite() && (0.0..=1.0).contains(&r) => retry_budget.ratio = r,
            Some(r) => problems.add(
                format!("{key}.ratio"),
                format!("{r} must be between 0 and 1"),
            ),
        }
        match budget.min_per_second.map(u32::try_from) {
            None => {}
            Some(Ok(n)) => retry_budget.min_per_second = n,
            Some(Err(_)) => problems.add(
                format!("{key}.min_per_second"),
                "must be a whole number of at least 0",
            ),
        }
    }
    let mut retry_on = Vec::new();
    for (i, status) in raw.retry_on.iter().flatten().enumerate() {
        match u16::try_from(*status) {
            Ok(s) if (400..=599).contains(&s) => retry_on.push(s),
            _ => problems.add(
                format!("{prefix}.retry_on[{i}]"),
                format!("{status} is not an error status (400 to 599)"),
            ),
        }
    }
    let limits = Limits {
        max_in_flight_per_backend: limit(
            problems,
            &format!("{prefix}.max_connections_per_backend"),
            raw.max_connections_per_backend,
        ),
        max_in_flight_per_pool: limit(
            problems,
            &format!("{prefix}.max_pending_requests"),
            raw.max_pending_requests,
        ),
    };
    let health = raw
        .health
        .as_ref()
        .map(|raw| health(problems, &format!("{prefix}.health"), raw));
    PoolBalance {
        options: PoolOptions {
            algorithm,
            outlier,
            max_ejected_share,
            slow_start,
            limits,
            retry_budget,
            ..defaults
        },
        health,
        retry_on,
    }
}

fn hash_on(problems: &mut Problems<'_>, key: &str, text: &str) -> Option<HashOn> {
    let named = |name: &str| {
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.!#$%&'*+^`|~".contains(&b));
        valid.then(|| name.to_string())
    };
    let parsed = match text.split_once(':') {
        None if text == "path" => Some(HashOn::Path),
        None if text == "client_ip" => Some(HashOn::ClientIp),
        Some(("header", name)) => named(name).map(|n| HashOn::Header(n.to_ascii_lowercase())),
        Some(("cookie", name)) => named(name).map(HashOn::Cookie),
        _ => None,
    };
    if parsed.is_none() {
        problems.add(
            key,
            format!("{text:?} is not \"path\", \"client_ip\", \"header:NAME\" or \"cookie:NAME\""),
        );
    }
    parsed
}

fn outlier(
    problems: &mut Problems<'_>,
    key: &str,
    raw: &RawOutlier,
) -> (Option<OutlierConfig>, f64) {
    let defaults = OutlierConfig::default();
    let share = match raw.max_ejected_share {
        None => PoolOptions::default().max_ejected_share,
        Some(s) if s.is_finite() && (0.0..=1.0).contains(&s) => s,
        Some(s) => {
            problems.add(
                format!("{key}.max_ejected_share"),
                format!("{s} must be between 0 and 1"),
            );
            PoolOptions::default().max_ejected_share
        }
    };
    let base_ejection = raw
        .base_ejection
        .as_ref()
        .map_or(defaults.base_ejection, |t| {
            positive_duration(
                problems,
                &format!("{key}.base_ejection"),
                t,
                defaults.base_ejection,
            )
        });
    let max_ejection = raw
        .max_ejection
        .as_ref()
        .map_or(defaults.max_ejection, |t| {
            positive_duration(
                problems,
                &format!("{key}.max_ejection"),
                t,
                defaults.max_ejection,
            )
        });
    if max_ejection < base_ejection {
        problems.add(
            format!("{key}.max_ejection"),
            "must not be shorter than base_ejection",
        );
    }
    let config = OutlierConfig {
        consecutive_server_errors: threshold(
            problems,
            &format!("{key}.consecutive_5xx"),
            raw.consecutive_5xx,
            defaults.consecutive_server_errors,
        ),
        consecutive_connect_failures: threshold(
            problems,
            &format!("{key}.consecutive_connect_failures"),
            raw.consecutive_connect_failures,
            defaults.consecutive_connect_failures,
        ),
        base_ejection,
        max_ejection,
        ..defaults
    };
    ((raw.enabled != Some(false)).then_some(config), share)
}

fn health(problems: &mut Problems<'_>, key: &str, raw: &RawHealth) -> HealthCheckConfig {
    let defaults = HealthCheckConfig::default();
    let path = raw.path.clone().unwrap_or_else(|| defaults.path.clone());
    if !path.starts_with('/') || path.parse::<http::uri::PathAndQuery>().is_err() {
        problems.add(
            format!("{key}.path"),
            format!("{path:?} is not a path starting with \"/\""),
        );
    }
    let interval = raw.interval.as_ref().map_or(defaults.interval, |t| {
        positive_duration(problems, &format!("{key}.interval"), t, defaults.interval)
    });
    let timeout = raw.timeout.as_ref().map_or(defaults.timeout, |t| {
        positive_duration(problems, &format!("{key}.timeout"), t, defaults.timeout)
    });
    let jitter = match &raw.jitter {
        None => defaults.jitter.min(interval / 2),
        Some(text) => match parse_duration(text) {
            Ok(j) if j <= interval => j,
            Ok(_) => {
                problems.add(format!("{key}.jitter"), "must not be longer than interval");
                Duration::ZERO
            }
            Err(message) => {
                problems.add(format!("{key}.jitter"), message);
                Duration::ZERO
            }
        },
    };
    let expected = match &raw.expected_status {
        None => Some(defaults.expected),
        Some(RawStatus::Code(code)) => u16::try_from(*code)
            .ok()
            .filter(|c| (100..=599).contains(c))
            .map(|c| ExpectedStatus { min: c, max: c }),
        Some(RawStatus::Range(text)) => text.split_once('-').and_then(|(low, high)| {
            let min = low.trim().parse::<u16>().ok()?;
            let max = high.trim().parse::<u16>().ok()?;
            (100 <= min && min <= max && max <= 599).then_some(ExpectedStatus { min, max })
        }),
    };
    let expected = expected.unwrap_or_else(|| {
        problems.add(
            format!("{key}.expected_status"),
            "is not a status such as 200 or a range such as \"200-399\"",
        );
        defaults.expected
    });
    HealthCheckConfig {
        interval,
        jitter,
        timeout,
        path,
        expected,
        rise: threshold(problems, &format!("{key}.rise"), raw.rise, defaults.rise),
        fall: threshold(problems, &format!("{key}.fall"), raw.fall, defaults.fall),
    }
}

fn positive_duration(
    problems: &mut Problems<'_>,
    key: &str,
    text: &str,
    default: Duration,
) -> Duration {
    match parse_duration(text) {
        Ok(d) if !d.is_zero() => d,
        Ok(_) => {
            problems.add(key, "must be greater than zero");
            default
        }
        Err(message) => {
            problems.add(key, message);
            default
        }
    }
}

fn threshold(
    problems: &mut Problems<'_>,
    key: &str,
    raw: Option<i64>,
    default: NonZeroU32,
) -> NonZeroU32 {
    match raw {
        None => default,
        Some(n) => match u32::try_from(n).ok().and_then(NonZeroU32::new) {
            Some(n) => n,
            None => {
                problems.add(key, format!("{n} must be a positive whole number"));
                default
            }
        },
    }
}

pub(super) fn limit(
    problems: &mut Problems<'_>,
    key: &str,
    raw: Option<i64>,
) -> Option<NonZeroU64> {
    let n = raw?;
    let parsed = u64::try_from(n).ok().and_then(NonZeroU64::new);
    if parsed.is_none() {
        problems.add(key, format!("{n} must be a positive whole number"));
    }
    parsed
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;

    const BASE: &str = "[[listeners]]\naddr = \"127.0.0.1:8080\"\n\n[[routes]]\npool = \"api\"\nretryable = true\n\n[pools.api]\nbackends = [{ addr = \"127.0.0.1:9000\" }]\n";

    fn parse(extra: &str) -> Result<Config, Vec<String>> {
        Config::parse(&format!("{BASE}{extra}"), "test.toml", Path::new("."))
            .map_err(|e| e.problems())
    }

    #[test]
    fn a_pool_without_balancing_keys_gets_p2c_ewma_and_passive_checks_only() {
        let config = parse("").unwrap();
        let balance = &config.pools[0].balance;
        assert_eq!(balance.options.algorithm, Algorithm::PeakEwma);
        assert!(balance.options.outlier.is_some());
        assert!(balance.health.is_none());
        assert!(balance.retry_on.is_empty());
        assert!(config.routes[0].retryable);
    }

    #[test]
    fn every_balancing_key_is_parsed() {
        let config = parse(
            "algorithm = \"consistent_hash\"\nhash_on = \"header:X-User\"\nhash_load_factor = 1.5\nslow_start = \"10s\"\nretry_on = [503]\nmax_connections_per_backend = 7\nmax_pending_requests = 70\n[pools.api.retry_budget]\nratio = 0.1\nmin_per_second = 2\n[pools.api.health]\npath = \"/up\"\ninterval = \"1s\"\njitter = \"0s\"\ntimeout = \"300ms\"\nexpected_status = 204\nrise = 1\nfall = 4\n[pools.api.outlier]\nconsecutive_5xx = 2\nconsecutive_connect_failures = 1\nbase_ejection = \"1s\"\nmax_ejection = \"4s\"\nmax_ejected_share = 0.25\n",
        )
        .unwrap();
        let balance = &config.pools[0].balance;
        let options = &balance.options;
        assert_eq!(
            options.algorithm,
            Algorithm::ConsistentHash(HashOptions {
                on: HashOn::Header("x-user".into()),
                load_factor: Some(1.5)
            })
        );
        assert_eq!(
            options.slow_start.map(|s| s.window),
            Some(Duration::from_secs(10))
        );
        assert_eq!(balance.retry_on, vec![503]);
        assert_eq!(
            options.limits.max_in_flight_per_backend.map(|n| n.get()),
            Some(7)
        );
        assert_eq!(
            options.limits.max_in_flight_per_pool.map(|n| n.get()),
            Some(70)
        );
        assert_eq!(options.retry_budget.ratio, 0.1);
        assert_eq!(options.retry_budget.min_per_second, 2);
        let health = balance.health.as_ref().unwrap();
        assert_eq!(health.path, "/up");
        assert_eq!(health.interval, Duration::from_secs(1));
        assert_eq!(health.jitter, Duration::ZERO);
        assert_eq!(health.expected, ExpectedStatus { min: 204, max: 204 });
        assert_eq!((health.rise.get(), health.fall.get()), (1, 4));
        let outlier = options.outlier.as_ref().unwrap();
        assert_eq!(outlier.consecutive_server_errors.get(), 2);
        assert_eq!(outlier.consecutive_connect_failures.get(), 1);
        assert_eq!(outlier.max_ejection, Duration::from_secs(4));
        assert_eq!(options.max_ejected_share, 0.25);
    }

    #[test]
    fn a_backend_takes_its_own_connection_limit() {
        let source = BASE.replace(
            "{ addr = \"127.0.0.1:9000\" }",
            "{ addr = \"127.0.0.1:9000\", max_connections = 3 }, { addr = \"127.0.0.1:9001\", max_connections = 0 }",
        );
        let error = Config::parse(&source, "test.toml", Path::new("."))
            .unwrap_err()
            .problems();
        assert_eq!(
            error,
            vec![
                "test.toml:9: pools.api.backends[1].max_connections: 0 must be a positive whole number"
            ]
        );
        let config = Config::parse(
            &BASE.replace("\" }", "\", max_connections = 3 }"),
            "test.toml",
            Path::new("."),
        )
        .unwrap();
        assert_eq!(
            config.pools[0].backends[0].max_connections.map(|n| n.get()),
            Some(3)
        );
    }

    #[test]
    fn bad_balancing_keys_are_each_named_with_file_line_and_key() {
        let problems = parse(
            "algorithm = \"fastest\"\nhash_on = \"body\"\nretry_on = [200]\n[pools.api.retry_budget]\nratio = 2.0\n[pools.api.health]\nexpected_status = \"300-200\"\nrise = 0\n[pools.api.outlier]\nmax_ejected_share = 1.5\n",
        )
        .unwrap_err();
        let expected = [
            "test.toml:10: pools.api.algorithm: \"fastest\" is not a known algorithm",
            "test.toml:11: pools.api.hash_on: \"body\" is not",
            "test.toml:12: pools.api.retry_on[0]: 200 is not an error status",
            "test.toml:14: pools.api.retry_budget.ratio: 2 must be between 0 and 1",
            "test.toml:16: pools.api.health.expected_status: is not a status",
            "test.toml:17: pools.api.health.rise: 0 must be a positive whole number",
            "test.toml:19: pools.api.outlier.max_ejected_share: 1.5 must be between 0 and 1",
        ];
        for line in expected {
            assert!(
                problems.iter().any(|p| p.starts_with(line)),
                "{line} missing from {problems:#?}"
            );
        }
    }

    #[test]
    fn hash_keys_without_consistent_hashing_are_refused() {
        let problems = parse("algorithm = \"random\"\nhash_on = \"path\"\n").unwrap_err();
        assert_eq!(
            problems,
            vec![
                "test.toml:11: pools.api.hash_on: is only used with algorithm = \"consistent_hash\""
            ]
        );
    }

    #[test]
    fn resolve_needs_a_host_name() {
        let source = BASE.replace(
            "{ addr = \"127.0.0.1:9000\" }",
            "{ addr = \"127.0.0.1:9000\", resolve = true }, { addr = \"app.internal:80\", resolve = true }",
        );
        let problems = Config::parse(&source, "test.toml", Path::new("."))
            .unwrap_err()
            .problems();
        assert_eq!(
            problems,
            vec![
                "test.toml:9: pools.api.backends[0].resolve: needs a host name to look up, not an address"
            ]
        );
    }
}
