//! A stored response: head, body, times, freshness, Vary key and tags.
//!
//! An [`Entry`] is immutable once stored except for its purge state, which a soft purge flips
//! in place. A 304 refresh builds a new entry that replaces the old one in the store: a body of
//! up to [`PACK_BODY_MAX`] is packed again with the new header values (one copy per refresh,
//! and the old block is freed whole), a larger one is shared (`Bytes` is reference counted).
//! Hits hand out `Arc<Entry>`; the body is never copied per hit.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::SystemTime;

use bytes::Bytes;
use http::header::{
    ACCEPT_RANGES, CONNECTION, CONTENT_LENGTH, ETAG, HeaderName, HeaderValue, LAST_MODIFIED,
};
use http::{HeaderMap, StatusCode};

use super::eviction::Frequency;
use super::freshness::Freshness;
use super::key::CacheKey;
use super::policy::StorePlan;
use super::shape::{self, ShapeId};
use super::vary::VaryKey;

/// Fixed bytes charged per entry for what the budget cannot see directly: the entry struct,
/// its slots in the shard's maps, eviction queue, expiry heap and ghost list, and allocator
/// rounding. Calibrated on the peers harness (`objs-1000000`, 1 KiB bodies from nginx, 11
/// header fields): RSS grew 3.4 KiB per stored object while 48 + 192 bytes of overhead
/// charged 2.1 KiB, so RSS overshot a 3 GiB budget by 8 %. Checked again with values and body
/// in one block (`pack`): 1 000 000 such objects are charged 3 262 bytes each and RSS grew by
/// 3 342 bytes each (2.5 % over the charge). With 64-byte index slots (`store/index.rs`) RSS
/// grew by 84 bytes more per object, 32 of them the entry's own `block` field: 64 more here.
/// Once the stored map held exactly its fields (`pack`), RSS grew by 3 144 bytes per such
/// object (3 409 before; 1 000 000 objects over a 20 804 KiB start) against 3 358 charged;
/// with 176 less here such an object is charged 3 182, 1.2 % over what RSS shows. The
/// lengths table (`shape.rs`) added 2 bytes per field to the block and to the charge; RSS
/// per object read the same (3 144 bytes; charged 3 200).
pub(crate) const ENTRY_OVERHEAD: usize = std::mem::size_of::<Entry>() + 528;
/// Bytes charged per header field beyond its name and value: the `HeaderMap` bucket (name,
/// value, hash, links: 104 bytes; the stored map holds exactly its fields), its index slot
/// and its length in the block's table (charged also to the rare entry without a shape,
/// which has no table).
const FIELD_OVERHEAD: usize = 114;
/// Bodies up to this size share one allocation with the header values (see [`pack`]); a
/// larger body keeps its own, already copied once by the body collector.
pub(crate) const PACK_BODY_MAX: usize = 64 * 1024;
/// Bytes charged per tag beyond its text (its slot in the tag index).
const TAG_OVERHEAD: usize = 64;

/// Hop-by-hop fields (RFC 9110 7.6.1) are never stored (RFC 9111 3.1).
const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Whether an entry has been soft-purged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PurgeState {
    Valid,
    /// Marked stale by a soft purge: revalidated before the next use, still servable under
    /// stale-if-error.
    SoftPurged,
}

/// One stored response.
///
/// `repr(C)`, hot fields first: a hit on a store far larger than the CPU caches reads the
/// entry cold, and the fields it reads before answering (hit count, purge state, key extra,
/// Vary key, status) then share the cache line of the `Arc`'s reference counts, which the hit
/// writes anyway; the body and header map follow, then the freshness. With the compiler's
/// order the key extra sat 256 bytes in, a miss of its own on every hit (`perf annotate` of
/// `Store::find`, 1 000 000 objects).
#[derive(Debug)]
#[repr(C)]
pub struct Entry {
    /// Hits since admission, for eviction (kept here, not in the store's slot, because a hit
    /// reads the entry anyway: one cache miss fewer per hit on a large store).
    frequency: Frequency,
    state: AtomicU8,
    /// Whether the headers hold Surrogate-Control or a purge-tag field, which are stripped
    /// before clients: most entries have none, and then serving them strips nothing.
    surrogate_fields: bool,
    status: StatusCode,
    /// Which template a hit fills with the values in `block` (`shape.rs`); `None`: a hit
    /// clones `headers`.
    shape: Option<ShapeId>,
    extra: Box<str>,
    vary: VaryKey,
    body: Bytes,
    headers: HeaderMap,
    request_time: SystemTime,
    freshness: Freshness,
    keep_until: SystemTime,
    primary: Arc<str>,
    tags: Box<[Box<str>]>,
    charge: usize,
    /// The allocation the header values (and a packed body) are slices of, after the values'
    /// lengths when the entry has a shape (see [`pack`]).
    block: Bytes,
}

