//! A sink's HTTP request made from a record: method, URL, headers and body, each a template
//! over the record (minijinja), compiled once when the sink is built.
//!
//! The body is the record's JSON as committed, or a JSON skeleton whose string leaves are
//! expressions: a leaf that is exactly `{{ expr }}` keeps the value's type (number, null, list,
//! object), any other leaf with `{{ … }}` or `{% … %}` renders as a string, and everything else
//! is copied as it is. Nothing is escaped by hand: values go through JSON serialisation. The
//! template sees the record's fields at the top level (`crm.customer_id`, `media.url`…), the
//! sink's `params`, and `base`, the sink's `url`. `required` fails the render of a record that
//! lacks a value (such a record is dead-lettered with the reason). Pure; rendering never blocks.

use std::collections::BTreeMap;

use minijinja::{Environment, ErrorKind, Value};
use serde_json::Value as Json;

/// A request ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub method: reqwest::Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// The body: the committed record as it is, or a skeleton.
#[derive(Debug)]
enum Body {
    Record,
    Skeleton(Node),
}

/// A skeleton's node; `Typed` and `Text` name templates in the environment.
#[derive(Debug)]
enum Node {
    Literal(Json),
    Typed(String),
    Text(String),
    Array(Vec<Node>),
    Object(Vec<(String, Node)>),
}

/// What a request is made from: templates as text (from a preset or the sink's config).
#[derive(Debug, Clone)]
pub struct RequestSpec {
    pub method: String,
    pub url: String,
    pub headers: BTreeMap<String, String>,
    /// `None`: the record's own JSON.
    pub body: Option<Json>,
}

pub struct RequestTemplate {
    env: Environment<'static>,
    method: reqwest::Method,
    headers: Vec<String>,
    body: Body,
    params: BTreeMap<String, String>,
    base: String,
}

impl std::fmt::Debug for RequestTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Headers and params may hold credentials: only the shape is shown.
        f.debug_struct("RequestTemplate")
            .field("method", &self.method)
            .field("headers", &self.headers)
            .field("body", &self.body)
            .finish_non_exhaustive()
    }
}

const URL: &str = "url";

impl RequestTemplate {
    /// Compiles `spec`; every problem is listed (template syntax, an unknown method…).
    pub fn compile(
        spec: &RequestSpec,
        base: &str,
        params: &BTreeMap<String, String>,
    ) -> Result<RequestTemplate, Vec<String>> {
        let mut env = Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
        env.add_filter("required", required);
        let mut problems = Vec::new();
        let method = reqwest::Method::from_bytes(spec.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| problems.push(format!("method {:?} is not an HTTP method", spec.method)))
            .unwrap_or(reqwest::Method::POST);
        let mut add = |name: String, source: String, problems: &mut Vec<String>, what: &str| {
            if let Err(e) = env.add_template_owned(name, source) {
                problems.push(format!("{what}: {}", describe(&e)));
            }
        };
        add(URL.into(), spec.url.clone(), &mut problems, "url");
        let mut headers = Vec::new();
        for (name, value) in &spec.headers {
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                problems.push(format!("headers: {name:?} is not a header name"));
            }
            add(
                format!("header:{name}"),
                value.clone(),
                &mut problems,
                &format!("headers.{name}"),
            );
            headers.push(name.clone());
        }
        let mut templates = Vec::new();
        let body = match &spec.body {
            None => Body::Record,
            Some(skeleton) => Body::Skeleton(node(skeleton, "body", &mut templates)),
        };
        for (name, source) in templates {
            let what = name.clone();
            add(name, source, &mut problems, &what);
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        // A base the preset adds a path to loses its trailing slash; a base that is the whole
        // URL (a Zapier or Make hook) is sent as written.
        let base = if spec.url.trim() == "{{ base }}" {
            base
        } else {
            base.trim_end_matches('/')
        };
        Ok(RequestTemplate {
            env,
            method,
            headers,
            body,
            params: params.clone(),
            base: base.to_string(),
        })
    }

