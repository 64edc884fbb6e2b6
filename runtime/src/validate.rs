//! Input validation against the JSON Schema that schemars derives from the Rust type.
//!
//! Constraints are declared once, on the Rust type, with schemars attributes
//! (`#[schemars(length(min = 1))]`, `range`, `regex`, `email`, `url`, `contains`, `inner`, …).
//! This module compiles the schema once per type and checks values against it, reporting every
//! problem at once, each with its JSON path. It covers the JSON Schema vocabulary schemars
//! emits (draft 2020-12): types, `enum`/`const`, `properties`/`required`/
//! `additionalProperties`/`unevaluatedProperties`, `items`/`prefixItems`, string, number and
//! array bounds, `pattern`, `format`, `allOf`/`anyOf`/`oneOf`/`not`, and local `$ref`s.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::fmt;

use serde::Serialize;
use serde_json::{Map, Value};

/// One segment of a JSON path: an object key or an array index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum PathSegment {
    /// An object key.
    Key(String),
    /// An array index.
    Index(usize),
}

impl fmt::Display for PathSegment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathSegment::Key(k) => f.write_str(k),
            PathSegment::Index(i) => write!(f, "{i}"),
        }
    }
}

/// One validation problem: where, what kind (zod's issue codes), and a message that says what
/// was wrong and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Issue {
    /// Where in the input, e.g. `["items", 0, "title"]`; empty for the input itself.
    pub path: Vec<PathSegment>,
    /// `invalid_type`, `too_small`, `too_big`, `invalid_string`, `invalid_enum_value`,
    /// `invalid_literal`, `invalid_union`, `unrecognized_keys`, `not_multiple_of` or `custom`.
    pub code: &'static str,
    /// What was wrong and what was expected.
    pub message: String,
}

impl Issue {
    /// An issue with a custom code and message (for checks written in handlers).
    pub fn new(path: Vec<PathSegment>, code: &'static str, message: impl Into<String>) -> Self {
        Issue {
            path,
            code,
            message: message.into(),
        }
    }

    /// The path as text: `items[0].title`, or `(root)`.
    pub fn path_text(&self) -> String {
        let mut out = String::new();
        for segment in &self.path {
            match segment {
                PathSegment::Key(k) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(k);
                }
                PathSegment::Index(i) => out.push_str(&format!("[{i}]")),
            }
        }
        if out.is_empty() {
            "(root)".to_owned()
        } else {
            out
        }
    }

    /// Whether this issue is about the shape of the value (type, required key, tag, variant)
    /// rather than a refinement (length, range, pattern, format).
    pub fn is_structural(&self) -> bool {
        matches!(
            self.code,
            "invalid_type"
                | "invalid_enum_value"
                | "invalid_literal"
                | "invalid_union"
                | "invalid_union_discriminator"
                | "unrecognized_keys"
        )
    }
}

/// Which JSON types a schema admits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Types(u8);

impl Types {
    const NULL: u8 = 1;
    const BOOLEAN: u8 = 2;
    const OBJECT: u8 = 4;
    const ARRAY: u8 = 8;
    const NUMBER: u8 = 16;
    const INTEGER: u8 = 32;
    const STRING: u8 = 64;

    fn bit(name: &str) -> u8 {
        match name {
            "null" => Self::NULL,
            "boolean" => Self::BOOLEAN,
            "object" => Self::OBJECT,
            "array" => Self::ARRAY,
            "number" => Self::NUMBER,
            "integer" => Self::INTEGER,
            "string" => Self::STRING,
            _ => 0,
        }
    }

    fn admits(self, value: &Value) -> bool {
        let b = self.0;
        match value {
            Value::Null => b & Self::NULL != 0,
            Value::Bool(_) => b & Self::BOOLEAN != 0,
            Value::Object(_) => b & Self::OBJECT != 0,
            Value::Array(_) => b & Self::ARRAY != 0,
            Value::String(_) => b & Self::STRING != 0,
            Value::Number(n) => b & Self::NUMBER != 0 || (b & Self::INTEGER != 0 && is_integer(n)),
        }
    }

    fn describe(self) -> String {
        let names = [
            (Self::STRING, "a string"),
            (Self::INTEGER, "an integer"),
            (Self::NUMBER, "a number"),
            (Self::BOOLEAN, "a boolean"),
            (Self::OBJECT, "an object"),
            (Self::ARRAY, "an array"),
            (Self::NULL, "null"),
        ];
        let mut parts: Vec<&str> = names
            .iter()
            .filter(|(bit, _)| self.0 & bit != 0)
            .map(|(_, n)| *n)
            .collect();
        if self.0 & Self::NUMBER != 0 {
            parts.retain(|p| *p != "an integer");
        }
        match parts.len() {
            0 => "nothing".to_owned(),
            1 => parts[0].to_owned(),
            _ => {
                let last = parts.pop().unwrap_or_default();
                format!("{} or {last}", parts.join(", "))
            }
        }
    }
}

fn is_integer(n: &serde_json::Number) -> bool {
    n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
}

fn received(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Object(_) => "an object",
        Value::Array(_) => "an array",
        Value::String(_) => "a string",
        Value::Number(n) if is_integer(n) => "an integer",
        Value::Number(_) => "a number",
    }
}

/// `format` values that are checked (others are annotations, as JSON Schema specifies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Email,
    Uri,
    Uuid,
    DateTime,
    Date,
    Ipv4,
    Ipv6,
    Ip,
    /// A bounded integer (`uint8`, `int32`, …), from schemars' integer schemas.
    Int {
        min: i128,
        max: i128,
    },
}

