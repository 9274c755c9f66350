//! A Terraform configuration: one aliased `aws` provider per owner region and per user account
//! (each with its profile), the key (a multi-Region primary and its replicas), the alias in every
//! region, and in each user account the role and kmsxacct's inline policy. Policy documents are
//! the ones setup writes, passed through `jsonencode`.

use crate::names::{AccountId, PendingWindow, Region};
use crate::plan::{deployment_tags, key_description};
use crate::policy::PolicyDocument;
use crate::policy::build::{self, GrantSpec, GrantTo};
use hcl::expr::{Expression, FuncCall, Traversal, Variable};
use hcl::{Block, Body};

/// The AWS profiles the providers use.
#[derive(Debug, Clone)]
pub struct TerraformProfiles<'a> {
    /// The owner account's profile.
    pub owner: &'a str,
    /// Each user account's profile and id.
    pub users: Vec<(&'a str, &'a AccountId)>,
}

/// `a.b.c` as an expression.
fn reference(path: &str) -> Expression {
    let mut parts = path.split('.');
    let root = Variable::unchecked(parts.next().unwrap_or_default());
    let mut t = Traversal::builder(root);
    for p in parts {
        t = t.attr(p);
    }
    t.build().into()
}

/// `jsonencode(document)`.
fn json_encode(policy: &PolicyDocument) -> Expression {
    let value = serde_json::to_value(policy).unwrap_or(serde_json::Value::Null);
    let document = hcl::to_expression(value).unwrap_or(Expression::Null);
    FuncCall::builder("jsonencode").arg(document).build().into()
}

fn tag_map(spec: &GrantSpec) -> Expression {
    let map: hcl::Map<String, Expression> =
        deployment_tags(spec).into_iter().map(|(k, v)| (k, Expression::from(v))).collect();
    Expression::Object(map.into_iter().map(|(k, v)| (k.into(), v)).collect())
}

fn provider(alias: &str, profile: &str, region: &Region) -> Block {
    Block::builder("provider")
        .add_label("aws")
        .add_attribute(("alias", alias))
        .add_attribute(("profile", profile))
        .add_attribute(("region", region.as_str()))
        .build()
}

/// A provider or resource name for a region or account: letters, digits and `_`.
fn name(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect()
}

/// Builds the configuration setup's flags describe, as HCL text.
pub fn terraform(
    spec: &GrantSpec,
    profiles: &TerraformProfiles<'_>,
    window: PendingWindow,
) -> String {
    let mut blocks = vec![provider("owner", profiles.owner, &spec.region)];
    for region in &spec.replica_regions {
        let alias = format!("owner_{}", name(region.as_str()));
        blocks.push(provider(&alias, profiles.owner, region));
    }
    for (profile, account) in &profiles.users {
        blocks.push(provider(&format!("user_{account}"), profile, &spec.region));
    }
    blocks.extend(owner_blocks(spec, profiles, window));
    for (_, account) in &profiles.users {
        blocks.extend(user_blocks(spec, account));
    }
    hcl::to_string(&Body::builder().add_blocks(blocks).build()).unwrap_or_default()
}

