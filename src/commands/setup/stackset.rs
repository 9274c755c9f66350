//! `setup --stackset-admin`: the user roles of a fleet of accounts, rolled out by a
//! CloudFormation StackSet in the administrator account instead of one profile per account.
//! The owner side is setup's own; the key policy grants the organisation.

use super::SetupArgs;
use crate::admin::{self, OperationWait, StackSetApply};
use crate::commands::Sides;
use crate::error::{Error, Result};
use crate::names::AccountId;
use crate::output::Change;
use crate::plan::{StackSetPlan, StackSetState, parse_accounts, plan_stack_set, stack_set_name};
use crate::policy::build::GrantSpec;
use crate::record::{Deployment, Journal, StackSetRecord};
use std::time::Duration;

/// The fleet as read: the administrator account, the accounts wanted, the stack set as it is.
pub struct Fleet {
    /// The StackSet administrator account.
    pub admin_account: AccountId,
    /// The user accounts wanted, in the order given.
    pub accounts: Vec<AccountId>,
    /// The stack set's name.
    pub name: String,
    /// The stack set as read.
    pub now: Option<StackSetState>,
}

/// Checks the fleet flags (an organisation grant, and the accounts), and returns the accounts.
pub fn accounts(args: &SetupArgs) -> Result<Vec<AccountId>> {
    if args.grant.org_id.is_none() && args.grant.org_path.is_none() {
        return Err(Error::Input(
            "--stackset-admin grants the organisation, not a list of accounts: add --org-id o-... or --org-path o-.../r-.../ou-.../".into(),
        ));
    }
    let accounts = match &args.accounts_file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                Error::Input(format!("cannot read --accounts-file '{}': {e}", path.display()))
            })?;
            parse_accounts(&text).map_err(|e| {
                Error::Input(format!("invalid --accounts-file '{}': {e}", path.display()))
            })?
        }
        None => {
            for (i, a) in args.accounts.iter().enumerate() {
                if args.accounts[..i].contains(a) {
                    return Err(Error::Input(format!(
                        "--accounts names {a} twice (allowed: each account once)"
                    )));
                }
            }
            args.accounts.clone()
        }
    };
    if accounts.is_empty() {
        return Err(Error::Input(
            "no user account: give --accounts ID,... or --accounts-file FILE with --stackset-admin"
                .into(),
        ));
    }
    Ok(accounts)
}

/// Learns the administrator account and reads the stack set.
pub async fn read(
    sides: &Sides,
    accounts: Vec<AccountId>,
    role: &crate::names::RoleName,
) -> Result<Fleet> {
    let admin = sides.admin_side()?;
    let name = stack_set_name(role);
    let region = sides.region();
    let (admin_account, now) =
        tokio::join!(admin.identify(), admin::read_stack_set(admin, &name, &region));
    Ok(Fleet { admin_account: admin_account?, accounts, name, now: now? })
}

impl Fleet {
    /// Refuses the owner account among the user accounts; plans the stack set.
    pub fn plan(&self, spec: &GrantSpec) -> Result<StackSetPlan> {
        if self.accounts.contains(&spec.owner) {
            return Err(Error::Input(format!(
                "--accounts names the owner account {}; cross-account access needs other accounts",
                spec.owner
            )));
        }
        let template = crate::export::user_template_body(spec);
        plan_stack_set(
            spec,
            (&self.name, &template),
            &self.accounts,
            self.now.as_ref(),
            &self.admin_account,
        )
        .map_err(|c| Error::Conflict(format!("setup changed nothing: {c}")))
    }

    /// The record's stack set before any change: the accounts of the last run and those holding
    /// an instance now, so that a run stopping midway leaves none the record does not name.
    pub fn record(&self, admin_profile: &str, previous: Option<&Deployment>) -> StackSetRecord {
        let before = previous.and_then(|p| p.stack_set.as_ref());
        let mut record = StackSetRecord {
            admin_profile: admin_profile.to_string(),
            admin_account: self.admin_account.to_string(),
            name: self.name.clone(),
            id: self.now.as_ref().map(|n| n.id.clone()).unwrap_or_default(),
            accounts: before.map(|b| b.accounts.clone()).unwrap_or_default(),
        };
        record.add_accounts(self.now.iter().flat_map(|n| &n.accounts));
        record
    }
}

/// Carries out the stack-set plan, journaling the set's id and each account's instance.
pub async fn apply(
    sides: &Sides,
    plan: &StackSetPlan,
    (tags, timeout): (&[(String, String)], u64),
    journal: &Journal<'_>,
    printer: &crate::output::Printer,
    changes: &mut Vec<Change>,
) -> Result<()> {
    let admin = sides.admin_side()?;
    let set = |f: &dyn Fn(&mut StackSetRecord)| {
        Ok(journal.update(|r| {
            if let Some(s) = r.stack_set.as_mut() {
                f(s)
            }
        })?)
    };
    let adding = |accounts: &[AccountId]| set(&|s| s.add_accounts(accounts));
    let removed = |accounts: &[AccountId]| {
        set(&|s| s.accounts.retain(|a| !accounts.iter().any(|r| r.as_str() == a)))
    };
    let region = sides.region();
    let opts = StackSetApply {
        region: &region,
        tags,
        wait: OperationWait { timeout: Duration::from_secs(timeout), printer },
        adding: &adding,
        removed: &removed,
    };
    printer.step(format!("rolling the role out with StackSet {}", plan.name));
    let created = admin::apply_setup(admin, plan, opts, changes).await?;
    if let Some(id) = created {
        set(&|s| s.id = id.clone())?;
    }
    Ok(())
}
