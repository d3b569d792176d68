//! What it measures: the cache store's eviction choice. Sluice's store (sharded, byte budget,
//! S3-FIFO; `src/cache/store.rs`) against the crate candidates (quick_cache, TinyUFO,
//! moka; dev-dependencies used only here) and a plain byte-weighted LRU built like the store
//! (sharded `Mutex`), all holding the same `Arc<Entry>` values weighed by the same charge, on a
//! Zipf(0.9) trace over 100 000 URLs of 1-16 KiB with a budget of a tenth of their bytes.
//!
//! * Hit ratio (printed before the criterion runs, not timed by criterion): the Zipf trace
//!   alone, and the same trace with a one-pass scan of 100 000 cold URLs in its middle (hits
//!   counted on the Zipf requests only, after a warm-up fifth). The bytes each candidate holds
//!   at the end are printed against the budget.
//! * Hit latency (printed): the candidates take turns at batches of hit lookups; the fastest
//!   batch of each is shown, which a busy machine disturbs least.
//! * Throughput (criterion): `hit/*` is one lookup of a stored URL (the hit path: hash, lock,
//!   Vary check, `Arc` clone); `trace/*` replays 10 000 requests of the trace, storing on a
//!   miss; `hit_2_threads/*` is the hit path on two threads at once (time per lookup per
//!   thread); `objects/*` is a hit in Sluice's store holding 1 000 against 1 000 000 objects;
//!   `respond/*` is the same with what a hit then does with the entry (the header map cloned,
//!   fields and body copied out) for nginx's fields and a 1 KiB body.
//!
//! Run: `cargo bench --bench cache_store` (about four minutes on two cores);
//! `-- hit_ratio` or `-- hit_latency` for those printed figures alone, `-- hit/` (or any
//! criterion filter) for some timings alone. Criterion reports time per iteration; compare runs
//! on the same machine only.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // fixed, valid inputs

/// The binary's allocator (`src/main.rs`): a hit's clones and frees cost what they cost there.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use criterion::{Criterion, criterion_group};
use http::{HeaderMap, Request, Response, request, response};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use sluice::cache::{
    CacheKey, CacheRules, Cacheability, Entry, Found, KeyRules, RequestHead, ResponseHead, Store,
    StoreConfig, cacheability,
};

const KEYS: usize = 100_000;
const MAX_BODY: usize = 16 * 1024;
static BODY: [u8; MAX_BODY] = [b'x'; MAX_BODY];

/// Zipf over `0..n` by inverse CDF.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: usize, exponent: f64) -> Self {
        let mut cdf = Vec::with_capacity(n);
        let mut total = 0.0;
        for rank in 1..=n {
            total += 1.0 / (rank as f64).powf(exponent);
            cdf.push(total);
        }
        for value in &mut cdf {
            *value /= total;
        }
        Self { cdf }
    }

    fn sample(&self, rng: &mut SmallRng) -> usize {
        let u: f64 = rng.random();
        self.cdf.partition_point(|c| *c < u).min(self.cdf.len() - 1)
    }
}

/// A stable size in 1..=16 KiB for a URL id.
fn size_of(id: usize) -> usize {
    let mixed = (id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
    1024 + (mixed as usize % (MAX_BODY - 1024))
}

struct Fixture {
    rules: CacheRules,
    response: response::Parts,
    empty: HeaderMap,
}

impl Fixture {
    fn new() -> Self {
        let response = Response::builder()
            .status(200)
            .header("cache-control", "max-age=3600")
            .header("content-type", "text/html")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        Self {
            rules: CacheRules::default(),
            response,
            empty: HeaderMap::new(),
        }
    }

    fn request(&self, id: usize) -> request::Parts {
        Request::get(format!("/item/{id}?v=1"))
            .header("host", "bench.example")
            .body(())
            .unwrap()
            .into_parts()
            .0
    }

    fn key(&self, id: usize) -> CacheKey {
        CacheKey::new(
            &KeyRules::default(),
            "http",
            RequestHead::from(&self.request(id)),
        )
        .unwrap()
    }

    fn entry(&self, id: usize, size: usize) -> Entry {
        let request = self.request(id);
        let now = SystemTime::now();
        let Cacheability::Store(plan) = cacheability(
            RequestHead::from(&request),
            ResponseHead::from(&self.response),
            &self.rules,
            now,
            now,
        ) else {
            panic!("storable");
        };
        let key = CacheKey::new(&KeyRules::default(), "http", RequestHead::from(&request)).unwrap();
        Entry::new(
            &key,
            plan,
            self.response.status,
            self.response.headers.clone(),
            Bytes::from_static(&BODY[..size]),
        )
    }
}

/// What the benches drive.
trait Candidate: Sync {
    fn name(&self) -> &'static str;
    fn get(&self, key: &CacheKey, request: &HeaderMap) -> bool;
    fn put(&self, entry: Entry);
    /// Bytes held now, by the candidate's own count.
    fn bytes(&self) -> usize;
}

impl Candidate for Store {
    fn name(&self) -> &'static str {
        "sluice-s3fifo"
    }

    fn get(&self, key: &CacheKey, request: &HeaderMap) -> bool {
        matches!(self.find(key, request), Found::Entry(_))
    }

    fn put(&self, entry: Entry) {
        let _ = self.insert(entry);
    }

    fn bytes(&self) -> usize {
        Store::bytes(self)
    }
}

