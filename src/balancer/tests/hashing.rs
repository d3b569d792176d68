use std::net::SocketAddr;

use tokio::time::Instant;

use super::*;
use crate::balancer::hashing::{Ring, vnode_counts};
use crate::balancer::{AdminState, HashOptions, hash_key};

fn hashed(load_factor: Option<f64>) -> Algorithm {
    Algorithm::ConsistentHash(HashOptions {
        load_factor,
        ..HashOptions::default()
    })
}

fn hash_pool(backends: Vec<(SocketAddr, u32)>, load_factor: Option<f64>) -> BackendPool {
    BackendPool::with_options(
        "p",
        backends,
        None,
        options(hashed(load_factor)),
        Instant::now(),
    )
}

/// The backend address each of `keys` keys goes to.
fn placement(pool: &BackendPool, keys: usize) -> Vec<SocketAddr> {
    let now = Instant::now();
    (0..keys)
        .map(|i| {
            let key = format!("/item/{i}");
            let context = PickContext::at(now).with_key(key.as_bytes());
            pool.pick_with(&context).unwrap().1.addr
        })
        .collect()
}

#[test]
#[ignore = "a measurement, not a check: prints key movement and build time"]
fn print_key_movement_and_build_time() {
    for n in [5u16, 10, 50, 100, 1000] {
        let before = hash_pool(weighted(&vec![1; n as usize]), None);
        let after = hash_pool(weighted(&vec![1; n as usize + 1]), None);
        let (old, new) = (placement(&before, 10_000), placement(&after, 10_000));
        let moved = old.iter().zip(&new).filter(|(a, b)| a != b).count();
        println!(
            "n={n} moved={:.4} ideal={:.4}",
            moved as f64 / 1e4,
            1.0 / f64::from(n + 1)
        );
    }
    let big = pool(Algorithm::RoundRobin, &vec![1; 10_000]);
    let started = std::time::Instant::now();
    let ring = Ring::build(big.backends());
    println!(
        "10 000 backends: {} points in {:?}",
        ring.len(),
        started.elapsed()
    );
}

#[test]
fn equal_weights_get_the_same_virtual_nodes_whatever_the_pool_size() {
    assert_eq!(vnode_counts(&[1, 1, 1]), vec![256; 3]);
    assert_eq!(vnode_counts(&[5; 100]), vec![256; 100]);
    assert_eq!(vnode_counts(&[2, 4, 0]), vec![256, 512, 0]);
    // Huge pools are scaled to fit, with at least one point each.
    let big = vnode_counts(&vec![1; 10_000]);
    assert!(big.iter().all(|c| *c == 52), "{:?}", &big[..3]);
    assert!(vnode_counts(&[1, 1_000_000]).iter().all(|c| *c >= 1));
}

#[test]
fn every_backend_holds_its_share_of_the_ring() {
    let weights = [1, 2, 3, 4];
    let weighted_pool = pool(Algorithm::RoundRobin, &weights);
    let ring = Ring::build(weighted_pool.backends());
    assert_eq!(ring.points_per_backend(4), vec![256, 512, 768, 1024]);
    assert_eq!(ring.len(), 2560);
}

#[test]
fn the_ring_is_sorted_and_its_index_finds_the_next_point() {
    for n in [1, 3, 100, 3000] {
        let pool = pool(Algorithm::RoundRobin, &vec![1; n]);
        let ring = Ring::build(pool.backends());
        assert!(ring.is_sorted(), "{n}");
        for i in 0..2000u64 {
            let hash = hash_key(&i.to_be_bytes());
            assert_eq!(ring.lookup(hash), ring.lookup_slowly(hash), "{n}: {hash}");
        }
        assert_eq!(ring.lookup(u64::MAX), ring.lookup_slowly(u64::MAX));
        assert_eq!(ring.lookup(0), ring.lookup_slowly(0));
    }
}

#[test]
fn a_key_always_goes_to_the_same_backend_in_every_rebuild() {
    let first = hash_pool(weighted(&[1; 10]), None);
    let second = hash_pool(weighted(&[1; 10]), None);
    assert_eq!(placement(&first, 1000), placement(&second, 1000));
    assert_eq!(placement(&first, 1000), placement(&first, 1000));
    let ring = Ring::build(first.backends());
    let owner = ring.lookup(hash_key(b"/item/1")).unwrap();
    assert_eq!(placement(&first, 2)[1], first.backends()[owner].addr);
}

