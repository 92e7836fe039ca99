//! WASI 0.3 commands under `lamina run` (told apart from 0.2 by their exports), and the network
//! rules every guest runs under: outgoing HTTP and sockets are refused unless allowed.
#![allow(clippy::expect_used, reason = "a test: a failed expectation is the failure, with its message")]

mod common;

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::time::Duration;

use common::{assert_code, component, files_under, lamina, output, texts};

#[test]
fn a_wasi_03_command_runs_with_its_arguments_environment_and_exit_code() {
    let out = output(
        lamina().args(["run", "--no-cache", "--env", "GREETING=hi"]).arg(component("p3-command")).args(["a", "b"]),
    );
    assert_code(&out, 0);
    assert_eq!(texts(&out).0, "hi from WASI 0.3: p3_command.wasm a b\n");

    let out = output(lamina().args(["run", "--no-cache"]).arg(component("p3-command")).arg("exit:7"));
    assert_code(&out, 7);
    let out = output(lamina().args(["run", "--no-cache"]).arg(component("p3-command")).arg("fail"));
    assert_code(&out, 1);
}

/// A WASI 0.3 command built as a Rust program with a `main` (as the WASI test suite builds
/// its tests) also exports the standard library's `wasi:cli/run@0.2`, a stub: the 0.3 entry
/// point is the one that runs, with its exit code.
#[test]
fn a_wasi_03_program_with_a_main_runs_its_wasi_03_entry_point() {
    let out = output(lamina().args(["run", "--no-cache"]).arg(component("p3-main-command")).args(["a", "exit:3"]));
    assert_code(&out, 3);
    assert_eq!(texts(&out).0, "the WASI 0.3 entry point ran: p3-main-command.wasm a exit:3\n");
    assert!(!texts(&out).1.contains("unreachable"), "{}", texts(&out).1);
}

/// The WASI test suite's runner asks `tests/wasi-testsuite/lamina.py` for each test's command
/// line (docs/conformance.md). The line it gives for a command runs the program with its
/// arguments, environment and directory, and lets outgoing HTTP reach the runner's loopback
/// servers only; a `wasi:http/service` test is served on a port of the system's choosing.
#[test]
fn the_wasi_test_suite_adapter_gives_command_lines_that_run() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = tempfile::tempdir().expect("tempdir");
    let script = r#"
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("adapter", sys.argv[1])
adapter = importlib.util.module_from_spec(spec)
spec.loader.exec_module(adapter)
env = {"K": "v", "HTTP_SERVER_MAIN": "127.0.0.1:9", "HTTP_SERVER_FAR": "far.invalid:80"}
command = adapter.compute_argv(sys.argv[2], (["x", "exit:5"], env, [(sys.argv[3], "/d")]), ["http"],
                               "wasi:cli/command", "wasm32-wasip3")
service = adapter.compute_argv(sys.argv[2], ([], {}, None), [], "wasi:http/service", "wasm32-wasip3")
print(json.dumps([adapter.get_name(), adapter.get_version(), command, service]))
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(root.join("tests/wasi-testsuite/lamina.py"))
        .arg(component("p3-main-command"))
        .arg(dir.path())
        .env("LAMINA", env!("CARGO_BIN_EXE_lamina"))
        .output()
        .expect("python3 runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (name, version, command, service): (String, String, Vec<String>, Vec<String>) =
        serde_json::from_slice(&out.stdout).expect("the adapter's answer");
    assert_eq!((name.as_str(), version.as_str()), ("lamina", env!("CARGO_PKG_VERSION")));
    let joined = command.join(" ");
    assert!(
        joined.contains("--allow-http http://127.0.0.1:9") && !joined.contains("--allow-http http://far.invalid"),
        "{joined}"
    );
    assert!(joined.contains(&format!("--dir {}::/d", dir.path().display())), "{joined}");
    assert!(service[1..].starts_with(&["serve".into(), "--addr".into(), "127.0.0.1:0".into()]), "{service:?}");

    let ran = output(std::process::Command::new(&command[0]).args(&command[1..]));
    assert_code(&ran, 5);
    assert_eq!(texts(&ran).0, "the WASI 0.3 entry point ran: p3-main-command.wasm x exit:5\n");
}

