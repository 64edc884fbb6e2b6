//! Query and mutation outputs that arrive in parts over `httpBatchStreamLink` (spec §5.3):
//! [`Deferred`] fields become promises on the client, [`Streamed`] fields (or outputs) async
//! iterables. No other transport can carry them: there, such an output is refused with
//! `UNSUPPORTED_MEDIA_TYPE`, as tRPC refuses it.
//!
//! How: while an output is serialized for a streamed call, each `Deferred`/`Streamed` hands its
//! future or stream to a per-thread collector and writes a marker in its place; the markers
//! are then replaced by `0` and the parts travel beside the data (tRPC's chunk references).

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Mutex;

use std::panic::AssertUnwindSafe;

use futures_util::{FutureExt, Stream, StreamExt};
use serde::ser::Error as _;
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;

use crate::call::{BoxFuture, Json, Part, Parted};
use crate::error::{Error, ErrorCode};
use crate::guard::Contained;
use crate::protocol::superjson::{self, Annotated};

type BoxStream<T> = std::pin::Pin<Box<dyn Stream<Item = Result<T, Error>> + Send>>;

/// A value sent later, over `httpBatchStreamLink`: a `Promise<T>` on the client.
///
/// Put it in a direct field of a query's output (tRPC's encoder looks no deeper). The rest of
/// the output reaches the client at once; this field resolves when the future does, or rejects
/// with its error.
///
/// ```
/// use oxrpc::{Deferred, Error};
///
/// #[derive(serde::Serialize, ts_rs::TS, schemars::JsonSchema)]
/// pub struct Page {
///     pub title: String,
///     /// `Promise<Array<string>>` on the client.
///     pub comments: Deferred<Vec<String>>,
/// }
///
/// let page = Page {
///     title: "hello".into(),
///     comments: Deferred::new(async { Ok::<_, Error>(vec!["first!".to_owned()]) }),
/// };
/// ```
pub struct Deferred<T> {
    future: Mutex<Option<BoxFuture<Result<T, Error>>>>,
}

impl<T> Deferred<T> {
    /// The value `future` will produce (or its error).
    pub fn new<F>(future: F) -> Self
    where
        F: Future<Output = Result<T, Error>> + Send + 'static,
    {
        Deferred {
            future: Mutex::new(Some(Box::pin(future))),
        }
    }
}

impl<T> fmt::Debug for Deferred<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Deferred(..)")
    }
}

/// Values streamed over `httpBatchStreamLink`: an `AsyncIterable<T>` on the client, consumed
/// with `for await`. As a query's whole output or one of its direct fields. An `Err` item
/// ends the iteration with that error on the client.
///
/// ```
/// use oxrpc::{Error, Procedure, Streamed};
///
/// let numbers = Procedure::query("numbers", |_: (), (): ()| async {
///     Ok::<_, Error>(Streamed::values(futures_util::stream::iter([1, 2, 3])))
/// });
/// ```
pub struct Streamed<T> {
    stream: Mutex<Option<BoxStream<T>>>,
}

impl<T> Streamed<T> {
    /// The items of `stream`; an `Err` ends the iteration with that error.
    pub fn new<S>(stream: S) -> Self
    where
        S: Stream<Item = Result<T, Error>> + Send + 'static,
    {
        Streamed {
            stream: Mutex::new(Some(Box::pin(stream))),
        }
    }

    /// The items of a stream that cannot fail.
    pub fn values<S>(stream: S) -> Self
    where
        S: Stream<Item = T> + Send + 'static,
        T: 'static,
    {
        Self::new(stream.map(Ok))
    }
}

impl<T> fmt::Debug for Streamed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Streamed(..)")
    }
}

/// What `tRPC` answers for a stream-like output on a non-streaming request.
fn refused() -> Error {
    Error::new(
        ErrorCode::UnsupportedMediaType,
        "Cannot use stream-like response in non-streaming request - use httpBatchStreamLink",
    )
}

const MARKER: &str = "\u{0}oxrpc-part:";

thread_local! {
    /// The parts of the output being serialized on this thread, when parts are allowed.
    static COLLECTOR: RefCell<Option<Vec<Part>>> = const { RefCell::new(None) };
}

/// Hands a part to the collector and writes its marker, or refuses when parts are not allowed.
fn register<S: Serializer>(serializer: S, part: Option<Part>) -> Result<S::Ok, S::Error> {
    let Some(part) = part else {
        return Err(S::Error::custom(
            "a Deferred or Streamed value was serialized twice",
        ));
    };
    let index = COLLECTOR.with(|c| {
        c.borrow_mut().as_mut().map(|parts| {
            parts.push(part);
            parts.len() - 1
        })
    });
    match index {
        Some(index) => serializer.serialize_str(&format!("{MARKER}{index}")),
        None => Err(S::Error::custom(REFUSED)),
    }
}

const REFUSED: &str = "oxrpc: stream-like output outside a streamed response";

