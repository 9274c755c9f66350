//! verify's live checks: each granted operation called through the alias ARN as the role, and
//! the bounded wait for IAM/KMS propagation when AWS denies what the policies allow.

use super::super::Context;
use super::super::wait::{self, Waited};
use crate::aws::Session;
use crate::error::{Error, Result};
use crate::output::Check;
use crate::policy::build::KeyAction;
use crate::user;
use aws_sdk_kms::types::DataKeySpec;
use aws_smithy_types::Blob;
use std::time::Instant;

/// Bytes of random plaintext in the round trip.
const PLAINTEXT_BYTES: usize = 32;

/// What the live checks of one user account work with.
#[derive(Clone, Copy)]
pub(super) struct Live<'a> {
    pub user: &'a Session,
    pub owner: &'a Session,
    pub role_arn: &'a str,
    pub alias_arn: &'a str,
    pub actions: &'a [KeyAction],
}

/// The live checks' results, and whether they failed because AWS denied access.
pub(super) struct RoundTrip {
    /// The checks, in order.
    pub checks: Vec<Check>,
    /// Whether they failed because AWS denied access.
    pub denied: bool,
    /// The key Encrypt through the alias reached, when it was called.
    pub encrypted_with: Option<String>,
}

impl RoundTrip {
    /// Why a failed round trip may be propagation rather than a wrong setup: AWS denied what
    /// the policies allow, or Encrypt through the alias still reached another key than the one
    /// the alias points at (`alias_key`). None when nothing failed, or for another reason.
    pub fn pending(&self, alias_key: Option<&str>) -> Option<String> {
        let failed = self.checks.iter().find(|c| !c.ok)?;
        let stale = match (&self.encrypted_with, alias_key) {
            (Some(used), Some(target)) => used != target,
            _ => false,
        };
        if stale {
            Some(format!(
                "Encrypt through the alias still reaches the previous key {}",
                self.encrypted_with.as_deref().unwrap_or_default()
            ))
        } else if self.denied {
            Some(format!("the policies allow access but AWS still denies it: {}", failed.detail))
        } else {
            None
        }
    }
}

pub(super) async fn exercise(
    user: &Session,
    owner: &Session,
    role_arn: &str,
    alias_arn: &str,
    actions: &[KeyAction],
) -> RoundTrip {
    live_checks(Live { user, owner, role_arn, alias_arn, actions }).await
}

/// The operations after Encrypt, in the order they are checked.
const AFTER_ENCRYPT: [KeyAction; 5] = [
    KeyAction::Decrypt,
    KeyAction::GenerateDataKey,
    KeyAction::GenerateDataKeyWithoutPlaintext,
    KeyAction::ReEncrypt,
    KeyAction::DescribeKey,
];

/// Ciphertext to work on, and the key ARN KMS reported for it.
struct Sealed {
    plaintext: [u8; PLAINTEXT_BYTES],
    ciphertext: Option<Blob>,
    source_key: Option<String>,
}

impl RoundTrip {
    /// Adds a check from its outcome; an AccessDenied marks the trip as denied.
    fn record(&mut self, name: &str, result: Result<String>) {
        let check = match result {
            Ok(detail) => Check::new(name, true, detail),
            Err(e) => {
                self.denied |= e.is_denied();
                Check::new(name, false, e.to_string())
            }
        };
        self.checks.push(check);
    }
}

/// Assumes the role, then calls each granted operation through the alias ARN as the role:
/// Encrypt random bytes, Decrypt them naming the alias ARN (and compare), GenerateDataKey,
/// GenerateDataKeyWithoutPlaintext, ReEncrypt, DescribeKey. Ciphertext for Decrypt and ReEncrypt
/// comes from the role's Encrypt when granted, else from the owner's. Nothing is printed of any
/// plaintext.
async fn live_checks(live: Live<'_>) -> RoundTrip {
    let assumed = user::assume_role(live.user, live.role_arn).await;
    checks_as(live, assumed, format!("assumed {}", live.role_arn)).await
}

/// The live checks with the role's credentials got some other way (role chaining); `assumed`
/// is the assume-role check's detail when they were got.
pub(super) async fn checks_as(
    live: Live<'_>,
    credentials: Result<aws_credential_types::Credentials>,
    assumed: String,
) -> RoundTrip {
    let mut trip = RoundTrip { checks: Vec::new(), denied: false, encrypted_with: None };
    let credentials = match credentials {
        Ok(c) => c,
        Err(e) => {
            trip.record("assume-role", Err(e));
            for a in live.actions {
                trip.checks.push(Check::new(a.name(), false, "not run: assume-role failed"));
            }
            return trip;
        }
    };
    trip.record("assume-role", Ok(assumed));
    let kms = live.user.kms_with_credentials(credentials);
    let sealed = seal(live, &kms, &mut trip).await;
    for action in AFTER_ENCRYPT {
        if live.actions.contains(&action) {
            let result = call(live, &kms, action, &sealed).await;
            trip.record(action.name(), result);
        }
    }
    trip
}

