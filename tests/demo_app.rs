//! The demo app over a real socket: `sluice::demo::serve` on 127.0.0.1:0, in-process, driven
//! by hyper's client. Covers every route, the caching headers, conditional requests and edits.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{
    ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, DATE, ETAG, HeaderName, IF_MATCH,
    IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED, LOCATION,
};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use sluice::demo::{DemoApp, DemoOptions, serve};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Generous: the machine is shared.
const DEADLINE: Duration = Duration::from_secs(30);
const PRODUCTS: usize = 2_000;

struct Demo {
    addr: SocketAddr,
    client: Client<HttpConnector, Full<Bytes>>,
    stop: Option<oneshot::Sender<()>>,
    server: JoinHandle<std::io::Result<()>>,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|error| panic!("{error}: {:?}", self.body))
    }

    fn header(&self, name: HeaderName) -> &str {
        self.headers
            .get(&name)
            .map(|value| value.to_str().unwrap())
            .unwrap_or_else(|| panic!("no {name} header"))
    }
}

async fn start() -> Demo {
    let app: Arc<DemoApp> = tokio::task::spawn_blocking(|| {
        DemoApp::open(DemoOptions {
            products: PRODUCTS,
            path: None,
        })
    })
    .await
    .unwrap()
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, app, async move {
        let _ = stopped.await;
    }));
    let client = Client::builder(TokioExecutor::new()).build_http();
    Demo {
        addr,
        client,
        stop: Some(stop),
        server,
    }
}

impl Demo {
    async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(HeaderName, &str)],
        body: &str,
    ) -> Answer {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr));
        for (name, value) in headers {
            request = request.header(name, *value);
        }
        let request = request
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap();
        let response = tokio::time::timeout(DEADLINE, self.client.request(request))
            .await
            .unwrap()
            .unwrap();
        let (parts, body) = response.into_parts();
        let body = tokio::time::timeout(DEADLINE, body.collect())
            .await
            .unwrap()
            .unwrap()
            .to_bytes();
        Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    async fn get(&self, path: &str) -> Answer {
        self.send(Method::GET, path, &[], "").await
    }

    async fn get_with(&self, path: &str, headers: &[(HeaderName, &str)]) -> Answer {
        self.send(Method::GET, path, headers, "").await
    }

    async fn stop(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(DEADLINE, self.server)
            .await
            .unwrap()
            .unwrap()
    }
}

const SURROGATE_KEY: HeaderName = HeaderName::from_static("surrogate-key");

fn is_strong_etag(tag: &str) -> bool {
    tag.starts_with('"') && tag.ends_with('"') && tag.len() > 2
}

#[tokio::test]
async fn product_by_id_carries_every_caching_header() {
    let demo = start().await;
    let answer = demo.get("/products/123").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.header(CONTENT_TYPE), "application/json");
    assert_eq!(
        answer.header(CACHE_CONTROL),
        "public, max-age=60, stale-while-revalidate=30"
    );
    assert!(is_strong_etag(answer.header(ETAG)));
    assert!(httpdate::parse_http_date(answer.header(LAST_MODIFIED)).is_ok());
    assert!(httpdate::parse_http_date(answer.header(DATE)).is_ok());
    let product = answer.json();
    assert_eq!(product["id"], 123);
    let category = product["category"].as_str().unwrap();
    assert_eq!(
        answer.header(SURROGATE_KEY),
        format!("product-123 category-{category} products")
    );
    for field in ["sku", "name", "description", "updated_at"] {
        assert!(product[field].is_string(), "{field} in {product}");
    }
    for field in ["price_cents", "stock"] {
        assert!(product[field].is_i64(), "{field} in {product}");
    }
    demo.stop().await.unwrap();
}

#[tokio::test]
async fn the_same_product_has_the_same_etag_in_two_fresh_catalogues() {
    let (first, second) = (start().await, start().await);
    let (a, b) = (
        first.get("/products/123").await,
        second.get("/products/123").await,
    );
    assert_eq!(a.header(ETAG), b.header(ETAG));
    assert_eq!(a.body, b.body);
    first.stop().await.unwrap();
    second.stop().await.unwrap();
}

