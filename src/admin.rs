//! StackSet administrator side: the stack set that rolls the user roles out to a fleet of
//! accounts, its operations, and reaching a member account through the StackSet execution role.
//! Reads are here; every write goes through [`crate::writes`].

use crate::aws::Session;
use crate::aws::error::AwsErrorKind;
use crate::error::{Error, Result};
use crate::names::{AccountId, Region};
use crate::output::{Change, Printer};
use crate::plan::{StackSetChange, StackSetPlan, StackSetState, StackSetTeardown};
use crate::writes::{Output, PollDelay, Write, apply_to};
use aws_sdk_cloudformation::types::{StackSetOperationResultStatus, StackSetOperationStatus};
use std::time::{Duration, Instant};

/// The stack set's id and tags; None when there is none (or only a deleted one) of that name.
pub async fn describe_stack_set(
    s: &Session,
    name: &str,
) -> Result<Option<(String, Vec<(String, String)>)>> {
    Ok(describe(s, name).await?.map(|(id, _, tags)| (id, tags)))
}

/// Id, template and tags of the live stack set of that name.
async fn describe(
    s: &Session,
    name: &str,
) -> Result<Option<(String, String, Vec<(String, String)>)>> {
    let op = "cloudformation:DescribeStackSet";
    let answer = s.cfn().describe_stack_set().stack_set_name(name).send().await;
    let out = match answer.map_err(|e| s.cfn_error(op, e)) {
        Ok(out) => out,
        Err(Error::Aws(e)) if e.kind == AwsErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let Some(set) = out.stack_set() else { return Ok(None) };
    if set.status().is_some_and(|st| st.as_str() == "DELETED") {
        return Ok(None);
    }
    let tags = set
        .tags()
        .iter()
        .map(|t| {
            (t.key().unwrap_or_default().to_string(), t.value().unwrap_or_default().to_string())
        })
        .collect();
    Ok(Some((
        set.stack_set_id().unwrap_or(name).to_string(),
        set.template_body().unwrap_or_default().to_string(),
        tags,
    )))
}

/// Reads the stack set and which accounts hold an instance of it in `region`.
pub async fn read_stack_set(
    s: &Session,
    name: &str,
    region: &Region,
) -> Result<Option<StackSetState>> {
    let Some((id, template, tags)) = describe(s, name).await? else { return Ok(None) };
    let listing = s
        .cfn()
        .list_stack_instances()
        .stack_set_name(name)
        .stack_instance_region(region.as_str())
        .into_paginator()
        .items()
        .send();
    let instances = s.cfn_all("cloudformation:ListStackInstances", listing).await?;
    let mut accounts: Vec<AccountId> = Vec::new();
    for account in instances.iter().filter_map(|i| i.account()?.parse::<AccountId>().ok()) {
        if !accounts.contains(&account) {
            accounts.push(account);
        }
    }
    Ok(Some(StackSetState { id, template, tags, accounts }))
}

/// A fresh id for a StackSet operation or request token (`kmsxacct-` and 32 hex digits): the
/// SDK's retries of one call send the same one, so AWS does the work once.
pub fn operation_id() -> String {
    let mut bytes = [0u8; 16];
    let _ = getrandom::fill(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("kmsxacct-{hex}")
}

/// Seconds setup (by default) and teardown wait for each StackSet operation.
pub const OPERATION_TIMEOUT_SECS: u64 = 1800;

/// How long, at most, to wait for each StackSet operation.
#[derive(Debug, Clone, Copy)]
pub struct OperationWait<'a> {
    /// Give up this long after the operation started (it goes on; a re-run converges).
    pub timeout: Duration,
    /// Where to show progress.
    pub printer: &'a Printer,
}

/// Waits until the operation ends: Ok when it succeeded, else the failed accounts and why.
/// Progress (accounts done / total) is read from the operation's results while it runs; a
/// failure to read them only leaves the bar behind.
pub async fn wait_operation(
    s: &Session,
    name: &str,
    operation_id: &str,
    total: usize,
    wait: OperationWait<'_>,
) -> Result<()> {
    let op = "cloudformation:DescribeStackSetOperation";
    let until = Instant::now() + wait.timeout;
    let bar = wait.printer.progress(total as u64, format!("{name}: accounts done"));
    let mut delay = PollDelay::up_to(Duration::from_secs(5));
    let result = loop {
        let out = s
            .cfn()
            .describe_stack_set_operation()
            .stack_set_name(name)
            .operation_id(operation_id)
            .send()
            .await
            .map_err(|e| s.cfn_error(op, e))?;
        let status = out.stack_set_operation().and_then(|o| o.status().cloned());
        match status {
            Some(StackSetOperationStatus::Succeeded) => break Ok(()),
            Some(StackSetOperationStatus::Failed | StackSetOperationStatus::Stopped) => {
                let why = failed_accounts(s, name, operation_id).await;
                break Err(Error::Failed(format!(
                    "StackSet operation {operation_id} on {name} did not succeed{}; run the command again to converge",
                    if why.is_empty() { String::new() } else { format!(": {}", why.join("; ")) }
                )));
            }
            _ => {}
        }
        if let Some(bar) = &bar
            && let Ok(done) = accounts_done(s, name, operation_id).await
        {
            bar.set_position(done as u64);
        }
        if Instant::now() + delay.current() >= until {
            break Err(Error::Failed(format!(
                "StackSet operation {operation_id} on {name} is still running; it goes on in AWS: run the command again later to converge"
            )));
        }
        delay.sleep().await;
    };
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    result
}

/// The operation's per-account results.
async fn results(
    s: &Session,
    name: &str,
    operation_id: &str,
) -> Result<Vec<aws_sdk_cloudformation::types::StackSetOperationResultSummary>> {
    let listing = s
        .cfn()
        .list_stack_set_operation_results()
        .stack_set_name(name)
        .operation_id(operation_id)
        .into_paginator()
        .items()
        .send();
    s.cfn_all("cloudformation:ListStackSetOperationResults", listing).await
}

async fn accounts_done(s: &Session, name: &str, operation_id: &str) -> Result<usize> {
    let results = results(s, name, operation_id).await?;
    Ok(results
        .iter()
        .filter(|r| r.status() == Some(&StackSetOperationResultStatus::Succeeded))
        .count())
}

/// `ACCOUNT: reason` for each account the operation failed in (empty when unreadable).
async fn failed_accounts(s: &Session, name: &str, operation_id: &str) -> Vec<String> {
    let results = results(s, name, operation_id).await.unwrap_or_default();
    results
        .iter()
        .filter(|r| r.status() == Some(&StackSetOperationResultStatus::Failed))
        .map(|r| {
            format!(
                "{}: {}",
                r.account().unwrap_or("unknown account"),
                r.status_reason().unwrap_or("no reason given")
            )
        })
        .collect()
}

/// How setup's and teardown's StackSet work is carried out.
#[derive(Clone, Copy)]
pub struct StackSetApply<'a> {
    /// The region of the instances (the key's).
    pub region: &'a Region,
    /// The deployment's tags.
    pub tags: &'a [(String, String)],
    /// The wait for each operation.
    pub wait: OperationWait<'a>,
    /// Called with the accounts about to get an instance, before the call (for the record).
    pub adding: &'a (dyn Fn(&[AccountId]) -> Result<()> + Sync),
    /// Called with the accounts whose instances are gone.
    pub removed: &'a (dyn Fn(&[AccountId]) -> Result<()> + Sync),
}

