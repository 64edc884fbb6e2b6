//! The call vocabulary every layer speaks: a call (path, kind, meta, raw input), its reply
//! (raw JSON or a stream of encoded events), and the type-erased handler between them.
//! A leaf: it knows nothing of procedures, routers or transports.

use std::any::{Any, TypeId};
use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use bytestring::ByteString;
use futures_util::Stream;

use crate::error::Error;
use crate::request_body::RequestBody;
use crate::validate::UnknownFields;

/// A boxed, sendable future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What a procedure produced: `None` is `undefined` (nothing on the wire), else JSON text.
pub(crate) type RawOutput = Option<Json>;

/// JSON text oxrpc wrote itself (an output, an event, an envelope): valid by construction,
/// kept in the `String` it was written into. (serde_json's `Box<RawValue>` shrinks its text to
/// fit: one `realloc` per value, and a free fragment the allocator has to sort out later.)
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Json(String);

impl Json {
    /// The JSON `serde_json` writes for `value`.
    pub(crate) fn write<T: serde::Serialize + ?Sized>(
        value: &T,
    ) -> Result<Json, serde_json::Error> {
        serde_json::to_string(value).map(Json)
    }

    /// Text assembled from JSON pieces (valid by construction).
    pub(crate) fn assembled(text: String) -> Json {
        Json(text)
    }

    /// The text.
    pub(crate) fn get(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A raw JSON input: `None` when the client sent none (`undefined`).
pub(crate) type RawInput = Option<InputText>;

/// A call's input as the client sent it (valid JSON text): a slice of the text it came in,
/// which the calls of a batch, a WebSocket frame or a request body share. Nothing is copied.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct InputText(ByteString);

impl InputText {
    /// `part` (JSON text, e.g. a raw value parsed from `whole`) as a slice of `whole`; a copy
    /// if it does not lie within `whole`.
    pub(crate) fn within(whole: &ByteString, part: &str) -> InputText {
        let base = whole.as_ptr() as usize;
        let at = part.as_ptr() as usize;
        if at >= base && at + part.len() <= base + whole.len() {
            InputText(whole.slice_ref(part))
        } else {
            InputText(ByteString::from(part))
        }
    }

    /// `part` of this input's text, sharing it (a copy if it does not lie within it).
    pub(crate) fn slice(&self, part: &str) -> InputText {
        InputText::within(&self.0, part)
    }

    /// JSON text written for an input (the server-side caller, a merged `lastEventId`).
    pub(crate) fn written(json: String) -> InputText {
        InputText(ByteString::from(json))
    }

    /// The text.
    pub(crate) fn get(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for InputText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A type-erased procedure (or middleware chain ending in one). It reads what it needs of the
/// call when it starts; its future keeps the call only if it asks for it ([`CallArg::shared`]).
pub(crate) type Handler<Ctx> =
    Arc<dyn Fn(Ctx, CallArg<'_>) -> BoxFuture<Result<Reply, Error>> + Send + Sync>;

/// A call as a handler receives it: lent for the time the handler takes to start (a procedure
/// decodes its input then and keeps only what encoding its output needs, so a call costs no
/// allocation of its own), or already shared (inside a middleware stack, whose futures keep it).
pub(crate) enum CallArg<'a> {
    Lent(&'a Call),
    Shared(Arc<Call>),
}

impl CallArg<'_> {
    /// The call.
    pub(crate) fn get(&self) -> &Call {
        match self {
            CallArg::Lent(call) => call,
            CallArg::Shared(call) => call,
        }
    }

    /// The call, owned and shared (a lent call is copied once, taking its body along).
    pub(crate) fn shared(self) -> Arc<Call> {
        match self {
            CallArg::Shared(call) => call,
            CallArg::Lent(call) => Arc::new(Call {
                path: Arc::clone(&call.path),
                kind: call.kind,
                meta: call.meta.clone(),
                input: call.input.clone(),
                superjson_input: call.superjson_input.clone(),
                options: call.options,
                body: BodySlot::new(call.take_body()),
            }),
        }
    }
}

/// The kind of a procedure, which decides its HTTP method and its client call (`.query()`,
/// `.mutate()`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ProcedureKind {
    /// Read-only, sent as `GET`.
    Query,
    /// Side effects, sent as `POST`.
    Mutation,
    /// A stream of events, over WebSocket.
    Subscription,
}

impl ProcedureKind {
    /// `"query"`, `"mutation"` or `"subscription"`, as tRPC names them.
    pub const fn as_str(self) -> &'static str {
        match self {
            ProcedureKind::Query => "query",
            ProcedureKind::Mutation => "mutation",
            ProcedureKind::Subscription => "subscription",
        }
    }
}

impl fmt::Display for ProcedureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Per-procedure values for middleware to read (tRPC's `meta`), keyed by type.
///
/// ```
/// use oxrpc::{Error, Procedure};
///
/// #[derive(Debug, PartialEq)]
/// struct RequiresRole(&'static str);
///
/// let p = Procedure::query("ban", |_: (), (): ()| async { Ok::<_, Error>(()) })
///     .with_meta(RequiresRole("admin"));
/// assert_eq!(p.meta().get::<RequiresRole>(), Some(&RequiresRole("admin")));
/// ```
#[derive(Clone, Default)]
pub struct Meta {
    /// `None` when there are none (most procedures): copied into every call, and a copy of
    /// `None` touches no reference count.
    values: Option<Arc<BTreeMap<TypeId, Arc<dyn Any + Send + Sync>>>>,
}

impl Meta {
    /// The value of type `T`, if the procedure has one.
    pub fn get<T: Any>(&self) -> Option<&T> {
        self.values
            .as_ref()?
            .get(&TypeId::of::<T>())
            .and_then(|v| v.downcast_ref::<T>())
    }

    pub(crate) fn insert<T: Any + Send + Sync>(&mut self, value: T) {
        let values = self.values.get_or_insert_with(Arc::default);
        Arc::make_mut(values).insert(TypeId::of::<T>(), Arc::new(value));
    }
}

impl fmt::Debug for Meta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Meta")
            .field("values", &self.values.as_ref().map_or(0, |v| v.len()))
            .finish()
    }
}

/// Options that apply to every call of a router (set on the root router), and whether this
/// call's answer may come in parts (a streamed JSONL batch).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CallOptions {
    pub(crate) unknown_fields: UnknownFields,
    pub(crate) validate_output: bool,
    pub(crate) streaming: bool,
    /// Inputs and outputs travel through the superjson transformer (network calls of a
    /// router with [`crate::Router::superjson`]; never the server-side caller).
    pub(crate) superjson: bool,
}

