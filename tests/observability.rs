//! Observability against real tools: `promtool check metrics` on what /metrics serves,
//! `promtool check rules` and `test rules` on the shipped alert rules, the resource sampler
//! against `/proc` after burning CPU and touching memory, and a real Prometheus server
//! scraping Sluice on loopback.
//!
//! Tests that need promtool or prometheus (Debian's `prometheus` package) skip when it is
//! missing, unless `SLUICE_REQUIRE_TOOLS=1`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Origin, eventually, get, proxy_to};
use http_body_util::{BodyExt, Empty};
use sluice::metrics::Metrics;
use sluice::metrics::resources::ResourceSampler;

fn alerts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/alerts")
}

/// Runs `promtool` with `args`, feeding `stdin`; returns (success, stdout + stderr).
fn promtool(args: &[&str], dir: &Path, stdin: &[u8]) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool could not start");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let output = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

fn check_metrics(text: &[u8]) {
    let (ok, report) = promtool(&["check", "metrics"], Path::new("."), text);
    assert!(
        ok && report.trim().is_empty(),
        "promtool check metrics reported problems:\n{report}\n---\n{}",
        String::from_utf8_lossy(text)
    );
}

#[tokio::test]
async fn promtool_finds_no_problem_in_what_metrics_serves() {
    if !common::tool_available("promtool") {
        return;
    }
    let origin = Origin::fixed("hello").await;
    let app = proxy_to(&[origin.addr]).await;
    let (response, _) = get(app.addr().unwrap(), "/").await;
    assert_eq!(response.status(), 200);
    // The request is recorded once its body is done, which may be just after the client has it.
    let admin = app.admin_addr().unwrap();
    eventually("the request to be recorded", || async move {
        let (_, body) = get(admin, "/metrics").await;
        String::from_utf8_lossy(&body).contains("sluice_requests_total")
    })
    .await;
    let (response, body) = get(admin, "/metrics").await;
    assert_eq!(response.status(), 200);
    check_metrics(&body);
    app.shutdown().await;
}

#[test]
fn promtool_finds_no_problem_in_the_resource_metrics() {
    if !common::tool_available("promtool") {
        return;
    }
    // The registry as the app will have it once the sampler is wired in.
    let metrics = Metrics::new().unwrap();
    let mut sampler = ResourceSampler::new(metrics.registry())
        .unwrap()
        .with_memory_budget(Some(1 << 30));
    sampler.sample().unwrap();
    sampler.sample().unwrap();
    let text = metrics.render();
    let rendered = String::from_utf8_lossy(&text);
    for name in [
        "process_cpu_seconds_total",
        "sluice_host_cpu_seconds_total{mode=\"idle\"}",
        "sluice_host_memory_available_bytes",
        "sluice_host_network_receive_bytes_total{interface=\"lo\"}",
    ] {
        assert!(rendered.contains(name), "{name} is missing:\n{rendered}");
    }
    check_metrics(&text);
}

#[test]
fn promtool_checks_and_unit_tests_the_alert_rules() {
    if !common::tool_available("promtool") {
        return;
    }
    let dir = alerts_dir();
    let (ok, report) = promtool(&["check", "rules", "sluice-rules.yml"], &dir, b"");
    assert!(ok, "promtool check rules failed:\n{report}");
    let (ok, report) = promtool(&["test", "rules", "sluice-rules.test.yml"], &dir, b"");
    assert!(ok, "promtool test rules failed:\n{report}");
}

/// User plus system CPU seconds and resident bytes, read straight from `/proc/self`.
fn proc_self() -> (f64, u64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 1..]
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let rss_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    (ticks as f64 / clock_ticks(), rss_kb * 1024)
}

/// `USER_HZ` as the C library reports it.
fn clock_ticks() -> f64 {
    let out = Command::new("getconf").arg("CLK_TCK").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

fn within(value: f64, low: f64, high: f64, tolerance: f64) -> bool {
    value >= low * (1.0 - tolerance) && value <= high * (1.0 + tolerance)
}

#[test]
fn sampled_cpu_and_memory_match_proc_after_burning_cpu_and_touching_memory() {
    assert_eq!(
        clock_ticks(),
        sluice::metrics::resources::CLOCK_TICKS_PER_SECOND,
        "the sampler's clock tick does not match this system's"
    );
    let registry = prometheus::Registry::new();
    let mut sampler = ResourceSampler::new(&registry).unwrap();
    let (cpu_at_start, _) = proc_self();
    // Burn at least 1.5 s of CPU on a thread, measured as CPU time, not wall time.
    std::thread::spawn(move || {
        let mut x: u64 = 1;
        while proc_self().0 < cpu_at_start + 1.5 {
            for i in 0..2_000_000u64 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
            }
        }
        x
    })
    .join()
    .unwrap();
    // 200 MiB, every page written.
    let memory = std::hint::black_box(vec![1u8; 200 << 20]);

    let (cpu_before, rss_before) = proc_self();
    let snapshot = sampler.sample().unwrap();
    let (cpu_after, rss_after) = proc_self();
    let cpu = snapshot.process.cpu_seconds;
    let rss = snapshot.process.resident_bytes as f64;
    assert!(cpu >= cpu_at_start + 1.5, "cpu {cpu} s");
    assert!(rss >= (200 << 20) as f64, "rss {rss}");
    assert!(
        within(cpu, cpu_before, cpu_after, 0.05),
        "sampled {cpu} s, /proc said {cpu_before}..{cpu_after}"
    );
    assert!(
        within(rss, rss_before as f64, rss_after as f64, 0.05),
        "sampled {rss} B, /proc said {rss_before}..{rss_after}"
    );
    // And the exported metrics say the same as the snapshot.
    let families = registry.gather();
    let value = |name: &str| {
        families
            .iter()
            .find(|f| f.name() == name)
            .and_then(|f| f.get_metric().first())
            .map(|m| m.get_counter().get_value() + m.get_gauge().get_value())
            .unwrap()
    };
    assert!((value("process_cpu_seconds_total") - cpu).abs() < 1e-6);
    assert_eq!(value("process_resident_memory_bytes"), rss);
    drop(memory);
}

