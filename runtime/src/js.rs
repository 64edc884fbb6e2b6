//! JavaScript values that plain JSON cannot carry — [`Date`], [`BigInt`], [`Set`], [`Map`] —
//! for routers with the superjson transformer ([`crate::Router::superjson`]). In the generated
//! `.d.ts` they are `Date`, `bigint`, `Set<T>` and `Map<K, V>`, and with the transformer the
//! client receives and sends exactly those.
//!
//! Without the transformer, `Date` still works (it travels as an ISO 8601 string, which the
//! client's types say for outputs too); `BigInt`, `Set` and `Map` would arrive as something
//! else than their type says, so code generation refuses them there.
//!
//! ```
//! use oxrpc::js::{BigInt, Date, Set};
//!
//! #[derive(serde::Serialize, serde::Deserialize, ts_rs::TS, schemars::JsonSchema)]
//! pub struct Event {
//!     /// `Date` on the client.
//!     pub at: Date,
//!     /// `bigint` on the client: all 64 bits survive.
//!     pub id: BigInt<u64>,
//!     /// `Set<string>` on the client.
//!     pub tags: Set<String>,
//! }
//! ```

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::str::FromStr;
use std::time::SystemTime;

use chrono::{DateTime, SecondsFormat, Utc};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::de::{self, Deserializer};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

use crate::protocol::superjson::marker;

/// The JSON Schema extension naming the JavaScript value a schema stands for; code
/// generation reads it.
pub const SCHEMA_EXTENSION: &str = "x-oxrpc-js";

/// `TS` for a type the client knows by a built-in name (`Date`, `bigint`, `unknown`).
macro_rules! ts_named {
    ([$($g:ident)?] $ty:ty => $without:ty, $name:literal) => {
        impl$(<$g>)? ts_rs::TS for $ty {
            type WithoutGenerics = $without;
            type OptionInnerType = Self;

            fn ident(_: &ts_rs::Config) -> String {
                $name.to_owned()
            }

            fn name(_: &ts_rs::Config) -> String {
                $name.to_owned()
            }

            fn inline(_: &ts_rs::Config) -> String {
                $name.to_owned()
            }
        }
    };
}

fn extended(mut schema: Schema, kind: &str) -> Schema {
    schema.insert(SCHEMA_EXTENSION.to_owned(), kind.into());
    schema
}

/// `value` as `superjson.serialize` writes it — `{"json":…,"meta":{"values":…,"v":1}}` — as
/// JSON text, e.g. to hand a value to a client outside a call (a page's initial state that
/// the client reads with `superjson.parse`).
///
/// ```
/// use oxrpc::js::{to_superjson, Date};
/// let text = to_superjson(&Date::from_millis(0).expect("in range")).expect("encodes");
/// assert_eq!(text, r#"{"json":"1970-01-01T00:00:00.000Z","meta":{"values":["Date"],"v":1}}"#);
/// ```
pub fn to_superjson<T: Serialize + ?Sized>(value: &T) -> Result<String, crate::Error> {
    crate::protocol::superjson::encode(value)
        .map(|annotated| annotated.envelope().get().to_owned())
        .map_err(crate::Error::internal)
}

/// Reads what `superjson.stringify` wrote (the inverse of [`to_superjson`]). Values no Rust
/// type can hold (`NaN`, `RegExp`, registered classes, circular structures) are errors.
///
/// ```
/// use oxrpc::js::{from_superjson, Set};
/// let tags: Set<String> =
///     from_superjson(r#"{"json":["a","b"],"meta":{"values":["set"],"v":1}}"#).expect("decodes");
/// assert!(tags.contains("a"));
/// ```
pub fn from_superjson<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, crate::Error> {
    let raw = serde_json::from_str::<&serde_json::value::RawValue>(text)
        .map_err(|e| crate::Error::bad_request(format!("Not JSON: {e}")))?;
    let raw = crate::call::InputText::written(raw.get().to_owned());
    let json = crate::protocol::superjson::decode_input(&raw)?;
    let json = json.as_ref().map_or("null", crate::call::InputText::get);
    serde_json::from_str(json).map_err(|e| crate::Error::bad_request(e.to_string()))
}

