//! Allocates memory in 1 MiB steps until told to stop (first argument, in MiB; default: forever).
fn main() {
    let limit: Option<usize> = std::env::args().nth(1).and_then(|a| a.parse().ok());
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    loop {
        if limit.is_some_and(|l| blocks.len() >= l) {
            break;
        }
        let mut block = vec![0u8; 1 << 20];
        block[0] = 1;
        blocks.push(std::hint::black_box(block));
    }
    println!("allocated {} MiB", blocks.len());
}
