use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::balancer::schedule::{Schedule, nginx_schedule, smooth_schedule, virtual_time_schedule};
use crate::balancer::{AdminState, HashOptions, HealthTransition, Outcome};

fn all_algorithms() -> Vec<Algorithm> {
    vec![
        Algorithm::RoundRobin,
        Algorithm::WeightedRoundRobin,
        Algorithm::LeastRequest,
        Algorithm::PeakEwma,
        Algorithm::ConsistentHash(HashOptions::default()),
        Algorithm::Random,
    ]
}

#[test]
fn round_robin_visits_every_backend_in_turn() {
    let pool = pool(Algorithm::RoundRobin, &[1, 1, 1]);
    let now = Instant::now();
    let picks: Vec<u16> = (0..6)
        .map(|_| pool.pick_with(&PickContext::at(now)).unwrap().1.addr.port())
        .collect();
    assert_eq!(picks, vec![1, 2, 3, 1, 2, 3]);
}

#[test]
fn round_robin_spreads_an_excluded_backends_turns_evenly_over_the_others() {
    let pool = pool(Algorithm::RoundRobin, &[1, 1, 1, 1]);
    pool.backends()[1].state.set_admin(AdminState::Draining);
    let counts = counts(&pool, 3000, Instant::now());
    assert_eq!(counts[1], 0);
    for count in [counts[0], counts[2], counts[3]] {
        assert!((900..=1100).contains(&count), "{counts:?}");
    }
}

#[test]
fn smooth_weighted_round_robin_follows_nginxs_sequence() {
    assert_eq!(nginx_schedule(&[5, 1, 1]), vec![0, 0, 1, 0, 2, 0, 0]);
    assert_eq!(nginx_schedule(&[4, 2, 1]), vec![0, 1, 0, 2, 0, 1, 0]);
    assert_eq!(nginx_schedule(&[2, 1, 1]), vec![0, 1, 2, 0]);
}

#[test]
fn weighted_round_robin_gives_each_backend_exactly_its_weight_per_period() {
    let weights = [5, 3, 1, 1];
    let pool = pool(Algorithm::WeightedRoundRobin, &weights);
    let counts = counts(&pool, 10 * 100, Instant::now());
    assert_eq!(counts, vec![500, 300, 100, 100]);
}

#[test]
fn equal_weights_make_a_plain_rotation_and_common_factors_are_removed() {
    assert_eq!(smooth_schedule([3, 3, 3].into_iter()), Schedule::Rotation);
    assert_eq!(
        smooth_schedule([10, 5, 5].into_iter()),
        Schedule::Slots(vec![0, 1, 2, 0])
    );
}

/// The longest run of slots without `index`, wrapping around the period.
fn longest_gap(slots: &[u32], index: u32) -> usize {
    let positions: Vec<usize> = (0..slots.len()).filter(|p| slots[*p] == index).collect();
    let wrap = positions[0] + slots.len() - positions[positions.len() - 1];
    positions
        .windows(2)
        .map(|w| w[1] - w[0])
        .chain([wrap])
        .max()
        .unwrap()
}

#[test]
fn the_virtual_time_schedule_is_as_smooth_as_nginxs() {
    for weights in [
        vec![6u64, 3, 1],
        vec![5, 1, 1],
        vec![7, 4, 2, 1],
        vec![1, 2, 3, 4, 5],
    ] {
        let (ours, nginx) = (virtual_time_schedule(&weights), nginx_schedule(&weights));
        assert_eq!(ours.len(), nginx.len());
        for (index, weight) in weights.iter().enumerate() {
            let index = index as u32;
            assert_eq!(ours.iter().filter(|s| **s == index).count() as u64, *weight);
            let (gap, reference) = (longest_gap(&ours, index), longest_gap(&nginx, index));
            assert!(
                gap <= reference + 1,
                "{weights:?}: {ours:?} against {nginx:?}"
            );
        }
    }
}

#[test]
fn large_weighted_pools_build_a_proportional_schedule_quickly() {
    let weights: Vec<u32> = (0..10_000).map(|i| 1 + i % 10).collect();
    let started = std::time::Instant::now();
    let Schedule::Slots(slots) = smooth_schedule(weights.iter().copied()) else {
        panic!("expected slots");
    };
    assert!(started.elapsed() < Duration::from_secs(2));
    let mut counts = vec![0u32; weights.len()];
    for slot in &slots {
        counts[*slot as usize] += 1;
    }
    assert_eq!(counts, weights);
}

#[test]
fn least_request_picks_the_backend_with_the_fewest_requests_in_flight() {
    let pool = pool(Algorithm::LeastRequest, &[1, 1, 1]);
    let now = Instant::now();
    let _a = pool.backends()[0].start();
    let _b = pool.backends()[0].start();
    let _c = pool.backends()[2].start();
    for _ in 0..10 {
        assert_eq!(pool.pick_with(&PickContext::at(now)).unwrap().0, 1);
    }
}

#[test]
fn least_request_breaks_ties_round_robin() {
    let pool = pool(Algorithm::LeastRequest, &[1, 1, 1]);
    assert_eq!(counts(&pool, 300, Instant::now()), vec![100, 100, 100]);
}

