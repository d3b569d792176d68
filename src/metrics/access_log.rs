//! The JSON access log: one line per request, written off the request path.
//!
//! Requests hand a finished [`AccessRecord`] to [`AccessLog::log`], which serialises it and
//! queues the line on a bounded channel; one writer task batches lines into the file or stdout.
//! A full queue drops the line and counts it (`sluice_access_log_dropped_total`) rather than
//! slowing requests. [`AccessLog::reopen`] reopens the file, for logrotate (SIGUSR1).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use prometheus::IntCounter;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::config;

const QUEUE: usize = 16 * 1024;

/// What one request did, as logged.
#[derive(Debug, Serialize)]
pub struct AccessRecord<'a> {
    pub time: String,
    pub request_id: &'a str,
    pub client: SocketAddr,
    pub method: &'a str,
    pub host: &'a str,
    pub path: &'a str,
    pub protocol: &'a str,
    pub status: u16,
    pub bytes: u64,
    pub duration_ms: f64,
    pub route: &'a str,
    pub upstream: Option<String>,
    pub upstream_duration_ms: Option<f64>,
    /// How the cache answered (`hit`, `miss`, ...), on caching routes.
    pub cache: Option<&'a str>,
    pub error: Option<&'a str>,
}

/// Formats a wall-clock time as RFC 3339 with milliseconds, in UTC.
pub fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

/// Milliseconds as a float, for log fields.
pub fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

enum Message {
    Line(Vec<u8>),
    Reopen,
}

/// A handle to the access log; cheap to clone.
#[derive(Clone)]
pub struct AccessLog {
    sender: Option<mpsc::Sender<Message>>,
    dropped: IntCounter,
}

impl AccessLog {
    /// A log that writes nothing.
    pub fn off(dropped: IntCounter) -> AccessLog {
        AccessLog {
            sender: None,
            dropped,
        }
    }

    /// Starts the writer task for `target`; it ends when every handle is dropped.
    pub fn start(target: &config::AccessLog, dropped: IntCounter) -> std::io::Result<AccessLog> {
        let sink = match target {
            config::AccessLog::Off => return Ok(AccessLog::off(dropped)),
            config::AccessLog::Stdout => Sink::Stdout,
            config::AccessLog::File(path) => Sink::File(path.clone(), open(path)?),
        };
        let (sender, receiver) = mpsc::channel(QUEUE);
        tokio::task::spawn_blocking(move || write_lines(receiver, sink));
        Ok(AccessLog {
            sender: Some(sender),
            dropped,
        })
    }

    /// Whether lines are written at all (so callers can skip building records).
    pub fn enabled(&self) -> bool {
        self.sender.is_some()
    }

    /// Queues one line.
    pub fn log(&self, record: &AccessRecord<'_>) {
        let Some(sender) = &self.sender else { return };
        let mut line = Vec::with_capacity(320);
        if serde_json::to_writer(&mut line, record).is_err() {
            return;
        }
        line.push(b'\n');
        if sender.try_send(Message::Line(line)).is_err() {
            self.dropped.inc();
        }
    }

    /// Asks the writer to reopen its file (a no-op for stdout).
    pub fn reopen(&self) {
        if let Some(sender) = &self.sender
            && sender.try_send(Message::Reopen).is_err()
        {
            tracing::warn!("access log queue full; reopen request dropped");
        }
    }
}

enum Sink {
    Stdout,
    File(PathBuf, std::fs::File),
}

fn open(path: &PathBuf) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

/// The writer loop, on a blocking thread: batches whatever is queued, then flushes.
fn write_lines(mut receiver: mpsc::Receiver<Message>, mut sink: Sink) {
    let mut buffer: Vec<u8> = Vec::with_capacity(64 * 1024);
    while let Some(first) = receiver.blocking_recv() {
        let mut next = Some(first);
        while let Some(message) = next {
            match message {
                Message::Line(line) => buffer.extend_from_slice(&line),
                Message::Reopen => {
                    flush(&mut sink, &mut buffer);
                    if let Sink::File(path, file) = &mut sink {
                        match open(path) {
                            Ok(reopened) => *file = reopened,
                            Err(error) => {
                                tracing::error!(path = %path.display(), %error, "access log reopen failed")
                            }
                        }
                    }
                }
            }
            if buffer.len() > 60 * 1024 {
                flush(&mut sink, &mut buffer);
            }
            next = receiver.try_recv().ok();
        }
        flush(&mut sink, &mut buffer);
    }
}

fn flush(sink: &mut Sink, buffer: &mut Vec<u8>) {
    if buffer.is_empty() {
        return;
    }
    let result = match sink {
        Sink::Stdout => {
            let mut out = std::io::stdout().lock();
            out.write_all(buffer).and_then(|()| out.flush())
        }
        Sink::File(_, file) => file.write_all(buffer),
    };
    if let Err(error) = result {
        tracing::error!(%error, "access log write failed");
    }
    buffer.clear();
}
