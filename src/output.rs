//! What commands print: changes made, checks run, as text lines or one JSON object on stdout.

use crate::aws::Session;
use crate::aws::calls::CallRecord;
use serde::Serialize;
use std::io::Write;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object on stdout.
    Json,
}

/// What a command did to a resource, or that it found it as it should be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Made by this run.
    Created,
    /// Changed by this run.
    Updated,
    /// Already as it should be.
    Unchanged,
    /// Removed by this run.
    Deleted,
    /// A key whose deletion KMS now has scheduled.
    ScheduledDeletion,
}

/// The kinds of resource kmsxacct manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Resource {
    /// A KMS key.
    Key,
    /// A KMS alias.
    Alias,
    /// A key's policy.
    KeyPolicy,
    /// A key's automatic rotation.
    KeyRotation,
    /// An IAM role.
    Role,
    /// A role's trust policy.
    TrustPolicy,
    /// kmsxacct's inline policy on a role.
    RolePolicy,
    /// A CloudFormation StackSet that rolls the user roles out.
    StackSet,
    /// A StackSet's stack instances in user accounts.
    StackInstances,
}

impl Action {
    /// The name printed and written to JSON, e.g. `scheduled-deletion`.
    pub fn name(self) -> &'static str {
        match self {
            Action::Created => "created",
            Action::Updated => "updated",
            Action::Unchanged => "unchanged",
            Action::Deleted => "deleted",
            Action::ScheduledDeletion => "scheduled-deletion",
        }
    }
}

impl Resource {
    /// The name printed and written to JSON, e.g. `key-policy`.
    pub fn name(self) -> &'static str {
        match self {
            Resource::Key => "key",
            Resource::Alias => "alias",
            Resource::KeyPolicy => "key-policy",
            Resource::KeyRotation => "key-rotation",
            Resource::Role => "role",
            Resource::TrustPolicy => "trust-policy",
            Resource::RolePolicy => "role-policy",
            Resource::StackSet => "stack-set",
            Resource::StackInstances => "stack-instances",
        }
    }
}

/// One thing a command did, or found already as it should be.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    /// `owner` or `user`.
    pub side: &'static str,
    /// The account acted in.
    pub account: String,
    /// What was done.
    pub action: Action,
    /// To what kind of resource.
    pub resource: Resource,
    /// ARN or name of the resource.
    pub id: String,
    /// The region, for a change in a multi-Region key's replica region.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// More about it, e.g. the key deletion date.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Change {
    /// A change in the session's account.
    pub fn new(s: &Session, action: Action, resource: Resource, id: &str) -> Change {
        Change {
            side: s.side.label(),
            account: s.account(),
            action,
            resource,
            id: id.to_string(),
            region: s.replica_region.then(|| s.region.to_string()),
            detail: None,
        }
    }

    /// A resource found as it should be.
    pub fn unchanged(s: &Session, resource: Resource, id: &str) -> Change {
        Change::new(s, Action::Unchanged, resource, id)
    }

    /// Adds detail.
    pub fn detail(mut self, detail: String) -> Change {
        self.detail = Some(detail);
        self
    }

    /// Whether this entry changed anything.
    pub fn is_change(&self) -> bool {
        self.action != Action::Unchanged
    }
}

/// One check run by verify.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Short stable name, e.g. `encrypt` or `policy-decrypt`.
    pub name: String,
    /// The user account the check is about, if it is about one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Whether it passed.
    pub ok: bool,
    /// What was found.
    pub detail: String,
    /// For drift: the live document against what setup writes, as a diff.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
}

impl Check {
    /// A check about the deployment as a whole.
    pub fn new(name: impl Into<String>, ok: bool, detail: impl Into<String>) -> Check {
        Check { name: name.into(), account: None, ok, detail: detail.into(), diff: None }
    }

    /// The same check, about one user account.
    pub fn in_account(mut self, account: &str) -> Check {
        self.account = Some(account.to_string());
        self
    }
}

/// A line diff of two texts: unchanged lines start with a space, removed with `-`, added with
/// `+`.
pub fn diff(old: &str, new: &str) -> String {
    let d = similar::TextDiff::from_lines(old, new);
    let mut out = String::new();
    for change in d.iter_all_changes() {
        let sign = match change.tag() {
            similar::ChangeTag::Delete => '-',
            similar::ChangeTag::Insert => '+',
            similar::ChangeTag::Equal => ' ',
        };
        out.push(sign);
        out.push_str(change.value().trim_end_matches('\n'));
        out.push('\n');
    }
    out
}