/// A part's value as it travels: plain JSON, or a superjson envelope when the output it
/// belongs to was serialized for superjson.
fn encode<T: Serialize>(value: &T, superjson: bool) -> Result<Json, Error> {
    let encoded = if superjson {
        superjson::encode(value).map(|annotated| annotated.envelope())
    } else {
        Json::write(value)
    };
    encoded.map_err(|e| {
        Error::internal(e).with_message("Internal server error: the output could not be serialized")
    })
}

impl<T: Serialize + Send + 'static> Serialize for Deferred<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let future = self.future.lock().ok().and_then(|mut f| f.take());
        let superjson = superjson::marking();
        let part = future.map(|future| {
            // Encoding runs inside the guard too: a panicking `Serialize` is contained.
            let encoded: BoxFuture<Result<Json, Error>> =
                Box::pin(async move { future.await.and_then(|v| encode(&v, superjson)) });
            let guarded = AssertUnwindSafe(Contained(encoded))
                .catch_unwind()
                .map(|settled| {
                    settled.unwrap_or_else(|_| {
                        Err(Error::internal("a Deferred value's future panicked"))
                    })
                });
            Part::Promise(Box::pin(guarded))
        });
        register(serializer, part)
    }
}

impl<T: Serialize + Send + 'static> Serialize for Streamed<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let stream = self.stream.lock().ok().and_then(|mut s| s.take());
        let superjson = superjson::marking();
        let part = stream.map(|stream| {
            // A panic (in the stream or in encoding) ends the iteration with an internal error.
            let encoded: BoxStream<Json> =
                Box::pin(stream.map(move |item| item.and_then(|v| encode(&v, superjson))));
            let guarded = AssertUnwindSafe(Contained(encoded))
                .catch_unwind()
                .map(|item| {
                    item.unwrap_or_else(|_| {
                        Err(Error::internal("a Streamed value's stream panicked"))
                    })
                });
            Part::Iterable(Box::pin(guarded))
        });
        register(serializer, part)
    }
}

/// [`serialize_with`] for a value (the tests' shorthand).
#[cfg(test)]
fn serialize<T: Serialize>(value: &T, streaming: bool, superjson: bool) -> Result<Encoded, Error> {
    serialize_with(&|| Json::write(value), streaming, superjson)
}

/// JSON text of a value, written by the value's `Serialize`.
pub(crate) type ToJson<'a> = &'a dyn Fn() -> Result<Json, serde_json::Error>;

/// Serializes the value `to_json` writes, collecting its parts when `streaming` allows them;
/// for the superjson transformer with its annotations (parts are encoded the same way,
/// later). Not generic: compiled once, not once per output type.
pub(crate) fn serialize_with(
    to_json: ToJson<'_>,
    streaming: bool,
    superjson: bool,
) -> Result<Encoded, Error> {
    /// Puts the previous collector back however serialization ends (a panicking `Serialize`
    /// must not leave this thread collecting).
    struct Restore(Option<Vec<Part>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            COLLECTOR.with(|c| *c.borrow_mut() = self.0.take());
        }
    }
    let serialize = || {
        if superjson {
            superjson::annotate(to_json)
        } else {
            to_json().map(|json| Ok(Annotated { json, values: None }))
        }
    };
    // Most outputs may have no parts and nothing collects on this thread: the collector
    // stays as it is (`None`, which refuses parts), one look instead of three.
    let (raw, parts) = if !streaming && COLLECTOR.with(|c| c.borrow().is_none()) {
        (serialize(), Vec::new())
    } else {
        let restore = Restore(COLLECTOR.with(|c| c.replace(streaming.then(Vec::new))));
        let raw = serialize();
        let parts = COLLECTOR
            .with(|c| c.borrow_mut().take())
            .unwrap_or_default();
        drop(restore);
        (raw, parts)
    };
    let failed = |e: serde_json::Error| {
        Error::internal(e).with_message("Internal server error: the output could not be serialized")
    };
    let annotated = match raw {
        Ok(Ok(annotated)) => annotated,
        Err(e) if e.to_string().contains(REFUSED) => return Err(refused()),
        Err(e) | Ok(Err(e)) => return Err(failed(e)),
    };
    if parts.is_empty() {
        return Ok(Encoded::Plain(annotated));
    }
    let mut parted = place(&annotated.json, parts)?;
    if superjson {
        parted.data = superjson::enveloped(&parted.data, annotated.values.as_ref());
    }
    Ok(Encoded::Parted(parted))
}

/// A serialized output: JSON (with its superjson annotations, if asked for), or JSON with
/// parts sent later (a superjson envelope, if asked for).
pub(crate) enum Encoded {
    Plain(Annotated),
    Parted(Parted),
}

