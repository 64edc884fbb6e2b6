//! ts-rs and schemars read the same serde attributes, but not always the same way (ts-rs
//! ignores some it cannot express, such as `#[serde(transparent)]` on a struct with a named
//! field). Before emitting a declaration, compare it with the JSON Schema of the same type and
//! refuse to emit a lie.
//!
//! The comparison is deliberately shallow: the shape of each declared type (object or not) and,
//! for objects, its keys and which of them may be absent. Unions and generic declarations are
//! left to the cross-check test corpus.

use serde_json::Value;

use oxrpc::types::TsDeclaration;

/// Which way a type crosses the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Sent by clients: the TS type must not admit what the server rejects.
    Input,
    /// Sent by the server: the TS type must admit what the server sends.
    Output,
}

/// The top-level keys of a TS object literal type, with whether each is optional; `None` if
/// the type is not a plain object literal.
fn ts_object_keys(rhs: &str) -> Option<Vec<(String, bool)>> {
    let body = strip_comments(rhs);
    let body = body.trim().strip_suffix(';').unwrap_or(body.trim()).trim();
    let inner = body.strip_prefix('{')?.strip_suffix('}')?;
    let mut keys = Vec::new();
    let mut depth = 0i32;
    let mut current = String::new();
    let mut in_string = false;
    for c in inner.chars() {
        match c {
            '"' => in_string = !in_string,
            '{' | '[' | '(' | '<' if !in_string => depth += 1,
            '}' | ']' | ')' | '>' if !in_string => depth -= 1,
            _ => {}
        }
        if depth < 0 {
            // `{ … } | { … }`: not one object literal.
            return None;
        }
        if c == ',' && depth == 0 && !in_string {
            keys.extend(key_of(&current));
            current.clear();
        } else {
            current.push(c);
        }
    }
    keys.extend(key_of(&current));
    Some(keys)
}

fn key_of(member: &str) -> Option<(String, bool)> {
    let member = member.trim();
    if member.is_empty() {
        return None;
    }
    let colon = member.find(':')?;
    let mut key = member[..colon].trim();
    let optional = key.ends_with('?');
    key = key.trim_end_matches('?').trim();
    Some((key.trim_matches('"').to_owned(), optional))
}

fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("/*") {
        out.push_str(&rest[..start]);
        match rest[start..].find("*/") {
            Some(end) => rest = &rest[start + end + 2..],
            None => return out,
        }
    }
    out.push_str(rest);
    out
}

/// `export type User = { … };` → (`User`, `{ … };`), skipping generic declarations.
fn split_declaration(code: &str) -> Option<(&str, &str)> {
    let code = code[code.find("export type ")?..].strip_prefix("export type ")?;
    let (name, rhs) = code.split_once('=')?;
    let name = name.trim();
    if name.contains('<') {
        return None;
    }
    Some((name, rhs))
}

/// The schema of `name` in a root schema: the root itself or one of its `$defs`.
fn schema_of<'a>(root: &'a Value, root_ident: &str, name: &str) -> Option<&'a Value> {
    if name == root_ident {
        return Some(root);
    }
    root.get("$defs")?.get(name)
}

fn deref<'a>(root: &'a Value, schema: &'a Value) -> &'a Value {
    match schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix('#'))
    {
        Some(pointer) if schema.as_object().is_some_and(|o| o.len() == 1) => {
            root.pointer(pointer).unwrap_or(schema)
        }
        _ => schema,
    }
}

/// Compares each declaration with the schema; returns what disagrees, in words.
pub(crate) fn check(
    root: &Value,
    root_ident: &str,
    declarations: &[TsDeclaration],
    role: Role,
) -> Vec<String> {
    let mut problems = Vec::new();
    for decl in declarations {
        let Some((name, rhs)) = split_declaration(&decl.code) else {
            continue;
        };
        let Some(schema) = schema_of(root, root_ident, name).map(|s| deref(root, s)) else {
            continue;
        };
        let Some(props) = schema.get("properties").and_then(Value::as_object) else {
            // The schema is not an object: the TS side must not be one either.
            let schema_is_object = schema.get("type").and_then(Value::as_str) == Some("object");
            if !schema_is_object && schema.get("type").is_some() && ts_object_keys(rhs).is_some() {
                problems.push(format!(
                    "`{}`: TypeScript declares an object, but serde sends {} (an attribute ts-rs ignores, such as \
                     `#[serde(transparent)]`, changes the shape)",
                    decl.rust_name,
                    schema.get("type").map_or_else(String::new, Value::to_string),
                ));
            }
            continue;
        };
        let Some(ts_keys) = ts_object_keys(rhs) else {
            continue;
        };
        if schema
            .get("additionalProperties")
            .is_some_and(|a| a != &Value::Bool(false))
        {
            // A map-like or flattened-map object: keys are open.
            continue;
        }
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        for key in props.keys() {
            if !ts_keys.iter().any(|(k, _)| k == key) {
                problems.push(format!(
                    "`{}`: field `{key}` is on the wire but missing from the TypeScript type",
                    decl.rust_name
                ));
            }
        }
        for (key, optional) in &ts_keys {
            if !props.contains_key(key) {
                problems.push(format!(
                    "`{}`: TypeScript has a field `{key}` that serde never uses",
                    decl.rust_name
                ));
                continue;
            }
            let is_required = required.contains(&key.as_str());
            match role {
                Role::Output if !optional && !is_required => problems.push(format!(
                    "`{}`: field `{key}` may be left out of the output (e.g. `skip_serializing_if`), but TypeScript \
                     says it is always present: add `#[ts(optional)]` to it",
                    decl.rust_name
                )),
                Role::Input if *optional && is_required => problems.push(format!(
                    "`{}`: TypeScript lets clients leave out `{key}`, but the server requires it: add \
                     `#[serde(default)]` or remove `#[ts(optional)]`",
                    decl.rust_name
                )),
                _ => {}
            }
        }
    }
    problems
}

