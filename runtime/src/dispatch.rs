//! The one dispatch seam. Every call, from every transport and from Rust, goes through
//! [`invoke`]: `lastEventId` merge, input limits, the panic guard and the call's `tracing`
//! span live here once. [`Dispatcher`] adds what a server has: the router with its context
//! type erased, the create-context function and the error policy, so transports never
//! mention the user's `Ctx`.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Instant;

use futures_util::{FutureExt, Stream, StreamExt};

use crate::call::{
    BodySlot, BoxFuture, Call, CallOptions, EncodedEvent, EventStream, Meta, ProcedureKind,
    RawInput, Reply,
};
use crate::context::RequestInfo;
use crate::error::{Error, ErrorCode};
use crate::guard::{self, Contained};
use crate::procedure::Procedure;
use crate::protocol::error::ErrorPolicy;
use crate::protocol::{input, superjson};
use crate::request_body::{BodyKind, RequestBody};

/// How a call reached the server, for its span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Via {
    /// An HTTP request.
    Http,
    /// A WebSocket message.
    WebSocket,
    /// A Server-Sent Events stream.
    Sse,
    /// `Router::call` / `Router::subscribe` from Rust.
    Caller,
}

impl Via {
    fn as_str(self) -> &'static str {
        match self {
            Via::Http => "http",
            Via::WebSocket => "websocket",
            Via::Sse => "sse",
            Via::Caller => "caller",
        }
    }
}

/// Where a call comes from: its transport, its index in a batch or frame, and whether its
/// answer may come in parts (a streamed JSONL batch: `Deferred`/`Streamed` outputs).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Site {
    pub(crate) via: Via,
    pub(crate) batch_index: Option<usize>,
    pub(crate) streaming: bool,
}

impl Site {
    /// A call of a transport that answers in one piece.
    pub(crate) fn of(via: Via, batch_index: Option<usize>) -> Self {
        Site {
            via,
            batch_index,
            streaming: false,
        }
    }
}

/// What a caller expects to find at a path; decides the NOT_FOUND wording (tRPC's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Want {
    /// Any procedure (HTTP: the method is checked afterwards).
    Any,
    /// A procedure of this kind (WebSocket messages name the kind).
    Kind(ProcedureKind),
    /// A query or a mutation (the server-side caller).
    Unary,
}

/// Looks up `path` with `get`, checking the kind: one rule, one wording, for every caller.
pub(crate) fn lookup<P>(
    path: &str,
    want: Want,
    found: Option<P>,
    kind_of: impl Fn(&P) -> ProcedureKind,
) -> Result<P, Error> {
    match (found, want) {
        (None, Want::Any | Want::Unary) => Err(Error::new(
            ErrorCode::NotFound,
            format!("No procedure found on path \"{path}\""),
        )),
        (Some(p), Want::Kind(kind)) if kind_of(&p) == kind => Ok(p),
        (_, Want::Kind(kind)) => Err(Error::not_found(format!(
            "No \"{kind}\"-procedure on path \"{path}\""
        ))),
        (Some(p), Want::Unary) if kind_of(&p) == ProcedureKind::Subscription => {
            Err(Error::bad_request(format!(
                "`{path}` is a subscription: use `Router::subscribe`"
            )))
        }
        (Some(p), _) => Ok(p),
    }
}

/// One call about to run: what it is and how it arrived.
#[derive(Clone, Copy)]
pub(crate) struct Invocation<'a> {
    pub(crate) path: &'a Arc<str>,
    pub(crate) kind: ProcedureKind,
    pub(crate) meta: &'a Meta,
    pub(crate) via: Via,
    /// The index in an HTTP batch or a WebSocket frame.
    pub(crate) batch_index: Option<usize>,
    pub(crate) options: CallOptions,
}

