//! The facts `diagnose` weighs besides policies, as pure functions: how the caller's code names
//! the key, whether the key's state and usage allow the action, and what an AccessDenied message
//! says about which policy refused.

use crate::names::InputError;
use crate::policy::eval::Layer;
use crate::policy::matching::Arn;

/// How the caller's code names the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyName {
    /// A key ARN: account and region are in it.
    KeyArn {
        /// The ARN.
        arn: String,
        /// Its account.
        account: String,
        /// Its region.
        region: String,
    },
    /// An alias ARN.
    AliasArn {
        /// The ARN.
        arn: String,
        /// `alias/NAME`.
        alias: String,
        /// Its account.
        account: String,
        /// Its region.
        region: String,
    },
    /// `alias/NAME`: looked up in the caller's own account and region.
    AliasName(String),
    /// A key id: looked up in the caller's own account and region.
    KeyId(String),
}

impl KeyName {
    /// Parses the `--key` value.
    pub fn parse(text: &str) -> Result<KeyName, InputError> {
        if let Some(arn) = Arn::parse(text) {
            let (account, region) = (arn.account.to_string(), arn.region.to_string());
            if arn.service == "kms" && arn.resource.starts_with("key/") {
                return Ok(KeyName::KeyArn { arn: text.into(), account, region });
            }
            if arn.service == "kms" && arn.resource.starts_with("alias/") {
                let alias = arn.resource.to_string();
                return Ok(KeyName::AliasArn { arn: text.into(), alias, account, region });
            }
        } else if text.starts_with("alias/") && text.len() > "alias/".len() {
            return Ok(KeyName::AliasName(text.into()));
        } else if !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Ok(KeyName::KeyId(text.into()));
        }
        Err(InputError(format!(
            "invalid --key '{text}' (expected a key ARN, an alias ARN, alias/NAME or a key id)"
        )))
    }

    /// The alias the name uses, `alias/NAME`, if it names an alias.
    pub fn alias(&self) -> Option<&str> {
        match self {
            KeyName::AliasArn { alias, .. } | KeyName::AliasName(alias) => Some(alias),
            _ => None,
        }
    }

    /// The account and region the name fixes, for an ARN.
    pub fn place(&self) -> Option<(&str, &str)> {
        match self {
            KeyName::KeyArn { account, region, .. } | KeyName::AliasArn { account, region, .. } => {
                Some((account, region))
            }
            _ => None,
        }
    }
}

/// The key usage an action needs, if it needs one (`None`: any key).
pub fn needed_usage(action: &str) -> Option<&'static str> {
    let name = action.trim_start_matches("kms:");
    match name {
        "Encrypt"
        | "Decrypt"
        | "ReEncryptFrom"
        | "ReEncryptTo"
        | "GenerateDataKey"
        | "GenerateDataKeyWithoutPlaintext"
        | "GenerateDataKeyPair"
        | "GenerateDataKeyPairWithoutPlaintext" => Some("ENCRYPT_DECRYPT"),
        "Sign" | "Verify" => Some("SIGN_VERIFY"),
        "GenerateMac" | "VerifyMac" => Some("GENERATE_VERIFY_MAC"),
        "DeriveSharedSecret" => Some("KEY_AGREEMENT"),
        _ => None,
    }
}

/// Why the key's state blocks `action`, if it does: only DescribeKey and management actions
/// work on a key that is not Enabled.
pub fn state_blocks(state: &str, deletion_date: Option<&str>, action: &str) -> Option<String> {
    if state == "Enabled" || needed_usage(action).is_none() {
        return None;
    }
    Some(match (state, deletion_date) {
        ("PendingDeletion", Some(date)) => {
            format!(
                "the key is PendingDeletion (KMS deletes it on {date}): KMS refuses {action} on it"
            )
        }
        _ => format!("the key is {state}: KMS refuses {action} on it"),
    })
}

/// What an AccessDenied message names: the layer, and whether it speaks of an explicit deny.
pub fn error_layer(text: &str) -> Option<(Layer, bool)> {
    let t = text.to_lowercase();
    let explicit = t.contains("explicit deny");
    let layer = if t.contains("service control policy") {
        Layer::Scp
    } else if t.contains("permissions boundary") {
        Layer::PermissionsBoundary
    } else if t.contains("identity-based policy") {
        Layer::IdentityPolicy
    } else if t.contains("resource-based policy") || t.contains("key policy") {
        Layer::KeyPolicy
    } else {
        return None;
    };
    Some((layer, explicit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names_of_every_form() {
        let arn = "arn:aws:kms:eu-west-1:111111111111:key/k";
        assert!(
            matches!(KeyName::parse(arn).unwrap(), KeyName::KeyArn { ref region, .. } if region == "eu-west-1")
        );
        let alias = KeyName::parse("arn:aws:kms:us-east-1:111111111111:alias/data").unwrap();
        assert_eq!(alias.alias(), Some("alias/data"));
        assert_eq!(alias.place(), Some(("111111111111", "us-east-1")));
        assert_eq!(KeyName::parse("alias/data").unwrap(), KeyName::AliasName("alias/data".into()));
        assert!(matches!(KeyName::parse("1234abcd-12ab").unwrap(), KeyName::KeyId(_)));
        assert!(KeyName::parse("alias/").is_err() && KeyName::parse("s3://x").is_err());
    }

    // KMS "Key usage": Encrypt needs an ENCRYPT_DECRYPT key; Sign a SIGN_VERIFY one.
    #[test]
    fn usage_and_state_block_what_kms_refuses() {
        assert_eq!(needed_usage("kms:Encrypt"), Some("ENCRYPT_DECRYPT"));
        assert_eq!(needed_usage("kms:Sign"), Some("SIGN_VERIFY"));
        assert_eq!(needed_usage("kms:DescribeKey"), None);
        assert!(state_blocks("Disabled", None, "kms:Decrypt").unwrap().contains("Disabled"));
        assert!(
            state_blocks("PendingDeletion", Some("2026-12-29"), "kms:Decrypt")
                .unwrap()
                .contains("2026-12-29")
        );
        assert!(state_blocks("Disabled", None, "kms:DescribeKey").is_none());
        assert!(state_blocks("Enabled", None, "kms:Decrypt").is_none());
    }

    // IAM "Access denied error messages": the message names the policy type that refused.
    #[test]
    fn access_denied_messages_name_their_layer() {
        let m = "User: arn:aws:sts::222222222222:assumed-role/app/s is not authorized to perform: kms:Decrypt on resource: arn:aws:kms:us-east-1:111111111111:key/k because no resource-based policy allows the kms:Decrypt action";
        assert_eq!(error_layer(m), Some((Layer::KeyPolicy, false)));
        assert_eq!(
            error_layer("... with an explicit deny in a service control policy"),
            Some((Layer::Scp, true))
        );
        assert_eq!(
            error_layer("... because no identity-based policy allows the kms:Encrypt action"),
            Some((Layer::IdentityPolicy, false))
        );
        assert_eq!(
            error_layer("... with an explicit deny in a permissions boundary"),
            Some((Layer::PermissionsBoundary, true))
        );
        assert_eq!(error_layer("something else"), None);
    }
}
