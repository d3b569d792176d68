//! The demo app's routes: one function from a request to a response, and a handler per route.
//!
//! Owns the URL space and which method each path accepts; database work goes through
//! `DemoApp::read`/`DemoApp::write`, headers through `reply.rs`.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, LAST_MODIFIED, LOCATION};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Body;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use super::DemoApp;
use super::assets::{self, INDEX};
use super::catalogue::{self, Product};
use super::edits::{self, NewProduct, ProductChanges, Written};
use super::generator::EPOCH_MS;
use super::params::{self, Paging};
use super::reply::{
    JSON, LIST_CACHE, PAGE_CACHE, PRIVATE_CACHE, PRODUCT_CACHE, Reply, Representation,
    RequestError, STATIC_CACHE,
};
use super::validators::{self, from_unix_ms, strong_etag, unix_ms};

/// Request bodies above this are refused with 413.
const MAX_BODY_BYTES: usize = 64 * 1024;

const READ_ONLY: &str = "GET, HEAD";

/// Answers one request. Never fails: every error becomes its response.
pub(crate) async fn handle<B>(
    app: &Arc<DemoApp>,
    request: Request<B>,
    now: SystemTime,
) -> Response<Full<Bytes>>
where
    B: Body<Data = Bytes> + Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let method = request.method().clone();
    let span = tracing::debug_span!("demo_request", %method, path = %request.uri().path());
    let is_read = matches!(method, Method::GET | Method::HEAD);
    let reply = match route(app, request, now).instrument(span).await {
        Ok(reply) => reply,
        Err(error) => error.reply(is_read),
    };
    reply.into_response(method == Method::HEAD, now)
}

async fn route<B>(
    app: &Arc<DemoApp>,
    request: Request<B>,
    now: SystemTime,
) -> Result<Reply, RequestError>
where
    B: Body<Data = Bytes> + Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (parts, body) = request.into_parts();
    let is_read = matches!(parts.method, Method::GET | Method::HEAD);
    let only_reads = |reply: Reply| {
        if is_read {
            Ok(reply)
        } else {
            Err(RequestError::MethodNotAllowed { allow: READ_ONLY })
        }
    };
    let segments: Vec<&str> = parts.uri.path().split('/').skip(1).collect();
    let query = parts.uri.query();
    let headers = &parts.headers;
    match (segments.as_slice(), &parts.method) {
        ([""], _) => only_reads(page(
            INDEX,
            "text/html; charset=utf-8",
            PAGE_CACHE,
            "index",
            headers,
        )),
        (["healthz"], _) => only_reads(
            Reply::new(StatusCode::OK, "text/plain; charset=utf-8", "ok")
                .header(CACHE_CONTROL, "no-store"),
        ),
        (["static", name], _) => {
            let asset = assets::asset(name).ok_or(RequestError::NotFound)?;
            only_reads(page(
                asset.body,
                asset.content_type,
                STATIC_CACHE,
                "static",
                headers,
            ))
        }
        (["products"], &Method::GET | &Method::HEAD) => list(app, query, headers).await,
        (["products"], &Method::POST) => create(app, headers, body, now).await,
        (["products"], _) => Err(RequestError::MethodNotAllowed {
            allow: "GET, HEAD, POST",
        }),
        (["products", id], method) => {
            let id = parse_id(id)?;
            match *method {
                Method::GET | Method::HEAD => product(app, id, headers).await,
                Method::PUT => update(app, id, headers, body, now).await,
                Method::DELETE => delete(app, id, headers, now).await,
                _ => Err(RequestError::MethodNotAllowed {
                    allow: "GET, HEAD, PUT, DELETE",
                }),
            }
        }
        (["search"], &Method::GET | &Method::HEAD) => search(app, query, headers).await,
        (["users", id, "orders"], &Method::GET | &Method::HEAD) => {
            orders(app, parse_id(id)?, headers).await
        }
        (["search"] | ["users", _, "orders"], _) => {
            Err(RequestError::MethodNotAllowed { allow: READ_ONLY })
        }
        _ => Err(RequestError::NotFound),
    }
}

