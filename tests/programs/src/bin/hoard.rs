//! Creates files in the directory given as first argument and keeps every one open until the
//! host refuses one; prints how many it held and why the next failed. The sealed-directory
//! tests run it to show that one guest cannot take its host's file descriptors.
fn main() {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "/data".to_owned());
    let mut held = Vec::new();
    let refused = loop {
        if held.len() >= 100_000 {
            break "nothing".to_owned();
        }
        match std::fs::File::create(format!("{dir}/f{}", held.len())) {
            Ok(f) => held.push(f),
            Err(e) => break e.to_string(),
        }
    };
    println!("held {} open; the next was refused: {refused}", held.len());
    // Closing one makes room for another.
    held.pop();
    match std::fs::File::create(format!("{dir}/again")) {
        Ok(_) => println!("after closing one: opened another"),
        Err(e) => println!("after closing one: {e}"),
    }
}
