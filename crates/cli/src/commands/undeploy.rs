//! `lamina undeploy`: removes a workload from the continuum.

use super::control_client::client;
use crate::cli::UndeployArgs;

pub(crate) fn undeploy(args: UndeployArgs) -> anyhow::Result<i32> {
    client(&args.control, true)?.undeploy(&args.name)?;
    println!("undeployed {}", args.name);
    Ok(0)
}
