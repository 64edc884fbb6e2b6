//! The superjson transformer on the wire (spec §4): with it on, values travel as
//! `{"json":…,"meta":{"values":…,"v":1}}`, where `meta.values` annotates the JSON at dotted
//! paths (`Date`, `bigint`, `set`, `map`, `undefined`, …) so the client rebuilds them.
//!
//! Outputs: while a value is serialized for superjson, the JavaScript value types of
//! [`crate::js`] write markers instead of their plain JSON; the markers then become their
//! plain JSON again plus an annotation at their path. A value without such types is sent as
//! it serialized (`{"json":…}`), never re-parsed. Inputs: the annotations are applied to the
//! JSON before validation, so procedures see plain JSON either way.

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::call::{InputText, Json, RawInput};
use crate::error::Error;

/// What `superjson.serialize(undefined)` writes: a `()` output, a void input.
pub(crate) const UNDEFINED: &str = r#"{"json":null,"meta":{"values":["undefined"],"v":1}}"#;

/// [`UNDEFINED`] as JSON text.
pub(crate) fn undefined() -> Json {
    Json::assembled(UNDEFINED.to_owned())
}

thread_local! {
    /// While a value is serialized for superjson on this thread: the markers' nonce and how
    /// many markers were written.
    static MARKING: Cell<Option<(u64, usize)>> = const { Cell::new(None) };
    /// A nonce per thread, so no string a user sends can pass for a marker.
    static NONCE: u64 = RandomState::new().hash_one("oxrpc-sj");
}

fn prefix(nonce: u64) -> String {
    format!("\u{0}oxrpc-sj:{nonce:016x}:")
}

/// The marker a JavaScript value type writes for `kind` (`Date`, `bigint`: followed by its
/// plain JSON string; `set`, `map`: as the only key of an object holding the array) while a
/// value is serialized for superjson; `None` otherwise (then it writes its plain JSON).
pub(crate) fn marker(kind: &str) -> Option<String> {
    MARKING.with(|m| {
        let (nonce, count) = m.get()?;
        m.set(Some((nonce, count + 1)));
        Some(format!("{}{kind}:", prefix(nonce)))
    })
}

/// Whether a value is being serialized for superjson on this thread (parts sent later are
/// encoded the same way).
pub(crate) fn marking() -> bool {
    MARKING.with(|m| m.get().is_some())
}

/// A value encoded for superjson: its plain JSON (what a client without a transformer would
/// get) and the annotations of `meta.values`, if any value needs one.
#[derive(Debug, Clone)]
pub(crate) struct Annotated {
    pub(crate) json: Json,
    pub(crate) values: Option<Json>,
}

impl Annotated {
    /// `{"json":…}` or `{"json":…,"meta":{"values":…,"v":1}}`.
    pub(crate) fn envelope(&self) -> Json {
        enveloped(&self.json, self.values.as_ref())
    }
}

/// Serializes with `serialize` (which writes `value`'s JSON), marking on: returns the plain
/// JSON and its annotations. Panics in `serialize` leave this thread unmarked.
pub(crate) fn annotate<E>(
    serialize: impl FnOnce() -> Result<Json, E>,
) -> Result<Result<Annotated, serde_json::Error>, E> {
    struct Restore(Option<(u64, usize)>);
    impl Drop for Restore {
        fn drop(&mut self) {
            MARKING.with(|m| m.set(self.0));
        }
    }
    let nonce = NONCE.with(|n| *n);
    let restore = Restore(MARKING.with(|m| m.replace(Some((nonce, 0)))));
    let json = serialize();
    let markers = MARKING.with(|m| m.get().map_or(0, |(_, count)| count));
    drop(restore);
    let json = json?;
    if markers == 0 {
        return Ok(Ok(Annotated { json, values: None }));
    }
    Ok(resolve(&json, &prefix(nonce)))
}

/// Encodes `value` for superjson.
pub(crate) fn encode<T: serde::Serialize + ?Sized>(
    value: &T,
) -> Result<Annotated, serde_json::Error> {
    annotate(|| Json::write(value)).and_then(|annotated| annotated)
}

/// An annotation: its kind and, for containers, its children's (paths relative to it).
struct Node {
    kind: String,
    children: Vec<(Vec<String>, Node)>,
}

