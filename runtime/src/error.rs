//! The one public error type and the tRPC error-code table.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::validate::Issue;

/// Declares [`ErrorCode`] and its three mappings from one table, so the name, the
/// JSON-RPC number and the HTTP status of a code can never drift apart.
macro_rules! error_codes {
    ($( $(#[$doc:meta])* $variant:ident = $key:literal, $rpc:literal, $status:literal; )*) => {
        /// A tRPC error code (`data.code` on the wire), with its JSON-RPC number and HTTP status.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $( $(#[$doc])* $variant, )*
        }

        impl ErrorCode {
            /// Every code, in the order of the tRPC specification.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),*];

            /// The tRPC key, e.g. `"NOT_FOUND"`.
            pub const fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $key,)* }
            }

            /// The JSON-RPC number sent as `error.code`, e.g. `-32004`.
            pub const fn json_rpc_code(self) -> i32 {
                match self { $(ErrorCode::$variant => $rpc,)* }
            }

            /// The HTTP status used for this code, e.g. `404`.
            pub const fn http_status(self) -> u16 {
                match self { $(ErrorCode::$variant => $status,)* }
            }

            /// Looks a code up by its tRPC key.
            pub fn from_key(key: &str) -> Option<ErrorCode> {
                match key { $($key => Some(ErrorCode::$variant),)* _ => None }
            }
        }
    };
}

