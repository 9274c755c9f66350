//! verify's live checks: each granted operation called through the alias ARN as the role, and
//! the bounded wait for IAM/KMS propagation when AWS denies what the policies allow.

use super::super::Context;
use crate::aws::Session;
use crate::error::{Error, Result};
use crate::output::Check;
use crate::policy::build::KeyAction;
use crate::user;
use aws_sdk_kms::types::DataKeySpec;
use aws_smithy_types::Blob;
use std::time::{Duration, Instant};

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
}

pub(super) async fn exercise(
    user: &Session,
    owner: &Session,
    role_arn: &str,
    alias_arn: &str,
    actions: &[KeyAction],
) -> RoundTrip {
    live_checks(Live {
        user,
        owner,
        role_arn,
        alias_arn,
        actions,
    })
    .await
}

/// Assumes the role, then calls each granted operation through the alias ARN as the role:
/// Encrypt random bytes, Decrypt them naming the alias ARN (and compare), GenerateDataKey,
/// GenerateDataKeyWithoutPlaintext, ReEncrypt, DescribeKey. Ciphertext for Decrypt and ReEncrypt
/// comes from the role's Encrypt when granted, else from the owner's. Nothing is printed of any
/// plaintext.
async fn live_checks(live: Live<'_>) -> RoundTrip {
    let s = live.user;
    let mut checks = Vec::new();
    let mut denied = false;
    let mut record = |checks: &mut Vec<Check>, name: &str, result: Result<String>| {
        let check = match result {
            Ok(detail) => Check::new(name, true, detail),
            Err(e) => {
                denied |= e.is_denied();
                Check::new(name, false, e.to_string())
            }
        };
        checks.push(check);
    };
    let credentials = match user::assume_role(s, live.role_arn).await {
        Ok(c) => {
            record(
                &mut checks,
                "assume-role",
                Ok(format!("assumed {}", live.role_arn)),
            );
            c
        }
        Err(e) => {
            record(&mut checks, "assume-role", Err(e));
            for a in live.actions {
                checks.push(Check::new(a.name(), false, "not run: assume-role failed"));
            }
            return RoundTrip { checks, denied };
        }
    };
    let kms = s.kms_with_credentials(credentials);
    let alias_arn = live.alias_arn;
    let mut plaintext = [0u8; PLAINTEXT_BYTES];
    let _ = getrandom::fill(&mut plaintext);
    let granted = |a: KeyAction| live.actions.contains(&a);

    // Ciphertext under the key: the role's own Encrypt when granted, else the owner's.
    let mut ciphertext: Option<Blob> = None;
    let mut source_key: Option<String> = None;
    if granted(KeyAction::Encrypt) {
        let result = kms
            .encrypt()
            .key_id(alias_arn)
            .plaintext(Blob::new(plaintext.to_vec()))
            .send()
            .await;
        let result = match result {
            Ok(out) => {
                let key = out.key_id().unwrap_or("?").to_string();
                source_key = out.key_id().map(String::from);
                ciphertext = out.ciphertext_blob;
                Ok(format!(
                    "encrypted {PLAINTEXT_BYTES} random bytes through {alias_arn} with key {key}"
                ))
            }
            Err(e) => Err(s.kms_error("kms:Encrypt (as the role)", e)),
        };
        record(&mut checks, "encrypt", result);
    } else if granted(KeyAction::Decrypt) || granted(KeyAction::ReEncrypt) {
        let alias = alias_arn.rsplit(':').next().unwrap_or_default();
        if let Ok(out) = live
            .owner
            .kms
            .encrypt()
            .key_id(alias)
            .plaintext(Blob::new(plaintext.to_vec()))
            .send()
            .await
        {
            source_key = out.key_id().map(String::from);
            ciphertext = out.ciphertext_blob;
        }
    }
    let no_ciphertext =
        || Error::Failed("not run: no ciphertext to work on (encrypt failed)".into());
    if granted(KeyAction::Decrypt) {
        let result = match &ciphertext {
            None => Err(no_ciphertext()),
            // Naming the key on Decrypt is AWS's recommendation, and needed across accounts on
            // LocalStack.
            Some(blob) => match kms
                .decrypt()
                .key_id(alias_arn)
                .ciphertext_blob(blob.clone())
                .send()
                .await
            {
                Ok(out) if out.plaintext().map(|p| p.as_ref()) == Some(&plaintext[..]) => {
                    Ok(format!("decrypted through {alias_arn}; the bytes match"))
                }
                Ok(_) => Err(Error::Failed(
                    "decrypted, but the bytes differ from what was encrypted".into(),
                )),
                Err(e) => Err(s.kms_error("kms:Decrypt (as the role)", e)),
            },
        };
        record(&mut checks, "decrypt", result);
    }
    if granted(KeyAction::GenerateDataKey) {
        let result = match kms
            .generate_data_key()
            .key_id(alias_arn)
            .key_spec(DataKeySpec::Aes256)
            .send()
            .await
        {
            Ok(out)
                if out.plaintext().map(|p| p.as_ref().len()) == Some(32)
                    && out.ciphertext_blob().is_some() =>
            {
                Ok(format!("generated an AES-256 data key through {alias_arn}"))
            }
            Ok(_) => Err(Error::Failed("the data key came back incomplete".into())),
            Err(e) => Err(s.kms_error("kms:GenerateDataKey (as the role)", e)),
        };
        record(&mut checks, "generate-data-key", result);
    }
    if granted(KeyAction::GenerateDataKeyWithoutPlaintext) {
        let result = match kms
            .generate_data_key_without_plaintext()
            .key_id(alias_arn)
            .key_spec(DataKeySpec::Aes256)
            .send()
            .await
        {
            Ok(out) if out.ciphertext_blob().is_some() => Ok(format!(
                "generated an encrypted data key through {alias_arn}"
            )),
            Ok(_) => Err(Error::Failed("no encrypted data key came back".into())),
            Err(e) => Err(s.kms_error("kms:GenerateDataKeyWithoutPlaintext (as the role)", e)),
        };
        record(&mut checks, "generate-data-key-without-plaintext", result);
    }
    if granted(KeyAction::ReEncrypt) {
        let result = match &ciphertext {
            None => Err(no_ciphertext()),
            // The source is named by the key ARN KMS reported for the ciphertext, the
            // destination by the alias ARN.
            Some(blob) => match kms
                .re_encrypt()
                .ciphertext_blob(blob.clone())
                .set_source_key_id(source_key.clone())
                .destination_key_id(alias_arn)
                .send()
                .await
            {
                Ok(out) if out.ciphertext_blob().is_some() => {
                    Ok(format!("re-encrypted through {alias_arn}"))
                }
                Ok(_) => Err(Error::Failed("no ciphertext came back".into())),
                Err(e) => Err(s.kms_error("kms:ReEncrypt (as the role)", e)),
            },
        };
        record(&mut checks, "re-encrypt", result);
    }
    if granted(KeyAction::DescribeKey) {
        let result = match kms.describe_key().key_id(alias_arn).send().await {
            Ok(out) => Ok(format!(
                "described {} through {alias_arn}",
                out.key_metadata()
                    .and_then(|m| m.arn())
                    .unwrap_or("the key")
            )),
            Err(e) => Err(s.kms_error("kms:DescribeKey (as the role)", e)),
        };
        record(&mut checks, "describe-key", result);
    }
    RoundTrip { checks, denied }
}