/// A point in time: a JavaScript `Date` on the client.
///
/// On the wire it is an ISO 8601 string with milliseconds (`2024-01-02T03:04:05.000Z`, what
/// `Date.prototype.toISOString` writes), annotated as a `Date` with the superjson transformer.
/// A JavaScript `Date` counts milliseconds, so finer precision does not reach the client.
///
/// ```
/// use oxrpc::js::Date;
/// let d = Date::from_millis(0).expect("in range");
/// assert_eq!(d.to_string(), "1970-01-01T00:00:00.000Z");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date(pub DateTime<Utc>);

impl Date {
    /// The current time.
    pub fn now() -> Self {
        Date(Utc::now())
    }

    /// Milliseconds since the Unix epoch (JavaScript's `getTime()`); `None` out of range.
    pub fn from_millis(millis: i64) -> Option<Self> {
        DateTime::from_timestamp_millis(millis).map(Date)
    }

    /// Milliseconds since the Unix epoch, as the client sees them.
    pub fn millis(&self) -> i64 {
        self.0.timestamp_millis()
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_rfc3339_opts(SecondsFormat::Millis, true))
    }
}

impl Deref for Date {
    type Target = DateTime<Utc>;
    fn deref(&self) -> &DateTime<Utc> {
        &self.0
    }
}

impl From<DateTime<Utc>> for Date {
    fn from(value: DateTime<Utc>) -> Self {
        Date(value)
    }
}

impl From<Date> for DateTime<Utc> {
    fn from(value: Date) -> Self {
        value.0
    }
}

impl From<SystemTime> for Date {
    fn from(value: SystemTime) -> Self {
        Date(value.into())
    }
}

impl From<Date> for SystemTime {
    fn from(value: Date) -> Self {
        value.0.into()
    }
}

impl Serialize for Date {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match marker("Date") {
            Some(marker) => serializer.serialize_str(&format!("{marker}{self}")),
            None => serializer.collect_str(self),
        }
    }
}

impl<'de> Deserialize<'de> for Date {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = Cow::<str>::deserialize(deserializer)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|d| Date(d.with_timezone(&Utc)))
            .map_err(|e| {
                de::Error::custom(format_args!(
                    "expected an ISO 8601 date-time such as 2024-01-02T03:04:05.000Z ({e})"
                ))
            })
    }
}

impl JsonSchema for Date {
    fn schema_name() -> Cow<'static, str> {
        "Date".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        extended(
            schemars::json_schema!({ "type": "string", "format": "date-time" }),
            "Date",
        )
    }

    fn inline_schema() -> bool {
        true
    }
}

ts_named!([] Date => Date, "Date");

/// An integer the client receives as a JavaScript `bigint` (needs the superjson transformer),
/// so no digit is lost to `number`'s 53 bits. `T` is any integer type (`i64`, `u64`, `i128`,
/// `u128`, …). On the wire: its decimal digits as a string, annotated as a `bigint`.
///
/// ```
/// use oxrpc::js::BigInt;
/// let id = BigInt(u64::MAX);
/// assert_eq!(serde_json::to_string(&id).unwrap(), "\"18446744073709551615\"");
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BigInt<T = i64>(pub T);

impl<T> Deref for BigInt<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> DerefMut for BigInt<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

impl<T> From<T> for BigInt<T> {
    fn from(value: T) -> Self {
        BigInt(value)
    }
}

impl<T: fmt::Display> Serialize for BigInt<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match marker("bigint") {
            Some(marker) => serializer.serialize_str(&format!("{marker}{}", self.0)),
            None => serializer.collect_str(&self.0),
        }
    }
}