impl Format {
    fn parse(name: &str) -> Option<Format> {
        Some(match name {
            "email" => Format::Email,
            "uri" => Format::Uri,
            "uuid" => Format::Uuid,
            "date-time" => Format::DateTime,
            "date" => Format::Date,
            "ipv4" => Format::Ipv4,
            "ipv6" => Format::Ipv6,
            "ip" => Format::Ip,
            "uint8" => Format::Int {
                min: 0,
                max: u8::MAX.into(),
            },
            "uint16" => Format::Int {
                min: 0,
                max: u16::MAX.into(),
            },
            "uint32" => Format::Int {
                min: 0,
                max: u32::MAX.into(),
            },
            "uint64" | "uint" => Format::Int {
                min: 0,
                max: u64::MAX.into(),
            },
            "int8" => Format::Int {
                min: i8::MIN.into(),
                max: i8::MAX.into(),
            },
            "int16" => Format::Int {
                min: i16::MIN.into(),
                max: i16::MAX.into(),
            },
            "int32" => Format::Int {
                min: i32::MIN.into(),
                max: i32::MAX.into(),
            },
            "int64" | "int" => Format::Int {
                min: i64::MIN.into(),
                max: i64::MAX.into(),
            },
            _ => return None,
        })
    }

    fn expected(self) -> &'static str {
        match self {
            Format::Email => "an email address",
            Format::Uri => "a URL",
            Format::Uuid => "a UUID",
            Format::DateTime => "an RFC 3339 date-time such as 2024-01-02T03:04:05Z",
            Format::Date => "a date such as 2024-01-02",
            Format::Ipv4 => "an IPv4 address",
            Format::Ipv6 => "an IPv6 address",
            Format::Ip => "an IP address",
            Format::Int { .. } => "an integer",
        }
    }

    fn check_str(self, s: &str) -> bool {
        match self {
            Format::Email => is_email(s),
            Format::Uri => is_uri(s),
            Format::Uuid => is_uuid(s),
            Format::DateTime => is_date_time(s),
            Format::Date => is_date(s),
            Format::Ipv4 => s.parse::<std::net::Ipv4Addr>().is_ok(),
            Format::Ipv6 => s.parse::<std::net::Ipv6Addr>().is_ok(),
            Format::Ip => s.parse::<std::net::IpAddr>().is_ok(),
            Format::Int { .. } => true,
        }
    }
}

fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.len() <= 64
        && !domain.is_empty()
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        && !local.contains('@')
        && domain.split('.').count() >= 2
        && domain.split('.').all(|label| {
            !label.is_empty() && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
}

fn is_uri(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !rest.is_empty()
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        && (!rest.starts_with("//") || rest.len() > 2)
}

fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn is_date(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    matches!(parts.as_slice(), [y, m, d] if y.len() == 4 && m.len() == 2 && d.len() == 2 && digits(y) && digits(m) && digits(d)
        && (1..=12).contains(&m.parse::<u8>().unwrap_or(0)) && (1..=31).contains(&d.parse::<u8>().unwrap_or(0)))
}

fn is_date_time(s: &str) -> bool {
    let Some((date, time)) = s.split_once(['T', 't', ' ']) else {
        return false;
    };
    if !is_date(date) {
        return false;
    }
    let (clock, zone_ok) = if let Some(stripped) = time.strip_suffix(['Z', 'z']) {
        (stripped, true)
    } else if let Some(i) = time.rfind(['+', '-']) {
        let zone = &time[i + 1..];
        (
            &time[..i],
            zone.len() == 5 && digits(&zone[..2]) && &zone[2..3] == ":" && digits(&zone[3..]),
        )
    } else {
        return false;
    };
    let (hms, frac_ok) = match clock.split_once('.') {
        Some((hms, frac)) => (hms, digits(frac)),
        None => (clock, true),
    };
    let hms: Vec<&str> = hms.split(':').collect();
    zone_ok
        && frac_ok
        && matches!(hms.as_slice(), [h, m, s] if h.len() == 2 && m.len() == 2 && s.len() == 2 && digits(h) && digits(m) && digits(s))
}

/// What to do with object keys the schema does not describe.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UnknownFields {
    /// Ignore them (the default, like zod's `strip` and serde's default).
    #[default]
    Ignore,
    /// Reject them with an `unrecognized_keys` issue.
    Reject,
}

type NodeId = usize;

#[derive(Debug, Clone)]
enum Additional {
    Allowed,
    Forbidden,
    Schema(NodeId),
}

impl Node {
    /// Whether serde enforces this node's keywords by itself (see
    /// [`Validator::serde_checks_all`]): structure, unit-variant names and tags, and integer
    /// bounds that are exactly those of the integer type.
    fn serde_checks_it(&self) -> bool {
        let strings_only = |v: &Value| v.is_string();
        let (natural_min, natural_max) = match self.format {
            Some(Format::Int { min, max }) => (Some(min as f64), Some(max as f64)),
            Some(_) => return false,
            None => (None, None),
        };
        let tuple_len = (!self.prefix_items.is_empty()).then_some(self.prefix_items.len() as u64);
        !self.never
            && self
                .enum_values
                .as_ref()
                .is_none_or(|values| values.iter().all(strings_only))
            && self.const_value.as_ref().is_none_or(strings_only)
            && self.min_length.is_none()
            && self.max_length.is_none()
            && self.pattern.is_none()
            && self.minimum.is_none_or(|m| Some(m) == natural_min)
            && self.maximum.is_none_or(|m| Some(m) == natural_max)
            && self.exclusive_minimum.is_none()
            && self.exclusive_maximum.is_none()
            && self.multiple_of.is_none()
            && self.min_items.is_none_or(|n| Some(n) == tuple_len)
            && self.max_items.is_none_or(|n| Some(n) == tuple_len)
            && !self.unique_items
            && self.contains.is_none()
            && !self.unevaluated_forbidden
            && self.property_names.is_none()
            && self.min_properties.is_none()
            && self.max_properties.is_none()
            && self.not.is_none()
    }
}