#[test]
fn a_spinning_wasi_03_command_is_killed_at_its_timeout() {
    let started = std::time::Instant::now();
    let out =
        output(lamina().args(["run", "--no-cache", "--timeout", "300ms"]).arg(component("p3-command")).arg("spin"));
    assert_code(&out, 124);
    assert!(texts(&out).1.contains("exceeded the 300ms timeout"), "{}", texts(&out).1);
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn an_http_component_is_not_run_but_pointed_at_serve() {
    let out = output(lamina().args(["run", "--no-cache"]).arg(component("p3-service")));
    assert_code(&out, 125);
    assert!(texts(&out).1.contains("serve it with `lamina serve`"), "{}", texts(&out).1);
}

/// A WASI 0.3 command writes to a sealed directory through Rust's standard library (WASI
/// 0.2's filesystem, called from the event loop); the next run reads it back, and the host sees
/// only ciphertext.
#[test]
fn a_wasi_03_command_keeps_its_files_in_a_sealed_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let volume = dir.path().join("vol");
    let sealed = format!("{}::/data", volume.display());
    let state = dir.path().join("state");
    let run = |args: &[&str]| {
        output(
            lamina()
                .args(["run", "--no-cache", "--platform", "sim", "--state"])
                .arg(&state)
                .args(["--sealed-dir", &sealed])
                .arg(component("p3-command"))
                .args(args),
        )
    };
    let first = run(&["append:/data/notes.txt=first secret line"]);
    assert_code(&first, 0);
    assert!(texts(&first).0.contains("appended"), "{:?}", texts(&first));
    let second = run(&["append:/data/notes.txt=second", "cat:/data/notes.txt"]);
    assert_code(&second, 0);
    assert!(texts(&second).0.ends_with("first secret line\nsecond\n"), "{:?}", texts(&second));
    for entry in files_under(&volume) {
        let bytes = std::fs::read(&entry).expect("read volume file");
        assert!(
            !bytes.windows(b"secret line".len()).any(|w| w == b"secret line"),
            "{} holds the plaintext",
            entry.display()
        );
    }
}

/// `lamina run` of the p3-command component with a sealed directory at `/data`, kept in `dir`.
fn run_sealed(dir: &std::path::Path, options: &[&str], args: &[&str]) -> std::process::Output {
    let sealed = format!("{}::/data", dir.join("vol").display());
    output(
        lamina()
            .args(["run", "--no-cache", "--platform", "sim", "--state"])
            .arg(dir.join("state"))
            .args(["--sealed-dir", &sealed])
            .args(options)
            .arg(component("p3-command"))
            .args(args),
    )
}

/// WASI 0.3's own filesystem (`wasi:filesystem@0.3`: open, append and read through streams,
/// list a directory, stat) reaches a sealed directory as WASI 0.2's does, and the two see the
/// same files; the next run reads them back, and the host sees only ciphertext.
#[test]
fn a_component_on_wasi_03_filesystem_keeps_its_files_in_a_sealed_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = run_sealed(
        dir.path(),
        &[],
        &["append3:/data/notes.txt=first secret line", "append:/data/notes.txt=through std", "cat3:/data/notes.txt"],
    );
    assert_code(&first, 0);
    assert!(texts(&first).0.ends_with("appended\nappended\nfirst secret line\nthrough std\n"), "{:?}", texts(&first));
    let second = run_sealed(dir.path(), &[], &["append3:/data/notes.txt=third", "cat3:/data/notes.txt", "ls3:/data"]);
    assert_code(&second, 0);
    assert!(
        texts(&second).0.ends_with("first secret line\nthrough std\nthird\nnotes.txt 36\n"),
        "{:?}",
        texts(&second)
    );
    for entry in files_under(&dir.path().join("vol")) {
        let bytes = std::fs::read(&entry).expect("read volume file");
        assert!(
            !bytes.windows(b"secret line".len()).any(|w| w == b"secret line"),
            "{} holds the plaintext",
            entry.display()
        );
    }
}