/// Runs one call: merges `lastEventId` into a subscription's input, applies the input limits,
/// starts the handler chain (`start`) inside the call's span, and turns a panic into
/// `INTERNAL_SERVER_ERROR`. The call's error, or each error that ends its event stream, is
/// reported exactly once to `reporter`'s error policy (`None`: the server-side caller, which
/// hands errors to Rust code instead).
pub(crate) fn invoke(
    inv: Invocation<'_>,
    input: RawInput,
    body: Option<RequestBody>,
    last_event_id: Option<&str>,
    start: impl FnOnce(&Call) -> BoxFuture<Result<Reply, Error>>,
    reporter: Option<Dispatcher>,
) -> Invoked {
    let span = tracing::info_span!(
        "trpc.call",
        path = &**inv.path,
        kind = inv.kind.as_str(),
        transport = inv.via.as_str(),
        batch_index = inv.batch_index,
        outcome = tracing::field::Empty,
        duration_us = tracing::field::Empty,
    );
    let mut end = End {
        path: Arc::clone(inv.path),
        started_at: (!span.is_disabled()).then(Instant::now),
        reporter,
    };
    let prepared = input::check_depth(&input).and_then(|()| {
        // With superjson, procedures see the decoded JSON; the envelope stays for inputs
        // that take every value as itself (`oxrpc::js::Value`).
        let (input, envelope) = match input {
            Some(envelope) if inv.options.superjson => {
                (superjson::decode_input(&envelope)?, Some(envelope))
            }
            input => (input, None),
        };
        let input = if inv.kind == ProcedureKind::Subscription {
            input::merge_last_event_id(input, last_event_id)?
        } else {
            input
        };
        Ok((input, envelope))
    });
    let (input, superjson_input) = match prepared {
        Ok(prepared) => prepared,
        Err(e) => return Invoked::settled(end.finish(&span, Ok(Err(e))), span),
    };
    // Lent to the handler while it starts: what its future needs of the call, it keeps.
    // The path is the end's, lent too (one reference count fewer to move per call).
    let call = Call {
        path: end.path,
        kind: inv.kind,
        meta: inv.meta.clone(),
        input,
        superjson_input,
        options: inv.options,
        body: BodySlot::new(body),
    };
    let entered = span.enter();
    let started = std::panic::catch_unwind(AssertUnwindSafe(|| guard::contained(|| start(&call))));
    drop(entered);
    let Call { path, .. } = call;
    end.path = path;
    match started {
        Err(payload) => Invoked::settled(end.finish(&span, Err(payload)), span),
        Ok(fut) => Invoked {
            span,
            state: State::Running(fut, end),
        },
    }
}

/// A call started by [`invoke`]: polls the handler chain's future inside the call's span and
/// panic guard, and settles its result once. A named future, not one more box per call.
pub(crate) struct Invoked {
    span: tracing::Span,
    state: State,
}

enum State {
    /// The handler chain's future, and how the call ends.
    Running(BoxFuture<Result<Reply, Error>>, End),
    /// The result, not yet taken (a call refused before it ran is settled at once).
    Settled(Result<Reply, Error>),
    Taken,
}

impl Invoked {
    fn settled(result: Result<Reply, Error>, span: tracing::Span) -> Self {
        Invoked {
            span,
            state: State::Settled(result),
        }
    }
}

impl Future for Invoked {
    type Output = Result<Reply, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match std::mem::replace(&mut this.state, State::Taken) {
            State::Running(mut fut, end) => {
                let entered = this.span.enter();
                let polled = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    guard::contained(|| fut.as_mut().poll(cx))
                }));
                let ended = match polled {
                    Ok(Poll::Pending) => {
                        drop(entered);
                        this.state = State::Running(fut, end);
                        return Poll::Pending;
                    }
                    Ok(Poll::Ready(result)) => Ok(result),
                    Err(payload) => Err(payload),
                };
                Poll::Ready(end.finish(&this.span, ended))
            }
            State::Settled(result) => Poll::Ready(result),
            State::Taken => Poll::Ready(Err(Error::internal("a call was polled after it ended"))),
        }
    }
}

/// How a call ends, whichever way it ends (a refused input, a panic, the handler's result):
/// its span's fields, its error reported, its event stream guarded.
struct End {
    path: Arc<str>,
    started_at: Option<Instant>,
    reporter: Option<Dispatcher>,
}

impl End {
    fn finish(
        self,
        span: &tracing::Span,
        ended: std::thread::Result<Result<Reply, Error>>,
    ) -> Result<Reply, Error> {
        let End {
            path,
            started_at,
            reporter,
        } = self;
        let result = ended.unwrap_or_else(|payload| Err(panic_error(&path, &*payload)));
        if let Some(started_at) = started_at {
            let outcome = match &result {
                Ok(_) => "OK",
                Err(e) => e.code().as_str(),
            };
            span.record("outcome", outcome);
            span.record("duration_us", started_at.elapsed().as_micros() as u64);
        }
        match result {
            Err(e) => {
                report(reporter.as_ref(), &e, &path);
                Err(e)
            }
            Ok(reply) => Ok(reply.map_events(|events| {
                Box::pin(Guarded {
                    events,
                    path,
                    reporter,
                    panicked: false,
                })
            })),
        }
    }
}

/// Reports `error` of the call at `path` to the server's error policy, if there is a server.
fn report(reporter: Option<&Dispatcher>, error: &Error, path: &str) {
    if let Some(dispatcher) = reporter {
        dispatcher.0.policy.report(error, Some(path));
    }
}

