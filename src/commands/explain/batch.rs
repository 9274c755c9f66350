//! `explain --batch`: many requests, one JSON line each way, in one process — for checking a
//! whole access matrix (every role x action x key) and for comparing engines at speed.

use crate::error::{Error, Result};
use crate::policy::PolicyDocument;
use crate::policy::eval::{
    Blocker, Decision, Grant, Layers, NamedPolicy, Reason, Request, Verdict, decide,
};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;
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
#[derive(Debug)]
enum Source {
    Path(String),
    Inline(Box<PolicyDocument>),
}

impl<'de> Deserialize<'de> for Source {
    /// A string is a path, an object the document itself; read in one pass, nothing buffered.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(SourceVisitor)
    }
}

struct SourceVisitor;

impl<'de> serde::de::Visitor<'de> for SourceVisitor {
    type Value = Source;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a policy document or the path of one")
    }

    fn visit_str<E: serde::de::Error>(self, path: &str) -> std::result::Result<Source, E> {
        Ok(Source::Path(path.to_string()))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        map: A,
    ) -> std::result::Result<Source, A::Error> {
        let doc = PolicyDocument::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
        Ok(Source::Inline(Box::new(doc)))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchGrant {
    grantee: String,
    operations: Vec<String>,
}

/// Lines decided together: enough to keep every core busy, few enough to stream.
const CHUNK: usize = 1024;

/// Bytes read or written per system call: a batch is megabytes, and the 8 KiB default made
/// one call per ten lines.
const IO_BUFFER: usize = 1 << 20;

/// Chunks of numbered lines, or the error that stopped reading.
type Chunks = std::sync::mpsc::Receiver<Result<Vec<(usize, String)>>>;

/// Decides every line of `path` (`-`: stdin); exit 2 when any line is bad input. A reader thread,
/// the deciding threads (a chunk at a time, in parallel) and a writer thread overlap, and
/// answers come in the order of their lines.
pub fn run(path: &Path) -> Result<()> {
    let file = if path == Path::new("-") {
        None
    } else {
        Some(std::fs::File::open(path).map_err(|e| {
            Error::Input(format!("cannot read batch file '{}': {e}", path.display()))
        })?)
    };
    let (send_answers, answers) = std::sync::mpsc::sync_channel::<Vec<Answers>>(2);
    let writer = std::thread::spawn(move || write_answers(answers));
    let chunks = read_chunks(file);
    let mut read = Ok(());
    for chunk in chunks {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(e) => {
                read = Err(e);
                break;
            }
        };
        let decided = chunk.par_chunks(GROUP).map(answers_to).collect();
        // The writer stops early only when the reader closed the pipe: nothing more to do.
        if send_answers.send(decided).is_err() {
            break;
        }
    }
    drop(send_answers);
    let bad = writer.join().unwrap_or(0);
    read?;
    match bad {
        0 => Ok(()),
        n => Err(Error::Input(format!("{n} batch line(s) were bad input; see their error field"))),
    }
}

/// Reads the file (stdin for `None`) on a thread of its own, a chunk of lines that are not
/// blank at a time, numbered from 1.
fn read_chunks(file: Option<std::fs::File>) -> Chunks {
    let (send, chunks) = std::sync::mpsc::sync_channel(2);
    std::thread::spawn(move || {
        let input: Box<dyn std::io::Read> = match file {
            Some(f) => Box::new(f),
            None => Box::new(std::io::stdin().lock()),
        };
        let input = std::io::BufReader::with_capacity(IO_BUFFER, input);
        let mut lines = input.lines().enumerate();
        loop {
            let mut chunk = Vec::with_capacity(CHUNK);
            for (n, line) in lines.by_ref().take(CHUNK) {
                match line {
                    Ok(line) if line.trim().is_empty() => {}
                    Ok(line) => chunk.push((n + 1, line)),
                    Err(e) => {
                        let _ = send.send(Err(Error::Input(format!("batch line {}: {e}", n + 1))));
                        return;
                    }
                }
            }
            if chunk.is_empty() || send.send(Ok(chunk)).is_err() {
                return;
            }
        }
    });
    chunks
}

/// Lines whose answers one task writes into one buffer: the writer then copies nothing.
const GROUP: usize = 64;

/// The answer lines to a group of lines, and how many of those lines were bad input.
struct Answers {
    text: Vec<u8>,
    bad: usize,
}