#[derive(Debug, Clone, Default)]
struct Node {
    /// `false` schema.
    never: bool,
    types: Option<Types>,
    enum_values: Option<Vec<Value>>,
    const_value: Option<Value>,
    min_length: Option<u64>,
    max_length: Option<u64>,
    pattern: Option<(regex::Regex, String)>,
    format: Option<Format>,
    minimum: Option<f64>,
    maximum: Option<f64>,
    exclusive_minimum: Option<f64>,
    exclusive_maximum: Option<f64>,
    multiple_of: Option<f64>,
    items: Option<NodeId>,
    prefix_items: Vec<NodeId>,
    min_items: Option<u64>,
    max_items: Option<u64>,
    unique_items: bool,
    contains: Option<NodeId>,
    properties: Vec<(String, NodeId)>,
    required: Vec<String>,
    additional: Option<Additional>,
    unevaluated_forbidden: bool,
    property_names: Option<NodeId>,
    min_properties: Option<u64>,
    max_properties: Option<u64>,
    all_of: Vec<NodeId>,
    any_of: Vec<NodeId>,
    one_of: Vec<NodeId>,
    not: Option<NodeId>,
    reference: Option<NodeId>,
}

/// A compiled schema, ready to check values.
#[derive(Debug, Clone)]
pub struct Validator {
    nodes: Vec<Node>,
    root: NodeId,
    has_unevaluated: bool,
    /// Every keyword is one serde checks by itself when deserializing the type the schema
    /// was generated from (structure, unit-variant names, integer ranges of integer types).
    serde_checks_all: bool,
}

/// Why a schema could not be compiled (a bug in a hand-written `JsonSchema` impl, usually).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported JSON Schema: {0}")]
pub struct SchemaError(String);

struct Compiler<'a> {
    root: &'a Value,
    nodes: Vec<Node>,
    refs: HashMap<String, NodeId>,
}

fn as_u64(v: Option<&Value>) -> Option<u64> {
    v.and_then(Value::as_u64)
}

fn as_f64(v: Option<&Value>) -> Option<f64> {
    v.and_then(Value::as_f64)
}

impl Compiler<'_> {
    fn compile(&mut self, schema: &Value) -> Result<NodeId, SchemaError> {
        let id = self.nodes.len();
        self.nodes.push(Node::default());
        let node = match schema {
            Value::Bool(true) => Node::default(),
            Value::Bool(false) => Node {
                never: true,
                ..Node::default()
            },
            Value::Object(map) => self.compile_object(map)?,
            other => {
                return Err(SchemaError(format!(
                    "a schema must be an object or a boolean, found {other}"
                )));
            }
        };
        self.nodes[id] = node;
        Ok(id)
    }

    fn list(&mut self, v: Option<&Value>) -> Result<Vec<NodeId>, SchemaError> {
        match v {
            Some(Value::Array(items)) => items.iter().map(|s| self.compile(s)).collect(),
            _ => Ok(Vec::new()),
        }
    }

    fn optional(&mut self, v: Option<&Value>) -> Result<Option<NodeId>, SchemaError> {
        v.map(|s| self.compile(s)).transpose()
    }

    fn resolve(&mut self, reference: &str) -> Result<NodeId, SchemaError> {
        if let Some(id) = self.refs.get(reference) {
            return Ok(*id);
        }
        let pointer = reference.strip_prefix('#').ok_or_else(|| {
            SchemaError(format!(
                "only local references are supported, found `{reference}`"
            ))
        })?;
        let target = self
            .root
            .pointer(pointer)
            .ok_or_else(|| SchemaError(format!("reference `{reference}` points nowhere")))?;
        // Register before compiling, so recursive types terminate.
        let id = self.nodes.len();
        self.nodes.push(Node::default());
        self.refs.insert(reference.to_owned(), id);
        let inner = self.compile(target)?;
        self.nodes[id] = Node {
            reference: Some(inner),
            ..Node::default()
        };
        Ok(id)
    }

    fn compile_object(&mut self, map: &Map<String, Value>) -> Result<Node, SchemaError> {
        let mut node = Node::default();
        if let Some(r) = map.get("$ref").and_then(Value::as_str) {
            node.reference = Some(self.resolve(r)?);
        }
        node.types = match map.get("type") {
            Some(Value::String(t)) => Some(Types(Types::bit(t))),
            Some(Value::Array(ts)) => Some(Types(
                ts.iter()
                    .filter_map(Value::as_str)
                    .map(Types::bit)
                    .fold(0, |a, b| a | b),
            )),
            _ => None,
        };
        node.enum_values = map.get("enum").and_then(Value::as_array).cloned();
        node.const_value = map.get("const").cloned();
        node.min_length = as_u64(map.get("minLength"));
        node.max_length = as_u64(map.get("maxLength"));
        if let Some(p) = map.get("pattern").and_then(Value::as_str) {
            let re =
                regex::Regex::new(p).map_err(|e| SchemaError(format!("bad pattern `{p}`: {e}")))?;
            node.pattern = Some((re, p.to_owned()));
        }
        node.format = map
            .get("format")
            .and_then(Value::as_str)
            .and_then(Format::parse);
        node.minimum = as_f64(map.get("minimum"));
        node.maximum = as_f64(map.get("maximum"));
        node.exclusive_minimum = as_f64(map.get("exclusiveMinimum"));
        node.exclusive_maximum = as_f64(map.get("exclusiveMaximum"));
        node.multiple_of = as_f64(map.get("multipleOf"));
        node.items = self.optional(map.get("items"))?;
        node.prefix_items = self.list(map.get("prefixItems"))?;
        node.min_items = as_u64(map.get("minItems"));
        node.max_items = as_u64(map.get("maxItems"));
        node.unique_items = map
            .get("uniqueItems")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        node.contains = self.optional(map.get("contains"))?;
        if let Some(Value::Object(props)) = map.get("properties") {
            for (key, schema) in props {
                let id = self.compile(schema)?;
                node.properties.push((key.clone(), id));
            }
        }
        node.required = map
            .get("required")
            .and_then(Value::as_array)
            .map(|r| {
                r.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        node.additional = match map.get("additionalProperties") {
            None => None,
            Some(Value::Bool(true)) => Some(Additional::Allowed),
            Some(Value::Bool(false)) => Some(Additional::Forbidden),
            Some(schema) => Some(Additional::Schema(self.compile(schema)?)),
        };
        node.unevaluated_forbidden = map.get("unevaluatedProperties") == Some(&Value::Bool(false));
        node.property_names = self.optional(map.get("propertyNames"))?;
        node.min_properties = as_u64(map.get("minProperties"));
        node.max_properties = as_u64(map.get("maxProperties"));
        node.all_of = self.list(map.get("allOf"))?;
        node.any_of = self.list(map.get("anyOf"))?;
        node.one_of = self.list(map.get("oneOf"))?;
        node.not = self.optional(map.get("not"))?;
        if node.additional.is_none() && map.contains_key("patternProperties") {
            // Keys matched by patterns are described; be lenient with them.
            node.additional = Some(Additional::Allowed);
        }
        Ok(node)
    }
}

/// What one check learned about an object instance: which keys some schema described.
/// Keys are only tracked when something needs them (strict mode, `unevaluatedProperties`).
#[derive(Default)]
struct Evaluated<'v> {
    keys: BTreeSet<&'v str>,
    all_keys: bool,
    /// Some schema described the object's shape (so strict mode applies to it).
    shaped: bool,
}

