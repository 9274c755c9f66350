//! `kmsxacct lint`: find the mistakes that make cross-account KMS access fail or go too far.

use super::Context;
use super::explain::read_policy;
use crate::error::{Error, Result};
use crate::names::AccountId;
use crate::policy::lint::{Finding, PolicyKind, Severity, lint};
use serde::Serialize;
use std::path::PathBuf;

/// Flags of `lint`.
#[derive(Debug, Clone, clap::Args)]
pub struct LintArgs {
    /// Policy files (JSON) to check.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// What the files are [default: a file with a Principal is a key policy, else an identity policy].
    #[arg(long, value_enum)]
    pub kind: Option<PolicyKind>,
    /// The account that owns the key, for owner-lockout and broad-cross-account [default: the
    /// account a kms:* statement grants].
    #[arg(long, value_name = "ID")]
    pub owner_account: Option<AccountId>,
}

#[derive(Serialize)]
struct FileReport {
    file: String,
    kind: PolicyKind,
    findings: Vec<Finding>,
}

#[derive(Serialize)]
struct Report {
    files: Vec<FileReport>,
    errors: usize,
    warnings: usize,
}

/// Runs lint: exit 1 when any finding is an error.
pub fn run(ctx: &Context, args: &LintArgs) -> Result<()> {
    let mut files = Vec::new();
    for path in &args.files {
        let doc = read_policy(path)?;
        let kind = args.kind.unwrap_or_else(|| PolicyKind::guess(&doc));
        let findings = lint(&doc, kind, args.owner_account.as_ref().map(AccountId::as_str));
        files.push(FileReport { file: path.display().to_string(), kind, findings });
    }
    let count = |sev| files.iter().flat_map(|f| &f.findings).filter(|f| f.severity == sev).count();
    let (errors, warnings) = (count(Severity::Error), count(Severity::Warning));
    for f in &files {
        for x in &f.findings {
            ctx.printer.line(format!(
                "{}: {} {} [statement {}]: {}",
                f.file,
                match x.severity {
                    Severity::Error => "error",
                    Severity::Warning => "warning",
                },
                x.code,
                x.statement,
                x.message
            ));
        }
    }
    ctx.printer
        .line(format!("lint: {} file(s), {errors} error(s), {warnings} warning(s)", files.len()));
    ctx.printer.json(&Report { files, errors, warnings }, Vec::new());
    if errors > 0 { Err(Error::Failed(format!("lint found {errors} error(s)"))) } else { Ok(()) }
}