/// The top-level property names of every object an object-or-union-of-objects schema admits;
/// `None` if some branch is not an object.
fn object_keys(root: &Value, schema: &Value, keys: &mut Vec<String>) -> Option<()> {
    let schema = deref(root, schema);
    if let Some(branches) = schema
        .get("oneOf")
        .or_else(|| schema.get("anyOf"))
        .and_then(Value::as_array)
    {
        for branch in branches {
            object_keys(root, branch, keys)?;
        }
        return Some(());
    }
    let props = schema.get("properties").and_then(Value::as_object);
    let is_object = schema.get("type").and_then(Value::as_str) == Some("object");
    if props.is_none() && !is_object {
        return None;
    }
    keys.extend(props.into_iter().flat_map(|p| p.keys().cloned()));
    Some(())
}

/// The fields `error.data` already has, and whose they are: oxrpc's own (read from the
/// schema of the wire `ErrorData`, so the list cannot drift from what the runtime sends) and
/// the root error formatter's.
pub(crate) fn error_data_keys(
    wire: &oxrpc::types::TypeInfo,
    formatter: Option<&oxrpc::types::TypeInfo>,
) -> Vec<(String, &'static str)> {
    let mut taken = Vec::new();
    for (info, owner) in [
        (Some(wire), "oxrpc's own"),
        (formatter, "the error formatter's"),
    ] {
        let Some(schema) = info.map(|i| i.json_schema().to_value()) else {
            continue;
        };
        let mut keys = Vec::new();
        let _ = object_keys(&schema, &schema, &mut keys);
        taken.extend(keys.into_iter().map(|k| (k, owner)));
    }
    taken
}

/// A procedure's typed error type must serialize to an object, and its fields must not clash
/// with the fields `error.data` already has ([`error_data_keys`]).
pub(crate) fn typed_error_problems(
    path: &str,
    error: &oxrpc::types::TypeInfo,
    taken: &[(String, &'static str)],
) -> Vec<String> {
    let name = error.rust_name();
    let schema = error.json_schema().to_value();
    let mut keys = Vec::new();
    if object_keys(&schema, &schema, &mut keys).is_none() {
        return vec![format!(
            "`{name}` (the error type of `{path}`): a TypedError must serialize to a JSON object: a struct, or an \
             enum with `#[serde(tag = \"kind\")]`"
        )];
    }
    let mut problems = Vec::new();
    for key in keys {
        if let Some((_, owner)) = taken.iter().find(|(k, _)| *k == key) {
            let problem = format!(
                "`{name}` (the error type of `{path}`): field `{key}` clashes with {owner} `error.data.{key}`; rename it"
            );
            if !problems.contains(&problem) {
                problems.push(problem);
            }
        }
    }
    problems
}

/// The JavaScript values of `oxrpc::js` a schema holds (`Date`, `bigint`, `set`, `map`),
/// each once, read from the extension their schemas carry.
pub(crate) fn js_values(schema: &Value) -> Vec<String> {
    fn walk(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(kind)) = map.get(oxrpc::js::SCHEMA_EXTENSION)
                    && !out.contains(kind)
                {
                    out.push(kind.clone());
                }
                map.values().for_each(|v| walk(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(schema, &mut out);
    out
}

/// What the JavaScript values of a type would do on the wire: `Date` travels as an ISO string
/// without the transformer (which the client's types say), `bigint`, `Set` and `Map` need
/// superjson; error data travels without annotations, so it holds none of them.
pub(crate) fn js_value_problems(
    info: &oxrpc::types::TypeInfo,
    in_error: bool,
    superjson: bool,
) -> Vec<String> {
    let name = info.rust_name();
    js_values(&info.json_schema().to_value())
        .into_iter()
        .filter_map(|kind| {
            let rust = match kind.as_str() {
                "Date" => "Date",
                "bigint" => "BigInt",
                "set" => "Set",
                _ => "Map",
            };
            if in_error {
                Some(format!(
                    "`{name}` holds an `oxrpc::js::{rust}`, which error data cannot carry (the client would \
                     receive plain JSON); use a plain type in errors"
                ))
            } else if !superjson && kind != "Date" {
                Some(format!(
                    "`{name}` holds an `oxrpc::js::{rust}`, which only the superjson transformer carries: \
                     call `.superjson()` on the root router (and give the client's links \
                     `transformer: superjson`)"
                ))
            } else {
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_object_literals() {
        assert_eq!(
            ts_object_keys(
                r#"{ /** doc, with comma */ a: number, "b c"?: Array<{ x: string, y: number }>, };"#
            ),
            Some(vec![("a".to_owned(), false), ("b c".to_owned(), true)])
        );
        assert_eq!(
            ts_object_keys(r#"{ "kind": "a" } | { "kind": "b" };"#),
            None
        );
        assert_eq!(ts_object_keys("number;"), None);
    }
}
