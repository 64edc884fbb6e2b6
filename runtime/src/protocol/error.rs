//! Error shapes (spec §2.2): built by one pure function from an [`Error`], and reported
//! (tracing and the `on_error` hook) by a separate one, so an error is reported once however
//! many times it is encoded.
//!
//! The wire types here derive `ts_rs::TS` and `schemars::JsonSchema`: the generated `.d.ts`
//! declares `ErrorData` from these very structs, so the types and the wire cannot drift apart.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::{Error, RESERVED_DATA_KEYS};
use crate::types::TypeInfo;
use crate::validate::{Issue, PathSegment};

/// Where an error happened, for error formatters and on-error hooks.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ErrorInfo<'a> {
    /// The procedure path, when the error belongs to one call.
    pub path: Option<&'a str>,
    /// Whether the server runs in dev mode.
    pub dev_mode: bool,
}

type FormatFn = dyn Fn(&Error, &ErrorInfo<'_>) -> Map<String, Value> + Send + Sync;
type OnErrorFn = dyn Fn(&Error, &ErrorInfo<'_>) + Send + Sync;

/// A user hook adding fields to `error.data` (tRPC's `errorFormatter`), with their type.
#[derive(Clone)]
pub(crate) struct ErrorFormatter {
    pub(crate) format: Arc<FormatFn>,
    pub(crate) data_type: TypeInfo,
}

impl ErrorFormatter {
    /// Wraps a user formatter returning a struct; anything else is dropped with a log line.
    pub(crate) fn new<D, F>(f: F) -> Self
    where
        D: Serialize + ts_rs::TS + schemars::JsonSchema + 'static,
        F: Fn(&Error, &ErrorInfo<'_>) -> D + Send + Sync + 'static,
    {
        let format = move |error: &Error, info: &ErrorInfo<'_>| match serde_json::to_value(f(
            error, info,
        )) {
            Ok(Value::Object(map)) => map,
            Ok(_) => {
                tracing::error!(
                    "the error formatter must return a struct (a JSON object); its output was dropped"
                );
                Map::new()
            }
            Err(e) => {
                tracing::error!(error = %e, "the error formatter's output could not be serialized");
                Map::new()
            }
        };
        ErrorFormatter {
            format: Arc::new(format),
            data_type: TypeInfo::of_output::<D>(),
        }
    }
}

impl fmt::Debug for ErrorFormatter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ErrorFormatter")
            .field("data_type", &self.data_type)
            .finish_non_exhaustive()
    }
}

/// How errors are shown to clients, and who hears about them.
#[derive(Clone, Default)]
pub(crate) struct ErrorPolicy {
    /// Dev mode: internal causes go into `data.stack`.
    pub(crate) dev_mode: bool,
    pub(crate) formatter: Option<ErrorFormatter>,
    pub(crate) on_error: Option<Arc<OnErrorFn>>,
    /// Shapes travel through the superjson transformer (`{"json":shape}`).
    pub(crate) superjson: bool,
}

impl fmt::Debug for ErrorPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ErrorPolicy")
            .field("dev_mode", &self.dev_mode)
            .field("formatter", &self.formatter)
            .field("on_error", &self.on_error.is_some())
            .field("superjson", &self.superjson)
            .finish()
    }
}

/// The error shape `{ message, code, data }` clients receive (`TRPCClientError['shape']`).
#[derive(Debug, Serialize)]
pub(crate) struct ErrorShape<'a> {
    #[serde(skip)]
    superjson: bool,
    message: &'a str,
    code: i32,
    data: ErrorData<'a>,
}

