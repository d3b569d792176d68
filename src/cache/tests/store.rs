use std::num::NonZeroUsize;
use std::sync::Arc;

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

use super::*;
use crate::cache::entry::ENTRY_OVERHEAD;
use crate::cache::{Found, Inserted, Store, StoreConfig};

pub(super) fn sized(url: &str, size: usize, fields: &[(&str, &str)]) -> Entry {
    let request = get(url, &[("host", "h.example")]);
    let mut all = fields.to_vec();
    all.push(("cache-control", "max-age=60"));
    let response = response(200, &all);
    let plan = plan(&request, &response, &CacheRules::default());
    Entry::new(
        &key_of(&request),
        plan,
        ok(),
        response.headers,
        Bytes::from(vec![7u8; size]),
    )
}

fn lookup_key(url: &str) -> CacheKey {
    key_of(&get(url, &[("host", "h.example")]))
}

fn store(budget: usize, shards: usize) -> Store {
    Store::new(StoreConfig {
        budget,
        shards: NonZeroUsize::new(shards).expect("shards"),
    })
}

fn stored(inserted: Inserted) -> Arc<Entry> {
    match inserted {
        Inserted::Stored { entry, .. } => entry,
        Inserted::TooBig => panic!("refused"),
    }
}

#[test]
fn the_charge_counts_body_headers_key_and_overhead() {
    let entry = sized("/abc", 1000, &[("x-long", "0123456789")]);
    assert!(
        entry.charge() > 1000 + ENTRY_OVERHEAD + "http://h.example/abc".len() + "x-long".len() + 10
    );
}

#[test]
fn under_churn_of_ten_times_the_budget_the_bytes_never_exceed_it() {
    let budget = 4 * 1024 * 1024;
    let store = store(budget, 8);
    let mut rng = SmallRng::seed_from_u64(7);
    let mut inserted_bytes = 0usize;
    let mut round = 0u64;
    while inserted_bytes < 10 * budget {
        let size = rng.random_range(0..=64 * 1024);
        let url = format!("/object/{}", rng.random_range(0..5_000u32));
        let entry = sized(
            &url,
            size,
            &[("surrogate-key", &format!("t{} all", round % 17))],
        );
        inserted_bytes += entry.charge();
        stored(store.insert(entry));
        assert!(
            store.bytes() <= store.budget(),
            "over budget at round {round}"
        );
        if round.is_multiple_of(97) {
            let audit = store.audit();
            assert_eq!(audit.counted, audit.actual);
            assert_eq!(audit.entries, audit.indexed);
            assert!(audit.max_shard_bytes <= store.max_charge());
        }
        round += 1;
    }
    let audit = store.audit();
    assert_eq!(audit.counted, store.bytes());
    assert_eq!(audit.entries, store.objects());
    assert!(
        store.bytes() > budget / 2,
        "the store is used: {}",
        store.bytes()
    );
}

#[test]
fn an_object_larger_than_a_shard_is_refused() {
    let store = store(64 * 1024, 4);
    assert!(matches!(
        store.insert(sized("/big", 20 * 1024, &[])),
        Inserted::TooBig
    ));
    assert_eq!(store.bytes(), 0);
}

#[test]
fn storing_the_same_variant_again_replaces_it() {
    let store = store(1 << 20, 1);
    stored(store.insert(sized("/a", 100, &[("x-v", "1")])));
    stored(store.insert(sized("/a", 100, &[("x-v", "2")])));
    assert_eq!(store.objects(), 1);
    let Found::Entry(entry) = store.find(&lookup_key("/a"), &HeaderMap::new()) else {
        panic!("expected an entry");
    };
    assert_eq!(
        entry.headers().get("x-v").map(|v| v.as_bytes()),
        Some(&b"2"[..])
    );
    assert_eq!(store.audit().counted, entry.charge());
}

#[test]
fn vary_variants_live_under_one_url() {
    let store = store(1 << 20, 2);
    for language in ["en", "fr"] {
        let request = get(
            "/a",
            &[("host", "h.example"), ("accept-language", language)],
        );
        let response = response(
            200,
            &[("cache-control", "max-age=60"), ("vary", "accept-language")],
        );
        let plan = plan(&request, &response, &CacheRules::default());
        let entry = Entry::new(
            &key_of(&request),
            plan,
            ok(),
            response.headers,
            Bytes::from(language),
        );
        stored(store.insert(entry));
    }
    assert_eq!(store.objects(), 2);
    let french = headers(&[("accept-language", "fr")]);
    let Found::Entry(entry) = store.find(&lookup_key("/a"), &french) else {
        panic!("expected the fr variant");
    };
    assert_eq!(&entry.body()[..], b"fr");
    assert!(matches!(
        store.find(&lookup_key("/a"), &headers(&[("accept-language", "de")])),
        Found::VaryMiss
    ));
    assert!(matches!(
        store.find(&lookup_key("/b"), &french),
        Found::UriMiss
    ));
}