/// Replaces the markers of `json` by their plain JSON, collecting an annotation for each.
fn resolve(json: &Json, prefix: &str) -> Result<Annotated, serde_json::Error> {
    let mut value: Value = serde_json::from_str(json.get())?;
    let mut nodes = Vec::new();
    walk(&mut value, &mut Vec::new(), &mut nodes, prefix);
    let values = match nodes.as_slice() {
        [] => None,
        [(path, root)] if path.is_empty() => Some(tree(root)),
        _ => Some(Value::Object(
            nodes
                .iter()
                .map(|(path, node)| (stringify_path(path), tree(node)))
                .collect(),
        )),
    };
    Ok(Annotated {
        json: Json::write(&value)?,
        values: values.map(|v| Json::write(&v)).transpose()?,
    })
}

fn walk(
    value: &mut Value,
    path: &mut Vec<String>,
    out: &mut Vec<(Vec<String>, Node)>,
    prefix: &str,
) {
    match value {
        Value::String(s) => {
            if let Some((kind, plain)) = s.strip_prefix(prefix).and_then(|m| m.split_once(':')) {
                let node = Node {
                    kind: kind.to_owned(),
                    children: Vec::new(),
                };
                *value = match kind {
                    "undefined" => Value::Null,
                    _ => Value::String(plain.to_owned()),
                };
                out.push((path.clone(), node));
            }
        }
        Value::Object(map) => {
            let container = (map.len() == 1)
                .then(|| map.keys().next())
                .flatten()
                .and_then(|key| Some(key.strip_prefix(prefix)?.strip_suffix(':')?.to_owned()));
            if let Some(kind) = container {
                let mut inner = map.values_mut().next().map(Value::take).unwrap_or_default();
                let mut children = Vec::new();
                walk(&mut inner, &mut Vec::new(), &mut children, prefix);
                *value = inner;
                out.push((path.clone(), Node { kind, children }));
                return;
            }
            // A marker as an object key (a map keyed by a `Date` or a `BigInt`): keys cannot be
            // annotated, so the key is its plain text.
            let marked: Vec<String> = map
                .keys()
                .filter(|k| k.starts_with(prefix))
                .cloned()
                .collect();
            for key in marked {
                if let Some(child) = map.remove(&key) {
                    let plain = key[prefix.len()..]
                        .split_once(':')
                        .map_or("", |(_, plain)| plain)
                        .to_owned();
                    map.insert(plain, child);
                }
            }
            for (key, child) in map.iter_mut() {
                path.push(key.clone());
                walk(child, path, out, prefix);
                path.pop();
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter_mut().enumerate() {
                path.push(i.to_string());
                walk(child, path, out, prefix);
                path.pop();
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// `[kind]` or `[kind, {path: tree, …}]`.
fn tree(node: &Node) -> Value {
    let kind = Value::String(node.kind.clone());
    if node.children.is_empty() {
        return Value::Array(vec![kind]);
    }
    let children = node
        .children
        .iter()
        .map(|(path, child)| (stringify_path(path), tree(child)))
        .collect();
    Value::Array(vec![kind, Value::Object(children)])
}

/// superjson's dotted paths: `\` and `.` in a key are escaped with `\`.
fn stringify_path(path: &[String]) -> String {
    let mut out = String::new();
    for (i, segment) in path.iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        for c in segment.chars() {
            if matches!(c, '\\' | '.') {
                out.push('\\');
            }
            out.push(c);
        }
    }
    out
}

/// The inverse of [`stringify_path`]; `legacy` paths (before `v: 1`) escape dots only.
fn parse_path(text: &str, legacy: bool) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    let mut segment = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.clone().next() {
                Some(next @ '.') => {
                    segment.push(next);
                    chars.next();
                }
                Some('\\') if !legacy => {
                    segment.push('\\');
                    chars.next();
                }
                _ if legacy => segment.push('\\'),
                _ => {
                    return Err(Error::bad_request(format!(
                        "Invalid superjson path `{text}`: `\\` must escape `.` or `\\`"
                    )));
                }
            },
            '.' => out.push(std::mem::take(&mut segment)),
            c => segment.push(c),
        }
    }
    out.push(segment);
    Ok(out)
}

/// `{"json":…}` or `{"json":…,"meta":{"values":…,"v":1}}`.
pub(crate) fn envelope(json: &str, values: Option<&str>) -> String {
    let extra = values.map_or(0, |v| v.len() + 27);
    let mut out = String::with_capacity(json.len() + 9 + extra);
    out.push_str("{\"json\":");
    out.push_str(json);
    if let Some(values) = values {
        out.push_str(",\"meta\":{\"values\":");
        out.push_str(values);
        out.push_str(",\"v\":1}");
    }
    out.push('}');
    out
}

/// [`envelope`] around JSON this server wrote.
pub(crate) fn enveloped(json: &Json, values: Option<&Json>) -> Json {
    Json::assembled(envelope(json.get(), values.map(Json::get)))
}

/// An envelope taken apart: its JSON and its annotations.
#[derive(Debug, Deserialize)]
pub(crate) struct Split<'a> {
    #[serde(borrow)]
    pub(crate) json: Option<&'a RawValue>,
    #[serde(borrow, default)]
    meta: Option<SplitMeta<'a>>,
}