#[tokio::test]
async fn if_none_match_with_current_etag_gets_304() {
    let demo = start().await;
    let first = demo.get("/products/7").await;
    let etag = first.header(ETAG).to_string();
    let again = demo
        .get_with("/products/7", &[(IF_NONE_MATCH, &etag)])
        .await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    assert!(again.body.is_empty());
    assert_eq!(again.header(ETAG), etag);
    assert_eq!(again.header(CACHE_CONTROL), first.header(CACHE_CONTROL));
    assert!(again.headers.contains_key(DATE));
    let other = demo
        .get_with("/products/7", &[(IF_NONE_MATCH, "\"something-else\"")])
        .await;
    assert_eq!(other.status, StatusCode::OK);
    demo.stop().await.unwrap();
}

#[tokio::test]
async fn if_modified_since_last_modified_gets_304_and_an_earlier_date_gets_200() {
    let demo = start().await;
    let first = demo.get("/products/8").await;
    let last_modified = first.header(LAST_MODIFIED).to_string();
    let same = demo
        .get_with("/products/8", &[(IF_MODIFIED_SINCE, &last_modified)])
        .await;
    assert_eq!(same.status, StatusCode::NOT_MODIFIED);
    let earlier = httpdate::fmt_http_date(
        httpdate::parse_http_date(&last_modified).unwrap() - Duration::from_secs(1),
    );
    let older = demo
        .get_with("/products/8", &[(IF_MODIFIED_SINCE, &earlier)])
        .await;
    assert_eq!(older.status, StatusCode::OK);
    demo.stop().await.unwrap();
}

#[tokio::test]
async fn head_is_get_without_a_body() {
    let demo = start().await;
    let get = demo.get("/products/9").await;
    let head = demo.send(Method::HEAD, "/products/9", &[], "").await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.body.is_empty());
    assert_eq!(head.header(CONTENT_LENGTH), get.body.len().to_string());
    assert_eq!(head.header(ETAG), get.header(ETAG));
    demo.stop().await.unwrap();
}

#[tokio::test]
async fn missing_or_malformed_product_ids_get_404() {
    let demo = start().await;
    for path in [
        "/products/999999",
        "/products/0",
        "/products/abc",
        "/products/-1",
        "/nowhere",
    ] {
        let answer = demo.get(path).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}");
        assert!(answer.json()["error"].is_string());
        assert!(answer.headers.contains_key(DATE));
    }
    demo.stop().await.unwrap();
}

#[tokio::test]
async fn category_pages_are_in_id_order_and_link_to_the_next_page() {
    let demo = start().await;
    let first = demo.get("/products?category=books&per_page=5").await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.header(CACHE_CONTROL), "public, max-age=10");
    assert_eq!(first.header(SURROGATE_KEY), "products category-books");
    assert!(is_strong_etag(first.header(ETAG)));
    assert!(first.headers.contains_key(LAST_MODIFIED));
    let page = first.json();
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 5);
    assert!(items.iter().all(|item| item["category"] == "books"));
    let ids: Vec<i64> = items
        .iter()
        .map(|item| item["id"].as_i64().unwrap())
        .collect();
    assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "{ids:?}");
    let next = page["next"].as_str().unwrap();
    assert_eq!(next, "/products?category=books&page=2&per_page=5");
    let second = demo.get(next).await.json();
    let first_of_second = second["items"][0]["id"].as_i64().unwrap();
    assert!(first_of_second > *ids.last().unwrap());
    let cursor = demo
        .get(&format!(
            "/products?category=books&per_page=5&after={}",
            ids[4]
        ))
        .await
        .json();
    assert_eq!(cursor["items"], second["items"]);
    demo.stop().await.unwrap();
}

#[tokio::test]
async fn product_list_defaults_to_twenty_and_caps_at_a_hundred() {
    let demo = start().await;
    let default = demo.get("/products").await;
    assert_eq!(default.header(SURROGATE_KEY), "products");
    let default = default.json();
    assert_eq!(default["items"].as_array().unwrap().len(), 20);
    assert_eq!(default["items"][0]["id"], 1);
    let capped = demo.get("/products?per_page=1000").await.json();
    assert_eq!(capped["items"].as_array().unwrap().len(), 100);
    assert_eq!(capped["per_page"], 100);
    let past_the_end = demo.get("/products?page=1000").await.json();
    assert_eq!(past_the_end["items"].as_array().unwrap().len(), 0);
    assert!(past_the_end["next"].is_null());
    demo.stop().await.unwrap();
}

#[tokio::test]
async fn malformed_list_parameters_get_400() {
    let demo = start().await;
    for path in [
        "/products?page=0",
        "/products?per_page=x",
        "/products?category=Books!",
        "/products?q=%zz",
    ] {
        assert_eq!(
            demo.get(path).await.status,
            StatusCode::BAD_REQUEST,
            "{path}"
        );
    }
    demo.stop().await.unwrap();
}

