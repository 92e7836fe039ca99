//! Executes `unreachable` from a named function, so the backtrace has something to show.
#[inline(never)]
fn explode(depth: u32) {
    if std::hint::black_box(depth) == 0 {
        core::arch::wasm32::unreachable();
    }
    explode(depth - 1);
}

fn main() {
    println!("about to trap");
    explode(std::hint::black_box(2));
}
