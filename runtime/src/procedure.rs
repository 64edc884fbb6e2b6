//! One procedure: its kind, its types and its type-erased handler.

use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::sync::Arc;

use futures_util::{Stream, StreamExt};

use crate::call::{
    BoxFuture, Call, CallArg, CallOptions, EncodedEvent, Handler, Json, Meta, ProcedureKind, Reply,
};
use crate::decode::{self, InputType, LazyValidator, compiled};
use crate::deferred::{self, Encoded};
use crate::error::{Error, TypedError};
use crate::protocol::superjson::{self, Annotated};
use crate::subscription::{Event, Wire};
use crate::types::{Input, Output, TypeInfo};

/// A procedure: a handler plus what clients and code generators need to know about it.
///
/// `#[procedure]` builds these for you; you can also build them by hand:
///
/// ```
/// use oxrpc::{Error, Procedure, Router};
///
/// let hello = Procedure::query("hello", |_ctx: (), name: String| async move {
///     Ok::<_, Error>(format!("hello, {name}!"))
/// })
/// .describe("Says hello.");
/// let router = Router::new().add(hello);
/// assert!(router.get("hello").is_some());
/// ```
pub struct Procedure<Ctx> {
    name: String,
    kind: ProcedureKind,
    docs: Option<String>,
    meta: Meta,
    input: TypeInfo,
    output: TypeInfo,
    error: Option<TypeInfo>,
    tracked: bool,
    handler: Handler<Ctx>,
    location: &'static Location<'static>,
}

impl<Ctx> Clone for Procedure<Ctx> {
    fn clone(&self) -> Self {
        Procedure {
            name: self.name.clone(),
            kind: self.kind,
            docs: self.docs.clone(),
            meta: self.meta.clone(),
            input: self.input,
            output: self.output,
            error: self.error,
            tracked: self.tracked,
            handler: Arc::clone(&self.handler),
            location: self.location,
        }
    }
}

