//! Attestation costs, side by side in one run (see docs/benchmarks.md for the targets):
//! sim attest + verify; DCAP quote verification (SGX, TDX); SEV-SNP report verification;
//! swtpm quote + verify; and a mutually attested TLS handshake against a plain rustls one with
//! the same key type. With `LAMINA_BENCH_RECORDS` set it writes the medians as the
//! `attestation` record; `LAMINA_BENCH_QUICK=1` makes the run brief.
//!
//! Run: `cargo bench -p lamina-attest --bench verify`
#![allow(clippy::expect_used, reason = "a benchmark's set-up: a failure stops it with its message")]

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use criterion::Criterion;
use lamina_attest::{Expect, Inputs, Policy, TrustAnchors, Verifier};
use lamina_bench_record::{CriterionMedians, Record};
use lamina_tee::sim::SimPlatform;
use lamina_types::{Claims, ModuleHash, PlatformKind};

fn vectors() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/testvectors"))
}

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(vectors().join(rel)).unwrap_or_else(|e| panic!("test vector {rel}: {e}"))
}

fn at(rfc3339: &str) -> SystemTime {
    humantime::parse_rfc3339(rfc3339).expect("time")
}

fn sim(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let platform = SimPlatform::open(dir.path()).expect("sim");
    let mut anchors = TrustAnchors::default();
    let policy = format!("allow_sim = true\nmodule_hashes = [\"{}\"]\n", ModuleHash::of(b"app"));
    let policy = Policy::parse(&policy, Path::new("."), &mut anchors).expect("policy");
    let verifier = Verifier::new(Some(policy), anchors);
    c.bench_function("sim attest+verify", |b| {
        b.iter(|| {
            let claims = Claims {
                platform: PlatformKind::Sim,
                runtime_measurement: vec![1; 32],
                module_hash: Some(ModuleHash::of(b"app")),
                config_digest: None,
                instance_key: None,
                nonce: vec![7; 32],
                issued_at: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            };
            let envelope = lamina_tee::attest(&platform, &claims).expect("attests");
            let a = verifier.appraise(&envelope, &Expect { nonce: Some(&[7; 32]), ..Expect::now() });
            assert!(a.verified());
            black_box(a);
        })
    });
}

fn dcap(c: &mut Criterion) {
    let anchors = TrustAnchors::default();
    for (name, quote, collateral, when) in [
        ("dcap sgx quote verify", "dcap-qvl/sgx_quote", "dcap-qvl/sgx_quote_collateral.json", "2025-06-25T00:00:00Z"),
        ("dcap tdx quote verify", "dcap-qvl/tdx_quote", "dcap-qvl/tdx_quote_collateral.json", "2025-06-25T00:00:00Z"),
    ] {
        let (quote, collateral) = (read(quote), read(collateral));
        let inputs = Inputs {
            evidence: &quote,
            endorsements: &[],
            collateral: Some(&collateral),
            anchors: &anchors,
            at: at(when),
        };
        assert!(lamina_attest::dcap::verify(&inputs).verified(), "{name} verifies");
        c.bench_function(name, |b| b.iter(|| black_box(lamina_attest::dcap::verify(&inputs))));
    }
}

fn snp(c: &mut Criterion) {
    let anchors = TrustAnchors::default();
    let report = read("virtee-sev/report_milan.hex");
    let vcek = vec![read("virtee-sev/vcek_milan.der")];
    let inputs =
        Inputs { evidence: &report, endorsements: &vcek, collateral: None, anchors: &anchors, at: SystemTime::now() };
    assert!(lamina_attest::snp::verify(&inputs).verified(), "the SNP report verifies");
    c.bench_function("snp report verify", |b| b.iter(|| black_box(lamina_attest::snp::verify(&inputs))));
}

