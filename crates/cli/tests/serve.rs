//! `lamina serve` with a WASI 0.3 service and a WASI 0.2 proxy component: answers over HTTP/1.1
//! and HTTP/2, per-request limits that end one request with a 5xx while the server goes on,
//! bounds on what clients send (each attack kept as a test named after it), the network rules,
//! graceful shutdown, metrics and the access log.
#![allow(clippy::expect_used, reason = "a test: a failed expectation is the failure, with its message")]

mod common;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{component, files_under, js_example, lamina, output};

/// A running `lamina serve`, stopped when dropped; its standard error is collected.
struct Served {
    child: Child,
    addr: SocketAddr,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    fn start(name: &str, extra: &[&str]) -> Self {
        Self::start_file(&component(name), extra)
    }

    fn start_file(file: &std::path::Path, extra: &[&str]) -> Self {
        let mut child = lamina()
            .args(["serve", "--no-cache", "--addr", "127.0.0.1:0"])
            .args(extra)
            .arg(file)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("lamina serve starts");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        let collected = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = collected.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let at = line.split_once(" on https://").or_else(|| line.split_once(" on http://"));
                if let Some((_, rest)) = at.filter(|_| line.starts_with("lamina: serving"))
                    && let Some(t) = tx.take()
                {
                    let _ = t.send(rest.trim_end_matches('/').to_owned());
                }
                sink.lock().expect("lock").push_str(&format!("{line}\n"));
            }
        });
        let Ok(addr) = rx.recv_timeout(Duration::from_secs(120)) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("lamina serve did not say where it listens:\n{}", collected.lock().expect("lock"));
        };
        Self { child, addr: addr.parse().expect("an address"), stderr: collected }
    }

    fn log(&self) -> String {
        self.stderr.lock().expect("lock").clone()
    }

    /// The log once it holds `needle` (a line written after the response may come a moment
    /// after it), or as it is after ten seconds.
    fn log_with(&self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.log();
            if log.contains(needle) || std::time::Instant::now() > deadline {
                return log;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// One HTTP/1.1 request on a fresh connection: status and body.
    fn request(&self, method: &str, path: &str, body: &[u8]) -> (u16, String) {
        let mut stream = TcpStream::connect(self.addr).expect("connects");
        stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
        let head = format!(
            "{method} {path} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            self.addr,
            body.len()
        );
        stream.write_all(head.as_bytes()).expect("writes");
        stream.write_all(body).expect("writes body");
        read_response(&mut stream)
    }

    fn get(&self, path: &str) -> (u16, String) {
        self.request("GET", path, b"")
    }
}

/// Reads a whole response (the server closes the connection after it); status and body.
fn read_response(stream: &mut TcpStream) -> (u16, String) {
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| dechunk(b)).unwrap_or_default();
    (status, body)
}