    /// The request for one record (its committed JSON).
    pub fn render(&self, record_json: &str) -> Result<Rendered, String> {
        let record: Json =
            serde_json::from_str(record_json).map_err(|e| format!("record is not JSON: {e}"))?;
        let mut ctx = match &record {
            Json::Object(map) => map.clone(),
            _ => return Err("record is not a JSON object".into()),
        };
        ctx.insert(
            "params".into(),
            serde_json::to_value(&self.params).expect("strings"),
        );
        ctx.insert("base".into(), Json::String(self.base.clone()));
        let ctx = Value::from(minijinja::value::Serde(&ctx));
        let text = |name: &str| -> Result<String, String> {
            let template = self.env.get_template(name).map_err(|e| describe(&e))?;
            template
                .render(&ctx)
                .map_err(|e| format!("{name}: {}", describe(&e)))
        };
        let url = text(URL)?.trim().to_string();
        let headers = self
            .headers
            .iter()
            .map(|h| Ok((h.clone(), text(&format!("header:{h}"))?)))
            .collect::<Result<Vec<_>, String>>()?;
        let body = match &self.body {
            Body::Record => record_json.as_bytes().to_vec(),
            Body::Skeleton(node) => {
                serde_json::to_vec(&self.fill(node, &ctx)?).expect("JSON values serialise")
            }
        };
        Ok(Rendered {
            method: self.method.clone(),
            url,
            headers,
            body,
        })
    }

    fn fill(&self, node: &Node, ctx: &Value) -> Result<Json, String> {
        let render = |name: &str| -> Result<String, String> {
            let template = self.env.get_template(name).map_err(|e| describe(&e))?;
            template
                .render(ctx)
                .map_err(|e| format!("{name}: {}", describe(&e)))
        };
        Ok(match node {
            Node::Literal(v) => v.clone(),
            Node::Text(name) => Json::String(render(name)?),
            Node::Typed(name) => {
                let json = render(name)?;
                serde_json::from_str(&json).map_err(|e| format!("{name}: not a JSON value: {e}"))?
            }
            Node::Array(items) => Json::Array(
                items
                    .iter()
                    .map(|n| self.fill(n, ctx))
                    .collect::<Result<_, _>>()?,
            ),
            Node::Object(fields) => Json::Object(
                fields
                    .iter()
                    .map(|(k, n)| Ok((k.clone(), self.fill(n, ctx)?)))
                    .collect::<Result<_, String>>()?,
            ),
        })
    }
}

/// Walks a skeleton, naming each template leaf by its path (`body.properties.url`).
fn node(value: &Json, path: &str, templates: &mut Vec<(String, String)>) -> Node {
    match value {
        Json::String(s) if is_single_expression(s) => {
            let inner = s.trim().trim_start_matches("{{").trim_end_matches("}}").trim();
            // `none` for what is undefined, so a missing field is null, not an error.
            templates.push((
                path.to_string(),
                format!("{{{{ ({inner}) | default(none) | tojson }}}}"),
            ));
            Node::Typed(path.to_string())
        }
        Json::String(s) if s.contains("{{") || s.contains("{%") => {
            templates.push((path.to_string(), s.clone()));
            Node::Text(path.to_string())
        }
        Json::Array(items) => Node::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| node(v, &format!("{path}[{i}]"), templates))
                .collect(),
        ),
        Json::Object(map) => Node::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), node(v, &format!("{path}.{k}"), templates)))
                .collect(),
        ),
        other => Node::Literal(other.clone()),
    }
}

/// `{{ expr }}` and nothing else: one expression whose value keeps its type.
fn is_single_expression(s: &str) -> bool {
    let t = s.trim();
    t.starts_with("{{") && t.ends_with("}}") && t.matches("{{").count() == 1 && !t.contains("{%")
}

/// `{{ x | required }}`: fails when x is undefined, none or empty.
fn required(value: Value) -> Result<Value, minijinja::Error> {
    if value.is_undefined() || value.is_none() || value.as_str() == Some("") {
        return Err(minijinja::Error::new(
            ErrorKind::InvalidOperation,
            "a required value is missing from the record",
        ));
    }
    Ok(value)
}

/// An error in one line: the kind, the detail, and where in the template.
fn describe(e: &minijinja::Error) -> String {
    let mut text = e
        .detail()
        .map_or_else(|| e.kind().to_string(), |d| format!("{}: {d}", e.kind()));
    if let Some(line) = e.line() {
        text.push_str(&format!(" (line {line})"));
    }
    text
}