#[derive(Debug, Deserialize)]
struct SplitMeta<'a> {
    #[serde(borrow, default)]
    values: Option<&'a RawValue>,
}

impl<'a> Split<'a> {
    /// Reads an envelope this server wrote.
    pub(crate) fn of(envelope: &'a str) -> Self {
        serde_json::from_str(envelope).unwrap_or(Split {
            json: None,
            meta: None,
        })
    }

    /// The JSON text (`null` when there is none).
    pub(crate) fn json(&self) -> &'a str {
        self.json.map_or("null", RawValue::get)
    }

    /// The annotations, if any.
    pub(crate) fn values(&self) -> Option<&'a str> {
        self.meta.as_ref().and_then(|m| m.values).map(RawValue::get)
    }
}

/// Wraps a whole message (a JSONL line, a tracked WebSocket event) whose values sit at the
/// given paths (dotted, already escaped): `{"json":message,"meta":{"values":{…},"v":1}}`,
/// each value's annotations moved under its path.
pub(crate) fn wrap<'a>(
    message: &str,
    placed: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> String {
    let mut merged = Map::new();
    for (at, values) in placed {
        match serde_json::from_str::<Value>(values) {
            Ok(Value::Object(paths)) => {
                for (path, tree) in paths {
                    merged.insert(format!("{at}.{path}"), tree);
                }
            }
            Ok(root) => {
                merged.insert(at.to_owned(), root);
            }
            Err(_) => {}
        }
    }
    if merged.is_empty() {
        return envelope(message, None);
    }
    let values = serde_json::to_string(&Value::Object(merged)).ok();
    envelope(message, values.as_deref())
}

#[derive(Deserialize)]
struct IncomingMeta {
    #[serde(default)]
    values: Option<Value>,
    #[serde(default, rename = "referentialEqualities")]
    referential_equalities: Option<Value>,
    #[serde(default)]
    v: Option<u32>,
}

/// What to do with one annotation: its path and its kind (`"Date"`, `["class","Point"]`, …).
pub(crate) type Annotation<'f> = dyn FnMut(&[String], &Value) -> Result<(), Error> + 'f;

/// What to do with one shared reference: copy the value at the first path to the second,
/// saying how many values that copied.
pub(crate) type Reference<'f> = dyn FnMut(&[String], &[String]) -> Result<usize, Error> + 'f;

/// A superjson input taken apart: its JSON and what `meta` says about it.
pub(crate) struct Incoming<'a> {
    pub(crate) json: &'a RawValue,
    meta: Option<IncomingMeta>,
    /// The input's length: shared references may expand it only so far.
    len: usize,
}

impl<'a> Incoming<'a> {
    /// Reads `{json, meta}` as `superjson.serialize` writes it.
    pub(crate) fn read(input: &'a str) -> Result<Self, Error> {
        let not_an_envelope = || {
            Error::bad_request(
                "This server uses the superjson transformer: an input must be `{\"json\":…}` as superjson.serialize writes it (is `transformer: superjson` missing on the client's link?)",
            )
        };
        // A map keeps `"json":null` apart from a missing `json`.
        let fields: std::collections::HashMap<std::borrow::Cow<'_, str>, &RawValue> =
            serde_json::from_str(input).map_err(|_| not_an_envelope())?;
        let json = *fields.get("json").ok_or_else(not_an_envelope)?;
        let meta = match fields.get("meta") {
            None => None,
            Some(meta) => serde_json::from_str(meta.get())
                .map_err(|e| invalid_meta(&format!("`meta` is not superjson's ({e})")))?,
        };
        Ok(Incoming {
            json,
            meta,
            len: input.len(),
        })
    }

