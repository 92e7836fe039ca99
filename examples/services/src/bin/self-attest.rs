//! Asks the node for evidence about itself over up to 64 bytes of its own data (the first
//! argument, as text), prints what it got, and writes the envelope to the path given as the
//! second argument (in a preopened directory) for `lamina verify`.
//!
//! lamina run self-attest.wasm --attestation --dir ./out::/out -- "session 42" /out/evidence.cbor

use lamina_sdk::attestation;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let user_data = args.get(1).map_or("hello from a guest", String::as_str);
    println!("module hash: {}", hex(&attestation::module_hash()));
    let evidence = match attestation::attest(user_data.as_bytes()) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("no evidence: {e}");
            std::process::exit(2);
        }
    };
    println!("platform: {} (hardware-backed: {})", evidence.platform, evidence.hardware_backed);
    println!("user data: {user_data:?} ({} bytes, the claims' nonce)", user_data.len());
    println!("envelope: {} bytes", evidence.envelope.len());
    match &evidence.result {
        Some(ear) => println!("attestation result: {ear}"),
        None => println!("attestation result: none (the node has no verifier configured)"),
    }
    if let Some(path) = args.get(2) {
        if let Err(e) = std::fs::write(path, &evidence.envelope) {
            eprintln!("cannot write {path}: {e}");
            std::process::exit(1);
        }
        println!("wrote the envelope to {path}");
    }
}