/// Finds where each marker sits: the whole value, or a direct field; each is replaced by `0`
/// in the text (which keeps the fields in their order).
fn place(raw: &Json, parts: Vec<Part>) -> Result<Parted, Error> {
    let misplaced = || {
        Error::internal("a Deferred or Streamed value sits deeper than a direct field").with_message(
            "Internal server error: Deferred and Streamed values must be the output or one of its direct fields",
        )
    };
    // The marker as serde_json writes it: `"\u0000oxrpc-part:N"`.
    let literal = |i: usize| format!("\"\\u0000oxrpc-part:{i}\"");
    let index_of = |text: &str| -> Option<usize> {
        text.strip_prefix("\"\\u0000oxrpc-part:")?
            .strip_suffix('"')?
            .parse()
            .ok()
    };
    let mut slots: Vec<Option<Part>> = parts.into_iter().map(Some).collect();
    let mut placed: Vec<(Option<String>, usize)> = Vec::new();
    if let Some(i) = index_of(raw.get()) {
        placed.push((None, i));
    } else if raw.get().starts_with('{') {
        let fields: HashMap<String, &RawValue> =
            serde_json::from_str(raw.get()).map_err(Error::internal)?;
        for (key, field) in fields {
            if let Some(i) = index_of(field.get()) {
                placed.push((Some(key), i));
            }
        }
    }
    // In the order the fields were written (deterministic output).
    placed.sort_by_key(|(_, i)| *i);
    let mut text = raw.get().to_owned();
    let mut out = Vec::with_capacity(placed.len());
    for (key, i) in placed {
        let part = slots
            .get_mut(i)
            .and_then(Option::take)
            .ok_or_else(misplaced)?;
        text = text.replacen(&literal(i), "0", 1);
        out.push((key, part));
    }
    if slots.iter().any(Option::is_some) || text.contains("\"\\u0000oxrpc-part:") {
        return Err(misplaced());
    }
    Ok(Parted {
        data: Json::assembled(text),
        parts: out,
    })
}

/// `TS` for a wrapper that the client sees as a generic TypeScript type of `T`.
macro_rules! ts_as {
    ($wrapper:ident, $ts:literal) => {
        impl<T: ts_rs::TS> ts_rs::TS for $wrapper<T> {
            type WithoutGenerics = $wrapper<ts_rs::Dummy>;
            type OptionInnerType = Self;

            fn name(cfg: &ts_rs::Config) -> String {
                format!($ts, T::name(cfg))
            }

            fn inline(cfg: &ts_rs::Config) -> String {
                format!($ts, T::inline(cfg))
            }

            fn visit_dependencies(v: &mut impl ts_rs::TypeVisitor)
            where
                Self: 'static,
            {
                T::visit_dependencies(v);
            }

            fn visit_generics(v: &mut impl ts_rs::TypeVisitor)
            where
                Self: 'static,
            {
                T::visit_generics(v);
                v.visit::<T>();
            }
        }
    };
}

pub(crate) use ts_as;

ts_as!(Deferred, "Promise<{}>");
ts_as!(Streamed, "AsyncIterable<{}, void, any>");

/// The JSON Schema of what the promise resolves to.
impl<T: schemars::JsonSchema> schemars::JsonSchema for Deferred<T> {
    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        T::json_schema(generator)
    }

    fn inline_schema() -> bool {
        true
    }
}

/// The JSON Schema of the items, as an array.
impl<T: schemars::JsonSchema> schemars::JsonSchema for Streamed<T> {
    fn schema_name() -> Cow<'static, str> {
        <Vec<T>>::schema_name()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        <Vec<T>>::json_schema(generator)
    }

    fn inline_schema() -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Out {
        now: u8,
        later: Deferred<String>,
    }

    #[test]
    fn a_panicking_serializer_leaves_no_collector_behind() {
        struct Boom;
        impl Serialize for Boom {
            fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
                panic!("boom");
            }
        }
        #[derive(Serialize)]
        struct Out {
            later: Deferred<u8>,
            boom: Boom,
        }
        let out = Out {
            later: Deferred::new(async { Ok(1) }),
            boom: Boom,
        };
        let caught = std::panic::catch_unwind(AssertUnwindSafe(|| serialize(&out, true, false)));
        assert!(caught.is_err());
        assert!(COLLECTOR.with(|c| c.borrow().is_none()));
        let e = serialize(&Deferred::new(async { Ok(1) }), false, false)
            .err()
            .expect("refused again");
        assert_eq!(e.code(), ErrorCode::UnsupportedMediaType);
    }

    #[test]
    fn parts_are_placed_at_direct_fields_or_refused() {
        let out = Out {
            now: 1,
            later: Deferred::new(async { Ok("x".to_owned()) }),
        };
        let Ok(Encoded::Parted(parted)) = serialize(&out, true, false) else {
            panic!("parted");
        };
        assert_eq!(parted.data.get(), r#"{"now":1,"later":0}"#);
        assert_eq!(parted.parts[0].0.as_deref(), Some("later"));

        let out = Out {
            now: 1,
            later: Deferred::new(async { Ok("x".to_owned()) }),
        };
        let e = serialize(&out, false, false).err().expect("refused");
        assert_eq!(e.code(), ErrorCode::UnsupportedMediaType);

        let whole = Streamed::values(futures_util::stream::iter([1, 2]));
        let Ok(Encoded::Parted(parted)) = serialize(&whole, true, false) else {
            panic!("parted");
        };
        assert_eq!(parted.data.get(), "0");
        assert!(parted.parts[0].0.is_none());

        let nested = vec![Deferred::new(async { Ok(1) })];
        let e = serialize(&nested, true, false).err().expect("misplaced");
        assert_eq!(e.code(), ErrorCode::InternalServerError);
    }
}
