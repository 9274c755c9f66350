//! `kmsxacct policies`: print the documents setup would write, for Terraform or CDK users.

use super::{Context, DEFAULT_ALIAS, GrantArgs, role_name, spec_from};
use crate::error::Result;
use crate::names::{AccountId, AliasName, Partition, Region, RoleName};
use crate::policy::build;
use serde_json::json;

/// Flags of `policies`.
#[derive(Debug, Clone, clap::Args)]
pub struct PoliciesArgs {
    /// The account that owns the key.
    #[arg(long, value_name = "ID")]
    pub owner_account: AccountId,
    /// An account that uses the key; repeat for several.
    #[arg(long = "user-account", value_name = "ID", required = true)]
    pub user_accounts: Vec<AccountId>,
    /// Alias, `NAME` or `alias/NAME`.
    #[arg(long, default_value = DEFAULT_ALIAS)]
    pub alias: AliasName,
    /// Region of the key.
    #[arg(long, default_value = "us-east-1")]
    pub region: Region,
    /// ARN partition of the accounts: aws, aws-cn, aws-us-gov, ...
    #[arg(long, default_value = "aws")]
    pub partition: Partition,
    /// Role name in the user accounts [default: kmsxacct-<alias name>].
    #[arg(long)]
    pub role: Option<RoleName>,
    /// How the grant is shaped.
    #[command(flatten)]
    pub grant: GrantArgs,
}

/// Prints the key policy statement, the whole key policy of a new key, and each role's trust
/// policy and the role policy.
pub fn run(ctx: &Context, args: &PoliciesArgs) -> Result<()> {
    let role = role_name(args.role.as_ref(), &args.alias);
    let mut spec = spec_from(
        args.region.clone(),
        args.owner_account.clone(),
        args.user_accounts.clone(),
        args.alias.clone(),
        role.clone(),
        &args.grant.settings(&[]),
    );
    spec.partition = args.partition.clone();
    let grant = build::key_policy_grant(&spec);
    let grant_text = serde_json::to_string_pretty(&grant).expect("a statement serialises");
    let mut sections = vec![
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
    ];
    for user in &spec.users {
        sections.push((
            format!("Trust policy of role {role} in account {user}:"),
            build::role_trust_policy(&spec, user).render(),
        ));
    }
    sections.push((
        format!(
            "Inline policy {} of role {role} (the same in every user account):",
            build::ROLE_POLICY_NAME
        ),
        build::role_access_policy(&spec).render(),
    ));
    for (title, body) in &sections {
        ctx.printer.line(title);
        ctx.printer.line(body);
        ctx.printer.line("");
    }
    let first = &spec.users[0];
    ctx.printer.json(
        &json!({
            "key_policy_statement": grant,
            "key_policy": build::key_policy(&spec),
            "key_policy_bytes": build::key_policy(&spec).render().len(),
            "role_name": role.as_str(),
            "role_arn": spec.role_arn(first),
            "role_arns": spec.users.iter().map(|u| spec.role_arn(u)).collect::<Vec<_>>(),
            "trust_policy": build::role_trust_policy(&spec, first),
            "role_policy_name": build::ROLE_POLICY_NAME,
            "role_policy": build::role_access_policy(&spec),
        }),
        Vec::new(),
    );
    Ok(())
}
