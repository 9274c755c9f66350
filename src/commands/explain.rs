//! `kmsxacct explain`: would this request be allowed, and why? Policy files in, decision out.

use super::Context;
use crate::error::{Error, Result};
use crate::policy::PolicyDocument;
use crate::policy::eval::{self, NamedPolicy, Request};
use std::path::{Path, PathBuf};

mod batch;

/// Flags of `explain`.
#[derive(Debug, Clone, clap::Args)]
pub struct ExplainArgs {
    /// The key policy (JSON file).
    #[arg(long, value_name = "FILE", required_unless_present = "batch")]
    pub key_policy: Option<PathBuf>,
    /// An identity policy of the caller (JSON file); repeat for each policy attached to it.
    #[arg(long = "identity-policy", value_name = "FILE")]
    pub identity_policies: Vec<PathBuf>,
    /// Who calls: a role, user or assumed-role session ARN.
    #[arg(long, value_name = "ARN", required_unless_present = "batch")]
    pub principal: Option<String>,
    /// The KMS action, e.g. kms:Encrypt.
    #[arg(long, required_unless_present = "batch")]
    pub action: Option<String>,
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
    /// Decide many requests at once: a file (or `-` for stdin) of JSON lines, each with the
    /// fields of the flags (`principal`, `action`, `key`, `alias_arn`, `key_aliases`,
    /// `request_alias`, `context`, `key_policy`, `identity_policies`, and `boundary`, `scps`,
    /// `grants`), a policy given inline or as a file path; one JSON line out for each: the
    /// decision, its reasons and blocking layers, or the error.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["key_policy", "principal", "action"])]
    pub batch: Option<PathBuf>,
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
    if let Some(batch) = &args.batch {
        return batch::run(batch);
    }
    let (Some(key_policy), Some(principal), Some(action)) =
        (&args.key_policy, &args.principal, &args.action)
    else {
        return Err(Error::Input("explain needs --key-policy, --principal and --action".into()));
    };
    let key_policy = read_policy(key_policy)?;
    let identity: Vec<(String, PolicyDocument)> = args
        .identity_policies
        .iter()
        .map(|p| Ok((p.display().to_string(), read_policy(p)?)))
        .collect::<Result<_>>()?;
    let named: Vec<NamedPolicy<'_>> =
        identity.iter().map(|(name, document)| NamedPolicy { name, document }).collect();
    let request = Request {
        principal: principal.clone(),
        action: action.clone(),
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
            action,
            principal,
            args.key.as_deref().or(args.alias_arn.as_deref()).unwrap_or("*"),
            d.as_str()
        ))),
    }
}
