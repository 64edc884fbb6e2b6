//! The router: a sorted map from dotted paths to procedures.

use std::collections::BTreeMap;
use std::fmt;
use std::panic::{AssertUnwindSafe, Location};

use futures_util::FutureExt;
use serde::Serialize;
use serde_json::value::RawValue;

use crate::error::{Error, ErrorCode};
use crate::procedure::{BoxFuture, Procedure, ProcedureKind, RawInput, RawOutput};

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
}

impl<Ctx> Default for Router<Ctx> {
    fn default() -> Self {
        Router {
            procedures: BTreeMap::new(),
        }
    }
}

impl<Ctx> Clone for Router<Ctx> {
    fn clone(&self) -> Self {
        Router {
            procedures: self.procedures.clone(),
        }
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
    pub fn add(self, procedure: Procedure<Ctx>) -> Self {
        self.try_add(procedure).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Adds a procedure under its name, or says why it cannot be added.
    pub fn try_add(mut self, procedure: Procedure<Ctx>) -> Result<Self, RouterError> {
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
    pub fn try_merge(mut self, other: Router<Ctx>) -> Result<Self, RouterError> {
        for (path, procedure) in other.procedures {
            self.insert(path, procedure)?;
        }
        Ok(self)
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
        let raw = serde_json::value::to_raw_value(input).map_err(Error::internal)?;
        let procedure = self.get(path).ok_or_else(|| no_procedure(path))?;
        let out = self.call_raw(procedure, ctx, Some(raw)).await?;
        let text = out.as_deref().map_or("null", RawValue::get);
        serde_json::from_str(text).map_err(Error::internal)
    }

    /// Runs `procedure`, turning a panic into `INTERNAL_SERVER_ERROR`.
    pub(crate) fn call_raw(
        &self,
        procedure: &Procedure<Ctx>,
        ctx: Ctx,
        input: RawInput,
    ) -> BoxFuture<Result<RawOutput, Error>> {
        let path = procedure.name().to_owned();
        let started = std::panic::catch_unwind(AssertUnwindSafe(|| procedure.invoke(ctx, input)));
        match started {
            Err(payload) => Box::pin(std::future::ready(Err(panic_error(&path, &*payload)))),
            Ok(fut) => Box::pin(
                AssertUnwindSafe(fut)
                    .catch_unwind()
                    .map(move |r| r.unwrap_or_else(|payload| Err(panic_error(&path, &*payload)))),
            ),
        }
    }
}

/// The NOT_FOUND error for an unknown path, worded as tRPC does.
pub(crate) fn no_procedure(path: &str) -> Error {
    Error::new(
        ErrorCode::NotFound,
        format!("No procedure found on path \"{path}\""),
    )
}

/// A panic payload as an internal error: the client sees a generic message.
fn panic_error(path: &str, payload: &(dyn std::any::Any + Send)) -> Error {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with a non-string payload".to_owned());
    Error::internal(format!("procedure `{path}` panicked: {text}"))
}

/// Whether a kind may be reached with a given method (`POST` queries need method override).
pub(crate) fn kind_accepts(
    kind: ProcedureKind,
    is_post: bool,
    allow_method_override: bool,
) -> bool {
    match kind {
        ProcedureKind::Query => !is_post || allow_method_override,
        ProcedureKind::Mutation => is_post,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