impl<Ctx: Send + 'static> Procedure<Ctx> {
    /// A query: `handler(ctx, input)` answers `GET` requests and `client.name.query(input)`.
    ///
    /// An input of `()` means "no input" (`void` in TypeScript); an output of `()` is sent as
    /// `undefined`.
    #[track_caller]
    pub fn query<I, O, F, Fut>(name: impl Into<String>, handler: F) -> Self
    where
        I: Input,
        O: Output,
        F: Fn(Ctx, I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, Error>> + Send + 'static,
    {
        Self::new(
            ProcedureKind::Query,
            name.into(),
            handler,
            Location::caller(),
        )
    }

    /// A mutation: `handler(ctx, input)` answers `POST` requests and `client.name.mutate(input)`.
    #[track_caller]
    pub fn mutation<I, O, F, Fut>(name: impl Into<String>, handler: F) -> Self
    where
        I: Input,
        O: Output,
        F: Fn(Ctx, I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, Error>> + Send + 'static,
    {
        Self::new(
            ProcedureKind::Mutation,
            name.into(),
            handler,
            Location::caller(),
        )
    }

    fn new<I, O, F, Fut>(
        kind: ProcedureKind,
        name: String,
        handler: F,
        location: &'static Location<'static>,
    ) -> Self
    where
        I: Input,
        O: Output,
        F: Fn(Ctx, I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, Error>> + Send + 'static,
    {
        let io = Io::new(TypeInfo::of_input::<I>(), TypeInfo::of_output::<O>());
        let shared = Arc::clone(&io);
        let erased = move |ctx: Ctx, call: CallArg<'_>| -> BoxFuture<Result<Reply, Error>> {
            let call = call.get();
            let input = match decode::decode::<I>(&shared.input, call) {
                Ok(input) => input,
                Err(e) => return failed(e),
            };
            let fut = handler(ctx, input);
            let encoder = Encoder::new(&shared, call);
            Box::pin(async move { encode_output(&encoder, &fut.await?) })
        };
        Self::assemble(
            kind,
            name,
            (io.input.info, io.output),
            false,
            Arc::new(erased),
            location,
        )
    }

    /// A query or mutation whose handler `#[procedure]` wrote next to the function (how it
    /// builds them), with its types' [`Types::input`] and [`Types::output`]. Not public API.
    ///
    /// Everything that names the function's future is compiled in the crate and module that
    /// define it, not in shared generic code: with debug info, code that mentions a future
    /// depends on the async function's body, so an edit recompiles only that module's code
    /// (plus the drop glue rustc keeps in one place) instead of every procedure's. And nothing
    /// here depends on the procedure's types: it is compiled once per context type.
    #[doc(hidden)]
    #[track_caller]
    pub fn __handled(
        kind: ProcedureKind,
        name: &str,
        input: TypeInfo,
        output: TypeInfo,
        handle: HandleFn<Ctx>,
    ) -> Self {
        let io = Io::new(input, output);
        let handler: Handler<Ctx> =
            Arc::new(move |ctx: Ctx, call: CallArg<'_>| handle(&io, ctx, call.get()));
        Self::assemble(
            kind,
            name.to_owned(),
            (input, output),
            false,
            handler,
            Location::caller(),
        )
    }

    /// A subscription: `handler(ctx, input)` sets up a stream of `Result`s of events (values or
    /// [`crate::Tracked`] values); an `Err` item ends the subscription with that error, and an
    /// `Err` from the setup fails it before it starts. (`#[procedure(subscription)]` also
    /// accepts streams of plain events.) Dropping the stream is the cancellation signal: client
    /// stop, disconnect and shutdown all drop it.
    ///
    /// A resumable subscription declares an optional `lastEventId` field in its input: the
    /// client's last seen id is merged into the input when it reconnects.
    #[track_caller]
    pub fn subscription<I, E, S, F, Fut>(name: impl Into<String>, handler: F) -> Self
    where
        I: Input,
        E: Event,
        S: Stream<Item = Result<E, Error>> + Send + 'static,
        F: Fn(Ctx, I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<S, Error>> + Send + 'static,
    {
        let io = Io::new(TypeInfo::of_input::<I>(), TypeInfo::of_output::<E::Data>());
        let shared = Arc::clone(&io);
        let erased = move |ctx: Ctx, call: CallArg<'_>| -> BoxFuture<Result<Reply, Error>> {
            let call = call.get();
            let input = match decode::decode::<I>(&shared.input, call) {
                Ok(input) => input,
                Err(e) => return failed(e),
            };
            let fut = handler(ctx, input);
            let encoder = Encoder::new(&shared, call);
            Box::pin(async move {
                let stream = fut.await?;
                let events = stream.map(move |event| {
                    let (id, data) = event?.into_wire()?;
                    let data = match data {
                        Wire::Json(encoded) => encoded_event(&encoder, &encoded),
                        Wire::Value(data) => event_data(encode_output(&encoder, &data))?,
                    };
                    Ok(EncodedEvent { id, data })
                });
                Ok(Reply::stream(Box::pin(events)))
            })
        };
        let location = Location::caller();
        Self::assemble(
            ProcedureKind::Subscription,
            name.into(),
            (io.input.info, io.output),
            E::TRACKED,
            Arc::new(erased),
            location,
        )
    }
}

impl<Ctx> Procedure<Ctx> {
    /// The parts of a new procedure that do not depend on its types.
    fn assemble(
        kind: ProcedureKind,
        name: String,
        (input, output): (TypeInfo, TypeInfo),
        tracked: bool,
        handler: Handler<Ctx>,
        location: &'static Location<'static>,
    ) -> Self {
        Procedure {
            name,
            kind,
            docs: None,
            meta: Meta::default(),
            input,
            output,
            error: None,
            tracked,
            handler,
            location,
        }
    }

    /// Sets the documentation (emitted as JSDoc in the generated `.d.ts`).
    pub fn describe(mut self, docs: impl Into<String>) -> Self {
        let docs = docs.into();
        self.docs = (!docs.trim().is_empty()).then_some(docs);
        self
    }

    /// Attaches a meta value for middleware to read (`call.meta().get::<T>()`); one per type.
    pub fn with_meta<T: std::any::Any + Send + Sync>(mut self, value: T) -> Self {
        self.meta.insert(value);
        self
    }

    /// The procedure's meta values.
    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    /// Replaces the handler, keeping everything else (how middleware wraps procedures).
    pub(crate) fn map_handler<New>(
        self,
        f: impl FnOnce(Handler<Ctx>) -> Handler<New>,
    ) -> Procedure<New> {
        Procedure {
            name: self.name,
            kind: self.kind,
            docs: self.docs,
            meta: self.meta,
            input: self.input,
            output: self.output,
            error: self.error,
            tracked: self.tracked,
            handler: f(self.handler),
            location: self.location,
        }
    }

    /// Declares `E` as the procedure's error type (tRPC's `.errors()`): the generated `.d.ts`
    /// types its error shape as `E`'s data or the root shape, and errors of the procedure that
    /// the handler did not return itself go through [`TypedError::adopt`]. `#[procedure]` calls
    /// this for a function returning `Result<T, E>` with `E: TypedError`; a hand-built procedure
    /// returns `Err(e.into())` and calls it itself.
    ///
    /// Middleware added afterwards (`.with(…)`) is outside: its errors keep the root shape.
    pub fn errors<E: TypedError>(mut self) -> Self
    where
        Ctx: 'static,
    {
        self.error = Some(TypeInfo::of_output::<E>());
        let inner = self.handler;
        self.handler = Arc::new(move |ctx: Ctx, call: CallArg<'_>| {
            let fut = inner(ctx, call);
            Box::pin(async move {
                match fut.await {
                    Ok(reply) => Ok(reply.map_events(|events| {
                        Box::pin(events.map(|event| event.map_err(adopt::<E>)))
                    })),
                    Err(error) => Err(adopt::<E>(error)),
                }
            })
        });
        self
    }

    /// The error type declared with [`Procedure::errors`], if any.
    pub fn error_type(&self) -> Option<&TypeInfo> {
        self.error.as_ref()
    }

    /// Renames the procedure (its last path segment).
    pub fn rename(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The procedure's own name (the last segment of its path).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Query or mutation.
    pub fn kind(&self) -> ProcedureKind {
        self.kind
    }

    /// Its documentation, if any.
    pub fn docs(&self) -> Option<&str> {
        self.docs.as_deref()
    }

    /// Its input type.
    pub fn input(&self) -> &TypeInfo {
        &self.input
    }

    /// Its output type.
    pub fn output(&self) -> &TypeInfo {
        &self.output
    }

    /// For subscriptions: whether events carry ids (`{ id, data }` on the client).
    pub fn is_tracked(&self) -> bool {
        self.tracked
    }

    /// Where in the source it was defined.
    pub fn location(&self) -> &'static Location<'static> {
        self.location
    }

    /// Runs the handler (no panic protection: the router adds it).
    pub(crate) fn invoke(&self, ctx: Ctx, call: &Call) -> BoxFuture<Result<Reply, Error>> {
        (self.handler)(ctx, CallArg::Lent(call))
    }
}

impl Procedure<()> {
    /// The procedure for a router of any context, which its handler never sees (how
    /// `#[procedure]` builds procedures without a context parameter: their code is compiled
    /// once, for `()`). Not public API.
    #[doc(hidden)]
    pub fn __any_context<Ctx: Send + 'static>(self) -> Procedure<Ctx> {
        self.map_handler(|inner| {
            Arc::new(move |_ctx: Ctx, call: CallArg<'_>| inner((), call)) as Handler<Ctx>
        })
    }
}

impl<Ctx> fmt::Debug for Procedure<Ctx> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Procedure")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("input", &self.input)
            .field("output", &self.output)
            .field("location", &format_args!("{}", self.location))
            .finish_non_exhaustive()
    }
}