const NIL: usize = usize::MAX;

struct Node {
    key: Arc<str>,
    entry: Option<Arc<Entry>>,
    weight: usize,
    prev: usize,
    next: usize,
}

/// One shard of the plain LRU: a map to slab nodes in a doubly linked list, MRU at the head.
struct LruShard {
    map: HashMap<Arc<str>, usize>,
    nodes: Vec<Node>,
    free: Vec<usize>,
    head: usize,
    tail: usize,
    bytes: usize,
    budget: usize,
}

impl LruShard {
    fn unlink(&mut self, index: usize) {
        let (prev, next) = (self.nodes[index].prev, self.nodes[index].next);
        if prev == NIL {
            self.head = next
        } else {
            self.nodes[prev].next = next
        }
        if next == NIL {
            self.tail = prev
        } else {
            self.nodes[next].prev = prev
        }
    }

    fn push_front(&mut self, index: usize) {
        self.nodes[index].prev = NIL;
        self.nodes[index].next = self.head;
        if self.head != NIL {
            self.nodes[self.head].prev = index;
        }
        self.head = index;
        if self.tail == NIL {
            self.tail = index;
        }
    }

    fn get(&mut self, key: &str) -> Option<Arc<Entry>> {
        let index = *self.map.get(key)?;
        self.unlink(index);
        self.push_front(index);
        self.nodes[index].entry.clone()
    }

    fn put(&mut self, entry: Entry) {
        let weight = entry.charge();
        if weight > self.budget {
            return;
        }
        let key: Arc<str> = Arc::from(entry.primary());
        if let Some(index) = self.map.remove(&key) {
            self.remove(index);
        }
        while self.bytes + weight > self.budget && self.tail != NIL {
            let victim = self.tail;
            let victim_key = Arc::clone(&self.nodes[victim].key);
            self.map.remove(&victim_key);
            self.remove(victim);
        }
        let node = Node {
            key: Arc::clone(&key),
            entry: Some(Arc::new(entry)),
            weight,
            prev: NIL,
            next: NIL,
        };
        let index = match self.free.pop() {
            Some(index) => {
                self.nodes[index] = node;
                index
            }
            None => {
                self.nodes.push(node);
                self.nodes.len() - 1
            }
        };
        self.push_front(index);
        self.map.insert(key, index);
        self.bytes += weight;
    }

    fn remove(&mut self, index: usize) {
        self.unlink(index);
        self.bytes -= self.nodes[index].weight;
        self.nodes[index].entry = None;
        self.free.push(index);
    }
}

/// Plain LRU, sharded like the store.
struct Lru {
    shards: Vec<Mutex<LruShard>>,
}

impl Lru {
    fn new(budget: usize, shards: usize) -> Self {
        let shards = (0..shards)
            .map(|_| {
                Mutex::new(LruShard {
                    map: HashMap::new(),
                    nodes: Vec::new(),
                    free: Vec::new(),
                    head: NIL,
                    tail: NIL,
                    bytes: 0,
                    budget: budget / shards,
                })
            })
            .collect();
        Self { shards }
    }

    fn shard(&self, key: &str) -> &Mutex<LruShard> {
        &self.shards[(fxhash(key) % self.shards.len() as u64) as usize]
    }
}

fn fxhash(key: &str) -> u64 {
    key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

impl Candidate for Lru {
    fn name(&self) -> &'static str {
        "plain-lru"
    }

    fn get(&self, key: &CacheKey, request: &HeaderMap) -> bool {
        let found = self.shard(key.primary()).lock().unwrap().get(key.primary());
        found.is_some_and(|entry| entry.vary().matches(request))
    }

    fn put(&self, entry: Entry) {
        self.shard(entry.primary()).lock().unwrap().put(entry);
    }

    fn bytes(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap().bytes).sum()
    }
}