#[test]
fn a_hit_shares_the_stored_body() {
    let store = store(1 << 20, 1);
    let entry = stored(store.insert(sized("/a", 4096, &[])));
    let Found::Entry(first) = store.find(&lookup_key("/a"), &HeaderMap::new()) else {
        panic!("miss");
    };
    assert!(Arc::ptr_eq(&first, &entry));
    assert_eq!(first.body().clone().as_ptr(), entry.body().as_ptr());
}

#[test]
fn sweep_removes_expired_entries_within_its_step_budget() {
    let store = store(1 << 22, 4);
    for index in 0..100 {
        stored(store.insert(sized(&format!("/short/{index}"), 10, &[])));
    }
    stored(store.insert(sized("/long", 10, &[("cache-control", "max-age=100000")])));
    // Nothing is past keep_until at the start.
    assert_eq!(store.sweep(at(0), 1000), 0);
    let mut removed = 0;
    let mut calls = 0;
    while removed < 100 {
        let step = store.sweep(at(10_000), 7);
        assert!(step <= 7);
        removed += step;
        calls += 1;
        assert!(calls < 100, "sweep makes progress");
    }
    assert_eq!(store.objects(), 1);
    assert!(matches!(
        store.find(&lookup_key("/long"), &HeaderMap::new()),
        Found::Entry(_)
    ));
}

#[test]
fn s3_fifo_keeps_the_hot_set_through_a_scan() {
    let entry_size = 1000;
    let store = store(200 * (entry_size + 400), 1);
    let hot: Vec<String> = (0..50).map(|i| format!("/hot/{i}")).collect();
    for _ in 0..4 {
        for url in &hot {
            if !matches!(
                store.find(&lookup_key(url), &HeaderMap::new()),
                Found::Entry(_)
            ) {
                stored(store.insert(sized(url, entry_size, &[])));
            }
        }
    }
    for index in 0..2_000 {
        stored(store.insert(sized(&format!("/scan/{index}"), entry_size, &[])));
    }
    let survivors = hot
        .iter()
        .filter(|url| {
            matches!(
                store.find(&lookup_key(url), &HeaderMap::new()),
                Found::Entry(_)
            )
        })
        .count();
    assert_eq!(
        survivors,
        hot.len(),
        "a one-pass scan does not flush the hot set"
    );
}

#[test]
fn concurrent_inserts_and_finds_keep_the_accounting_exact() {
    let store = Arc::new(store(1 << 20, 4));
    let threads: Vec<_> = (0..4)
        .map(|thread| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                let mut rng = SmallRng::seed_from_u64(thread);
                for _ in 0..2_000 {
                    let url = format!("/c/{}", rng.random_range(0..300u32));
                    if !matches!(
                        store.find(&lookup_key(&url), &HeaderMap::new()),
                        Found::Entry(_)
                    ) {
                        let _ = store.insert(sized(&url, rng.random_range(0..8_000), &[]));
                    }
                    assert!(store.bytes() <= store.budget());
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("thread");
    }
    let audit = store.audit();
    assert_eq!(audit.counted, audit.actual);
    assert_eq!(audit.counted, store.bytes());
    assert_eq!(audit.entries, store.objects());
}

#[test]
fn removed_ids_do_not_pile_up_in_the_eviction_queues() {
    use crate::cache::eviction::{Frequency, Meta, Residents, S3Fifo};
    struct Live(std::collections::HashMap<u64, (Meta, Frequency)>);
    impl Residents for Live {
        fn meta(&mut self, id: u64) -> Option<(&mut Meta, &Frequency)> {
            self.0
                .get_mut(&id)
                .map(|(meta, frequency)| (meta, &*frequency))
        }
    }
    let mut fifo = S3Fifo::new(1 << 30);
    let mut live = Live(std::collections::HashMap::new());
    for id in 0..10_000u64 {
        let mut meta = Meta::new(10, id);
        fifo.admit(id, &mut meta);
        if id % 10 == 0 {
            live.0.insert(id, (meta, Frequency::default()));
        } else {
            fifo.forget(&meta);
        }
        fifo.compact(&mut live);
    }
    assert!(
        fifo.queued() <= 2 * live.0.len() + 65,
        "queued {}",
        fifo.queued()
    );
}