/// A diff from [`diff`] with removed lines in red and added lines in green (ANSI).
pub fn colorize_diff(diff: &str) -> String {
    diff.lines()
        .map(|l| match l.chars().next() {
            Some('+') => format!("\u{1b}[32m{l}\u{1b}[0m"),
            Some('-') => format!("\u{1b}[31m{l}\u{1b}[0m"),
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Prints results in the chosen format; `quiet` silences text output (JSON is always printed).
#[derive(Debug, Clone)]
pub struct Printer {
    /// Text or JSON.
    pub format: OutputFormat,
    /// Print nothing on success in text mode.
    pub quiet: bool,
    /// A spinner on stderr naming the step under way; only on a terminal, never with --quiet or
    /// --output json.
    pub spinner: Option<indicatif::ProgressBar>,
}

impl Printer {
    /// A printer; with a spinner (if `spinner`) when stderr is a terminal and output is text.
    pub fn new(format: OutputFormat, quiet: bool, spinner: bool) -> Printer {
        use std::io::IsTerminal;
        let spinner =
            (spinner && format == OutputFormat::Text && !quiet && std::io::stderr().is_terminal())
                .then(|| {
                    let pb = indicatif::ProgressBar::new_spinner();
                    pb.set_draw_target(indicatif::ProgressDrawTarget::stderr());
                    if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {msg}") {
                        pb.set_style(style);
                    }
                    pb.enable_steady_tick(std::time::Duration::from_millis(100));
                    pb
                });
        Printer { format, quiet, spinner }
    }

    /// Names the step under way on the spinner.
    pub fn step(&self, text: impl Into<String>) {
        if let Some(pb) = &self.spinner {
            pb.set_message(text.into());
        }
    }

    /// A progress bar of `total` steps on stderr, under the spinner, when the spinner is shown
    /// (a terminal, text output, not quiet); None otherwise, and the caller reports at the end.
    pub fn progress(&self, total: u64, message: String) -> Option<indicatif::ProgressBar> {
        let spinner = self.spinner.as_ref()?;
        let bar = indicatif::ProgressBar::new(total);
        if let Ok(style) = indicatif::ProgressStyle::with_template("{msg} {pos}/{len} {wide_bar}") {
            bar.set_style(style);
        }
        bar.set_message(message);
        // One drawing of both: the spinner and the bar share a MultiProgress on stderr.
        let multi = indicatif::MultiProgress::new();
        let spinner = multi.add(spinner.clone());
        spinner.tick();
        Some(multi.add(bar))
    }

    /// Removes the spinner.
    pub fn done(&self) {
        if let Some(pb) = &self.spinner {
            pb.finish_and_clear();
        }
    }
    /// Prints a text line, unless quiet or in JSON mode.
    pub fn line(&self, text: impl AsRef<str>) {
        if self.format == OutputFormat::Text && !self.quiet {
            if let Some(pb) = &self.spinner {
                pb.finish_and_clear();
            }
            let mut out = std::io::stdout().lock();
            // A closed pipe is a normal way for a reader to stop; nothing to report.
            let _ = writeln!(out, "{}", text.as_ref());
        }
    }

    /// Whether text output may be coloured: stdout is a terminal and NO_COLOR is not set.
    pub fn color(&self) -> bool {
        use std::io::IsTerminal;
        self.format == OutputFormat::Text
            && std::io::stdout().is_terminal()
            && std::env::var_os("NO_COLOR").is_none()
    }

    /// A note on stderr for a person watching (what the command waits for, what it recovers);
    /// silenced by --quiet.
    pub fn note(&self, text: impl AsRef<str>) {
        if self.quiet {
            return;
        }
        match &self.spinner {
            Some(pb) => pb.println(format!("kmsxacct: {}", text.as_ref())),
            None => {
                let mut err = std::io::stderr().lock();
                let _ = writeln!(err, "kmsxacct: {}", text.as_ref());
            }
        }
    }

    /// Prints the changes, one line each (text mode).
    pub fn changes(&self, changes: &[Change]) {
        for c in changes {
            self.line(format!(
                "{:<5} {}  {:<18} {:<12} {}{}{}",
                c.side,
                c.account,
                c.action.name(),
                c.resource.name(),
                c.id,
                c.region.as_deref().map(|r| format!("  (in {r})")).unwrap_or_default(),
                c.detail.as_deref().map(|d| format!("  ({d})")).unwrap_or_default()
            ));
        }
    }

    /// Prints checks as PASS/FAIL lines (text mode), each drift diff under its check.
    pub fn checks(&self, checks: &[Check]) {
        for c in checks {
            self.line(format!(
                "{}  {:<18} {}{}",
                if c.ok { "PASS" } else { "FAIL" },
                c.name,
                c.account.as_deref().map(|a| format!("[{a}] ")).unwrap_or_default(),
                c.detail
            ));
            if let Some(d) = &c.diff {
                let shown = if self.color() { colorize_diff(d) } else { d.clone() };
                for line in shown.lines() {
                    self.line(format!("      {line}"));
                }
            }
        }
    }

    /// Prints a report object (JSON mode), with the AWS calls made attached as `calls`.
    pub fn json<T: Serialize>(&self, report: &T, calls: Vec<CallRecord>) {
        if self.format != OutputFormat::Json {
            return;
        }
        let mut value = serde_json::to_value(report).unwrap_or(serde_json::Value::Null);
        if let serde_json::Value::Object(map) = &mut value {
            map.insert("calls".into(), serde_json::to_value(calls).unwrap_or_default());
        }
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{value}");
    }
}