    /// Whether the JSON is all there is (no annotations, no shared references).
    fn is_plain(&self) -> bool {
        self.meta
            .as_ref()
            .is_none_or(|m| m.values.is_none() && m.referential_equalities.is_none())
    }

    /// Calls `apply(path, kind)` for each annotation of `meta.values`, children before their
    /// container (as superjson applies them).
    pub(crate) fn visit_values(&self, apply: &mut Annotation<'_>) -> Result<(), Error> {
        match self.meta.as_ref() {
            Some(IncomingMeta {
                values: Some(values),
                v,
                ..
            }) => visit_tree(values, &[], v.unwrap_or(0) < 1, apply),
            _ => Ok(()),
        }
    }

    /// Calls `copy(from, to)` for each shared reference (after [`Incoming::visit_values`], as
    /// superjson does); `copy` says how many JSON values it copied. JSON has no references, so
    /// each one becomes a copy: together they may make the input at most [`EXPANSION`] times
    /// larger (counted in values), or a small request could fill the memory.
    pub(crate) fn visit_equalities(&self, copy: &mut Reference<'_>) -> Result<(), Error> {
        let budget = self.len.saturating_mul(EXPANSION).max(1024);
        let mut copied = 0usize;
        let Some(meta) = &self.meta else {
            return Ok(());
        };
        let legacy = meta.v.unwrap_or(0) < 1;
        match &meta.referential_equalities {
            None => Ok(()),
            Some(Value::Object(map)) => {
                for (from, to) in map {
                    let from = parse_path(from, legacy)?;
                    let targets = to
                        .as_array()
                        .ok_or_else(|| invalid_meta("referential equalities must list paths"))?;
                    for target in targets {
                        let target = target
                            .as_str()
                            .ok_or_else(|| invalid_meta("a path must be a string"))?;
                        let target = parse_path(target, legacy)?;
                        if target.starts_with(&from) {
                            return Err(circular());
                        }
                        // Each reference costs at least one, found or not.
                        copied = copied.saturating_add(copy(&from, &target)?.max(1));
                        if copied > budget {
                            return Err(Error::new(
                                crate::error::ErrorCode::PayloadTooLarge,
                                format!(
                                    "The input's shared references would copy more than {budget} values (at most {EXPANSION} per byte of input)"
                                ),
                            ));
                        }
                    }
                }
                Ok(())
            }
            // `[rootPaths]` or `[rootPaths, {…}]`: the root inside itself is a cycle.
            Some(Value::Array(_)) => Err(circular()),
            Some(_) => Err(invalid_meta("`referentialEqualities` must be an object")),
        }
    }
}

/// How many times larger (in JSON values per input byte) shared references may make an input.
pub(crate) const EXPANSION: usize = 8;

/// A copy that would nest the input deeper than inputs may be.
pub(crate) fn too_deep_copy() -> Error {
    Error::bad_request(format!(
        "The input's shared references would nest it deeper than {} levels",
        crate::protocol::input::MAX_DEPTH
    ))
}

/// How many JSON values `value` holds, itself included.
fn count_values(value: &Value) -> usize {
    1 + match value {
        Value::Array(items) => items.iter().map(count_values).sum(),
        Value::Object(map) => map.values().map(count_values).sum(),
        _ => 0,
    }
}

fn circular() -> Error {
    Error::bad_request(
        "The input refers to itself (a circular structure), which JSON inputs cannot hold",
    )
}

