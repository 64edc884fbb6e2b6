//! The router: a sorted map from dotted paths to procedures.

use std::collections::BTreeMap;
use std::fmt;
use std::panic::Location;
use std::sync::Arc;

use serde::Serialize;

use crate::call::{CallOptions, ProcedureKind};
use crate::dispatch::{self, Invocation, Via, Want};
use crate::error::Error;
use crate::middleware::Layer;
use crate::procedure::Procedure;
use crate::protocol::error::{ErrorFormatter, ErrorInfo};
use crate::types::TypeInfo;
use crate::validate::UnknownFields;

/// Names the TypeScript client proxy cannot reach (`then` would make every router a thenable).
const RESERVED: &[&str] = &["then", "call", "apply"];

/// Why a router could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouterError {
    /// Two procedures (or a procedure and a namespace) claim the same path.
    #[error("duplicate procedure path `{path}`: defined at {first} and again at {second}")]
    DuplicatePath {
        /// The contested path.
        path: String,
        /// Where the first one was defined.
        first: String,
        /// Where the second one was defined.
        second: String,
    },
    /// A router with root-only settings (`unknown_fields`, `validate_outputs`,
    /// `error_formatter`) was nested or merged: they apply to the whole API, so they are set
    /// on the root router, never dropped silently.
    #[error(
        "a router nested or merged at {location} sets `{setting}`, a root-only setting: set it on the root router instead"
    )]
    RootSetting {
        /// The setting.
        setting: &'static str,
        /// Where the router was nested or merged.
        location: String,
    },
    /// A procedure or namespace name that tRPC clients cannot use.
    #[error("invalid procedure or namespace name `{name}` (at {location}): {reason}")]
    InvalidName {
        /// The offending name.
        name: String,
        /// Why it cannot be used.
        reason: &'static str,
        /// Where it was given.
        location: String,
    },
}

/// Checks one path segment; `Err` carries the reason.
pub(crate) fn check_name(name: &str) -> Result<(), &'static str> {
    let mut chars = name.chars();
    match chars.next() {
        None => return Err("names cannot be empty"),
        Some(c) if !(c.is_ascii_alphabetic() || c == '_' || c == '$') => {
            return Err("names must start with an ASCII letter, `_` or `$`");
        }
        _ => {}
    }
    if name.contains(['.', ',']) {
        return Err("`.` and `,` separate paths on the wire and cannot appear in a name");
    }
    if !chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$') {
        return Err("names may only use ASCII letters, digits, `_` and `$`");
    }
    if RESERVED.contains(&name) {
        return Err("`then`, `call` and `apply` are reserved by the tRPC client");
    }
    Ok(())
}

/// A tree of procedures, addressed by dotted paths such as `user.byId`.
///
/// `Ctx` is the context every procedure receives, built per request by the server's
/// create-context function.
///
/// ```
/// use oxrpc::{Error, Procedure, Router};
///
/// let user = Router::new()
///     .add(Procedure::query("byId", |_: (), id: u32| async move { Ok::<_, Error>(id) }));
/// let router = Router::new().nest("user", user);
/// assert_eq!(router.paths().collect::<Vec<_>>(), ["user.byId"]);
/// ```
pub struct Router<Ctx> {
    procedures: BTreeMap<String, Procedure<Ctx>>,
    options: CallOptions,
    formatter: Option<ErrorFormatter>,
}

impl<Ctx> Default for Router<Ctx> {
    fn default() -> Self {
        Router {
            procedures: BTreeMap::new(),
            options: CallOptions::default(),
            formatter: None,
        }
    }
}

impl<Ctx> Clone for Router<Ctx> {
    fn clone(&self) -> Self {
        Router {
            procedures: self.procedures.clone(),
            options: self.options,
            formatter: self.formatter.clone(),
        }
    }
}

/// A value that can be added to a `Router<Ctx>`: a `Procedure<Ctx>`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be added to a `Router<{Ctx}>`: its context type is not the router's",
    label = "this procedure needs a different context than the router provides",
    note = "a procedure that takes a refined context (e.g. `ctx: &Authed`) is reachable only through a middleware that produces it",
    note = "attach one with `#[procedure(…, use = YourMiddleware)]`, or add the procedure to a `Router<Authed>` and call `.with(YourMiddleware)` on that router"
)]
pub trait IntoProcedure<Ctx> {
    /// The procedure.
    fn into_procedure(self) -> Procedure<Ctx>;
}