impl Entry {
    /// A new entry for `key` from a response the policy said to store, with its complete
    /// body. Fields the plan strips (hop-by-hop, `private="..."`, `no-cache="..."`) are
    /// removed, Content-Length is set to the body's length (except on a 204, RFC 9110 8.6),
    /// and a 200 advertises `Accept-Ranges: bytes`, since the cache answers ranges from it.
    pub fn new(
        key: &CacheKey,
        plan: StorePlan,
        status: StatusCode,
        mut headers: HeaderMap,
        body: Bytes,
    ) -> Self {
        strip_hop_by_hop(&mut headers);
        for name in &plan.strip {
            headers.remove(name);
        }
        if status != StatusCode::NO_CONTENT {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
        }
        if status == StatusCode::OK && !headers.contains_key(ACCEPT_RANGES) {
            headers.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        }
        Self::build(
            Arc::from(key.primary()),
            key.extra().into(),
            status,
            headers,
            body,
            plan,
        )
    }

    fn build(
        primary: Arc<str>,
        extra: Box<str>,
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
        plan: StorePlan,
    ) -> Self {
        let (headers, body, block, shape) = pack(&headers, body);
        let surrogate_fields = headers.contains_key(&super::directives::SURROGATE_CONTROL)
            || super::purge::TAG_FIELDS
                .iter()
                .any(|name| headers.contains_key(name));
        let mut entry = Self {
            surrogate_fields,
            primary,
            extra,
            status,
            shape,
            headers,
            body,
            request_time: plan.request_time,
            freshness: plan.freshness,
            vary: plan.vary,
            tags: plan.tags.into_boxed_slice(),
            keep_until: plan.keep_until,
            state: AtomicU8::new(0),
            frequency: Frequency::default(),
            charge: 0,
            block,
        };
        entry.charge = entry.weigh();
        entry
    }

    /// A copy with the headers and freshness of a 304 refresh and this body (see the module
    /// doc on when the body is shared).
    pub(crate) fn refreshed(&self, headers: HeaderMap, plan: StorePlan) -> Self {
        let plan = StorePlan {
            vary: self.vary.clone(),
            ..plan
        };
        Self::build(
            Arc::clone(&self.primary),
            self.extra.clone(),
            self.status,
            headers,
            self.body.clone(),
            plan,
        )
    }

    fn weigh(&self) -> usize {
        let headers = self
            .headers
            .iter()
            .map(|(name, value)| {
                name.as_str()
                    .len()
                    .saturating_add(value.len())
                    .saturating_add(FIELD_OVERHEAD)
            })
            .fold(0usize, usize::saturating_add);
        let tags = self
            .tags
            .iter()
            .map(|tag| tag.len().saturating_add(TAG_OVERHEAD))
            .fold(0usize, usize::saturating_add);
        [
            ENTRY_OVERHEAD,
            self.body.len(),
            headers,
            tags,
            self.primary.len(),
            self.extra.len(),
            self.vary.weight(),
        ]
        .into_iter()
        .fold(0usize, usize::saturating_add)
    }

    /// The URL part of the key.
    pub fn primary(&self) -> &str {
        &self.primary
    }

    /// The header/cookie part of the key.
    pub fn extra(&self) -> &str {
        &self.extra
    }

