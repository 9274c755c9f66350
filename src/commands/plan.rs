//! `kmsxacct plan` (and `setup --dry-run`): what setup would create or change in each account,
//! with the policy documents as diffs. Makes no mutating call and writes no record.

use super::Context;
use crate::aws::Session;
use crate::error::Result;
use crate::names::AccountId;
use crate::output::{Resource, colorize_diff, diff};
use crate::plan::{
    KeyPlan, KeyState, OwnerPlan, RegionDrop, RegionPlan, RegionSeen, RoleState, StackSetChange,
    StackSetPlan, UserPlan, UserTeardown,
};
use crate::policy::PolicyDocument;
use crate::policy::build::{self, GrantSpec};
use serde::Serialize;

/// One planned change.
#[derive(Debug, Clone, Serialize)]
pub struct Planned {
    /// `owner` or `user`.
    pub side: &'static str,
    /// The account.
    pub account: String,
    /// What setup would do.
    pub action: Step,
    /// To what kind of resource.
    pub resource: Resource,
    /// ARN or name.
    pub id: String,
    /// The region, for a replica region's key, alias and key policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The document change as a unified diff (plain), when a policy is written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
}

/// What setup would do to a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// Make it.
    Create,
    /// Change it.
    Update,
    /// Remove it.
    Delete,
    /// Schedule a key's deletion.
    ScheduleDeletion,
    /// Leave it as it is.
    NoChange,
}

impl Step {
    /// The name printed and written to JSON, e.g. `no-change`.
    pub fn name(self) -> &'static str {
        match self {
            Step::Create => "create",
            Step::Update => "update",
            Step::Delete => "delete",
            Step::ScheduleDeletion => "schedule-deletion",
            Step::NoChange => "no-change",
        }
    }
}

/// Everything a plan shows, borrowed from setup's preparation.
pub struct PlanView<'a> {
    /// What the policies are built from.
    pub spec: &'a GrantSpec,
    /// The owner session.
    pub owner: &'a Session,
    /// The key behind the alias now.
    pub key_now: Option<&'a KeyState>,
    /// The owner plan.
    pub owner_plan: &'a OwnerPlan,
    /// Each user account: session, account, role as it is, plan.
    pub users: Vec<(&'a Session, &'a AccountId, Option<&'a RoleState>, &'a UserPlan)>,
    /// Each user account leaving the deployment: session and what goes.
    pub removals: Vec<(&'a Session, &'a UserTeardown)>,
    /// What happens in each replica region, and in each region dropped.
    pub regions: &'a (Vec<RegionPlan>, Vec<RegionDrop>),
    /// Each replica region as read (for the key policy diffs).
    pub regions_seen: &'a [RegionSeen],
    /// The StackSet rollout of a fleet deployment: the administrator session and its plan.
    pub stack_set: Option<(&'a Session, &'a StackSetPlan)>,
}

#[derive(Serialize)]
struct Report<'a> {
    command: &'static str,
    changes: usize,
    plan: &'a [Planned],
}

fn item(
    s: &Session,
    action: Step,
    resource: Resource,
    id: &str,
    old: Option<&PolicyDocument>,
    new: Option<&PolicyDocument>,
) -> Planned {
    let text = |d: Option<&PolicyDocument>| d.map(PolicyDocument::render).unwrap_or_default();
    Planned {
        side: s.side.label(),
        account: s.account(),
        action,
        resource,
        id: id.to_string(),
        region: None,
        diff: new.map(|n| diff(&text(old), &text(Some(n)))),
    }
}

/// The items of each replica region and each dropped region (one key policy diff per region).
fn region_items(view: &PlanView<'_>, primary: &str) -> Vec<Planned> {
    let s = view.owner;
    let alias = view.spec.alias.as_str();
    let mut out = Vec::new();
    let (plans, drops) = view.regions;
    for plan in plans {
        let replica = if primary.is_empty() {
            "(new replica)".to_string()
        } else {
            crate::plan::replica_arn(primary, &plan.region)
        };
        let old = view
            .regions_seen
            .iter()
            .find(|r| r.region == plan.region)
            .and_then(|r| r.replica.as_ref().or(r.at_alias.as_ref()))
            .and_then(|k| k.policy.as_ref());
        let mut items = vec![
            match &plan.replicate {
                Some(policy) => item(s, Step::Create, Resource::Key, &replica, None, Some(policy)),
                None => item(s, Step::NoChange, Resource::Key, &replica, None, None),
            },
            item(
                s,
                if plan.create_alias { Step::Create } else { Step::NoChange },
                Resource::Alias,
                alias,
                None,
                None,
            ),
        ];
        if let Some(policy) = &plan.put_policy {
            items.push(item(s, Step::Update, Resource::KeyPolicy, &replica, old, Some(policy)));
        }
        out.extend(
            items.into_iter().map(|i| Planned { region: Some(plan.region.to_string()), ..i }),
        );
    }
    for drop in drops {
        let mut items = Vec::new();
        if drop.delete_alias {
            items.push(item(s, Step::Delete, Resource::Alias, alias, None, None));
        }
        if let Some(replica) = &drop.schedule_deletion {
            items.push(item(s, Step::ScheduleDeletion, Resource::Key, replica, None, None));
        }
        out.extend(
            items.into_iter().map(|i| Planned { region: Some(drop.region.to_string()), ..i }),
        );
    }
    out
}

