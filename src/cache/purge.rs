//! Purge: what to remove (or mark stale) and the tag index that makes purge by tag cost
//! O(tagged objects).
//!
//! Tags come from `Surrogate-Key` (space-separated), `Cache-Tag` (comma-separated) and `xkey`
//! (space- or comma-separated). Each store shard keeps a [`TagIndex`] under its own lock,
//! updated on every insert, replacement, eviction, expiry and purge, so the index never names
//! a removed entry. Purge by URL looks the primary key up; prefix and host walk one shard at a
//! time (never the whole store under one lock); everything clears each shard.
//!
//! A hard purge removes entries. A soft purge marks them stale in place: the next request
//! revalidates, and stale-if-error may still serve them. A dry run only counts.
//!
//! Cost (`benches/cache_purge.rs`: one tag on 100 000 of 200 000 stored objects, mimalloc,
//! the shared two-core development machine): hard purge 65 ms, soft 3.4 ms, dry run 2.8 ms.
//! A hard purge is bound by memory latency (about ten cache misses per removed entry); the
//! entries themselves are freed after the locks are released.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;

use http::HeaderMap;
use http::header::HeaderName;

use super::eviction::IdBuildHasher;
use super::key::host_of;

/// `Surrogate-Key`: space-separated tags (Fastly style).
pub static SURROGATE_KEY: HeaderName = HeaderName::from_static("surrogate-key");
/// `Cache-Tag`: comma-separated tags (Cloudflare style).
pub static CACHE_TAG: HeaderName = HeaderName::from_static("cache-tag");
/// `xkey`: space-separated tags (Varnish style).
pub static XKEY: HeaderName = HeaderName::from_static("xkey");

/// The fields tags are read from, stripped before clients unless the listener faces a CDN.
pub static TAG_FIELDS: [HeaderName; 3] = [
    HeaderName::from_static("surrogate-key"),
    HeaderName::from_static("cache-tag"),
    HeaderName::from_static("xkey"),
];

/// The longest tag kept; longer ones are ignored rather than truncated.
const MAX_TAG_LENGTH: usize = 256;
/// The most tags kept per response.
const MAX_TAGS: usize = 128;

/// The tags of a response, deduplicated, in the order found.
pub fn tags_from_headers(headers: &HeaderMap) -> Vec<Box<str>> {
    let mut tags: Vec<Box<str>> = Vec::new();
    let fields: [(&HeaderName, &[char]); 3] = [
        (&SURROGATE_KEY, &[' ', '\t']),
        (&CACHE_TAG, &[',']),
        (&XKEY, &[' ', '\t', ',']),
    ];
    for (name, separators) in fields {
        for value in headers.get_all(name) {
            let Ok(text) = value.to_str() else { continue };
            for tag in text.split(separators).map(str::trim) {
                if tag.is_empty() || tag.len() > MAX_TAG_LENGTH || tags.len() >= MAX_TAGS {
                    continue;
                }
                if !tags.iter().any(|known| known.as_ref() == tag) {
                    tags.push(tag.into());
                }
            }
        }
    }
    tags
}

/// What a purge selects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PurgeTarget {
    /// Every variant of one URL. Without a scheme (`example.com/a`) both http and https match.
    Url(String),
    /// Every URL starting with this (`https://example.com/products/`, or without a scheme).
    Prefix(String),
    /// Every entry carrying this tag.
    Tag(String),
    /// Every entry of this host (any port when the host names none).
    Host(String),
    Everything,
}

/// The kind of a purge target, as a metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PurgeKind {
    Url,
    Prefix,
    Tag,
    Host,
    Everything,
}

impl PurgeKind {
    /// Every kind, in the order of `CountersSnapshot::purges`.
    pub const ALL: [Self; 5] = [
        Self::Url,
        Self::Prefix,
        Self::Tag,
        Self::Host,
        Self::Everything,
    ];

    /// The metric label.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Url => "url",
            Self::Prefix => "prefix",
            Self::Tag => "tag",
            Self::Host => "host",
            Self::Everything => "everything",
        }
    }
}

impl PurgeTarget {
    /// The kind of this target, for counting.
    pub fn kind(&self) -> PurgeKind {
        match self {
            Self::Url(_) => PurgeKind::Url,
            Self::Prefix(_) => PurgeKind::Prefix,
            Self::Tag(_) => PurgeKind::Tag,
            Self::Host(_) => PurgeKind::Host,
            Self::Everything => PurgeKind::Everything,
        }
    }
}

/// Remove, or mark stale.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PurgeMode {
    Hard,
    Soft,
}