/// The payload of a chunked body (or the body itself when it is not chunked).
fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    loop {
        let Some((size, after)) = rest.split_once("\r\n") else { return body.to_owned() };
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else { return body.to_owned() };
        if n == 0 || after.len() < n {
            return out;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
}

const BOTH: [(&str, &str); 2] = [("p3-service", "WASI 0.3"), ("p2-proxy", "WASI 0.2")];

#[test]
fn both_worlds_answer_over_http1_with_a_fresh_instance_per_request() {
    for (name, version) in BOTH {
        let served = Served::start(name, &[]);
        assert_eq!(served.get("/"), (200, format!("hello from {version}\n")), "{name}");
        let json = br#"{"reading": 21.5, "unit": "C"}"#;
        assert_eq!(served.request("POST", "/echo", json), (200, String::from_utf8_lossy(json).into_owned()));
        // Nothing one request leaves in memory reaches the next.
        assert_eq!(served.get("/count"), (200, "1\n".into()), "{name}");
        assert_eq!(served.get("/count"), (200, "1\n".into()), "{name}");
        assert_eq!(served.get("/missing").0, 404);
    }
}

/// A WASI 0.3 service built as a Rust program with a `main` (as the WASI test suite builds its
/// service tests) also exports the standard library's `wasi:cli/run@0.2`: it is served through
/// its `wasi:http/handler@0.3`, not refused as a command.
#[test]
fn a_wasi_03_service_with_a_main_is_served_through_its_handler() {
    let served = Served::start("p3-main-service", &[]);
    assert_eq!(served.get("/anything"), (200, "served by the 0.3 handler\n".into()));
}

/// One serving thread: each thread keeps instances of its own (see
/// `kept_alive_connections_are_spread_over_threads_with_instances_of_their_own`).
#[test]
fn instance_reuse_when_asked_shares_one_instance_across_requests() {
    let served =
        Served::start("p3-service", &["--threads", "1", "--instance-reuse", "100", "--idle-instance-timeout", "30s"]);
    let counts: Vec<String> = (0..3).map(|_| served.get("/count").1).collect();
    assert_eq!(counts, ["1\n", "2\n", "3\n"]);
}

/// One HTTP/2 request by prior knowledge on a connection of its own: version, status, body.
async fn h2_get(addr: SocketAddr, path: &str) -> (http::Version, u16, bytes::Bytes) {
    use http_body_util::BodyExt as _;
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connects");
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .expect("h2 handshake");
    tokio::spawn(conn);
    let request = http::Request::get(format!("http://{addr}{path}"))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .expect("request");
    let response = sender.send_request(request).await.expect("response");
    let (version, status) = (response.version(), response.status().as_u16());
    (version, status, response.into_body().collect().await.expect("body").to_bytes())
}

#[test]
fn http2_by_prior_knowledge_is_served() {
    let served = Served::start("p3-service", &[]);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let (version, status, body) = runtime.block_on(h2_get(served.addr, "/"));
    assert_eq!((version, status), (http::Version::HTTP_2, 200));
    assert_eq!(&body[..], b"hello from WASI 0.3\n");
}

#[test]
fn a_guest_trapping_on_every_request_gets_500s_and_the_server_keeps_answering() {
    for (name, version) in BOTH {
        let served = Served::start(name, &[]);
        for _ in 0..5 {
            let (status, body) = served.get("/trap");
            assert_eq!(status, 500, "{name}: {body}");
        }
        assert_eq!(served.get("/"), (200, format!("hello from {version}\n")), "{name}");
    }
}

#[test]
fn a_guest_spinning_on_one_request_gets_504_at_its_time_while_others_are_answered() {
    for (name, version) in BOTH {
        let served = Served::start(name, &["--timeout", "1s"]);
        let addr = served.addr;
        let spinning = std::thread::spawn(move || {
            let started = Instant::now();
            let mut stream = TcpStream::connect(addr).expect("connects");
            stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
            stream.write_all(b"GET /spin HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").expect("writes");
            (read_response(&mut stream).0, started.elapsed())
        });
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(served.get("/"), (200, format!("hello from {version}\n")), "{name}: answered beside the spinner");
        let (status, took) = spinning.join().expect("spinner");
        assert_eq!(status, 504, "{name}");
        assert!(took < Duration::from_secs(5), "{name}: the spinner was ended after {took:?}");
        assert_eq!(served.get("/").0, 200);
    }
}

/// One thread serves every connection with `--threads 1`: a guest spinning on the CPU there
/// is made to yield at every epoch tick, so the thread's other connections are still answered
/// while it spins.
#[test]
fn a_guest_spinning_on_the_only_serving_thread_does_not_stall_its_other_connections() {
    for (name, version) in BOTH {
        let served = Served::start(name, &["--threads", "1", "--timeout", "3s"]);
        let addr = served.addr;
        let spinning = std::thread::spawn(move || {
            let mut stream = TcpStream::connect(addr).expect("connects");
            stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
            stream.write_all(b"GET /spin HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").expect("writes");
            (read_response(&mut stream).0, Instant::now())
        });
        std::thread::sleep(Duration::from_millis(200));
        let asked = Instant::now();
        assert_eq!(served.get("/"), (200, format!("hello from {version}\n")), "{name}: answered beside the spinner");
        let answered = Instant::now();
        let (status, spinner_ended) = spinning.join().expect("spinner");
        assert_eq!(status, 504, "{name}");
        assert!(
            answered < spinner_ended,
            "{name}: the hello waited {:?}, until the spinner was ended",
            answered - asked
        );
    }
}

/// Requests on one kept-alive HTTP/1.1 connection, in order, on a runtime of the test's own.
async fn keep_alive(addr: SocketAddr) -> hyper::client::conn::http1::SendRequest<http_body_util::Empty<bytes::Bytes>> {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connects");
    let (sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.expect("handshake");
    tokio::spawn(conn);
    sender
}

async fn count_on(
    sender: &mut hyper::client::conn::http1::SendRequest<http_body_util::Empty<bytes::Bytes>>,
    addr: SocketAddr,
) -> String {
    use http_body_util::BodyExt as _;
    let request = http::Request::get(format!("http://{addr}/count"))
        .header(http::header::HOST, addr.to_string())
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .expect("request");
    let response = sender.send_request(request).await.expect("response");
    assert_eq!(response.status(), 200);
    String::from_utf8_lossy(&response.into_body().collect().await.expect("body").to_bytes()).into_owned()
}

/// Each serving thread has instances of its own and serves a connection from start to end:
/// two kept-alive connections go to two threads and count in two instances; with one thread
/// both count in one.
#[test]
fn kept_alive_connections_are_spread_over_threads_with_instances_of_their_own() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    for (threads, expected) in [("2", ["1\n", "1\n", "2\n", "2\n"]), ("1", ["1\n", "2\n", "3\n", "4\n"])] {
        let served = Served::start(
            "p3-service",
            &["--threads", threads, "--instance-reuse", "100", "--idle-instance-timeout", "30s"],
        );
        let addr = served.addr;
        let counts = runtime.block_on(async {
            let mut a = keep_alive(addr).await;
            let mut b = keep_alive(addr).await;
            let mut counts = Vec::new();
            for _ in 0..2 {
                counts.push(count_on(&mut a, addr).await);
                counts.push(count_on(&mut b, addr).await);
            }
            counts
        });
        assert_eq!(counts, expected, "with --threads {threads}");
    }
}

/// In a reused instance a request's time limit is kept by the instance's one timer: a request
/// waiting in the guest past its time gets 504 at its own time, one that came later at its own
/// (not at the first one's), and the instance goes on answering.
#[test]
fn waiting_requests_in_a_reused_instance_each_get_504_at_their_own_time() {
    let served = Served::start("p3-service", &["--timeout", "400ms", "--instance-reuse", "100"]);
    let addr = served.addr;
    let sleeper = move || {
        let started = Instant::now();
        let mut stream = TcpStream::connect(addr).expect("connects");
        stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
        stream.write_all(b"GET /sleep HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").expect("writes");
        (read_response(&mut stream).0, started.elapsed())
    };
    let first = std::thread::spawn(sleeper);
    std::thread::sleep(Duration::from_millis(200));
    let second = std::thread::spawn(sleeper);
    assert_eq!(served.get("/").0, 200, "answered beside the waiting ones");
    for (which, waiter) in [("first", first), ("second", second)] {
        let (status, took) = waiter.join().expect("waiter");
        assert_eq!(status, 504, "{which}");
        assert!(took >= Duration::from_millis(380), "{which} ended early, after {took:?}");
        assert!(took < Duration::from_millis(950), "{which} ended at the guest's answer, not its time: {took:?}");
    }
    assert_eq!(served.get("/").0, 200);
}

#[test]
fn a_guest_hoarding_memory_loses_its_instance_not_the_server() {
    let served = Served::start("p3-service", &["--max-memory", "32MiB"]);
    assert_eq!(served.get("/hoard").0, 500);
    assert_eq!(served.get("/").0, 200);
    let log = served.log_with("out of memory");
    assert!(log.contains("out of memory"), "{log}");
}

#[test]
fn a_huge_declared_body_is_refused_with_413_before_the_guest_sees_it() {
    let served = Served::start("p3-service", &["--max-body-size", "1MiB", "--instance-reuse", "100"]);
    let mut stream = TcpStream::connect(served.addr).expect("connects");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    stream
        .write_all(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 1073741824\r\nconnection: close\r\n\r\n")
        .expect("writes");
    assert_eq!(read_response(&mut stream).0, 413);
    // The guest never ran for it: the instance count is still at its first request.
    assert_eq!(served.get("/count"), (200, "1\n".into()));
}

#[test]
fn a_streamed_body_beyond_the_limit_is_cut_and_the_guest_told() {
    let served = Served::start("p3-service", &["--max-body-size", "64KiB"]);
    let mut stream = TcpStream::connect(served.addr).expect("connects");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    stream
        .write_all(b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n")
        .expect("head");
    let chunk = vec![b'x'; 16 * 1024];
    for _ in 0..8 {
        let _ = stream.write_all(format!("{:x}\r\n", chunk.len()).as_bytes());
        let _ = stream.write_all(&chunk);
        let _ = stream.write_all(b"\r\n");
    }
    let _ = stream.write_all(b"0\r\n\r\n");
    let (status, body) = read_response(&mut stream);
    // The guest's read fails; what it answers is its own affair, but it never gets 128 KiB.
    assert!(body.len() <= 64 * 1024, "status {status}, {} bytes echoed", body.len());
    assert_eq!(served.get("/").0, 200);
}

#[test]
fn slowloris_headers_one_byte_a_second_are_cut_at_the_header_timeout() {
    let served = Served::start("p3-service", &["--header-timeout", "1s"]);
    let mut slow = TcpStream::connect(served.addr).expect("connects");
    slow.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let started = Instant::now();
    let mut cut = false;
    for byte in b"GET / HTTP/1.1\r\nhost: x\r\nx-slow: aaaaaaaaaaaaaaaaaaaaaaaa" {
        if slow.write_all(&[*byte]).is_err() {
            cut = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
        if started.elapsed() > Duration::from_secs(5) {
            break;
        }
    }
    let mut rest = Vec::new();
    let _ = slow.read_to_end(&mut rest);
    let text = String::from_utf8_lossy(&rest);
    assert!(cut || text.is_empty() || text.starts_with("HTTP/1.1 408"), "the slow client was answered: {text}");
    assert!(started.elapsed() < Duration::from_secs(8), "the slow client was held for {:?}", started.elapsed());
    assert_eq!(served.get("/").0, 200);
}

#[test]
fn ten_thousand_idle_connections_are_bounded_and_the_server_answers_after_they_time_out() {
    let served = Served::start("p3-service", &["--max-connections", "64", "--header-timeout", "1s"]);
    // Open as many idle connections as this process may (up to ten thousand): those past the
    // server's bound wait in the backlog, the others are dropped at the header timeout.
    let mut idle = Vec::new();
    for _ in 0..10_000 {
        match TcpStream::connect_timeout(&served.addr, Duration::from_millis(200)) {
            Ok(s) => idle.push(s),
            Err(_) => break,
        }
    }
    assert!(idle.len() >= 256, "only {} idle connections could be opened", idle.len());
    assert_eq!(served.get("/").0, 200, "answered with {} idle connections open", idle.len());
    drop(idle);
}

#[test]
fn an_idle_http1_keep_alive_connection_is_closed_at_the_header_timeout() {
    let served = Served::start("p3-service", &["--header-timeout", "1s"]);
    let mut stream = TcpStream::connect(served.addr).expect("connects");
    stream.set_read_timeout(Some(Duration::from_secs(15))).expect("timeout");
    // Keep-alive: the server answers, then waits for the next request, which never comes.
    stream.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").expect("writes");
    let started = Instant::now();
    let (status, _) = read_response(&mut stream);
    assert_eq!(status, 200);
    let held = started.elapsed();
    assert!(held < Duration::from_secs(5), "an idle keep-alive connection was held for {held:?}");
    assert!(held >= Duration::from_millis(900), "closed after {held:?}, before the header timeout");
}

#[test]
fn malformed_requests_get_a_clear_4xx_and_nothing_else_breaks() {
    let served = Served::start("p3-service", &[]);
    for garbage in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nhost: x\r\ncontent-length: nope\r\n\r\n",
        b"GET / HTTP/1.1\r\nbad header without colon\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    ] {
        let mut stream = TcpStream::connect(served.addr).expect("connects");
        stream.set_read_timeout(Some(Duration::from_secs(15))).expect("timeout");
        stream.write_all(garbage).expect("writes");
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let (status, _) = read_response(&mut stream);
        assert!(status == 0 || (400..500).contains(&status), "{garbage:?} got {status}");
    }
    let mut huge = String::from("GET / HTTP/1.1\r\nhost: x\r\n");
    for i in 0..4000 {
        huge.push_str(&format!("x-filler-{i}: {}\r\n", "v".repeat(40)));
    }
    huge.push_str("\r\n");
    let mut stream = TcpStream::connect(served.addr).expect("connects");
    stream.set_read_timeout(Some(Duration::from_secs(15))).expect("timeout");
    let _ = stream.write_all(huge.as_bytes());
    let (status, _) = read_response(&mut stream);
    assert!(status == 0 || status == 431 || status == 400, "a 200 KB header section got {status}");
    assert_eq!(served.get("/").0, 200);
}

#[test]
fn a_guest_trying_a_host_it_may_not_reach_gets_an_error_it_sees_and_the_log_names_it() {
    let upstream = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let target = upstream.local_addr().expect("addr");
    for (name, _) in BOTH {
        let served = Served::start(name, &[]);
        let (status, body) = served.get(&format!("/fetch?http://{target}/"));
        assert_eq!(status, 502, "{name}: {body}");
        assert!(body.contains("HttpRequestDenied"), "{name}: {body}");
        let needle = format!("denied the guest's HTTP request to http://{target}");
        let log = served.log_with(&needle);
        assert!(log.contains(&needle), "{log}");
    }
    upstream.set_nonblocking(true).expect("nonblocking");
    assert!(upstream.accept().is_err(), "no connection reached the host");
}

#[test]
fn sigterm_lets_a_request_in_flight_finish_then_exits() {
    for (name, _) in BOTH {
        let mut served = Served::start(name, &[]);
        let addr = served.addr;
        let slow = std::thread::spawn(move || {
            let mut stream = TcpStream::connect(addr).expect("connects");
            stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
            stream.write_all(b"GET /sleep HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").expect("writes");
            read_response(&mut stream)
        });
        std::thread::sleep(Duration::from_millis(300));
        let pid = served.child.id().to_string();
        assert!(output(Command::new("kill").args(["-TERM", &pid])).status.success());
        assert_eq!(slow.join().expect("client"), (200, "slept 1s\n".into()), "{name}");
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = served.child.try_wait().expect("waits") {
                break status;
            }
            assert!(Instant::now() < deadline, "{name}: did not exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(status.code(), Some(0), "{name}: {}", served.log());
    }
}

#[test]
fn metrics_and_the_access_log_count_what_was_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log_path = dir.path().join("access.log");
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let served = Served::start(
        "p3-service",
        &["--metrics-addr", &metrics_addr, "--access-log", log_path.to_str().expect("utf-8"), "--timeout", "1s"],
    );
    served.get("/");
    served.get("/trap");
    served.get("/spin");
    served.get("/missing?a=%22b%20c%22");
    let mut stream = TcpStream::connect(&metrics_addr).expect("metrics");
    stream.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").expect("writes");
    let (status, text) = read_response(&mut stream);
    assert_eq!(status, 200);
    for line in [
        "lamina_http_requests_total{status=\"200\"} 1",
        "lamina_http_requests_total{status=\"500\"} 1",
        "lamina_http_requests_total{status=\"504\"} 1",
        "lamina_http_requests_total{status=\"404\"} 1",
        "lamina_http_guest_traps_total 1",
        "lamina_http_guest_timeouts_total 1",
        "lamina_http_requests_in_flight 0",
        "lamina_http_request_duration_seconds_count 4",
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
    let log = std::fs::read_to_string(&log_path).expect("access log");
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 4, "{log}");
    assert!(lines[0].contains("\"GET / HTTP/1.1\" 200"), "{log}");
    assert!(lines[2].contains("\"GET /spin HTTP/1.1\" 504"), "{log}");
    assert_eq!(lines[3].matches('"').count(), 2, "a client's quote cannot break the line: {log}");
}

/// Posts a reading over attested TLS as a data owner's device would: the handshake appraises
/// the server with the policy first; nothing is sent unless it passes. Status and body, or the
/// handshake's error.
fn post_attested(addr: SocketAddr, policy: &std::path::Path, body: &[u8]) -> Result<(u16, String), String> {
    use lamina_attest::ratls::{AttestedServerVerifier, relying_party_config};
    use lamina_attest::{Policy, TrustAnchors, Verifier};
    let mut anchors = TrustAnchors::default();
    let policy = Policy::load(policy, &mut anchors).expect("policy");
    let verifier = AttestedServerVerifier::new(Verifier::new(Some(policy), anchors));
    let mut config = relying_party_config(verifier).expect("config");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = rustls::pki_types::ServerName::try_from("lamina.test").expect("name");
    let mut conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).expect("conn");
    let mut socket = TcpStream::connect(addr).expect("connects");
    socket.set_read_timeout(Some(Duration::from_secs(15))).expect("timeout");
    while conn.is_handshaking() {
        conn.complete_io(&mut socket).map_err(|e| e.to_string())?;
    }
    let mut tls = rustls::StreamOwned::new(conn, socket);
    let head = format!(
        "POST /echo HTTP/1.1\r\nhost: lamina.test\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes()).map_err(|e| e.to_string())?;
    tls.write_all(body).map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    let _ = tls.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Ok((status, text.split_once("\r\n\r\n").map(|(_, b)| dechunk(b)).unwrap_or_default()))
}

#[test]
fn attested_https_is_checked_by_the_client_before_any_data_is_sent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let log = dir.path().join("access.log");
    let served = Served::start(
        "p3-service",
        &[
            "--attested-tls",
            "--platform",
            "sim",
            "--state",
            state.to_str().expect("utf-8"),
            "--access-log",
            log.to_str().expect("utf-8"),
        ],
    );
    let module = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(std::fs::read(component("p3-service")).expect("component")))
    };
    let good = dir.path().join("good.toml");
    std::fs::write(&good, format!("allow_sim = true\nmodule_hashes = [\"sha256:{module}\"]\n")).expect("policy");
    let other = dir.path().join("other.toml");
    std::fs::write(&other, format!("allow_sim = true\nmodule_hashes = [\"sha256:{}\"]\n", "0".repeat(64)))
        .expect("policy");
    let no_sim = dir.path().join("no-sim.toml");
    std::fs::write(&no_sim, "allow_sim = false\n").expect("policy");
    let url = format!("https://{}", served.addr);

    // `lamina verify --url` prints the verdict: accepted for the served module only.
    let out = output(lamina().args(["verify", "--url", &url, "--policy"]).arg(&good));
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("module:      sha256:{module}")));
    for refused in [&other, &no_sim] {
        let out = output(lamina().args(["verify", "--url", &url, "--policy"]).arg(refused));
        assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
        assert!(String::from_utf8_lossy(&out.stdout).contains("[FAIL] policy."));
    }

    // A device whose policy refuses the server never gets to send its reading.
    let refused = post_attested(served.addr, &other, b"{\"reading\": 1}").expect_err("handshake refused");
    assert!(refused.contains("policy.module_hash"), "{refused}");
    let (status, body) = post_attested(served.addr, &good, b"{\"reading\": 2}").expect("accepted");
    assert_eq!((status, body.as_str()), (200, "{\"reading\": 2}"));
    drop(served);
    let lines = std::fs::read_to_string(&log).expect("access log");
    assert_eq!(lines.lines().count(), 1, "only the accepted device's request reached the server:\n{lines}");
}

