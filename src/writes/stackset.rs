//! The StackSet writes of [`Write`]: how each is sent, read back and reported.

use super::{Output, Write};
use crate::aws::Session;
use crate::aws::error::AwsError;
use crate::error::{Error, Result};
use crate::names::AccountId;
use crate::output::{Action, Resource};
use aws_sdk_cloudformation::types::{
    Capability, ConcurrencyMode, PermissionModels, StackSetOperationPreferences, Tag,
};

/// Every account at once (soft failure tolerance keeps the concurrency up), and any failed
/// account fails the operation, so that the command reports it and a re-run converges.
fn preferences() -> StackSetOperationPreferences {
    StackSetOperationPreferences::builder()
        .concurrency_mode(ConcurrencyMode::SoftFailureTolerance)
        .max_concurrent_percentage(100)
        .failure_tolerance_count(0)
        .build()
}

fn cfn_tags(tags: &[(String, String)]) -> Vec<Tag> {
    tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect()
}

fn account_ids(accounts: &[AccountId]) -> Vec<String> {
    accounts.iter().map(|a| a.to_string()).collect()
}

/// Sends a StackSet write once (the SDK retries it with the same token or operation id).
pub(super) async fn send(w: &Write<'_>, s: &Session) -> Result<Output> {
    let (op, cfn) = (w.operation(), s.cfn());
    match *w {
        Write::CreateStackSet { name, template, tags, token } => {
            let out = cfn
                .create_stack_set()
                .stack_set_name(name)
                .description(format!("kmsxacct: the role that uses a shared KMS key ({name})"))
                .template_body(template)
                .permission_model(PermissionModels::SelfManaged)
                .capabilities(Capability::CapabilityNamedIam)
                .set_tags(Some(cfn_tags(tags)))
                .client_request_token(token)
                .send()
                .await
                .map_err(|e| s.cfn_error(op, e))?;
            Ok(Output::StackSet(out.stack_set_id().unwrap_or_default().to_string()))
        }
        Write::UpdateStackSet { name, template, tags, operation_id } => {
            let out = cfn
                .update_stack_set()
                .stack_set_name(name)
                .template_body(template)
                .capabilities(Capability::CapabilityNamedIam)
                .set_tags(Some(cfn_tags(tags)))
                .operation_preferences(preferences())
                .operation_id(operation_id)
                .send()
                .await
                .map_err(|e| s.cfn_error(op, e))?;
            Ok(Output::Operation(out.operation_id().unwrap_or(operation_id).to_string()))
        }
        Write::CreateStackInstances { name, accounts, region, operation_id } => {
            let out = cfn
                .create_stack_instances()
                .stack_set_name(name)
                .set_accounts(Some(account_ids(accounts)))
                .regions(region.as_str())
                .operation_preferences(preferences())
                .operation_id(operation_id)
                .send()
                .await
                .map_err(|e| s.cfn_error(op, e))?;
            Ok(Output::Operation(out.operation_id().unwrap_or(operation_id).to_string()))
        }
        Write::DeleteStackInstances { name, accounts, region, operation_id } => {
            let out = cfn
                .delete_stack_instances()
                .stack_set_name(name)
                .set_accounts(Some(account_ids(accounts)))
                .regions(region.as_str())
                .retain_stacks(false)
                .operation_preferences(preferences())
                .operation_id(operation_id)
                .send()
                .await
                .map_err(|e| s.cfn_error(op, e))?;
            Ok(Output::Operation(out.operation_id().unwrap_or(operation_id).to_string()))
        }
        Write::DeleteStackSet { name } => {
            cfn.delete_stack_set()
                .stack_set_name(name)
                .send()
                .await
                .map_err(|e| s.cfn_error(op, e))?;
            Ok(Output::Nothing)
        }
        _ => Err(Error::Failed(format!("{op}: not a StackSet write"))),
    }
}

/// After "name already exists": the set is ours when it carries every one of `tags`.
pub(super) async fn confirm_created(
    s: &Session,
    name: &str,
    tags: &[(String, String)],
    err: &AwsError,
) -> Result<Output> {
    match crate::admin::describe_stack_set(s, name).await? {
        Some((id, found)) if tags.iter().all(|t| found.contains(t)) => Ok(Output::StackSet(id)),
        Some(_) => Err(Error::Conflict(format!(
            "stack set {name} in account {} exists and was not created by kmsxacct for this deployment; nothing more was changed",
            s.account()
        ))),
        None => Err(err.clone().into()),
    }
}

/// How many accounts a change line names before it counts the rest.
const SHOWN_ACCOUNTS: usize = 5;

/// The accounts, the first few by id and the rest counted.
fn accounts_detail(accounts: &[AccountId]) -> String {
    let shown: Vec<&str> = accounts.iter().take(SHOWN_ACCOUNTS).map(AccountId::as_str).collect();
    let more = accounts.len().saturating_sub(SHOWN_ACCOUNTS);
    let rest = if more > 0 { format!(" and {more} more") } else { String::new() };
    format!("{} account(s): {}{rest}", accounts.len(), shown.join(", "))
}

/// The change line's parts for a StackSet write.
pub(super) fn change(w: &Write<'_>) -> (Action, Resource, String, Option<String>) {
    match *w {
        Write::CreateStackSet { name, .. } => {
            (Action::Created, Resource::StackSet, name.into(), None)
        }
        Write::UpdateStackSet { name, .. } => (
            Action::Updated,
            Resource::StackSet,
            name.into(),
            Some("new template, rolled out to every instance".into()),
        ),
        Write::CreateStackInstances { name, accounts, region, .. } => (
            Action::Created,
            Resource::StackInstances,
            name.into(),
            Some(format!("{} in {region}", accounts_detail(accounts))),
        ),
        Write::DeleteStackInstances { name, accounts, region, .. } => (
            Action::Deleted,
            Resource::StackInstances,
            name.into(),
            Some(format!("{} in {region}", accounts_detail(accounts))),
        ),
        Write::DeleteStackSet { name } => (Action::Deleted, Resource::StackSet, name.into(), None),
        _ => (Action::Unchanged, Resource::StackSet, String::new(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_lines_name_a_few_accounts_and_count_the_rest() {
        let ids: Vec<AccountId> =
            (0..7).map(|i| format!("{:012}", 200000000000u64 + i).parse().unwrap()).collect();
        assert_eq!(
            accounts_detail(&ids),
            "7 account(s): 200000000000, 200000000001, 200000000002, 200000000003, 200000000004 and 2 more"
        );
        assert_eq!(accounts_detail(&ids[..1]), "1 account(s): 200000000000");
    }
}
