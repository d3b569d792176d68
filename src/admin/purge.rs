//! `POST /admin/purge`: the CDN-style purge API.
//!
//! ```json
//! {"urls": ["https://shop.example/products/42"], "prefixes": ["https://shop.example/img/"],
//!  "tags": ["product-42"], "hosts": ["shop.example"], "everything": false,
//!  "soft": false, "dry_run": false}
//! ```
//! Every target kind is optional; at least one target is needed. A URL is keyed the way the
//! route that serves it keys a GET of it (its query rules: sorted, ignored or kept
//! parameters), as the `PURGE` method does, and matches every variant stored under that key;
//! a URL no caching route serves is matched as given. Scheme and host are case-insensitive,
//! and without a scheme both http and https match. Prefixes and hosts are matched as given.
//! The answer says how many entries matched (removed, marked stale, or in a dry run, that
//! would be).
//!
//! Needs `Authorization: Bearer <[purge] token>`, compared in constant time; without a
//! configured token the API refuses every purge. Every call, allowed or not, writes one audit
//! line (target `sluice::audit`).

use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde::Deserialize;

use crate::cache::{
    CacheKey, Credential, PurgeActor, PurgeMode, PurgeRequest, PurgeRun, PurgeTarget, audit,
};
use crate::config::{Config, route};
use crate::shared::Shared;

/// The largest request body accepted.
const MAX_BODY: usize = 1024 * 1024;

/// The JSON body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PurgeBody {
    #[serde(default)]
    urls: Vec<String>,
    #[serde(default)]
    prefixes: Vec<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    hosts: Vec<String>,
    #[serde(default)]
    everything: bool,
    #[serde(default)]
    soft: bool,
    #[serde(default)]
    dry_run: bool,
}

impl PurgeBody {
    fn into_request(self, config: &Config) -> PurgeRequest {
        let mut targets: Vec<PurgeTarget> = Vec::new();
        targets.extend(
            self.urls
                .iter()
                .map(|url| PurgeTarget::Url(keyed_url(config, url))),
        );
        targets.extend(self.prefixes.into_iter().map(PurgeTarget::Prefix));
        targets.extend(self.tags.into_iter().map(PurgeTarget::Tag));
        targets.extend(self.hosts.into_iter().map(PurgeTarget::Host));
        if self.everything {
            targets.push(PurgeTarget::Everything);
        }
        PurgeRequest {
            targets,
            mode: if self.soft {
                PurgeMode::Soft
            } else {
                PurgeMode::Hard
            },
            run: if self.dry_run {
                PurgeRun::DryRun
            } else {
                PurgeRun::Apply
            },
        }
    }
}

/// Answers `POST /admin/purge` from `peer`.
pub(super) async fn handle(
    shared: &Shared,
    request: Request<Incoming>,
    peer: Option<SocketAddr>,
) -> Response<Full<Bytes>> {
    let client = peer.map_or_else(|| "unknown".to_string(), |p| p.ip().to_string());
    let snapshot = shared.snapshot.load_full();
    let purge = &snapshot.config.purge;
    let authorised = purge.authorises(request.headers().get(header::AUTHORIZATION));
    let presented = request.headers().contains_key(header::AUTHORIZATION);
    let limited = http_body_util::Limited::new(request.into_body(), MAX_BODY);
    let body = match limited.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return error(StatusCode::PAYLOAD_TOO_LARGE, "body over 1 MiB"),
    };
    let parsed = serde_json::from_slice::<PurgeBody>(&body);
    let actor = PurgeActor {
        client: &client,
        channel: "admin",
        credential: if authorised {
            Credential::Token
        } else {
            Credential::None
        },
    };
    if !authorised {
        // What was asked for is audited even when refused (nothing when the body is bad).
        let request = parsed.unwrap_or_default().into_request(&snapshot.config);
        let (status, reason) = if !purge.has_token() {
            (StatusCode::FORBIDDEN, "no [purge] token is configured")
        } else if presented {
            (StatusCode::UNAUTHORIZED, "bad token")
        } else {
            (StatusCode::UNAUTHORIZED, "no token")
        };
        audit(actor, &request, Err(reason));
        let mut response = error(status, reason);
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"sluice purge\""),
            );
        }
        return response;
    }
    let body = match parsed {
        Ok(body) => body,
        Err(problem) => return error(StatusCode::BAD_REQUEST, &problem.to_string()),
    };
    let request = body.into_request(&snapshot.config);
    if request.targets.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "name at least one of urls, prefixes, tags, hosts or everything",
        );
    }
    let outcome = shared.cache.purge(&request);
    audit(actor, &request, Ok(&outcome));
    super::json(
        StatusCode::OK,
        &serde_json::json!({
            "status": "ok",
            "matched": outcome.matched,
            "bytes": outcome.bytes,
            "soft": outcome.mode == PurgeMode::Soft,
            "dry_run": outcome.run == PurgeRun::DryRun,
        }),
    )
}

/// `url` keyed as a GET of it is on the route that serves it, so that `?b=2&a=1` purges what
/// a route with `sort_query` stored as `?a=1&b=2`; as given when no caching route serves it
/// or it does not parse. A URL without a scheme stays without one (it matches both).
fn keyed_url(config: &Config, url: &str) -> String {
    let given = url.trim();
    let schemeless = !given.contains("://");
    let absolute = if schemeless {
        format!("http://{given}")
    } else {
        given.to_owned()
    };
    let Ok(uri) = absolute.parse::<http::Uri>() else {
        return url.to_owned();
    };
    let Some(authority) = uri.authority() else {
        return url.to_owned();
    };
    let rules = route::find(
        &config.routes,
        route::normalise_host(authority.as_str()),
        uri.path(),
    )
    .and_then(|index| config.routes.get(index))
    .and_then(|route| route.cache.as_ref())
    .map(|cache| &cache.rules.key);
    let Some(Ok(key)) = rules.map(|rules| CacheKey::for_url(rules, &uri)) else {
        return url.to_owned();
    };
    let primary = key.primary();
    match primary.strip_prefix("http://") {
        Some(rest) if schemeless => rest.to_owned(),
        _ => primary.to_owned(),
    }
}

fn error(status: StatusCode, problem: &str) -> Response<Full<Bytes>> {
    super::json(
        status,
        &serde_json::json!({"status": "error", "problem": problem}),
    )
}