/// An error of a procedure with a typed error type `E`: kept if it already carries typed
/// data, else given the fields of the case `E::adopt` picks for it, if any.
fn adopt<E: TypedError>(error: Error) -> Error {
    if error.data().is_some() {
        return error;
    }
    match E::adopt(&error) {
        Some(typed) => error.with_typed_data(&typed),
        None => error,
    }
}

/// A handler `#[procedure]` writes: decodes the call's input with its [`Types::decode`], runs
/// the function, encodes its output with [`Types::encode`] (its future keeps an [`Encoder`],
/// not the call). Not public API.
pub type HandleFn<Ctx> = fn(&Arc<Io>, Ctx, &Call) -> BoxFuture<Result<Reply, Error>>;

/// Turns a procedure's result into its reply. Not public API.
pub type Encode<O> = fn(&Encoder, Result<O, Error>) -> Result<Reply, Error>;

/// A procedure's input decoder, output encoder and type information, for the code
/// `#[procedure]` writes: one constant per procedure ([`types::<I, O>()`](types)), so the types'
/// trait bounds are checked, and reported, once, and its handler calls the decoder and encoder
/// through plain function pointers. Not public API.
pub struct Types<I, O> {
    /// Reads the call's input.
    pub decode: fn(&Io, &Call) -> Result<I, Error>,
    /// The reply for the function's result (its `?` is taken here, once per output type, not
    /// in every handler).
    pub encode: Encode<O>,
    /// The input's type information.
    pub input: TypeInfo,
    /// The output's type information.
    pub output: TypeInfo,
}

