//! IAM policy documents as typed values: parsed faithfully, rendered once, compared semantically.
//!
//! The grammar follows the IAM JSON policy reference: `Statement` is an object or a list; `Action`,
//! `Resource`, `Principal` values are a string or a list; `Condition` maps operator → key → values.
//! Unknown fields are errors, not silently dropped, so a round trip never loses anything.

use serde::de::IntoDeserializer;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// The policy language version AWS recommends and kmsxacct writes.
pub const VERSION_2012: &str = "2012-10-17";

/// A policy document that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PolicyError(pub String);

/// A value IAM accepts either alone or as a list; the form it came in is kept when rendering.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    /// A single value (`"kms:Encrypt"`).
    One(T),
    /// A list of values (`["kms:Encrypt", "kms:Decrypt"]`).
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    /// Every value, whatever the form.
    pub fn iter(&self) -> std::slice::Iter<'_, T> {
        match self {
            OneOrMany::One(v) => std::slice::from_ref(v).iter(),
            OneOrMany::Many(v) => v.iter(),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    /// Decides by the JSON shape (list or not), so that an error inside an element is reported
    /// as it is rather than as "matched no variant"; read in one pass, nothing buffered.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(OneOrManyVisitor(std::marker::PhantomData))
    }
}

/// Reads a list into [`OneOrMany::Many`] and anything else, through `T`, into [`OneOrMany::One`].
struct OneOrManyVisitor<T>(std::marker::PhantomData<T>);

impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for OneOrManyVisitor<T> {
    type Value = OneOrMany<T>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a value or a list of values")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(OneOrMany::Many(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(OneOrMany::One)
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        one(v)
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
        one(v)
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
        one(v)
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
        one(v)
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
        one(v)
    }
}

/// One scalar, read through `T`.
fn one<'de, T, V, E>(v: V) -> Result<OneOrMany<T>, E>
where
    T: Deserialize<'de>,
    V: serde::de::IntoDeserializer<'de, E>,
    E: serde::de::Error,
{
    T::deserialize(v.into_deserializer()).map(OneOrMany::One)
}

impl<T> From<Vec<T>> for OneOrMany<T> {
    /// One value renders as a plain value, several as a list.
    fn from(mut values: Vec<T>) -> Self {
        if values.len() == 1 { OneOrMany::One(values.remove(0)) } else { OneOrMany::Many(values) }
    }
}

/// Whether a statement allows or denies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Effect {
    /// Grants the matched requests.
    Allow,
    /// Refuses the matched requests; an explicit deny beats every allow.
    Deny,
}

/// The `Principal` (or `NotPrincipal`) of a statement.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Principal {
    /// `"*"`: everyone, usually narrowed by a condition.
    Wildcard(Wildcard),
    /// `{"AWS": ..., "Service": ..., "Federated": ..., "CanonicalUser": ...}`.
    Typed(BTreeMap<PrincipalKind, OneOrMany<String>>),
}

impl<'de> Deserialize<'de> for Principal {
    /// A string must be `"*"`, an object maps kinds to principals; read in one pass, nothing
    /// buffered.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(PrincipalVisitor)
    }
}

struct PrincipalVisitor;

impl<'de> serde::de::Visitor<'de> for PrincipalVisitor {
    type Value = Principal;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("\"*\" or an object such as {\"AWS\": \"arn:...\"}")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Wildcard::deserialize(v.into_deserializer()).map(Principal::Wildcard)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        BTreeMap::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            .map(Principal::Typed)
    }
}

/// The literal `"*"`; any other bare string is not a valid principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wildcard;

impl Serialize for Wildcard {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("*")
    }
}

impl<'de> Deserialize<'de> for Wildcard {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s == "*" {
            Ok(Wildcard)
        } else {
            Err(serde::de::Error::custom(format!(
                "principal '{s}' must be \"*\" or an object such as {{\"AWS\": \"arn:...\"}}"
            )))
        }
    }
}

