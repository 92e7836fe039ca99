//! A WASI 0.3 command: prints its arguments and one environment variable through the 0.3
//! stdout stream, then exits with the code its first argument names (`exit:N`), or fetches a
//! URL (`fetch:URL`) and prints the status or the error code, or connects a TCP socket
//! (`connect:IP:PORT`) and prints whether it could, or appends a line to a file
//! (`append:PATH=TEXT`) or prints a file (`cat:PATH`) with Rust's standard library (WASI 0.2's
//! filesystem, as most 0.3 components still use it), or does the same through WASI 0.3's own
//! filesystem and its streams (`append3:PATH=TEXT`, `cat3:PATH`), or lists a directory with it
//! (`ls3:PATH`).

use lamina_test_components::preopen;
use wasip3::cli::{environment, stdout};
use wasip3::wit_stream;

wasip3::cli::command::export!(Command);

struct Command;

async fn print(text: String) {
    let (mut tx, rx) = wit_stream::new();
    futures::join!(async { stdout::write_via_stream(rx).await.expect("stdout") }, async {
        tx.write_all(text.into_bytes()).await;
        drop(tx);
    });
}

async fn fetch(url: &str) -> String {
    let request = match lamina_test_components::get_request(url) {
        Ok(r) => r,
        Err(e) => return format!("error {e:?}\n"),
    };
    match wasip3::http::client::send(request).await {
        Ok(response) => format!("status {}\n", response.get_status_code()),
        Err(e) => format!("error {e:?}\n"),
    }
}

/// Connects a TCP socket to an IPv4 `ADDRESS:PORT`: `connected`, or the error code.
async fn connect(target: &str) -> String {
    use wasip3::sockets::types::{IpAddressFamily, IpSocketAddress, Ipv4SocketAddress, TcpSocket};
    let Some((ip, port)) = target.rsplit_once(':') else { return "bad target\n".into() };
    let octets: Vec<u8> = ip.split('.').filter_map(|o| o.parse().ok()).collect();
    let (Ok(port), [a, b, c, d]) = (port.parse::<u16>(), octets.as_slice()) else {
        return "bad target\n".into();
    };
    let socket = match TcpSocket::create(IpAddressFamily::Ipv4) {
        Ok(s) => s,
        Err(e) => return format!("socket error {e:?}\n"),
    };
    let address = IpSocketAddress::Ipv4(Ipv4SocketAddress { port, address: (*a, *b, *c, *d) });
    match socket.connect(address).await {
        Ok(()) => "connected\n".into(),
        Err(e) => format!("connect error {e:?}\n"),
    }
}

/// Appends a line to a file: `appended`, or the error.
fn append(path: &str, text: &str) -> String {
    use std::io::Write as _;
    let written =
        std::fs::OpenOptions::new().create(true).append(true).open(path).and_then(|mut f| writeln!(f, "{text}"));
    match written {
        Ok(()) => "appended\n".into(),
        Err(e) => format!("cannot append to {path}: {e}\n"),
    }
}

/// Appends a line to a file through WASI 0.3's `append-via-stream`.
async fn append3(path: &str, text: &str) -> String {
    use wasip3::filesystem::types::{DescriptorFlags, OpenFlags, PathFlags};
    let Some((dir, rest)) = preopen(path) else { return format!("no preopen holds {path}\n") };
    let file = match dir.open_at(PathFlags::empty(), rest, OpenFlags::CREATE, DescriptorFlags::WRITE).await {
        Ok(f) => f,
        Err(e) => return format!("cannot open {path}: {e:?}\n"),
    };
    let (mut tx, rx) = wit_stream::new();
    let done = file.append_via_stream(rx);
    let line = format!("{text}\n").into_bytes();
    let ((), result) = futures::join!(
        async {
            tx.write_all(line).await;
            drop(tx);
        },
        async { done.await }
    );
    match result {
        Ok(()) => "appended\n".into(),
        Err(e) => format!("cannot append to {path}: {e:?}\n"),
    }
}