impl<'v> Evaluated<'v> {
    fn merge(&mut self, other: Evaluated<'v>) {
        self.keys.extend(other.keys);
        self.all_keys |= other.all_keys;
        self.shaped |= other.shaped;
    }
}

/// A path segment borrowed from the value being checked (owned only for keys the value lacks),
/// so walking a valid value allocates nothing for paths.
#[derive(Debug, Clone)]
enum Seg<'v> {
    Key(Cow<'v, str>),
    Index(usize),
}

impl Seg<'_> {
    fn to_segment(&self) -> PathSegment {
        match self {
            Seg::Key(k) => PathSegment::Key(k.clone().into_owned()),
            Seg::Index(i) => PathSegment::Index(*i),
        }
    }
}

struct Run<'n, 'v> {
    nodes: &'n [Node],
    unknown: UnknownFields,
    issues: Vec<Issue>,
    path: Vec<Seg<'v>>,
    /// Whether object keys must be tracked (strict mode or `unevaluatedProperties`).
    track: bool,
}

impl<'v> Run<'_, 'v> {
    fn issue(&mut self, code: &'static str, message: String) {
        self.issues.push(Issue {
            path: self.path.iter().map(Seg::to_segment).collect(),
            code,
            message,
        });
    }

    /// Checks `value` against `id`, then applies strict mode at this instance location.
    fn check_location(&mut self, id: NodeId, value: &'v Value) {
        let evaluated = self.check(id, value);
        if let (UnknownFields::Reject, Value::Object(map)) = (self.unknown, value)
            && evaluated.shaped
            && !evaluated.all_keys
        {
            self.report_unknown(map, &evaluated);
        }
    }

    fn report_unknown(&mut self, map: &'v Map<String, Value>, evaluated: &Evaluated<'v>) {
        let unknown: Vec<&str> = map
            .keys()
            .filter(|k| !evaluated.keys.contains(k.as_str()))
            .map(String::as_str)
            .collect();
        if !unknown.is_empty() {
            let list = unknown
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ");
            let known = evaluated
                .keys
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ");
            self.issue(
                "unrecognized_keys",
                format!(
                    "Unrecognized key(s) in object: {list}; expected only: {}",
                    if known.is_empty() {
                        "no keys".to_owned()
                    } else {
                        known
                    }
                ),
            );
        }
    }

    /// A sub-run on the same location (for unions): its own issues, same path.
    fn trial(&self, id: NodeId, value: &'v Value) -> (Vec<Issue>, Evaluated<'v>) {
        let mut run = Run {
            nodes: self.nodes,
            unknown: UnknownFields::Ignore,
            issues: Vec::new(),
            path: self.path.clone(),
            track: self.track,
        };
        let evaluated = run.check(id, value);
        (run.issues, evaluated)
    }

    #[allow(clippy::too_many_lines)] // one arm per JSON Schema keyword family reads best flat
    fn check(&mut self, id: NodeId, value: &'v Value) -> Evaluated<'v> {
        let node = &self.nodes[id];
        let mut evaluated = Evaluated::default();
        if node.never {
            self.issue("invalid_type", "No value is allowed here".to_owned());
            return evaluated;
        }
        if let Some(target) = node.reference {
            evaluated.merge(self.check(target, value));
        }
        if let Some(types) = node.types
            && !types.admits(value)
        {
            self.issue(
                "invalid_type",
                format!(
                    "Expected {}, received {}",
                    types.describe(),
                    received(value)
                ),
            );
            return evaluated;
        }
        if let Some(values) = &node.enum_values
            && !values.contains(value)
        {
            let list = values
                .iter()
                .map(Value::to_string)
                .collect::<Vec<_>>()
                .join(", ");
            self.issue(
                "invalid_enum_value",
                format!("Expected one of {list}, received {value}"),
            );
            return evaluated;
        }
        if let Some(expected) = &node.const_value
            && expected != value
        {
            self.issue(
                "invalid_literal",
                format!("Expected {expected}, received {value}"),
            );
            return evaluated;
        }
        match value {
            Value::String(s) => self.check_string(node, s),
            Value::Number(n) => self.check_number(node, n),
            Value::Array(items) => self.check_array(node, items),
            Value::Object(map) => evaluated.merge(self.check_object(node, value, map)),
            _ => {}
        }
        for &sub in &node.all_of {
            evaluated.merge(self.check(sub, value));
        }
        if !node.any_of.is_empty() {
            evaluated.merge(self.check_union(&node.any_of, value, false));
        }
        if !node.one_of.is_empty() {
            evaluated.merge(self.check_union(&node.one_of, value, true));
        }
        if let Some(not) = node.not
            && self.trial(not, value).0.is_empty()
        {
            self.issue("invalid_type", "This value is not allowed here".to_owned());
        }
        evaluated
    }

    /// The constant a branch requires at `key` (a serde tag), following references.
    fn tag_of(&self, id: NodeId, key: &str) -> Option<&Value> {
        let node = &self.nodes[id];
        if let Some(target) = node.reference {
            return self.tag_of(target, key);
        }
        let (_, prop) = node.properties.iter().find(|(k, _)| k == key)?;
        let prop = &self.nodes[*prop];
        prop.const_value
            .as_ref()
            .or(match prop.enum_values.as_deref() {
                Some([only]) => Some(only),
                _ => None,
            })
    }

    /// A key every branch pins to a distinct constant: the union is discriminated by it.
    fn discriminator(&self, branches: &[NodeId]) -> Option<(String, Vec<Value>)> {
        let first = branches.first()?;
        let mut node = &self.nodes[*first];
        while let Some(target) = node.reference {
            node = &self.nodes[target];
        }
        node.properties.iter().find_map(|(key, _)| {
            let tags: Option<Vec<Value>> = branches
                .iter()
                .map(|&b| self.tag_of(b, key).cloned())
                .collect();
            let tags = tags?;
            let distinct = tags.iter().enumerate().all(|(i, t)| !tags[..i].contains(t));
            distinct.then(|| (key.clone(), tags))
        })
    }

    fn check_union(
        &mut self,
        branches: &[NodeId],
        value: &'v Value,
        exactly_one: bool,
    ) -> Evaluated<'v> {
        // A discriminated union (serde's tagged enums): pick the branch by its tag, as zod's
        // `discriminatedUnion` does, and report that branch's issues, or a bad tag once.
        if let (Some((key, tags)), Value::Object(map)) = (self.discriminator(branches), value) {
            let expected = tags
                .iter()
                .map(Value::to_string)
                .collect::<Vec<_>>()
                .join(" | ");
            self.path.push(Seg::Key(Cow::Owned(key.clone())));
            let chosen = match map.get(&key) {
                None => {
                    self.issue("invalid_type", format!("Required: expected {expected}"));
                    None
                }
                Some(tag) => match tags.iter().position(|t| t == tag) {
                    Some(i) => Some(branches[i]),
                    None => {
                        self.issue(
                            "invalid_union_discriminator",
                            format!("Expected {expected}, received {tag}"),
                        );
                        None
                    }
                },
            };
            self.path.pop();
            return match chosen {
                Some(branch) => self.check(branch, value),
                None => Evaluated {
                    all_keys: true,
                    ..Evaluated::default()
                },
            };
        }
        let trials: Vec<(Vec<Issue>, Evaluated<'_>)> =
            branches.iter().map(|&b| self.trial(b, value)).collect();
        let matching = trials
            .iter()
            .filter(|(issues, _)| issues.is_empty())
            .count();
        if matching == 0 {
            // Report the closest branch: the one whose structure matched best (a matching tag
            // leaves only the issues inside that variant), as zod does for discriminated unions.
            let best = trials.into_iter().min_by_key(|(issues, _)| {
                (
                    issues
                        .iter()
                        .filter(|i| i.is_structural() && i.path.len() <= self.path.len() + 1)
                        .count(),
                    issues.len(),
                )
            });
            if let Some((issues, evaluated)) = best {
                let at_root_only = issues.iter().all(|i| i.path.len() == self.path.len());
                if at_root_only && branches.len() > 1 {
                    self.issue(
                        "invalid_union",
                        format!(
                            "Invalid input: it matches none of the {} allowed shapes ({})",
                            branches.len(),
                            issues.first().map_or("", |i| i.message.as_str())
                        ),
                    );
                } else {
                    self.issues.extend(issues);
                }
                return evaluated;
            }
            return Evaluated::default();
        }
        if exactly_one && matching > 1 {
            self.issue("invalid_union", format!("Ambiguous input: it matches {matching} of the allowed shapes, but must match exactly one"));
        }
        let mut evaluated = Evaluated::default();
        for (issues, e) in trials {
            if issues.is_empty() {
                evaluated.merge(e);
            }
        }
        evaluated
    }

    fn check_string(&mut self, node: &Node, s: &str) {
        let len = s.chars().count() as u64;
        if let Some(min) = node.min_length
            && len < min
        {
            let unit = if min == 1 { "character" } else { "characters" };
            self.issue(
                "too_small",
                format!("Expected at least {min} {unit}, received {len}"),
            );
        }
        if let Some(max) = node.max_length
            && len > max
        {
            let unit = if max == 1 { "character" } else { "characters" };
            self.issue(
                "too_big",
                format!("Expected at most {max} {unit}, received {len}"),
            );
        }
        if let Some((re, source)) = &node.pattern
            && !re.is_match(s)
        {
            self.issue(
                "invalid_string",
                format!("Expected a string matching the pattern `{source}`"),
            );
        }
        if let Some(format) = node.format
            && !format.check_str(s)
        {
            self.issue(
                "invalid_string",
                format!("Expected {}, received {:?}", format.expected(), truncate(s)),
            );
        }
    }

    fn check_number(&mut self, node: &Node, n: &serde_json::Number) {
        let Some(f) = n.as_f64() else { return };
        // The type's own bounds (u8: 0..=255) only speak when the declared range says nothing.
        let explicit_low =
            node.minimum.is_some_and(|m| f < m) || node.exclusive_minimum.is_some_and(|m| f <= m);
        let explicit_high =
            node.maximum.is_some_and(|m| f > m) || node.exclusive_maximum.is_some_and(|m| f >= m);
        if let Some(Format::Int { min, max }) = node.format {
            let as_int = n
                .as_i64()
                .map(i128::from)
                .or_else(|| n.as_u64().map(i128::from));
            match as_int {
                Some(i) if i < min && !explicit_low => self.issue(
                    "too_small",
                    format!("Expected an integer ≥ {min}, received {n}"),
                ),
                Some(i) if i > max && !explicit_high => self.issue(
                    "too_big",
                    format!("Expected an integer ≤ {max}, received {n}"),
                ),
                Some(_) => {}
                None if explicit_low || explicit_high => {}
                None if f.fract() != 0.0 => {
                    self.issue("invalid_type", format!("Expected an integer, received {n}"))
                }
                None => self.issue(
                    "too_big",
                    format!("Expected an integer between {min} and {max}, received {n}"),
                ),
            }
        }
        if let Some(min) = node.minimum
            && f < min
        {
            self.issue(
                "too_small",
                format!("Expected a number ≥ {}, received {n}", fmt_num(min)),
            );
        }
        if let Some(max) = node.maximum
            && f > max
        {
            self.issue(
                "too_big",
                format!("Expected a number ≤ {}, received {n}", fmt_num(max)),
            );
        }
        if let Some(min) = node.exclusive_minimum
            && f <= min
        {
            self.issue(
                "too_small",
                format!("Expected a number > {}, received {n}", fmt_num(min)),
            );
        }
        if let Some(max) = node.exclusive_maximum
            && f >= max
        {
            self.issue(
                "too_big",
                format!("Expected a number < {}, received {n}", fmt_num(max)),
            );
        }
        if let Some(m) = node.multiple_of
            && m > 0.0
            && ((f / m).round() * m - f).abs() > f64::EPSILON * f.abs().max(1.0)
        {
            self.issue(
                "not_multiple_of",
                format!("Expected a multiple of {}, received {n}", fmt_num(m)),
            );
        }
    }

    fn check_array(&mut self, node: &Node, items: &'v [Value]) {
        let len = items.len() as u64;
        if let Some(min) = node.min_items
            && len < min
        {
            self.issue(
                "too_small",
                format!("Expected at least {min} item(s), received {len}"),
            );
        }
        if let Some(max) = node.max_items
            && len > max
        {
            self.issue(
                "too_big",
                format!("Expected at most {max} item(s), received {len}"),
            );
        }
        if node.unique_items {
            for (i, item) in items.iter().enumerate() {
                if items[..i].contains(item) {
                    self.issue(
                        "custom",
                        format!("Expected unique items, but item {i} repeats an earlier one"),
                    );
                    break;
                }
            }
        }
        for (i, item) in items.iter().enumerate() {
            let schema = node.prefix_items.get(i).copied().or(node.items);
            if let Some(schema) = schema {
                self.path.push(Seg::Index(i));
                self.check_location(schema, item);
                self.path.pop();
            }
        }
        if let Some(contains) = node.contains
            && !items
                .iter()
                .any(|item| self.trial(contains, item).0.is_empty())
        {
            self.issue(
                "custom",
                "Expected the array to contain a matching item".to_owned(),
            );
        }
    }

    fn check_object(
        &mut self,
        node: &Node,
        value: &'v Value,
        map: &'v Map<String, Value>,
    ) -> Evaluated<'v> {
        let mut evaluated = Evaluated {
            shaped: !node.properties.is_empty()
                || node.additional.is_some()
                || !node.required.is_empty(),
            ..Evaluated::default()
        };
        let len = map.len() as u64;
        if let Some(min) = node.min_properties
            && len < min
        {
            self.issue(
                "too_small",
                format!("Expected at least {min} key(s), received {len}"),
            );
        }
        if let Some(max) = node.max_properties
            && len > max
        {
            self.issue(
                "too_big",
                format!("Expected at most {max} key(s), received {len}"),
            );
        }
        for key in &node.required {
            if !map.contains_key(key) {
                self.path.push(Seg::Key(Cow::Owned(key.clone())));
                let expected = node
                    .properties
                    .iter()
                    .find(|(k, _)| k == key)
                    .and_then(|(_, id)| self.describe_expected(*id))
                    .map_or_else(String::new, |e| format!(": expected {e}"));
                self.issue("invalid_type", format!("Required{expected}"));
                self.path.pop();
            }
        }
        for (key, value) in map {
            if let Some(names) = node.property_names {
                let name = Value::String(key.clone());
                let mut run = Run {
                    nodes: self.nodes,
                    unknown: UnknownFields::Ignore,
                    issues: Vec::new(),
                    path: Vec::new(),
                    track: false,
                };
                run.check(names, &name);
                self.path.push(Seg::Key(Cow::Borrowed(key.as_str())));
                for issue in run.issues {
                    self.issue(issue.code, format!("Invalid key: {}", issue.message));
                }
                self.path.pop();
            }
            if let Some((_, id)) = node.properties.iter().find(|(k, _)| k == key) {
                if self.track {
                    evaluated.keys.insert(key.as_str());
                }
                self.path.push(Seg::Key(Cow::Borrowed(key.as_str())));
                self.check_location(*id, value);
                self.path.pop();
                continue;
            }
            match &node.additional {
                Some(Additional::Schema(id)) => {
                    if self.track {
                        evaluated.keys.insert(key.as_str());
                    }
                    self.path.push(Seg::Key(Cow::Borrowed(key.as_str())));
                    self.check_location(*id, value);
                    self.path.pop();
                }
                Some(Additional::Forbidden) => {
                    self.path.push(Seg::Key(Cow::Borrowed(key.as_str())));
                    let known = node
                        .properties
                        .iter()
                        .map(|(k, _)| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ");
                    self.issue(
                        "unrecognized_keys",
                        format!("Unrecognized key `{key}`; expected only: {known}"),
                    );
                    self.path.pop();
                }
                Some(Additional::Allowed) if self.track => {
                    evaluated.keys.insert(key.as_str());
                }
                Some(Additional::Allowed) | None => {}
            }
        }
        if matches!(
            node.additional,
            Some(Additional::Allowed | Additional::Schema(_))
        ) {
            evaluated.all_keys = true;
        }
        if node.unevaluated_forbidden {
            // Needs the sub-schemas' keys too: compute them here (cheap: it is rare).
            let mut all = Evaluated {
                keys: evaluated.keys.clone(),
                all_keys: evaluated.all_keys,
                shaped: true,
            };
            for &sub in node
                .all_of
                .iter()
                .chain(&node.any_of)
                .chain(&node.one_of)
                .chain(node.reference.iter())
            {
                let (issues, e) = self.trial(sub, value);
                if issues.is_empty() {
                    all.merge(e);
                }
            }
            if !all.all_keys {
                self.report_unknown(map, &all);
            }
            evaluated.all_keys = true;
        }
        evaluated
    }

    /// A short description of what a schema expects, for "Required" messages.
    fn describe_expected(&self, id: NodeId) -> Option<String> {
        let node = &self.nodes[id];
        if let Some(target) = node.reference {
            return self.describe_expected(target);
        }
        if node.types.is_none() && !(node.one_of.is_empty() && node.any_of.is_empty()) {
            let parts: Vec<String> = node
                .one_of
                .iter()
                .chain(&node.any_of)
                .filter_map(|&b| self.describe_expected(b))
                .fold(Vec::new(), |mut acc, d| {
                    if !acc.contains(&d) {
                        acc.push(d);
                    }
                    acc
                });
            return (!parts.is_empty()).then(|| parts.join(" or "));
        }
        node.types.map(Types::describe)
    }
}

