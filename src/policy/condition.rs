//! The `Condition` element: operators, set operators and `IfExists`, evaluated against a request
//! context as the IAM condition reference documents them.
//!
//! - Values listed for one key are OR-ed; keys and operators in a block are AND-ed.
//! - A key missing from the request: a positive operator is false, a negated one (`...Not...`) is
//!   true, `...IfExists` is true, `Null` tests exactly that.
//! - `ForAnyValue:` is true if any request value matches (false when the key is missing or empty);
//!   `ForAllValues:` is true if every request value matches (true when missing or empty).
//! - Without a set operator a multivalued key is compared as one value: it can only match when the
//!   request carries exactly one value (the linter flags such conditions as errors).
//! - An operator kmsxacct does not know is an error, never a silent allow or deny.

use super::document::{ConditionBlock, ConditionValue, PolicyError};
use super::matching::{arn_matches, glob};
use std::borrow::Cow;

/// The request context: condition key (case-insensitive) → its values, borrowed from the
/// request where they can be. A request carries a handful of keys: a list is faster to search
/// than a map is to build.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestContext<'a> {
    values: Vec<(&'a str, Vec<Cow<'a, str>>)>,
}

impl<'a> RequestContext<'a> {
    /// Sets a key's values (replacing any).
    pub fn set(&mut self, key: &'a str, values: Vec<Cow<'a, str>>) {
        match self.position(key) {
            Some(i) => self.values[i].1 = values,
            None => self.values.push((key, values)),
        }
    }

    /// Adds one value to a key.
    pub fn add(&mut self, key: &'a str, value: Cow<'a, str>) {
        match self.position(key) {
            Some(i) => self.values[i].1.push(value),
            None => self.values.push((key, vec![value])),
        }
    }

    /// A key's values; `None` when the request does not carry it.
    pub fn get(&self, key: &str) -> Option<&[Cow<'a, str>]> {
        self.position(key).map(|i| self.values[i].1.as_slice())
    }

