use std::time::Duration;

use http::Method;

use super::*;
use crate::cache::{
    BodyCollector, Cache, CacheEvent, Coalesced, Collected, Join, Lookup, MissKind, Refresh,
    Revalidation, StoreConfig, invalidation_targets, refresh,
};

fn cache() -> Cache {
    Cache::new(StoreConfig::with_budget(8 << 20))
}

/// Runs steps 7 and 8 of the pipeline for one response.
fn fill(
    cache: &Cache,
    request: &request::Parts,
    response: &response::Parts,
    frames: &[&'static [u8]],
) -> Option<std::sync::Arc<Entry>> {
    let rules = CacheRules::default();
    let Cacheability::Store(plan) = verdict(request, response, &rules) else {
        return None;
    };
    let mut collector = BodyCollector::new(plan.max_body);
    for frame in frames {
        collector.push(&Bytes::from_static(frame));
    }
    let Collected::Complete(body) = collector.finish(None) else {
        return None;
    };
    cache.store(
        &key_of(request),
        plan,
        response.status,
        response.headers.clone(),
        body,
    )
}

#[test]
fn a_miss_then_a_stored_response_then_a_hit() {
    let cache = cache();
    let rules = CacheRules::default();
    let request = get("/a", &[("host", "h")]);
    let key = key_of(&request);
    assert!(matches!(
        cache.lookup(&key, RequestHead::from(&request), &rules, at(0)),
        Lookup::Miss(MissKind::UriMiss)
    ));
    fill(
        &cache,
        &request,
        &response(200, &[("cache-control", "max-age=60")]),
        &[b"he", b"llo"],
    )
    .expect("stored");
    match cache.lookup(&key, RequestHead::from(&request), &rules, at(10)) {
        Lookup::Hit(hit) => {
            assert_eq!(&hit.entry.body()[..], b"hello");
            assert_eq!(hit.age, Duration::from_secs(10));
        }
        other => panic!("{}", other.as_str()),
    }
    let counts = cache.snapshot();
    assert_eq!(
        (
            counts.hits,
            counts.misses,
            counts.stores,
            counts.objects_stored
        ),
        (1, 1, 1, 1)
    );
    assert!(counts.bytes_stored > 5);
}

#[test]
fn head_is_answered_from_the_stored_get() {
    let cache = cache();
    let get_request = get("/a", &[("host", "h")]);
    fill(
        &cache,
        &get_request,
        &response(200, &[("cache-control", "max-age=60")]),
        &[b"x"],
    )
    .expect("stored");
    let head = request(Method::HEAD, "/a", &[("host", "h")]);
    let lookup = cache.lookup(
        &key_of(&head),
        RequestHead::from(&head),
        &CacheRules::default(),
        at(1),
    );
    assert!(matches!(lookup, Lookup::Hit(_)));
}

#[test]
fn rfc9111_5_2_1_7_only_if_cached_on_a_miss_is_a_504_miss() {
    let cache = cache();
    let request = get("/a", &[("host", "h"), ("cache-control", "only-if-cached")]);
    let lookup = cache.lookup(
        &key_of(&request),
        RequestHead::from(&request),
        &CacheRules::default(),
        at(0),
    );
    assert!(matches!(lookup, Lookup::Miss(MissKind::OnlyIfCached)));
}

#[test]
fn rfc9111_4_4_invalidation_removes_the_target_after_a_post() {
    let cache = cache();
    let page = get("/items/1", &[("host", "h")]);
    fill(
        &cache,
        &page,
        &response(200, &[("cache-control", "max-age=60")]),
        &[b"v1"],
    )
    .expect("stored");
    let post = request(Method::POST, "/items/1", &[("host", "h")]);
    let created = response(200, &[]);
    let targets = invalidation_targets(
        RequestHead::from(&post),
        "http",
        ResponseHead::from(&created),
    );
    assert_eq!(cache.invalidate(&KeyRules::default(), &targets), 1);
    assert!(matches!(
        cache.lookup(
            &key_of(&page),
            RequestHead::from(&page),
            &CacheRules::default(),
            at(1)
        ),
        Lookup::Miss(MissKind::UriMiss)
    ));
    assert_eq!(cache.snapshot().invalidations, 1);
}

#[test]
fn rfc9111_4_3_4_a_304_refresh_replaces_the_entry_and_makes_it_fresh() {
    let cache = cache();
    let rules = CacheRules::default();
    let request = get("/a", &[("host", "h")]);
    let key = key_of(&request);
    fill(
        &cache,
        &request,
        &response(200, &[("cache-control", "max-age=10"), ("etag", "\"v1\"")]),
        &[b"body"],
    )
    .expect("stored");
    let Lookup::Stale(stale) = cache.lookup(&key, RequestHead::from(&request), &rules, at(20))
    else {
        panic!("expected stale");
    };
    let not_modified = response(304, &[("etag", "\"v1\""), ("cache-control", "max-age=100")]);
    let Refresh::Updated(updated) = refresh(
        &stale.entry,
        ResponseHead::from(&not_modified),
        &rules,
        at(20),
        at(20),
    ) else {
        panic!("expected an update");
    };
    cache.store_entry(*updated).expect("stored");
    cache.record(CacheEvent::Revalidated(Revalidation::NotModified));
    assert!(matches!(
        cache.lookup(&key, RequestHead::from(&request), &rules, at(50)),
        Lookup::Hit(_)
    ));
    assert_eq!(cache.store_ref().objects(), 1);
    assert_eq!(cache.snapshot().revalidated_not_modified, 1);
}

#[tokio::test(start_paused = true)]
async fn a_coalesced_waiter_gets_the_leaders_entry_only_for_its_own_variant() {
    let cache = cache();
    let english = get("/a", &[("host", "h"), ("accept-language", "en")]);
    let key = key_of(&english);
    let Join::Leader(leader) = cache.coalesce(&key) else {
        panic!("leader");
    };
    let Join::Waiter(same) = cache.coalesce(&key) else {
        panic!("waiter");
    };
    let Join::Waiter(other) = cache.coalesce(&key) else {
        panic!("waiter");
    };
    let varied = response(
        200,
        &[("cache-control", "max-age=60"), ("vary", "accept-language")],
    );
    let entry = fill(&cache, &english, &varied, &[b"en"]).expect("stored");
    leader.publish(entry);
    let timeout = Duration::from_secs(1);
    assert!(matches!(
        cache
            .wait(same, &headers(&[("accept-language", "en")]), timeout)
            .await,
        Coalesced::Hit(_)
    ));
    assert!(matches!(
        cache
            .wait(other, &headers(&[("accept-language", "fr")]), timeout)
            .await,
        Coalesced::GoToOrigin(crate::cache::Release::OtherVariant)
    ));
    assert_eq!(cache.snapshot().coalesced_waits, 2);
}

#[test]
fn a_body_over_the_limit_is_not_stored_and_counts_nothing() {
    let cache = cache();
    let rules = CacheRules {
        max_object_size: 4,
        ..CacheRules::default()
    };
    let request = get("/a", &[("host", "h")]);
    let response = response(200, &[("cache-control", "max-age=60")]);
    let Cacheability::Store(plan) = verdict(&request, &response, &rules) else {
        panic!("storable");
    };
    let mut collector = BodyCollector::new(plan.max_body);
    collector.push(&Bytes::from_static(b"too long"));
    assert!(matches!(collector.finish(None), Collected::Skip(_)));
    assert_eq!(cache.snapshot().stores, 0);
}