/// Decodes a superjson input into the plain JSON procedures validate: annotations applied
/// (`undefined` removes an object key, or the whole input), shared references copied.
/// Values superjson can send but no Rust input type could take (`NaN`, `RegExp`, `Error`,
/// registered classes, …) are refused with `BAD_REQUEST`.
pub(crate) fn decode_input(input: &InputText) -> Result<RawInput, Error> {
    let incoming = Incoming::read(input.get())?;
    if incoming.is_plain() {
        return Ok(Some(input.slice(incoming.json.get())));
    }
    let mut root: Option<Value> =
        Some(serde_json::from_str(incoming.json.get()).map_err(Error::internal)?);
    incoming.visit_values(&mut |path, kind| apply_kind(&mut root, path, kind))?;
    incoming.visit_equalities(&mut |from, to| {
        // The target first: nothing is cloned for a reference that leads nowhere.
        if root.as_mut().and_then(|r| get_mut(r, to)).is_none() {
            return Ok(0);
        }
        let Some(value) = root.as_mut().and_then(|r| get_mut(r, from)) else {
            return Ok(0);
        };
        if to.len() + nesting(value) > crate::protocol::input::MAX_DEPTH {
            return Err(too_deep_copy());
        }
        let value = value.clone();
        let copied = count_values(&value);
        if let Some(slot) = root.as_mut().and_then(|r| get_mut(r, to)) {
            *slot = value;
        }
        Ok(copied)
    })?;
    root.map(|v| {
        serde_json::to_string(&v)
            .map(InputText::written)
            .map_err(Error::internal)
    })
    .transpose()
}

fn invalid_meta(what: &str) -> Error {
    Error::bad_request(format!("Invalid superjson meta: {what}"))
}

/// Visits a tree of `meta.values` at `origin`: children first, then the node.
fn visit_tree(
    tree: &Value,
    origin: &[String],
    legacy: bool,
    apply: &mut Annotation<'_>,
) -> Result<(), Error> {
    let subtrees = |children: &Map<String, Value>, apply: &mut Annotation<'_>| {
        for (key, child) in children {
            let mut path = origin.to_vec();
            path.extend(parse_path(key, legacy)?);
            visit_tree(child, &path, legacy, apply)?;
        }
        Ok::<_, Error>(())
    };
    match tree {
        Value::Object(children) => subtrees(children, apply),
        Value::Array(node) => {
            match node.get(1) {
                None => {}
                Some(Value::Object(children)) => subtrees(children, apply)?,
                Some(_) => return Err(invalid_meta("a node's children must be an object")),
            }
            let kind = node
                .first()
                .ok_or_else(|| invalid_meta("an empty annotation"))?;
            apply(origin, kind)
        }
        _ => Err(invalid_meta("`values` must be an array or an object")),
    }
}

/// Where an annotation sits, for messages.
pub(crate) fn describe_path(path: &[String]) -> String {
    if path.is_empty() {
        "the input".to_owned()
    } else {
        format!("`{}`", path.join("."))
    }
}

/// The error for an annotation no Rust input can take.
pub(crate) fn unsupported(path: &[String], kind: &Value) -> Error {
    match kind.as_str() {
        Some(kind) => Error::bad_request(format!(
            "{} is a superjson `{kind}`, which this server does not accept in inputs",
            describe_path(path)
        )),
        None => Error::bad_request(format!(
            "{} is a custom superjson type ({kind}), which this server does not accept in inputs",
            describe_path(path)
        )),
    }
}

/// The error for `NaN`, `Infinity` and `-Infinity`.
pub(crate) fn non_finite(path: &[String], value: &str) -> Error {
    Error::bad_request(format!(
        "{} is {value}, which the server's input types cannot hold",
        describe_path(path)
    ))
}

fn apply_kind(root: &mut Option<Value>, path: &[String], kind: &Value) -> Result<(), Error> {
    match kind.as_str() {
        // The JSON already holds what the Rust types read: ISO date strings, decimal digit
        // strings, arrays for sets, arrays of pairs for maps.
        Some("Date" | "bigint" | "set" | "map") => Ok(()),
        Some("undefined") => {
            match path.split_last() {
                None => *root = None,
                Some((last, parent)) => {
                    if let Some(Value::Object(map)) = root.as_mut().and_then(|r| get_mut(r, parent))
                    {
                        map.remove(last);
                    }
                }
            }
            Ok(())
        }
        Some("number") => {
            let Some(v) = root.as_mut().and_then(|r| get_mut(r, path)) else {
                return Ok(());
            };
            match v.as_str() {
                Some("-0") => {
                    *v = Value::from(-0.0_f64);
                    Ok(())
                }
                Some(special) => Err(non_finite(path, special)),
                None => Ok(()),
            }
        }
        _ => Err(unsupported(path, kind)),
    }
}

