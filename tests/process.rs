//! The `sluice` binary as ops run it: `check`, SIGTERM, memory while streaming large bodies,
//! and every file in config/.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;

const BIN: &str = env!("CARGO_BIN_EXE_sluice");

/// A `sluice` child process; killed on drop if still running.
struct Sluice {
    child: Child,
    addr: SocketAddr,
    admin: Option<SocketAddr>,
}

impl Drop for Sluice {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `sluice run -c FILE` and waits for its "listener ... on ADDR" line.
fn spawn(config: &Path) -> Sluice {
    spawn_with(&["run".as_ref(), "-c".as_ref(), config.as_os_str()])
}

/// Runs `sluice ARGS...` and waits for its "listener main on ADDR" line.
fn spawn_with(args: &[&std::ffi::OsStr]) -> Sluice {
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (sender, receiver) = std::sync::mpsc::channel();
    let (admin_sender, admin_receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(addr) = line.strip_prefix("sluice: listener main on ") {
                let _ = sender.send(addr.parse::<SocketAddr>().unwrap());
            }
            if let Some(addr) = line.strip_prefix("sluice: admin on ") {
                let _ = admin_sender.send(addr.parse::<SocketAddr>().unwrap());
            }
        }
    });
    let addr = receiver
        .recv_timeout(DEADLINE)
        .expect("sluice did not report its listener");
    // The admin line is printed right after the listener lines, when there is an admin API.
    let admin = admin_receiver.recv_timeout(Duration::from_secs(2)).ok();
    Sluice { child, addr, admin }
}

fn write_config(dir: &Path, backend: SocketAddr, extra: &str) -> std::path::PathBuf {
    let path = dir.join("sluice.toml");
    std::fs::write(
        &path,
        config_text(&[backend], extra).replace("[admin]\naddr = \"127.0.0.1:0\"\n", ""),
    )
    .unwrap();
    path
}

/// Peak resident memory of a process in MiB (VmHWM).
fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: f64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib / 1024.0
}

#[test]
fn check_on_a_broken_file_prints_file_line_and_key_and_exits_64() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.toml");
    std::fs::write(
        &path,
        "[[listeners]]\naddr = \"127.0.0.1:8080\"\n\n[pools.api]\nbackends = [{ addr = \"10.0.0.1\" }]\n\n[[routes]]\npool = \"api\"\n",
    )
    .unwrap();
    let output = Command::new(BIN)
        .args(["check", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let expected = format!(
        "{}:5: pools.api.backends[0].addr: \"10.0.0.1\" is missing a port",
        path.display()
    );
    assert!(stderr.contains(&expected), "{stderr}");
}

#[test]
fn check_on_a_valid_file_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "127.0.0.1:9".parse().unwrap(), "");
    let output = Command::new(BIN)
        .args(["check", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn every_file_in_config_is_valid() {
    // config/sluice.toml names dev certificates relative to itself; give it some.
    let dir = tempfile::tempdir().unwrap();
    sluice::certs::generate(&dir.path().join("certs"), &[sluice::certs::localhost()]).unwrap();
    let config_dir = dir.path().join("config");
    std::fs::create_dir_all(&config_dir).unwrap();
    let mut checked = 0;
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/config")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let copy = config_dir.join(path.file_name().unwrap());
            std::fs::copy(&path, &copy).unwrap();
            if let Err(error) = sluice::config::Config::load(&copy) {
                panic!("{} is invalid:\n{error}", path.display());
            }
            checked += 1;
        }
    }
    assert!(
        checked >= 2,
        "config/ should hold sluice.toml and demo.toml"
    );
    sluice::config::Config::parse(sluice::app::DEMO_CONFIG, "demo.toml", Path::new(".")).unwrap();
}