/// Benchmarks a swtpm quote and its verification; false when LAMINA_SKIP_SWTPM=1 skips it.
fn tpm(c: &mut Criterion) -> bool {
    use lamina_tee::Platform as _;
    let Some(swtpm) = lamina_tee_tpm::swtpm::Swtpm::start_unless_skipped().expect("swtpm starts") else { return false };
    let state = tempfile::tempdir().expect("temp dir");
    let platform = lamina_tee_tpm::TpmPlatform::open(swtpm.tcti(), state.path()).expect("TPM opens");
    let anchors = TrustAnchors {
        tpm_roots: swtpm.ca_certificates().to_vec(),
        tpm_enrolled_aks: vec![platform.ak_name().to_vec()],
        ..TrustAnchors::default()
    };
    c.bench_function("swtpm quote+verify", |b| {
        b.iter(|| {
            let evidence = platform.evidence(&[3; 64]).expect("quotes");
            let inputs = Inputs {
                evidence: &evidence.native,
                endorsements: &evidence.endorsements,
                collateral: None,
                anchors: &anchors,
                at: SystemTime::now(),
            };
            let a = lamina_attest::tpm::verify(&inputs);
            assert!(a.verified(), "{:?}", a.reasons());
            black_box(a);
        })
    });
    true
}

/// Runs one full TLS 1.3 handshake in memory (no sockets: the cost of the protocol and its crypto).
fn handshake(client: &Arc<rustls::ClientConfig>, server: &Arc<rustls::ServerConfig>) {
    let name = rustls::pki_types::ServerName::try_from("node.lamina.test").expect("name");
    let mut client = rustls::ClientConnection::new(client.clone(), name).expect("client");
    let mut server = rustls::ServerConnection::new(server.clone()).expect("server");
    let mut buf = Vec::new();
    for _ in 0..16 {
        if !client.is_handshaking() && !server.is_handshaking() {
            return;
        }
        buf.clear();
        client.write_tls(&mut buf).expect("client writes");
        server.read_tls(&mut buf.as_slice()).expect("server reads");
        server.process_new_packets().expect("server accepts the client");
        buf.clear();
        server.write_tls(&mut buf).expect("server writes");
        client.read_tls(&mut buf.as_slice()).expect("client reads");
        client.process_new_packets().expect("client accepts the server");
    }
    panic!("the handshake did not finish");
}

fn attested_cert(platform: &SimPlatform, module: &[u8]) -> lamina_attest::ratls::AttestedCert {
    let request = lamina_attest::ratls::CertificateRequest::new().expect("key");
    let claims = request.claims(PlatformKind::Sim, vec![1; 32], Some(ModuleHash::of(module)), None);
    let envelope = lamina_tee::attest(platform, &claims).expect("attests");
    request.finish(&envelope).expect("certificate")
}

fn tls(c: &mut Criterion) {
    use lamina_attest::ratls::{AttestedClientVerifier, AttestedServerVerifier, client_config, server_config};
    let (a_dir, b_dir) = (tempfile::tempdir().expect("dir"), tempfile::tempdir().expect("dir"));
    let (a, b) = (SimPlatform::open(a_dir.path()).expect("sim"), SimPlatform::open(b_dir.path()).expect("sim"));
    let policy = format!(
        "allow_sim = true\nmodule_hashes = [\"{}\", \"{}\"]\n",
        ModuleHash::of(b"client"),
        ModuleHash::of(b"server")
    );
    let verifier = || {
        let mut anchors = TrustAnchors::default();
        Verifier::new(Some(Policy::parse(&policy, Path::new("."), &mut anchors).expect("policy")), anchors)
    };
    let (client_cert, server_cert) = (attested_cert(&a, b"client"), attested_cert(&b, b"server"));
    // Every handshake appraises the peer afresh: no cache of verified certificates.
    let client = Arc::new(
        client_config(&client_cert, AttestedServerVerifier::new(verifier()).with_cache_ttl(Duration::ZERO))
            .expect("client config"),
    );
    let server = Arc::new(
        server_config(&server_cert, AttestedClientVerifier::new(verifier()).with_cache_ttl(Duration::ZERO))
            .expect("server config"),
    );

    // The baseline: mutual TLS with the same key type (ECDSA P-256), a CA and WebPKI verifiers.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("CA");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf = || {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let cert = rcgen::CertificateParams::new(vec!["node.lamina.test".to_owned()])
            .expect("params")
            .signed_by(&key, &issuer)
            .expect("leaf");
        (vec![cert.der().clone()], rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).expect("key"))
    };
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).expect("root");
    let roots = Arc::new(roots);
    let (client_chain, client_key) = leaf();
    let (server_chain, server_key) = leaf();
    let mut plain_client = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("versions")
        .with_root_certificates(roots.clone())
        .with_client_auth_cert(client_chain, client_key)
        .expect("client");
    plain_client.resumption = rustls::client::Resumption::disabled();
    let client_verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider.clone()).build().expect("verifier");
    let mut plain_server = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("versions")
        .with_client_cert_verifier(client_verifier)
        .with_single_cert(server_chain, server_key)
        .expect("server");
    plain_server.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    plain_server.send_tls13_tickets = 0;
    let (plain_client, plain_server) = (Arc::new(plain_client), Arc::new(plain_server));

    let mut group = c.benchmark_group(TLS_GROUP);
    group.bench_function(TLS_PLAIN, |b| b.iter(|| handshake(&plain_client, &plain_server)));
    group.bench_function(TLS_ATTESTED, |b| b.iter(|| handshake(&client, &server)));
    group.finish();
}

