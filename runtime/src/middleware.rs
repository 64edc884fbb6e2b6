//! Middleware: one shape, `call(ctx, &call, next)`, for context refinement (tRPC's
//! `protectedProcedure`) and for around-logic (logging, timing, rate limits).

use std::any::{Any, TypeId};
use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use serde_json::value::RawValue;

use crate::error::Error;
use crate::procedure::{BoxFuture, Handler, Procedure, ProcedureKind, RawInput, RawOutput};
use crate::subscription::EventStream;
use crate::validate::UnknownFields;

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
    values: Arc<BTreeMap<TypeId, Arc<dyn Any + Send + Sync>>>,
}

impl Meta {
    /// The value of type `T`, if the procedure has one.
    pub fn get<T: Any>(&self) -> Option<&T> {
        self.values
            .get(&TypeId::of::<T>())
            .and_then(|v| v.downcast_ref::<T>())
    }

    pub(crate) fn insert<T: Any + Send + Sync>(&mut self, value: T) {
        Arc::make_mut(&mut self.values).insert(TypeId::of::<T>(), Arc::new(value));
    }
}

impl fmt::Debug for Meta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Meta")
            .field("values", &self.values.len())
            .finish()
    }
}

/// Options that apply to every call of a router (set on the root router).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CallOptions {
    pub(crate) unknown_fields: UnknownFields,
    pub(crate) validate_output: bool,
}

/// One call, as middleware sees it: path, kind, meta and the raw input.
#[derive(Debug)]
pub struct Call {
    pub(crate) path: Arc<str>,
    pub(crate) kind: ProcedureKind,
    pub(crate) meta: Meta,
    pub(crate) input: RawInput,
    pub(crate) options: CallOptions,
}

impl Call {
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
    pub fn input(&self) -> Option<&RawValue> {
        self.input.as_deref()
    }
}

/// What a procedure answered: JSON text, nothing (`undefined`), or, for a subscription, a
/// stream of events.
pub struct Reply(pub(crate) ReplyKind);

pub(crate) enum ReplyKind {
    Value(RawOutput),
    Stream(EventStream),
}

impl Reply {
    pub(crate) fn value(output: RawOutput) -> Self {
        Reply(ReplyKind::Value(output))
    }

    pub(crate) fn stream(events: EventStream) -> Self {
        Reply(ReplyKind::Stream(events))
    }

    /// The output as JSON text; `None` for `undefined` (a `()` output) and for streams.
    pub fn json(&self) -> Option<&str> {
        self.json_ref().map(RawValue::get)
    }

    /// Whether this is a subscription's event stream.
    pub fn is_stream(&self) -> bool {
        matches!(self.0, ReplyKind::Stream(_))
    }

    pub(crate) fn json_ref(&self) -> Option<&RawValue> {
        match &self.0 {
            ReplyKind::Value(v) => v.as_deref(),
            ReplyKind::Stream(_) => None,
        }
    }
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            ReplyKind::Value(v) => f.debug_tuple("Reply").field(v).finish(),
            ReplyKind::Stream(_) => f.write_str("Reply(<stream>)"),
        }
    }
}

/// The rest of the chain: the inner middleware and, last, the procedure.
pub struct Next<Ctx> {
    handler: Handler<Ctx>,
    call: Arc<Call>,
}

impl<Ctx> Next<Ctx> {
    /// Runs the rest of the chain with `ctx` (the refined context, for a refining middleware).
    pub async fn run(self, ctx: Ctx) -> Result<Reply, Error> {
        (self.handler)(ctx, self.call).await
    }
}

impl<Ctx> fmt::Debug for Next<Ctx> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Next")
            .field("path", &self.call.path)
            .finish_non_exhaustive()
    }
}