/// The kinds of principal a policy can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum PrincipalKind {
    /// IAM principals: account ids, account roots, roles, users, assumed-role sessions, or `*`.
    #[serde(rename = "AWS")]
    Aws,
    /// AWS services such as `kms.amazonaws.com`.
    Service,
    /// Identity providers (web identity, SAML).
    Federated,
    /// S3 canonical user ids.
    CanonicalUser,
}

/// A condition value as written: IAM accepts strings, booleans and numbers.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ConditionValue {
    /// A string, the usual form.
    String(String),
    /// `true` / `false`.
    Bool(bool),
    /// A JSON number.
    Number(serde_json::Number),
}

impl<'de> Deserialize<'de> for ConditionValue {
    /// A string, a boolean or a number; read in one pass, nothing buffered.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ConditionValueVisitor)
    }
}

struct ConditionValueVisitor;

impl<'de> serde::de::Visitor<'de> for ConditionValueVisitor {
    type Value = ConditionValue;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a string, a boolean or a number")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(ConditionValue::String(v.to_string()))
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(ConditionValue::String(v))
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(ConditionValue::Bool(v))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(ConditionValue::Number(v.into()))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(ConditionValue::Number(v.into()))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
        serde_json::Number::from_f64(v)
            .map(ConditionValue::Number)
            .ok_or_else(|| E::custom(format!("condition value {v} is not a finite number")))
    }
}

impl ConditionValue {
    /// The value as IAM compares it: its text.
    pub fn as_text(&self) -> String {
        self.text().into_owned()
    }

    /// The value as IAM compares it, borrowed when it is a string.
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        match self {
            ConditionValue::String(s) => std::borrow::Cow::Borrowed(s),
            ConditionValue::Bool(b) => b.to_string().into(),
            ConditionValue::Number(n) => n.to_string().into(),
        }
    }
}

/// `Condition`: operator (with any `ForAnyValue:`/`ForAllValues:` prefix and `IfExists` suffix) →
/// context key → values.
pub type ConditionBlock = BTreeMap<String, BTreeMap<String, OneOrMany<ConditionValue>>>;

/// One statement of a policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Statement {
    /// Statement id; kmsxacct finds its own statements by it.
    #[serde(rename = "Sid", default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Allow or Deny.
    #[serde(rename = "Effect")]
    pub effect: Effect,
    /// Who the statement applies to (resource and trust policies only).
    #[serde(rename = "Principal", default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<Principal>,
    /// Everyone except these.
    #[serde(rename = "NotPrincipal", default, skip_serializing_if = "Option::is_none")]
    pub not_principal: Option<Principal>,
    /// Actions matched, with `*` and `?` wildcards, case-insensitive.
    #[serde(rename = "Action", default, skip_serializing_if = "Option::is_none")]
    pub action: Option<OneOrMany<String>>,
    /// Every action except these.
    #[serde(rename = "NotAction", default, skip_serializing_if = "Option::is_none")]
    pub not_action: Option<OneOrMany<String>>,
    /// Resource ARNs matched, with wildcards.
    #[serde(rename = "Resource", default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<OneOrMany<String>>,
    /// Every resource except these.
    #[serde(rename = "NotResource", default, skip_serializing_if = "Option::is_none")]
    pub not_resource: Option<OneOrMany<String>>,
    /// Conditions that must all hold.
    #[serde(rename = "Condition", default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<ConditionBlock>,
}

impl Statement {
    /// The values of its `Principal` (`"*"` for a wildcard) that name IAM principals.
    pub fn principal_values(&self) -> Vec<String> {
        match &self.principal {
            Some(Principal::Typed(map)) => map
                .get(&PrincipalKind::Aws)
                .map(|v| v.iter().cloned().collect())
                .unwrap_or_default(),
            Some(Principal::Wildcard(_)) => vec!["*".into()],
            None => Vec::new(),
        }
    }

    /// A statement with the given effect and nothing else; fill in with the builder methods.
    pub fn new(effect: Effect) -> Statement {
        Statement {
            sid: None,
            effect,
            principal: None,
            not_principal: None,
            action: None,
            not_action: None,
            resource: None,
            not_resource: None,
            condition: None,
        }
    }