/// The key, its alias, and each replica with its alias.
fn owner_blocks(
    spec: &GrantSpec,
    profiles: &TerraformProfiles<'_>,
    window: PendingWindow,
) -> Vec<Block> {
    // The key policy names the roles themselves with --grant-to role: they must exist first.
    let depends: Vec<Expression> = match spec.grant_to {
        GrantTo::Role => profiles
            .users
            .iter()
            .map(|(_, a)| reference(&format!("aws_iam_role.user_{a}")))
            .collect(),
        GrantTo::Account => Vec::new(),
    };
    let mut key = Block::builder("resource")
        .add_labels(["aws_kms_key", "this"])
        .add_attribute(("provider", reference("aws.owner")))
        .add_attribute(("description", key_description(spec.alias.as_str())))
        .add_attribute(("key_usage", "ENCRYPT_DECRYPT"))
        .add_attribute(("customer_master_key_spec", "SYMMETRIC_DEFAULT"))
        .add_attribute(("multi_region", spec.multi_region()))
        .add_attribute(("deletion_window_in_days", i64::from(window.days())))
        .add_attribute(("policy", json_encode(&build::key_policy(spec))))
        .add_attribute(("tags", tag_map(spec)));
    if !depends.is_empty() {
        key = key.add_attribute(("depends_on", Expression::Array(depends)));
    }
    let mut blocks =
        vec![key.build(), alias_block("this", "aws.owner", "aws_kms_key.this.key_id", spec)];
    for region in &spec.replica_regions {
        let r = name(region.as_str());
        let provider = format!("aws.owner_{r}");
        blocks.push(
            Block::builder("resource")
                .add_labels(["aws_kms_replica_key", &r])
                .add_attribute(("provider", reference(&provider)))
                .add_attribute(("description", key_description(spec.alias.as_str())))
                .add_attribute(("primary_key_arn", reference("aws_kms_key.this.arn")))
                .add_attribute(("deletion_window_in_days", i64::from(window.days())))
                .add_attribute(("policy", json_encode(&build::key_policy(spec))))
                .add_attribute(("tags", tag_map(spec)))
                .build(),
        );
        let target = format!("aws_kms_replica_key.{r}.key_id");
        blocks.push(alias_block(&r, &provider, &target, spec));
    }
    blocks
}

/// A user account's role and kmsxacct's inline policy on it.
fn user_blocks(spec: &GrantSpec, account: &AccountId) -> [Block; 2] {
    let (role, provider) = (format!("user_{account}"), format!("aws.user_{account}"));
    [
        Block::builder("resource")
            .add_labels(["aws_iam_role", &role])
            .add_attribute(("provider", reference(&provider)))
            .add_attribute(("name", spec.role.as_str()))
            .add_attribute((
                "assume_role_policy",
                json_encode(&build::role_trust_policy(spec, account)),
            ))
            .add_attribute(("tags", tag_map(spec)))
            .build(),
        Block::builder("resource")
            .add_labels(["aws_iam_role_policy", &role])
            .add_attribute(("provider", reference(&provider)))
            .add_attribute(("name", build::ROLE_POLICY_NAME))
            .add_attribute(("role", reference(&format!("aws_iam_role.{role}.id"))))
            .add_attribute(("policy", json_encode(&build::role_access_policy(spec))))
            .build(),
    ]
}

fn alias_block(label: &str, provider: &str, target: &str, spec: &GrantSpec) -> Block {
    Block::builder("resource")
        .add_labels(["aws_kms_alias", label])
        .add_attribute(("provider", reference(provider)))
        .add_attribute(("name", spec.alias.as_str()))
        .add_attribute(("target_key_id", reference(target)))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_back_with_two_aliased_providers_and_the_documents_setup_writes() {
        let mut spec = GrantSpec::example(&["222222222222"]);
        let user: AccountId = "222222222222".parse().unwrap();
        let profiles = TerraformProfiles { owner: "A", users: vec![("B", &user)] };
        let text = terraform(&spec, &profiles, PendingWindow::DEFAULT);
        let body: hcl::Body = hcl::from_str(&text).unwrap();
        let providers: Vec<_> = body.blocks().filter(|b| b.identifier() == "provider").collect();
        assert_eq!(providers.len(), 2, "{text}");
        let resources: Vec<String> = body
            .blocks()
            .filter(|b| b.identifier() == "resource")
            .map(|b| {
                b.labels().iter().map(|l| l.as_str().to_string()).collect::<Vec<_>>().join(".")
            })
            .collect();
        assert_eq!(
            resources,
            [
                "aws_kms_key.this",
                "aws_kms_alias.this",
                "aws_iam_role.user_222222222222",
                "aws_iam_role_policy.user_222222222222"
            ]
        );
        assert!(text.contains("jsonencode("), "{text}");
        spec.replica_regions = vec!["eu-west-1".parse().unwrap()];
        let text = terraform(&spec, &profiles, PendingWindow::DEFAULT);
        let body: hcl::Body = hcl::from_str(&text).unwrap();
        assert_eq!(body.blocks().filter(|b| b.identifier() == "provider").count(), 3);
        assert!(text.contains("aws_kms_replica_key"), "{text}");
    }
}
