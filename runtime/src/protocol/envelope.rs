//! Response envelopes (spec §2): `{"result":{"data":…}}` and `{"error":…}`, and the
//! lines of a JSONL stream that hold them (spec §5.5); a batch's JSON array is written by the
//! HTTP transport around them. Data is spliced in as raw JSON text, never re-parsed.

use std::borrow::Cow;
use std::fmt::Write as _;

use crate::protocol::error::ErrorShape;
use crate::protocol::superjson;

/// The length of what [`write_result`] writes for `data`, exactly (a body sized exactly
/// becomes `Bytes` without an allocation of its own).
pub(crate) fn result_len(data: Option<&str>) -> usize {
    const RESULT: usize = r#"{"result":{"data":}}"#.len();
    const UNDEFINED: usize = r#"{"result":{}}"#.len();
    data.map_or(UNDEFINED, |data| data.len() + RESULT)
}

/// `{"result":{"data":…}}`, or `{"result":{}}` for an `undefined` output.
pub(crate) fn result(data: Option<&str>) -> String {
    let mut out = String::with_capacity(result_len(data));
    write_result(&mut out, data);
    out
}

/// [`result`] of JSON text, written at the end of `out` (a batch writes every envelope into
/// one body).
pub(crate) fn write_result(out: &mut String, data: Option<&str>) {
    match data {
        Some(data) => {
            out.push_str("{\"result\":{\"data\":");
            out.push_str(data);
            out.push_str("}}");
        }
        None => out.push_str("{\"result\":{}}"),
    }
}

/// `{"error":<shape>}`, the shape as it travels on its own (through the superjson
/// transformer when it is on).
pub(crate) fn error(shape: &ErrorShape<'_>) -> String {
    error_of(&shape.to_wire())
}

/// `{"error":<shape>}` inside a larger message (a JSONL line goes through the transformer as
/// a whole).
pub(crate) fn error_in_line(shape: &ErrorShape<'_>) -> String {
    error_of(&shape.to_json())
}

fn error_of(shape: &str) -> String {
    let mut out = String::with_capacity(shape.len() + 10);
    out.push_str("{\"error\":");
    out.push_str(shape);
    out.push('}');
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
    jsonl_fulfilled(index, envelope, &[])
}

/// What a chunk reference stands for (spec §5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChunkKind {
    /// One value later.
    Promise = 0,
    /// Many values, then an end.
    Iterable = 1,
}

/// A direct field of a chunk's data (`Some(key)`), or the whole data (`None`), sent as chunk
/// `id` of the given kind.
pub(crate) type ChunkRef<'a> = (Option<&'a str>, ChunkKind, usize);

/// JSON text on one line. A raw value (e.g. a `RawValue` in an output) may hold line breaks,
/// but only as whitespace between tokens (JSON strings cannot contain raw ones), so turning
/// them into spaces keeps the value and the JSONL framing.
fn one_line(json: &str) -> Cow<'_, str> {
    if json.contains(['\n', '\r']) {
        Cow::Owned(json.replace(['\n', '\r'], " "))
    } else {
        Cow::Borrowed(json)
    }
}