    /// Sets the statement id.
    pub fn sid(mut self, sid: &str) -> Statement {
        self.sid = Some(sid.to_string());
        self
    }

    /// Sets `Principal` to `{"AWS": arns}`.
    pub fn aws_principals(mut self, arns: Vec<String>) -> Statement {
        self.principal =
            Some(Principal::Typed(BTreeMap::from([(PrincipalKind::Aws, arns.into())])));
        self
    }

    /// Sets `Action`.
    pub fn actions(mut self, actions: &[&str]) -> Statement {
        self.action = Some(actions.iter().map(|a| a.to_string()).collect::<Vec<_>>().into());
        self
    }

    /// Sets `Resource`.
    pub fn resources(mut self, resources: Vec<String>) -> Statement {
        self.resource = Some(resources.into());
        self
    }

    /// Adds one condition `operator: {key: values}`.
    pub fn condition(mut self, operator: &str, key: &str, values: Vec<String>) -> Statement {
        let values: Vec<ConditionValue> = values.into_iter().map(ConditionValue::String).collect();
        self.condition
            .get_or_insert_with(BTreeMap::new)
            .entry(operator.to_string())
            .or_default()
            .insert(key.to_string(), values.into());
        self
    }

    /// A canonical form for comparison: every list sorted and deduplicated, one value and a
    /// one-element list alike, action names lowercased (IAM matches them case-insensitively).
    pub fn canonical(&self) -> Value {
        fn set(values: &OneOrMany<String>, lower: bool) -> Value {
            let mut v: Vec<String> = values
                .iter()
                .map(|s| if lower { s.to_ascii_lowercase() } else { s.clone() })
                .collect();
            v.sort();
            v.dedup();
            Value::from(v)
        }
        fn principal(p: &Principal) -> Value {
            match p {
                Principal::Wildcard(_) => Value::from("*"),
                Principal::Typed(map) => Value::Object(
                    map.iter()
                        .map(|(k, v)| {
                            (
                                serde_json::to_value(k)
                                    .ok()
                                    .and_then(|k| k.as_str().map(String::from))
                                    .unwrap_or_default(),
                                set(v, false),
                            )
                        })
                        .collect(),
                ),
            }
        }
        let mut out = serde_json::Map::new();
        out.insert("Sid".into(), Value::from(self.sid.clone()));
        out.insert("Effect".into(), serde_json::to_value(self.effect).unwrap_or(Value::Null));
        let fields: [(&str, Option<Value>); 7] = [
            ("Principal", self.principal.as_ref().map(principal)),
            ("NotPrincipal", self.not_principal.as_ref().map(principal)),
            ("Action", self.action.as_ref().map(|a| set(a, true))),
            ("NotAction", self.not_action.as_ref().map(|a| set(a, true))),
            ("Resource", self.resource.as_ref().map(|r| set(r, false))),
            ("NotResource", self.not_resource.as_ref().map(|r| set(r, false))),
            (
                "Condition",
                self.condition.as_ref().map(|c| {
                    Value::Object(
                        c.iter()
                            .map(|(op, keys)| {
                                let keys = keys
                                    .iter()
                                    .map(|(k, vals)| {
                                        let texts: Vec<String> =
                                            vals.iter().map(ConditionValue::as_text).collect();
                                        // Condition key names are case-insensitive in IAM.
                                        (
                                            k.to_ascii_lowercase(),
                                            set(&OneOrMany::Many(texts), false),
                                        )
                                    })
                                    .collect();
                                (op.clone(), Value::Object(keys))
                            })
                            .collect(),
                    )
                }),
            ),
        ];
        for (name, value) in fields {
            if let Some(v) = value {
                out.insert(name.into(), v);
            }
        }
        Value::Object(out)
    }

    /// True when both statements mean the same thing (see [`Statement::canonical`]).
    pub fn same_as(&self, other: &Statement) -> bool {
        self.canonical() == other.canonical()
    }
}

