//! Export: the deployment setup would make, as infrastructure-as-code for teams that deploy
//! with CloudFormation (StackSets included) or Terraform. Pure code: documents from the spec,
//! the same typed policy documents setup writes.

mod cloudformation;
mod terraform;

pub use cloudformation::{CloudFormation, cloudformation};
pub use terraform::{TerraformProfiles, terraform};

use crate::plan::deployment_tags;
use crate::policy::build::GrantSpec;

/// The key's description, as setup writes it.
fn key_description(spec: &GrantSpec) -> String {
    crate::plan::key_description(spec.alias.as_str())
}

/// The deployment's tags, in a stable order.
fn tags(spec: &GrantSpec) -> Vec<(String, String)> {
    deployment_tags(spec)
}
