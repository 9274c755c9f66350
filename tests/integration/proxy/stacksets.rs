//! What LocalStack 4.8.1's CloudFormation provider lacks for StackSets, emulated in the proxy as
//! AWS documents it: DescribeStackSet, ListStackInstances and UpdateStackSet answer "not found"
//! for sets it created, and it accepts a repeated operation id (AWS answers
//! OperationIdAlreadyExistsException, which is how a retried call whose answer was lost is
//! recognised). The proxy learns each set from the CreateStackSet, CreateStackInstances,
//! DeleteStackInstances and DeleteStackSet calls LocalStack carried out, and answers the reads
//! from that. UpdateStackSet is answered here and changes only the template the proxy returns:
//! LocalStack cannot redeploy the instances' stacks.

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use std::collections::{HashMap, HashSet};

/// One stack set as LocalStack made it.
#[derive(Debug, Clone, Default)]
pub struct EmulatedSet {
    pub id: String,
    pub template: String,
    pub tags: Vec<(String, String)>,
    pub accounts: Vec<String>,
    pub region: String,
}

/// Every stack set, by administrator account and name, and every operation id used.
#[derive(Debug, Default)]
pub struct StackSets {
    pub sets: HashMap<(String, String), EmulatedSet>,
    /// Operation ids LocalStack or the proxy carried out.
    operations: HashSet<String>,
    /// Operations the proxy answered itself (UpdateStackSet), for DescribeStackSetOperation.
    own_operations: HashSet<String>,
    /// UpdateStackSet calls answered.
    pub updates: usize,
    /// CreateStackSet's client request tokens, and the id each made.
    tokens: HashMap<String, String>,
}

/// The form fields of a query-protocol body.
pub fn form(body: &[u8]) -> HashMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
}

/// `Prefix.member.N` fields, in order.
fn members(form: &HashMap<String, String>, prefix: &str) -> Vec<String> {
    (1..).map_while(|i| form.get(&format!("{prefix}.member.{i}")).cloned()).collect()
}