/// Replaces `${VAR}` with the variable's value from `lookup`; every missing variable is named.
pub fn expand_env(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, Vec<String>> {
    let mut out = String::with_capacity(text.len());
    let mut missing = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let name = &after[..end];
        match lookup(name) {
            Some(value) => out.push_str(&value),
            None => missing.push(format!("environment variable {name} is not set")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(missing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(body: Option<Json>) -> RequestSpec {
        RequestSpec {
            method: "put".into(),
            url: "{{ base }}/contacts/{{ crm.customer_id | required | urlencode }}".into(),
            headers: BTreeMap::from([("X-Chat".to_string(), "{{ crm.chat_id }}".to_string())]),
            body,
        }
    }

    const RECORD: &str = r#"{"record_id":"r1","event":"media.stored","crm":{"customer_id":"c 42","chat_id":"wa:+1","tags":["a","b"]},
        "media":{"url":"https://m/x.mp3","duration_ms":1500,"width":null},"extra":{}}"#;

    #[test]
    fn leaves_keep_their_types_and_text_renders() {
        let t = RequestTemplate::compile(
            &spec(Some(json!({
                "id": "{{ record_id }}",
                "ms": "{{ media.duration_ms }}",
                "w": "{{media.width}}",
                "missing": "{{ media.nothing.deeper }}",
                "tags": "{{ crm.tags }}",
                "obj": "{{ {'u': media.url, 'n': 1} }}",
                "text": "Voice note: {{ media.url }} ({{ media.duration_ms / 1000 }} s)",
                "fixed": [1, true, null, "plain"],
                "param": "{{ params.field | int }}"
            }))),
            "https://api.example/",
            &BTreeMap::from([("field".to_string(), "77".to_string())]),
        )
        .unwrap();
        let r = t.render(RECORD).unwrap();
        assert_eq!(r.method, reqwest::Method::PUT);
        assert_eq!(r.url, "https://api.example/contacts/c%2042");
        assert_eq!(r.headers, [("X-Chat".to_string(), "wa:+1".to_string())]);
        let body: Json = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            body,
            json!({"id": "r1", "ms": 1500, "w": null, "missing": null, "tags": ["a", "b"],
                   "obj": {"u": "https://m/x.mp3", "n": 1}, "text": "Voice note: https://m/x.mp3 (1.5 s)",
                   "fixed": [1, true, null, "plain"], "param": 77})
        );
    }

    #[test]
    fn the_default_body_is_the_record_as_committed() {
        let t = RequestTemplate::compile(&spec(None), "https://x", &BTreeMap::new()).unwrap();
        assert_eq!(t.render(RECORD).unwrap().body, RECORD.as_bytes());
    }

    #[test]
    fn a_missing_required_value_fails_the_render_and_bad_templates_fail_compiling() {
        let t = RequestTemplate::compile(&spec(None), "https://x", &BTreeMap::new()).unwrap();
        let e = t.render(r#"{"crm":{"customer_id":null}}"#).unwrap_err();
        assert!(
            e.contains("url") && e.contains("required value is missing"),
            "{e}"
        );
        let mut bad = spec(Some(json!({"a": "{{ crm. }}", "b": "{% if %}"})));
        bad.method = "NOT A METHOD".into();
        let problems = RequestTemplate::compile(&bad, "", &BTreeMap::new()).unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(
            problems.iter().any(|p| p.starts_with("body.a: syntax error")),
            "{problems:?}"
        );
    }

    #[test]
    fn environment_variables_are_expanded_and_missing_ones_named() {
        let env = |n: &str| (n == "TOKEN").then(|| "s3cr3t".to_string());
        assert_eq!(expand_env("Bearer ${TOKEN}", &env).unwrap(), "Bearer s3cr3t");
        assert_eq!(expand_env("no vars {{ x }}", &env).unwrap(), "no vars {{ x }}");
        assert_eq!(
            expand_env("${A}-${TOKEN}-${B}", &env).unwrap_err(),
            [
                "environment variable A is not set",
                "environment variable B is not set"
            ]
        );
    }
}
