//! Export: the deployment setup would make, as infrastructure-as-code for teams that deploy
//! with CloudFormation (StackSets included) or Terraform. Pure code: documents from the spec,
//! the same typed policy documents setup writes.

mod cloudformation;
mod terraform;

pub use cloudformation::{CloudFormation, cloudformation, user_template, user_template_body};
pub use terraform::{TerraformProfiles, terraform};