/// Ids are positive decimal numbers; anything else names no resource.
fn parse_id(text: &str) -> Result<i64, RequestError> {
    match text.parse::<i64>() {
        Ok(id) if id > 0 && text.bytes().all(|b| b.is_ascii_digit()) => Ok(id),
        _ => Err(RequestError::NotFound),
    }
}

fn page(
    body: &'static str,
    content_type: &'static str,
    cache_control: &'static str,
    key: &str,
    headers: &HeaderMap,
) -> Reply {
    Representation {
        body: Bytes::from_static(body.as_bytes()),
        content_type,
        cache_control,
        surrogate_key: key.to_string(),
        last_modified: from_unix_ms(EPOCH_MS),
    }
    .reply(headers)
}

async fn product(app: &Arc<DemoApp>, id: i64, headers: &HeaderMap) -> Result<Reply, RequestError> {
    let product = app
        .read(move |connection| Ok(catalogue::product(connection, id)?))
        .await?;
    let product = product.ok_or(RequestError::NotFound)?;
    Ok(Representation {
        body: product.body()?,
        content_type: JSON,
        cache_control: PRODUCT_CACHE,
        surrogate_key: format!("product-{id} category-{} products", product.category),
        last_modified: from_unix_ms(product.updated_at_ms),
    }
    .reply(headers))
}

fn query_pairs(query: Option<&str>) -> Result<Vec<(String, String)>, RequestError> {
    params::pairs(query)
        .ok_or_else(|| RequestError::BadRequest("malformed query string".to_string()))
}

/// Drops the look-ahead row and says where the next page is, if there is one.
fn next_link(items: &mut Vec<Product>, paging: &Paging, base: &str) -> Option<String> {
    let per_page = usize::try_from(paging.per_page).unwrap_or(usize::MAX);
    if items.len() <= per_page {
        return None;
    }
    items.truncate(per_page);
    let last = items.last().map(|product| product.id).unwrap_or(0);
    Some(format!("{base}{}", paging.next(last)))
}

async fn list(
    app: &Arc<DemoApp>,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Result<Reply, RequestError> {
    let pairs = query_pairs(query)?;
    let paging = Paging::parse(&pairs).map_err(RequestError::BadRequest)?;
    let category = params::category(&pairs).map_err(RequestError::BadRequest)?;
    let slice = paging.slice();
    let filter = category.clone();
    let mut items = app
        .read(move |connection| Ok(catalogue::products(connection, filter.as_deref(), &slice)?))
        .await?;
    let (base, surrogate_key) = match &category {
        Some(slug) => (
            format!("/products?category={slug}&"),
            format!("products category-{slug}"),
        ),
        None => ("/products?".to_string(), "products".to_string()),
    };
    let next = next_link(&mut items, &paging, &base);
    let body = serde_json::to_vec(&serde_json::json!({
        "items": items, "page": paging.page, "per_page": paging.per_page, "next": next,
    }))?;
    Ok(Representation {
        body: body.into(),
        content_type: JSON,
        cache_control: LIST_CACHE,
        surrogate_key,
        last_modified: from_unix_ms(app.changed_at_ms()),
    }
    .reply(headers))
}

async fn search(
    app: &Arc<DemoApp>,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Result<Reply, RequestError> {
    let pairs = query_pairs(query)?;
    let typed = params::first(&pairs, "q")
        .ok_or_else(|| RequestError::BadRequest("q is required".to_string()))?;
    let fts = catalogue::fts_query(typed)
        .ok_or_else(|| RequestError::BadRequest("q must contain a word".to_string()))?;
    // Search pages by number only: rank order has no id cursor.
    let paging = Paging {
        after: None,
        ..Paging::parse(&pairs).map_err(RequestError::BadRequest)?
    };
    let slice = paging.slice();
    let mut items = app
        .read(move |connection| Ok(catalogue::search(connection, &fts, &slice)?))
        .await?;
    let next = next_link(
        &mut items,
        &paging,
        &format!("/search?q={}&", params::encode(typed)),
    );
    let body = serde_json::to_vec(&serde_json::json!({
        "query": typed, "items": items, "page": paging.page, "per_page": paging.per_page, "next": next,
    }))?;
    Ok(Representation {
        body: body.into(),
        content_type: JSON,
        cache_control: LIST_CACHE,
        surrogate_key: "products search".to_string(),
        last_modified: from_unix_ms(app.changed_at_ms()),
    }
    .reply(headers))
}

async fn orders(
    app: &Arc<DemoApp>,
    user_id: i64,
    headers: &HeaderMap,
) -> Result<Reply, RequestError> {
    let orders = app
        .read(move |connection| Ok(catalogue::orders_of_user(connection, user_id)?))
        .await?;
    let orders = orders.ok_or(RequestError::NotFound)?;
    Ok(Representation {
        body: serde_json::to_vec(&orders)?.into(),
        content_type: JSON,
        cache_control: PRIVATE_CACHE,
        surrogate_key: format!("user-{user_id}"),
        last_modified: from_unix_ms(orders.last_modified_ms),
    }
    .reply(headers))
}

/// Reads a JSON body of at most [`MAX_BODY_BYTES`]; a missing Content-Type is taken as JSON.
async fn json_body<T, B>(headers: &HeaderMap, body: B) -> Result<T, RequestError>
where
    T: DeserializeOwned,
    B: Body<Data = Bytes> + Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if let Some(content_type) = headers.get(CONTENT_TYPE) {
        let media = content_type
            .to_str()
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if media != "application/json" && !media.ends_with("+json") {
            return Err(RequestError::UnsupportedMediaType);
        }
    }
    let collected = Limited::new(body, MAX_BODY_BYTES)
        .collect()
        .await
        .map_err(|error| {
            if error
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                RequestError::PayloadTooLarge
            } else {
                RequestError::BadRequest("could not read the request body".to_string())
            }
        })?;
    serde_json::from_slice(&collected.to_bytes())
        .map_err(|error| RequestError::BadRequest(format!("invalid JSON: {error}")))
}

