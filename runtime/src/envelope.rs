//! Response envelopes (spec §2), shared by every transport.

use serde::Serialize;
use serde_json::value::RawValue;

use crate::error::Error;

/// How errors are shown to clients.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ErrorPolicy {
    /// Dev mode: internal causes go into `data.stack`.
    pub(crate) dev_mode: bool,
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
}

impl ErrorPolicy {
    /// The error shape `{message, code, data}` as JSON text; logs internal causes.
    pub(crate) fn error_shape(self, error: &Error, path: Option<&str>) -> String {
        let cause = error.cause_chain();
        if let Some(cause) = &cause {
            tracing::error!(path = path.unwrap_or(""), code = %error.code(), %cause, "procedure failed");
        }
        let shape = ErrorShape {
            message: error.message(),
            code: error.code().json_rpc_code(),
            data: ErrorData {
                code: error.code().as_str(),
                http_status: error.code().http_status(),
                stack: if self.dev_mode { cause } else { None },
                path,
            },
        };
        // Serializing plain strings and numbers cannot fail.
        serde_json::to_string(&shape).unwrap_or_default()
    }

    /// `{"error":<shape>}`.
    pub(crate) fn error_envelope(self, error: &Error, path: Option<&str>) -> String {
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
        let prod = ErrorPolicy { dev_mode: false }.error_shape(&e, None);
        assert!(!prod.contains("password"), "{prod}");
        let dev = ErrorPolicy { dev_mode: true }.error_shape(&e, None);
        assert!(dev.contains("db password wrong"), "{dev}");
    }
}
