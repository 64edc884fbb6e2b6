//! Middleware: one shape, `call(ctx, &call, next)`, for context refinement (tRPC's
//! `protectedProcedure`) and for around-logic (logging, timing, rate limits).

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use crate::call::{BoxFuture, Call, CallArg, Handler, Reply};
use crate::error::Error;
use crate::procedure::Procedure;

// Here rather than in `procedure`: a procedure knows nothing of middleware, middleware wraps
// procedures (keeps the module graph free of circles).
impl<Ctx> Procedure<Ctx> {
    /// Wraps the procedure in a middleware (or a stack): a procedure over the refined context
    /// `L::Out` becomes one over `L::In`. The middleware runs before input validation.
    pub fn with<L: Layer<Out = Ctx>>(self, layer: L) -> Procedure<L::In> {
        layer.apply(self)
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
        (self.handler)(ctx, CallArg::Shared(self.call)).await
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
                move |ctx: M::In, call: CallArg<'_>| -> BoxFuture<Result<Reply, Error>> {
                    // The middleware's future and the rest of the chain keep the call.
                    let call = call.shared();
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
