//! Reads the secrets named on its command line (default: `api-token`) and says what it got,
//! without printing a value. Exits non-zero when one was not given.
//!
//! lamina run secret-consumer.wasm --secret api-token=./token.txt -- api-token

fn main() {
    let mut names: Vec<String> = std::env::args().skip(1).collect();
    if names.is_empty() {
        names.push("api-token".into());
    }
    println!("secrets given to this workload: {:?}", lamina_sdk::secrets::names());
    let mut missing = false;
    for name in &names {
        match lamina_sdk::secrets::get(name) {
            Ok(value) => {
                // A real program would use the value; this one only shows that it has it.
                let checksum = value.iter().fold(0u32, |acc, b| acc.rotate_left(5) ^ u32::from(*b));
                println!("secret `{name}`: {} bytes (checksum {checksum:08x})", value.len());
            }
            Err(e) => {
                eprintln!("secret `{name}`: {e}");
                missing = true;
            }
        }
    }
    std::process::exit(if missing { 2 } else { 0 });
}
