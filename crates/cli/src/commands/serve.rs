//! `lamina serve`: load an HTTP component, listen, serve until SIGTERM or Ctrl-C, then let the
//! requests in flight finish.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use lamina_runtime::{
    Attester, Engine, EngineOptions, HttpConfig, HttpHandler, Identity, KvStore, Limits, Output, Reuse, Services,
    WasiConfig,
};
use lamina_seal::{SealTo, VolumeOptions};
use lamina_serve::{AccessLog, Bounds, Metrics, Server};
use lamina_types::Profile;

use crate::cli::ServeArgs;
use crate::commands::run::{Volumes, cache, network_rules, read_secrets, sealed_mounts};

pub(crate) fn serve(args: ServeArgs) -> anyhow::Result<i32> {
    let bytes = std::fs::read(&args.file).with_context(|| format!("cannot read {}", args.file.display()))?;
    if lamina_runtime::artifact::is_artifact(&bytes) {
        bail!(
            "{} is a compiled artifact; `lamina serve` takes the component's .wasm (it compiles it through the \
             authenticated cache)",
            args.file.display()
        );
    }
    let profile = args.engine.profile.unwrap_or(Profile::Server);
    let options = EngineOptions { profile, target: None, fuel: args.fuel.is_some(), interruptible: true };
    let engine = Engine::new(options).context("cannot start the engine")?;
    let cache = cache(&args.cache, &args.platform);
    let program = lamina_runtime::Program::load(&engine, &bytes, cache.as_ref())
        .with_context(|| format!("cannot load {}", args.file.display()))?;
    let wasi = WasiConfig {
        env: args.env.clone(),
        dirs: args.dirs.clone(),
        network: network_rules(&args.network)?,
        stdout: Output::Inherit,
        stderr: Output::Inherit,
        ..WasiConfig::default()
    };
    let mut config = HttpConfig {
        wasi,
        limits: Limits { max_memory: args.max_memory, timeout: Some(args.timeout), fuel: args.fuel },
        reuse: Reuse {
            max_requests: usize::try_from(args.instance_reuse).unwrap_or(usize::MAX),
            max_concurrent: usize::try_from(args.instance_concurrency).unwrap_or(usize::MAX),
            idle: args.idle_instance_timeout,
        },
        services: Services { secrets: Some(Arc::new(read_secrets(&args.secrets)?)), ..Services::default() },
    };
    let bounds = Bounds {
        max_connections: args.max_connections.max(1),
        max_requests: args.max_concurrent_requests.max(1),
        header_timeout: args.header_timeout,
        max_header_bytes: usize::try_from(args.max_header_size.bytes()).unwrap_or(usize::MAX),
        max_body_bytes: args.max_body_size.bytes(),
        drain_timeout: args.drain_timeout,
    };
    let access = match &args.access_log {
        None => None,
        Some(path) if path.as_os_str() == "-" => Some(AccessLog::new(Box::new(std::io::stderr()))),
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open the access log {}", path.display()))?;
            Some(AccessLog::new(Box::new(file)))
        }
    };
    // The platform, opened once for what needs it: the key-value store is sealed with it, and
    // one attester serves the guests' self-attestation and the attested certificate.
    let mut attester = None;
    if args.kv.is_some() || !args.sealed_dirs.is_empty() || args.attestation || args.attested_tls {
        let module = program.identity().context(
            "sealed directories, the key-value store and attestation need a module identity, and this program has none",
        )?;
        let platform = crate::commands::platform::open_platform(&args.platform, Some(&module), args.attested_tls)?;
        let options = VolumeOptions {
            seal_to: SealTo::Module(module),
            quota: args.sealed_quota.bytes(),
            rollback_protection: true,
        };
        let volumes = Volumes::new(platform.as_ref(), &args.platform, args.danger_sealed_start_over)?;
        config.services.sealed = sealed_mounts(&args.sealed_dirs, &volumes, &options)?;
        if let Some(dir) = &args.kv {
            let options = VolumeOptions { quota: args.kv_quota.bytes(), ..options };
            let volume = volumes
                .open(dir, &options)
                .with_context(|| format!("cannot open the key-value store {}", dir.display()))?;
            config.services.keyvalue = Some(Arc::new(KvStore::new(volume)));
        }
        let identity = Identity {
            runtime_measurement: lamina_tee::runtime_measurement().unwrap_or_else(|_| vec![0; 32]),
            module_hash: module,
            config_digest: Some(config_digest(&args, &config)),
        };
        let shared = Arc::new(Attester::new(platform, identity, None));
        if args.attestation {
            config.services.attestation = Some(Arc::clone(&shared));
        }
        attester = Some(shared);
    }
    let tls = match (&args.tls_cert, &args.tls_key, attester) {
        (_, _, Some(attester)) if args.attested_tls => Some(attested_tls(&args, attester)?),
        (Some(cert), Some(key), _) => Some(plain_tls(cert, key)?),
        _ => None,
    };
    let metrics = Arc::new(Metrics::new());
    let _endpoint = match args.metrics_addr {
        Some(addr) => {
            let collect = {
                let metrics = Arc::clone(&metrics);
                Arc::new(move || metrics.render())
            };
            let endpoint = lamina_metrics::Endpoint::start(addr, collect)
                .with_context(|| format!("cannot serve metrics on {addr}"))?;
            eprintln!("lamina: metrics on http://{}/metrics", endpoint.addr());
            Some(endpoint)
        }
        None => None,
    };
    // This runtime accepts connections and waits for the signal; the server's own threads
    // serve them.
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let handler = HttpHandler::new(&program, config).context("cannot serve this component")?;
        let listener = listen(args.addr)
            .with_context(|| format!("cannot listen on {} (is another server on that port?)", args.addr))?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let mut server = Server::new(listener, tls, handler, bounds, metrics, access);
        if let Some(threads) = args.threads {
            server = server.with_threads(usize::try_from(threads).unwrap_or(1024));
        }
        let addr = server.local_addr().context("the listener has no address")?;
        eprintln!("lamina: serving {} on {scheme}://{addr}/", program.world());
        server.run(shutdown_signal()).await.context("the server failed")?;
        eprintln!("lamina: stopped");
        anyhow::Ok(0)
    })
}