/// `error.data` as oxrpc sends it; `issues` and `zodError` come with input validation
/// failures.
#[derive(Debug, Serialize, ts_rs::TS, schemars::JsonSchema)]
#[ts(rename = "ErrorData")]
pub(crate) struct ErrorData<'a> {
    /// The tRPC error code, e.g. `"NOT_FOUND"`.
    #[ts(type = "TRPC_ERROR_CODE_KEY")]
    code: &'a str,
    /// The HTTP status that goes with the code.
    #[serde(rename = "httpStatus")]
    #[ts(rename = "httpStatus")]
    http_status: u16,
    /// The internal cause, in dev mode only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    stack: Option<String>,
    /// The procedure path, when the error belongs to one call.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    path: Option<&'a str>,
    /// Every validation problem of the input.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    issues: Option<Vec<WireIssue<'a>>>,
    /// The same problems in the shape of zod's `flatten()`.
    #[serde(rename = "zodError", skip_serializing_if = "Option::is_none")]
    #[ts(rename = "zodError", optional, inline)]
    zod_error: Option<ZodFlattened>,
    /// The error formatter's fields (typed separately, from the formatter's own type).
    #[serde(flatten)]
    #[ts(skip)]
    #[schemars(skip)]
    extra: Map<String, Value>,
}

/// One problem with an input: where, what kind (zod's issue codes) and what was expected.
#[derive(Debug, Serialize, ts_rs::TS, schemars::JsonSchema)]
#[ts(rename = "ValidationIssue")]
pub(crate) struct WireIssue<'a> {
    /// Keys and indices from the input's root.
    #[ts(type = "Array<string | number>")]
    path: &'a [PathSegment],
    /// zod's issue code, e.g. `too_small`.
    code: &'a str,
    /// What was wrong and what was expected.
    message: &'a str,
}

/// zod's `flatten()` of the issues: messages about the whole input, and by first path key.
#[derive(Debug, Serialize, ts_rs::TS, schemars::JsonSchema)]
pub(crate) struct ZodFlattened {
    #[serde(rename = "formErrors")]
    #[ts(rename = "formErrors")]
    form_errors: Vec<String>,
    #[serde(rename = "fieldErrors")]
    #[ts(
        rename = "fieldErrors",
        type = "{ [key: string]: Array<string> | undefined }"
    )]
    field_errors: BTreeMap<String, Vec<String>>,
}

impl ZodFlattened {
    fn of(issues: &[Issue]) -> Self {
        let mut flat = ZodFlattened {
            form_errors: Vec::new(),
            field_errors: BTreeMap::new(),
        };
        for issue in issues {
            match issue.path.first() {
                None => flat.form_errors.push(issue.message.clone()),
                Some(first) => flat
                    .field_errors
                    .entry(first.to_string())
                    .or_default()
                    .push(issue.message.clone()),
            }
        }
        flat
    }
}

impl TypeInfo {
    /// `error.data` as the server sends it (without the error formatter's fields): what the
    /// generated `ErrorData` declaration is rendered from, so the two cannot disagree.
    pub fn error_data() -> TypeInfo {
        TypeInfo::of_output::<ErrorData<'static>>()
    }
}

