//! Planning a StackSet rollout of the user roles: from the stack set the administrator account
//! holds to what setup or teardown must do. Pure code.

use super::is_ours;
use crate::names::{AccountId, RoleName};
use crate::policy::build::GrantSpec;

/// A stack set as read from the administrator account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackSetState {
    /// Its id (`NAME:UUID`).
    pub id: String,
    /// Its template body.
    pub template: String,
    /// Its tags.
    pub tags: Vec<(String, String)>,
    /// The accounts holding an instance in the deployment's region.
    pub accounts: Vec<AccountId>,
}

/// What happens to the stack set itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StackSetChange {
    /// It does not exist: create it.
    Create,
    /// Its template is not the one the grant settings render: update it (every instance).
    UpdateTemplate,
    /// It is as it should be.
    Keep,
}

/// What setup does to the stack set and its instances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackSetPlan {
    /// The stack set's name.
    pub name: String,
    /// The template every instance deploys.
    pub template: String,
    /// The stack set itself.
    pub set: StackSetChange,
    /// Accounts that get an instance.
    pub add: Vec<AccountId>,
    /// Accounts whose instance (and so whose role) goes.
    pub remove: Vec<AccountId>,
}

impl StackSetPlan {
    /// Whether setup changes nothing.
    pub fn is_empty(&self) -> bool {
        self.set == StackSetChange::Keep && self.add.is_empty() && self.remove.is_empty()
    }
}

/// The stack set's name for a role: the role name with every character a stack set name does
/// not allow (anything but letters, digits and `-`) as `-`, starting with a letter, at most 128.
pub fn stack_set_name(role: &RoleName) -> String {
    let clean: String = role
        .as_str()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' })
        .collect();
    let name = if clean.starts_with(|c: char| c.is_ascii_alphabetic()) {
        clean
    } else {
        format!("kmsxacct-{clean}")
    };
    name.chars().take(128).collect()
}