#[test]
fn a_javascript_component_built_by_componentize_js_is_served() {
    let served = Served::start_file(&js_example(), &[]);
    assert_eq!(served.get("/"), (200, "hello from JavaScript\n".into()));
    let (status, body) = served.request("POST", "/echo", br#"{"reading": 21.5}"#);
    assert_eq!(status, 200);
    assert_eq!(body, r#"{"received":{"reading":21.5},"by":"javascript"}"#);
    assert_eq!(served.get("/elsewhere").0, 404);
}

#[test]
fn served_components_get_secrets_the_sealed_key_value_store_and_attestation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let kv = dir.path().join("kv");
    let secret = dir.path().join("token");
    std::fs::write(&secret, "s3cret-token").expect("secret");
    let secret_arg = format!("api={}", secret.display());
    let args = [
        "--platform",
        "sim",
        "--state",
        state.to_str().expect("utf-8"),
        "--kv",
        kv.to_str().expect("utf-8"),
        "--attestation",
        "--secret",
        &secret_arg,
    ];
    let module = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(std::fs::read(component("p3-lamina")).expect("component")))
    };
    {
        let served = Served::start("p3-lamina", &args);
        assert_eq!(served.get("/secret?api"), (200, "s3cret-token".into()));
        assert_eq!(served.get("/secret?other").0, 404);
        assert_eq!(served.get("/module-hash"), (200, format!("{module}\n")));
        // Fresh instances, one store: each request sees the last one's write.
        assert_eq!(served.get("/visits"), (200, "1\n".into()));
        assert_eq!(served.get("/visits"), (200, "2\n".into()));
    }
    // The store is sealed on disk (the count is not there in the clear) and outlives the server.
    for entry in std::fs::read_dir(&kv).expect("kv dir").flatten() {
        if entry.path().is_file() {
            let bytes = std::fs::read(entry.path()).expect("read");
            assert!(!bytes.windows(6).any(|w| w == b"visits"), "{} holds a key in the clear", entry.path().display());
        }
    }
    let served = Served::start("p3-lamina", &args);
    assert_eq!(served.get("/visits"), (200, "3\n".into()));
    drop(served);
    // Without the services, the guest hears that they are not there.
    let bare = Served::start("p3-lamina", &[]);
    assert_eq!(bare.get("/module-hash").0, 503);
    assert_eq!(bare.get("/visits").0, 503);
    assert_eq!(bare.get("/secret?api").0, 404);
}