/// Answers a group of numbered lines, in order.
fn answers_to(lines: &[(usize, String)]) -> Answers {
    // Room for typical answers, so that the buffer is not copied as it grows.
    let mut answers = Answers { text: Vec::with_capacity(lines.len() * 1024), bad: 0 };
    for (n, line) in lines {
        let ok = answer(*n, line).write_line(&mut answers.text);
        answers.bad += usize::from(!ok);
    }
    answers
}

/// Writes answers in the order they come; returns how many lines were bad input.
fn write_answers(answers: std::sync::mpsc::Receiver<Vec<Answers>>) -> usize {
    let mut out = std::io::BufWriter::with_capacity(IO_BUFFER, std::io::stdout().lock());
    let mut bad = 0;
    for chunk in answers {
        for group in chunk {
            bad += group.bad;
            // A closed pipe is a normal way for a reader to stop.
            if out.write_all(&group.text).is_err() {
                return bad;
            }
        }
    }
    let _ = out.flush();
    bad
}

/// The answer to line `n`.
fn answer(n: usize, line: &str) -> Answer {
    match serde_json::from_str::<Line>(line) {
        Ok(mut l) => {
            let id = l.id.take();
            match decide_line(l) {
                Ok(v) => Answer {
                    id,
                    decision: Some(v.decision),
                    reasons: Some(v.reasons),
                    blocking: Some(v.blocking),
                    error: None,
                },
                Err(e) => Answer { id, error: Some(e), ..Answer::default() },
            }
        }
        Err(e) => Answer { error: Some(format!("line {n}: {e}")), ..Answer::default() },
    }
}

/// One output line.
#[derive(Default, Serialize)]
struct Answer {
    id: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    decision: Option<Decision>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasons: Option<Vec<Reason>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    blocking: Option<Vec<Blocker>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl Answer {
    /// Appends the answer and a newline to `out`; returns whether its line was good input.
    fn write_line(&self, out: &mut Vec<u8>) -> bool {
        let start = out.len();
        let mut ok = self.error.is_none();
        if let Err(e) = serde_json::to_writer(&mut *out, self) {
            out.truncate(start);
            let error = Answer { error: Some(e.to_string()), ..Answer::default() };
            // An answer of a null id and a message always serialises.
            let _ = serde_json::to_writer(&mut *out, &error);
            ok = false;
        }
        out.push(b'\n');
        ok
    }
}

/// The policy a source names, checked.
fn policy(source: Source) -> std::result::Result<PolicyDocument, String> {
    match source {
        Source::Path(path) => super::read_policy(Path::new(&path)).map_err(|e| e.to_string()),
        Source::Inline(doc) => doc.validated().map_err(|e| e.0),
    }
}

fn decide_line(l: Line) -> std::result::Result<Verdict, String> {
    let key_policy = policy(l.key_policy)?;
    let named = |docs: Vec<Source>,
                 prefix: &str|
     -> std::result::Result<Vec<(String, PolicyDocument)>, String> {
        docs.into_iter()
            .enumerate()
            .map(|(i, d)| Ok((format!("{prefix}-{i}"), policy(d)?)))
            .collect()
    };
    let identity = named(l.identity_policies, "identity")?;
    let scps = named(l.scps, "scp")?;
    let boundary = l.boundary.map(policy).transpose()?;
    let id: Vec<NamedPolicy<'_>> =
        identity.iter().map(|(n, d)| NamedPolicy { name: n, document: d }).collect();
    let scp: Vec<NamedPolicy<'_>> =
        scps.iter().map(|(n, d)| NamedPolicy { name: n, document: d }).collect();
    let grants: Vec<Grant> = l
        .grants
        .into_iter()
        .enumerate()
        .map(|(i, g)| Grant {
            id: format!("grant-{i}"),
            grantee: g.grantee,
            operations: g.operations,
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
        .into_iter()
        .flat_map(|(k, v)| match v {
            Value::Array(vs) => vs.iter().map(|x| (k.clone(), text(x))).collect::<Vec<_>>(),
            x => vec![(k, text(&x))],
        })
        .collect();
    let request = Request {
        principal: l.principal,
        action: l.action,
        key_arn: l.key.unwrap_or_default(),
        key_aliases: l.key_aliases,
        request_alias: l.request_alias,
        alias_arn: l.alias_arn,
        extra,
    };
    decide(&request, &layers).map_err(|e| e.0)
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