    /// The stored status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stored header fields (the origin's, less hop-by-hop fields, with Content-Length).
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The header map a response from this entry starts from: its stored fields, built from
    /// a template of their shape and the values in the block (one cache miss fewer on a large
    /// store than cloning `headers`, see `shape.rs`), or cloned from `headers`.
    pub fn response_headers(&self) -> HeaderMap {
        self.shape
            .and_then(|shape| shape::fill(shape, &self.headers, &self.block))
            .unwrap_or_else(|| self.headers.clone())
    }

    /// The complete body; cloning it is a reference count, not a copy.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// When the request that fetched the response was sent (RFC 9111 4.2.3 `request_time`).
    pub fn request_time(&self) -> SystemTime {
        self.request_time
    }

    /// When the response was received (RFC 9111 4.2.3 `response_time`).
    pub fn response_time(&self) -> SystemTime {
        self.freshness.response_time
    }

    /// The freshness computed when the response was stored or last refreshed.
    pub fn freshness(&self) -> &Freshness {
        &self.freshness
    }

    /// The secondary key: the request values of the response's Vary fields.
    pub fn vary(&self) -> &VaryKey {
        &self.vary
    }

    /// The purge tags (Surrogate-Key, Cache-Tag, xkey).
    pub fn tags(&self) -> &[Box<str>] {
        &self.tags
    }

    /// When the store may drop the entry: past its freshness, its stale windows and its
    /// revalidation window.
    pub fn keep_until(&self) -> SystemTime {
        self.keep_until
    }

    /// Bytes charged against the store's budget.
    pub fn charge(&self) -> usize {
        self.charge
    }

    /// Whether a soft purge has marked the entry stale.
    pub fn purge_state(&self) -> PurgeState {
        match self.state.load(Ordering::Acquire) {
            0 => PurgeState::Valid,
            _ => PurgeState::SoftPurged,
        }
    }

    /// The hit count eviction reads; a hit calls [`Frequency::touch`].
    pub(crate) fn frequency(&self) -> &Frequency {
        &self.frequency
    }

    pub(crate) fn soft_purge(&self) {
        self.state.store(1, Ordering::Release);
    }

    /// The allocation holding the header values and, up to [`PACK_BODY_MAX`], the body. The
    /// store's index keeps a clone of it next to the entry's pointer, for [`warm`].
    pub(crate) fn block(&self) -> &Bytes {
        &self.block
    }

    /// The stored ETag, if any.
    pub fn etag(&self) -> Option<&HeaderValue> {
        self.headers.get(ETAG)
    }

    /// The stored Last-Modified, if any.
    pub fn last_modified(&self) -> Option<&HeaderValue> {
        self.headers.get(LAST_MODIFIED)
    }

    /// Whether the headers hold a field stripped before clients (Surrogate-Control, tags).
    pub fn has_surrogate_fields(&self) -> bool {
        self.surrogate_fields
    }

    /// Whether the entry has a validator (ETag or Last-Modified) to revalidate with.
    pub fn has_validator(&self) -> bool {
        self.etag().is_some() || self.last_modified().is_some()
    }
}