/// A child process killed (by its PID) when the test ends, passing or not.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_sluice_and_answers_a_query() {
    if !common::tool_available("prometheus") {
        return;
    }
    let origin = Origin::fixed("hello").await;
    let app = proxy_to(&[origin.addr]).await;
    let admin = app.admin_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {}\n\
             scrape_configs:\n  - job_name: sluice\n    static_configs:\n      - targets: ['{admin}']\n",
            alerts_dir().join("sluice-rules.yml").display()
        ),
    )
    .unwrap();
    let port = free_port();
    let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("prometheus could not start");
    let prometheus = KillOnDrop(child);

    let client = common::h1_client();
    let url = format!("http://127.0.0.1:{port}/api/v1/query?query=sluice_config_generation");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let result = loop {
        let request = http::Request::get(&url)
            .body(Empty::new().map_err(|never| match never {}).boxed())
            .unwrap();
        if let Ok(Ok(response)) =
            tokio::time::timeout(Duration::from_secs(5), client.request(request)).await
            && let Ok(body) = response.into_body().collect().await
        {
            let doc: serde_json::Value =
                serde_json::from_slice(&body.to_bytes()).unwrap_or_default();
            if let Some(first) = doc["data"]["result"].as_array().and_then(|r| r.first()) {
                break first.clone();
            }
        }
        if tokio::time::Instant::now() > deadline {
            let log = std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap();
            panic!("prometheus returned no sluice_config_generation in 60 s; its log:\n{log}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(result["metric"]["job"], "sluice");
    assert_eq!(result["metric"]["instance"], admin.to_string());
    assert_eq!(result["value"][1], "1", "{result}");
    drop(prometheus);
    app.shutdown().await;
}

/// Every metric name Sluice exports once the sampler is wired in, plus the two the cache and
/// pool code are to export (`sluice_cache_requests_total`, `sluice_backend_healthy`).
fn exported_names() -> Vec<String> {
    let metrics = Metrics::new().unwrap();
    // Vec metrics appear in a gather only once a label set exists.
    metrics.route("r").observe(200, 0.01, 1);
    metrics.route("r").observe_upstream(0.01);
    metrics.listener("l").tls_errors.inc();
    metrics.upstream_error("r", sluice::metrics::UpstreamErrorKind::Connect);
    metrics.reloaded(sluice::metrics::ReloadOutcome::Success, 1);
    let mut sampler = ResourceSampler::new(metrics.registry())
        .unwrap()
        .with_memory_budget(Some(1));
    sampler.sample().unwrap();
    let mut names: Vec<String> = metrics
        .registry()
        .gather()
        .iter()
        .map(|f| f.name().to_string())
        .collect();
    names.push(sluice::metrics::totals::CACHE_REQUESTS.to_string());
    names.push(sluice::metrics::totals::BACKEND_HEALTHY.to_string());
    names
}

/// The `sluice_*` and `process_*` names in a PromQL text, histogram suffixes removed.
fn referenced_names(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let bytes = text.as_bytes();
    for prefix in ["sluice_", "process_"] {
        let mut from = 0;
        while let Some(at) = text[from..].find(prefix).map(|i| i + from) {
            let boundary = at == 0
                || !(bytes[at - 1].is_ascii_alphanumeric() || b"_:".contains(&bytes[at - 1]));
            let end = text[at..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(text.len(), |i| i + at);
            if boundary {
                let name = &text[at..end];
                let base = ["_bucket", "_count", "_sum"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s).filter(|b| b.ends_with("_seconds")))
                    .unwrap_or(name);
                found.push(base.to_string());
            }
            from = end;
        }
    }
    found
}

fn grafana_exprs(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, child) in map {
                match (key.as_str(), child) {
                    ("expr", serde_json::Value::String(expr)) => out.push(expr.clone()),
                    _ => grafana_exprs(child, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|i| grafana_exprs(i, out)),
        _ => {}
    }
}

#[test]
fn grafana_dashboard_and_alert_rules_query_only_exported_metrics() {
    let exported = exported_names();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("config/grafana/sluice.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(dashboard["uid"], "sluice-overview");
    let mut exprs = Vec::new();
    grafana_exprs(&dashboard["panels"], &mut exprs);
    assert!(exprs.len() >= 30, "only {} queries", exprs.len());
    let rules = std::fs::read_to_string(alerts_dir().join("sluice-rules.yml")).unwrap();
    for text in exprs.iter().map(String::as_str).chain([rules.as_str()]) {
        for name in referenced_names(text) {
            assert!(
                exported.contains(&name),
                "{name} is queried but not exported: {text}"
            );
        }
    }
    // Every panel query parses as PromQL, once Grafana's variables are filled in.
    if !common::tool_available("promtool") {
        return;
    }
    let mut file = String::from("groups:\n  - name: grafana\n    rules:\n");
    for (i, expr) in exprs.iter().enumerate() {
        let expr = expr
            .replace("$__rate_interval", "1m")
            .replace("$job", ".*")
            .replace("$instance", ".*");
        file.push_str(&format!(
            "      - record: grafana:panel_{i}\n        expr: {}\n",
            serde_json::Value::String(expr)
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("grafana.yml"), file).unwrap();
    let (ok, report) = promtool(&["check", "rules", "grafana.yml"], dir.path(), b"");
    assert!(ok, "a Grafana query does not parse:\n{report}");
}
