//! Response envelopes (spec §2), shared by every transport.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::error::Error;
use crate::procedure::TypeInfo;
use crate::validate::Issue;

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

impl fmt::Debug for ErrorFormatter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ErrorFormatter")
            .field("data_type", &self.data_type)
            .finish_non_exhaustive()
    }
}

/// The keys oxrpc itself puts into `error.data`; a formatter cannot replace them.
const RESERVED_DATA_KEYS: &[&str] = &["code", "httpStatus", "path", "stack", "issues", "zodError"];

/// How errors are shown to clients, and who hears about them.
#[derive(Clone, Default)]
pub(crate) struct ErrorPolicy {
    /// Dev mode: internal causes go into `data.stack`.
    pub(crate) dev_mode: bool,
    pub(crate) formatter: Option<ErrorFormatter>,
    pub(crate) on_error: Option<Arc<OnErrorFn>>,
}

impl fmt::Debug for ErrorPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ErrorPolicy")
            .field("dev_mode", &self.dev_mode)
            .field("formatter", &self.formatter)
            .field("on_error", &self.on_error.is_some())
            .finish()
    }
}

#[derive(Serialize)]
struct ErrorShape<'a> {
    message: &'a str,
    code: i32,
    data: ErrorData<'a>,
}

#[derive(Serialize)]
struct ErrorData<'a> {
    code: &'static str,
    #[serde(rename = "httpStatus")]
    http_status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    stack: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    issues: Option<&'a [Issue]>,
    #[serde(rename = "zodError", skip_serializing_if = "Option::is_none")]
    zod_error: Option<serde_json::Value>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

impl ErrorPolicy {
    /// The error shape `{message, code, data}` as JSON text; logs internal causes.
    pub(crate) fn error_shape(&self, error: &Error, path: Option<&str>) -> String {
        let cause = error.cause_chain();
        if let Some(cause) = &cause {
            tracing::error!(path = path.unwrap_or(""), code = %error.code(), %cause, "procedure failed");
        }
        let info = ErrorInfo {
            path,
            dev_mode: self.dev_mode,
        };
        if let Some(on_error) = &self.on_error {
            on_error(error, &info);
        }
        let mut extra = match &self.formatter {
            Some(formatter) => (formatter.format)(error, &info),
            None => Map::new(),
        };
        extra.retain(|key, _| !RESERVED_DATA_KEYS.contains(&key.as_str()));
        let shape = ErrorShape {
            message: error.message(),
            code: error.code().json_rpc_code(),
            data: ErrorData {
                code: error.code().as_str(),
                http_status: error.code().http_status(),
                stack: if self.dev_mode { cause } else { None },
                path,
                issues: error.issues(),
                zod_error: error.issues().map(crate::validate::flatten),
                extra,
            },
        };
        // Serializing plain strings and numbers cannot fail.
        serde_json::to_string(&shape).unwrap_or_default()
    }

    /// `{"error":<shape>}`.
    pub(crate) fn error_envelope(&self, error: &Error, path: Option<&str>) -> String {
        format!("{{\"error\":{}}}", self.error_shape(error, path))
    }
}

/// `{"result":{"data":…}}`, or `{"result":{}}` for an `undefined` output.
pub(crate) fn result_envelope(data: Option<&RawValue>) -> String {
    match data {
        Some(data) => {
            let data = data.get();
            let mut out = String::with_capacity(data.len() + 20);
            out.push_str("{\"result\":{\"data\":");
            out.push_str(data);
            out.push_str("}}");
            out
        }
        None => "{\"result\":{}}".to_owned(),
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
            policy.error_envelope(&e, Some("notFound")),
            r#"{"error":{"message":"thing not found","code":-32004,"data":{"code":"NOT_FOUND","httpStatus":404,"path":"notFound"}}}"#
        );
        let raw = RawValue::from_string("\"hello world\"".into()).expect("json");
        assert_eq!(
            result_envelope(Some(&raw)),
            r#"{"result":{"data":"hello world"}}"#
        );
        assert_eq!(result_envelope(None), r#"{"result":{}}"#);
    }

    #[test]
    fn causes_reach_clients_only_in_dev_mode() {
        let e = Error::internal(std::io::Error::other("db password wrong"));
        let prod = ErrorPolicy::default().error_shape(&e, None);
        assert!(!prod.contains("password"), "{prod}");
        let dev = ErrorPolicy {
            dev_mode: true,
            ..ErrorPolicy::default()
        }
        .error_shape(&e, None);
        assert!(dev.contains("db password wrong"), "{dev}");
    }
}