/// A served component keeps notes in a sealed directory: every request is a fresh instance
/// over the same volume, concurrent writers lose nothing, a note survives a restart, the host
/// holds only ciphertext, and another component is refused the volume.
#[test]
fn served_components_keep_files_in_a_sealed_directory_across_instances_and_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let volume = dir.path().join("notes");
    let sealed = format!("{}::/data", volume.display());
    let args = ["--platform", "sim", "--state", state.to_str().expect("utf-8"), "--sealed-dir", &sealed];
    {
        let served = Served::start("p3-lamina", &args);
        assert_eq!(served.request("POST", "/notes", b"reading 1: 21.5 C"), (201, "noted\n".into()));
        std::thread::scope(|scope| {
            for i in 2..=9 {
                let served = &served;
                scope.spawn(move || {
                    let note = format!("reading {i}: 2{i}.0 C");
                    assert_eq!(served.request("POST", "/notes", note.as_bytes()).0, 201, "{}", served.log());
                });
            }
        });
    }
    let served = Served::start("p3-lamina", &args);
    let (status, notes) = served.get("/notes");
    assert_eq!(status, 200, "{}", served.log());
    let mut lines: Vec<&str> = notes.lines().collect();
    lines.sort_unstable();
    let expected: Vec<String> =
        (1..=9).map(|i| if i == 1 { "reading 1: 21.5 C".into() } else { format!("reading {i}: 2{i}.0 C") }).collect();
    assert_eq!(lines, expected);
    drop(served);
    for entry in files_under(&volume) {
        let bytes = std::fs::read(&entry).expect("read volume file");
        assert!(!bytes.windows(8).any(|w| w == b"reading "), "{} holds a note in the clear", entry.display());
    }
    // The volume is sealed to the module that made it: another component is not given it.
    let other = lamina()
        .args(["serve", "--no-cache", "--addr", "127.0.0.1:0"])
        .args(args)
        .arg(component("p3-service"))
        .output()
        .expect("runs");
    assert!(!other.status.success());
    let stderr = String::from_utf8_lossy(&other.stderr);
    assert!(stderr.contains("is sealed to module sha256:"), "{stderr}");
}