fn truncate(s: &str) -> String {
    if s.chars().count() <= 64 {
        s.to_owned()
    } else {
        format!("{}…", s.chars().take(64).collect::<String>())
    }
}

fn fmt_num(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        f.to_string()
    }
}

impl Validator {
    /// Compiles a JSON Schema (as schemars produces it; `$ref`s point into the same document).
    pub fn new(schema: &Value) -> Result<Validator, SchemaError> {
        let mut compiler = Compiler {
            root: schema,
            nodes: Vec::new(),
            refs: HashMap::new(),
        };
        let root = compiler.compile(schema)?;
        let has_unevaluated = compiler.nodes.iter().any(|n| n.unevaluated_forbidden);
        let serde_checks_all = compiler.nodes.iter().all(Node::serde_checks_it);
        Ok(Validator {
            nodes: compiler.nodes,
            root,
            has_unevaluated,
            serde_checks_all,
        })
    }

    /// Whether deserializing the type the schema was generated from checks everything the
    /// schema says (no length, pattern, format, range or uniqueness constraint beyond what the
    /// Rust type itself enforces). Then a value that deserializes passes validation too, and
    /// the validation pass over a JSON tree can be skipped for it (ignoring unknown fields).
    pub fn serde_checks_all(&self) -> bool {
        self.serde_checks_all
    }