const TLS_GROUP: &str = "mutual TLS 1.3 handshake, ECDSA P-256";
const TLS_PLAIN: &str = "plain rustls";
const TLS_ATTESTED: &str = "attested (sim evidence, appraised every time)";

/// The `attestation` record: criterion's medians, in ms.
fn record(medians: &CriterionMedians, swtpm: bool) -> Record {
    let mut record =
        Record::new("attestation", "Attestation and attested TLS", "cargo bench -p lamina-attest --bench verify");
    let mut ms = |id: &str, label: &str, group: &str, function: Option<&str>| -> Option<f64> {
        match medians.median_ns(group, function, None) {
            Ok(ns) => {
                record.metric(id, label, ns / 1e6, "ms");
                Some(ns / 1e6)
            }
            Err(e) => {
                eprintln!("verify: {e}");
                record.note(&format!("no criterion median for {id}: {e}"));
                None
            }
        }
    };
    ms("sim.ms", "sim attest + verify", "sim attest+verify", None);
    if swtpm {
        ms("swtpm.ms", "swtpm quote + verify", "swtpm quote+verify", None);
    }
    ms("dcap_sgx.ms", "DCAP SGX quote verify", "dcap sgx quote verify", None);
    ms("dcap_tdx.ms", "DCAP TDX quote verify", "dcap tdx quote verify", None);
    ms("snp.ms", "SEV-SNP report verify", "snp report verify", None);
    let plain = ms("tls_plain.ms", "mutual TLS 1.3 handshake, plain rustls", TLS_GROUP, Some(TLS_PLAIN));
    let attested = ms("tls_attested.ms", "mutual TLS 1.3 handshake, attested", TLS_GROUP, Some(TLS_ATTESTED));
    if let (Some(plain), Some(attested)) = (plain, attested) {
        record.metric("tls_ratio", "attested / plain handshake", attested / plain, "ratio");
    }
    if !swtpm {
        record.note("LAMINA_SKIP_SWTPM=1: no swtpm quote + verify");
    }
    record
}

fn main() {
    let c = Criterion::default().configure_from_args();
    // Brief runs (the harness's quick mode): criterion's shortest measurement.
    let mut c = if lamina_bench_record::quick() {
        c.measurement_time(lamina_bench_record::QUICK_MEASUREMENT)
            .warm_up_time(lamina_bench_record::QUICK_WARM_UP)
            .sample_size(lamina_bench_record::QUICK_SAMPLES)
    } else {
        c.measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_millis(500))
    };
    let medians = CriterionMedians::new().written_since(SystemTime::now());
    sim(&mut c);
    dcap(&mut c);
    snp(&mut c);
    let swtpm = tpm(&mut c);
    tls(&mut c);
    c.final_summary();
    // `cargo bench` passes `--bench`; under `cargo test` the bench only checks that it runs.
    if lamina_bench_record::measuring()
        && let Some(path) = record(&medians, swtpm).write_if_requested().expect("writes the record")
    {
        eprintln!("record: {}", path.display());
    }
}
