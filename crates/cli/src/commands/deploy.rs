//! `lamina deploy`: uploads a manifest's modules and deploys its workloads.

use anyhow::{Context as _, bail};
use lamina_types::Deployment;

use super::control_client::client;
use crate::cli::DeployArgs;

pub(crate) fn deploy(args: DeployArgs) -> anyhow::Result<i32> {
    let text = std::fs::read_to_string(&args.manifest)
        .with_context(|| format!("cannot read the manifest {}", args.manifest.display()))?;
    // Checked here first, so that mistakes are reported with the file's name.
    let mut deployment = match Deployment::parse(&text) {
        Ok(d) => d,
        Err(e) => bail!("{}: {e}", args.manifest.display()),
    };
    let control = client(&args.control, true)?;
    // Modules given by path are uploaded; the control plane knows them by hash.
    for w in &mut deployment.workloads {
        if let lamina_types::ModuleRef::Path(path) = &w.module {
            let wasm = std::fs::read(path)
                .with_context(|| format!("workload \"{}\": cannot read the module {}", w.name, path.display()))?;
            let uploaded = control
                .upload_module(wasm)
                .with_context(|| format!("workload \"{}\": cannot upload {}", w.name, path.display()))?;
            w.module = lamina_types::ModuleRef::Hash(uploaded.module);
        }
    }
    let deployed = control.deploy(&deployment)?;
    println!("deployed {}", deployed.deployed.join(", "));
    for u in &deployed.unplaced {
        eprintln!("warning: {}: {} replica(s) not placed: {}", u.workload, u.missing, u.reason);
    }
    Ok(0)
}