/// A whole policy document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDocument {
    /// Policy language version; `2012-10-17` for everything kmsxacct writes.
    #[serde(rename = "Version", default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Optional document id.
    #[serde(rename = "Id", default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The statements, as an object or a list.
    #[serde(rename = "Statement")]
    pub statement: OneOrMany<Statement>,
}

impl PolicyDocument {
    /// A `2012-10-17` document holding `statements`, always rendered as a list.
    pub fn new(statements: Vec<Statement>) -> PolicyDocument {
        PolicyDocument {
            version: Some(VERSION_2012.to_string()),
            id: None,
            statement: OneOrMany::Many(statements),
        }
    }

    /// Parses a document, checking what serde cannot: a known version, and in every statement
    /// exactly one of `Action`/`NotAction` and at most one of each other pair.
    pub fn parse(text: &str) -> Result<PolicyDocument, PolicyError> {
        let doc: PolicyDocument = serde_json::from_str(text)
            .map_err(|e| PolicyError(format!("not a valid policy document: {e}")))?;
        doc.validated()
    }

    /// The document, once checked as [`PolicyDocument::parse`] checks it (a known Version; in
    /// each statement an Action or NotAction, and never both of a pair).
    pub fn validated(self) -> Result<PolicyDocument, PolicyError> {
        let doc = self;
        if let Some(v) = &doc.version
            && v != VERSION_2012
            && v != "2008-10-17"
        {
            return Err(PolicyError(format!(
                "unknown policy Version '{v}' (allowed: 2012-10-17, 2008-10-17)"
            )));
        }
        for (i, s) in doc.statements().enumerate() {
            let name = s.sid.clone().unwrap_or_else(|| format!("#{i}"));
            let pairs = [
                ("Action", s.action.is_some(), "NotAction", s.not_action.is_some()),
                ("Resource", s.resource.is_some(), "NotResource", s.not_resource.is_some()),
                ("Principal", s.principal.is_some(), "NotPrincipal", s.not_principal.is_some()),
            ];
            for (a, has_a, b, has_b) in pairs {
                if has_a && has_b {
                    return Err(PolicyError(format!(
                        "statement {name} has both {a} and {b} (allowed: one of them)"
                    )));
                }
            }
            if s.action.is_none() && s.not_action.is_none() {
                return Err(PolicyError(format!(
                    "statement {name} has neither Action nor NotAction"
                )));
            }
        }
        Ok(doc)
    }