#[tokio::test]
async fn sigterm_during_a_slow_request_lets_it_finish_then_exits_0() {
    let (release, released) = tokio::sync::watch::channel(false);
    let origin = Origin::start(move |_| {
        let mut released = released.clone();
        async move {
            let _ = released.wait_for(|r| *r).await;
            Response::new(full("finished"))
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), origin.addr, "");
    let mut sluice = spawn(&config);
    let addr = sluice.addr;
    let request = tokio::spawn(async move { get(addr, "/slow").await });
    eventually("the slow request to reach the origin", || async {
        origin.count() == 1
    })
    .await;

    let status = Command::new("kill")
        .arg("-TERM")
        .arg(sluice.child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    // New connections are refused once the listener has closed.
    eventually("the listener to close", || async {
        tokio::net::TcpStream::connect(addr).await.is_err()
    })
    .await;
    release.send(true).unwrap();

    let (response, body) = request.await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body, "finished");
    let deadline = std::time::Instant::now() + DEADLINE;
    let exit = loop {
        if let Some(exit) = sluice.child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "sluice did not exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(exit.code(), Some(0));
}

const BIG: u64 = 256 * 1024 * 1024;

/// A body of `BIG` bytes produced in 64 KiB chunks, never held whole.
fn big_body() -> TestBody {
    let chunk = Bytes::from(vec![b'z'; 64 * 1024]);
    let count = BIG / chunk.len() as u64;
    let stream = futures_util::stream::iter(
        (0..count).map(move |_| Ok::<_, std::io::Error>(hyper::body::Frame::data(chunk.clone()))),
    );
    http_body_util::StreamBody::new(stream)
        .map_err(|e| Box::new(e) as _)
        .boxed()
}

#[tokio::test]
async fn a_256_mib_upload_and_download_stream_through_in_bounded_memory() {
    let origin = Origin::start(|request| async move {
        if request.method() == http::Method::POST {
            // Count the upload as it streams.
            let mut body = request.into_body();
            let mut total = 0u64;
            while let Some(frame) = body.frame().await {
                if let Ok(data) = frame.unwrap().into_data() {
                    total += data.len() as u64;
                }
            }
            Response::new(full(total.to_string()))
        } else {
            Response::builder()
                .header("content-length", BIG.to_string())
                .body(big_body())
                .unwrap()
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        origin.addr,
        "[limits]\nmax_request_body_bytes = \"1GiB\"\n",
    );
    let sluice = spawn(&config);
    let client = h1_client();

    let upload = Request::post(format!("http://{}/upload", sluice.addr))
        .header("content-length", BIG.to_string())
        .body(big_body())
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(120), client.request(upload))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, BIG.to_string());

    let download = Request::get(format!("http://{}/download", sluice.addr))
        .body(empty())
        .unwrap();
    let response = client.request(download).await.unwrap();
    let mut body = response.into_body();
    let mut total = 0u64;
    while let Some(frame) = tokio::time::timeout(DEADLINE, body.frame()).await.unwrap() {
        if let Ok(data) = frame.unwrap().into_data() {
            total += data.len() as u64;
        }
    }
    assert_eq!(total, BIG);
    let peak = peak_rss_mib(sluice.child.id());
    eprintln!("sluice peak RSS while streaming 2 x 256 MiB: {peak:.1} MiB");
    assert!(peak < 64.0, "peak RSS {peak:.1} MiB");
}

#[tokio::test]
async fn the_log_filter_changes_at_runtime_and_a_bad_one_is_refused() {
    let origin = Origin::fixed("ok").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sluice.toml");
    std::fs::write(&path, config_text(&[origin.addr], "")).unwrap();
    let sluice = spawn(&path);
    let admin = sluice.admin.expect("admin address");
    let client = h1_client();
    let request = Request::post(format!("http://{admin}/admin/log-level"))
        .body(full("sluice=debug,info"))
        .unwrap();
    let (response, body) = send(&client, request).await;
    assert_eq!(response.status(), StatusCode::OK, "{body:?}");
    let request = Request::post(format!("http://{admin}/admin/log-level"))
        .body(full("{\"level\": \"=[bad\"}"))
        .unwrap();
    let (response, _) = send(&client, request).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let (response, _) = get(sluice.addr, "/").await;
    assert_eq!(response.status(), StatusCode::OK);
}

/// `sluice proxy` with and without `--no-metrics`: the request series and the sampler's
/// resource series are there by default and absent with the flag.
#[tokio::test]
async fn proxy_no_metrics_leaves_out_request_and_resource_metrics() {
    let origin = Origin::fixed("hello").await;
    let to = origin.addr.to_string();
    for no_metrics in [false, true] {
        let mut args = vec![
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--to",
            &to,
            "--admin",
            "127.0.0.1:0",
            "--access-log",
            "off",
        ];
        if no_metrics {
            args.push("--no-metrics");
        }
        let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
        let sluice = spawn_with(&args);
        let (response, _) = get(sluice.addr, "/").await;
        assert_eq!(response.status(), StatusCode::OK);
        let admin = sluice.admin.expect("an admin line");
        let metrics =
            || async move { String::from_utf8_lossy(&get(admin, "/metrics").await.1).into_owned() };
        if no_metrics {
            let text = metrics().await;
            assert!(!text.contains("sluice_requests_total"), "{text}");
            assert!(!text.contains("sluice_host_cpus"), "{text}");
            assert!(text.contains("sluice_connections_accepted_total"), "{text}");
        } else {
            eventually("request and resource metrics", || async {
                let text = metrics().await;
                text.contains("sluice_requests_total") && text.contains("sluice_host_cpus")
            })
            .await;
        }
    }
}