/// A call's event stream, guarded: a panicking poll ends it with an internal error (like a
/// panicking handler), and every error that ends it is reported. One adapter where the
/// stream passes every event.
struct Guarded {
    events: EventStream,
    path: Arc<str>,
    reporter: Option<Dispatcher>,
    panicked: bool,
}

impl Stream for Guarded {
    type Item = Result<EncodedEvent, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.panicked {
            return Poll::Ready(None);
        }
        let events = &mut this.events;
        let polled = std::panic::catch_unwind(AssertUnwindSafe(|| {
            guard::contained(|| events.poll_next_unpin(cx))
        }));
        let event = match polled {
            Ok(Poll::Ready(Some(event))) => event,
            Ok(polled) => return polled,
            Err(payload) => {
                this.panicked = true;
                Err(panic_error(&this.path, &*payload))
            }
        };
        if let Err(e) = &event {
            report(this.reporter.as_ref(), e, &this.path);
        }
        Poll::Ready(Some(event))
    }
}

/// A panic payload as an internal error: the client sees a generic message.
fn panic_error(path: &str, payload: &(dyn Any + Send)) -> Error {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with a non-string payload".to_owned());
    Error::internal(format!("procedure `{path}` panicked: {text}"))
}

/// A context created for one HTTP request or one WebSocket connection, its type erased.
pub(crate) struct Context(Box<dyn Any + Send + Sync>);

impl Context {
    /// Erases `ctx`'s type (a context without data, like `()`, allocates nothing).
    pub(crate) fn new<Ctx: Send + Sync + 'static>(ctx: Ctx) -> Self {
        Context(Box::new(ctx))
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Context")
    }
}

type ErasedHandler = Arc<dyn Fn(&Context, &Call) -> BoxFuture<Result<Reply, Error>> + Send + Sync>;
/// How a server makes the context of each request or connection, its type erased.
#[derive(Clone)]
pub(crate) enum ContextFn {
    /// The same for every request (`Server::new`: `Ctx::default()`). Nothing of the request is
    /// read, so the HTTP transport does not describe it: no `RequestInfo`, no cell for
    /// response headers, no future.
    Fixed(Arc<dyn Fn() -> Context + Send + Sync>),
    /// Made from the request (`Server::with_context`).
    FromRequest(Arc<dyn Fn(RequestInfo) -> BoxFuture<Result<Context, Error>> + Send + Sync>),
}

/// A procedure as the dispatcher holds it.
pub(crate) struct Entry {
    path: Arc<str>,
    kind: ProcedureKind,
    meta: Meta,
    /// Whether the input is a binary or multipart body rather than JSON.
    body: Option<BodyKind>,
    handler: ErasedHandler,
}

impl Entry {
    /// The full dotted path.
    pub(crate) fn path(&self) -> &Arc<str> {
        &self.path
    }

    /// Query, mutation or subscription.
    pub(crate) fn kind(&self) -> ProcedureKind {
        self.kind
    }

    /// The body its input takes, if not JSON.
    pub(crate) fn body(&self) -> Option<BodyKind> {
        self.body
    }
}

/// FNV-1a for procedure paths: every call looks its path up, and SipHash cost ~10× more on
/// these short keys. Flooding is no concern: the keys are the router's own, fixed at startup;
/// a client only chooses what to look up.
#[derive(Clone, Copy, Default)]
struct PathHash;

impl std::hash::BuildHasher for PathHash {
    type Hasher = Fnv;
    fn build_hasher(&self) -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// A server's router, create-context function and error policy, with `Ctx` erased: the one
/// thing transports talk to. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Dispatcher(Arc<Inner>);

struct Inner {
    procedures: HashMap<Box<str>, Entry, PathHash>,
    create_context: ContextFn,
    policy: ErrorPolicy,
    options: CallOptions,
}

impl fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dispatcher")
            .field("procedures", &self.0.procedures.len())
            .field("policy", &self.0.policy)
            .finish_non_exhaustive()
    }
}