/// quick_cache (CLOCK-Pro-like, weighted, sharded `RwLock`), keyed by the URL.
struct Quick(quick_cache::sync::Cache<String, Arc<Entry>, Charge>);

#[derive(Clone)]
struct Charge;

impl quick_cache::Weighter<String, Arc<Entry>> for Charge {
    fn weight(&self, _key: &String, entry: &Arc<Entry>) -> u64 {
        entry.charge() as u64
    }
}

impl Candidate for Quick {
    fn name(&self) -> &'static str {
        "quick_cache"
    }

    fn get(&self, key: &CacheKey, request: &HeaderMap) -> bool {
        self.0
            .get(key.primary())
            .is_some_and(|entry| entry.vary().matches(request))
    }

    fn put(&self, entry: Entry) {
        self.0.insert(entry.primary().to_owned(), Arc::new(entry));
    }

    fn bytes(&self) -> usize {
        self.0.weight() as usize
    }
}

/// TinyUFO (S3-FIFO with a TinyLFU admission filter, lock-free), keyed by a hash of the URL
/// (it stores only the hash, so a hit must check the URL), weights in `u16`.
struct Ufo {
    cache: tinyufo::TinyUfo<u64, Arc<Entry>>,
    bytes: std::sync::atomic::AtomicUsize,
}

impl Candidate for Ufo {
    fn name(&self) -> &'static str {
        "tinyufo"
    }

    fn get(&self, key: &CacheKey, request: &HeaderMap) -> bool {
        self.cache
            .get(&fxhash(key.primary()))
            .is_some_and(|entry| entry.primary() == key.primary() && entry.vary().matches(request))
    }

    fn put(&self, entry: Entry) {
        use std::sync::atomic::Ordering::Relaxed;
        let weight = u16::try_from(entry.charge()).unwrap_or(u16::MAX);
        let hash = fxhash(entry.primary());
        if let Some(old) = self.cache.remove(&hash) {
            self.bytes
                .fetch_sub(old.charge().min(usize::from(u16::MAX)), Relaxed);
        }
        self.bytes.fetch_add(usize::from(weight), Relaxed);
        for evicted in self.cache.put(hash, Arc::new(entry), weight) {
            self.bytes.fetch_sub(usize::from(evicted.weight), Relaxed);
        }
    }

    fn bytes(&self) -> usize {
        self.bytes.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// moka (W-TinyLFU, weighted, eviction applied by batched maintenance), keyed by the URL.
struct Moka(moka::sync::Cache<String, Arc<Entry>>);

impl Candidate for Moka {
    fn name(&self) -> &'static str {
        "moka"
    }

    fn get(&self, key: &CacheKey, request: &HeaderMap) -> bool {
        self.0
            .get(key.primary())
            .is_some_and(|entry| entry.vary().matches(request))
    }

    fn put(&self, entry: Entry) {
        self.0.insert(entry.primary().to_owned(), Arc::new(entry));
    }

    fn bytes(&self) -> usize {
        self.0.run_pending_tasks();
        self.0.weighted_size() as usize
    }
}

fn total_bytes(fixture: &Fixture) -> usize {
    (0..KEYS)
        .map(|id| size_of(id) + 600)
        .sum::<usize>()
        .max(fixture.entry(0, 1).charge())
}

fn stores(fixture: &Fixture) -> Vec<Box<dyn Candidate>> {
    let budget = total_bytes(fixture) / 10;
    let config = StoreConfig::with_budget(budget);
    let objects = budget / (MAX_BODY / 2);
    vec![
        Box::new(Store::new(config)),
        Box::new(Quick(quick_cache::sync::Cache::with_weighter(
            objects,
            budget as u64,
            Charge,
        ))),
        Box::new(Ufo {
            cache: tinyufo::TinyUfo::new(budget, objects),
            bytes: Default::default(),
        }),
        Box::new(Moka(
            moka::sync::Cache::builder()
                .max_capacity(budget as u64)
                .weigher(|_: &String, entry: &Arc<Entry>| {
                    u32::try_from(entry.charge()).unwrap_or(u32::MAX)
                })
                .build(),
        )),
        Box::new(Lru::new(budget, config.shards.get())),
    ]
}