/// Builds the plan's items.
pub fn items(view: &PlanView<'_>) -> Vec<Planned> {
    let s = view.owner;
    let spec = view.spec;
    let mut out = Vec::new();
    let alias = spec.alias.as_str();
    match &view.owner_plan.key {
        KeyPlan::Create { policy, .. } => {
            out.push(item(s, Step::Create, Resource::Key, "(new key)", None, Some(policy)));
        }
        KeyPlan::Existing { arn, .. } => {
            out.push(item(s, Step::NoChange, Resource::Key, arn, None, None));
        }
    }
    out.push(item(
        s,
        if view.owner_plan.create_alias { Step::Create } else { Step::NoChange },
        Resource::Alias,
        alias,
        None,
        None,
    ));
    if let Some(policy) = &view.owner_plan.put_policy {
        let old = view.key_now.and_then(|k| k.policy.as_ref());
        out.push(item(s, Step::Update, Resource::KeyPolicy, alias, old, Some(policy)));
    }
    for arn in &view.owner_plan.retire {
        out.push(item(s, Step::ScheduleDeletion, Resource::Key, arn, None, None));
    }
    let primary = match &view.owner_plan.key {
        KeyPlan::Existing { arn, .. } => arn.as_str(),
        KeyPlan::Create { .. } => "",
    };
    out.extend(region_items(view, primary));
    for (u, account, role, plan) in &view.users {
        let arn = spec.role_arn(account);
        match &plan.create_role {
            Some(trust) => out.push(item(u, Step::Create, Resource::Role, &arn, None, Some(trust))),
            None => out.push(item(u, Step::NoChange, Resource::Role, &arn, None, None)),
        }
        if let Some(trust) = &plan.update_trust {
            out.push(item(
                u,
                Step::Update,
                Resource::TrustPolicy,
                &arn,
                role.map(|r| &r.trust),
                Some(trust),
            ));
        }
        let policy_id = format!("{arn}/{}", build::ROLE_POLICY_NAME);
        match &plan.put_policy {
            Some(p) => out.push(item(
                u,
                if role.and_then(|r| r.access_policy.as_ref()).is_some() {
                    Step::Update
                } else {
                    Step::Create
                },
                Resource::RolePolicy,
                &policy_id,
                role.and_then(|r| r.access_policy.as_ref()),
                Some(p),
            )),
            None => out.push(item(u, Step::NoChange, Resource::RolePolicy, &policy_id, None, None)),
        }
    }
    for (u, removal) in &view.removals {
        if let Some(arn) = &removal.delete_role {
            out.push(item(u, Step::Delete, Resource::Role, arn, None, None));
        }
    }
    if let Some((admin, plan)) = view.stack_set {
        out.extend(stack_set_items(admin, plan));
    }
    out
}

/// The stack set (its template as the diff when it is written) and one item per account whose
/// instance is added or removed.
fn stack_set_items(admin: &Session, plan: &StackSetPlan) -> Vec<Planned> {
    let step = match plan.set {
        StackSetChange::Create => Step::Create,
        StackSetChange::UpdateTemplate => Step::Update,
        StackSetChange::Keep => Step::NoChange,
    };
    let mut set = item(admin, step, Resource::StackSet, &plan.name, None, None);
    if step != Step::NoChange {
        set.diff = Some(diff("", &plan.template));
    }
    let instance = |step, account: &AccountId| Planned {
        id: format!("{}/{account}", plan.name),
        ..item(admin, step, Resource::StackInstances, "", None, None)
    };
    let mut out = vec![set];
    out.extend(plan.add.iter().map(|a| instance(Step::Create, a)));
    out.extend(plan.remove.iter().map(|a| instance(Step::Delete, a)));
    out
}

/// Prints the plan: one line per item, the diff under it (coloured on a terminal unless
/// NO_COLOR), or one JSON object.
pub fn show(ctx: &Context, view: &PlanView<'_>) -> Result<()> {
    let planned = items(view);
    let changes = planned.iter().filter(|p| p.action != Step::NoChange).count();
    let color = ctx.printer.color();
    for p in &planned {
        let region = p.region.as_ref().map(|r| format!("  (in {r})")).unwrap_or_default();
        ctx.printer.line(format!(
            "{:<5} {}  {:<18} {:<12} {}{region}",
            p.side,
            p.account,
            p.action.name(),
            p.resource.name(),
            p.id
        ));
        if p.diff.is_some() {
            // Re-render with colour for the terminal; JSON keeps the plain diff.
            let text = p.diff.as_deref().unwrap_or_default();
            let shown = if color { colorize_diff(text) } else { text.to_string() };
            for line in shown.lines() {
                ctx.printer.line(format!("    {line}"));
            }
        }
    }
    ctx.printer.line(if changes == 0 {
        "plan: nothing to change".to_string()
    } else {
        format!("plan: {changes} change(s); run `kmsxacct setup` with the same flags to apply")
    });
    ctx.printer.json(&Report { command: "plan", changes, plan: &planned }, ctx.calls.snapshot());
    Ok(())
}
