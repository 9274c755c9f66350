//! CloudFormation templates: the owner side (key, alias, key policy; a replica template per
//! replica region) and one user-side template that is the same in every user account, so that it
//! can be rolled out as a StackSet: the account's own id comes from `AWS::AccountId`.

use crate::names::{PendingWindow, Region};
use crate::plan::{deployment_tags, key_description};
use crate::policy::PolicyDocument;
use crate::policy::build::{self, GrantSpec};
use serde_json::{Value, json};

/// The templates of one deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct CloudFormation {
    /// The owner account's template in the key's region (the primary, for a multi-Region key).
    pub owner: Value,
    /// The owner account's template in each replica region: the replica and the alias there;
    /// its parameter `PrimaryKeyArn` is the owner template's `KeyArn` output.
    pub replicas: Vec<(Region, Value)>,
    /// The template of every user account.
    pub user: Value,
}

fn cfn_tags(spec: &GrantSpec) -> Value {
    deployment_tags(spec).into_iter().map(|(k, v)| json!({"Key": k, "Value": v})).collect()
}

fn document(policy: &PolicyDocument) -> Value {
    serde_json::to_value(policy).unwrap_or(Value::Null)
}

/// Builds the templates setup's flags describe.
pub fn cloudformation(spec: &GrantSpec, window: PendingWindow) -> CloudFormation {
    let key_policy = document(&build::key_policy(spec));
    let owner = json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": format!("kmsxacct owner side: a key shared through {}", spec.alias),
        "Resources": {
            "Key": {
                "Type": "AWS::KMS::Key",
                "Properties": {
                    "Description": key_description(spec.alias.as_str()),
                    "KeySpec": "SYMMETRIC_DEFAULT",
                    "KeyUsage": "ENCRYPT_DECRYPT",
                    "MultiRegion": spec.multi_region(),
                    "PendingWindowInDays": window.days(),
                    "KeyPolicy": key_policy,
                    "Tags": cfn_tags(spec),
                }
            },
            "Alias": {
                "Type": "AWS::KMS::Alias",
                "Properties": {"AliasName": spec.alias.as_str(), "TargetKeyId": {"Ref": "Key"}}
            }
        },
        "Outputs": {"KeyArn": {"Value": {"Fn::GetAtt": ["Key", "Arn"]}}}
    });
    let replicas = spec
        .replica_regions
        .iter()
        .map(|region| {
            let template = json!({
                "AWSTemplateFormatVersion": "2010-09-09",
                "Description": format!("kmsxacct owner side in {region}: the replica behind {}", spec.alias),
                "Parameters": {
                    "PrimaryKeyArn": {"Type": "String", "Description": "The KeyArn output of the owner template"}
                },
                "Resources": {
                    "Replica": {
                        "Type": "AWS::KMS::ReplicaKey",
                        "Properties": {
                            "PrimaryKeyArn": {"Ref": "PrimaryKeyArn"},
                            "Description": key_description(spec.alias.as_str()),
                            "PendingWindowInDays": window.days(),
                            "KeyPolicy": key_policy,
                            "Tags": cfn_tags(spec),
                        }
                    },
                    "Alias": {
                        "Type": "AWS::KMS::Alias",
                        "Properties": {"AliasName": spec.alias.as_str(), "TargetKeyId": {"Ref": "Replica"}}
                    }
                }
            });
            (region.clone(), template)
        })
        .collect();
    CloudFormation { owner, replicas, user: user_template(spec) }
}

/// The StackSet template body `setup --stackset-admin` sends: [`user_template`], pretty-printed.
pub fn user_template_body(spec: &GrantSpec) -> String {
    serde_json::to_string_pretty(&user_template(spec)).unwrap_or_default()
}

/// The user side: the role, trusted by its own account, with kmsxacct's inline policy and tags.
/// The same in every user account: the StackSet template of `setup --stackset-admin`.
pub fn user_template(spec: &GrantSpec) -> Value {
    // The trust policy as setup writes it, with the account's root taken from the stack's account.
    let mut trust = document(&build::role_trust_policy(spec, &spec.owner));
    let root = json!({"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"});
    trust["Statement"][0]["Principal"]["AWS"] = root;
    json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": format!("kmsxacct user side: the role that uses {} of account {}", spec.alias, spec.owner),
        "Resources": {
            "Role": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "RoleName": spec.role.as_str(),
                    "AssumeRolePolicyDocument": trust,
                    "Policies": [{
                        "PolicyName": build::ROLE_POLICY_NAME,
                        "PolicyDocument": document(&build::role_access_policy(spec)),
                    }],
                    "Tags": cfn_tags(spec),
                }
            }
        },
        "Outputs": {"RoleArn": {"Value": {"Fn::GetAtt": ["Role", "Arn"]}}}
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> GrantSpec {
        GrantSpec::example(&["222222222222", "333333333333"])
    }

    #[test]
    fn the_owner_template_holds_what_setup_writes() {
        let t = cloudformation(&spec(), PendingWindow::DEFAULT);
        let key = &t.owner["Resources"]["Key"]["Properties"];
        assert_eq!(key["KeyPolicy"], serde_json::to_value(build::key_policy(&spec())).unwrap());
        assert_eq!(key["MultiRegion"], json!(false));
        assert_eq!(key["PendingWindowInDays"], json!(30));
        assert_eq!(key["Tags"][0], json!({"Key": "kmsxacct:managed-by", "Value": "kmsxacct"}));
        assert_eq!(t.owner["Resources"]["Alias"]["Properties"]["AliasName"], json!("alias/data"));
        assert!(t.replicas.is_empty());
    }

    #[test]
    fn the_user_template_is_the_same_for_every_account() {
        let t = cloudformation(&spec(), PendingWindow::DEFAULT);
        let role = &t.user["Resources"]["Role"]["Properties"];
        let text = t.user.to_string();
        assert!(!text.contains("222222222222") && !text.contains("333333333333"), "{text}");
        assert_eq!(
            role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]["AWS"],
            json!({"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"})
        );
        assert_eq!(
            role["Policies"][0]["PolicyDocument"],
            serde_json::to_value(build::role_access_policy(&spec())).unwrap()
        );
    }

    #[test]
    fn each_replica_region_gets_its_template() {
        let mut s = spec();
        s.replica_regions = vec!["eu-west-1".parse().unwrap()];
        let t = cloudformation(&s, PendingWindow::DEFAULT);
        assert_eq!(t.owner["Resources"]["Key"]["Properties"]["MultiRegion"], json!(true));
        let (region, replica) = &t.replicas[0];
        assert_eq!(region.as_str(), "eu-west-1");
        assert_eq!(replica["Resources"]["Replica"]["Type"], json!("AWS::KMS::ReplicaKey"));
        assert_eq!(
            replica["Resources"]["Alias"]["Properties"]["TargetKeyId"],
            json!({"Ref": "Replica"})
        );
    }
}