/// Replays `requests` Zipf requests (with `scan` cold URLs injected halfway); returns the hit
/// ratio of the Zipf requests.
fn replay(
    candidate: &dyn Candidate,
    fixture: &Fixture,
    keys: &[CacheKey],
    requests: usize,
    scan: usize,
) -> f64 {
    let zipf = Zipf::new(KEYS, 0.9);
    let mut rng = SmallRng::seed_from_u64(42);
    let (mut hits, mut total) = (0usize, 0usize);
    for index in 0..requests {
        if index == requests / 2 {
            for cold in 0..scan {
                let id = KEYS + cold;
                if !candidate.get(&fixture.key(id), &fixture.empty) {
                    candidate.put(fixture.entry(id, size_of(id)));
                }
            }
        }
        let id = zipf.sample(&mut rng);
        let hit = candidate.get(&keys[id], &fixture.empty);
        if index >= requests / 5 {
            total += 1;
            hits += usize::from(hit);
        }
        if !hit {
            candidate.put(fixture.entry(id, size_of(id)));
        }
    }
    hits as f64 / total as f64
}

fn hit_ratios() {
    let fixture = Fixture::new();
    let keys: Vec<CacheKey> = (0..KEYS).map(|id| fixture.key(id)).collect();
    let budget = total_bytes(&fixture) / 10;
    println!(
        "hit ratio, Zipf 0.9, {KEYS} URLs of 1-16 KiB, budget {budget} bytes (10% of theirs), \
         1 000 000 requests:"
    );
    for (label, scan) in [("zipf", 0), ("zipf + scan of 100 000 cold URLs", 100_000)] {
        for candidate in stores(&fixture) {
            let started = Instant::now();
            let ratio = replay(candidate.as_ref(), &fixture, &keys, 1_000_000, scan);
            println!(
                "  {label:<34} {:<14} {:.2}%  ({:.1?}, holds {:.1}% of the budget)",
                candidate.name(),
                ratio * 100.0,
                started.elapsed(),
                candidate.bytes() as f64 * 100.0 / budget as f64,
            );
        }
    }
}

/// The hit path timed by hand, robust to a busy machine: the candidates take turns at batches
/// of 20 000 lookups of stored URLs (Zipf-sampled), 25 turns each, and the fastest batch of
/// each is printed (the batch least disturbed by other processes).
fn hit_latency() {
    let fixture = Fixture::new();
    let keys: Vec<CacheKey> = (0..KEYS).map(|id| fixture.key(id)).collect();
    let zipf = Zipf::new(KEYS, 0.9);
    let mut rng = SmallRng::seed_from_u64(1);
    let sampled: Vec<usize> = (0..4096).map(|_| zipf.sample(&mut rng)).collect();
    let candidates = stores(&fixture);
    for candidate in &candidates {
        for id in &sampled {
            candidate.put(fixture.entry(*id, 1024));
        }
    }
    const BATCH: usize = 20_000;
    let mut best = vec![Duration::MAX; candidates.len()];
    for turn in 0..25 {
        for (index, candidate) in candidates.iter().enumerate() {
            let started = Instant::now();
            for lookup in 0..BATCH {
                let id = sampled[(lookup + turn * 7) % sampled.len()];
                black_box(candidate.get(&keys[id], &fixture.empty));
            }
            best[index] = best[index].min(started.elapsed());
        }
    }
    println!("hit latency, fastest of 25 interleaved batches of {BATCH} lookups:");
    for (candidate, best) in candidates.iter().zip(best) {
        println!("  {:<14} {:?}", candidate.name(), best / BATCH as u32);
    }
}

/// Random object ids to visit in turn: 65 536 of them, so that with 1 000 000 objects those
/// visited do not stay in the CPU caches between two visits. With 4 096, as before, they
/// partly did: `objects/1000000` measured 234-337 ns, and 495 ns with this order.
fn visit_order(count: usize) -> Vec<usize> {
    let mut rng = SmallRng::seed_from_u64(3);
    (0..1 << 16).map(|_| rng.random_range(0..count)).collect()
}