#[tokio::test]
async fn search_finds_a_product_by_the_words_of_its_name() {
    let demo = start().await;
    let product = demo.get("/products/42").await.json();
    let name = product["name"].as_str().unwrap().to_lowercase();
    let query = name.replace(' ', "+");
    let answer = demo.get(&format!("/search?q={query}&per_page=100")).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.header(CACHE_CONTROL), "public, max-age=10");
    assert_eq!(answer.header(SURROGATE_KEY), "products search");
    assert!(is_strong_etag(answer.header(ETAG)));
    let found = answer.json();
    let items = found["items"].as_array().unwrap();
    assert!(
        items.iter().any(|item| item["id"] == 42),
        "{name} not in {found}"
    );
    let prefix: String = name
        .split(' ')
        .next_back()
        .unwrap()
        .chars()
        .take(3)
        .collect();
    let by_prefix = demo.get(&format!("/search?q={prefix}")).await.json();
    assert!(!by_prefix["items"].as_array().unwrap().is_empty());
    demo.stop().await.unwrap();
}

#[tokio::test]
async fn search_without_a_word_gets_400() {
    let demo = start().await;
    assert_eq!(demo.get("/search").await.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        demo.get("/search?q=%22+*").await.status,
        StatusCode::BAD_REQUEST
    );
    demo.stop().await.unwrap();
}