/// Apply, or only count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PurgeRun {
    Apply,
    DryRun,
}

/// One purge: its targets (an entry selected by several counts once), mode and run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PurgeRequest {
    pub targets: Vec<PurgeTarget>,
    pub mode: PurgeMode,
    pub run: PurgeRun,
}

/// What a purge did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PurgeOutcome {
    /// Entries selected (removed, marked or, in a dry run, that would be).
    pub matched: usize,
    /// Bytes those entries are charged.
    pub bytes: usize,
    pub mode: PurgeMode,
    pub run: PurgeRun,
}

/// A target as matched against primary keys: lowercased scheme and host.
#[derive(Debug)]
pub(crate) enum Matcher {
    /// Exact primary keys (one or two: with and without a scheme).
    Urls(Vec<String>),
    Prefix {
        text: String,
        schemeless: bool,
    },
    Tag(String),
    Host(String),
    Everything,
}

impl Matcher {
    pub(crate) fn new(target: &PurgeTarget) -> Self {
        match target {
            PurgeTarget::Url(url) => Self::Urls(match split_scheme(url) {
                Some((scheme, rest)) => vec![normalise(scheme, rest)],
                None => vec![normalise("http", url), normalise("https", url)],
            }),
            PurgeTarget::Prefix(prefix) => match split_scheme(prefix) {
                Some((scheme, rest)) => Self::Prefix {
                    text: normalise_prefix(scheme, rest),
                    schemeless: false,
                },
                None => Self::Prefix {
                    text: lowercase_host(prefix),
                    schemeless: true,
                },
            },
            PurgeTarget::Tag(tag) => Self::Tag(tag.trim().to_owned()),
            PurgeTarget::Host(host) => Self::Host(host.trim().to_ascii_lowercase()),
            PurgeTarget::Everything => Self::Everything,
        }
    }

    /// Whether a primary key is selected (for the walking matchers).
    pub(crate) fn selects(&self, primary: &str) -> bool {
        match self {
            Self::Urls(urls) => urls.iter().any(|url| url == primary),
            Self::Prefix { text, schemeless } => {
                let subject = if *schemeless {
                    primary.split_once("://").map_or(primary, |(_, rest)| rest)
                } else {
                    primary
                };
                subject.starts_with(text.as_str())
            }
            Self::Host(host) => {
                let key_host = host_of(primary);
                key_host == host
                    || (!host.contains(':')
                        && key_host
                            .strip_prefix(host.as_str())
                            .is_some_and(|rest| rest.starts_with(':')))
            }
            Self::Tag(_) => false,
            Self::Everything => true,
        }
    }
}

fn split_scheme(url: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = url.trim().split_once("://")?;
    let valid = !scheme.is_empty()
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    valid.then_some((scheme, rest))
}

/// `HTTPS://Example.COM:443` + `/a` -> `https://example.com/a`, as keys are built.
fn normalise(scheme: &str, rest: &str) -> String {
    let scheme = scheme.to_ascii_lowercase();
    let rest = rest.trim();
    let (host, path) = match rest.find(['/', '?']) {
        Some(index) => rest.split_at(index),
        None => (rest, "/"),
    };
    let host = host.to_ascii_lowercase();
    let default = if scheme == "https" { ":443" } else { ":80" };
    let host = host.strip_suffix(default).unwrap_or(&host);
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_owned()
    };
    format!("{scheme}://{host}{path}")
}

/// Like [`normalise`] but a bare host stays a bare host prefix (no `/` added).
fn normalise_prefix(scheme: &str, rest: &str) -> String {
    if rest.contains(['/', '?']) {
        normalise(scheme, rest)
    } else {
        format!(
            "{}://{}",
            scheme.to_ascii_lowercase(),
            rest.to_ascii_lowercase()
        )
    }
}

fn lowercase_host(prefix: &str) -> String {
    let prefix = prefix.trim();
    match prefix.find(['/', '?']) {
        Some(index) => {
            let (host, path) = prefix.split_at(index);
            format!("{}{path}", host.to_ascii_lowercase())
        }
        None => prefix.to_ascii_lowercase(),
    }
}

/// Tag -> entry ids, for one shard.
///
/// Tags are indexed by a 64-bit hash (foldhash, seeded per shard and process), not by their
/// text: the index then holds no copy of the strings, and removing an entry touches one table
/// bucket per tag instead of also reading and freeing a key string (the slow part of a large
/// purge). Two tags of one shard whose hashes collide (a 2^-64 chance per pair) would share a
/// set, so purging one would also remove the other's entries: a purge can only ever remove
/// more, never leave a purged entry behind.
#[derive(Debug, Default)]
pub(crate) struct TagIndex {
    tags: HashMap<u64, Tagged, IdBuildHasher>,
    hasher: foldhash::quality::RandomState,
}