impl<'de, T: FromStr<Err: fmt::Display>> Deserialize<'de> for BigInt<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Digits<T>(std::marker::PhantomData<T>);
        impl<T: FromStr<Err: fmt::Display>> de::Visitor<'_> for Digits<T> {
            type Value = BigInt<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer as a string of decimal digits")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                v.parse()
                    .map(BigInt)
                    .map_err(|e| E::custom(format_args!("{v:?} is not a fitting integer: {e}")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                self.visit_str(&v.to_string())
            }
        }
        deserializer.deserialize_any(Digits(std::marker::PhantomData))
    }
}

impl<T> JsonSchema for BigInt<T> {
    fn schema_name() -> Cow<'static, str> {
        "BigInt".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        extended(
            schemars::json_schema!({ "type": "string", "pattern": "^-?[0-9]+$" }),
            "bigint",
        )
    }

    fn inline_schema() -> bool {
        true
    }
}

ts_named!([T] BigInt<T> => BigInt<ts_rs::Dummy>, "bigint");

/// A set the client receives and sends as a JavaScript `Set<T>` (needs the superjson
/// transformer). On the wire: an array, annotated as a `set`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Set<T>(pub BTreeSet<T>);

/// A map the client receives and sends as a JavaScript `Map<K, V>` (needs the superjson
/// transformer): any key type, insertion order kept by the client. On the wire: an array of
/// `[key, value]` pairs, annotated as a `map`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Map<K, V>(pub BTreeMap<K, V>);

macro_rules! collection {
    ($name:ident<$($p:ident),+>, $inner:ty, $item:ty) => {
        impl<$($p),+> Default for $name<$($p),+> {
            fn default() -> Self {
                $name(Default::default())
            }
        }

        impl<$($p),+> Deref for $name<$($p),+> {
            type Target = $inner;
            fn deref(&self) -> &$inner {
                &self.0
            }
        }

        impl<$($p),+> DerefMut for $name<$($p),+> {
            fn deref_mut(&mut self) -> &mut $inner {
                &mut self.0
            }
        }

        impl<$($p),+> From<$inner> for $name<$($p),+> {
            fn from(value: $inner) -> Self {
                $name(value)
            }
        }

        impl<$($p: Ord),+> FromIterator<$item> for $name<$($p),+> {
            fn from_iter<I: IntoIterator<Item = $item>>(iter: I) -> Self {
                $name(iter.into_iter().collect())
            }
        }

        impl<$($p),+> IntoIterator for $name<$($p),+> {
            type Item = $item;
            type IntoIter = <$inner as IntoIterator>::IntoIter;
            fn into_iter(self) -> Self::IntoIter {
                self.0.into_iter()
            }
        }
    };
}

collection!(Set<T>, BTreeSet<T>, T);
collection!(Map<K, V>, BTreeMap<K, V>, (K, V));

/// Writes `inner` as the only value of an object keyed by `marker` (a container annotation),
/// or plainly.
fn contained<S: Serializer, I: Serialize + ?Sized>(
    serializer: S,
    kind: &str,
    inner: &I,
) -> Result<S::Ok, S::Error> {
    match marker(kind) {
        Some(marker) => {
            let mut map = serializer.serialize_map(Some(1))?;
            map.serialize_entry(&marker, inner)?;
            map.end()
        }
        None => inner.serialize(serializer),
    }
}

impl<T: Serialize> Serialize for Set<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        contained(serializer, "set", &self.0)
    }
}

impl<'de, T: Deserialize<'de> + Ord> Deserialize<'de> for Set<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        BTreeSet::deserialize(deserializer).map(Set)
    }
}

/// A map's entries as `[key, value]` pairs.
struct Pairs<'a, K, V>(&'a BTreeMap<K, V>);

impl<K: Serialize, V: Serialize> Serialize for Pairs<'_, K, V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter())
    }
}

impl<K: Serialize, V: Serialize> Serialize for Map<K, V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        contained(serializer, "map", &Pairs(&self.0))
    }
}

impl<'de, K: Deserialize<'de> + Ord, V: Deserialize<'de>> Deserialize<'de> for Map<K, V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::<(K, V)>::deserialize(deserializer).map(|pairs| Map(pairs.into_iter().collect()))
    }
}