/// The decoder, encoder and type information of `I` and `O`, for `#[procedure]` to evaluate in
/// a constant (it compiles to data, not code). Not public API.
pub const fn types<I: Input, O: Output>() -> Types<I, O> {
    Types {
        decode: decode_input::<I>,
        encode: encode_result::<O>,
        input: TypeInfo::of_input::<I>(),
        output: TypeInfo::of_output::<O>(),
    }
}

fn encode_result<O: Output>(encoder: &Encoder, result: Result<O, Error>) -> Result<Reply, Error> {
    encode_output(encoder, &result?)
}

fn decode_input<I: Input>(io: &Io, call: &Call) -> Result<I, Error> {
    decode::decode::<I>(&io.input, call)
}

/// What a procedure's handler needs of its types when it runs: their information and
/// validators (what the handler `#[procedure]` writes hands [`Types`]'s decoder and encoder).
/// Not public API.
pub struct Io {
    input: InputType,
    output: TypeInfo,
    /// Whether the output is `()` (`undefined`), worked out once.
    output_unit: bool,
    output_validator: LazyValidator,
}

impl Io {
    fn new(input: TypeInfo, output: TypeInfo) -> Arc<Self> {
        Arc::new(Io {
            input: InputType::new(input),
            output,
            output_unit: output.is_unit(),
            output_validator: LazyValidator::new(),
        })
    }
}

/// What encoding a call's output needs, kept by the handler's future while the function runs:
/// the procedure's types and the call's options. (Not the path: an error is reported with
/// the call's path where the call ends.) Not public API.
pub struct Encoder {
    io: Arc<Io>,
    options: CallOptions,
}

impl Encoder {
    /// The encoder for `call`'s output, by a procedure of types `io`.
    pub fn new(io: &Arc<Io>, call: &Call) -> Self {
        Encoder {
            io: Arc::clone(io),
            options: call.options,
        }
    }
}

/// A call that failed before its handler ran. Not public API.
pub fn failed(error: Error) -> BoxFuture<Result<Reply, Error>> {
    Box::pin(std::future::ready(Err(error)))
}

/// An event the bus encoded once for every subscriber, as this call wants it.
fn encoded_event(encoder: &Encoder, encoded: &Annotated) -> Json {
    if encoder.options.superjson {
        encoded.envelope()
    } else {
        encoded.json.clone()
    }
}

/// An event's data, from its encoded reply.
fn event_data(reply: Result<Reply, Error>) -> Result<Json, Error> {
    reply?
        .into_json()
        .ok_or_else(|| Error::internal("a subscription event had no data"))
}

/// Serializes an output (with its parts sent later, on a streamed call), validating it
/// against its own schema when asked to (outputs with parts: the part sent at once only).
fn encode_output<O: Output>(encoder: &Encoder, value: &O) -> Result<Reply, Error> {
    encode(encoder, &|| Json::write(value))
}