    /// Every statement, whatever the form.
    pub fn statements(&self) -> std::slice::Iter<'_, Statement> {
        self.statement.iter()
    }

    /// The statement with this Sid, if any.
    pub fn statement_by_sid(&self, sid: &str) -> Option<&Statement> {
        self.statements().find(|s| s.sid.as_deref() == Some(sid))
    }

    /// Puts `statement` in place of the one with the same Sid, or appends it. Every other statement
    /// stays as it was. Returns whether the document's meaning changed.
    pub fn upsert_statement(&mut self, statement: Statement) -> bool {
        let mut list: Vec<Statement> = self.statements().cloned().collect();
        let changed = match list.iter_mut().find(|s| s.sid.is_some() && s.sid == statement.sid) {
            Some(existing) if existing.same_as(&statement) => false,
            Some(existing) => {
                *existing = statement;
                true
            }
            None => {
                list.push(statement);
                true
            }
        };
        if changed {
            self.statement = OneOrMany::Many(list);
        }
        changed
    }

    /// Removes the statement reasons name `name` (its Sid, or `#INDEX` when it has none);
    /// returns whether there was one.
    pub fn remove_named(&mut self, name: &str) -> bool {
        let before = self.statements().count();
        let list: Vec<Statement> = self
            .statements()
            .enumerate()
            .filter(|(i, s)| s.sid.clone().unwrap_or_else(|| format!("#{i}")) != name)
            .map(|(_, s)| s.clone())
            .collect();
        let removed = list.len() != before;
        if removed {
            self.statement = OneOrMany::Many(list);
        }
        removed
    }

    /// Adds a statement at the end.
    pub fn push_statement(&mut self, statement: Statement) {
        let mut list: Vec<Statement> = self.statements().cloned().collect();
        list.push(statement);
        self.statement = OneOrMany::Many(list);
    }

    /// Removes the statement with this Sid; returns whether there was one.
    pub fn remove_statement(&mut self, sid: &str) -> bool {
        let before = self.statements().count();
        let list: Vec<Statement> =
            self.statements().filter(|s| s.sid.as_deref() != Some(sid)).cloned().collect();
        let removed = list.len() != before;
        if removed {
            self.statement = OneOrMany::Many(list);
        }
        removed
    }

    /// A canonical form: statements in a fixed order, each in its canonical form.
    pub fn canonical(&self) -> Value {
        let mut statements: Vec<Value> = self.statements().map(Statement::canonical).collect();
        statements.sort_by_key(|s| s.to_string());
        statements.dedup();
        serde_json::json!({ "Version": self.version, "Statement": statements })
    }

    /// True when both documents mean the same thing: statement order, a value vs a one-element
    /// list, whitespace and key order do not count.
    pub fn same_as(&self, other: &PolicyDocument) -> bool {
        self.canonical() == other.canonical()
    }

    /// The document as pretty JSON, the one way kmsxacct renders a policy.
    pub fn render(&self) -> String {
        serde_json::to_string_pretty(self).expect("a policy document always serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_object_or_list_statement_and_keeps_the_form() {
        let one = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"kms:Encrypt","Resource":"*"}}"#;
        let doc = PolicyDocument::parse(one).unwrap();
        assert_eq!(doc.statements().count(), 1);
        let back: Value = serde_json::from_str(&doc.render()).unwrap();
        assert_eq!(back, serde_json::from_str::<Value>(one).unwrap());
    }

    #[test]
    fn rejects_unknown_fields_and_bad_shapes() {
        let unknown =
            r#"{"Statement":[{"Effect":"Allow","Action":"a:b","Resource":"*","Resources":"x"}]}"#;
        assert!(PolicyDocument::parse(unknown).unwrap_err().0.contains("Resources"));
        let both =
            r#"{"Statement":[{"Effect":"Allow","Action":"a:b","NotAction":"a:c","Resource":"*"}]}"#;
        assert!(PolicyDocument::parse(both).unwrap_err().0.contains("both Action and NotAction"));
        let effect = r#"{"Statement":[{"Effect":"Maybe","Action":"a:b","Resource":"*"}]}"#;
        assert!(PolicyDocument::parse(effect).is_err());
        let principal =
            r#"{"Statement":[{"Effect":"Allow","Principal":"someone","Action":"a:b"}]}"#;
        let e = PolicyDocument::parse(principal).unwrap_err().0;
        assert!(e.contains("principal 'someone' must be \"*\""), "{e}");
        let kind = r#"{"Statement":[{"Effect":"Allow","Principal":{"Bogus":"x"},"Action":"a:b"}]}"#;
        let e = PolicyDocument::parse(kind).unwrap_err().0;
        assert!(e.contains("unknown variant `Bogus`"), "{e}");
        let number = r#"{"Statement":[{"Effect":"Allow","Principal":7,"Action":"a:b"}]}"#;
        let e = PolicyDocument::parse(number).unwrap_err().0;
        assert!(e.contains("expected \"*\" or an object"), "{e}");
        let list = r#"{"Statement":[{"Effect":"Allow","Action":"a:b","Resource":"*","Condition":{"Bool":{"k":[{}]}}}]}"#;
        let e = PolicyDocument::parse(list).unwrap_err().0;
        assert!(e.contains("expected a string, a boolean or a number"), "{e}");
        assert!(PolicyDocument::parse("not json").is_err());
        assert!(PolicyDocument::parse(r#"{"Version":"2020-01-01","Statement":[]}"#).is_err());
        // A value that is neither one value nor a list says what is allowed.
        let null = r#"{"Statement":[{"Effect":"Allow","Action":"a:b","Resource":"*","Condition":{"Null":{"k":null}}}]}"#;
        let e = PolicyDocument::parse(null).unwrap_err().0;
        assert!(e.contains("expected a value or a list of values"), "{e}");
        // Scalars of every JSON kind reach the element type, which says what it takes.
        let number = r#"{"Statement":[{"Effect":"Allow","Action":7,"Resource":"*"}]}"#;
        assert!(PolicyDocument::parse(number).unwrap_err().0.contains("expected a string"));
        let cond = r#"{"Statement":[{"Effect":"Allow","Action":"a:b","Resource":"*","Condition":{"NumericLessThan":{"k":[1,-2,2.5,true]}}}]}"#;
        let doc = PolicyDocument::parse(cond).unwrap();
        let values =
            &doc.statements().next().unwrap().condition.as_ref().unwrap()["NumericLessThan"]["k"];
        let texts: Vec<String> = values.iter().map(ConditionValue::as_text).collect();
        assert_eq!(texts, ["1", "-2", "2.5", "true"]);
        let scalar = r#"{"Statement":[{"Effect":"Allow","Action":"a:b","Resource":"*","Condition":{"Bool":{"k":false}}}]}"#;
        let doc = PolicyDocument::parse(scalar).unwrap();
        let values = &doc.statements().next().unwrap().condition.as_ref().unwrap()["Bool"]["k"];
        assert_eq!(values, &OneOrMany::One(ConditionValue::Bool(false)));
    }

    #[test]
    fn semantic_comparison_ignores_order_and_form() {
        let a = PolicyDocument::parse(
            r#"{"Version":"2012-10-17","Statement":[
                {"Sid":"A","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::1:root"},"Action":["kms:Encrypt","kms:Decrypt"],"Resource":"*"},
                {"Sid":"B","Effect":"Allow","Action":"kms:*","Resource":["*"]}]}"#,
        )
        .unwrap();
        let b = PolicyDocument::parse(
            r#"{"Statement":[{"Resource":"*","Action":["kms:*"],"Effect":"Allow","Sid":"B"},
                {"Sid":"A","Effect":"Allow","Principal":{"AWS":["arn:aws:iam::1:root"]},"Action":["KMS:decrypt","kms:Encrypt"],"Resource":"*"}],
                "Version":"2012-10-17"}"#,
        )
        .unwrap();
        assert!(a.same_as(&b));
        let mut c = b.clone();
        c.upsert_statement(Statement::new(Effect::Deny).sid("A").actions(&["kms:*"]));
        assert!(!a.same_as(&c));
    }

    #[test]
    fn upsert_keeps_foreign_statements() {
        let mut doc = PolicyDocument::parse(
            r#"{"Version":"2012-10-17","Statement":[{"Sid":"Other","Effect":"Allow","Action":"kms:*","Resource":"*"}]}"#,
        )
        .unwrap();
        let ours = Statement::new(Effect::Allow)
            .sid("Ours")
            .actions(&["kms:Encrypt"])
            .resources(vec!["*".into()]);
        assert!(doc.upsert_statement(ours.clone()));
        assert!(!doc.upsert_statement(ours.clone()));
        assert_eq!(doc.statements().count(), 2);
        assert!(doc.statement_by_sid("Other").is_some());
        let changed = ours.clone().actions(&["kms:Encrypt", "kms:Decrypt"]);
        assert!(doc.upsert_statement(changed));
        assert_eq!(doc.statements().count(), 2);
        assert!(doc.remove_statement("Ours"));
        assert!(!doc.remove_statement("Ours"));
        assert_eq!(doc.statements().count(), 1);
    }

    #[test]
    fn condition_values_of_every_type_round_trip() {
        let text = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"*","Resource":"*",
            "Condition":{"Bool":{"aws:SecureTransport":false},"NumericLessThan":{"kms:GrantCount":[1,2.5]},
            "ForAnyValue:StringLike":{"kms:ResourceAliases":"alias/x"}}}]}"#;
        let doc = PolicyDocument::parse(text).unwrap();
        let again = PolicyDocument::parse(&doc.render()).unwrap();
        assert_eq!(doc, again);
        assert_eq!(
            serde_json::from_str::<Value>(&doc.render()).unwrap(),
            serde_json::from_str::<Value>(text).unwrap()
        );
    }
}