/// Whether two templates say the same (as JSON values; text when either is not JSON).
pub fn same_template(a: &str, b: &str) -> bool {
    match (
        serde_json::from_str::<serde_json::Value>(a),
        serde_json::from_str::<serde_json::Value>(b),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Plans setup's stack set: created when absent, its template updated when the grant settings
/// changed, an instance added for each wanted account without one and removed from each other
/// account. A stack set of the same name without this deployment's tags is a conflict.
pub fn plan_stack_set(
    spec: &GrantSpec,
    (name, template): (&str, &str),
    wanted: &[AccountId],
    now: Option<&StackSetState>,
    admin: &AccountId,
) -> Result<StackSetPlan, String> {
    let (set, have): (StackSetChange, &[AccountId]) = match now {
        None => (StackSetChange::Create, &[]),
        Some(now) if !is_ours(&now.tags, spec) => {
            return Err(format!(
                "stack set {name} in account {admin} exists and was not created by kmsxacct for {} of account {} (its tags say otherwise); pick another --role or remove it",
                spec.alias, spec.owner
            ));
        }
        Some(now) if !same_template(&now.template, template) => {
            (StackSetChange::UpdateTemplate, &now.accounts)
        }
        Some(now) => (StackSetChange::Keep, &now.accounts),
    };
    Ok(StackSetPlan {
        name: name.to_string(),
        template: template.to_string(),
        set,
        add: wanted.iter().filter(|a| !have.contains(a)).cloned().collect(),
        remove: have.iter().filter(|a| !wanted.contains(a)).cloned().collect(),
    })
}

/// What teardown does to the stack set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackSetTeardown {
    /// Accounts whose instance goes first.
    pub remove: Vec<AccountId>,
    /// Then delete the stack set.
    pub delete_set: bool,
}

/// Plans teardown's stack set: every instance it holds, then the set. One kmsxacct did not
/// create is left alone: a conflict.
pub fn plan_stack_set_teardown(
    spec: &GrantSpec,
    name: &str,
    now: Option<&StackSetState>,
) -> Result<StackSetTeardown, String> {
    match now {
        None => Ok(StackSetTeardown { remove: Vec::new(), delete_set: false }),
        Some(now) if !is_ours(&now.tags, spec) => Err(format!(
            "stack set {name} is not kmsxacct's (its tags say otherwise); teardown leaves it and everything else alone"
        )),
        Some(now) => Ok(StackSetTeardown { remove: now.accounts.clone(), delete_set: true }),
    }
}

/// Reads an accounts file: one 12-digit account id per line; blank lines and `#` comments are
/// skipped. Each id once.
pub fn parse_accounts(text: &str) -> Result<Vec<AccountId>, String> {
    let ids = text.lines().enumerate().filter_map(|(i, line)| {
        let line = line.split('#').next().unwrap_or_default().trim();
        (!line.is_empty()).then_some((i + 1, line))
    });
    let mut accounts = Vec::new();
    for (line, id) in ids {
        let account: AccountId =
            id.parse().map_err(|e| format!("line {line}: '{id}' is not an account id ({e})"))?;
        if accounts.contains(&account) {
            return Err(format!("line {line}: account {account} is listed twice"));
        }
        accounts.push(account);
    }
    Ok(accounts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::OrgScope;
    use crate::plan::deployment_tags;

    fn spec() -> GrantSpec {
        let mut s = GrantSpec::example(&[]);
        s.org = Some(OrgScope::id("o-a1b2c3d4e5").unwrap());
        s
    }

    fn ids(list: &[&str]) -> Vec<AccountId> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    fn admin() -> AccountId {
        "999999999999".parse().unwrap()
    }

    fn state(accounts: &[&str], template: &str) -> StackSetState {
        StackSetState {
            id: "kmsxacct-data:1".into(),
            template: template.into(),
            tags: deployment_tags(&spec()),
            accounts: ids(accounts),
        }
    }

    #[test]
    fn a_new_stack_set_gets_every_account() {
        let wanted = ids(&["222222222222", "333333333333"]);
        let p = plan_stack_set(&spec(), ("s", "{}"), &wanted, None, &admin()).unwrap();
        assert_eq!(p.set, StackSetChange::Create);
        assert_eq!(p.add, wanted);
        assert!(p.remove.is_empty());
    }

    #[test]
    fn converging_adds_and_removes_only_the_difference() {
        let now = state(&["222222222222", "333333333333"], r#"{"a": 1, "b": 2}"#);
        let wanted = ids(&["333333333333", "444444444444"]);
        let p = plan_stack_set(&spec(), ("s", r#"{"b":2,"a":1}"#), &wanted, Some(&now), &admin())
            .unwrap();
        assert_eq!(p.set, StackSetChange::Keep, "the same JSON, formatted otherwise");
        assert_eq!(p.add, ids(&["444444444444"]));
        assert_eq!(p.remove, ids(&["222222222222"]));
        assert!(!p.is_empty());
        let same = plan_stack_set(
            &spec(),
            ("s", r#"{"a":1,"b":2}"#),
            &ids(&["222222222222", "333333333333"]),
            Some(&now),
            &admin(),
        )
        .unwrap();
        assert!(same.is_empty());
        let only_added = plan_stack_set(
            &spec(),
            ("s", r#"{"a":1,"b":2}"#),
            &ids(&["222222222222", "333333333333", "444444444444"]),
            Some(&now),
            &admin(),
        )
        .unwrap();
        assert!(!only_added.is_empty() && only_added.remove.is_empty());
    }

    #[test]
    fn templates_that_are_not_json_compare_as_text() {
        assert!(same_template("Resources: {}", "Resources: {}"));
        assert!(!same_template("Resources: {}", "Resources: []"));
        assert!(!same_template("{}", "Resources: {}"));
    }

    #[test]
    fn a_changed_template_updates_the_stack_set() {
        let now = state(&["222222222222"], r#"{"a": 1}"#);
        let p = plan_stack_set(
            &spec(),
            ("s", r#"{"a": 2}"#),
            &ids(&["222222222222"]),
            Some(&now),
            &admin(),
        )
        .unwrap();
        assert_eq!(p.set, StackSetChange::UpdateTemplate);
        assert!(p.add.is_empty() && p.remove.is_empty());
    }

    #[test]
    fn a_stack_set_kmsxacct_did_not_create_stops_setup_and_teardown() {
        let mut now = state(&["222222222222"], "{}");
        now.tags = vec![("team".into(), "platform".into())];
        let e = plan_stack_set(&spec(), ("s", "{}"), &ids(&["222222222222"]), Some(&now), &admin())
            .unwrap_err();
        assert!(
            e.contains("stack set s in account 999999999999")
                && e.contains("not created by kmsxacct"),
            "{e}"
        );
        let e = plan_stack_set_teardown(&spec(), "s", Some(&now)).unwrap_err();
        assert!(e.contains("not kmsxacct's"), "{e}");
    }

    #[test]
    fn teardown_removes_every_instance_then_the_set() {
        let now = state(&["222222222222", "333333333333"], "{}");
        let t = plan_stack_set_teardown(&spec(), "s", Some(&now)).unwrap();
        assert_eq!(t.remove, ids(&["222222222222", "333333333333"]));
        assert!(t.delete_set);
        let gone = plan_stack_set_teardown(&spec(), "s", None).unwrap();
        assert_eq!(gone, StackSetTeardown { remove: Vec::new(), delete_set: false });
    }

    #[test]
    fn stack_set_names_are_valid_for_any_role_name() {
        assert_eq!(stack_set_name(&"kmsxacct-data".parse().unwrap()), "kmsxacct-data");
        assert_eq!(stack_set_name(&"team_a.role@x".parse().unwrap()), "team-a-role-x");
        assert_eq!(stack_set_name(&"9lives".parse().unwrap()), "kmsxacct-9lives");
        assert_eq!(stack_set_name(&"_r".parse().unwrap()), "kmsxacct--r");
    }

    #[test]
    fn accounts_files_take_one_id_per_line() {
        let text = "# fleet\n222222222222\n\n333333333333  # payments\n";
        assert_eq!(parse_accounts(text).unwrap(), ids(&["222222222222", "333333333333"]));
        let e = parse_accounts("222222222222\n12345\n").unwrap_err();
        assert!(e.starts_with("line 2: '12345' is not an account id"), "{e}");
        let e = parse_accounts("222222222222\n222222222222\n").unwrap_err();
        assert_eq!(e, "line 2: account 222222222222 is listed twice");
        assert!(parse_accounts("# nothing\n").unwrap().is_empty());
    }
}