impl<T: JsonSchema> JsonSchema for Set<T> {
    fn schema_name() -> Cow<'static, str> {
        format!("Set_of_{}", T::schema_name()).into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let mut schema = <Vec<T>>::json_schema(generator);
        schema.insert("uniqueItems".to_owned(), true.into());
        extended(schema, "set")
    }

    fn inline_schema() -> bool {
        true
    }
}

impl<K: JsonSchema, V: JsonSchema> JsonSchema for Map<K, V> {
    fn schema_name() -> Cow<'static, str> {
        format!("Map_of_{}_and_{}", K::schema_name(), V::schema_name()).into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        extended(<Vec<(K, V)>>::json_schema(generator), "map")
    }

    fn inline_schema() -> bool {
        true
    }
}

crate::deferred::ts_as!(Set, "Set<{}>");

impl<K: ts_rs::TS, V: ts_rs::TS> ts_rs::TS for Map<K, V> {
    type WithoutGenerics = Map<ts_rs::Dummy, ts_rs::Dummy>;
    type OptionInnerType = Self;

    fn name(cfg: &ts_rs::Config) -> String {
        format!("Map<{}, {}>", K::name(cfg), V::name(cfg))
    }

    fn inline(cfg: &ts_rs::Config) -> String {
        format!("Map<{}, {}>", K::inline(cfg), V::inline(cfg))
    }

    fn visit_dependencies(v: &mut impl ts_rs::TypeVisitor)
    where
        Self: 'static,
    {
        K::visit_dependencies(v);
        V::visit_dependencies(v);
    }

    fn visit_generics(v: &mut impl ts_rs::TypeVisitor)
    where
        Self: 'static,
    {
        K::visit_generics(v);
        v.visit::<K>();
        V::visit_generics(v);
        v.visit::<V>();
    }
}

/// Any value the client can send or receive through superjson: JSON's values plus `Date`,
/// `bigint`, `Set`, `Map` and `undefined`. `unknown` in TypeScript.
///
/// As a procedure's whole input (`Value` or `Option<Value>`), it holds what the client sent,
/// each value as itself (with the superjson transformer; without it, plain JSON). As an output,
/// or part of one, each value goes back as itself. Build objects from JSON with
/// `Value::from(serde_json::json!(…))`.
///
/// An object key whose value is `undefined` is absent on the Rust side (as `JSON.stringify`
/// leaves it out): give a `Value` field `#[serde(default)]` to read it as
/// [`Value::Undefined`].
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Value {
    /// `undefined` (sent as `null` without the transformer).
    #[default]
    Undefined,
    /// `null`.
    Null,
    /// A boolean.
    Bool(bool),
    /// A number.
    Number(serde_json::Number),
    /// A string.
    String(String),
    /// An array.
    Array(Vec<Value>),
    /// An object.
    Object(BTreeMap<String, Value>),
    /// A `Date`.
    Date(Date),
    /// A `bigint`, as its decimal digits (JavaScript's have no size limit).
    BigInt(String),
    /// A `Set`, in its order.
    Set(Vec<Value>),
    /// A `Map`: its entries in their order.
    Map(Vec<(Value, Value)>),
}

impl From<serde_json::Value> for Value {
    fn from(value: serde_json::Value) -> Self {
        match value {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(b),
            serde_json::Value::Number(n) => Value::Number(n),
            serde_json::Value::String(s) => Value::String(s),
            serde_json::Value::Array(items) => {
                Value::Array(items.into_iter().map(Value::from).collect())
            }
            serde_json::Value::Object(map) => {
                Value::Object(map.into_iter().map(|(k, v)| (k, Value::from(v))).collect())
            }
        }
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Undefined => match marker("undefined") {
                Some(marker) => serializer.serialize_str(&marker),
                None => serializer.serialize_unit(),
            },
            Value::Null => serializer.serialize_unit(),
            Value::Bool(b) => serializer.serialize_bool(*b),
            Value::Number(n) => n.serialize(serializer),
            Value::String(s) => serializer.serialize_str(s),
            Value::Array(items) => items.serialize(serializer),
            Value::Object(map) => map.serialize(serializer),
            Value::Date(date) => date.serialize(serializer),
            Value::BigInt(digits) => match marker("bigint") {
                Some(marker) => serializer.serialize_str(&format!("{marker}{digits}")),
                None => serializer.serialize_str(digits),
            },
            Value::Set(items) => contained(serializer, "set", items),
            Value::Map(entries) => contained(serializer, "map", entries),
        }
    }
}