/// The TLS configuration of `--tls-cert` and `--tls-key` (TLS 1.3 and 1.2, HTTP/2 and HTTP/1.1).
fn plain_tls(cert: &std::path::Path, key: &std::path::Path) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .with_context(|| format!("cannot read the certificates in {}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key).with_context(|| format!("cannot read the key in {}", key.display()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .context("cannot configure TLS")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("the certificate and key do not make a TLS identity")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// What the attested certificate's claims call the configuration digest: of what every instance
/// is given and bounded by (the secrets' names, not their values), as
/// [`lamina_runtime::InstanceConfig`] defines it for every host.
fn config_digest(args: &ServeArgs, config: &HttpConfig) -> [u8; 32] {
    let limits = lamina_runtime::Limits { max_memory: args.max_memory, timeout: Some(args.timeout), fuel: args.fuel };
    lamina_runtime::InstanceConfig {
        secrets: args.secrets.iter().map(|(name, _)| name.as_str().to_owned()).collect(),
        sealed_dirs: args.sealed_dirs.iter().map(|d| d.guest.clone()).collect(),
        kv_quota: args.kv.as_ref().map(|_| args.kv_quota.bytes()),
        attestation: args.attestation,
        reuse: Some((args.instance_reuse, args.instance_concurrency)),
        profile: args.engine.profile.unwrap_or(Profile::Server).to_string(),
        ..lamina_runtime::InstanceConfig::new(lamina_runtime::InstanceHost::Serve, &config.wasi, limits)
    }
    .digest()
}

/// The TLS configuration of `--attested-tls`: a certificate whose evidence binds the served
/// module, the configuration and the key, reissued every `--attested-tls-renew` on a thread of
/// its own.
fn attested_tls(args: &ServeArgs, attester: Arc<Attester>) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    use lamina_attest::ratls::{AttestedCert, CertificateRequest};
    let identity = attester.identity().clone();
    let issue = move || -> anyhow::Result<AttestedCert> {
        let request = CertificateRequest::new().context("cannot make the certificate's key")?;
        let envelope = attester.attest_key(request.spki(), request.nonce()).context("the platform cannot attest")?;
        request.finish(&envelope).context("cannot issue the attested certificate")
    };
    let first = issue()?;
    let resolver = Arc::new(
        lamina_serve::RenewableCert::new(first.certificate(), first.private_key())
            .context("cannot use the attested certificate")?,
    );
    let mut tls = lamina_attest::ratls::open_server_config(&first).context("cannot configure TLS")?;
    tls.cert_resolver = resolver.clone();
    let every = args.attested_tls_renew;
    std::thread::Builder::new()
        .name("lamina-cert-renew".into())
        .spawn(move || {
            // After a failure, try again soon (doubling up to the period): the old certificate's
            // claims age towards the relying parties' max_age meanwhile.
            let mut wait = every;
            loop {
                std::thread::sleep(wait);
                let renewed = issue().and_then(|cert| {
                    resolver
                        .replace(cert.certificate(), cert.private_key())
                        .context("cannot use the reissued attested certificate")
                });
                wait = match renewed {
                    Ok(()) => every,
                    Err(e) => {
                        tracing::warn!("cannot reissue the attested certificate (the old one stays): {e:#}");
                        if wait >= every { Duration::from_secs(5).min(every) } else { (wait * 2).min(every) }
                    }
                };
            }
        })
        .context("cannot start the certificate renewal")?;
    eprintln!(
        "lamina: attested TLS for module {}, configuration {}",
        identity.module_hash,
        identity.config_digest.map(hex::encode).unwrap_or_default()
    );
    Ok(Arc::new(tls))
}

/// A listener with a backlog deep enough for bursts of connections (they wait there while every
/// connection slot is taken).
fn listen(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Completes on SIGTERM or Ctrl-C (SIGINT).
async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("cannot watch for SIGTERM ({e}); stop with Ctrl-C");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