/// The differential test of WASI 0.3's own filesystem: `p3-fsops` runs the same operations
/// (streams, listings, stat, times, renames, removals, trailing slashes, `..`, rights, long
/// names, many entries, and the errors of each) in a plain directory, through wasmtime-wasi,
/// and in a sealed one; both print the same.
#[test]
fn wasi_03_filesystem_in_a_sealed_directory_answers_as_in_a_plain_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plain = dir.path().join("plain");
    std::fs::create_dir(&plain).expect("plain dir");
    let expected = output(
        lamina()
            .args(["run", "--no-cache", "--dir"])
            .arg(format!("{}::/data", plain.display()))
            .arg(component("p3-fsops"))
            .arg("/data"),
    );
    assert_code(&expected, 0);
    let expected = texts(&expected).0;
    assert!(expected.contains("read with hole: ok \"hello WORLD, appended0000!\""), "{expected}");
    assert!(expected.contains("list many: ok 42"), "{expected}");
    assert!(!expected.contains("no preopen"), "{expected}");
    let sealed = output(
        lamina()
            .args(["run", "--no-cache", "--platform", "sim", "--state"])
            .arg(dir.path().join("state"))
            .arg("--sealed-dir")
            .arg(format!("{}::/data", dir.path().join("vol").display()))
            .arg(component("p3-fsops"))
            .arg("/data"),
    );
    assert_code(&sealed, 0);
    let sealed = texts(&sealed).0;
    for (line, (want, got)) in expected.lines().zip(sealed.lines()).enumerate() {
        assert_eq!(want, got, "line {} differs", line + 1);
    }
    assert_eq!(expected.lines().count(), sealed.lines().count(), "{sealed}");
}

/// Paths through WASI 0.3's filesystem that climb out of a sealed directory are refused, and
/// a directory is not read as a file.
#[test]
fn wasi_03_filesystem_paths_escaping_a_sealed_directory_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run_sealed(dir.path(), &[], &["cat3:/data/../../etc/passwd", "ls3:/data/../..", "cat3:/data"]);
    assert_code(&out, 0);
    let stdout = texts(&out).0;
    assert!(stdout.contains("cannot read /data/../../etc/passwd: ErrorCode::NotPermitted"), "{stdout}");
    assert!(stdout.contains("cannot open /data/../..: ErrorCode::NotPermitted"), "{stdout}");
    assert!(stdout.contains("cannot read /data: ErrorCode::IsDirectory"), "{stdout}");
    assert!(!stdout.contains("root:"), "{stdout}");
}

/// A guest that streams more than its quota into a sealed file through WASI 0.3 gets `quota`
/// from the stream's future; nothing past the quota is kept and later, smaller writes work.
#[test]
fn streaming_past_a_sealed_quota_through_wasi_03_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let big = format!("append3:/data/big.txt={}", "x".repeat(4096));
    let out = run_sealed(dir.path(), &["--sealed-quota", "1KiB"], &[&big, "ls3:/data", "append3:/data/small.txt=ok"]);
    assert_code(&out, 0);
    let stdout = texts(&out).0;
    assert!(stdout.contains("cannot append to /data/big.txt: ErrorCode::Quota"), "{stdout}");
    let sizes: Vec<&str> = stdout.lines().filter(|l| l.starts_with("big.txt ")).collect();
    let size: u64 = sizes.first().and_then(|l| l[8..].parse().ok()).expect("big.txt listed");
    assert!(size <= 1024, "{stdout}");
    assert!(stdout.ends_with("appended\n"), "{stdout}");
}

