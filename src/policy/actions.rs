//! What KMS documents about its actions: which exist, which work across accounts, which manage
//! the key rather than use it, and which context keys are multivalued.

/// Every KMS action (the service authorization reference), without the `kms:` prefix.
pub const KMS_ACTIONS: &[&str] = &[
    "CancelKeyDeletion",
    "ConnectCustomKeyStore",
    "CreateAlias",
    "CreateCustomKeyStore",
    "CreateGrant",
    "CreateKey",
    "Decrypt",
    "DeleteAlias",
    "DeleteCustomKeyStore",
    "DeleteImportedKeyMaterial",
    "DeriveSharedSecret",
    "DescribeCustomKeyStores",
    "DescribeKey",
    "DisableKey",
    "DisableKeyRotation",
    "DisconnectCustomKeyStore",
    "EnableKey",
    "EnableKeyRotation",
    "Encrypt",
    "GenerateDataKey",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
    "GenerateDataKeyWithoutPlaintext",
    "GenerateMac",
    "GenerateRandom",
    "GetKeyPolicy",
    "GetKeyRotationStatus",
    "GetParametersForImport",
    "GetPublicKey",
    "ImportKeyMaterial",
    "ListAliases",
    "ListGrants",
    "ListKeyPolicies",
    "ListKeyRotations",
    "ListKeys",
    "ListResourceTags",
    "ListRetirableGrants",
    "PutKeyPolicy",
    "ReEncryptFrom",
    "ReEncryptTo",
    "ReplicateKey",
    "RetireGrant",
    "RevokeGrant",
    "RotateKeyOnDemand",
    "ScheduleKeyDeletion",
    "Sign",
    "SynchronizeMultiRegionKey",
    "TagResource",
    "UntagResource",
    "UpdateAlias",
    "UpdateCustomKeyStore",
    "UpdateKeyDescription",
    "UpdatePrimaryRegion",
    "Verify",
    "VerifyMac",
];

/// KMS operations a principal of another account may call on a key (the KMS developer guide,
/// "Allowing users in other accounts to use a KMS key"). Every other operation only works in the
/// key's own account, whatever the policies say.
pub const CROSS_ACCOUNT_ACTIONS: &[&str] = &[
    "CreateGrant",
    "Decrypt",
    "DescribeKey",
    "DeriveSharedSecret",
    "Encrypt",
    "GenerateDataKey",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
    "GenerateDataKeyWithoutPlaintext",
    "GenerateMac",
    "GetPublicKey",
    "ListGrants",
    "ReEncryptFrom",
    "ReEncryptTo",
    "RetireGrant",
    "RevokeGrant",
    "Sign",
    "Verify",
    "VerifyMac",
];

/// Actions authorised against the alias ARN rather than (or as well as) the key ARN.
pub const ALIAS_ACTIONS: &[&str] = &["CreateAlias", "DeleteAlias", "UpdateAlias"];

/// Actions whose request may name the key by an alias, and so carry `kms:RequestAlias` (KMS
/// developer guide, "kms:RequestAlias": cryptographic operations, DescribeKey, GetPublicKey).
pub const ALIAS_NAMING_ACTIONS: &[&str] = &[
    "Decrypt",
    "DeriveSharedSecret",
    "DescribeKey",
    "Encrypt",
    "GenerateDataKey",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
    "GenerateDataKeyWithoutPlaintext",
    "GenerateMac",
    "GetPublicKey",
    "ReEncryptFrom",
    "ReEncryptTo",
    "Sign",
    "Verify",
    "VerifyMac",
];

/// Whether a request for `action` (with `kms:` prefix, any case) can name the key by alias.
pub fn names_key_by_alias(action: &str) -> bool {
    let name = action.split_once(':').map(|(_, n)| n).unwrap_or(action);
    ALIAS_NAMING_ACTIONS.iter().any(|a| a.eq_ignore_ascii_case(name))
}

/// Actions authorised against no resource (`"Resource": "*"`): IAM policies alone decide them;
/// no key policy has a say (Service Authorization Reference for KMS).
pub const KEYLESS_ACTIONS: &[&str] = &[
    "ConnectCustomKeyStore",
    "CreateCustomKeyStore",
    "CreateKey",
    "DeleteCustomKeyStore",
    "DescribeCustomKeyStores",
    "DisconnectCustomKeyStore",
    "GenerateRandom",
    "ListAliases",
    "ListKeys",
    "ListRetirableGrants",
    "UpdateCustomKeyStore",
];

/// What a KMS action is authorised against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionResource {
    /// Nothing: IAM policies alone decide.
    None,
    /// The alias (IAM policies) and each key it affects (key policy, IAM where delegated).
    Alias,
    /// The key.
    Key,
}

/// The resource `action` (with `kms:` prefix, any case) is authorised against.
pub fn action_resource(action: &str) -> ActionResource {
    let name = action.split_once(':').map(|(_, n)| n).unwrap_or(action);
    let among = |list: &[&str]| list.iter().any(|a| a.eq_ignore_ascii_case(name));
    if among(KEYLESS_ACTIONS) {
        ActionResource::None
    } else if among(ALIAS_ACTIONS) {
        ActionResource::Alias
    } else {
        ActionResource::Key
    }
}

/// Multivalued context keys: they need `ForAnyValue:` or `ForAllValues:` (lowercase).
pub const MULTIVALUED_KEYS: &[&str] = &[
    "kms:resourcealiases",
    "kms:grantoperations",
    "aws:tagkeys",
    "aws:calledvia",
    "aws:principalorgpaths",
    "aws:principalservicenameslist",
];

/// Whether `kms:NAME` (any case) is a KMS action; `None` for actions of other services.
pub fn is_known_kms_action(action: &str) -> Option<bool> {
    let (service, name) = action.split_once(':')?;
    if !service.eq_ignore_ascii_case("kms") {
        return None;
    }
    Some(KMS_ACTIONS.iter().any(|a| a.eq_ignore_ascii_case(name)))
}

/// Whether `action` (e.g. `kms:Encrypt`) may be called across accounts: exactly the operations
/// that use the key for cryptography or read it, as opposed to managing it.
pub fn is_cross_account(action: &str) -> bool {
    action.split_once(':').is_some_and(|(s, n)| {
        s.eq_ignore_ascii_case("kms")
            && CROSS_ACCOUNT_ACTIONS.iter().any(|a| a.eq_ignore_ascii_case(n))
    })
}

/// Whether `action` (any case, with `kms:` prefix) is an alias operation.
pub fn is_alias_action(action: &str) -> bool {
    action.split_once(':').is_some_and(|(s, n)| {
        s.eq_ignore_ascii_case("kms") && ALIAS_ACTIONS.iter().any(|a| a.eq_ignore_ascii_case(n))
    })
}

/// Whether a context key (any case) is multivalued.
pub fn is_multivalued(key: &str) -> bool {
    MULTIVALUED_KEYS.contains(&key.to_ascii_lowercase().as_str())
}