/// Random bytes under the key: encrypted by the role when Encrypt is granted (a check of its
/// own), else by the owner when Decrypt or ReEncrypt needs ciphertext.
async fn seal(live: Live<'_>, kms: &aws_sdk_kms::Client, trip: &mut RoundTrip) -> Sealed {
    let mut sealed =
        Sealed { plaintext: [0u8; PLAINTEXT_BYTES], ciphertext: None, source_key: None };
    let _ = getrandom::fill(&mut sealed.plaintext);
    let granted = |a: KeyAction| live.actions.contains(&a);
    let plaintext = Blob::new(sealed.plaintext.to_vec());
    let alias_arn = live.alias_arn;
    if granted(KeyAction::Encrypt) {
        let result = kms.encrypt().key_id(alias_arn).plaintext(plaintext).send().await;
        let result = match result {
            Ok(out) => {
                let key = out.key_id().unwrap_or("?").to_string();
                sealed.source_key = out.key_id().map(String::from);
                trip.encrypted_with = out.key_id().map(String::from);
                sealed.ciphertext = out.ciphertext_blob;
                Ok(format!(
                    "encrypted {PLAINTEXT_BYTES} random bytes through {alias_arn} with key {key}"
                ))
            }
            Err(e) => Err(live.user.kms_error("kms:Encrypt (as the role)", e)),
        };
        trip.record("encrypt", result);
    } else if granted(KeyAction::Decrypt) || granted(KeyAction::ReEncrypt) {
        let alias = alias_arn.rsplit(':').next().unwrap_or_default();
        let owner = &live.owner.kms;
        if let Ok(out) = owner.encrypt().key_id(alias).plaintext(plaintext).send().await {
            sealed.source_key = out.key_id().map(String::from);
            sealed.ciphertext = out.ciphertext_blob;
        }
    }
    sealed
}

/// Calls one operation through the alias ARN as the role; the check's detail, or why it failed.
async fn call(
    live: Live<'_>,
    kms: &aws_sdk_kms::Client,
    action: KeyAction,
    sealed: &Sealed,
) -> Result<String> {
    let (s, alias_arn) = (live.user, live.alias_arn);
    let no_ciphertext =
        || Error::Failed("not run: no ciphertext to work on (encrypt failed)".into());
    let incomplete = |what: &str| Err(Error::Failed(what.to_string()));
    match action {
        KeyAction::Decrypt => {
            let blob = sealed.ciphertext.clone().ok_or_else(no_ciphertext)?;
            // Naming the key on Decrypt is AWS's recommendation, and needed across accounts on
            // LocalStack.
            let out = kms.decrypt().key_id(alias_arn).ciphertext_blob(blob).send().await;
            let out = out.map_err(|e| s.kms_error("kms:Decrypt (as the role)", e))?;
            if out.plaintext().map(|p| p.as_ref()) == Some(&sealed.plaintext[..]) {
                Ok(format!("decrypted through {alias_arn}; the bytes match"))
            } else {
                incomplete("decrypted, but the bytes differ from what was encrypted")
            }
        }
        KeyAction::GenerateDataKey => {
            let out = kms.generate_data_key().key_id(alias_arn).key_spec(DataKeySpec::Aes256);
            let out = out.send().await;
            let out = out.map_err(|e| s.kms_error("kms:GenerateDataKey (as the role)", e))?;
            if out.plaintext().map(|p| p.as_ref().len()) == Some(32)
                && out.ciphertext_blob().is_some()
            {
                Ok(format!("generated an AES-256 data key through {alias_arn}"))
            } else {
                incomplete("the data key came back incomplete")
            }
        }
        KeyAction::GenerateDataKeyWithoutPlaintext => {
            let out = kms.generate_data_key_without_plaintext().key_id(alias_arn);
            let out = out.key_spec(DataKeySpec::Aes256).send().await;
            let op = "kms:GenerateDataKeyWithoutPlaintext (as the role)";
            let out = out.map_err(|e| s.kms_error(op, e))?;
            match out.ciphertext_blob() {
                Some(_) => Ok(format!("generated an encrypted data key through {alias_arn}")),
                None => incomplete("no encrypted data key came back"),
            }
        }
        KeyAction::ReEncrypt => {
            let blob = sealed.ciphertext.clone().ok_or_else(no_ciphertext)?;
            // The source is named by the key ARN KMS reported for the ciphertext, the
            // destination by the alias ARN.
            let out = kms
                .re_encrypt()
                .ciphertext_blob(blob)
                .set_source_key_id(sealed.source_key.clone())
                .destination_key_id(alias_arn)
                .send()
                .await;
            let out = out.map_err(|e| s.kms_error("kms:ReEncrypt (as the role)", e))?;
            match out.ciphertext_blob() {
                Some(_) => Ok(format!("re-encrypted through {alias_arn}")),
                None => incomplete("no ciphertext came back"),
            }
        }
        KeyAction::DescribeKey => {
            let out = kms.describe_key().key_id(alias_arn).send().await;
            let out = out.map_err(|e| s.kms_error("kms:DescribeKey (as the role)", e))?;
            let arn = out.key_metadata().and_then(|m| m.arn());
            Ok(format!("described {} through {alias_arn}", arn.unwrap_or("the key")))
        }
        KeyAction::Encrypt => incomplete("encrypt is checked first, by seal"),
    }
}