/// Promise chunk `id` fulfilled with `data`, whose fields in `refs` follow as chunks of their
/// own: `[id,0,[[data],[key,kind,ref],…]]` and a newline.
pub(crate) fn jsonl_fulfilled(id: usize, data: &str, refs: &[ChunkRef<'_>]) -> String {
    let mut out = String::with_capacity(data.len() + 16 + refs.len() * 16);
    let _ = write!(out, "[{id},0,[[");
    out.push_str(&one_line(data));
    out.push(']');
    for (key, kind, chunk) in refs {
        let key = match key {
            Some(key) => serde_json::to_string(key).unwrap_or_else(|_| "null".to_owned()),
            None => "null".to_owned(),
        };
        let _ = write!(out, ",[{key},{},{chunk}]", *kind as u8);
    }
    out.push_str("]]\n");
    out
}

/// Promise chunk `id` rejected: `[id,1,shape]`.
pub(crate) fn jsonl_rejected(id: usize, shape: &ErrorShape<'_>) -> String {
    format!("[{id},1,{}]\n", shape.to_json())
}

/// One item of iterable chunk `id`: `[id,1,[[value]]]`.
pub(crate) fn jsonl_yield(id: usize, value: &str) -> String {
    format!("[{id},1,[[{}]]]\n", one_line(value))
}

/// Where a chunk line holds its value (`[id,n,[[value]…]]`), as a superjson path.
pub(crate) const JSONL_VALUE_PATH: &str = "2.0.0";

/// Where a settled call's line holds its output (`[i,0,[[{"result":{"data":…}}]]]`).
pub(crate) const JSONL_OUTPUT_PATH: &str = "2.0.0.result.data";

/// A JSONL line through the superjson transformer: the whole line is one value, `value_at`
/// places the annotations of the value it carries.
pub(crate) fn jsonl_superjson(line: &str, value_at: Option<(&str, &str)>) -> String {
    let mut out = superjson::wrap(line.strip_suffix('\n').unwrap_or(line), value_at);
    out.push('\n');
    out
}

/// Iterable chunk `id` ended, returning `undefined`: `[id,0,[[]]]`.
pub(crate) fn jsonl_return(id: usize) -> String {
    format!("[{id},0,[[]]]\n")
}

/// Iterable chunk `id` failed: `[id,2,shape]`.
pub(crate) fn jsonl_iteration_error(id: usize, shape: &ErrorShape<'_>) -> String {
    format!("[{id},2,{}]\n", shape.to_json())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Error, ErrorCode};
    use crate::protocol::error::ErrorPolicy;

    #[test]
    fn envelopes_match_the_reference_server() {
        assert_eq!(
            result(Some("\"hello world\"")),
            r#"{"result":{"data":"hello world"}}"#
        );
        assert_eq!(result(None), r#"{"result":{}}"#);
        for data in [Some("\"hello world\""), Some("5"), None] {
            let written = result(data);
            assert_eq!(result_len(data), written.len(), "{written}");
            assert_eq!(
                written.capacity(),
                written.len(),
                "sized exactly: {written}"
            );
        }
        let e = Error::new(ErrorCode::NotFound, "thing not found");
        assert_eq!(
            error(&ErrorPolicy::default().shape(&e, Some("notFound"))),
            r#"{"error":{"message":"thing not found","code":-32004,"data":{"code":"NOT_FOUND","httpStatus":404,"path":"notFound"}}}"#
        );
        assert_eq!(
            jsonl_head(2),
            "{\"0\":[[0],[null,0,0]],\"1\":[[0],[null,0,1]]}\n"
        );
        assert_eq!(
            jsonl_settled(1, r#"{"result":{"data":5}}"#),
            "[1,0,[[{\"result\":{\"data\":5}}]]]\n"
        );
        // The shapes of spec §11.4 (deferred fields and an async-iterable output).
        assert_eq!(
            jsonl_fulfilled(
                2,
                r#"{"now":1,"later":0}"#,
                &[(Some("later"), ChunkKind::Promise, 3)]
            ),
            "[2,0,[[{\"now\":1,\"later\":0}],[\"later\",0,3]]]\n"
        );
        assert_eq!(
            jsonl_fulfilled(2, "0", &[(None, ChunkKind::Iterable, 3)]),
            "[2,0,[[0],[null,1,3]]]\n"
        );
        assert_eq!(
            jsonl_yield(3, "\"hello world\""),
            "[3,1,[[\"hello world\"]]]\n"
        );
        assert_eq!(jsonl_return(3), "[3,0,[[]]]\n");
        // Line breaks between tokens do not break the framing.
        assert_eq!(jsonl_settled(0, "[1,\r\n2]"), "[0,0,[[[1,  2]]]]\n");
    }
}
