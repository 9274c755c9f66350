//! The command line: global flags and subcommands. Help text lives on the fields, once.

use crate::commands::{
    completions, diagnose, explain, export, lint, policies, restore, rotate, setup, status,
    teardown, verify,
};
use crate::output::OutputFormat;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

const ABOUT: &str =
    "Set up, prove and remove cross-account access to an AWS KMS key through its alias";

const LONG_ABOUT: &str = "\
Set up, prove and remove cross-account access to an AWS KMS key through its alias.

Team A owns a symmetric KMS key; team B, in another account, encrypts and decrypts with it by its \
alias. Two policies must agree: A's key policy grants B's account kms:Encrypt and kms:Decrypt, and \
a role in B is allowed those actions on arn:aws:kms:REGION:A:key/* where kms:ResourceAliases \
contains the alias. (An alias ARN in the role policy's Resource grants nothing for Encrypt or \
Decrypt: KMS authorises them against the key.)

  kmsxacct setup --owner A --user B    # A and B are AWS profile names
  kmsxacct plan --owner A --user B     # what setup would change, as policy diffs
  kmsxacct verify                      # policy engine + live round trip through the alias ARN
  kmsxacct rotate                      # new key behind the alias, old data still readable
  kmsxacct teardown                    # remove what setup made
  kmsxacct restore                     # undo the teardown while the keys await deletion
  kmsxacct diagnose --caller P ...     # why is this live call denied, which layer, what fix
  kmsxacct explain ...                 # would this request be allowed, and why?
  kmsxacct lint FILE...                # find the classic mistakes in policy files";

const EXIT_CODES: &str = "\
Exit codes:
  0    success (verify: every check passed)
  1    a check failed, AWS refused or failed, or something kmsxacct did not create is in the way
  2    bad input: flags, names, profiles, credentials, deployment record
  130  interrupted (run the same command again to converge)";

/// kmsxacct's command line.
#[derive(Debug, Parser)]
#[command(name = "kmsxacct", version, about = ABOUT, long_about = LONG_ABOUT, after_help = EXIT_CODES)]
pub struct Cli {
    /// Deployment record that setup writes and verify and teardown read.
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        default_value = crate::record::DEFAULT_PATH
    )]
    pub config: PathBuf,

    /// Output format: human-readable text, or one JSON object on stdout.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,

    /// More detail on stderr: -v mutations, -vv every AWS call, -vvv everything. RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// At most this many user accounts are worked on at once.
    #[arg(long, global = true, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,

    /// Print nothing but errors (text output only).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create (or converge) the key, alias, key policy grant, and a role in each user account.
    Setup(setup::SetupArgs),
    /// Show what setup would create or change, with policy diffs; change nothing.
    Plan(setup::SetupArgs),
    /// Prove access: policy engine, drift, and each granted operation called live as each role.
    Verify(verify::VerifyArgs),
    /// Remove what setup made, and only that: roles, alias, and keys (scheduled for deletion).
    Teardown(teardown::TeardownArgs),
    /// Undo a complete teardown within the keys' pending window: keys, aliases and roles back.
    Restore(restore::RestoreArgs),
    /// Show what the recorded deployment looks like now in every account, and the last verify.
    Status(status::StatusArgs),
    /// Put a new key behind the alias and prove the user accounts still work, old data included.
    Rotate(rotate::RotateArgs),
    /// Why is this live KMS call denied: which layer blocks, and the smallest fix.
    Diagnose(diagnose::DiagnoseArgs),
    /// Decide from policy files whether a principal may call a KMS action on a key, and why.
    Explain(explain::ExplainArgs),
    /// Check policy files for the mistakes that break (or over-open) cross-account KMS access.
    Lint(lint::LintArgs),
    /// Write what setup would make as CloudFormation templates or a Terraform configuration.
    Export(export::ExportArgs),
    /// Print the key policy statement and role policies setup would write (for Terraform or CDK).
    Policies(policies::PoliciesArgs),
    /// Print shell completions (bash, zsh, fish, powershell, elvish).
    Completions(completions::CompletionsArgs),
    /// Print the man page (roff).
    Man,
}