/// Sends one operation write, then waits for its operation.
async fn operate(
    s: &Session,
    w: Write<'_>,
    name: &str,
    total: usize,
    wait: OperationWait<'_>,
    changes: &mut Vec<Change>,
) -> Result<()> {
    if let Output::Operation(id) = apply_to(changes, s, w).await?.output {
        wait_operation(s, name, &id, total, wait).await?;
    }
    Ok(())
}

/// Carries out setup's stack-set plan: the set (created, or its template updated), then the new
/// instances, then the removed ones. Returns the stack set's id when this run created it.
pub async fn apply_setup(
    s: &Session,
    plan: &StackSetPlan,
    opts: StackSetApply<'_>,
    changes: &mut Vec<Change>,
) -> Result<Option<String>> {
    let name = plan.name.as_str();
    let (template, tags) = (plan.template.as_str(), opts.tags);
    let mut created = None;
    match plan.set {
        StackSetChange::Create => {
            let token = operation_id();
            let w = Write::CreateStackSet { name, template, tags, token: &token };
            if let Output::StackSet(id) = apply_to(changes, s, w).await?.output {
                created = Some(id);
            }
        }
        StackSetChange::UpdateTemplate => {
            let id = operation_id();
            let w = Write::UpdateStackSet { name, template, tags, operation_id: &id };
            operate(s, w, name, 0, opts.wait, changes).await?;
        }
        StackSetChange::Keep => {
            changes.push(Change::unchanged(s, crate::output::Resource::StackSet, name));
        }
    }
    if !plan.add.is_empty() {
        (opts.adding)(&plan.add)?;
        let id = operation_id();
        let w = Write::CreateStackInstances {
            name,
            accounts: &plan.add,
            region: opts.region,
            operation_id: &id,
        };
        operate(s, w, name, plan.add.len(), opts.wait, changes).await?;
    }
    if !plan.remove.is_empty() {
        remove_instances(s, name, &plan.remove, opts, changes).await?;
    }
    Ok(created)
}

async fn remove_instances(
    s: &Session,
    name: &str,
    accounts: &[AccountId],
    opts: StackSetApply<'_>,
    changes: &mut Vec<Change>,
) -> Result<()> {
    let id = operation_id();
    let w = Write::DeleteStackInstances { name, accounts, region: opts.region, operation_id: &id };
    operate(s, w, name, accounts.len(), opts.wait, changes).await?;
    (opts.removed)(accounts)
}

/// Carries out teardown's stack-set plan: every instance, then the set.
pub async fn apply_teardown(
    s: &Session,
    name: &str,
    plan: &StackSetTeardown,
    opts: StackSetApply<'_>,
    changes: &mut Vec<Change>,
) -> Result<()> {
    if !plan.remove.is_empty() {
        remove_instances(s, name, &plan.remove, opts, changes).await?;
    }
    if plan.delete_set {
        apply_to(changes, s, Write::DeleteStackSet { name }).await?;
    }
    Ok(())
}

/// Credentials in a member account: the administrator's session assumes the StackSet execution
/// role there, and that session assumes the deployment's role.
pub async fn chain_to_role(
    admin: &Session,
    execution_role_arn: &str,
    role_arn: &str,
) -> Result<aws_credential_types::Credentials> {
    let execution = crate::user::assume_role(admin, execution_role_arn).await?;
    let sts = admin.sts_with_credentials(execution);
    crate::user::assume_with(admin, &sts, role_arn).await.map(|(c, _)| c)
}