#[test]
fn least_request_shares_held_requests_in_proportion_to_weight() {
    let weights = [3, 1];
    let pool = pool(Algorithm::LeastRequest, &weights);
    let now = Instant::now();
    let guards: Vec<_> = (0..400)
        .map(|_| pool.pick_with(&PickContext::at(now)).unwrap().1.start())
        .collect();
    let held: Vec<usize> = pool
        .backends()
        .iter()
        .map(|b| b.state.in_flight() as usize)
        .collect();
    assert_proportional(&held, &weights, 0.02);
    drop(guards);
}

#[test]
fn least_request_in_a_large_pool_keeps_held_requests_level() {
    let pool = pool(Algorithm::LeastRequest, &[1; 200]);
    let now = Instant::now();
    let _guards: Vec<_> = (0..2000)
        .map(|_| pool.pick_with(&PickContext::at(now)).unwrap().1.start())
        .collect();
    let held: Vec<u64> = pool
        .backends()
        .iter()
        .map(|b| b.state.in_flight())
        .collect();
    let (low, high) = (held.iter().min().unwrap(), held.iter().max().unwrap());
    assert!(*low >= 7 && *high <= 12, "{low}..{high} around 10");
}

#[test]
fn peak_ewma_spreads_evenly_over_equal_backends() {
    let pool = pool(Algorithm::PeakEwma, &[1, 1, 1, 1]);
    let counts = counts(&pool, 40_000, Instant::now());
    assert_proportional(&counts, &[1, 1, 1, 1], 0.05);
}

#[test]
fn peak_ewma_prefers_the_faster_backend() {
    let pool = pool(Algorithm::PeakEwma, &[1, 1, 1]);
    let latency = [5, 5, 100].map(Duration::from_millis);
    let mut now = Instant::now();
    let mut counts = [0usize; 3];
    for _ in 0..10_000 {
        now += Duration::from_millis(1);
        let (index, backend) = pool.pick_with(&PickContext::at(now)).unwrap();
        counts[index] += 1;
        let guard = backend.start();
        pool.finish(guard, Outcome::Success, latency[index], now);
    }
    assert!(counts[2] < 300, "the slow backend got {counts:?}");
    assert!(counts[0] > 4000 && counts[1] > 4000, "{counts:?}");
}

#[test]
fn peak_ewma_reacts_at_once_to_a_latency_spike() {
    let pool = pool(Algorithm::PeakEwma, &[1, 1]);
    let now = Instant::now();
    for index in 0..2 {
        let guard = pool.backends()[index].start();
        pool.finish(guard, Outcome::Success, Duration::from_millis(10), now);
    }
    let guard = pool.backends()[0].start();
    pool.finish(guard, Outcome::Success, Duration::from_secs(1), now);
    let decay = pool.options().ewma.decay;
    assert_eq!(
        pool.backends()[0].state.latency(now, decay),
        Some(Duration::from_secs(1))
    );
    assert_eq!(pool.pick_with(&PickContext::at(now)).unwrap().0, 1);
}

#[test]
fn peak_ewma_shares_held_requests_in_proportion_to_weight() {
    let weights = [3, 1];
    let pool = pool(Algorithm::PeakEwma, &weights);
    let now = Instant::now();
    let guards: Vec<_> = (0..400)
        .map(|_| pool.pick_with(&PickContext::at(now)).unwrap().1.start())
        .collect();
    let held: Vec<usize> = pool
        .backends()
        .iter()
        .map(|b| b.state.in_flight() as usize)
        .collect();
    assert_proportional(&held, &weights, 0.02);
    drop(guards);
}

#[test]
fn random_picks_follow_the_weights() {
    let weights = [1, 2, 3, 4];
    let pool = pool(Algorithm::Random, &weights);
    let counts = counts(&pool, 100_000, Instant::now());
    assert_proportional(&counts, &weights, 0.03);
}

#[test]
fn random_picks_repeat_with_the_same_seed() {
    let now = Instant::now();
    let sequence = |seed| {
        let options = PoolOptions {
            seed: Some(seed),
            ..options(Algorithm::Random)
        };
        let pool = BackendPool::with_options("p", weighted(&[1, 1, 1, 1, 1]), None, options, now);
        (0..50)
            .map(|_| pool.pick_with(&PickContext::at(now)).unwrap().0)
            .collect::<Vec<_>>()
    };
    assert_eq!(sequence(9), sequence(9));
    assert_ne!(sequence(9), sequence(10));
}