    fn position(&self, key: &str) -> Option<usize> {
        self.values.iter().position(|(k, _)| k.eq_ignore_ascii_case(key))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SetOp {
    AnyValue,
    AllValues,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Base {
    StringEquals,
    StringEqualsIgnoreCase,
    StringLike,
    Arn,
    Bool,
    Null,
    Binary,
    Numeric(Cmp),
    Date(Cmp),
}

/// A parsed condition operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Operator {
    set: Option<SetOp>,
    base: Base,
    negated: bool,
    if_exists: bool,
}

/// Parses an operator such as `ForAnyValue:StringLikeIfExists`.
fn parse_operator(text: &str) -> Result<Operator, PolicyError> {
    let (set, rest) = if let Some(r) = text.strip_prefix("ForAnyValue:") {
        (Some(SetOp::AnyValue), r)
    } else if let Some(r) = text.strip_prefix("ForAllValues:") {
        (Some(SetOp::AllValues), r)
    } else {
        (None, text)
    };
    let (name, if_exists) = match rest.strip_suffix("IfExists") {
        Some(n) if n != "Null" => (n, true),
        _ => (rest, false),
    };
    let cmp = |suffix: &str| match suffix {
        "Equals" => Some((Cmp::Eq, false)),
        "NotEquals" => Some((Cmp::Eq, true)),
        "LessThan" => Some((Cmp::Lt, false)),
        "LessThanEquals" => Some((Cmp::Le, false)),
        "GreaterThan" => Some((Cmp::Gt, false)),
        "GreaterThanEquals" => Some((Cmp::Ge, false)),
        _ => None,
    };
    let (base, negated) = match name {
        "StringEquals" => (Base::StringEquals, false),
        "StringNotEquals" => (Base::StringEquals, true),
        "StringEqualsIgnoreCase" => (Base::StringEqualsIgnoreCase, false),
        "StringNotEqualsIgnoreCase" => (Base::StringEqualsIgnoreCase, true),
        "StringLike" => (Base::StringLike, false),
        "StringNotLike" => (Base::StringLike, true),
        "ArnEquals" | "ArnLike" => (Base::Arn, false),
        "ArnNotEquals" | "ArnNotLike" => (Base::Arn, true),
        "Bool" => (Base::Bool, false),
        "Null" => (Base::Null, false),
        "BinaryEquals" => (Base::Binary, false),
        other => {
            let parsed = other
                .strip_prefix("Numeric")
                .and_then(cmp)
                .map(|(c, n)| (Base::Numeric(c), n))
                .or_else(|| {
                    other.strip_prefix("Date").and_then(cmp).map(|(c, n)| (Base::Date(c), n))
                });
            match parsed {
                Some(p) => p,
                None => {
                    return Err(PolicyError(format!(
                        "unknown condition operator '{text}' (known: String*, Arn*, Bool, Null, Numeric*, Date*, BinaryEquals, with ForAnyValue:/ForAllValues: and IfExists)"
                    )));
                }
            }
        }
    };
    if set.is_some() && base == Base::Null {
        return Err(PolicyError(format!(
            "condition operator '{text}': Null takes no set operator"
        )));
    }
    Ok(Operator { set, base, negated, if_exists })
}

/// Checks that every operator in a block is one kmsxacct knows.
pub fn check_operators(block: &ConditionBlock) -> Result<(), PolicyError> {
    block.keys().try_for_each(|op| parse_operator(op).map(|_| ()))
}

fn parse_number(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok()
}

fn parse_date(s: &str) -> Option<f64> {
    if let Ok(secs) = s.trim().parse::<i64>() {
        return Some(secs as f64);
    }
    aws_smithy_types::DateTime::from_str(s.trim(), aws_smithy_types::date_time::Format::DateTime)
        .ok()
        .map(|d| d.as_secs_f64())
}

fn compare(cmp: Cmp, request: f64, policy: f64) -> bool {
    match cmp {
        Cmp::Eq => request == policy,
        Cmp::Lt => request < policy,
        Cmp::Le => request <= policy,
        Cmp::Gt => request > policy,
        Cmp::Ge => request >= policy,
    }
}

/// Whether one request value matches one policy value, in the operator's positive sense.
fn matches_one(base: Base, policy: &str, request: &str) -> bool {
    match base {
        Base::StringEquals | Base::Binary => policy == request,
        Base::StringEqualsIgnoreCase => policy.eq_ignore_ascii_case(request),
        Base::StringLike => glob(policy, request, false),
        Base::Arn => arn_matches(policy, request),
        Base::Bool => policy.eq_ignore_ascii_case(request),
        Base::Numeric(c) => match (parse_number(request), parse_number(policy)) {
            (Some(r), Some(p)) => compare(c, r, p),
            _ => false,
        },
        Base::Date(c) => match (parse_date(request), parse_date(policy)) {
            (Some(r), Some(p)) => compare(c, r, p),
            _ => false,
        },
        Base::Null => false,
    }
}

/// Whether a request value satisfies the operator against the policy values (OR across them;
/// a negated operator holds when none matches).
fn value_holds(op: &Operator, policy: &[impl AsRef<str>], request: &str) -> bool {
    let any = policy.iter().any(|p| matches_one(op.base, p.as_ref(), request));
    any != op.negated
}

/// Evaluates one operator/key pair.
fn key_holds(op: &Operator, policy: &[impl AsRef<str>], request: Option<&[Cow<str>]>) -> bool {
    let present = request.filter(|v| !v.is_empty());
    if op.base == Base::Null {
        // "true": the key must be absent; "false": present. Several values: OR.
        return policy.iter().any(|p| {
            let want_absent = p.as_ref().eq_ignore_ascii_case("true");
            want_absent == present.is_none()
        });
    }
    match (op.set, present) {
        (_, None) if op.if_exists => true,
        (Some(SetOp::AnyValue), None) => false,
        (Some(SetOp::AllValues), None) => true,
        (None, None) => op.negated,
        (Some(SetOp::AnyValue), Some(values)) => values.iter().any(|v| value_holds(op, policy, v)),
        (Some(SetOp::AllValues), Some(values)) => values.iter().all(|v| value_holds(op, policy, v)),
        (None, Some([one])) => value_holds(op, policy, one),
        (None, Some(_)) => op.negated,
    }
}

/// The first condition that does not hold: operator, key, and what the request had; borrowed
/// from the policy, since most misses are never reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionMiss<'a> {
    /// The operator as written.
    pub operator: &'a str,
    /// The condition key as written.
    pub key: &'a str,
    /// The policy's values.
    pub wanted: Vec<Cow<'a, str>>,
    /// The request's values (`None`: not in the request).
    pub found: Option<Vec<String>>,
}

impl std::fmt::Display for ConditionMiss<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "condition {} {} = {:?} does not hold: the request ",
            self.operator, self.key, self.wanted
        )?;
        match &self.found {
            None => write!(f, "has no {}", self.key),
            Some(v) => write!(f, "has {} = {:?}", self.key, v),
        }
    }
}