impl ErrorPolicy {
    /// The error shape, as the client will see it. Pure: no logging, no hooks.
    pub(crate) fn shape<'a>(&self, error: &'a Error, path: Option<&'a str>) -> ErrorShape<'a> {
        let info = ErrorInfo {
            path,
            dev_mode: self.dev_mode,
        };
        let mut extra = match &self.formatter {
            Some(formatter) => (formatter.format)(error, &info),
            None => Map::new(),
        };
        extra.retain(|key, _| !RESERVED_DATA_KEYS.contains(&key.as_str()));
        // A typed error's own fields (reserved keys already dropped) win over the formatter's.
        if let Some(typed) = error.data() {
            extra.extend(typed.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        let issues = error.issues();
        ErrorShape {
            superjson: self.superjson,
            message: error.message(),
            code: error.code().json_rpc_code(),
            data: ErrorData {
                code: error.code().as_str(),
                http_status: error.code().http_status(),
                stack: if self.dev_mode {
                    error.cause_chain()
                } else {
                    None
                },
                path,
                issues: issues.map(|issues| {
                    issues
                        .iter()
                        .map(|i| WireIssue {
                            path: &i.path,
                            code: i.code,
                            message: &i.message,
                        })
                        .collect()
                }),
                zod_error: issues.map(ZodFlattened::of),
                extra,
            },
        }
    }

    /// Tells the world about an error, once, where it is produced: its internal cause goes to
    /// `tracing`, and the `on_error` hook hears about it.
    pub(crate) fn report(&self, error: &Error, path: Option<&str>) {
        if let Some(cause) = error.cause_chain() {
            tracing::error!(path = path.unwrap_or(""), code = %error.code(), %cause, "procedure failed");
        }
        if let Some(on_error) = &self.on_error {
            on_error(
                error,
                &ErrorInfo {
                    path,
                    dev_mode: self.dev_mode,
                },
            );
        }
    }
}

impl ErrorShape<'_> {
    /// The shape as JSON text.
    pub(crate) fn to_json(&self) -> String {
        // Strings, numbers and string maps cannot fail to serialize.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The shape as it travels on its own (an error envelope, a WebSocket error, an SSE
    /// `serialized-error`): through the superjson transformer when it is on.
    pub(crate) fn to_wire(&self) -> String {
        let json = self.to_json();
        if self.superjson {
            super::superjson::envelope(&json, None)
        } else {
            json
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn shapes_match_the_reference_server() {
        let policy = ErrorPolicy::default();
        let e = Error::new(ErrorCode::NotFound, "thing not found");
        assert_eq!(
            policy.shape(&e, Some("notFound")).to_json(),
            r#"{"message":"thing not found","code":-32004,"data":{"code":"NOT_FOUND","httpStatus":404,"path":"notFound"}}"#
        );
    }

    #[test]
    fn flatten_is_zod_compatible() {
        let issues = vec![
            Issue::new(vec![], "custom", "top"),
            Issue::new(
                vec![PathSegment::Key("a".into()), PathSegment::Index(0)],
                "too_small",
                "m1",
            ),
            Issue::new(vec![PathSegment::Key("a".into())], "too_big", "m2"),
        ];
        assert_eq!(
            serde_json::to_value(ZodFlattened::of(&issues)).expect("json"),
            serde_json::json!({"formErrors": ["top"], "fieldErrors": {"a": ["m1", "m2"]}})
        );
    }

    /// The wire and the declared type cannot drift: every field oxrpc puts into
    /// `error.data` is checked against the JSON Schema of [`ErrorData`] (codegen checks that
    /// schema against the TypeScript declaration it emits from the same type).
    #[test]
    fn error_data_on_the_wire_matches_its_schema() {
        let validator = TypeInfo::error_data().validator().expect("schema compiles");
        let issues = vec![Issue::new(
            vec![PathSegment::Key("a".into()), PathSegment::Index(0)],
            "too_small",
            "m1",
        )];
        let policy = ErrorPolicy {
            dev_mode: true,
            ..ErrorPolicy::default()
        };
        for error in [
            Error::invalid_input(issues),
            Error::internal(std::io::Error::other("cause")),
            Error::unauthorized(),
        ] {
            let json: Value =
                serde_json::from_str(&policy.shape(&error, Some("p")).to_json()).expect("json");
            let data = &json["data"];
            let found = validator.validate(data, crate::validate::UnknownFields::Reject);
            assert!(found.is_empty(), "{data}: {found:?}");
        }
        let ts = TypeInfo::error_data()
            .ts_declarations(&ts_rs::Config::default())
            .into_iter()
            .map(|d| d.code)
            .collect::<Vec<_>>()
            .join("\n");
        for field in [
            "code: TRPC_ERROR_CODE_KEY",
            "httpStatus: number",
            "path?: string",
            "stack?: string",
            "issues?: Array<ValidationIssue>",
            "zodError?:",
            "message: string",
        ] {
            assert!(ts.contains(field), "{field} missing from {ts}");
        }
    }

    /// The keys formatters and typed errors may not replace are exactly the fields of the wire
    /// `ErrorData` (codegen reads them from the same schema).
    #[test]
    fn reserved_keys_are_the_wire_error_data_fields() {
        let schema = TypeInfo::error_data().json_schema().to_value();
        let mut fields: Vec<&str> = schema["properties"]
            .as_object()
            .expect("an object schema")
            .keys()
            .map(String::as_str)
            .collect();
        let mut reserved = RESERVED_DATA_KEYS.to_vec();
        fields.sort_unstable();
        reserved.sort_unstable();
        assert_eq!(fields, reserved);
    }

    #[test]
    fn causes_reach_clients_only_in_dev_mode() {
        let e = Error::internal(std::io::Error::other("db password wrong"));
        let prod = ErrorPolicy::default().shape(&e, None).to_json();
        assert!(!prod.contains("password"), "{prod}");
        let dev = ErrorPolicy {
            dev_mode: true,
            ..ErrorPolicy::default()
        }
        .shape(&e, None)
        .to_json();
        assert!(dev.contains("db password wrong"), "{dev}");
    }

    #[test]
    fn shaping_does_not_report_and_reporting_happens_once() {
        let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = Arc::clone(&count);
        let policy = ErrorPolicy {
            on_error: Some(Arc::new(move |_, _| {
                seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            })),
            ..ErrorPolicy::default()
        };
        let e = Error::unauthorized();
        policy.shape(&e, None).to_json();
        policy.shape(&e, Some("a")).to_json();
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 0);
        policy.report(&e, None);
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[derive(Debug, Serialize, ts_rs::TS, schemars::JsonSchema)]
    #[serde(tag = "kind", rename_all = "camelCase")]
    enum Refused {
        SoldOut {
            stock: u32,
            /// Reserved: dropped on the wire (codegen refuses it).
            code: u8,
        },
        Retry {
            retryable: bool,
        },
        #[serde(skip)]
        #[ts(skip)]
        #[schemars(skip)]
        Other(Error),
    }

    impl fmt::Display for Refused {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(match self {
                Refused::SoldOut { .. } => "sold out",
                Refused::Retry { .. } => "try again",
                Refused::Other(_) => "other",
            })
        }
    }

    impl crate::TypedError for Refused {
        fn code(&self) -> ErrorCode {
            match self {
                Refused::SoldOut { .. } => ErrorCode::Conflict,
                Refused::Retry { .. } => ErrorCode::ServiceUnavailable,
                Refused::Other(e) => e.code(),
            }
        }

        fn untyped(&self) -> Option<Error> {
            match self {
                Refused::Other(e) => Some(e.clone()),
                _ => None,
            }
        }
    }

    #[derive(Serialize, ts_rs::TS, schemars::JsonSchema)]
    struct Extra {
        retryable: bool,
        region: &'static str,
    }

    #[test]
    fn typed_fields_join_the_standard_data_and_the_formatters() {
        let policy = ErrorPolicy {
            formatter: Some(ErrorFormatter::new(|e: &Error, _: &ErrorInfo<'_>| Extra {
                retryable: e.code().http_status() >= 500,
                region: "eu",
            })),
            ..ErrorPolicy::default()
        };
        let e = Error::from(Refused::SoldOut { stock: 2, code: 9 });
        assert_eq!(
            policy.shape(&e, Some("buy")).to_json(),
            r#"{"message":"sold out","code":-32009,"data":{"code":"CONFLICT","httpStatus":409,"path":"buy","kind":"soldOut","region":"eu","retryable":false,"stock":2}}"#
        );
        // A typed field wins over the formatter's field of the same name.
        let e = Error::from(Refused::Retry { retryable: false });
        let json: Value = serde_json::from_str(&policy.shape(&e, None).to_json()).expect("json");
        assert_eq!(json["data"]["retryable"], false);
        assert_eq!(json["data"]["httpStatus"], 503);
        // An untyped case is that error, in the root shape.
        let e = Error::from(Refused::Other(Error::not_found("gone")));
        assert_eq!(e.code(), ErrorCode::NotFound);
        assert!(e.data().is_none());
        assert_eq!(
            policy.shape(&e, None).to_json(),
            r#"{"message":"gone","code":-32004,"data":{"code":"NOT_FOUND","httpStatus":404,"region":"eu","retryable":false}}"#
        );
    }

    #[test]
    fn typed_data_survives_clones_and_keeps_the_error_displayable() {
        let e = Error::from(Refused::SoldOut { stock: 1, code: 0 });
        let copy = e.clone();
        assert_eq!(copy.data(), e.data());
        assert_eq!(e.to_string(), "CONFLICT: sold out");
        assert!(format!("{e:?}").contains("soldOut"));
    }
}