/// The header values and, up to [`PACK_BODY_MAX`], the body, copied into one allocation that
/// every value and the body are slices of; with the map's shape id, the block starts with the
/// values' lengths (`shape::pack_lengths`), for hits to fill the shape's template with.
///
/// Why copy: hyper parses a response head into one read buffer and hands out values as slices
/// of it, so a stored value would keep that whole buffer (8 KiB or more) alive for as long as
/// the entry lives (with 1 KiB objects, RSS was measured at over four times the cache budget).
/// Why one allocation: a hit clones every value and the body (a reference count each) and
/// hyper then reads them all. With a value per allocation that was two cache misses per
/// field (its refcount, its bytes) once the store outgrew the CPU caches; with one block it is
/// one refcount and a few adjacent lines. The copy is made once per store, never per hit.
fn pack(headers: &HeaderMap, body: Bytes) -> (HeaderMap, Bytes, Bytes, Option<ShapeId>) {
    let mut shape = shape::shape_of(headers);
    let values: usize = headers.values().map(HeaderValue::len).sum();
    let pack_body = body.len() <= PACK_BODY_MAX;
    let packed_body = if pack_body { body.len() } else { 0 };
    let mut block = Vec::with_capacity(
        shape::table_len(headers)
            .saturating_add(values)
            .saturating_add(packed_body),
    );
    if shape.is_some() && !shape::pack_lengths(headers, &mut block) {
        block.clear();
        shape = None;
    }
    let table = block.len();
    for value in headers.values() {
        block.extend_from_slice(value.as_bytes());
    }
    if pack_body {
        block.extend_from_slice(&body);
    }
    let block = Bytes::from(block);
    // Room for the two fields every hit adds (Age, Cache-Status): a copy then never rehashes
    // its index table.
    let mut packed = HeaderMap::with_capacity(headers.len().saturating_add(2));
    let mut at = table;
    for (name, value) in headers {
        let end = at.saturating_add(value.len());
        let mut copy = match HeaderValue::from_maybe_shared(block.slice(at..end)) {
            Ok(copy) => copy,
            Err(_) => {
                // Never so for values from hyper, whose parser accepts what `HeaderValue`
                // does. A hit could not fill the template with this one: it clones the map.
                shape = None;
                value.clone()
            }
        };
        copy.set_sensitive(value.is_sensitive());
        packed.append(name.clone(), copy);
        at = end;
    }
    let body = if pack_body { block.slice(at..) } else { body };
    // `with_capacity` leaves room in the bucket vector for a third more fields or up to twice
    // as many (12 buckets of 104 bytes for 9 fields, 24 for 13), for the entry's whole life. A
    // clone allocates exactly `len` buckets and keeps the index table's size, so a hit still
    // adds its two fields without a rehash.
    (packed.clone(), body, block, shape)
}

/// How much of a block [`warm`] reads: the lengths table, the header values and the start of
/// the body.
const WARM_MAX: usize = 4096;

/// Starts loading what a hit is about to read from `block` (an entry's [`Entry::block`]): its
/// reference count and its first [`WARM_MAX`] bytes, one load per cache line. The store calls
/// it with the clone its index keeps, before it reads the entry: the index slot holds both
/// pointers, so these loads and the entry's own run side by side. Without it they waited,
/// one after another, for the entry, then its header map, then the block (values sliced
/// into the shape's template, then written by hyper; the body copied by the kernel). Safe
/// Rust has no prefetch instruction; plain loads whose result is kept (`black_box`) do the
/// same. Measured with 1 000 000 stored objects: `benches/cache_store.rs` `respond/1000000`
/// 2.77 -> 2.25 µs (criterion baseline A/B, `respond/1000` unchanged within noise), and on
/// live instances (`benches/peers/objects.sh`, the two builds alternated) 86 400 and 91 500
/// -> 94 600 and 101 700 hits/s, with the 1 000-object rate unchanged.
pub(crate) fn warm(block: &Bytes) {
    // `is_unique` reads the shared reference count with a plain load (no atomic write).
    let mut seen = u8::from(block.is_unique());
    let head = block.get(..block.len().min(WARM_MAX)).unwrap_or_default();
    for line in head.chunks(64) {
        seen ^= line.first().copied().unwrap_or(0);
    }
    std::hint::black_box(seen);
}

