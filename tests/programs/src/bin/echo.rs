//! Echoes its arguments, the environment variables it was given, and standard input.
use std::io::Read;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    println!("args: {}", args.join(" "));
    let mut vars: Vec<(String, String)> = std::env::vars().collect();
    vars.sort();
    for (k, v) in vars {
        println!("env: {k}={v}");
    }
    if args.iter().any(|a| a == "--stdin") {
        let mut input = String::new();
        std::io::stdin().read_to_string(&mut input).expect("stdin is readable");
        println!("stdin: {input}");
    }
    eprintln!("echo: done");
}