/// From plain JSON: only JSON's own values (what annotations said is gone by then).
impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        serde_json::Value::deserialize(deserializer).map(Value::from)
    }
}

impl JsonSchema for Value {
    fn schema_name() -> Cow<'static, str> {
        "AnyValue".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        Schema::default()
    }

    fn inline_schema() -> bool {
        true
    }
}

ts_named!([] Value => Value, "unknown");

impl Value {
    /// The value of a superjson input, annotations applied; `None` if it is `undefined`.
    pub(crate) fn from_superjson(envelope: &str) -> Result<Option<Self>, crate::Error> {
        use crate::protocol::superjson::{self, Incoming};
        let incoming = Incoming::read(envelope)?;
        let json: serde_json::Value =
            serde_json::from_str(incoming.json.get()).map_err(crate::Error::internal)?;
        let mut root = Value::from(json);
        incoming.visit_values(&mut |path, kind| {
            let Some(at) = root.get_mut(path) else {
                return Ok(());
            };
            let taken = std::mem::replace(at, Value::Undefined);
            *at = match (kind.as_str(), taken) {
                (Some("undefined"), _) => Value::Undefined,
                (Some("Date"), Value::String(text)) => match DateTime::parse_from_rfc3339(&text) {
                    Ok(date) => Value::Date(Date(date.with_timezone(&Utc))),
                    // `new Date(NaN)`: superjson writes `null`… or what it was given.
                    Err(_) => Value::String(text),
                },
                (Some("bigint"), Value::String(digits)) => Value::BigInt(digits),
                (Some("set"), Value::Array(items)) => Value::Set(items),
                (Some("map"), Value::Array(items)) => Value::Map(
                    items
                        .into_iter()
                        .map(|pair| match pair {
                            Value::Array(mut kv) if kv.len() == 2 => {
                                let v = kv.pop().unwrap_or(Value::Undefined);
                                let k = kv.pop().unwrap_or(Value::Undefined);
                                Ok((k, v))
                            }
                            _ => Err(crate::Error::bad_request(format!(
                                "{}: a superjson map's entries must be [key, value] pairs",
                                superjson::describe_path(path)
                            ))),
                        })
                        .collect::<Result<_, _>>()?,
                ),
                (Some("number"), Value::String(text)) if text == "-0" => {
                    Value::Number(serde_json::Number::from_f64(-0.0).unwrap_or_else(|| 0.into()))
                }
                (Some("number"), Value::String(text)) => {
                    return Err(superjson::non_finite(path, &text));
                }
                (Some("Date" | "bigint" | "set" | "map" | "number"), other) => other,
                _ => return Err(superjson::unsupported(path, kind)),
            };
            Ok(())
        })?;
        incoming.visit_equalities(&mut |from, to| {
            // The target first: nothing is cloned for a reference that leads nowhere.
            if root.get_mut(to).is_none() {
                return Ok(0);
            }
            let Some(value) = root.get_mut(from) else {
                return Ok(0);
            };
            if to.len() + value.nesting() > crate::protocol::input::MAX_DEPTH {
                return Err(superjson::too_deep_copy());
            }
            let value = value.clone();
            let copied = value.count();
            if let Some(slot) = root.get_mut(to) {
                *slot = value;
            }
            Ok(copied)
        })?;
        Ok((root != Value::Undefined).then_some(root))
    }