/// 201/200 with the product as stored now, its validators, and no caching of the reply.
fn written(app: &DemoApp, written: Written, status: StatusCode) -> Result<Reply, RequestError> {
    app.note_change(written.changed_at_ms);
    let product = written
        .product
        .ok_or_else(|| RequestError::Internal("write returned no product".to_string()))?;
    let body = product.body()?;
    let reply = Reply::new(status, JSON, body.clone())
        .header(ETAG, &strong_etag(&body))
        .header(
            LAST_MODIFIED,
            &httpdate::fmt_http_date(from_unix_ms(product.updated_at_ms)),
        )
        .header(CACHE_CONTROL, "no-store");
    Ok(match status {
        StatusCode::CREATED => reply.header(LOCATION, &format!("/products/{}", product.id)),
        _ => reply,
    })
}

async fn create<B>(
    app: &Arc<DemoApp>,
    headers: &HeaderMap,
    body: B,
    now: SystemTime,
) -> Result<Reply, RequestError>
where
    B: Body<Data = Bytes> + Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let input: NewProduct = json_body(headers, body).await?;
    let now_ms = unix_ms(now);
    let result = app
        .write(move |connection| Ok(edits::create(connection, input, now_ms)?))
        .await?;
    written(app, result, StatusCode::CREATED)
}

async fn update<B>(
    app: &Arc<DemoApp>,
    id: i64,
    headers: &HeaderMap,
    body: B,
    now: SystemTime,
) -> Result<Reply, RequestError>
where
    B: Body<Data = Bytes> + Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let changes: ProductChanges = json_body(headers, body).await?;
    let now_ms = unix_ms(now);
    let preconditions = headers.clone();
    let result = app
        .write(move |connection| {
            let allows = |etag: &str| validators::if_match_allows(&preconditions, etag);
            Ok(edits::update(connection, id, changes, now_ms, allows)?)
        })
        .await?;
    written(app, result, StatusCode::OK)
}

async fn delete(
    app: &Arc<DemoApp>,
    id: i64,
    headers: &HeaderMap,
    now: SystemTime,
) -> Result<Reply, RequestError> {
    let now_ms = unix_ms(now);
    let preconditions = headers.clone();
    let result = app
        .write(move |connection| {
            let allows = |etag: &str| validators::if_match_allows(&preconditions, etag);
            Ok(edits::delete(connection, id, now_ms, allows)?)
        })
        .await?;
    app.note_change(result.changed_at_ms);
    Ok(Reply::empty(StatusCode::NO_CONTENT).header(CACHE_CONTROL, "no-store"))
}