/// Prints a file through WASI 0.3's `read-via-stream`.
async fn cat3(path: &str) -> String {
    use wasip3::filesystem::types::{DescriptorFlags, OpenFlags, PathFlags};
    let Some((dir, rest)) = preopen(path) else { return format!("no preopen holds {path}\n") };
    let file = match dir.open_at(PathFlags::empty(), rest, OpenFlags::empty(), DescriptorFlags::READ).await {
        Ok(f) => f,
        Err(e) => return format!("cannot read {path}: {e:?}\n"),
    };
    let (rx, done) = file.read_via_stream(0);
    let (data, result) = futures::join!(rx.collect(), async { done.await });
    match result {
        Ok(()) => String::from_utf8_lossy(&data).into_owned(),
        Err(e) => format!("cannot read {path}: {e:?}\n"),
    }
}

/// Lists a directory through WASI 0.3's `read-directory`: its entries' names, sorted, and
/// the size of each file (`stat-at`).
async fn ls3(path: &str) -> String {
    use wasip3::filesystem::types::{DescriptorType, PathFlags};
    let Some((dir, rest)) = preopen(path) else { return format!("no preopen holds {path}\n") };
    let dir = if rest == "." {
        dir
    } else {
        use wasip3::filesystem::types::{DescriptorFlags, OpenFlags};
        match dir.open_at(PathFlags::empty(), rest, OpenFlags::DIRECTORY, DescriptorFlags::READ).await {
            Ok(d) => d,
            Err(e) => return format!("cannot open {path}: {e:?}\n"),
        }
    };
    let (rx, done) = dir.read_directory();
    let (entries, result) = futures::join!(rx.collect(), async { done.await });
    if let Err(e) = result {
        return format!("cannot list {path}: {e:?}\n");
    }
    let mut lines = Vec::new();
    for entry in entries {
        let line = match entry.type_ {
            DescriptorType::Directory => format!("{}/", entry.name),
            _ => match dir.stat_at(PathFlags::empty(), entry.name.clone()).await {
                Ok(stat) => format!("{} {}", entry.name, stat.size),
                Err(e) => format!("{} {e:?}", entry.name),
            },
        };
        lines.push(line);
    }
    lines.sort();
    lines.into_iter().map(|l| l + "\n").collect()
}

impl wasip3::exports::cli::run::Guest for Command {
    async fn run() -> Result<(), ()> {
        let args = environment::get_arguments();
        let greeting = environment::get_environment()
            .into_iter()
            .find(|(k, _)| k == "GREETING")
            .map_or_else(|| "hello".to_owned(), |(_, v)| v);
        print(format!("{greeting} from WASI 0.3: {}\n", args.join(" "))).await;
        for arg in args.iter().skip(1) {
            if let Some(url) = arg.strip_prefix("fetch:") {
                print(fetch(url).await).await;
            }
            if let Some(target) = arg.strip_prefix("connect:") {
                print(connect(target).await).await;
            }
            if let Some((path, text)) = arg.strip_prefix("append:").and_then(|a| a.split_once('=')) {
                print(append(path, text)).await;
            }
            if let Some(path) = arg.strip_prefix("cat:") {
                print(std::fs::read_to_string(path).unwrap_or_else(|e| format!("cannot read {path}: {e}\n"))).await;
            }
            if let Some((path, text)) = arg.strip_prefix("append3:").and_then(|a| a.split_once('=')) {
                print(append3(path, text).await).await;
            }
            if let Some(path) = arg.strip_prefix("cat3:") {
                print(cat3(path).await).await;
            }
            if let Some(path) = arg.strip_prefix("ls3:") {
                print(ls3(path).await).await;
            }
            if let Some(code) = arg.strip_prefix("exit:") {
                let code: u8 = code.parse().unwrap_or(1);
                wasip3::cli::exit::exit_with_code(code);
            }
            if arg == "fail" {
                return Err(());
            }
            if arg == "spin" {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
        }
        Ok(())
    }
}
