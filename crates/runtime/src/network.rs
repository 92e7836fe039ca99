//! The network a guest may reach: outgoing HTTP through [`HttpHooks`] and sockets through the
//! address check given to wasmtime-wasi, both from one [`NetworkRules`]. Nothing is allowed
//! unless a rule allows it; every refusal is logged with the destination, and the guest sees
//! the error WASI defines for it (`HTTP-request-denied`, `access-denied`).

use std::net::SocketAddr;
use std::sync::Arc;

use lamina_types::{NetworkRules, SocketProtocol};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::sockets::SocketAddrUse;
use wasmtime_wasi_http::{RequestOptions, WasiBody, WasiHttpHooks};

/// Where the log lines about network refusals go.
const LOG_TARGET: &str = "lamina::network";

/// wasi:http hooks that check every outgoing request against the rules before sending it
/// (TLS by rustls, roots from webpki-roots).
#[derive(Clone, Debug, Default)]
pub(crate) struct HttpHooks {
    rules: Arc<NetworkRules>,
}

impl HttpHooks {
    pub(crate) fn new(rules: Arc<NetworkRules>) -> Self {
        Self { rules }
    }

    /// Whether the rules allow a request to this URI, and what to call it in the log.
    fn check(&self, uri: &http::Uri) -> Result<(), String> {
        let scheme = uri.scheme_str().unwrap_or("https");
        let host = uri.host().unwrap_or_default();
        let port = uri.port_u16().unwrap_or(if scheme.eq_ignore_ascii_case("http") { 80 } else { 443 });
        if self.rules.allows_http(scheme, host, port) { Ok(()) } else { Err(format!("{scheme}://{host}:{port}")) }
    }
}

type SendFuture = Box<
    dyn Future<
            Output = Result<
                (http::Response<WasiBody>, Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>),
                wasmtime_wasi_http::Error,
            >,
        > + Send,
>;

impl WasiHttpHooks for HttpHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> SendFuture {
        drop(fut);
        if let Err(destination) = self.check(request.uri()) {
            tracing::warn!(
                target: LOG_TARGET,
                "denied the guest's HTTP request to {destination}: no --allow-http rule matches it"
            );
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        Box::new(async move {
            use http_body_util::BodyExt;
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((response.map(BodyExt::boxed_unsync), Box::new(io) as Box<dyn Future<Output = _> + Send>))
        })
    }
}

/// Gives a WASI context the socket allowances of the rules: TCP and UDP only when some rule
/// names them, every address checked, name lookups only when allowed.
pub(crate) fn apply_socket_rules(builder: &mut WasiCtxBuilder, rules: &Arc<NetworkRules>) {
    let tcp = rules.sockets.iter().any(|r| r.allows_protocol(SocketProtocol::Tcp));
    let udp = rules.sockets.iter().any(|r| r.allows_protocol(SocketProtocol::Udp));
    builder.allow_tcp(tcp).allow_udp(udp).allow_ip_name_lookup(rules.name_lookup);
    if !(tcp || udp) {
        return;
    }
    let rules = Arc::clone(rules);
    builder.socket_addr_check(move |addr, use_| {
        let allowed = socket_allowed(&rules, addr, use_);
        if !allowed {
            tracing::warn!(
                target: LOG_TARGET,
                "denied the guest's socket {} {addr}: no --allow-socket rule matches it",
                use_name(use_)
            );
        }
        Box::pin(async move { allowed })
    });
}

fn socket_allowed(rules: &NetworkRules, addr: SocketAddr, use_: SocketAddrUse) -> bool {
    let (protocol, binding) = match use_ {
        SocketAddrUse::TcpBind => (SocketProtocol::Tcp, true),
        // Listening is always checked, on whatever port: an ephemeral one is still open to all.
        SocketAddrUse::TcpListen => (SocketProtocol::Tcp, false),
        SocketAddrUse::TcpConnect => (SocketProtocol::Tcp, false),
        // A listener the rules allowed takes whoever connects.
        SocketAddrUse::TcpAccept => return true,
        SocketAddrUse::UdpBind => (SocketProtocol::Udp, true),
        SocketAddrUse::UdpSend => (SocketProtocol::Udp, false),
        // Datagrams are taken from hosts some UDP rule names, from any of their ports (a
        // server's clients and a client's server answer from ports of their own).
        SocketAddrUse::UdpReceive => {
            return rules.sockets.iter().any(|r| r.allows_socket_host(SocketProtocol::Udp, addr.ip()));
        }
    };
    // A client's socket is bound to an ephemeral port first (implicitly, or explicitly to port
    // 0): allowed whenever the protocol is; what it then reaches is checked.
    if binding && addr.port() == 0 {
        return true;
    }
    rules.allows_socket(protocol, addr.ip(), addr.port())
}

fn use_name(use_: SocketAddrUse) -> &'static str {
    match use_ {
        SocketAddrUse::TcpBind => "TCP bind to",
        SocketAddrUse::TcpListen => "TCP listen on",
        SocketAddrUse::TcpAccept => "TCP accept from",
        SocketAddrUse::TcpConnect => "TCP connect to",
        SocketAddrUse::UdpBind => "UDP bind to",
        SocketAddrUse::UdpSend => "UDP send to",
        SocketAddrUse::UdpReceive => "UDP receive from",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(sockets: &[&str]) -> NetworkRules {
        let sockets: Vec<String> = sockets.iter().map(|s| (*s).to_owned()).collect();
        NetworkRules::parse(&[], &sockets, false).expect("rules")
    }

    #[test]
    fn sockets_reach_only_what_a_rule_names_and_bind_ephemeral_ports() {
        let r = rules(&["tcp://127.0.0.1:5432", "udp://10.0.0.0/8:53"]);
        let at = |s: &str| s.parse::<SocketAddr>().expect("addr");
        assert!(socket_allowed(&r, at("127.0.0.1:5432"), SocketAddrUse::TcpConnect));
        assert!(!socket_allowed(&r, at("127.0.0.1:5433"), SocketAddrUse::TcpConnect));
        assert!(!socket_allowed(&r, at("127.0.0.1:5432"), SocketAddrUse::UdpSend));
        assert!(socket_allowed(&r, at("0.0.0.0:0"), SocketAddrUse::TcpBind));
        assert!(!socket_allowed(&r, at("0.0.0.0:5432"), SocketAddrUse::TcpListen));
        // A client-only rule does not let a guest listen on an ephemeral port.
        assert!(!socket_allowed(&r, at("0.0.0.0:0"), SocketAddrUse::TcpListen));
        assert!(socket_allowed(&r, at("10.1.1.1:53"), SocketAddrUse::UdpSend));
        assert!(socket_allowed(&r, at("10.1.1.1:40000"), SocketAddrUse::UdpReceive));
        assert!(!socket_allowed(&r, at("192.168.1.1:53"), SocketAddrUse::UdpReceive));
    }

    #[test]
    fn http_requests_are_checked_by_scheme_host_and_port() {
        let rules = NetworkRules::parse(&["http://127.0.0.1:8080".into()], &[], false).expect("rules");
        let hooks = HttpHooks::new(Arc::new(rules));
        assert!(hooks.check(&"http://127.0.0.1:8080/x".parse().expect("uri")).is_ok());
        let denied = hooks.check(&"https://127.0.0.1:8080/x".parse().expect("uri")).expect_err("https");
        assert_eq!(denied, "https://127.0.0.1:8080");
        assert!(hooks.check(&"http://example.com/".parse().expect("uri")).is_err());
    }
}
