//! What it measures: a purge by tag of 100 000 tagged objects (the target: under
//! 100 ms), through `Cache::purge`, in a cache that also holds 100 000 objects without that
//! tag. Each iteration fills a fresh cache outside the timed part, then times one hard purge
//! of the tag; a soft purge and a dry run of the same tag are timed too.
//!
//! The bench runs on mimalloc, the allocator the `sluice` binary uses (freeing many small
//! allocations costs very differently under glibc's malloc).
//!
//! Run: `cargo bench --bench cache_purge` (about a minute on two cores). Criterion reports the
//! time of one purge; compare runs on the same machine only.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // fixed, valid inputs

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use sluice::cache::{
    Cache, CacheKey, CacheRules, Cacheability, KeyRules, PurgeMode, PurgeRequest, PurgeRun,
    PurgeTarget, RequestHead, ResponseHead, StoreConfig, cacheability,
};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TAGGED: usize = 100_000;
const UNTAGGED: usize = 100_000;

fn filled() -> Cache {
    let cache = Cache::new(StoreConfig::with_budget(1 << 30));
    let rules = CacheRules::default();
    let now = SystemTime::now();
    let body = Bytes::from_static(&[b'x'; 256]);
    for id in 0..TAGGED + UNTAGGED {
        let tags = if id < TAGGED {
            format!("catalogue product-{id}")
        } else {
            format!("page-{id}")
        };
        let response = Response::builder()
            .status(200)
            .header("cache-control", "max-age=3600")
            .header("surrogate-key", tags)
            .body(())
            .unwrap()
            .into_parts()
            .0;
        let request = Request::get(format!("/p/{id}"))
            .header("host", "shop.example")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        let Cacheability::Store(plan) = cacheability(
            RequestHead::from(&request),
            ResponseHead::from(&response),
            &rules,
            now,
            now,
        ) else {
            panic!("storable");
        };
        let key = CacheKey::new(&KeyRules::default(), "http", RequestHead::from(&request)).unwrap();
        cache
            .store(&key, plan, response.status, response.headers, body.clone())
            .expect("stored");
    }
    assert_eq!(cache.store_ref().objects(), TAGGED + UNTAGGED);
    cache
}

fn purge(mode: PurgeMode, run: PurgeRun) -> PurgeRequest {
    PurgeRequest {
        targets: vec![PurgeTarget::Tag("catalogue".into())],
        mode,
        run,
    }
}

/// One untimed-by-criterion pass, printed: how long filling, the purge and dropping the rest
/// take, so the purge can be read against the cost of the memory it releases.
fn one_shot() {
    let started = Instant::now();
    let cache = filled();
    let filled_in = started.elapsed();
    let started = Instant::now();
    let outcome = cache.purge(&purge(PurgeMode::Hard, PurgeRun::Apply));
    let purged_in = started.elapsed();
    let started = Instant::now();
    drop(cache);
    println!(
        "one shot: fill {TAGGED}+{UNTAGGED} in {filled_in:.1?}; hard purge of {} tagged in \
         {purged_in:.1?} (freed on a background thread); dropping the other {UNTAGGED} in {:.1?}",
        outcome.matched,
        started.elapsed()
    );
}

fn bench(c: &mut Criterion) {
    one_shot();
    let mut group = c.benchmark_group("purge_tag_100k");
    group.sample_size(10);
    for (name, mode, run) in [
        ("hard", PurgeMode::Hard, PurgeRun::Apply),
        ("soft", PurgeMode::Soft, PurgeRun::Apply),
        ("dry_run", PurgeMode::Hard, PurgeRun::DryRun),
    ] {
        group.bench_function(name, |b| {
            b.iter_custom(|iterations| {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    let cache = filled();
                    let started = Instant::now();
                    let outcome = black_box(cache.purge(&purge(mode, run)));
                    total += started.elapsed();
                    assert_eq!(outcome.matched, TAGGED);
                    // Dropping the cache (freeing 200 000 entries) is not part of the purge.
                    drop(cache);
                }
                total
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(100))
        .measurement_time(Duration::from_secs(5));
    targets = bench
}
criterion_main!(benches);