fn throughput(c: &mut Criterion) {
    let fixture = Fixture::new();
    let keys: Vec<CacheKey> = (0..KEYS).map(|id| fixture.key(id)).collect();
    let zipf = Zipf::new(KEYS, 0.9);
    let mut rng = SmallRng::seed_from_u64(1);
    let sampled: Vec<usize> = (0..4096).map(|_| zipf.sample(&mut rng)).collect();

    let mut hit = c.benchmark_group("hit");
    for candidate in stores(&fixture) {
        for id in &sampled {
            candidate.put(fixture.entry(*id, 1024));
        }
        let mut next = 0usize;
        hit.bench_function(candidate.name(), |b| {
            b.iter(|| {
                next = (next + 1) % sampled.len();
                black_box(candidate.get(&keys[sampled[next]], &fixture.empty))
            })
        });
    }
    hit.finish();

    let mut trace = c.benchmark_group("trace");
    trace.sample_size(20);
    for candidate in stores(&fixture) {
        let _ = replay(candidate.as_ref(), &fixture, &keys, 200_000, 0);
        let mut rng = SmallRng::seed_from_u64(9);
        trace.bench_function(candidate.name(), |b| {
            b.iter(|| {
                for _ in 0..10_000 {
                    let id = zipf.sample(&mut rng);
                    if !candidate.get(&keys[id], &fixture.empty) {
                        candidate.put(fixture.entry(id, size_of(id)));
                    }
                }
            })
        });
    }
    trace.finish();

    let mut threads = c.benchmark_group("hit_2_threads");
    for candidate in stores(&fixture) {
        for id in &sampled {
            candidate.put(fixture.entry(*id, 1024));
        }
        let candidate: &dyn Candidate = candidate.as_ref();
        threads.bench_function(candidate.name(), |b| {
            b.iter_custom(|iterations| {
                let started = Instant::now();
                std::thread::scope(|scope| {
                    for thread in 0..2usize {
                        let (keys, sampled, fixture) = (&keys, &sampled, &fixture);
                        scope.spawn(move || {
                            for index in 0..iterations as usize {
                                let id = sampled[(index + thread * 997) % sampled.len()];
                                black_box(candidate.get(&keys[id], &fixture.empty));
                            }
                        });
                    }
                });
                started.elapsed() / 2
            })
        });
    }
    threads.finish();

    let mut objects = c.benchmark_group("objects");
    objects.sample_size(30);
    for count in [1_000usize, 1_000_000] {
        let store = Store::new(StoreConfig::with_budget(2 << 30));
        let keys: Vec<CacheKey> = (0..count).map(|id| fixture.key(id)).collect();
        for id in 0..count {
            store.put(fixture.entry(id, 16));
        }
        let order = visit_order(count);
        let mut next = 0usize;
        objects.bench_function(format!("{count}"), |b| {
            b.iter(|| {
                next = (next + 1) % order.len();
                black_box(store.get(&keys[order[next]], &fixture.empty))
            })
        });
    }
    objects.finish();

    // A hit's own memory traffic, as the 1 000 000-object peers scenario makes it: the
    // origin's nine fields (nginx serving a 1 KiB file, eight stored), the header map built
    // as a hit builds it (`Entry::response_headers`), each field and the body copied out as
    // hyper's encoder and the kernel's send do.
    let mut respond = c.benchmark_group("respond");
    respond.sample_size(30);
    let origin = Response::builder()
        .status(200)
        .header("server", "nginx/1.24.0 (Ubuntu)")
        .header("date", "Wed, 02 Dec 2026 23:30:00 GMT")
        .header("content-type", "application/octet-stream")
        .header("content-length", "1024")
        .header("last-modified", "Wed, 02 Dec 2026 22:00:00 GMT")
        .header("connection", "keep-alive")
        .header("etag", "\"692f6f50-400\"")
        .header("accept-ranges", "bytes")
        .header("cache-control", "public, max-age=3600")
        .body(())
        .unwrap()
        .into_parts()
        .0;
    let nginx = Fixture {
        response: origin,
        ..Fixture::new()
    };
    for count in [1_000usize, 1_000_000] {
        let store = Store::new(StoreConfig::with_budget(6 << 30));
        let keys: Vec<CacheKey> = (0..count).map(|id| nginx.key(id)).collect();
        for id in 0..count {
            store.put(nginx.entry(id, 1024));
        }
        let order = visit_order(count);
        let mut next = 0usize;
        let mut out = Vec::with_capacity(4096);
        respond.bench_function(format!("{count}"), |b| {
            b.iter(|| {
                next = (next + 1) % order.len();
                let Found::Entry(entry) = store.find(&keys[order[next]], &nginx.empty) else {
                    panic!("stored");
                };
                let headers = entry.response_headers();
                let body = entry.body().clone();
                out.clear();
                for (name, value) in &headers {
                    out.extend_from_slice(name.as_str().as_bytes());
                    out.extend_from_slice(b": ");
                    out.extend_from_slice(value.as_bytes());
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(&body);
                black_box(&out);
            })
        });
    }
    respond.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = throughput
}

fn main() {
    // With a criterion filter (`-- hit/`), the hit ratios run only if the filter is `hit_ratio`.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with('-'))
        .collect();
    if filters.is_empty() || filters.iter().any(|f| "hit_ratio".contains(f.as_str())) {
        hit_ratios();
    }
    if filters.is_empty() || filters.iter().any(|f| "hit_latency".contains(f.as_str())) {
        hit_latency();
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
