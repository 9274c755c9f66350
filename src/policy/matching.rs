//! Wildcard matching as IAM does it: `*` any run of characters, `?` any one character.

/// Whether `value` matches `pattern` with `*` and `?`; `ignore_case` for action names.
pub fn glob(pattern: &str, value: &str, ignore_case: bool) -> bool {
    // ASCII (every ARN and action name in practice) is matched byte by byte, in place.
    if pattern.is_ascii() && value.is_ascii() {
        let same = |a: &u8, b: &u8| if ignore_case { a.eq_ignore_ascii_case(b) } else { a == b };
        return glob_in(pattern.as_bytes(), value.as_bytes(), &b'*', &b'?', same);
    }
    let norm = |s: &str| -> Vec<char> {
        if ignore_case { s.to_lowercase().chars().collect() } else { s.chars().collect() }
    };
    glob_in(&norm(pattern), &norm(value), &'*', &'?', |a, b| a == b)
}

/// The matcher over characters (or bytes): `star` matches any run, `one` any one unit.
/// Iterative, backtracking to the last `star`: linear in practice, no recursion.
fn glob_in<T: PartialEq>(
    p: &[T],
    v: &[T],
    star: &T,
    one: &T,
    same: impl Fn(&T, &T) -> bool,
) -> bool {
    let (mut pi, mut vi) = (0usize, 0usize);
    let mut last_star: Option<(usize, usize)> = None;
    while vi < v.len() {
        if pi < p.len() && (p[pi] == *one || same(&p[pi], &v[vi])) {
            pi += 1;
            vi += 1;
        } else if pi < p.len() && p[pi] == *star {
            // Remember where the pattern goes on after the star, and where the star's run ends.
            pi += 1;
            last_star = Some((pi, vi));
        } else if let Some((after, end)) = last_star.as_mut() {
            // Let the last star take one more unit, and try again from there.
            *end += 1;
            (pi, vi) = (*after, *end);
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| c == star)
}

/// Whether an action pattern (`kms:Encrypt`, `kms:Gen*`, `*`) matches an action, case-insensitively.
pub fn action_matches(pattern: &str, action: &str) -> bool {
    glob(pattern, action, true)
}

/// Whether a resource pattern matches an ARN (case-sensitive, wildcards allowed).
pub fn resource_matches(pattern: &str, arn: &str) -> bool {
    glob(pattern, arn, false)
}

/// An ARN split into its six parts: `arn:partition:service:region:account:resource`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arn<'a> {
    /// `aws`, `aws-cn`, `aws-us-gov`.
    pub partition: &'a str,
    /// `kms`, `iam`, `sts`.
    pub service: &'a str,
    /// Region; empty for IAM and STS.
    pub region: &'a str,
    /// 12-digit account id.
    pub account: &'a str,
    /// `key/ID`, `alias/NAME`, `role/NAME`, `assumed-role/ROLE/SESSION`, `root`.
    pub resource: &'a str,
}

impl<'a> Arn<'a> {
    /// Splits an ARN; `None` if it does not have the six parts.
    pub fn parse(text: &'a str) -> Option<Arn<'a>> {
        let mut parts = text.splitn(6, ':');
        if parts.next()? != "arn" {
            return None;
        }
        Some(Arn {
            partition: parts.next()?,
            service: parts.next()?,
            region: parts.next()?,
            account: parts.next()?,
            resource: parts.next()?,
        })
    }
}

/// Whether an ARN pattern matches an ARN under ARN rules: part by part, wildcards within a part.
pub fn arn_matches(pattern: &str, arn: &str) -> bool {
    match (Arn::parse(pattern), Arn::parse(arn)) {
        (Some(p), Some(a)) => {
            glob(p.partition, a.partition, false)
                && glob(p.service, a.service, false)
                && glob(p.region, a.region, false)
                && glob(p.account, a.account, false)
                && glob(p.resource, a.resource, false)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("*", "", false));
        assert!(glob("kms:*", "kms:Encrypt", false));
        assert!(glob("kms:?ncrypt", "kms:Encrypt", false));
        assert!(!glob("kms:?ncrypt", "kms:Decrypt2", false));
        assert!(glob("a*b*c", "aXXbYYc", false));
        assert!(!glob("a*b*c", "aXXbYY", false));
        assert!(glob("alias/prod-*", "alias/prod-data", false));
        assert!(!glob("alias/prod-*", "alias/Prod-data", false));
        assert!(action_matches("KMS:encrypt", "kms:Encrypt"));
        assert!(action_matches("kms:Generate*", "kms:GenerateDataKey"));
        // Beyond ASCII: `?` is one character (not one byte), and case folds by Unicode.
        assert!(glob("alias/caf?", "alias/café", false));
        assert!(!glob("alias/caf??", "alias/café", false));
        assert!(glob("ALIAS/CAFÉ", "alias/café", true));
        assert!(!glob("ALIAS/CAFÉ", "alias/café", false));
    }

    #[test]
    fn arns() {
        let a = Arn::parse("arn:aws:kms:us-east-1:111111111111:key/abc").unwrap();
        assert_eq!(a.account, "111111111111");
        assert_eq!(a.resource, "key/abc");
        assert!(Arn::parse("alias/x").is_none());
        assert!(arn_matches(
            "arn:aws:kms:*:111111111111:key/*",
            "arn:aws:kms:us-east-1:111111111111:key/abc"
        ));
        assert!(!arn_matches(
            "arn:aws:kms:*:111111111111:alias/*",
            "arn:aws:kms:us-east-1:111111111111:key/abc"
        ));
    }
}