#[test]
fn a_request_without_a_host_gets_400_and_the_server_goes_on() {
    let served = Served::start("p2-proxy", &["--instance-reuse", "100"]);
    let mut stream = TcpStream::connect(served.addr).expect("connects");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    stream.write_all(b"GET / HTTP/1.0\r\n\r\n").expect("writes");
    assert_eq!(read_response(&mut stream).0, 400);
    assert_eq!(served.get("/"), (200, "hello from WASI 0.2\n".into()));
}

/// A server that presents a captured certificate with a key of its own: what a man in the
/// middle can do with an attested server's (public) certificate.
fn impostor(cert: rustls::pki_types::CertificateDer<'static>) -> SocketAddr {
    #[derive(Debug)]
    struct Replay(Arc<rustls::sign::CertifiedKey>);
    impl rustls::server::ResolvesServerCert for Replay {
        fn resolve(&self, _: rustls::server::ClientHello<'_>) -> Option<Arc<rustls::sign::CertifiedKey>> {
            Some(Arc::clone(&self.0))
        }
    }
    use std::sync::Arc;
    let other = rcgen::KeyPair::generate().expect("key");
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(other.serialize_der().into());
    let signer = rustls::crypto::ring::sign::any_supported_type(&key).expect("signing key");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("versions")
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Replay(Arc::new(rustls::sign::CertifiedKey::new(vec![cert], signer)))));
    let config = Arc::new(config);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming().take(4) {
            let Ok(mut stream) = stream else { continue };
            let mut conn = rustls::ServerConnection::new(Arc::clone(&config)).expect("conn");
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            while conn.is_handshaking() {
                if conn.complete_io(&mut stream).is_err() {
                    break;
                }
            }
        }
    });
    addr
}

