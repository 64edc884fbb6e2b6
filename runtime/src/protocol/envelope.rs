//! Response envelopes (spec §2): `{"result":{"data":…}}` and `{"error":…}`, and the batch
//! forms that hold them (a JSON array; the head line of a JSONL stream, spec §5.5). Data is
//! spliced in as raw JSON text, never re-parsed.

use std::fmt::Write as _;

use serde_json::value::RawValue;

use crate::protocol::error::ErrorShape;

/// `{"result":{"data":…}}`, or `{"result":{}}` for an `undefined` output.
pub(crate) fn result(data: Option<&RawValue>) -> String {
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

/// `{"error":<shape>}`.
pub(crate) fn error(shape: &ErrorShape<'_>) -> String {
    let shape = shape.to_json();
    let mut out = String::with_capacity(shape.len() + 10);
    out.push_str("{\"error\":");
    out.push_str(&shape);
    out.push('}');
    out
}

/// A batch answer: `[envelope, …]`.
pub(crate) fn batch<'a>(envelopes: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::from("[");
    for (i, envelope) in envelopes.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(envelope);
    }
    out.push(']');
    out
}

/// The head line of a streamed batch (JSONL, spec §5.4): every call is a promise that a later
/// chunk line settles, so the head goes out before any call finishes:
/// `{"0":[[0],[null,0,0]],"1":[[0],[null,0,1]]}` and a newline.
pub(crate) fn jsonl_head(calls: usize) -> String {
    let mut out = String::with_capacity(calls * 24 + 3);
    out.push('{');
    for i in 0..calls {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "\"{i}\":[[0],[null,0,{i}]]");
    }
    out.push_str("}\n");
    out
}

/// The chunk line that settles call `index`'s promise with its envelope (spec §5.5):
/// `[index,0,[[envelope]]]` and a newline. Errors travel in-band, as `{"error":…}` envelopes.
pub(crate) fn jsonl_settled(index: usize, envelope: &str) -> String {
    let mut out = String::with_capacity(envelope.len() + 16);
    let _ = write!(out, "[{index},0,[[");
    out.push_str(envelope);
    out.push_str("]]]\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Error, ErrorCode};
    use crate::protocol::error::ErrorPolicy;

    #[test]
    fn envelopes_match_the_reference_server() {
        let raw = RawValue::from_string("\"hello world\"".into()).expect("json");
        assert_eq!(result(Some(&raw)), r#"{"result":{"data":"hello world"}}"#);
        assert_eq!(result(None), r#"{"result":{}}"#);
        let e = Error::new(ErrorCode::NotFound, "thing not found");
        assert_eq!(
            error(&ErrorPolicy::default().shape(&e, Some("notFound"))),
            r#"{"error":{"message":"thing not found","code":-32004,"data":{"code":"NOT_FOUND","httpStatus":404,"path":"notFound"}}}"#
        );
        assert_eq!(batch(["1", "2"]), "[1,2]");
        assert_eq!(
            jsonl_head(2),
            "{\"0\":[[0],[null,0,0]],\"1\":[[0],[null,0,1]]}\n"
        );
        assert_eq!(
            jsonl_settled(1, r#"{"result":{"data":5}}"#),
            "[1,0,[[{\"result\":{\"data\":5}}]]]\n"
        );
    }
}
