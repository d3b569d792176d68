//! The `PURGE` method on a data listener (the Varnish / Squid convention): removes every
//! stored variant of the request's URL, keyed with the route's key rules.
//!
//! Allowed from the networks in `[purge] allow`, or with the bearer token of `[purge] token`
//! (compared in constant time). `Soft-Purge: 1` marks the entries stale instead of removing
//! them; a `Surrogate-Key` (or `Cache-Tag`, `xkey`) header purges those tags instead of the
//! URL. Every attempt, allowed or not, writes one audit line.

use std::sync::Arc;

use http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use http::{Response, request};

use super::{ProxyError, ResponseBody, Upstream};
use crate::cache::purge::tags_from_headers;
use crate::cache::{
    CacheKey, Credential, KeyRules, PurgeActor, PurgeMode, PurgeRequest, PurgeRun, PurgeTarget,
    RequestHead, audit,
};
use crate::shared::Shared;

/// Answers a `PURGE` request.
pub(super) fn handle(
    shared: &Arc<Shared>,
    upstream: &Upstream<'_>,
    parts: &request::Parts,
    request_id: &str,
) -> Result<Response<ResponseBody>, ProxyError> {
    let purge = &upstream.snapshot.config.purge;
    let client = upstream.conn.peer.ip().to_string();
    let presented = parts.headers.get(AUTHORIZATION);
    let credential = if purge.authorises(presented) {
        Credential::Token
    } else if purge.allows(upstream.conn.peer.ip()) {
        Credential::Network
    } else {
        Credential::None
    };
    let request = purge_request(upstream, parts);
    let actor = PurgeActor {
        client: &client,
        channel: "PURGE",
        credential,
    };
    if credential == Credential::None {
        let (error, reason) = if presented.is_some() {
            (ProxyError::PurgeUnauthorised, "bad token")
        } else if purge.has_token() {
            (ProxyError::PurgeUnauthorised, "no token")
        } else {
            (ProxyError::PurgeForbidden, "client not allowed")
        };
        audit(actor, &request, Err(reason));
        tracing::debug!(request_id, reason, "purge refused");
        return Err(error);
    }
    let outcome = shared.cache.purge(&request);
    audit(actor, &request, Ok(&outcome));
    let body = format!(
        "{{\"matched\":{},\"soft\":{}}}\n",
        outcome.matched,
        outcome.mode == PurgeMode::Soft
    );
    let mut response = Response::new(ResponseBody::full(body));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// The header asking for a soft purge (as Fastly's `Fastly-Soft-Purge: 1`).
static SOFT_PURGE: http::HeaderName = http::HeaderName::from_static("soft-purge");

fn purge_request(upstream: &Upstream<'_>, parts: &request::Parts) -> PurgeRequest {
    let tags = tags_from_headers(&parts.headers);
    let targets = if tags.is_empty() {
        let rules = upstream
            .route
            .config
            .cache
            .as_ref()
            .map(|cache| &cache.rules.key);
        vec![PurgeTarget::Url(url_key(upstream, parts, rules))]
    } else {
        tags.iter()
            .map(|tag| PurgeTarget::Tag(tag.to_string()))
            .collect()
    };
    let soft = parts
        .headers
        .get(&SOFT_PURGE)
        .is_some_and(|value| value.as_bytes() == b"1" || value.as_bytes() == b"true");
    PurgeRequest {
        targets,
        mode: if soft {
            PurgeMode::Soft
        } else {
            PurgeMode::Hard
        },
        run: PurgeRun::Apply,
    }
}

/// The URL the request names, keyed exactly as a GET of it on this route would be.
fn url_key(upstream: &Upstream<'_>, parts: &request::Parts, rules: Option<&KeyRules>) -> String {
    let default = KeyRules::default();
    let rules = rules.unwrap_or(&default);
    match CacheKey::new(rules, upstream.scheme(), RequestHead::from(parts)) {
        Ok(key) => key.primary().to_owned(),
        Err(_) => parts.uri.to_string(),
    }
}
