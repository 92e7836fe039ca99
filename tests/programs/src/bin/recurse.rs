//! Recurses without bound on the Wasm stack itself (scalar arguments only, so nothing spills to
//! the shadow stack in linear memory): the engine's stack limit must stop it.
#[inline(never)]
#[allow(unconditional_recursion, reason = "this guest exists to overflow the stack")]
fn down(n: u64) -> u64 {
    std::hint::black_box(down(std::hint::black_box(n + 1))).wrapping_add(n)
}

fn main() {
    println!("recursing");
    println!("{}", down(0));
}