#[test]
fn every_algorithm_skips_draining_unhealthy_ejected_and_weightless_backends() {
    let now = Instant::now();
    for algorithm in all_algorithms() {
        let options = PoolOptions {
            max_ejected_share: 0.9,
            ..options(algorithm.clone())
        };
        let pool =
            BackendPool::with_options("p", weighted(&[1, 1, 1, 1, 0, 1]), None, options, now);
        let backends = pool.backends();
        backends[0].state.set_admin(AdminState::Draining);
        backends[1]
            .state
            .publish(&HealthTransition::BecameUnhealthy, now);
        let until = now + Duration::from_secs(30);
        backends[2].state.publish(
            &HealthTransition::Ejected {
                until,
                ejections: 1,
            },
            now,
        );
        let counts = counts(&pool, 2000, now);
        let skipped = [counts[0], counts[1], counts[2], counts[4]];
        assert_eq!(skipped, [0; 4], "{}: {counts:?}", algorithm.as_str());
        assert!(
            counts[3] > 0 && counts[5] > 0,
            "{}: {counts:?}",
            algorithm.as_str()
        );
        // The ejection ends by itself when its backoff has passed.
        let later = counts_at(&pool, until);
        assert!(later[2] > 0, "{}: {later:?}", algorithm.as_str());
    }
}

fn counts_at(pool: &BackendPool, now: Instant) -> Vec<usize> {
    counts(pool, 2000, now)
}

#[test]
fn every_algorithm_fails_open_when_more_than_the_allowed_share_is_excluded() {
    let now = Instant::now();
    for algorithm in all_algorithms() {
        let pool = BackendPool::with_options(
            "p",
            weighted(&[1, 1, 1, 1]),
            None,
            options(algorithm.clone()),
            now,
        );
        for backend in &pool.backends()[..3] {
            backend
                .state
                .publish(&HealthTransition::BecameUnhealthy, now);
        }
        let counts = counts(&pool, 4000, now);
        assert!(
            counts.iter().all(|c| *c > 0),
            "{}: {counts:?}",
            algorithm.as_str()
        );
    }
}

#[test]
fn every_algorithm_picks_nothing_from_an_empty_or_fully_drained_pool() {
    let now = Instant::now();
    for algorithm in all_algorithms() {
        let empty = BackendPool::with_options("p", [], None, options(algorithm.clone()), now);
        assert!(empty.pick_with(&PickContext::at(now)).is_none());
        let drained = pool(algorithm.clone(), &[1, 1]);
        for backend in drained.backends() {
            backend.state.set_admin(AdminState::Draining);
        }
        assert!(
            drained.pick_with(&PickContext::at(now)).is_none(),
            "{}",
            algorithm.as_str()
        );
    }
}

#[test]
fn every_algorithm_skips_a_backend_at_its_in_flight_cap() {
    let now = Instant::now();
    for algorithm in all_algorithms() {
        let mut options = options(algorithm.clone());
        options.limits.max_in_flight_per_backend = std::num::NonZeroU64::new(2);
        let pool = BackendPool::with_options("p", weighted(&[1, 1]), None, options, now);
        let _held = [pool.backends()[0].start(), pool.backends()[0].start()];
        let counts = counts(&pool, 200, now);
        assert_eq!(counts, vec![0, 200], "{}", algorithm.as_str());
        let _more = [pool.backends()[1].start(), pool.backends()[1].start()];
        assert!(pool.pick_with(&PickContext::at(now)).is_none());
    }
}

#[test]
fn a_per_backend_cap_overrides_the_pool_wide_one() {
    let now = Instant::now();
    for algorithm in all_algorithms() {
        let mut options = options(algorithm.clone());
        let backends = weighted(&[1, 1]);
        let first = backends.first().unwrap().0;
        options
            .backend_caps
            .insert(first, std::num::NonZeroU64::new(1).unwrap());
        let pool = BackendPool::with_options("p", backends, None, options, now);
        assert_eq!(pool.backends()[0].cap(), 1);
        assert_eq!(pool.backends()[1].cap(), u64::MAX);
        let _held = pool.backends()[0].start();
        let counts = counts(&pool, 100, now);
        assert_eq!(counts, vec![0, 100], "{}", algorithm.as_str());
    }
}

#[test]
fn a_per_backend_cap_above_the_pool_wide_one_is_not_narrowed_to_it() {
    let now = Instant::now();
    for algorithm in all_algorithms() {
        let mut capped = options(algorithm.clone());
        capped.limits.max_in_flight_per_backend = std::num::NonZeroU64::new(1);
        let backends = weighted(&[1, 1]);
        let first = backends.first().unwrap().0;
        capped
            .backend_caps
            .insert(first, std::num::NonZeroU64::new(3).unwrap());
        let pool = BackendPool::with_options("p", backends, None, capped, now);
        assert_eq!(pool.backends()[0].cap(), 3);
        assert_eq!(pool.backends()[1].cap(), 1);
        // Both hold one request: only the first has room left.
        let _first = pool.backends()[0].start();
        let _second = pool.backends()[1].start();
        let picked = counts(&pool, 100, now);
        assert_eq!(picked, vec![100, 0], "{}", algorithm.as_str());
    }
}

#[test]
fn labels_are_stable() {
    let labels: Vec<&str> = all_algorithms().iter().map(Algorithm::as_str).collect();
    assert_eq!(
        labels,
        [
            "round_robin",
            "weighted_round_robin",
            "least_request",
            "peak_ewma",
            "consistent_hash",
            "random"
        ]
    );
    assert_eq!(Algorithm::default(), Algorithm::PeakEwma);
}
