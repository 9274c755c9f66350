//! `kmsxacct policies`: print the documents setup would write, for Terraform or CDK users.

use super::{Context, DEFAULT_ALIAS, role_name};
use crate::error::Result;
use crate::names::{AccountId, AliasName, Region, RoleName};
use crate::policy::build::{self, GrantSpec};
use serde_json::json;

/// Flags of `policies`.
#[derive(Debug, Clone, clap::Args)]
pub struct PoliciesArgs {
    /// The account that owns the key.
    #[arg(long, value_name = "ID")]
    pub owner_account: AccountId,
    /// The account that uses the key.
    #[arg(long, value_name = "ID")]
    pub user_account: AccountId,
    /// Alias, `NAME` or `alias/NAME`.
    #[arg(long, default_value = DEFAULT_ALIAS)]
    pub alias: AliasName,
    /// Region of the key.
    #[arg(long, default_value = "us-east-1")]
    pub region: Region,
    /// Role name in the user account [default: kmsxacct-<alias name>].
    #[arg(long)]
    pub role: Option<RoleName>,
}

/// Prints the key policy statement, the whole key policy of a new key, and the role's trust and
/// inline policies.
pub fn run(ctx: &Context, args: &PoliciesArgs) -> Result<()> {
    let spec = GrantSpec {
        region: args.region.clone(),
        owner: args.owner_account.clone(),
        user: args.user_account.clone(),
        alias: args.alias.clone(),
    };
    let role = role_name(args.role.as_ref(), &args.alias);
    let grant = build::key_policy_grant(&spec);
    let grant_text = serde_json::to_string_pretty(&grant).expect("a statement serialises");
    let sections = [
        (
            format!(
                "Key policy statement to add in account {} (Sid {}):",
                spec.owner,
                build::USER_GRANT_SID
            ),
            grant_text,
        ),
        (
            "Whole key policy of a key kmsxacct creates:".to_string(),
            build::key_policy(&spec).render(),
        ),
        (
            format!("Trust policy of role {role} in account {}:", spec.user),
            build::role_trust_policy(&spec).render(),
        ),
        (
            format!("Inline policy {} of role {role}:", build::ROLE_POLICY_NAME),
            build::role_access_policy(&spec).render(),
        ),
    ];
    for (title, body) in &sections {
        ctx.printer.line(title);
        ctx.printer.line(body);
        ctx.printer.line("");
    }
    ctx.printer.json(
        &json!({
            "key_policy_statement": grant,
            "key_policy": build::key_policy(&spec),
            "role_name": role.as_str(),
            "role_arn": role.arn(&spec.region, &spec.user),
            "trust_policy": build::role_trust_policy(&spec),
            "role_policy_name": build::ROLE_POLICY_NAME,
            "role_policy": build::role_access_policy(&spec),
        }),
        Vec::new(),
    );
    Ok(())
}
