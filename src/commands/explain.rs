//! `kmsxacct explain`: would this request be allowed, and why? Policy files in, decision out.

use super::Context;
use crate::error::{Error, Result};
use crate::policy::PolicyDocument;
use crate::policy::eval::{self, NamedPolicy, Request};
use std::path::{Path, PathBuf};

/// Flags of `explain`.
#[derive(Debug, Clone, clap::Args)]
pub struct ExplainArgs {
    /// The key policy (JSON file).
    #[arg(long, value_name = "FILE")]
    pub key_policy: PathBuf,
    /// An identity policy of the caller (JSON file); repeat for each policy attached to it.
    #[arg(long = "identity-policy", value_name = "FILE")]
    pub identity_policies: Vec<PathBuf>,
    /// Who calls: a role, user or assumed-role session ARN.
    #[arg(long, value_name = "ARN")]
    pub principal: String,
    /// The KMS action, e.g. kms:Encrypt.
    #[arg(long)]
    pub action: String,
    /// The key ARN the request resolves to (KMS authorises key operations against the key; for
    /// CreateAlias, UpdateAlias and DeleteAlias, the key the alias points at). Not needed for
    /// actions with no resource (ListKeys, CreateKey, GenerateRandom, ...).
    #[arg(long, value_name = "KEY_ARN")]
    pub key: Option<String>,
    /// For CreateAlias, UpdateAlias and DeleteAlias: the alias ARN they act on.
    #[arg(long, value_name = "ALIAS_ARN")]
    pub alias_arn: Option<String>,
    /// An alias of the key (alias/NAME); repeat for each. Fills kms:ResourceAliases.
    #[arg(long = "key-alias", value_name = "ALIAS")]
    pub key_aliases: Vec<String>,
    /// The alias the request names (alias/NAME or alias ARN). Fills kms:RequestAlias.
    #[arg(long, value_name = "ALIAS")]
    pub request_alias: Option<String>,
    /// Another context key, KEY=VALUE; repeat a key for several values.
    #[arg(long = "context", value_name = "KEY=VALUE", value_parser = parse_context)]
    pub context: Vec<(String, String)>,
}

pub fn parse_context(text: &str) -> std::result::Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("'{text}' is not KEY=VALUE")),
    }
}

/// Reads and parses a policy file; any failure is bad input naming the file.
pub fn read_policy(path: &Path) -> Result<PolicyDocument> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Input(format!("cannot read policy file '{}': {e}", path.display())))?;
    PolicyDocument::parse(&text)
        .map_err(|e| Error::Input(format!("policy file '{}': {e}", path.display())))
}

/// Runs explain: exit 0 when allowed, 1 when denied, 2 on bad input.
pub fn run(ctx: &Context, args: &ExplainArgs) -> Result<()> {
    let key_policy = read_policy(&args.key_policy)?;
    let identity: Vec<(String, PolicyDocument)> = args
        .identity_policies
        .iter()
        .map(|p| Ok((p.display().to_string(), read_policy(p)?)))
        .collect::<Result<_>>()?;
    let named: Vec<NamedPolicy<'_>> =
        identity.iter().map(|(name, document)| NamedPolicy { name, document }).collect();
    let request = Request {
        principal: args.principal.clone(),
        action: args.action.clone(),
        key_arn: args.key.clone().unwrap_or_default(),
        key_aliases: args.key_aliases.clone(),
        request_alias: args.request_alias.clone(),
        alias_arn: args.alias_arn.clone(),
        extra: args.context.clone(),
    };
    let evaluation =
        eval::evaluate(&request, &key_policy, &named).map_err(|e| Error::Input(e.0))?;
    ctx.printer.line(format!("decision: {}", evaluation.decision.as_str()));
    for r in &evaluation.reasons {
        let at = if r.statement.is_empty() {
            r.policy.clone()
        } else {
            format!("{} statement {}", r.policy, r.statement)
        };
        ctx.printer.line(format!("  [{}] {at}: {}", r.kind, r.message));
    }
    ctx.printer.json(&evaluation, Vec::new());
    match evaluation.decision {
        eval::Decision::Allow => Ok(()),
        d => Err(Error::Failed(format!(
            "{} by {} on {} is denied ({})",
            args.action,
            args.principal,
            args.key.as_deref().or(args.alias_arn.as_deref()).unwrap_or("*"),
            d.as_str()
        ))),
    }
}