error_codes! {
    /// Invalid JSON was received.
    ParseError = "PARSE_ERROR", -32700, 400;
    /// The request or its input is invalid.
    BadRequest = "BAD_REQUEST", -32600, 400;
    /// The caller is not authenticated.
    Unauthorized = "UNAUTHORIZED", -32001, 401;
    /// Payment is required.
    PaymentRequired = "PAYMENT_REQUIRED", -32002, 402;
    /// The caller may not do this.
    Forbidden = "FORBIDDEN", -32003, 403;
    /// The procedure or the resource does not exist.
    NotFound = "NOT_FOUND", -32004, 404;
    /// The HTTP method is not allowed for this procedure.
    MethodNotSupported = "METHOD_NOT_SUPPORTED", -32005, 405;
    /// The server timed out.
    Timeout = "TIMEOUT", -32008, 408;
    /// The request conflicts with the current state.
    Conflict = "CONFLICT", -32009, 409;
    /// A precondition failed.
    PreconditionFailed = "PRECONDITION_FAILED", -32012, 412;
    /// The request body is too large.
    PayloadTooLarge = "PAYLOAD_TOO_LARGE", -32013, 413;
    /// The content type is not supported.
    UnsupportedMediaType = "UNSUPPORTED_MEDIA_TYPE", -32015, 415;
    /// The input is well-formed but cannot be processed.
    UnprocessableContent = "UNPROCESSABLE_CONTENT", -32022, 422;
    /// A precondition header is required.
    PreconditionRequired = "PRECONDITION_REQUIRED", -32028, 428;
    /// The caller is rate limited.
    TooManyRequests = "TOO_MANY_REQUESTS", -32029, 429;
    /// The client closed the request.
    ClientClosedRequest = "CLIENT_CLOSED_REQUEST", -32099, 499;
    /// An unexpected failure on the server.
    InternalServerError = "INTERNAL_SERVER_ERROR", -32603, 500;
    /// The procedure is not implemented.
    NotImplemented = "NOT_IMPLEMENTED", -32603, 501;
    /// An upstream service answered badly.
    BadGateway = "BAD_GATEWAY", -32603, 502;
    /// The service is unavailable.
    ServiceUnavailable = "SERVICE_UNAVAILABLE", -32603, 503;
    /// An upstream service timed out.
    GatewayTimeout = "GATEWAY_TIMEOUT", -32603, 504;
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

type Cause = Arc<dyn std::error::Error + Send + Sync + 'static>;
type BoxCause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The error a procedure, a context factory or the framework returns.
///
/// The `message` is public: it is sent to the client as written. The `cause` is private: it
/// goes to `tracing` and reaches clients only when the server runs in dev mode.
///
/// ```
/// use oxrpc::{Error, ErrorCode};
/// let e = Error::new(ErrorCode::NotFound, "no such user");
/// assert_eq!(e.code().json_rpc_code(), -32004);
///
/// // An internal failure: the client sees only "Internal server error".
/// let io = std::io::Error::other("disk on fire");
/// let e = Error::internal(io);
/// assert_eq!(e.message(), "Internal server error");
/// ```
///
/// One pointer wide: results, replies and the futures that hold them stay small on the
/// success path, and an error pays one allocation.
#[derive(Clone)]
pub struct Error(Box<ErrorInner>);

#[derive(Clone)]
struct ErrorInner {
    code: ErrorCode,
    message: Cow<'static, str>,
    cause: Option<Cause>,
    issues: Option<Arc<[Issue]>>,
    data: Option<Arc<Map<String, Value>>>,
}

impl Error {
    /// An error with a code and a public message.
    pub fn new(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        Error(Box::new(ErrorInner {
            code,
            message: message.into(),
            cause: None,
            issues: None,
            data: None,
        }))
    }

    /// An error whose message is its code's key (what tRPC sends when no message is given).
    pub fn from_code(code: ErrorCode) -> Self {
        Error::new(code, code.as_str())
    }

    /// An `INTERNAL_SERVER_ERROR` hiding `cause` from clients (outside dev mode).
    pub fn internal(cause: impl Into<BoxCause>) -> Self {
        Error::from_code(ErrorCode::InternalServerError)
            .with_message("Internal server error")
            .with_cause(cause)
    }

    /// Replaces the public message.
    pub fn with_message(mut self, message: impl Into<Cow<'static, str>>) -> Self {
        self.0.message = message.into();
        self
    }

    /// Attaches a private cause (logged; sent to clients only in dev mode).
    pub fn with_cause(mut self, cause: impl Into<BoxCause>) -> Self {
        self.0.cause = Some(Arc::from(cause.into()));
        self
    }

    /// A `BAD_REQUEST` listing input problems; clients get them in `error.data.issues` and,
    /// for tRPC+zod frontends, `error.data.zodError` (`formErrors` / `fieldErrors`).
    ///
    /// ```
    /// use oxrpc::{Error, Issue, PathSegment};
    /// let e = Error::invalid_input(vec![Issue::new(
    ///     vec![PathSegment::Key("name".into())],
    ///     "custom",
    ///     "name is taken",
    /// )]);
    /// assert_eq!(e.message(), "Invalid input: name: name is taken");
    /// ```
    pub fn invalid_input(issues: Vec<Issue>) -> Self {
        let mut message = String::from("Invalid input");
        if let Some(first) = issues.first() {
            message.push_str(": ");
            if !first.path.is_empty() {
                message.push_str(&first.path_text());
                message.push_str(": ");
            }
            message.push_str(&first.message);
            match issues.len() {
                1 => {}
                2 => message.push_str(" (and 1 more issue)"),
                n => message.push_str(&format!(" (and {} more issues)", n - 1)),
            }
        }
        let mut error = Error::new(ErrorCode::BadRequest, message);
        error.0.issues = Some(issues.into());
        error
    }

    /// The input problems of an [`Error::invalid_input`] error.
    pub fn issues(&self) -> Option<&[Issue]> {
        self.0.issues.as_deref()
    }

    /// Shorthand for `Error::new(ErrorCode::BadRequest, message)`.
    pub fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Error::new(ErrorCode::BadRequest, message)
    }

    /// Shorthand for `Error::new(ErrorCode::NotFound, message)`.
    pub fn not_found(message: impl Into<Cow<'static, str>>) -> Self {
        Error::new(ErrorCode::NotFound, message)
    }

    /// Shorthand for `Error::from_code(ErrorCode::Unauthorized)`.
    pub fn unauthorized() -> Self {
        Error::from_code(ErrorCode::Unauthorized)
    }

    /// Shorthand for `Error::from_code(ErrorCode::Forbidden)`.
    pub fn forbidden() -> Self {
        Error::from_code(ErrorCode::Forbidden)
    }

    /// The tRPC code.
    pub fn code(&self) -> ErrorCode {
        self.0.code
    }

    /// The public message.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// The fields a [`TypedError`] adds to `error.data` (its serialized value), if this error
    /// came from one.
    pub fn data(&self) -> Option<&Map<String, Value>> {
        self.0.data.as_deref()
    }

    /// Adds a typed error's fields to `error.data`, keeping this error's code, message, cause
    /// and issues (what [`TypedError::adopt`] does).
    pub(crate) fn with_typed_data<E: TypedError>(mut self, typed: &E) -> Self {
        self.0.data = typed_fields(typed).map(Arc::new);
        self
    }

    /// The private cause, if any.
    pub fn cause(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        self.0.cause.as_deref()
    }

    /// The cause chain as text, for logs and dev-mode responses.
    pub(crate) fn cause_chain(&self) -> Option<String> {
        let mut next: Option<&(dyn std::error::Error + 'static)> =
            self.0.cause.as_deref().map(|c| c as _);
        let mut out = String::new();
        while let Some(e) = next {
            if !out.is_empty() {
                out.push_str("\ncaused by: ");
            }
            out.push_str(&e.to_string());
            next = e.source();
        }
        (!out.is_empty()).then_some(out)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("code", &self.0.code)
            .field("message", &self.0.message)
            .field("cause", &self.0.cause)
            .field("issues", &self.0.issues)
            .field("data", &self.0.data)
            .finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.0.code, self.0.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.cause.as_deref().map(|c| c as _)
    }
}

impl From<ErrorCode> for Error {
    fn from(code: ErrorCode) -> Self {
        Error::from_code(code)
    }
}

/// A procedure's own error type: the cases a client can tell apart, each with typed data.
///
/// A procedure whose function returns `Result<T, E>` with `E: TypedError` declares `E` as its
/// error type. A returned `E` reaches the client with the code [`TypedError::code`] gives, its
/// `Display` text as the message, and its fields (its `serde` serialization, which must be a
/// JSON object) added to `error.data` next to `code`, `httpStatus`, `path` and the root
/// error formatter's fields. The generated `.d.ts` gives the procedure the error shape
/// "`E`'s data, or the root shape" (`$types.errorShape`), so `safe()` and
/// `TRPCClientError` narrow on `E`'s tag:
///
/// ```
/// use oxrpc::{procedure, ErrorCode, TypedError};
///
/// #[derive(Debug, serde::Serialize, ts_rs::TS, schemars::JsonSchema)]
/// #[serde(tag = "kind", rename_all = "camelCase")]
/// pub enum BuyError {
///     SoldOut { stock: u32 },
///     Declined,
/// }
///
/// impl std::fmt::Display for BuyError {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         f.write_str(match self {
///             BuyError::SoldOut { .. } => "sold out",
///             BuyError::Declined => "payment declined",
///         })
///     }
/// }
///
/// impl TypedError for BuyError {
///     fn code(&self) -> ErrorCode {
///         match self {
///             BuyError::SoldOut { .. } => ErrorCode::Conflict,
///             BuyError::Declined => ErrorCode::PaymentRequired,
///         }
///     }
/// }
///
/// #[procedure(mutation)]
/// pub async fn buy(quantity: u32) -> Result<u32, BuyError> {
///     if quantity > 3 { Err(BuyError::SoldOut { stock: 3 }) } else { Ok(quantity) }
/// }
///
/// // On the wire: {"message":"sold out","code":-32009,
/// //   "data":{"code":"CONFLICT","httpStatus":409,"path":"buy","kind":"soldOut","stock":3}}
/// let e = oxrpc::Error::from(BuyError::SoldOut { stock: 3 });
/// assert_eq!(e.code(), ErrorCode::Conflict);
/// assert_eq!(e.message(), "sold out");
/// assert_eq!(e.data().unwrap()["kind"], "soldOut");
/// ```
///
/// Failures outside the typed contract (a database error, say) can live in a variant marked
/// `#[serde(skip)]` holding an [`Error`], returned by [`TypedError::untyped`]: they are sent as
/// that error, in the root shape. oxrpc's own fields (`code`, `httpStatus`, `path`, `stack`,
/// `issues`, `zodError`) cannot be replaced: such fields of `E` are dropped (and refused by
/// codegen).
pub trait TypedError:
    fmt::Display + serde::Serialize + ts_rs::TS + schemars::JsonSchema + Send + Sync + 'static
{
    /// The tRPC code this case is sent with (it decides the HTTP status).
    fn code(&self) -> ErrorCode;

    /// A case that is not part of the typed contract: `Some(error)` sends `error` instead, with
    /// no typed data. The default: every case is typed.
    fn untyped(&self) -> Option<Error> {
        None
    }

    /// An error of this procedure that its function did not return (invalid input, an error
    /// ending a subscription's stream, a panic): `Some(case)` adds that case's fields to its
    /// `error.data`, keeping its code, message and validation issues, so the client sees the
    /// typed shape for it too (tRPC's `.errors()` formatter sees these as well). The default
    /// leaves them in the root shape.
    fn adopt(error: &Error) -> Option<Self>
    where
        Self: Sized,
    {
        let _ = error;
        None
    }
}

/// The keys oxrpc itself puts into `error.data`; neither a formatter nor a typed error can
/// replace them.
pub(crate) const RESERVED_DATA_KEYS: &[&str] =
    &["code", "httpStatus", "path", "stack", "issues", "zodError"];

/// A typed error's fields: its serialization, which must be an object; reserved keys dropped.
fn typed_fields<E: TypedError>(typed: &E) -> Option<Map<String, Value>> {
    match serde_json::to_value(typed) {
        Ok(Value::Object(mut map)) => {
            map.retain(|key, _| !RESERVED_DATA_KEYS.contains(&key.as_str()));
            Some(map)
        }
        Ok(_) => {
            tracing::error!(
                error_type = std::any::type_name::<E>(),
                "a TypedError must serialize to a JSON object (a struct, or an enum with `#[serde(tag = \"…\")]`); its data was dropped"
            );
            None
        }
        Err(e) => {
            tracing::error!(error_type = std::any::type_name::<E>(), error = %e, "a TypedError could not be serialized; its data was dropped");
            None
        }
    }
}

impl<E: TypedError> From<E> for Error {
    fn from(typed: E) -> Self {
        if let Some(error) = typed.untyped() {
            return error;
        }
        Error::new(typed.code(), typed.to_string()).with_typed_data(&typed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The whole table of spec §2.4, row by row.
    const SPEC: &[(&str, i32, u16)] = &[
        ("PARSE_ERROR", -32700, 400),
        ("BAD_REQUEST", -32600, 400),
        ("UNAUTHORIZED", -32001, 401),
        ("PAYMENT_REQUIRED", -32002, 402),
        ("FORBIDDEN", -32003, 403),
        ("NOT_FOUND", -32004, 404),
        ("METHOD_NOT_SUPPORTED", -32005, 405),
        ("TIMEOUT", -32008, 408),
        ("CONFLICT", -32009, 409),
        ("PRECONDITION_FAILED", -32012, 412),
        ("PAYLOAD_TOO_LARGE", -32013, 413),
        ("UNSUPPORTED_MEDIA_TYPE", -32015, 415),
        ("UNPROCESSABLE_CONTENT", -32022, 422),
        ("PRECONDITION_REQUIRED", -32028, 428),
        ("TOO_MANY_REQUESTS", -32029, 429),
        ("CLIENT_CLOSED_REQUEST", -32099, 499),
        ("INTERNAL_SERVER_ERROR", -32603, 500),
        ("NOT_IMPLEMENTED", -32603, 501),
        ("BAD_GATEWAY", -32603, 502),
        ("SERVICE_UNAVAILABLE", -32603, 503),
        ("GATEWAY_TIMEOUT", -32603, 504),
    ];

    #[test]
    fn every_variant_matches_the_spec_table() {
        assert_eq!(ErrorCode::ALL.len(), SPEC.len());
        for (code, (key, rpc, status)) in ErrorCode::ALL.iter().zip(SPEC) {
            assert_eq!(code.as_str(), *key);
            assert_eq!(code.json_rpc_code(), *rpc, "{key}");
            assert_eq!(code.http_status(), *status, "{key}");
            assert_eq!(ErrorCode::from_key(key), Some(*code));
        }
        assert_eq!(ErrorCode::from_key("NOPE"), None);
    }

    #[test]
    fn internal_hides_its_cause_in_the_message() {
        let e = Error::internal(std::io::Error::other("secret path /etc/x"));
        assert_eq!(e.message(), "Internal server error");
        assert!(e.cause_chain().unwrap_or_default().contains("secret path"));
    }

    #[test]
    fn from_code_uses_the_key_as_message() {
        assert_eq!(Error::unauthorized().message(), "UNAUTHORIZED");
    }
}