/// One call, as middleware sees it: path, kind, meta and the raw input.
#[derive(Debug)]
pub struct Call {
    pub(crate) path: Arc<str>,
    pub(crate) kind: ProcedureKind,
    pub(crate) meta: Meta,
    pub(crate) input: RawInput,
    /// The superjson envelope the input came in, with the transformer on.
    pub(crate) superjson_input: RawInput,
    pub(crate) options: CallOptions,
    /// A binary or multipart body, for the input to take (once).
    pub(crate) body: BodySlot,
}

/// A call's binary or multipart body, taken once. Most calls have none: asking them takes no
/// lock.
#[derive(Debug, Default)]
pub(crate) struct BodySlot {
    /// Whether a body was given (it may have been taken since).
    given: bool,
    body: Mutex<Option<RequestBody>>,
}

impl BodySlot {
    pub(crate) fn new(body: Option<RequestBody>) -> Self {
        BodySlot {
            given: body.is_some(),
            body: Mutex::new(body),
        }
    }

    fn take(&self) -> Option<RequestBody> {
        if !self.given {
            return None;
        }
        self.body
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }
}

impl Call {
    /// Takes the body (binary and multipart inputs), if there is one and nobody took it.
    pub(crate) fn take_body(&self) -> Option<RequestBody> {
        self.body.take()
    }

    /// The full dotted path, e.g. `user.byId`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Query or mutation.
    pub fn kind(&self) -> ProcedureKind {
        self.kind
    }

    /// The procedure's meta.
    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    /// The input as sent (JSON text), before validation; `None` when the client sent none.
    /// With the superjson transformer: its JSON, annotations applied (what validation sees).
    pub fn input(&self) -> Option<&str> {
        self.input.as_ref().map(InputText::get)
    }
}