#[test]
fn a_replayed_attested_certificate_without_its_key_is_refused_by_verify_url() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let served = Served::start(
        "p3-service",
        &["--attested-tls", "--platform", "sim", "--state", state.to_str().expect("utf-8")],
    );
    let policy = dir.path().join("sim.toml");
    std::fs::write(&policy, "allow_sim = true\n").expect("policy");
    // Capture the genuine certificate, as anyone on the path can.
    let cert = {
        use lamina_attest::ratls::{AttestedServerVerifier, relying_party_config};
        use lamina_attest::{Policy, TrustAnchors, Verifier};
        let mut anchors = TrustAnchors::default();
        let loaded = Policy::load(&policy, &mut anchors).expect("policy");
        let config =
            relying_party_config(AttestedServerVerifier::new(Verifier::new(Some(loaded), anchors))).expect("config");
        let name = rustls::pki_types::ServerName::try_from("lamina.test").expect("name");
        let mut conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).expect("conn");
        let mut socket = TcpStream::connect(served.addr).expect("connects");
        while conn.is_handshaking() {
            conn.complete_io(&mut socket).expect("handshake with the real server");
        }
        conn.peer_certificates().expect("a certificate")[0].clone().into_owned()
    };
    let genuine =
        output(lamina().args(["verify", "--url", &format!("https://{}", served.addr), "--policy"]).arg(&policy));
    assert_eq!(genuine.status.code(), Some(0));
    let fake = impostor(cert);
    let out = output(lamina().args(["verify", "--url", &format!("https://{fake}"), "--policy"]).arg(&policy));
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_ne!(out.status.code(), Some(0), "an impostor was accepted:\n{stdout}\n{stderr}");
    assert!(!stdout.contains("ACCEPTED"), "{stdout}");
    assert!(stderr.contains("did not complete it with the certificate's key"), "{stderr}");
}

#[test]
fn silent_http2_connections_are_closed_at_the_idle_time_and_a_slow_body_is_not_cut() {
    let served = Served::start("p3-service", &["--header-timeout", "1s"]);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        // A client that sends the HTTP/2 preface and settings, then nothing.
        let stream = tokio::net::TcpStream::connect(served.addr).await.expect("connects");
        let (_sender, conn) = hyper::client::conn::http2::handshake::<_, _, http_body_util::Empty<bytes::Bytes>>(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(stream),
        )
        .await
        .expect("h2 handshake");
        let started = Instant::now();
        let ended = tokio::time::timeout(Duration::from_secs(10), conn).await;
        assert!(ended.is_ok(), "a silent HTTP/2 connection was held past 10 s");
        assert!(started.elapsed() < Duration::from_secs(5), "closed after {:?}", started.elapsed());

        // A request whose answer takes longer than the idle time keeps its connection.
        let (_, status, body) = h2_get(served.addr, "/sleep").await;
        assert_eq!(status, 200);
        assert_eq!(&body[..], b"slept 1s\n");
    });
    assert_eq!(served.get("/").0, 200);
}
