//! `kmsxacct export`: the deployment setup would make, as CloudFormation templates or a
//! Terraform configuration, for teams that deploy with those. Reads only who the accounts are.

use super::setup::SetupArgs;
use super::{Context, open, role_name};
use crate::error::{Error, Result};
use crate::export::{self, TerraformProfiles};
use serde_json::{Value, json};
use std::path::PathBuf;

/// The infrastructure-as-code formats export writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A template for the owner account (and one per replica region) and one for every user
    /// account (the same in each: a StackSet template).
    Cloudformation,
    /// One configuration with an aliased provider per owner region and per user account.
    Terraform,
}

/// Flags of `export`.
#[derive(Debug, Clone, clap::Args)]
pub struct ExportArgs {
    /// What to write.
    #[arg(long, value_enum)]
    pub format: Format,
    /// Write the files here (owner.template.json, owner-REGION.template.json and
    /// user.template.json; or main.tf) instead of printing them.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    /// The deployment, with setup's flags.
    #[command(flatten)]
    pub setup: SetupArgs,
}

/// Runs export: learn the accounts, build the documents, print or write them.
pub async fn run(ctx: &Context, args: &ExportArgs) -> Result<()> {
    let s = &args.setup;
    if !s.trust.is_empty() || s.adopt {
        return Err(Error::Input(
            "export writes one user template for every account and a key kmsxacct would create: --trust and --adopt are not supported by export".into(),
        ));
    }
    let sides = open(ctx, &s.owner, &s.users, s.key_region()).await?;
    let (owner, users) = sides.identify(ctx).await?;
    sides.check_distinct(&owner, &users)?;
    let role = role_name(s.role.as_ref(), &s.alias);
    let spec = s.spec(&sides, (owner, users.clone()), role, &[])?;
    let files: Vec<(String, String)> = match args.format {
        Format::Cloudformation => {
            let t = export::cloudformation(&spec, s.pending_window_days);
            let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap_or_default();
            let mut files = vec![("owner.template.json".to_string(), pretty(&t.owner))];
            files.extend(
                t.replicas.iter().map(|(r, v)| (format!("owner-{r}.template.json"), pretty(v))),
            );
            files.push(("user.template.json".to_string(), pretty(&t.user)));
            files
        }
        Format::Terraform => {
            let profiles = TerraformProfiles {
                owner: &s.owner,
                users: s.users.iter().map(String::as_str).zip(&users).collect(),
            };
            vec![(
                "main.tf".to_string(),
                export::terraform(&spec, &profiles, s.pending_window_days),
            )]
        }
    };
    match &args.out_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| {
                Error::Input(format!("cannot create --out-dir '{}': {e}", dir.display()))
            })?;
            for (name, text) in &files {
                let path = dir.join(name);
                std::fs::write(&path, text).map_err(|e| {
                    Error::Failed(format!("cannot write '{}': {e}", path.display()))
                })?;
                ctx.printer.line(format!("wrote {}", path.display()));
            }
        }
        None => {
            for (name, text) in &files {
                ctx.printer.line(format!("# {name}"));
                ctx.printer.line(text);
            }
        }
    }
    let report: serde_json::Map<String, Value> =
        files.into_iter().map(|(name, text)| (name, Value::String(text))).collect();
    ctx.printer.json(&json!({"command": "export", "files": report}), ctx.calls.snapshot());
    Ok(())
}