    /// The schema of `T`, compiled.
    pub fn of<T: schemars::JsonSchema>() -> Result<Validator, SchemaError> {
        let schema = schemars::SchemaGenerator::default().into_root_schema_for::<T>();
        Validator::new(schema.as_value())
    }

    /// Every issue of `value`, in document order; empty when it is valid.
    pub fn validate(&self, value: &Value, unknown: UnknownFields) -> Vec<Issue> {
        let mut run = Run {
            nodes: &self.nodes,
            unknown,
            issues: Vec::new(),
            path: Vec::new(),
            track: unknown == UnknownFields::Reject || self.has_unevaluated,
        };
        run.check_location(self.root, value);
        run.issues
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_checks_plain_types_fully_and_constraints_not() {
        #[derive(schemars::JsonSchema)]
        #[allow(dead_code)]
        struct Plain {
            name: String,
            age: u8,
            big: u64,
            tags: Vec<String>,
            pair: (u32, bool),
            maybe: Option<i64>,
            level: Level,
        }
        #[derive(schemars::JsonSchema)]
        #[allow(dead_code)]
        enum Level {
            Low,
            High,
        }
        #[derive(schemars::JsonSchema)]
        #[allow(dead_code)]
        struct Constrained {
            #[schemars(length(min = 1))]
            name: String,
        }
        #[derive(schemars::JsonSchema)]
        #[allow(dead_code)]
        struct Ranged {
            #[schemars(range(min = 1))]
            n: u32,
        }
        let fully = |v: Result<Validator, SchemaError>| v.expect("compiles").serde_checks_all();
        assert!(fully(Validator::of::<Plain>()));
        assert!(fully(Validator::of::<String>()));
        assert!(fully(Validator::of::<serde_json::Value>()));
        assert!(!fully(Validator::of::<Constrained>()));
        assert!(!fully(Validator::of::<Ranged>()));
        assert!(!fully(Validator::of::<std::collections::HashSet<u8>>()));
    }
    use serde_json::json;

    #[derive(schemars::JsonSchema)]
    #[allow(dead_code)]
    struct Signup {
        #[schemars(length(min = 1, max = 8))]
        name: String,
        #[schemars(email)]
        email: String,
        #[schemars(url)]
        homepage: Option<String>,
        #[schemars(range(min = 13, max = 130))]
        age: u8,
        #[schemars(regex(pattern = r"^[a-z]+$"))]
        handle: String,
        #[schemars(length(min = 1), inner(length(min = 2)))]
        tags: Vec<String>,
        #[schemars(contains(pattern = "x"))]
        code: String,
        role: Role,
        address: Address,
    }

    #[derive(schemars::JsonSchema)]
    #[allow(dead_code)]
    enum Role {
        Admin,
        Member,
    }

    #[derive(schemars::JsonSchema)]
    #[allow(dead_code)]
    struct Address {
        #[schemars(length(min = 2))]
        city: String,
    }

    fn valid() -> Value {
        json!({"name": "ada", "email": "ada@example.com", "homepage": "https://ada.dev", "age": 36,
               "handle": "ada", "tags": ["ab"], "code": "xyz", "role": "Admin", "address": {"city": "London"}})
    }

    fn codes(issues: &[Issue]) -> Vec<(String, &'static str)> {
        issues.iter().map(|i| (i.path_text(), i.code)).collect()
    }

    #[test]
    fn valid_input_has_no_issues() {
        let v = Validator::of::<Signup>().expect("compile");
        assert_eq!(v.validate(&valid(), UnknownFields::Reject), vec![]);
    }

    #[test]
    fn every_issue_at_once_with_paths() {
        let v = Validator::of::<Signup>().expect("compile");
        let input = json!({"name": "", "email": "nope", "homepage": "not a url", "age": 7, "handle": "A!",
                           "tags": ["a"], "code": "abc", "role": "Root", "address": {"city": 5}});
        let issues = v.validate(&input, UnknownFields::Ignore);
        assert_eq!(
            codes(&issues),
            vec![
                ("address.city".to_owned(), "invalid_type"),
                ("age".to_owned(), "too_small"),
                ("code".to_owned(), "invalid_string"),
                ("email".to_owned(), "invalid_string"),
                ("handle".to_owned(), "invalid_string"),
                ("homepage".to_owned(), "invalid_string"),
                ("name".to_owned(), "too_small"),
                ("role".to_owned(), "invalid_enum_value"),
                ("tags[0]".to_owned(), "too_small"),
            ],
            "{issues:#?}"
        );
        let name = issues
            .iter()
            .find(|i| i.path_text() == "name")
            .expect("name issue");
        assert_eq!(name.message, "Expected at least 1 character, received 0");
    }

    #[test]
    fn missing_fields_and_unknown_fields() {
        let v = Validator::of::<Address>().expect("compile");
        let issues = v.validate(&json!({}), UnknownFields::Ignore);
        assert_eq!(issues[0].message, "Required: expected a string");
        assert_eq!(issues[0].path, vec![PathSegment::Key("city".into())]);
        let extra = json!({"city": "Rome", "zip": "1"});
        assert!(v.validate(&extra, UnknownFields::Ignore).is_empty());
        let issues = v.validate(&extra, UnknownFields::Reject);
        assert_eq!(
            codes(&issues),
            vec![("(root)".to_owned(), "unrecognized_keys")]
        );
        assert!(issues[0].message.contains("`zip`"), "{}", issues[0].message);
    }

    #[test]
    fn integer_formats_bound_values() {
        let v = Validator::of::<u8>().expect("compile");
        assert!(v.validate(&json!(255), UnknownFields::Ignore).is_empty());
        assert_eq!(
            v.validate(&json!(256), UnknownFields::Ignore)[0].code,
            "too_big"
        );
        assert_eq!(
            v.validate(&json!(1.5), UnknownFields::Ignore)[0].code,
            "invalid_type"
        );
        assert_eq!(
            v.validate(&json!("1"), UnknownFields::Ignore)[0].message,
            "Expected an integer, received a string"
        );
    }

    #[derive(schemars::JsonSchema)]
    #[serde(tag = "kind")]
    #[allow(dead_code)]
    enum Contact {
        Email { address: String },
        Phone { number: String },
    }

    #[derive(schemars::JsonSchema)]
    #[allow(dead_code)]
    struct Person {
        #[schemars(range(min = 13, max = 130))]
        age: u8,
        contact: Contact,
    }

    #[test]
    fn tagged_unions_report_by_tag_and_bounds_report_once() {
        let v = Validator::of::<Person>().expect("compile");
        let issues = v.validate(
            &json!({"age": 300, "contact": {"kind": "fax"}}),
            UnknownFields::Ignore,
        );
        assert_eq!(
            codes(&issues),
            vec![
                ("age".to_owned(), "too_big"),
                ("contact.kind".to_owned(), "invalid_union_discriminator")
            ],
            "{issues:#?}"
        );
        assert_eq!(issues[0].message, "Expected a number ≤ 130, received 300");
        assert_eq!(
            issues[1].message,
            r#"Expected "Email" | "Phone", received "fax""#
        );
        let issues = v.validate(
            &json!({"age": 20, "contact": {"kind": "Phone"}}),
            UnknownFields::Ignore,
        );
        assert_eq!(
            codes(&issues),
            vec![("contact.number".to_owned(), "invalid_type")]
        );
        let issues = v.validate(&json!({"age": 20}), UnknownFields::Ignore);
        assert_eq!(issues[0].message, "Required: expected an object");
    }

    #[test]
    fn formats() {
        assert!(
            is_email("a.b@c.de") && !is_email("a@b") && !is_email("a b@c.de") && !is_email("@c.de")
        );
        assert!(
            is_uri("https://x.y/z")
                && is_uri("mailto:a@b.c")
                && !is_uri("no scheme")
                && !is_uri("http://")
        );
        assert!(is_uuid("01234567-89ab-cdef-0123-456789abcdef") && !is_uuid("0123"));
        assert!(
            is_date_time("2024-01-02T03:04:05Z") && is_date_time("2024-01-02T03:04:05.123+01:00")
        );
        assert!(!is_date_time("2024-01-02") && !is_date_time("2024-13-02T03:04:05Z"));
    }
}