/// A middleware: gets the context, the call and the rest of the chain.
///
/// `In` is the context it receives, `Out` the context it passes on. A refining middleware
/// (`AppCtx` → `Authed`) makes procedures that take `&Authed` reachable, and only through it:
/// the compiler checks it. An around middleware has `In = Out`.
///
/// ```
/// use oxrpc::{Call, Error, Middleware, Next, Reply};
///
/// #[derive(Clone)]
/// pub struct AppCtx { pub token: Option<String> }
/// pub struct Authed { pub user: String }
///
/// /// Lets only callers with a token through, and tells the procedure who they are.
/// #[derive(Clone, Copy, Default)]
/// pub struct RequireUser;
///
/// impl Middleware for RequireUser {
///     type In = AppCtx;
///     type Out = Authed;
///     async fn call(&self, ctx: AppCtx, _call: &Call, next: Next<Authed>) -> Result<Reply, Error> {
///         let user = ctx.token.ok_or_else(Error::unauthorized)?;
///         next.run(Authed { user }).await
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a middleware",
    label = "`use =` takes a type that implements `oxrpc::Middleware` (and `Default`), or a tuple of them",
    note = "implement `oxrpc::Middleware` for `{Self}`: `type In`, `type Out` and `async fn call(&self, ctx, call, next)`"
)]
pub trait Middleware: Send + Sync + 'static {
    /// The context this middleware receives.
    type In: Send + 'static;
    /// The context it passes to the rest of the chain.
    type Out: Send + 'static;

    /// Runs around the rest of the chain. Return an error to short-circuit.
    fn call(
        &self,
        ctx: Self::In,
        call: &Call,
        next: Next<Self::Out>,
    ) -> impl Future<Output = Result<Reply, Error>> + Send;
}

/// One middleware or a stack of them (`(A, B)`: `A` runs first), attachable to procedures
/// (`#[procedure(use = …)]`, [`Procedure::with`]) and routers ([`crate::Router::with`]).
///
/// Declare a stack once and reuse it: `pub type AdminBase = (RequireUser, RequireAdmin);`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a middleware stack",
    note = "implement `oxrpc::Middleware` for it, or use a tuple of middlewares whose contexts chain: `(A, B)` needs `A::Out == B::In`"
)]
pub trait Layer: Send + Sync + 'static {
    /// The context the stack receives.
    type In: Send + 'static;
    /// The context the procedure receives.
    type Out: Send + 'static;

    /// Wraps a procedure.
    fn apply(self, procedure: Procedure<Self::Out>) -> Procedure<Self::In>;
}

impl<M: Middleware> Layer for M {
    type In = M::In;
    type Out = M::Out;

    fn apply(self, procedure: Procedure<M::Out>) -> Procedure<M::In> {
        let middleware = Arc::new(self);
        procedure.map_handler(move |inner: Handler<M::Out>| -> Handler<M::In> {
            Arc::new(
                move |ctx: M::In, call: Arc<Call>| -> BoxFuture<Result<Reply, Error>> {
                    let middleware = Arc::clone(&middleware);
                    let next = Next {
                        handler: Arc::clone(&inner),
                        call: Arc::clone(&call),
                    };
                    Box::pin(async move { middleware.call(ctx, &call, next).await })
                },
            )
        })
    }
}

impl<A: Layer, B: Layer<In = A::Out>> Layer for (A, B) {
    type In = A::In;
    type Out = B::Out;

    fn apply(self, procedure: Procedure<B::Out>) -> Procedure<A::In> {
        self.0.apply(self.1.apply(procedure))
    }
}

impl<A: Layer, B: Layer<In = A::Out>, C: Layer<In = B::Out>> Layer for (A, B, C) {
    type In = A::In;
    type Out = C::Out;

    fn apply(self, procedure: Procedure<C::Out>) -> Procedure<A::In> {
        self.0.apply(self.1.apply(self.2.apply(procedure)))
    }
}

impl<A: Layer, B: Layer<In = A::Out>, C: Layer<In = B::Out>, D: Layer<In = C::Out>> Layer
    for (A, B, C, D)
{
    type In = A::In;
    type Out = D::Out;

    fn apply(self, procedure: Procedure<D::Out>) -> Procedure<A::In> {
        self.0
            .apply(self.1.apply(self.2.apply(self.3.apply(procedure))))
    }
}