impl<Ctx> IntoProcedure<Ctx> for Procedure<Ctx> {
    fn into_procedure(self) -> Procedure<Ctx> {
        self
    }
}

impl<Ctx> fmt::Debug for Router<Ctx> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.procedures.iter()).finish()
    }
}

impl<Ctx> Router<Ctx> {
    /// An empty router.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a procedure under its name.
    ///
    /// # Panics
    /// On a duplicate path or an unusable name, naming the source locations involved. Use
    /// [`Router::try_add`] to get the error instead.
    #[track_caller]
    #[allow(clippy::should_implement_trait)] // a builder method, not arithmetic
    pub fn add(self, procedure: impl IntoProcedure<Ctx>) -> Self {
        self.try_add(procedure).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Adds a procedure under its name, or says why it cannot be added.
    pub fn try_add(mut self, procedure: impl IntoProcedure<Ctx>) -> Result<Self, RouterError> {
        let procedure = procedure.into_procedure();
        let location = procedure.location();
        check_name(procedure.name()).map_err(|reason| RouterError::InvalidName {
            name: procedure.name().to_owned(),
            reason,
            location: location.to_string(),
        })?;
        let path = procedure.name().to_owned();
        self.insert(path, procedure)?;
        Ok(self)
    }

    /// Puts every procedure of `other` under `prefix.` (`user` + `byId` → `user.byId`).
    ///
    /// # Panics
    /// On a duplicate path or an unusable prefix (see [`Router::try_nest`]).
    #[track_caller]
    pub fn nest(self, prefix: &str, other: Router<Ctx>) -> Self {
        let location = Location::caller();
        self.try_nest_at(prefix, other, location)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`Router::nest`], returning the error instead of panicking.
    #[track_caller]
    pub fn try_nest(self, prefix: &str, other: Router<Ctx>) -> Result<Self, RouterError> {
        self.try_nest_at(prefix, other, Location::caller())
    }

    fn try_nest_at(
        mut self,
        prefix: &str,
        other: Router<Ctx>,
        location: &'static Location<'static>,
    ) -> Result<Self, RouterError> {
        check_name(prefix).map_err(|reason| RouterError::InvalidName {
            name: prefix.to_owned(),
            reason,
            location: location.to_string(),
        })?;
        other.check_no_root_settings(location)?;
        for (path, procedure) in other.procedures {
            self.insert(format!("{prefix}.{path}"), procedure)?;
        }
        Ok(self)
    }

    /// Adds every procedure of `other` at the same level.
    ///
    /// # Panics
    /// On a duplicate path (see [`Router::try_merge`]).
    #[track_caller]
    pub fn merge(self, other: Router<Ctx>) -> Self {
        self.try_merge(other).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`Router::merge`], returning the error instead of panicking.
    #[track_caller]
    pub fn try_merge(mut self, other: Router<Ctx>) -> Result<Self, RouterError> {
        other.check_no_root_settings(Location::caller())?;
        for (path, procedure) in other.procedures {
            self.insert(path, procedure)?;
        }
        Ok(self)
    }

    /// Root-only settings must not be dropped by `nest`/`merge`.
    fn check_no_root_settings(
        &self,
        location: &'static Location<'static>,
    ) -> Result<(), RouterError> {
        let defaults = CallOptions::default();
        let setting = if self.options.unknown_fields != defaults.unknown_fields {
            Some("unknown_fields")
        } else if self.options.validate_output != defaults.validate_output {
            Some("validate_outputs")
        } else if self.formatter.is_some() {
            Some("error_formatter")
        } else if self.options.superjson {
            Some("superjson")
        } else {
            None
        };
        match setting {
            Some(setting) => Err(RouterError::RootSetting {
                setting,
                location: location.to_string(),
            }),
            None => Ok(()),
        }
    }

    fn insert(&mut self, path: String, procedure: Procedure<Ctx>) -> Result<(), RouterError> {
        // A path may not be both a procedure and a namespace (`a` and `a.b`): the client's
        // proxy could not reach both.
        let clash = self.procedures.get(&path).or_else(|| {
            let as_namespace = format!("{path}.");
            self.procedures
                .range(as_namespace.clone()..)
                .next()
                .filter(|(p, _)| p.starts_with(&as_namespace))
                .map(|(_, p)| p)
                .or_else(|| {
                    path.match_indices('.')
                        .find_map(|(i, _)| self.procedures.get(&path[..i]))
                })
        });
        if let Some(existing) = clash {
            return Err(RouterError::DuplicatePath {
                path,
                first: existing.location().to_string(),
                second: procedure.location().to_string(),
            });
        }
        self.procedures.insert(path, procedure);
        Ok(())
    }

    /// Wraps every procedure of this router in a middleware (or a stack): a router over the
    /// refined context `L::Out` becomes one over `L::In`, ready to nest into the main router.
    /// Procedures added afterwards are not wrapped.
    ///
    /// ```
    /// use oxrpc::{Call, Error, Middleware, Next, Procedure, Reply, Router};
    ///
    /// #[derive(Clone, Default)]
    /// struct AppCtx { token: Option<String> }
    /// struct Authed { user: String }
    ///
    /// #[derive(Clone, Default)]
    /// struct RequireUser;
    /// impl Middleware for RequireUser {
    ///     type In = AppCtx;
    ///     type Out = Authed;
    ///     async fn call(&self, ctx: AppCtx, _: &Call, next: Next<Authed>) -> Result<Reply, Error> {
    ///         next.run(Authed { user: ctx.token.ok_or_else(Error::unauthorized)? }).await
    ///     }
    /// }
    ///
    /// let private: Router<AppCtx> = Router::<Authed>::new()
    ///     .add(Procedure::query("me", |ctx: Authed, (): ()| async move { Ok::<_, Error>(ctx.user) }))
    ///     .with(RequireUser);
    /// let app = Router::new().nest("private", private);
    /// ```
    #[allow(clippy::needless_pass_by_value)] // taken by value like every builder argument
    pub fn with<L>(self, layer: L) -> Router<L::In>
    where
        L: Layer<Out = Ctx> + Clone,
    {
        Router {
            procedures: self
                .procedures
                .into_iter()
                .map(|(path, p)| (path, layer.clone().apply(p)))
                .collect(),
            options: self.options,
            formatter: self.formatter,
        }
    }

    /// What to do with unknown object keys in inputs (default: ignore them, like serde and
    /// zod). Applies to the whole router: set it on the root.
    pub fn unknown_fields(mut self, policy: UnknownFields) -> Self {
        self.options.unknown_fields = policy;
        self
    }

    /// Check every output against its own JSON Schema (a failure is an internal error).
    /// Dev mode of [`crate::Server`] turns this on. Set it on the root router.
    pub fn validate_outputs(mut self, on: bool) -> Self {
        self.options.validate_output = on;
        self
    }

    /// Speaks the superjson transformer (tRPC's `transformer: superjson`): every input, output,
    /// error and event travels as superjson writes it, so the values of [`crate::js`]
    /// (`Date`, `bigint`, `Set`, `Map`) and `undefined` reach the client as themselves. The
    /// generated `.d.ts` says `transformer: true`, so the client's links must be given
    /// `transformer: superjson` (a type error otherwise). Set it on the root router.
    ///
    /// ```
    /// use oxrpc::{js::Date, Error, Procedure, Router};
    ///
    /// let router = Router::<()>::new()
    ///     .add(Procedure::query("now", |_: (), (): ()| async { Ok::<_, Error>(Date::now()) }))
    ///     .superjson();
    /// assert!(router.uses_superjson());
    /// ```
    pub fn superjson(mut self) -> Self {
        self.options.superjson = true;
        self
    }

    /// Whether the router speaks the superjson transformer ([`Router::superjson`]).
    pub fn uses_superjson(&self) -> bool {
        self.options.superjson
    }

    /// Shapes `error.data` for clients (tRPC's `errorFormatter`): the fields of the value `f`
    /// returns are added to every error's `data` (beside `code`, `httpStatus`, `path`, …,
    /// which it cannot replace), and the generated `.d.ts` types them. Set it on the root
    /// router.
    ///
    /// ```
    /// use oxrpc::{Error, ErrorInfo, Router};
    ///
    /// #[derive(serde::Serialize, ts_rs::TS, schemars::JsonSchema)]
    /// struct Extra { retryable: bool }
    ///
    /// let router = Router::<()>::new().error_formatter(|e: &Error, _: &ErrorInfo<'_>| Extra {
    ///     retryable: e.code().http_status() >= 500,
    /// });
    /// ```
    pub fn error_formatter<D, F>(mut self, f: F) -> Self
    where
        D: Serialize + ts_rs::TS + schemars::JsonSchema + 'static,
        F: Fn(&Error, &ErrorInfo<'_>) -> D + Send + Sync + 'static,
    {
        self.formatter = Some(ErrorFormatter::new(f));
        self
    }

    /// The type of the error formatter's extra `error.data` fields, if one is set.
    pub fn error_data_type(&self) -> Option<&TypeInfo> {
        self.formatter.as_ref().map(|f| &f.data_type)
    }

    pub(crate) fn formatter(&self) -> Option<&ErrorFormatter> {
        self.formatter.as_ref()
    }

    /// The procedure at `path`, if any.
    pub fn get(&self, path: &str) -> Option<&Procedure<Ctx>> {
        self.procedures.get(path)
    }

    /// Every path, in sorted order.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.procedures.keys().map(String::as_str)
    }

    /// Every procedure with its path, in sorted order.
    pub fn procedures(&self) -> impl Iterator<Item = (&str, &Procedure<Ctx>)> {
        self.procedures.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// How many procedures the router holds.
    pub fn len(&self) -> usize {
        self.procedures.len()
    }

    /// Whether the router holds no procedure.
    pub fn is_empty(&self) -> bool {
        self.procedures.is_empty()
    }
}

impl<Ctx: Send + 'static> Router<Ctx> {
    /// Calls a procedure from Rust with a given context, exactly as a network call would
    /// (same input decoding, same panic handling), and deserializes its output.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// use oxrpc::{Error, Procedure, Router};
    /// let router = Router::new()
    ///     .add(Procedure::query("double", |_: (), n: i32| async move { Ok::<_, Error>(n * 2) }));
    /// let out: i32 = router.call((), "double", &21).await?;
    /// assert_eq!(out, 42);
    /// # Ok::<(), Error>(()) }).unwrap();
    /// ```
    pub async fn call<I, O>(&self, ctx: Ctx, path: &str, input: &I) -> Result<O, Error>
    where
        I: Serialize + ?Sized,
        O: serde::de::DeserializeOwned,
    {
        let raw = serde_json::to_string(input)
            .map(crate::call::InputText::written)
            .map_err(Error::internal)?;
        let out = self
            .invoke(ctx, path, Want::Unary, Some(raw), None)?
            .await?;
        serde_json::from_str(out.json().unwrap_or("null")).map_err(Error::internal)
    }

    /// Subscribes from Rust with a given context, exactly as a WebSocket client would (same
    /// middleware, validation and panic handling): a stream of `(id, data)` for tracked
    /// events, `(None, data)` for plain ones. Pass `last_event_id` to resume.
    pub async fn subscribe<I, T>(
        &self,
        ctx: Ctx,
        path: &str,
        input: &I,
        last_event_id: Option<&str>,
    ) -> Result<
        impl futures_util::Stream<Item = Result<(Option<String>, T), Error>> + Send + 'static,
        Error,
    >
    where
        I: Serialize + ?Sized,
        T: serde::de::DeserializeOwned + Send + 'static,
    {
        use futures_util::StreamExt;
        let raw = serde_json::to_string(input)
            .map(crate::call::InputText::written)
            .map_err(Error::internal)?;
        let want = Want::Kind(ProcedureKind::Subscription);
        let events = self
            .invoke(ctx, path, want, Some(raw), last_event_id)?
            .await?
            .into_events()?;
        Ok(events.map(|event| {
            let event = event?;
            let data = serde_json::from_str(event.data.get()).map_err(Error::internal)?;
            Ok((event.id, data))
        }))
    }

    /// The call options of this (root) router.
    pub(crate) fn options(&self) -> CallOptions {
        self.options
    }

    /// Looks up and starts a call from Rust, through the dispatch seam.
    fn invoke(
        &self,
        ctx: Ctx,
        path: &str,
        want: Want,
        input: crate::call::RawInput,
        last_event_id: Option<&str>,
    ) -> Result<dispatch::Invoked, Error> {
        let procedure = dispatch::lookup(path, want, self.get(path), |p| p.kind())?;
        let invocation = Invocation {
            path: &Arc::from(path),
            kind: procedure.kind(),
            meta: procedure.meta(),
            via: Via::Caller,
            batch_index: None,
            // Rust calls Rust: values, not superjson envelopes.
            options: CallOptions {
                superjson: false,
                ..self.options
            },
        };
        Ok(dispatch::invoke(
            invocation,
            input,
            None,
            last_event_id,
            |call| procedure.invoke(ctx, call),
            None,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn root_settings_are_not_dropped_by_nest_or_merge() {
        let strict = Router::new()
            .add(q("a"))
            .unknown_fields(UnknownFields::Reject);
        let err = Router::new()
            .try_nest("n", strict.clone())
            .expect_err("nest");
        assert!(err.to_string().contains("`unknown_fields`"), "{err}");
        let err = Router::new().try_merge(strict).expect_err("merge");
        assert!(matches!(err, RouterError::RootSetting { .. }), "{err}");
        let formatted = Router::new()
            .add(q("b"))
            .error_formatter(|_: &Error, _: &ErrorInfo<'_>| Extra { x: 1 });
        let err = Router::new().try_nest("n", formatted).expect_err("nest");
        assert!(err.to_string().contains("`error_formatter`"), "{err}");
        // Set on the root, after nesting: fine.
        Router::new()
            .nest("n", Router::new().add(q("a")))
            .unknown_fields(UnknownFields::Reject);
    }

    #[derive(serde::Serialize, ts_rs::TS, schemars::JsonSchema)]
    struct Extra {
        x: u8,
    }

    fn q(name: &str) -> Procedure<()> {
        Procedure::query(name, |_: (), (): ()| async { Ok::<_, Error>(1) })
    }

    #[test]
    fn names_are_checked() {
        for bad in [
            "then", "call", "apply", "a.b", "a,b", "", "1a", "a-b", "a b",
        ] {
            let err = Router::new().try_add(q(bad)).expect_err(bad);
            assert!(
                matches!(err, RouterError::InvalidName { .. }),
                "{bad}: {err}"
            );
        }
        for good in ["a", "byId", "_x", "$y", "a1"] {
            Router::new().try_add(q(good)).expect(good);
        }
        let err = Router::new()
            .try_nest("then", Router::new().add(q("a")))
            .expect_err("then");
        assert!(err.to_string().contains("reserved"), "{err}");
    }

    #[test]
    fn duplicates_name_both_locations() {
        let first = q("a");
        let second = q("a");
        let err = Router::new().add(first).try_add(second).expect_err("dup");
        let text = err.to_string();
        assert!(text.contains("duplicate procedure path `a`"), "{text}");
        assert_eq!(text.matches("router.rs:").count(), 2, "{text}");
    }

    #[test]
    fn a_path_cannot_be_procedure_and_namespace() {
        let nested = Router::new().add(q("b"));
        let err = Router::new()
            .add(q("a"))
            .try_nest("a", nested.clone())
            .expect_err("clash");
        assert!(err.to_string().contains("`a.b`"), "{err}");
        let err = Router::new()
            .nest("a", nested)
            .try_add(q("a"))
            .expect_err("clash");
        assert!(err.to_string().contains("`a`"), "{err}");
    }

    #[test]
    fn order_is_sorted_and_merge_works() {
        let r = Router::new()
            .add(q("b"))
            .merge(Router::new().add(q("a")))
            .nest("z", Router::new().add(q("c")));
        assert_eq!(r.paths().collect::<Vec<_>>(), ["a", "b", "z.c"]);
    }

    #[test]
    fn panics_become_internal_errors() {
        let r = Router::new().add(Procedure::query("boom", |_: (), (): ()| async {
            if true {
                panic!("kaboom");
            }
            Ok::<_, Error>(1)
        }));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("rt");
        let err = rt
            .block_on(r.call::<_, i32>((), "boom", &()))
            .expect_err("panic");
        assert_eq!(err.code(), ErrorCode::InternalServerError);
        assert_eq!(err.message(), "Internal server error");
        assert!(err.cause_chain().unwrap_or_default().contains("kaboom"));
    }
}