/// Removes hop-by-hop fields and those named in Connection (RFC 9110 7.6.1).
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|text| text.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_values_and_body_do_not_point_into_the_read_buffer() {
        // hyper's values and body frames are slices of one read buffer, like this one.
        let buffer = Bytes::from(b"max-age=60\r\nsecret".repeat(400));
        let mut headers = HeaderMap::new();
        let value = HeaderValue::from_maybe_shared(buffer.slice(0..10)).unwrap();
        headers.insert("cache-control", value);
        let mut secret = HeaderValue::from_maybe_shared(buffer.slice(12..18)).unwrap();
        secret.set_sensitive(true);
        headers.append("x-secret", secret);
        headers.append("x-secret", HeaderValue::from_static(""));
        let (packed, body, _, _) = pack(&headers, buffer.slice(100..1100));
        let range = buffer.as_ptr_range();
        assert_eq!(packed["cache-control"], "max-age=60");
        let secrets: Vec<_> = packed.get_all("x-secret").iter().collect();
        assert_eq!(secrets, ["secret", ""]);
        assert!(secrets[0].is_sensitive());
        assert_eq!(body, buffer.slice(100..1100));
        assert!(!range.contains(&body.as_ptr()));
        for value in packed.values().filter(|value| !value.is_empty()) {
            assert!(!range.contains(&value.as_bytes().as_ptr()));
        }
    }

    #[test]
    fn a_small_body_shares_the_values_allocation_and_a_large_one_keeps_its_own() {
        let mut headers = HeaderMap::new();
        headers.insert("etag", HeaderValue::from_static("\"v1\""));
        let (packed, body, block, shape) = pack(&headers, Bytes::from(vec![7u8; 1024]));
        let etag = packed["etag"].as_bytes().as_ptr_range();
        assert_eq!(
            etag.end,
            body.as_ptr(),
            "the body follows the values in one block"
        );
        // What `warm` loads from the index's clone is what a hit then reads: the lengths
        // table (one field: two bytes), the values, the body.
        assert!(shape.is_some());
        assert_eq!(block.as_ptr().wrapping_add(2), etag.start);
        assert_eq!(block.as_ptr_range().end, body.as_ptr_range().end);

        let large = Bytes::from(vec![7u8; PACK_BODY_MAX + 1]);
        let (_, body, block, _) = pack(&headers, large.clone());
        assert_eq!(
            block.len(),
            2 + 4,
            "the block holds the table and the values alone"
        );
        assert_eq!(
            body.as_ptr(),
            large.as_ptr(),
            "a large body is not copied again"
        );
    }

    #[test]
    fn a_hit_fills_the_shape_template_with_the_same_fields_the_entry_stores() {
        let mut headers = HeaderMap::new();
        headers.insert("etag", HeaderValue::from_static("\"v1\""));
        headers.append("link", HeaderValue::from_static("</a.css>; rel=preload"));
        headers.append("x-entry-shape", HeaderValue::from_static("custom"));
        headers.append("link", HeaderValue::from_static("</b.js>; rel=preload"));
        let mut secret = HeaderValue::from_static("token");
        secret.set_sensitive(true);
        headers.append("x-entry-secret", secret);
        headers.append("content-length", HeaderValue::from_static("4"));
        let (packed, _, block, shape) = pack(&headers, Bytes::from_static(b"body"));
        let filled = shape::fill(shape.unwrap(), &packed, &block).unwrap();
        let fields = |map: &HeaderMap| -> Vec<(String, String, bool)> {
            map.iter()
                .map(|(name, value)| {
                    let text = value.to_str().unwrap().to_owned();
                    (name.to_string(), text, value.is_sensitive())
                })
                .collect()
        };
        assert_eq!(fields(&filled), fields(&headers));
        assert_eq!(fields(&packed), fields(&headers));
    }

    #[test]
    fn a_value_too_long_for_the_lengths_table_leaves_the_block_without_one() {
        let mut headers = HeaderMap::new();
        let long = "v".repeat(usize::from(u16::MAX) + 1);
        headers.insert("x-entry-long", HeaderValue::from_str(&long).unwrap());
        let (packed, body, block, shape) = pack(&headers, Bytes::from_static(b"body"));
        assert!(shape.is_none());
        assert_eq!(packed["x-entry-long"].as_bytes().as_ptr(), block.as_ptr());
        assert_eq!(body, "body");
    }

    #[test]
    fn what_a_hit_reads_first_shares_the_cache_line_of_the_reference_counts() {
        // An `Arc`'s two counts take the first 16 bytes of a 64-byte line.
        let hot_end = std::mem::offset_of!(Entry, vary) + std::mem::size_of::<VaryKey>();
        assert!(hot_end <= 64 - 16, "the hot fields end at byte {hot_end}");
        assert!(std::mem::offset_of!(Entry, frequency) < std::mem::offset_of!(Entry, extra));
    }
}