impl Dispatcher {
    /// Erases `Ctx`: each procedure (with its full path) is called with a clone of the
    /// request's context. `options` are the root router's.
    pub(crate) fn new<'r, Ctx: Clone + Send + Sync + 'static>(
        procedures: impl Iterator<Item = (&'r str, &'r Procedure<Ctx>)>,
        options: CallOptions,
        create_context: ContextFn,
        policy: ErrorPolicy,
    ) -> Self {
        let procedures = procedures
            .map(|(path, procedure)| {
                let (kind, meta) = (procedure.kind(), procedure.meta().clone());
                let body = procedure.input().body_kind();
                let procedure = procedure.clone();
                let handler: ErasedHandler = Arc::new(move |ctx: &Context, call: &Call| {
                    let Some(ctx) = ctx.0.downcast_ref::<Ctx>() else {
                        return Box::pin(std::future::ready(Err(Error::internal(
                            "a context of another type reached the dispatcher",
                        ))));
                    };
                    procedure.invoke(ctx.clone(), call)
                });
                let entry = Entry {
                    path: Arc::from(path),
                    kind,
                    meta,
                    body,
                    handler,
                };
                (Box::from(path), entry)
            })
            .collect();
        let mut options = options;
        options.validate_output |= policy.dev_mode;
        let mut policy = policy;
        policy.superjson = options.superjson;
        guard::install_hook();
        Dispatcher(Arc::new(Inner {
            procedures,
            create_context,
            policy,
            options,
        }))
    }

    /// The procedure at `path`, if there is one (routing; nothing is reported).
    pub(crate) fn entry(&self, path: &str) -> Option<&Entry> {
        self.0.procedures.get(path)
    }

    /// The kind of the procedure at `path`, if there is one (routing; nothing is reported).
    pub(crate) fn kind_of(&self, path: &str) -> Option<ProcedureKind> {
        self.entry(path).map(Entry::kind)
    }

    /// The procedure at `path`, if it is what the caller wants (reported otherwise).
    pub(crate) fn lookup(&self, path: &str, want: Want) -> Result<&Entry, Error> {
        self.resolve(path, want, self.entry(path))
    }