/// Evaluates a whole `Condition` block: `Ok(None)` when every condition holds, `Ok(Some(miss))`
/// for the first that does not, `Err` for an operator kmsxacct does not know.
pub fn evaluate<'a>(
    block: &'a ConditionBlock,
    ctx: &RequestContext,
) -> Result<Option<ConditionMiss<'a>>, PolicyError> {
    for (op_text, keys) in block {
        let op = parse_operator(op_text)?;
        for (key, values) in keys {
            let policy: Vec<_> = values.iter().map(ConditionValue::text).collect();
            let request = ctx.get(key);
            if !key_holds(&op, &policy, request) {
                return Ok(Some(ConditionMiss {
                    operator: op_text,
                    key,
                    wanted: policy,
                    found: request.map(|r| r.iter().map(|v| v.to_string()).collect()),
                }));
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn block(v: serde_json::Value) -> ConditionBlock {
        serde_json::from_value(v).unwrap()
    }

    fn ctx<'a>(pairs: &[(&'a str, &[&'a str])]) -> RequestContext<'a> {
        let mut c = RequestContext::default();
        for (k, v) in pairs {
            c.set(k, v.iter().map(|s| Cow::Borrowed(*s)).collect());
        }
        c
    }

    fn holds(b: serde_json::Value, c: &RequestContext) -> bool {
        evaluate(&block(b), c).unwrap().is_none()
    }

    // IAM "Condition operators": numeric and date operators compare as numbers, each at its
    // boundary; NotEquals is the negation of Equals.
    #[test]
    fn numeric_and_date_operators_hold_exactly_at_their_boundaries() {
        let c = ctx(&[("n", &["5"]), ("d", &["2026-01-01T00:00:00Z"])]);
        let table = [
            ("NumericEquals", "5", true),
            ("NumericEquals", "6", false),
            ("NumericNotEquals", "5", false),
            ("NumericNotEquals", "6", true),
            ("NumericLessThan", "5", false),
            ("NumericLessThan", "6", true),
            ("NumericLessThanEquals", "5", true),
            ("NumericLessThanEquals", "4", false),
            ("NumericGreaterThan", "5", false),
            ("NumericGreaterThan", "4", true),
            ("NumericGreaterThanEquals", "5", true),
            ("NumericGreaterThanEquals", "6", false),
        ];
        for (op, value, expected) in table {
            assert_eq!(holds(json!({op: {"n": value}}), &c), expected, "{op} {value}");
        }
        let at = "2026-01-01T00:00:00Z";
        assert!(holds(json!({"DateEquals": {"d": at}}), &c));
        assert!(!holds(json!({"DateLessThan": {"d": at}}), &c));
        assert!(holds(json!({"DateLessThanEquals": {"d": at}}), &c));
        assert!(!holds(json!({"DateGreaterThan": {"d": at}}), &c));
        assert!(holds(json!({"DateGreaterThanEquals": {"d": at}}), &c));
        assert!(holds(json!({"DateNotEquals": {"d": "2027-01-01T00:00:00Z"}}), &c));
    }

    // IAM: "...IfExists" holds when the key is absent; there is no NullIfExists, so
    // "NullIfExists" is an unknown operator rather than Null with IfExists.
    #[test]
    fn if_exists_applies_to_every_operator_but_null() {
        assert!(holds(json!({"NumericLessThanIfExists": {"n": "1"}}), &ctx(&[])));
        assert!(evaluate(&block(json!({"NullIfExists": {"a": "true"}})), &ctx(&[])).is_err());
    }

    #[test]
    fn unknown_operators_are_errors() {
        let err = evaluate(&block(json!({"StringSortOf": {"a": "b"}})), &ctx(&[])).unwrap_err();
        assert!(err.0.contains("StringSortOf"));
        assert!(evaluate(&block(json!({"ForAnyValue:Null": {"a": "true"}})), &ctx(&[])).is_err());
    }

    #[test]
    fn negated_operator_on_missing_key_holds() {
        assert!(holds(json!({"StringNotEquals": {"kms:CallerAccount": "1"}}), &ctx(&[])));
        assert!(!holds(json!({"StringEquals": {"kms:CallerAccount": "1"}}), &ctx(&[])));
        assert!(holds(json!({"StringEqualsIfExists": {"kms:CallerAccount": "1"}}), &ctx(&[])));
    }

    #[test]
    fn set_operators_on_missing_or_empty_keys() {
        let any = json!({"ForAnyValue:StringLike": {"kms:ResourceAliases": "alias/x"}});
        let all = json!({"ForAllValues:StringLike": {"kms:ResourceAliases": "alias/x"}});
        assert!(!holds(any.clone(), &ctx(&[])));
        assert!(!holds(any.clone(), &ctx(&[("kms:ResourceAliases", &[])])));
        assert!(holds(all.clone(), &ctx(&[])));
        assert!(holds(all.clone(), &ctx(&[("kms:ResourceAliases", &[])])));
        let two = ctx(&[("kms:ResourceAliases", &["alias/x", "alias/y"])]);
        assert!(holds(any, &two));
        assert!(!holds(all, &two));
    }

    #[test]
    fn multivalued_key_without_set_operator_matches_only_one_value() {
        let plain = json!({"StringLike": {"kms:ResourceAliases": "alias/x"}});
        assert!(holds(plain.clone(), &ctx(&[("kms:ResourceAliases", &["alias/x"])])));
        assert!(!holds(plain, &ctx(&[("kms:ResourceAliases", &["alias/x", "alias/y"])])));
    }

    #[test]
    fn and_across_keys_or_across_values() {
        let c = ctx(&[("a", &["1"]), ("b", &["2"])]);
        assert!(holds(json!({"StringEquals": {"a": ["0", "1"], "b": "2"}}), &c));
        assert!(!holds(json!({"StringEquals": {"a": ["0", "1"], "b": "3"}}), &c));
        assert!(!holds(json!({"StringEquals": {"a": "1"}, "StringLike": {"b": "9*"}}), &c));
        assert!(holds(json!({"StringNotEquals": {"a": ["0", "2"]}}), &c));
        assert!(!holds(json!({"StringNotEquals": {"a": ["0", "1"]}}), &c));
    }

    #[test]
    fn typed_operators() {
        let c = ctx(&[
            ("aws:SecureTransport", &["true"]),
            ("n", &["5"]),
            ("d", &["2026-11-28T00:00:00Z"]),
            ("arn", &["arn:aws:iam::111111111111:role/r"]),
            ("s", &["Hello"]),
        ]);
        assert!(holds(json!({"Bool": {"aws:SecureTransport": true}}), &c));
        assert!(holds(json!({"Bool": {"aws:securetransport": "TRUE"}}), &c));
        assert!(holds(json!({"NumericLessThan": {"n": 6}}), &c));
        assert!(!holds(json!({"NumericGreaterThanEquals": {"n": "6"}}), &c));
        assert!(!holds(json!({"NumericEquals": {"n": "five"}}), &c));
        assert!(holds(json!({"DateGreaterThan": {"d": "2026-01-01T00:00:00Z"}}), &c));
        assert!(holds(json!({"DateLessThan": {"d": "1900000000"}}), &c));
        assert!(holds(json!({"ArnLike": {"arn": "arn:aws:iam::*:role/*"}}), &c));
        assert!(holds(json!({"ArnNotEquals": {"arn": "arn:aws:iam::222222222222:role/r"}}), &c));
        assert!(holds(json!({"StringEqualsIgnoreCase": {"s": "hello"}}), &c));
        assert!(!holds(json!({"StringEquals": {"s": "hello"}}), &c));
        assert!(holds(json!({"Null": {"missing": "true", "n": "false"}}), &c));
        assert!(!holds(json!({"Null": {"n": "true"}}), &c));
    }

    #[test]
    fn miss_names_key_and_values() {
        let block = block(json!({"ForAnyValue:StringLike": {"kms:ResourceAliases": "alias/x"}}));
        let miss =
            evaluate(&block, &ctx(&[("kms:ResourceAliases", &["alias/y"])])).unwrap().unwrap();
        assert_eq!(
            miss.to_string(),
            r#"condition ForAnyValue:StringLike kms:ResourceAliases = ["alias/x"] does not hold: the request has kms:ResourceAliases = ["alias/y"]"#
        );
    }
}