    /// How deeply this nests containers (a scalar: 0).
    fn nesting(&self) -> usize {
        let deepest = |items: &mut dyn Iterator<Item = &Value>| {
            1 + items.map(Value::nesting).max().unwrap_or(0)
        };
        match self {
            Value::Array(items) | Value::Set(items) => deepest(&mut items.iter()),
            Value::Object(map) => deepest(&mut map.values()),
            // A map nests its entries (a pair array) in the array of pairs.
            Value::Map(entries) => 1 + deepest(&mut entries.iter().flat_map(|(k, v)| [k, v])),
            _ => 0,
        }
    }

    /// How many values this holds, itself included.
    fn count(&self) -> usize {
        1 + match self {
            Value::Array(items) | Value::Set(items) => items.iter().map(Value::count).sum(),
            Value::Object(map) => map.values().map(Value::count).sum(),
            Value::Map(entries) => entries.iter().map(|(k, v)| k.count() + v.count()).sum(),
            _ => 0,
        }
    }

    /// The value at a superjson path (map entries are `index.0` for the key, `index.1` for
    /// the value).
    fn get_mut(&mut self, path: &[String]) -> Option<&mut Value> {
        let Some((first, rest)) = path.split_first() else {
            return Some(self);
        };
        let index = || crate::protocol::superjson::array_index(first);
        match self {
            Value::Object(map) => map.get_mut(first)?.get_mut(rest),
            Value::Array(items) | Value::Set(items) => items.get_mut(index()?)?.get_mut(rest),
            Value::Map(entries) => {
                let (key, value) = entries.get_mut(index()?)?;
                let (which, rest) = rest.split_first()?;
                match which.as_str() {
                    "0" => key.get_mut(rest),
                    "1" => value.get_mut(rest),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// Puts the client's value, from its superjson envelope, into `slot` when that is an
    /// `Option<Value>` or an `Option<Option<Value>>` (an input of type `Value` or
    /// `Option<Value>`): whether it did.
    pub(crate) fn input_into(
        slot: &mut dyn std::any::Any,
        envelope: &str,
    ) -> Result<bool, crate::Error> {
        if let Some(slot) = slot.downcast_mut::<Option<Value>>() {
            *slot = Some(Self::from_superjson(envelope)?.unwrap_or(Value::Undefined));
        } else if let Some(slot) = slot.downcast_mut::<Option<Option<Value>>>() {
            *slot = Some(Self::from_superjson(envelope)?);
        } else {
            return Ok(false);
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::superjson::encode;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct All {
        at: Date,
        big: BigInt<i128>,
        tags: Set<u32>,
        by_day: Map<String, Vec<Date>>,
        plain: Vec<String>,
    }

    fn all() -> All {
        let day = Date::from_millis(86_400_000).expect("date");
        All {
            at: Date::from_millis(0).expect("date"),
            big: BigInt(-170_141_183_460_469_231_731_687_303_715_884_105_728),
            tags: [2, 1].into_iter().collect(),
            by_day: [("mon".to_owned(), vec![day])].into_iter().collect(),
            plain: vec!["Date:x".to_owned()],
        }
    }

    #[test]
    fn plain_json_is_what_superjson_carries_unannotated() {
        let text = serde_json::to_string(&all()).expect("json");
        assert_eq!(
            text,
            r#"{"at":"1970-01-01T00:00:00.000Z","big":"-170141183460469231731687303715884105728","tags":[1,2],"by_day":[["mon",["1970-01-02T00:00:00.000Z"]]],"plain":["Date:x"]}"#
        );
        let back: All = serde_json::from_str(&text).expect("back");
        assert_eq!(back, all());
    }

    #[test]
    fn superjson_annotates_each_value_at_its_path() {
        let encoded = encode(&all()).expect("encoded");
        let plain = serde_json::to_string(&all()).expect("json");
        let reparsed: serde_json::Value = serde_json::from_str(&plain).expect("json");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(encoded.json.get()).expect("json"),
            reparsed
        );
        assert_eq!(
            encoded.values.as_ref().map(|v| v.get()),
            Some(
                r#"{"at":["Date"],"big":["bigint"],"by_day":["map",{"0.1.0":["Date"]}],"tags":["set"]}"#
            )
        );
        // A root value, and a value without JavaScript types (sent as it serialized).
        let root = encode(&Date::from_millis(0).expect("date")).expect("encoded");
        assert_eq!(root.json.get(), r#""1970-01-01T00:00:00.000Z""#);
        assert_eq!(root.values.as_ref().map(|v| v.get()), Some(r#"["Date"]"#));
        let none = encode(&vec![1, 2]).expect("encoded");
        assert_eq!((none.json.get(), none.values.is_none()), ("[1,2]", true));
        assert_eq!(
            encode(&Set([Date::from_millis(0).expect("date")].into()))
                .expect("encoded")
                .values
                .as_ref()
                .map(|v| v.get()),
            Some(r#"["set",{"0":["Date"]}]"#)
        );
    }

    #[test]
    fn dates_and_bigints_as_map_keys_are_plain_keys() {
        let by_day: BTreeMap<Date, u32> = [(Date::from_millis(0).expect("date"), 1)].into();
        let by_id: BTreeMap<BigInt<u64>, u32> = [(BigInt(7), 2)].into();
        let encoded = encode(&(by_day, by_id)).expect("encoded");
        assert_eq!(
            encoded.json.get(),
            r#"[{"1970-01-01T00:00:00.000Z":1},{"7":2}]"#
        );
        assert!(encoded.values.is_none());
    }

    #[test]
    fn user_strings_never_pass_for_markers() {
        let forged = format!("\u{0}oxrpc-sj:{:016x}:Date:x", 0);
        let encoded = encode(&(Date::from_millis(0).expect("date"), forged)).expect("ok");
        assert_eq!(
            encoded.values.as_ref().map(|v| v.get()),
            Some(r#"{"0":["Date"]}"#)
        );
        assert!(encoded.json.get().contains("oxrpc-sj"));
    }

    #[test]
    fn any_value_comes_back_as_it_was_sent() {
        let sent = r#"{"json":{"a":null,"at":"1970-01-01T00:00:00.000Z","big":"10","m":[["k","1970-01-01T00:00:00.000Z"]],"s":[1,2]},"meta":{"values":{"a":["undefined"],"at":["Date"],"big":["bigint"],"m":["map",{"0.1":["Date"]}],"s":["set"]},"v":1}}"#;
        let value = Value::from_superjson(sent).expect("ok").expect("defined");
        let Value::Object(fields) = &value else {
            panic!("an object: {value:?}");
        };
        assert_eq!(fields["a"], Value::Undefined);
        assert_eq!(fields["big"], Value::BigInt("10".into()));
        assert!(
            matches!(&fields["m"], Value::Map(entries) if matches!(entries[0].1, Value::Date(_)))
        );
        assert_eq!(encode(&value).expect("encoded").envelope().get(), sent);
        // Without annotations, JSON; `undefined` as a whole is no value.
        let undefined = crate::protocol::superjson::UNDEFINED;
        assert_eq!(Value::from_superjson(undefined).expect("ok"), None);
        let bad = r#"{"json":{"m":[1]},"meta":{"values":{"m":["map"]},"v":1}}"#;
        let e = Value::from_superjson(bad).expect_err("not pairs");
        assert!(
            e.message().contains("[key, value] pairs"),
            "{}",
            e.message()
        );
    }

    #[test]
    fn bad_inputs_say_what_was_expected() {
        let e = serde_json::from_str::<Date>("\"yesterday\"").expect_err("bad date");
        assert!(e.to_string().contains("ISO 8601"), "{e}");
        let e = serde_json::from_str::<BigInt<u8>>("\"300\"").expect_err("too big");
        assert!(e.to_string().contains("not a fitting integer"), "{e}");
        assert_eq!(
            serde_json::from_str::<BigInt<u64>>("7").expect("number").0,
            7
        );
    }
}
