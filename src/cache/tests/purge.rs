use std::time::SystemTime;

use super::store::sized;
use super::*;
use crate::cache::purge::tags_from_headers;
use crate::cache::{
    Cache, Lookup, PurgeMode, PurgeRequest, PurgeRun, PurgeTarget, StaleReason, StoreConfig,
};

fn cache_with(urls: &[(&str, &str, &str)]) -> Cache {
    let cache = Cache::new(StoreConfig::with_budget(8 << 20));
    for (host, path, tags) in urls {
        let request = get(path, &[("host", host)]);
        let response = response(
            200,
            &[("cache-control", "max-age=600"), ("surrogate-key", tags)],
        );
        let plan = plan(&request, &response, &CacheRules::default());
        cache
            .store(
                &key_of(&request),
                plan,
                ok(),
                response.headers,
                Bytes::from_static(b"x"),
            )
            .expect("stored");
    }
    cache
}

fn sample() -> Cache {
    cache_with(&[
        ("shop.example", "/products/1", "product-1 products"),
        ("shop.example", "/products/2", "product-2 products"),
        ("shop.example", "/about", "pages"),
        ("shop.example:8080", "/products/1", "product-1"),
        ("blog.example", "/products/1", "posts"),
    ])
}

fn purge(cache: &Cache, target: PurgeTarget) -> usize {
    cache
        .purge(&PurgeRequest {
            targets: vec![target],
            mode: PurgeMode::Hard,
            run: PurgeRun::Apply,
        })
        .matched
}

fn present(cache: &Cache, host: &str, path: &str) -> bool {
    let request = get(path, &[("host", host)]);
    !matches!(
        cache.lookup(
            &key_of(&request),
            RequestHead::from(&request),
            &CacheRules::default(),
            SystemTime::now()
        ),
        Lookup::Miss(_)
    )
}

#[test]
fn tags_come_from_surrogate_key_cache_tag_and_xkey() {
    let fields = headers(&[
        ("surrogate-key", "a  b"),
        ("cache-tag", "c, a,d"),
        ("xkey", "e f"),
    ]);
    let tags: Vec<String> = tags_from_headers(&fields)
        .iter()
        .map(|t| t.to_string())
        .collect();
    assert_eq!(tags, ["a", "b", "c", "d", "e", "f"]);
}

#[test]
fn purge_by_url_removes_every_variant_of_that_url_only() {
    let cache = sample();
    for language in ["en", "fr"] {
        let request = get(
            "/about",
            &[("host", "shop.example"), ("accept-language", language)],
        );
        let response = response(
            200,
            &[("cache-control", "max-age=60"), ("vary", "accept-language")],
        );
        let plan = plan(&request, &response, &CacheRules::default());
        cache
            .store(
                &key_of(&request),
                plan,
                ok(),
                response.headers,
                Bytes::new(),
            )
            .expect("stored");
    }
    assert_eq!(
        purge(
            &cache,
            PurgeTarget::Url("http://SHOP.example:80/about".into())
        ),
        3
    );
    assert!(!present(&cache, "shop.example", "/about"));
    assert!(present(&cache, "shop.example", "/products/1"));
    assert_eq!(
        purge(&cache, PurgeTarget::Url("shop.example/products/1".into())),
        1,
        "schemeless"
    );
}

#[test]
fn purge_by_prefix_removes_the_urls_under_it() {
    let cache = sample();
    assert_eq!(
        purge(
            &cache,
            PurgeTarget::Prefix("http://shop.example/products/".into())
        ),
        2
    );
    assert!(present(&cache, "shop.example:8080", "/products/1"));
    assert_eq!(
        purge(&cache, PurgeTarget::Prefix("blog.example/".into())),
        1
    );
}

#[test]
fn purge_by_host_matches_any_port_unless_one_is_named() {
    let cache = sample();
    assert_eq!(
        purge(&cache, PurgeTarget::Host("shop.example:8080".into())),
        1
    );
    assert_eq!(purge(&cache, PurgeTarget::Host("SHOP.example".into())), 3);
    assert!(present(&cache, "blog.example", "/products/1"));
}

#[test]
fn purge_by_tag_removes_the_tagged_entries_and_keeps_the_index_exact() {
    let cache = sample();
    assert_eq!(purge(&cache, PurgeTarget::Tag("product-1".into())), 2);
    assert!(!present(&cache, "shop.example", "/products/1"));
    assert!(present(&cache, "shop.example", "/products/2"));
    assert_eq!(purge(&cache, PurgeTarget::Tag("product-1".into())), 0);
    assert_eq!(purge(&cache, PurgeTarget::Tag("products".into())), 1);
    let audit = cache.store_ref().audit();
    assert_eq!(audit.tags, 2, "pages and posts remain");
}

#[test]
fn purge_everything_empties_the_store() {
    let cache = sample();
    assert_eq!(purge(&cache, PurgeTarget::Everything), 5);
    assert_eq!(cache.store_ref().objects(), 0);
    assert_eq!(cache.store_ref().bytes(), 0);
    assert_eq!(cache.store_ref().audit().tags, 0);
}

#[test]
fn a_dry_run_counts_without_removing() {
    let cache = sample();
    let outcome = cache.purge(&PurgeRequest {
        targets: vec![PurgeTarget::Tag("products".into()), PurgeTarget::Everything],
        mode: PurgeMode::Hard,
        run: PurgeRun::DryRun,
    });
    assert_eq!(outcome.matched, 5, "an entry selected twice counts once");
    assert!(outcome.bytes > 0);
    assert_eq!(cache.store_ref().objects(), 5);
    assert_eq!(
        cache.snapshot().purges,
        [0; 5],
        "a dry run is not counted as a purge"
    );
}

#[test]
fn a_soft_purge_marks_entries_stale_in_place() {
    let cache = sample();
    let outcome = cache.purge(&PurgeRequest {
        targets: vec![PurgeTarget::Tag("product-2".into())],
        mode: PurgeMode::Soft,
        run: PurgeRun::Apply,
    });
    assert_eq!(outcome.matched, 1);
    assert_eq!(cache.store_ref().objects(), 5);
    let request = get("/products/2", &[("host", "shop.example")]);
    match cache.lookup(
        &key_of(&request),
        RequestHead::from(&request),
        &CacheRules::default(),
        SystemTime::now(),
    ) {
        Lookup::Stale(stale) => assert_eq!(stale.reason, StaleReason::SoftPurged),
        other => panic!("{}", other.as_str()),
    }
    assert_eq!(cache.snapshot().purges[2], 1);
}

#[test]
fn the_tag_index_forgets_evicted_entries() {
    let cache = Cache::new(StoreConfig {
        budget: 64 * 1024,
        shards: std::num::NonZeroUsize::MIN,
    });
    for index in 0..500 {
        let entry = sized(
            &format!("/e/{index}"),
            1000,
            &[("surrogate-key", &format!("only-{index} shared"))],
        );
        cache.store_entry(entry).expect("stored");
    }
    let audit = cache.store_ref().audit();
    assert!(audit.entries < 500);
    assert_eq!(
        audit.tags,
        audit.entries + 1,
        "one tag per live entry plus the shared one"
    );
    assert_eq!(
        purge(&cache, PurgeTarget::Tag("shared".into())),
        audit.entries
    );
    assert_eq!(cache.store_ref().audit().tags, 0);
}