fn tags(form: &HashMap<String, String>) -> Vec<(String, String)> {
    (1..)
        .map_while(|i| {
            let key = form.get(&format!("Tags.member.{i}.Key"))?;
            Some((key.clone(), form.get(&format!("Tags.member.{i}.Value"))?.clone()))
        })
        .collect()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

fn xml(op: &str, result: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(200)
        .header("content-type", "text/xml")
        .body(Full::new(Bytes::from(format!(
            "<{op}Response xmlns=\"http://cloudformation.amazonaws.com/doc/2010-05-15/\"><{op}Result>{result}</{op}Result><ResponseMetadata><RequestId>proxy-emulated</RequestId></ResponseMetadata></{op}Response>"
        ))))
        .unwrap()
}

/// A service error, as the proxy answers them, with the message escaped.
fn error(status: u16, code: &str, message: &str) -> Response<Full<Bytes>> {
    super::xml_error(status, code, &escape(message))
}

impl StackSets {
    /// The proxy's own answer to a CloudFormation call, when it has one.
    pub fn answer(
        &mut self,
        op: &str,
        form: &HashMap<String, String>,
        admin: &str,
    ) -> Option<Response<Full<Bytes>>> {
        let name = form.get("StackSetName").cloned().unwrap_or_default();
        let key = (admin.to_string(), name.clone());
        let not_found =
            || error(404, "StackSetNotFoundException", &format!("StackSet {name} not found"));
        match op {
            "CreateStackSet" => {
                if let Some(id) = form.get("ClientRequestToken").and_then(|t| self.tokens.get(t)) {
                    return Some(xml(op, &format!("<StackSetId>{}</StackSetId>", escape(id))));
                }
                self.sets.contains_key(&key).then(|| {
                    error(
                        400,
                        "NameAlreadyExistsException",
                        &format!("StackSet {name} already exists"),
                    )
                })
            }
            "DescribeStackSet" => Some(match self.sets.get(&key) {
                None => not_found(),
                Some(set) => {
                    let tags: String = set
                        .tags
                        .iter()
                        .map(|(k, v)| {
                            format!(
                                "<member><Key>{}</Key><Value>{}</Value></member>",
                                escape(k),
                                escape(v)
                            )
                        })
                        .collect();
                    xml(
                        op,
                        &format!(
                            "<StackSet><StackSetName>{}</StackSetName><StackSetId>{}</StackSetId><Status>ACTIVE</Status><PermissionModel>SELF_MANAGED</PermissionModel><TemplateBody>{}</TemplateBody><Tags>{tags}</Tags></StackSet>",
                            escape(&name),
                            escape(&set.id),
                            escape(&set.template)
                        ),
                    )
                }
            }),
            "ListStackInstances" => Some(match self.sets.get(&key) {
                None => not_found(),
                Some(set) => {
                    let wanted = form.get("StackInstanceRegion");
                    let summaries: String = set
                        .accounts
                        .iter()
                        .filter(|_| wanted.is_none_or(|r| *r == set.region))
                        .map(|a| {
                            format!(
                                "<member><StackSetId>{}</StackSetId><Region>{}</Region><Account>{a}</Account><Status>CURRENT</Status></member>",
                                escape(&set.id),
                                set.region
                            )
                        })
                        .collect();
                    xml(op, &format!("<Summaries>{summaries}</Summaries>"))
                }
            }),
            "UpdateStackSet" => Some(match self.sets.get_mut(&key) {
                None => not_found(),
                Some(set) => {
                    let id = form.get("OperationId").cloned().unwrap_or_else(|| "update".into());
                    if let Some(t) = form.get("TemplateBody") {
                        set.template = t.clone();
                    }
                    let new_tags = tags(form);
                    if !new_tags.is_empty() {
                        set.tags = new_tags;
                    }
                    self.updates += 1;
                    self.operations.insert(id.clone());
                    self.own_operations.insert(id.clone());
                    xml(op, &format!("<OperationId>{id}</OperationId>"))
                }
            }),
            "DescribeStackSetOperation" => {
                let id = form.get("OperationId")?;
                self.own_operations.contains(id).then(|| {
                    xml(
                        op,
                        &format!(
                            "<StackSetOperation><OperationId>{id}</OperationId><Action>UPDATE</Action><Status>SUCCEEDED</Status></StackSetOperation>"
                        ),
                    )
                })
            }
            "CreateStackInstances" | "DeleteStackInstances" => {
                let id = form.get("OperationId")?;
                self.operations.contains(id).then(|| {
                    error(
                        409,
                        "OperationIdAlreadyExistsException",
                        &format!("The operation ID {id} already exists"),
                    )
                })
            }
            _ => None,
        }
    }

    /// Learns from a call LocalStack carried out (answered 2xx).
    pub fn observe(
        &mut self,
        op: &str,
        form: &HashMap<String, String>,
        answer: &[u8],
        admin: &str,
    ) {
        let name = form.get("StackSetName").cloned().unwrap_or_default();
        let key = (admin.to_string(), name);
        if let Some(id) = form.get("OperationId") {
            self.operations.insert(id.clone());
        }
        match op {
            "CreateStackSet" => {
                let text = String::from_utf8_lossy(answer);
                let id = text
                    .split("<StackSetId>")
                    .nth(1)
                    .and_then(|r| r.split('<').next())
                    .unwrap_or_default()
                    .to_string();
                if let Some(token) = form.get("ClientRequestToken") {
                    self.tokens.insert(token.clone(), id.clone());
                }
                let template = form.get("TemplateBody").cloned().unwrap_or_default();
                let set = EmulatedSet { id, template, tags: tags(form), ..Default::default() };
                self.sets.entry(key).or_insert(set);
            }
            "CreateStackInstances" => {
                if let Some(set) = self.sets.get_mut(&key) {
                    set.region = members(form, "Regions").into_iter().next().unwrap_or_default();
                    for a in members(form, "Accounts") {
                        if !set.accounts.contains(&a) {
                            set.accounts.push(a);
                        }
                    }
                }
            }
            "DeleteStackInstances" => {
                if let Some(set) = self.sets.get_mut(&key) {
                    let gone = members(form, "Accounts");
                    set.accounts.retain(|a| !gone.contains(a));
                }
            }
            "DeleteStackSet" => {
                self.sets.remove(&key);
            }
            _ => {}
        }
    }
}
