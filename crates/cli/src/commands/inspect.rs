//! `lamina inspect`: what a file is, without running it.

use anyhow::Context as _;
use lamina_runtime::{Description, Item};

use crate::cli::{Format, InspectArgs};

pub(crate) fn inspect(args: InspectArgs) -> anyhow::Result<()> {
    let bytes = std::fs::read(&args.file).with_context(|| format!("cannot read {}", args.file.display()))?;
    let description =
        lamina_runtime::describe(&bytes).with_context(|| format!("cannot inspect {}", args.file.display()))?;
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&description)?),
        Format::Text => print_text(&description),
    }
    Ok(())
}

fn print_text(description: &Description) {
    match description {
        Description::Module { module_hash, imports, exports } => {
            println!("kind:    module (WASI preview 1)");
            println!("hash:    {module_hash}");
            print_items("imports", imports);
            print_items("exports", exports);
        }
        Description::Component { module_hash, imports, exports } => {
            println!("kind:    component (WASI preview 2)");
            println!("hash:    {module_hash}");
            print_items("imports", imports);
            print_items("exports", exports);
        }
        Description::Artifact(h) => {
            println!("kind:    artifact ({})", h.kind);
            println!("hash:    {} (of the original .wasm)", h.module_hash);
            println!("target:  {}", h.target);
            println!("engine:  {}", h.engine);
            println!("profile: {}", h.profile);
            println!("fuel:    {}", if h.fuel { "metered" } else { "not metered" });
            println!("code:    {} bytes, sha256:{}", h.code_len, h.code_sha256);
        }
        _ => println!("{description:?}"),
    }
}

fn print_items(title: &str, items: &[Item]) {
    println!("{title}: {}", items.len());
    for item in items {
        println!("  {:<9} {}", item.kind, item.name);
    }
}
