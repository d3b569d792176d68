use crate::balancer::rng::{SharedRng, hash_key};

#[test]
fn one_seed_gives_one_sequence() {
    let a = SharedRng::new(7);
    let b = SharedRng::new(7);
    let first: Vec<u64> = (0..5).map(|_| a.next_u64()).collect();
    let second: Vec<u64> = (0..5).map(|_| b.next_u64()).collect();
    assert_eq!(first, second);
    assert_ne!(
        first,
        (0..5)
            .map(|_| SharedRng::new(8).next_u64())
            .collect::<Vec<_>>()
    );
}

#[test]
fn draws_below_n_are_in_range_and_roughly_uniform() {
    let rng = SharedRng::new(1);
    let mut counts = [0u32; 4];
    for _ in 0..40_000 {
        let i = rng.below(4) as usize;
        counts[i] += 1;
    }
    for count in counts {
        assert!((9_000..11_000).contains(&count), "{counts:?}");
    }
    assert_eq!(rng.below(0), 0);
}

#[test]
fn unit_draws_stay_in_the_half_open_interval() {
    let rng = SharedRng::new(3);
    assert!(
        (0..10_000)
            .map(|_| rng.unit())
            .all(|u| (0.0..1.0).contains(&u))
    );
}

#[test]
fn key_hashes_are_stable() {
    assert_eq!(hash_key(b"/a"), hash_key(b"/a"));
    assert_ne!(hash_key(b"/a"), hash_key(b"/b"));
}
