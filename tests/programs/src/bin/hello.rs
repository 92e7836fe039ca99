//! Prints a greeting: the smallest useful guest.
fn main() {
    println!("Hello from Lamina on {}!", std::env::consts::ARCH);
}