/// A one-shot HTTP server on loopback that answers 204 and counts its connections.
fn upstream() -> (String, std::thread::JoinHandle<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("addr").to_string();
    let handle = std::thread::spawn(move || {
        let mut served = 0;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < deadline && served == 0 {
            match listener.accept() {
                Ok((mut stream, _)) => {
                    stream.set_nonblocking(false).expect("blocking");
                    stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
                    let mut buf = [0u8; 4096];
                    let _ = stream.read(&mut buf);
                    let _ =
                        stream.write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                    served += 1;
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        served
    });
    (addr, handle)
}

#[test]
fn outgoing_http_is_denied_by_default_and_allowed_by_a_matching_rule_only() {
    let (addr, server) = upstream();
    let url = format!("fetch:http://{addr}/x");
    // No rule: the guest sees HTTP-request-denied, the log names the destination.
    let out = output(lamina().args(["run", "--no-cache"]).arg(component("p3-command")).arg(&url));
    assert_code(&out, 0);
    let (stdout, stderr) = texts(&out);
    assert!(stdout.contains("HttpRequestDenied"), "{stdout}");
    assert!(stderr.contains(&format!("denied the guest's HTTP request to http://{addr}")), "{stderr}");
    // A rule for another port or scheme does not match.
    let port = addr.rsplit_once(':').expect("port").1;
    let other = format!("http://127.0.0.1:{}", port.parse::<u16>().expect("port") ^ 1);
    for rule in [other.as_str(), &format!("https://127.0.0.1:{port}"), "http://10.0.0.0/8:*", "http://*.local:*"] {
        let out =
            output(lamina().args(["run", "--no-cache", "--allow-http", rule]).arg(component("p3-command")).arg(&url));
        assert!(texts(&out).0.contains("HttpRequestDenied"), "{rule}: {}", texts(&out).0);
    }
    // The matching rule lets the request through.
    let out = output(
        lamina()
            .args(["run", "--no-cache", "--allow-http", &format!("http://127.0.0.1:{port}")])
            .arg(component("p3-command"))
            .arg(&url),
    );
    assert_code(&out, 0);
    assert!(texts(&out).0.contains("status 204"), "{}", texts(&out).0);
    assert_eq!(server.join().expect("server"), 1, "only the allowed request reached the server");
}

#[test]
fn a_malformed_network_rule_is_refused_with_its_reason() {
    for (rule, flag, says) in [
        ("example.com", "--allow-http", "://"),
        ("tcp://127.0.0.1:80", "--allow-http", "HTTP rule"),
        ("tcp://db.internal:5432", "--allow-socket", "by address"),
        ("https://example.com/path", "--allow-http", "no path"),
    ] {
        let out = output(lamina().args(["run", "--no-cache", flag, rule]).arg(component("p3-command")));
        assert_code(&out, 125);
        assert!(texts(&out).1.contains(says), "{rule}: {}", texts(&out).1);
    }
}

#[test]
fn sockets_are_denied_by_default_and_reach_only_the_address_a_rule_names() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let action = format!("connect:{addr}");
    let run = |rules: &[&str]| {
        let mut cmd = lamina();
        cmd.args(["run", "--no-cache"]);
        for rule in rules {
            cmd.args(["--allow-socket", rule]);
        }
        output(cmd.arg(component("p3-command")).arg(&action))
    };
    let out = run(&[]);
    assert!(texts(&out).0.contains("AccessDenied"), "no rule: {}", texts(&out).0);
    let out = run(&[&format!("tcp://127.0.0.1:{}", addr.port() ^ 1), &format!("udp://127.0.0.1:{}", addr.port())]);
    assert!(texts(&out).0.contains("connect error ErrorCode::AccessDenied"), "{}", texts(&out).0);
    assert!(texts(&out).1.contains(&format!("denied the guest's socket TCP connect to {addr}")), "{}", texts(&out).1);
    listener.set_nonblocking(true).expect("nonblocking");
    assert!(listener.accept().is_err(), "nothing reached the listener");
    let out = run(&[&format!("tcp://127.0.0.0/8:{}", addr.port())]);
    assert!(texts(&out).0.contains("connected"), "{}", texts(&out).0);
}