    /// Like [`Dispatcher::lookup`], for an entry already looked up with [`Dispatcher::entry`].
    pub(crate) fn resolve<'d>(
        &self,
        path: &str,
        want: Want,
        found: Option<&'d Entry>,
    ) -> Result<&'d Entry, Error> {
        lookup(path, want, found, |e| e.kind).map_err(|e| self.reported(e, Some(path)))
    }

    /// Creates the context of a request or connection (an error is reported here, once,
    /// however many calls it fails).
    pub(crate) async fn create_context(&self, info: RequestInfo) -> Result<Context, Error> {
        self.create_context_with(|| info).await
    }

    /// Whether contexts are made from the request: if not, [`Dispatcher::create_context_with`]
    /// never asks for a `RequestInfo`, and nothing can set response headers.
    pub(crate) fn reads_request(&self) -> bool {
        matches!(self.0.create_context, ContextFn::FromRequest(_))
    }

    /// [`Dispatcher::create_context`], describing the request only if the context is made
    /// from it.
    pub(crate) async fn create_context_with(
        &self,
        info: impl FnOnce() -> RequestInfo,
    ) -> Result<Context, Error> {
        // A panicking create-context function (or `Default`) fails the request, like a
        // panicking handler.
        let failed = |payload: Box<dyn Any + Send>| panic_error("(create context)", &*payload);
        let create = match &self.0.create_context {
            ContextFn::Fixed(make) => {
                return std::panic::catch_unwind(AssertUnwindSafe(|| guard::contained(&**make)))
                    .map_err(|payload| self.reported(failed(payload), None));
            }
            ContextFn::FromRequest(create) => create,
        };
        let info = info();
        let started =
            std::panic::catch_unwind(AssertUnwindSafe(|| guard::contained(|| create(info))));
        let created = match started {
            Ok(fut) => AssertUnwindSafe(Contained(fut)).catch_unwind().await,
            Err(payload) => Err(payload),
        };
        created
            .unwrap_or_else(|payload| Err(failed(payload)))
            .map_err(|e| self.reported(e, None))
    }

    /// Runs a call of `entry` with a clone of `ctx`. Its error, and any error that ends its
    /// event stream, is reported once, here.
    pub(crate) fn call(
        &self,
        entry: &Entry,
        ctx: &Context,
        input: RawInput,
        last_event_id: Option<&str>,
        site: Site,
    ) -> Invoked {
        self.call_with(entry, ctx, input, None, last_event_id, site)
    }

    /// Runs a call whose input is a binary or multipart body (HTTP only).
    pub(crate) fn call_with_body(
        &self,
        entry: &Entry,
        ctx: &Context,
        body: RequestBody,
    ) -> Invoked {
        self.call_with(
            entry,
            ctx,
            None,
            Some(body),
            None,
            Site::of(Via::Http, None),
        )
    }

    fn call_with(
        &self,
        entry: &Entry,
        ctx: &Context,
        input: RawInput,
        body: Option<RequestBody>,
        last_event_id: Option<&str>,
        site: Site,
    ) -> Invoked {
        let invocation = Invocation {
            path: &entry.path,
            kind: entry.kind,
            meta: &entry.meta,
            via: site.via,
            batch_index: site.batch_index,
            options: CallOptions {
                streaming: site.streaming,
                ..self.0.options
            },
        };
        invoke(
            invocation,
            input,
            body,
            last_event_id,
            |call| (entry.handler)(ctx, call),
            Some(self.clone()),
        )
    }

    /// Reports an error produced outside a call (parsing, routing, limits) and returns it.
    pub(crate) fn reported(&self, error: Error, path: Option<&str>) -> Error {
        self.0.policy.report(&error, path);
        error
    }

    /// How errors are shaped for clients.
    pub(crate) fn policy(&self) -> &ErrorPolicy {
        &self.0.policy
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::sync::Mutex;
    use tracing::field::{Field, Visit};
    use tracing_subscriber::layer::{Context as LayerContext, SubscriberExt};

    /// Collects the fields of every `trpc.call` span.
    #[derive(Clone, Default)]
    struct Spans(Arc<Mutex<BTreeMap<u64, BTreeMap<String, String>>>>);

    struct Fields<'a>(&'a mut BTreeMap<String, String>);

    impl Visit for Fields<'_> {
        fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
            self.0.insert(field.name().to_owned(), format!("{value:?}"));
        }
        fn record_str(&mut self, field: &Field, value: &str) {
            self.0.insert(field.name().to_owned(), value.to_owned());
        }
    }

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Spans {
        fn on_new_span(
            &self,
            attrs: &tracing::span::Attributes<'_>,
            id: &tracing::span::Id,
            _: LayerContext<'_, S>,
        ) {
            if attrs.metadata().name() == "trpc.call" {
                let mut spans = self.0.lock().expect("lock");
                attrs.record(&mut Fields(spans.entry(id.into_u64()).or_default()));
            }
        }
        fn on_record(
            &self,
            id: &tracing::span::Id,
            values: &tracing::span::Record<'_>,
            _: LayerContext<'_, S>,
        ) {
            if let Some(fields) = self.0.lock().expect("lock").get_mut(&id.into_u64()) {
                values.record(&mut Fields(fields));
            }
        }
    }

    #[test]
    fn every_call_has_one_span_with_its_outcome() {
        let router = crate::Router::new()
            .add(crate::Procedure::query("ok", |_: (), (): ()| async {
                Ok::<_, Error>(1)
            }))
            .add(crate::Procedure::query("missing", |_: (), (): ()| async {
                Err::<u8, _>(Error::not_found("gone"))
            }));
        let spans = Spans::default();
        let subscriber = tracing_subscriber::registry().with(spans.clone());
        tracing::subscriber::with_default(subscriber, || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("rt");
            let ok: u8 = rt.block_on(router.call((), "ok", &())).expect("ok");
            assert_eq!(ok, 1);
            let err = rt
                .block_on(router.call::<_, u8>((), "missing", &()))
                .expect_err("error");
            assert_eq!(err.code(), ErrorCode::NotFound);
        });
        let spans = spans.0.lock().expect("lock");
        let mut seen: Vec<_> = spans.values().collect();
        seen.sort_by_key(|f| f.get("path").cloned());
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert_eq!(seen[0]["path"], "missing");
        assert_eq!(seen[0]["outcome"], "NOT_FOUND");
        assert_eq!(seen[1]["path"], "ok");
        assert_eq!(seen[1]["outcome"], "OK");
        for fields in seen {
            assert_eq!(fields["kind"], "query");
            assert_eq!(fields["transport"], "caller");
            assert!(fields.contains_key("duration_us"), "{fields:?}");
        }
    }

    #[test]
    fn lookup_words_not_found_as_trpc_does() {
        let kind = |k: &ProcedureKind| *k;
        let e = lookup("a", Want::Any, None, kind).expect_err("missing");
        assert_eq!(e.message(), "No procedure found on path \"a\"");
        let e = lookup(
            "a",
            Want::Kind(ProcedureKind::Mutation),
            Some(ProcedureKind::Query),
            kind,
        )
        .expect_err("wrong kind");
        assert_eq!(e.code(), ErrorCode::NotFound);
        assert_eq!(e.message(), "No \"mutation\"-procedure on path \"a\"");
        let e = lookup("a", Want::Unary, Some(ProcedureKind::Subscription), kind)
            .expect_err("subscription");
        assert_eq!(e.code(), ErrorCode::BadRequest);
        assert!(lookup("a", Want::Any, Some(ProcedureKind::Subscription), kind).is_ok());
    }
}