#[test]
fn keys_spread_over_the_backends_in_proportion_to_weight() {
    let weights = [1, 1, 2, 4];
    let pool = hash_pool(weighted(&weights), None);
    let placed = placement(&pool, 20_000);
    let counts: Vec<usize> = pool
        .backends()
        .iter()
        .map(|b| placed.iter().filter(|a| **a == b.addr).count())
        .collect();
    assert_proportional(&counts, &weights, 0.10);
}

#[test]
fn adding_a_backend_moves_about_one_in_n_keys() {
    for n in [5u16, 10, 50] {
        let before = hash_pool(weighted(&vec![1; n as usize]), None);
        let after = hash_pool(weighted(&vec![1; n as usize + 1]), None);
        let (old, new) = (placement(&before, 10_000), placement(&after, 10_000));
        let moved = old.iter().zip(&new).filter(|(a, b)| a != b).count();
        let share = moved as f64 / 10_000.0;
        assert!(
            share <= 1.5 / f64::from(n),
            "{n} backends: {share:.3} of keys moved"
        );
        // Almost all of them move to the new backend.
        let to_new = new
            .iter()
            .zip(&old)
            .filter(|(b, a)| a != b && **b == addr(n + 1))
            .count();
        assert!(
            to_new as f64 >= 0.9 * moved as f64,
            "{n}: {to_new} of {moved}"
        );
    }
}

#[test]
fn removing_a_backend_moves_mostly_its_own_keys() {
    let before = hash_pool(weighted(&[1; 10]), None);
    let after = hash_pool(weighted(&[1; 10])[..9].to_vec(), None);
    let (old, new) = (placement(&before, 10_000), placement(&after, 10_000));
    let others_moved = old
        .iter()
        .zip(&new)
        .filter(|(a, b)| a != b && **a != addr(10))
        .count();
    assert!(
        others_moved <= 200,
        "{others_moved} keys of surviving backends moved"
    );
}

#[test]
fn an_excluded_backends_keys_go_elsewhere_and_the_rest_stay_put() {
    let pool = hash_pool(weighted(&[1; 5]), None);
    let old = placement(&pool, 2000);
    pool.backends()[2].state.set_admin(AdminState::Draining);
    let new = placement(&pool, 2000);
    for (a, b) in old.iter().zip(&new) {
        assert_ne!(*b, addr(3));
        if *a != addr(3) {
            assert_eq!(a, b);
        }
    }
}

#[test]
fn without_a_bound_a_hot_key_sends_everything_to_one_backend() {
    let pool = hash_pool(weighted(&[1; 10]), None);
    let now = Instant::now();
    let context = PickContext::at(now).with_key(b"hot");
    let _guards: Vec<_> = (0..100)
        .map(|_| pool.pick_with(&context).unwrap().1.start())
        .collect();
    assert_eq!(
        pool.backends().iter().map(|b| b.state.in_flight()).max(),
        Some(100)
    );
}

#[test]
fn bounded_load_keeps_every_backend_under_c_times_the_average() {
    let c = 1.25;
    let n = 10u64;
    let pool = hash_pool(weighted(&[1; 10]), Some(c));
    let now = Instant::now();
    let mut guards = Vec::new();
    for i in 0..1000u64 {
        // Half the requests carry one hot key, the rest a few warm ones.
        let key = if i % 2 == 0 {
            "hot".to_string()
        } else {
            format!("warm-{}", i % 7)
        };
        let context = PickContext::at(now).with_key(key.as_bytes());
        guards.push(pool.pick_with(&context).unwrap().1.start());
        let total = i + 1;
        let bound = (c * total as f64 / n as f64).ceil() as u64;
        let max = pool
            .backends()
            .iter()
            .map(|b| b.state.in_flight())
            .max()
            .unwrap();
        assert!(
            max <= bound,
            "after {total} picks a backend holds {max} > {bound}"
        );
    }
    assert_eq!(pool.in_flight(), 1000);
}

#[test]
fn bounded_load_still_sends_a_key_to_its_own_backend_when_there_is_room() {
    let bounded = hash_pool(weighted(&[1; 10]), Some(1.25));
    let unbounded = hash_pool(weighted(&[1; 10]), None);
    assert_eq!(placement(&bounded, 1000), placement(&unbounded, 1000));
}
