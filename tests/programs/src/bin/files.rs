//! Reads `input.txt` from a preopened directory and writes `output.txt` beside it.
//! Usage: files DIR. Exits 3 when the directory cannot be written.
fn main() {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "/data".into());
    let input = std::fs::read_to_string(format!("{dir}/input.txt")).expect("input.txt is readable");
    println!("read {} bytes", input.len());
    let upper = input.to_uppercase();
    if let Err(e) = std::fs::write(format!("{dir}/output.txt"), upper) {
        eprintln!("cannot write output.txt: {e}");
        std::process::exit(3);
    }
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("the directory is listable")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    println!("files: {}", names.join(" "));
}