fn get_mut<'v>(value: &'v mut Value, path: &[String]) -> Option<&'v mut Value> {
    path.iter().try_fold(value, |v, segment| match v {
        Value::Object(map) => map.get_mut(segment),
        Value::Array(items) => items.get_mut(array_index(segment)?),
        _ => None,
    })
}

/// A path segment as an array index, written as JavaScript writes one (`"00"` or `"+0"` is
/// another property of an array there, not element 0): paths compare as text only then.
pub(crate) fn array_index(segment: &str) -> Option<usize> {
    let canonical = !segment.is_empty()
        && segment.bytes().all(|b| b.is_ascii_digit())
        && (segment == "0" || !segment.starts_with('0'));
    canonical.then(|| segment.parse().ok()).flatten()
}

/// How deeply `value` nests arrays and objects (a scalar: 0).
fn nesting(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(nesting).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(nesting).max().unwrap_or(0),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(text: &str) -> Result<Option<String>, Error> {
        decode_input(&InputText::written(text.to_owned())).map(|v| v.map(|v| v.get().to_owned()))
    }

    #[test]
    fn inputs_decode_as_superjson_writes_them() {
        // Captured from superjson 2.2.6 (spec §4.1).
        assert_eq!(input(UNDEFINED).expect("ok"), None);
        assert_eq!(
            input(r#"{"json":null}"#).expect("ok").as_deref(),
            Some("null")
        );
        assert_eq!(
            input(r#"{"json":{"name":"bob"}}"#).expect("ok").as_deref(),
            Some(r#"{"name":"bob"}"#)
        );
        assert_eq!(
            input(r#"{"json":{"a":null,"b":1},"meta":{"values":{"a":["undefined"]},"v":1}}"#)
                .expect("ok")
                .as_deref(),
            Some(r#"{"b":1}"#)
        );
        assert_eq!(
            input(r#"{"json":{"m":[["k","1970-01-01T00:00:00.000Z"]],"big":"5","z":"-0"},"meta":{"values":{"m":["map",{"0.1":["Date"]}],"big":["bigint"],"z":["number"]},"v":1}}"#)
                .expect("ok")
                .as_deref(),
            Some(r#"{"big":"5","m":[["k","1970-01-01T00:00:00.000Z"]],"z":-0.0}"#)
        );
        // Shared references are copies in JSON.
        assert_eq!(
            input(r#"{"json":{"p":{"x":1},"q":null},"meta":{"referentialEqualities":{"p":["q"]},"v":1}}"#)
                .expect("ok")
                .as_deref(),
            Some(r#"{"p":{"x":1},"q":{"x":1}}"#)
        );
        // Escaped dots in keys.
        assert_eq!(
            input(r#"{"json":{"a.b":null},"meta":{"values":{"a\\.b":["undefined"]},"v":1}}"#)
                .expect("ok")
                .as_deref(),
            Some("{}")
        );
    }

    #[test]
    fn inputs_superjson_cannot_map_are_refused() {
        for (text, wanted) in [
            (r#"{"name":"bob"}"#, "transformer: superjson"),
            (r#""x""#, "transformer: superjson"),
            (
                r#"{"json":{"n":"NaN"},"meta":{"values":{"n":["number"]},"v":1}}"#,
                "`n` is NaN",
            ),
            (
                r#"{"json":{"r":"/a+/g"},"meta":{"values":{"r":["regexp"]},"v":1}}"#,
                "superjson `regexp`",
            ),
            (
                r#"{"json":{"c":{}},"meta":{"values":{"c":[["class","Point"]]},"v":1}}"#,
                "custom superjson type",
            ),
            (
                r#"{"json":{"a":{"self":null}},"meta":{"referentialEqualities":{"a":["a.self"]},"v":1}}"#,
                "circular",
            ),
            (
                r#"{"json":1,"meta":{"values":5,"v":1}}"#,
                "Invalid superjson meta",
            ),
        ] {
            let e = input(text).expect_err(text);
            assert_eq!(e.code(), crate::ErrorCode::BadRequest, "{text}");
            assert!(e.message().contains(wanted), "{text}: {}", e.message());
        }
    }

    #[test]
    fn shared_references_cannot_blow_up_an_input() {
        // One small array referenced 200 times: 200 copies of 1,000 values from a request of
        // ~6 KB. superjson makes these references; JSON needs copies.
        let targets: Vec<String> = (0..200).map(|i| format!("\"r{i}\"")).collect();
        let nulls: Vec<String> = (0..200).map(|i| format!("\"r{i}\":null")).collect();
        let text = format!(
            r#"{{"json":{{"big":[{}],{}}},"meta":{{"referentialEqualities":{{"big":[{}]}},"v":1}}}}"#,
            vec!["0"; 1000].join(","),
            nulls.join(","),
            targets.join(",")
        );
        let e = input(&text).expect_err("refused");
        assert_eq!(e.code(), crate::ErrorCode::PayloadTooLarge);
        assert!(e.message().contains("shared references"), "{}", e.message());
    }

    #[test]
    fn shared_references_cannot_nest_or_spin() {
        // "00" is not element 0 of an array (JavaScript reads it as another property), so
        // the reference leads nowhere instead of copying element 0 into itself.
        let sneaky = r#"{"json":[[null]],"meta":{"referentialEqualities":{"0":["00.0"]},"v":1}}"#;
        assert_eq!(input(sneaky).expect("ok").as_deref(), Some("[[null]]"));
        // Copies may not nest the input past the depth limit.
        let deep = format!("{}1{}", "[".repeat(100), "]".repeat(100));
        let text = format!(
            r#"{{"json":{{"a":{deep},"b":null}},"meta":{{"referentialEqualities":{{"a":["b"]}},"v":1}}}}"#
        );
        assert!(input(&text).is_ok(), "101 levels are fine");
        let path = std::iter::once("b".to_owned())
            .chain(std::iter::repeat_n("0".to_owned(), 40))
            .collect::<Vec<_>>()
            .join(".");
        let nested = format!("{}null{}", "[".repeat(40), "]".repeat(40));
        let text = format!(
            r#"{{"json":{{"a":{deep},"b":{nested}}},"meta":{{"referentialEqualities":{{"a":["{path}"]}},"v":1}}}}"#
        );
        let e = input(&text).expect_err("too deep");
        assert!(e.message().contains("deeper than"), "{}", e.message());
        // References to nowhere cost without cloning anything, and are bounded in number by
        // the input's own length.
        let many: Vec<&str> = vec!["\"x\""; 2000];
        let text = format!(
            r#"{{"json":{{"big":[{}]}},"meta":{{"referentialEqualities":{{"big":[{}]}},"v":1}}}}"#,
            ["0"; 10].join(","),
            many.join(",")
        );
        assert!(input(&text).is_ok());
    }

    #[test]
    fn paths_escape_like_superjson() {
        let path = vec!["a.b".to_owned(), "c\\d".to_owned(), "0".to_owned()];
        let text = stringify_path(&path);
        assert_eq!(text, r"a\.b.c\\d.0");
        assert_eq!(parse_path(&text, false).expect("path"), path);
        assert_eq!(
            parse_path(r"a\.b.c\d", true).expect("legacy"),
            ["a.b", r"c\d"]
        );
        assert!(parse_path(r"a\b", false).is_err());
    }

    #[test]
    fn messages_carry_their_values_annotations_at_their_paths() {
        let root = r#"["Date"]"#;
        let nested = r#"{"at":["Date"],"m":["map",{"0.1":["bigint"]}]}"#;
        assert_eq!(
            wrap("[1,0,[[5]]]", [("2.0.0", root)]),
            r#"{"json":[1,0,[[5]]],"meta":{"values":{"2.0.0":["Date"]},"v":1}}"#
        );
        assert_eq!(
            wrap("{}", [("data", nested)]),
            r#"{"json":{},"meta":{"values":{"data.at":["Date"],"data.m":["map",{"0.1":["bigint"]}]},"v":1}}"#
        );
        assert_eq!(wrap("[0]", []), r#"{"json":[0]}"#);
        let split = Split::of(UNDEFINED);
        assert_eq!(split.json(), "null");
        assert_eq!(split.values(), Some(r#"["undefined"]"#));
    }
}