/// Repeats the live checks while AWS denies what the policies allow: IAM and KMS changes take
/// a while to reach every endpoint. Polls at most once a second, so it ends within about a
/// second of access becoming possible; gives up at `deadline`.
pub(super) async fn wait_for_propagation(
    ctx: &Context,
    live: Live<'_>,
    deadline: Instant,
    mut trip: RoundTrip,
) -> RoundTrip {
    let first_denial = trip
        .checks
        .iter()
        .find(|c| !c.ok)
        .map(|c| c.detail.clone())
        .unwrap_or_default();
    let waited_from = Instant::now();
    ctx.printer.note(format!(
        "waiting up to {} s for IAM/KMS propagation: the policies allow access but AWS still denies it ({first_denial})",
        deadline.saturating_duration_since(waited_from).as_secs()
    ));
    let mut delay = Duration::from_millis(250);
    while trip.denied && Instant::now() + delay < deadline {
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(1));
        ctx.printer.step(format!(
            "waiting for IAM/KMS propagation ({} s left)",
            deadline.saturating_duration_since(Instant::now()).as_secs()
        ));
        trip = live_checks(live).await;
    }
    let waited = waited_from.elapsed().as_secs_f64();
    if trip.denied {
        for c in trip.checks.iter_mut().filter(|c| !c.ok) {
            c.detail.push_str(&format!(
                " (still denied after waiting {waited:.0} s for propagation; if the policies were just changed, raise --wait)"
            ));
        }
    } else {
        ctx.printer.note(format!(
            "access became visible after {waited:.1} s of waiting"
        ));
    }
    trip
}
