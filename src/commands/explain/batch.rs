//! `explain --batch`: many requests, one JSON line each way, in one process — for checking a
//! whole access matrix (every role x action x key) and for comparing engines at speed.

use crate::error::{Error, Result};
use crate::policy::PolicyDocument;
use crate::policy::eval::{Grant, Layers, NamedPolicy, Request, decide};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::Path;

/// One request of a batch: the fields of explain's flags.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    principal: String,
    action: String,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    alias_arn: Option<String>,
    #[serde(default)]
    key_aliases: Vec<String>,
    #[serde(default)]
    request_alias: Option<String>,
    /// `{"KEY": "value" | ["v1", "v2"]}`.
    #[serde(default)]
    context: HashMap<String, Value>,
    key_policy: Source,
    #[serde(default)]
    identity_policies: Vec<Source>,
    #[serde(default)]
    boundary: Option<Source>,
    #[serde(default)]
    scps: Vec<Source>,
    #[serde(default)]
    grants: Vec<BatchGrant>,
    /// Carried to the output line as it is, to match answers with questions.
    #[serde(default)]
    id: Option<Value>,
}

/// A policy given inline, or as a file path.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Source {
    Path(String),
    Inline(Box<PolicyDocument>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchGrant {
    grantee: String,
    operations: Vec<String>,
}

/// Decides every line of `path` (`-`: stdin); exit 2 when any line is bad input.
pub fn run(path: &Path) -> Result<()> {
    let input: Box<dyn BufRead> = if path == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        let file = std::fs::File::open(path).map_err(|e| {
            Error::Input(format!("cannot read batch file '{}': {e}", path.display()))
        })?;
        Box::new(std::io::BufReader::new(file))
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut bad = 0usize;
    for (n, line) in input.lines().enumerate() {
        let line = line.map_err(|e| Error::Input(format!("batch line {}: {e}", n + 1)))?;
        if line.trim().is_empty() {
            continue;
        }
        let answer = match serde_json::from_str::<Line>(&line) {
            Ok(l) => decide_line(&l).unwrap_or_else(|e| {
                bad += 1;
                json!({"id": l.id, "error": e})
            }),
            Err(e) => {
                bad += 1;
                json!({"error": format!("line {}: {e}", n + 1)})
            }
        };
        // A closed pipe is a normal way for a reader to stop.
        if writeln!(out, "{answer}").is_err() {
            return Ok(());
        }
    }
    let _ = out.flush();
    match bad {
        0 => Ok(()),
        n => Err(Error::Input(format!("{n} batch line(s) were bad input; see their error field"))),
    }
}

/// The policy a source names, checked.
fn policy(source: &Source) -> std::result::Result<PolicyDocument, String> {
    match source {
        Source::Path(path) => super::read_policy(Path::new(path)).map_err(|e| e.to_string()),
        Source::Inline(doc) => (**doc).clone().validated().map_err(|e| e.0),
    }
}

fn decide_line(l: &Line) -> std::result::Result<Value, String> {
    let key_policy = policy(&l.key_policy)?;
    let named = |docs: &[Source],
                 prefix: &str|
     -> std::result::Result<Vec<(String, PolicyDocument)>, String> {
        docs.iter().enumerate().map(|(i, d)| Ok((format!("{prefix}-{i}"), policy(d)?))).collect()
    };
    let identity = named(&l.identity_policies, "identity")?;
    let scps = named(&l.scps, "scp")?;
    let boundary = l.boundary.as_ref().map(policy).transpose()?;
    let id: Vec<NamedPolicy<'_>> =
        identity.iter().map(|(n, d)| NamedPolicy { name: n, document: d }).collect();
    let scp: Vec<NamedPolicy<'_>> =
        scps.iter().map(|(n, d)| NamedPolicy { name: n, document: d }).collect();
    let grants: Vec<Grant> = l
        .grants
        .iter()
        .enumerate()
        .map(|(i, g)| Grant {
            id: format!("grant-{i}"),
            grantee: g.grantee.clone(),
            operations: g.operations.clone(),
            ..Grant::default()
        })
        .collect();
    let layers = Layers {
        key_policy: Some(&key_policy),
        identity: &id,
        boundary: boundary.as_ref().map(|d| NamedPolicy { name: "boundary", document: d }),
        scps: &scp,
        grants: &grants,
    };
    let extra = l
        .context
        .iter()
        .flat_map(|(k, v)| match v {
            Value::Array(vs) => vs.iter().map(|x| (k.clone(), text(x))).collect::<Vec<_>>(),
            x => vec![(k.clone(), text(x))],
        })
        .collect();
    let request = Request {
        principal: l.principal.clone(),
        action: l.action.clone(),
        key_arn: l.key.clone().unwrap_or_default(),
        key_aliases: l.key_aliases.clone(),
        request_alias: l.request_alias.clone(),
        alias_arn: l.alias_arn.clone(),
        extra,
    };
    let v = decide(&request, &layers).map_err(|e| e.0)?;
    Ok(json!({"id": l.id, "decision": v.decision, "reasons": v.reasons, "blocking": v.blocking}))
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