/// The ids under one tag. Most tags (`product-123`) name one entry, so that case needs no set.
#[derive(Debug)]
enum Tagged {
    One(u64),
    Many(HashSet<u64, IdBuildHasher>),
}

impl TagIndex {
    fn hash(&self, tag: &str) -> u64 {
        self.hasher.hash_one(tag)
    }

    pub(crate) fn add(&mut self, id: u64, tags: &[Box<str>]) {
        for tag in tags {
            let hash = self.hash(tag);
            match self.tags.get_mut(&hash) {
                None => {
                    self.tags.insert(hash, Tagged::One(id));
                }
                Some(Tagged::Many(ids)) => {
                    ids.insert(id);
                }
                Some(tagged @ Tagged::One(_)) => {
                    if let Tagged::One(other) = *tagged
                        && other != id
                    {
                        *tagged = Tagged::Many(HashSet::from_iter([other, id]));
                    }
                }
            }
        }
    }

    pub(crate) fn remove(&mut self, id: u64, tags: &[Box<str>]) {
        for tag in tags {
            let hash = self.hash(tag);
            let empty = match self.tags.get_mut(&hash) {
                Some(Tagged::One(other)) => *other == id,
                Some(Tagged::Many(ids)) => {
                    ids.remove(&id);
                    ids.is_empty()
                }
                None => false,
            };
            if empty {
                self.tags.remove(&hash);
            }
        }
    }

    /// The ids carrying `tag` (a copy, since purging them edits the index).
    pub(crate) fn ids(&self, tag: &str) -> Vec<u64> {
        match self.tags.get(&self.hash(tag)) {
            Some(Tagged::One(id)) => vec![*id],
            Some(Tagged::Many(ids)) => ids.iter().copied().collect(),
            None => Vec::new(),
        }
    }

    pub(crate) fn tag_count(&self) -> usize {
        self.tags.len()
    }
}

/// How a purge was asked for, for the audit line.
#[derive(Clone, Copy, Debug)]
pub struct PurgeActor<'a> {
    /// The client's address.
    pub client: &'a str,
    /// `"admin"` (the JSON API) or `"PURGE"` (the method on a data listener).
    pub channel: &'static str,
    /// How the client proved it may purge.
    pub credential: Credential,
}

/// How a purge was authorised, as logged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Credential {
    /// The bearer token.
    Token,
    /// A client address in `[purge] allow`.
    Network,
    /// Nothing: the purge is refused.
    None,
}

impl Credential {
    /// The log value.
    pub fn as_str(&self) -> &'static str {
        match self {
            Credential::Token => "token",
            Credential::Network => "network",
            Credential::None => "none",
        }
    }
}

/// The most targets named in one audit line; the count is always given.
const AUDITED_TARGETS: usize = 20;

/// Writes the one audit line of a purge: who, what, how many matched, soft or hard, dry run;
/// or, for a refused purge, who and why (`refused`). Target `sluice::audit`, level info.
pub fn audit(actor: PurgeActor<'_>, request: &PurgeRequest, result: Result<&PurgeOutcome, &str>) {
    let mut targets = String::new();
    for target in request.targets.iter().take(AUDITED_TARGETS) {
        if !targets.is_empty() {
            targets.push(' ');
        }
        targets.push_str(target.kind().as_str());
        match target {
            PurgeTarget::Url(text)
            | PurgeTarget::Prefix(text)
            | PurgeTarget::Tag(text)
            | PurgeTarget::Host(text) => {
                targets.push(':');
                targets.extend(text.chars().filter(|c| !c.is_control()).take(512));
            }
            PurgeTarget::Everything => {}
        }
    }
    let soft = request.mode == PurgeMode::Soft;
    let dry_run = request.run == PurgeRun::DryRun;
    match result {
        Ok(outcome) => tracing::info!(
            target: "sluice::audit",
            client = actor.client,
            channel = actor.channel,
            credential = actor.credential.as_str(),
            targets = %targets,
            target_count = request.targets.len(),
            soft,
            dry_run,
            matched = outcome.matched,
            bytes = outcome.bytes,
            "purge"
        ),
        Err(refused) => tracing::warn!(
            target: "sluice::audit",
            client = actor.client,
            channel = actor.channel,
            credential = actor.credential.as_str(),
            targets = %targets,
            target_count = request.targets.len(),
            soft,
            dry_run,
            refused,
            "purge refused"
        ),
    }
}