#[tokio::test]
async fn create_update_and_delete_a_product() {
    let demo = start().await;
    let body =
        json!({"name": "Test Brass Lamp", "category": "lamps", "price_cents": 4999, "stock": 3})
            .to_string();
    let created = demo
        .send(
            Method::POST,
            "/products",
            &[(CONTENT_TYPE, "application/json")],
            &body,
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let location = created.header(LOCATION).to_string();
    let product = created.json();
    assert_eq!(location, format!("/products/{}", product["id"]));
    assert!(product["sku"].as_str().unwrap().starts_with("LAM-"));
    assert!(product["id"].as_i64().unwrap() > PRODUCTS as i64);

    let fetched = demo.get(&location).await;
    assert_eq!(fetched.status, StatusCode::OK);
    assert_eq!(fetched.json(), product);
    let old_etag = fetched.header(ETAG).to_string();
    assert_eq!(created.header(ETAG), old_etag);

    let updated = demo
        .send(
            Method::PUT,
            &location,
            &[],
            &json!({"price_cents": 3999}).to_string(),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK);
    assert_eq!(updated.json()["price_cents"], 3999);
    assert_eq!(updated.json()["name"], "Test Brass Lamp");
    assert_ne!(updated.header(ETAG), old_etag);
    let after = demo
        .get_with(&location, &[(IF_NONE_MATCH, &old_etag)])
        .await;
    assert_eq!(after.status, StatusCode::OK);
    assert_eq!(after.json()["price_cents"], 3999);
    let found = demo.get("/search?q=test+brass+lamp").await.json();
    assert_eq!(found["items"][0]["id"], product["id"]);

    let deleted = demo.send(Method::DELETE, &location, &[], "").await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert!(deleted.body.is_empty());
    assert_eq!(demo.get(&location).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        demo.send(Method::DELETE, &location, &[], "").await.status,
        StatusCode::NOT_FOUND
    );
    demo.stop().await.unwrap();
}

#[tokio::test]
async fn an_update_that_changes_nothing_still_changes_the_etag() {
    let demo = start().await;
    let before = demo.get("/products/11").await;
    let updated = demo.send(Method::PUT, "/products/11", &[], "{}").await;
    assert_eq!(updated.status, StatusCode::OK);
    let after = demo.get("/products/11").await;
    assert_ne!(after.header(ETAG), before.header(ETAG));
    assert_ne!(after.json()["updated_at"], before.json()["updated_at"]);
    let list_before = demo.get("/products?per_page=1").await;
    assert!(
        httpdate::parse_http_date(list_before.header(LAST_MODIFIED)).unwrap()
            >= httpdate::parse_http_date(before.header(LAST_MODIFIED)).unwrap()
    );
    demo.stop().await.unwrap();
}

#[tokio::test]
async fn bad_json_gets_400_with_a_short_error() {
    let demo = start().await;
    for (method, path, body) in [
        (Method::POST, "/products", "{not json"),
        (Method::POST, "/products", "{\"name\": \"x\"}"),
        (Method::PUT, "/products/5", "[1, 2"),
        (Method::PUT, "/products/5", "{\"price_cents\": \"cheap\"}"),
    ] {
        let answer = demo.send(method, path, &[], body).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{path} {body}");
        let error = answer.json()["error"].as_str().unwrap().to_string();
        assert!(error.len() < 200, "{error}");
        assert_eq!(answer.header(CACHE_CONTROL), "no-store");
    }
    demo.stop().await.unwrap();
}

#[tokio::test]
async fn invalid_fields_get_422_and_a_taken_sku_gets_409() {
    let demo = start().await;
    let unknown = json!({"name": "Thing", "category": "spaceships", "price_cents": 1}).to_string();
    assert_eq!(
        demo.send(Method::POST, "/products", &[], &unknown)
            .await
            .status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let negative = json!({"price_cents": -1}).to_string();
    assert_eq!(
        demo.send(Method::PUT, "/products/3", &[], &negative)
            .await
            .status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let taken = demo.get("/products/1").await.json()["sku"]
        .as_str()
        .unwrap()
        .to_string();
    let duplicate = json!({"sku": taken}).to_string();
    assert_eq!(
        demo.send(Method::PUT, "/products/2", &[], &duplicate)
            .await
            .status,
        StatusCode::CONFLICT
    );
    demo.stop().await.unwrap();
}

#[tokio::test]
async fn non_json_content_type_gets_415_and_a_huge_body_gets_413() {
    let demo = start().await;
    let form = demo
        .send(
            Method::POST,
            "/products",
            &[(CONTENT_TYPE, "text/plain")],
            "{}",
        )
        .await;
    assert_eq!(form.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let huge = format!("{{\"description\": \"{}\"}}", "x".repeat(100_000));
    assert_eq!(
        demo.send(Method::PUT, "/products/4", &[], &huge)
            .await
            .status,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    demo.stop().await.unwrap();
}

#[tokio::test]
async fn if_match_with_a_stale_etag_gets_412_and_the_current_one_goes_through() {
    let demo = start().await;
    let current = demo.get("/products/12").await.header(ETAG).to_string();
    let body = json!({"stock": 1}).to_string();
    let stale = demo
        .send(
            Method::PUT,
            "/products/12",
            &[(IF_MATCH, "\"stale\"")],
            &body,
        )
        .await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    let fresh = demo
        .send(Method::PUT, "/products/12", &[(IF_MATCH, &current)], &body)
        .await;
    assert_eq!(fresh.status, StatusCode::OK);
    let delete = demo
        .send(Method::DELETE, "/products/12", &[(IF_MATCH, &current)], "")
        .await;
    assert_eq!(delete.status, StatusCode::PRECONDITION_FAILED);
    demo.stop().await.unwrap();
}

#[tokio::test]
async fn static_assets_are_immutable_and_revalidate() {
    let demo = start().await;
    for (name, content_type) in [
        ("app.css", "text/css"),
        ("app.js", "text/javascript"),
        ("logo.svg", "image/svg+xml"),
    ] {
        let answer = demo.get(&format!("/static/{name}")).await;
        assert_eq!(answer.status, StatusCode::OK, "{name}");
        assert!(answer.header(CONTENT_TYPE).starts_with(content_type));
        assert_eq!(
            answer.header(CACHE_CONTROL),
            "public, max-age=31536000, immutable"
        );
        assert!(!answer.body.is_empty());
        let again = demo
            .get_with(
                &format!("/static/{name}"),
                &[(IF_NONE_MATCH, answer.header(ETAG))],
            )
            .await;
        assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    }
    assert_eq!(
        demo.get("/static/missing.png").await.status,
        StatusCode::NOT_FOUND
    );
    demo.stop().await.unwrap();
}

#[tokio::test]
async fn index_page_links_the_routes_and_healthz_is_ok() {
    let demo = start().await;
    let index = demo.get("/").await;
    assert_eq!(index.status, StatusCode::OK);
    assert!(index.header(CONTENT_TYPE).starts_with("text/html"));
    let html = String::from_utf8(index.body.to_vec()).unwrap();
    for link in [
        "/products/1",
        "/products?category=",
        "/search?q=",
        "/static/app.css",
        "/healthz",
    ] {
        assert!(html.contains(link), "{link}");
    }
    let health = demo.get("/healthz").await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(&health.body[..], b"ok");
    demo.stop().await.unwrap();
}

#[tokio::test]
async fn user_orders_are_private() {
    let demo = start().await;
    let answer = demo.get("/users/1/orders").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.header(CACHE_CONTROL).starts_with("private"));
    assert_eq!(answer.header(SURROGATE_KEY), "user-1");
    assert_eq!(answer.json()["user_id"], 1);
    assert_eq!(
        demo.get("/users/5000/orders").await.status,
        StatusCode::NOT_FOUND
    );
    demo.stop().await.unwrap();
}

#[tokio::test]
async fn a_wrong_method_gets_405_with_allow() {
    let demo = start().await;
    let answer = demo.send(Method::DELETE, "/products", &[], "").await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(answer.header(ALLOW), "GET, HEAD, POST");
    assert_eq!(
        demo.send(Method::POST, "/search?q=x", &[], "").await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(
        demo.send(Method::PUT, "/healthz", &[], "").await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    demo.stop().await.unwrap();
}

#[tokio::test]
async fn keep_alive_connections_do_not_hold_up_shutdown() {
    let demo = start().await;
    let addr = demo.addr;
    // Several requests on the client's pooled keep-alive connection, which stays open.
    for id in 1..=5 {
        assert_eq!(
            demo.get(&format!("/products/{id}")).await.status,
            StatusCode::OK
        );
    }
    demo.stop().await.unwrap();
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still accepting after shutdown"
    );
}

#[tokio::test]
async fn concurrent_reads_and_writes_all_succeed() {
    let demo = Arc::new(start().await);
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..16_i64 {
        let demo = Arc::clone(&demo);
        tasks.spawn(async move {
            for round in 0..10_i64 {
                let id = 1 + (worker * 97 + round * 13) % PRODUCTS as i64;
                let answer = if round % 5 == 0 {
                    demo.send(
                        Method::PUT,
                        &format!("/products/{id}"),
                        &[],
                        &json!({"stock": round}).to_string(),
                    )
                    .await
                } else {
                    demo.get(&format!("/products/{id}")).await
                };
                assert_eq!(answer.status, StatusCode::OK);
            }
        });
    }
    while let Some(result) = tasks.join_next().await {
        result.unwrap();
    }
    let demo = Arc::try_unwrap(demo).ok().unwrap();
    demo.stop().await.unwrap();
}

#[tokio::test]
async fn one_connection_serves_several_requests_with_one_date_header_each() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let demo = start().await;
    let mut stream = tokio::net::TcpStream::connect(demo.addr).await.unwrap();
    let request = "GET /healthz HTTP/1.1\r\nHost: demo\r\n\r\n";
    stream
        .write_all(format!("{request}{request}").as_bytes())
        .await
        .unwrap();
    let mut received = Vec::new();
    let mut buffer = [0_u8; 4096];
    // Read until both responses are in (each ends with its two-byte body "ok").
    while String::from_utf8_lossy(&received)
        .matches("\r\n\r\nok")
        .count()
        < 2
    {
        let read = tokio::time::timeout(DEADLINE, stream.read(&mut buffer))
            .await
            .unwrap()
            .unwrap();
        assert!(
            read > 0,
            "connection closed early: {}",
            String::from_utf8_lossy(&received)
        );
        received.extend_from_slice(&buffer[..read]);
    }
    let text = String::from_utf8(received).unwrap().to_lowercase();
    assert_eq!(text.matches("http/1.1 200 ok").count(), 2, "{text}");
    assert_eq!(text.matches("\r\ndate: ").count(), 2, "{text}");
    assert!(!text.contains("connection: close"), "{text}");
    drop(stream);
    demo.stop().await.unwrap();
}

#[tokio::test]
async fn a_request_in_flight_when_shutdown_begins_still_gets_its_response() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut demo = start().await;
    let addr = demo.addr;
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let body = json!({"stock": 9}).to_string();
    let (first, rest) = body.split_at(4);
    let head = format!(
        "PUT /products/10 HTTP/1.1\r\nHost: demo\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream
        .write_all(format!("{head}{first}").as_bytes())
        .await
        .unwrap();
    // The server accepts in order, so once a later connection is served, this one is watched.
    let health = demo.get("/healthz").await;
    assert_eq!(health.status, StatusCode::OK);
    let _ = demo.stop.take().unwrap().send(());
    // Shutdown has begun once the listener is gone.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while tokio::net::TcpStream::connect(addr).await.is_ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the listener never closed"
        );
        tokio::task::yield_now().await;
    }
    stream.write_all(rest.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(DEADLINE, stream.read_to_end(&mut response))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    assert!(text.contains("\"stock\":9"), "{text}");
    tokio::time::timeout(DEADLINE, demo.server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