/// Repeats the live checks while they fail for propagation (see [`RoundTrip::pending`]), up to
/// `deadline`; `alias_key` is the key the alias points at.
pub(super) async fn wait_for_propagation(
    ctx: &Context,
    live: Live<'_>,
    alias_key: Option<&str>,
    deadline: Instant,
    trip: RoundTrip,
) -> RoundTrip {
    wait_out(ctx, (alias_key, deadline), trip, || live_checks(live)).await
}

/// Repeats `again` (the live checks) while the trip's failure is propagation, until `deadline`;
/// a trip still failing then says how long it waited.
pub(super) async fn wait_out<F, Fut>(
    ctx: &Context,
    (alias_key, deadline): (Option<&str>, Instant),
    trip: RoundTrip,
    again: F,
) -> RoundTrip
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = RoundTrip>,
{
    let what = "IAM/KMS and alias propagation";
    let pending = |t: &RoundTrip| t.pending(alias_key);
    let (mut trip, waited) = wait::until_visible(ctx, deadline, what, trip, pending, again).await;
    if let Waited::GaveUp(waited) = waited {
        let still = if trip.denied { "still denied" } else { "the alias still led to another key" };
        for c in trip.checks.iter_mut().filter(|c| !c.ok) {
            c.detail.push_str(&format!(
                " ({still} after waiting {waited:.0} s for propagation; if the policies or the alias were just changed, raise --wait)"
            ));
        }
    }
    trip
}

/// The multi-Region promise, as the role: random bytes encrypted through the alias ARN of one
/// region (`from`) decrypt through the alias ARN of another (`to`), and match.
pub(super) async fn cross_region(
    (from, from_alias): (&Session, &str),
    (to, to_alias): (&Session, &str),
    role_arn: &str,
) -> Check {
    let name = "cross-region-decrypt";
    let credentials = match user::assume_role(from, role_arn).await {
        Ok(c) => c,
        Err(e) => return Check::new(name, false, format!("not run: {e}")),
    };
    let mut plaintext = [0u8; PLAINTEXT_BYTES];
    let _ = getrandom::fill(&mut plaintext);
    let sealed = from
        .kms_with_credentials(credentials.clone())
        .encrypt()
        .key_id(from_alias)
        .plaintext(Blob::new(plaintext.to_vec()))
        .send()
        .await;
    let blob = match sealed.map_err(|e| from.kms_error("kms:Encrypt (as the role)", e)) {
        Ok(out) => out.ciphertext_blob,
        Err(e) => return Check::new(name, false, e.to_string()),
    };
    let Some(blob) = blob else {
        return Check::new(name, false, "kms:Encrypt gave no ciphertext");
    };
    let opened = to
        .kms_with_credentials(credentials)
        .decrypt()
        .key_id(to_alias)
        .ciphertext_blob(blob)
        .send()
        .await;
    match opened.map_err(|e| to.kms_error("kms:Decrypt (as the role)", e)) {
        Ok(out) if out.plaintext().map(|p| p.as_ref()) == Some(&plaintext[..]) => Check::new(
            name,
            true,
            format!(
                "encrypted through {from_alias}, decrypted through {to_alias}; the bytes match"
            ),
        ),
        Ok(_) => Check::new(name, false, "decrypted, but the bytes differ from what was encrypted"),
        Err(e) => Check::new(name, false, e.to_string()),
    }
}