/// [`encode_output`] for the value `to_json` writes (compiled once, not per output type).
fn encode(encoder: &Encoder, to_json: deferred::ToJson<'_>) -> Result<Reply, Error> {
    let Encoder { io, options } = encoder;
    let (info, validator) = (&io.output, &io.output_validator);
    let superjson = options.superjson;
    if io.output_unit {
        // `undefined`: nothing on plain JSON; superjson says it.
        return Ok(Reply::value(superjson.then(superjson::undefined)));
    }
    let Annotated { json: raw, values } =
        match deferred::serialize_with(to_json, options.streaming, superjson)? {
            Encoded::Plain(annotated) => annotated,
            // Its schema describes the resolved values, not the placeholders: not validated.
            Encoded::Parted(parted) => return Ok(Reply::parted(parted)),
        };
    if options.validate_output {
        let json: serde_json::Value = serde_json::from_str(raw.get()).map_err(Error::internal)?;
        let issues =
            compiled(validator, info)?.validate(&json, crate::validate::UnknownFields::Ignore);
        if !issues.is_empty() {
            let detail: Vec<String> = issues
                .iter()
                .map(|i| format!("{}: {}", i.path_text(), i.message))
                .collect();
            return Err(Error::internal(format!(
                "the output does not match its own schema: {}",
                detail.join("; ")
            ))
            .with_message("Internal server error: output validation failed"));
        }
    }
    if superjson {
        return Ok(Reply::value(Some(superjson::enveloped(
            &raw,
            values.as_ref(),
        ))));
    }
    Ok(Reply::value(Some(raw)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use crate::validate::PathSegment;

    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    fn raw(s: &str) -> Call {
        call(Some(crate::call::InputText::written(s.to_owned())))
    }

    fn call(input: crate::call::RawInput) -> Call {
        Call {
            path: Arc::from("p"),
            kind: ProcedureKind::Query,
            meta: Meta::default(),
            input,
            superjson_input: None,
            options: crate::call::CallOptions::default(),
            body: crate::call::BodySlot::default(),
        }
    }

    #[test]
    fn input_errors_name_the_field() {
        #[derive(serde::Deserialize, ts_rs::TS, schemars::JsonSchema)]
        struct In {
            #[allow(dead_code)]
            name: String,
        }
        let p = Procedure::query("q", |_: (), _: In| async { Ok::<_, Error>(1) });
        let err = block_on(p.invoke((), &raw(r#"{"name":5}"#))).expect_err("must fail");
        assert_eq!(err.code(), ErrorCode::BadRequest);
        assert_eq!(
            err.message(),
            "Invalid input: name: Expected a string, received an integer"
        );
        let issues = err.issues().expect("issues");
        assert_eq!(issues[0].path, vec![PathSegment::Key("name".into())]);
        let err = block_on(p.invoke((), &call(None))).expect_err("must fail");
        assert!(
            err.message().starts_with("Missing input"),
            "{}",
            err.message()
        );
    }

    #[test]
    fn what_the_schema_allows_but_serde_refuses_is_an_issue_at_its_path() {
        // The schema of a socket address is any string; serde parses it.
        #[derive(serde::Deserialize, ts_rs::TS, schemars::JsonSchema)]
        struct Peer {
            #[schemars(range(max = 10))]
            weight: u8,
            addr: std::net::SocketAddr,
        }
        #[derive(serde::Deserialize, ts_rs::TS, schemars::JsonSchema)]
        struct In {
            peers: Vec<Peer>,
        }
        let p = Procedure::query("q", |_: (), i: In| async move {
            Ok::<_, Error>(
                i.peers
                    .iter()
                    .map(|p| p.addr.port() + u16::from(p.weight))
                    .sum::<u16>(),
            )
        });
        let ok = r#"{"peers":[{"weight":1,"addr":"127.0.0.1:80"}]}"#;
        assert_eq!(
            block_on(p.invoke((), &raw(ok))).expect("valid").json(),
            Some("81")
        );
        let bad = "{\"peers\": [{\"weight\": 1, \"addr\": \"127.0.0.1:80\"},\n {\"weight\": 2, \"addr\": \"nowhere\"}]}";
        let err = block_on(p.invoke((), &raw(bad))).expect_err("not an address");
        assert_eq!(err.code(), ErrorCode::BadRequest);
        let issue = &err.issues().expect("issues")[0];
        assert_eq!(
            issue.path,
            [
                PathSegment::Key("peers".into()),
                PathSegment::Index(1),
                PathSegment::Key("addr".into())
            ]
        );
        assert_eq!(issue.message, "invalid socket address syntax");
        // The schema's own issues come first.
        let err = block_on(p.invoke((), &raw(r#"{"peers":[{"weight":11,"addr":"x"}]}"#)))
            .expect_err("too heavy");
        assert_eq!(err.issues().expect("issues")[0].code, "too_big");
    }

    #[test]
    fn a_custom_serde_error_names_the_object_being_read() {
        fn even<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
            let n = <u32 as serde::Deserialize>::deserialize(d)?;
            if n % 2 == 0 {
                Ok(n)
            } else {
                Err(serde::de::Error::custom(format!("{n} is odd")))
            }
        }
        #[derive(serde::Deserialize, ts_rs::TS, schemars::JsonSchema)]
        struct Item {
            #[serde(deserialize_with = "even")]
            n: u32,
        }
        #[derive(serde::Deserialize, ts_rs::TS, schemars::JsonSchema)]
        struct In {
            items: Vec<Item>,
        }
        let p = Procedure::query("q", |_: (), i: In| async move {
            Ok::<_, Error>(i.items.iter().map(|item| item.n).sum::<u32>())
        });
        let ok = block_on(p.invoke((), &raw(r#"{"items":[{"n":2},{"n":4}]}"#))).expect("even");
        assert_eq!(ok.json(), Some("6"));
        let err = block_on(p.invoke((), &raw("{\"items\": [{\"n\": 2},\n {\"n\": 3}]}")))
            .expect_err("odd");
        assert_eq!(err.code(), ErrorCode::BadRequest);
        let issue = &err.issues().expect("issues")[0];
        // A custom error carries no position of its own: serde_json places it at the end of
        // the object being read, so the issue names the object holding the refused field.
        assert_eq!(
            issue.path,
            [PathSegment::Key("items".into()), PathSegment::Index(1)]
        );
        assert_eq!(issue.message, "3 is odd");
        // The schema's own issues come first.
        let err = block_on(p.invoke((), &raw(r#"{"items":[{"n":-1}]}"#))).expect_err("negative");
        assert_eq!(err.issues().expect("issues")[0].code, "too_small");
    }

    #[test]
    fn unit_input_ignores_what_was_sent_and_unit_output_is_undefined() {
        let p = Procedure::mutation("m", |_: (), (): ()| async { Ok::<_, Error>(()) });
        assert_eq!(
            block_on(p.invoke((), &raw("[1,2]")))
                .expect("ok")
                .json()
                .map(str::to_owned),
            None
        );
        assert!(p.input().accepts_undefined());
    }

    #[test]
    fn option_input_accepts_undefined() {
        let p = Procedure::query("q", |_: (), i: Option<u8>| async move { Ok::<_, Error>(i) });
        assert!(p.input().accepts_undefined());
        let out = block_on(p.invoke((), &call(None))).expect("ok");
        assert_eq!(out.json(), Some("null"));
    }

    #[derive(Debug, serde::Serialize, ts_rs::TS, schemars::JsonSchema)]
    #[serde(tag = "reason")]
    enum Refusal {
        Full,
        BadInput,
    }

    impl fmt::Display for Refusal {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("full")
        }
    }

    impl TypedError for Refusal {
        fn code(&self) -> ErrorCode {
            ErrorCode::Conflict
        }

        fn adopt(error: &Error) -> Option<Self> {
            (error.code() == ErrorCode::BadRequest).then_some(Refusal::BadInput)
        }
    }

    #[test]
    fn a_typed_error_type_is_declared_and_adopts_the_procedures_other_errors() {
        let p = Procedure::query("q", |_: (), n: u8| async move {
            match n {
                0 => Err(Refusal::Full.into()),
                1 => Err(Error::forbidden()),
                _ => Ok(n),
            }
        })
        .errors::<Refusal>();
        assert_eq!(
            p.error_type().map(TypeInfo::rust_name),
            Some(std::any::type_name::<Refusal>())
        );
        let reason = |e: &Error| e.data().map(|d| d["reason"].clone());
        // Returned by the handler: its own case.
        let e = block_on(p.invoke((), &raw("0"))).expect_err("fails");
        assert_eq!((e.code(), e.message()), (ErrorCode::Conflict, "full"));
        assert_eq!(reason(&e), Some("Full".into()));
        // Invalid input: adopted, issues and message kept.
        let e = block_on(p.invoke((), &raw("\"x\""))).expect_err("fails");
        assert_eq!(e.code(), ErrorCode::BadRequest);
        assert!(e.issues().is_some_and(|i| !i.is_empty()));
        assert_eq!(reason(&e), Some("BadInput".into()));
        // Not adopted: root shape.
        let e = block_on(p.invoke((), &raw("1"))).expect_err("fails");
        assert_eq!((e.code(), e.data()), (ErrorCode::Forbidden, None));
        // Without `.errors()`, nothing is declared.
        let plain = Procedure::query("q", |_: (), n: u8| async move { Ok::<_, Error>(n) });
        assert!(plain.error_type().is_none());
    }

    #[test]
    fn a_subscriptions_stream_errors_are_adopted_too() {
        let p = Procedure::subscription("s", |_: (), (): ()| async {
            Ok::<_, Error>(futures_util::stream::iter([
                Ok(1u8),
                Err(Error::bad_request("late")),
            ]))
        })
        .errors::<Refusal>();
        let events = block_on(async {
            let reply = p.invoke((), &call(None)).await.expect("starts");
            reply
                .into_events()
                .expect("a stream")
                .collect::<Vec<_>>()
                .await
        });
        assert_eq!(events.len(), 2);
        let e = events[1].as_ref().expect_err("the second item fails");
        assert_eq!(e.message(), "late");
        assert_eq!(
            e.data().map(|d| d["reason"].clone()),
            Some("BadInput".into())
        );
    }
}