/// What a procedure answered: JSON text, nothing (`undefined`), or, for a subscription, a
/// stream of events.
pub struct Reply(ReplyKind);

enum ReplyKind {
    Value(RawOutput),
    /// A value with parts sent later (`Deferred`/`Streamed` outputs, JSONL only). Boxed: rare.
    Parted(Box<Parted>),
    Stream(EventStream),
}

/// A value whose parts come later: the data with a `0` where each part goes, and the parts,
/// each at a direct field (`Some(key)`) or standing for the whole value (`None`).
pub(crate) struct Parted {
    pub(crate) data: Json,
    pub(crate) parts: Vec<(Option<String>, Part)>,
}

/// A part of a value that is sent later, already encoded to JSON.
pub(crate) enum Part {
    /// One value later (a promise on the client).
    Promise(BoxFuture<Result<Json, Error>>),
    /// Many values (an async iterable on the client).
    Iterable(Pin<Box<dyn Stream<Item = Result<Json, Error>> + Send>>),
}

impl Reply {
    pub(crate) fn value(output: RawOutput) -> Self {
        Reply(ReplyKind::Value(output))
    }

    pub(crate) fn stream(events: EventStream) -> Self {
        Reply(ReplyKind::Stream(events))
    }

    pub(crate) fn parted(parted: Parted) -> Self {
        Reply(ReplyKind::Parted(Box::new(parted)))
    }

    /// The parts sent later, if the value has any (taking them out of the reply).
    pub(crate) fn take_parted(self) -> Result<Parted, Self> {
        match self.0 {
            ReplyKind::Parted(parted) => Ok(*parted),
            other => Err(Reply(other)),
        }
    }

    /// The output as JSON text; `None` for `undefined` (a `()` output) and for streams. With
    /// the superjson transformer: the envelope the client receives (`{"json":…,"meta":…}`).
    pub fn json(&self) -> Option<&str> {
        self.json_ref().map(Json::get)
    }

    /// Whether this is a subscription's event stream.
    pub fn is_stream(&self) -> bool {
        matches!(self.0, ReplyKind::Stream(_))
    }

    pub(crate) fn json_ref(&self) -> Option<&Json> {
        match &self.0 {
            ReplyKind::Value(v) => v.as_ref(),
            ReplyKind::Parted(p) => Some(&p.data),
            ReplyKind::Stream(_) => None,
        }
    }

    /// The JSON of a plain value (`None` for `undefined`, a stream or a value with parts).
    pub(crate) fn into_json(self) -> Option<Json> {
        match self.0 {
            ReplyKind::Value(v) => v,
            ReplyKind::Parted(_) | ReplyKind::Stream(_) => None,
        }
    }

    /// The event stream of a subscription's reply; an error for a plain value.
    pub(crate) fn into_events(self) -> Result<EventStream, Error> {
        match self.0 {
            ReplyKind::Stream(events) => Ok(events),
            ReplyKind::Value(_) | ReplyKind::Parted(_) => {
                Err(Error::internal("a subscription did not produce a stream"))
            }
        }
    }

    /// Applies `f` to the event stream of a subscription's reply; values pass unchanged.
    pub(crate) fn map_events(self, f: impl FnOnce(EventStream) -> EventStream) -> Self {
        match self.0 {
            ReplyKind::Stream(events) => Reply(ReplyKind::Stream(f(events))),
            value => Reply(value),
        }
    }
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            ReplyKind::Value(v) => f.debug_tuple("Reply").field(v).finish(),
            ReplyKind::Parted(p) => f.debug_tuple("Reply").field(&p.data).finish(),
            ReplyKind::Stream(_) => f.write_str("Reply(<stream>)"),
        }
    }
}

/// One encoded event: its id (tracked events) and its data as JSON.
#[derive(Debug)]
pub(crate) struct EncodedEvent {
    pub(crate) id: Option<String>,
    pub(crate) data: Json,
}

/// The type-erased stream a subscription produces.
pub(crate) type EventStream = Pin<Box<dyn Stream<Item = Result<EncodedEvent, Error>> + Send>>;
