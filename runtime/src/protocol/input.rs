//! Raw JSON inputs from the wire: parsed to raw JSON text (never to a tree: serde_json's raw
//! values are captured without recursion), with the limits every transport shares.

use std::collections::BTreeMap;

use bytestring::ByteString;
use serde_json::value::RawValue;

use crate::call::{InputText, RawInput};
use crate::error::{Error, ErrorCode};

/// The deepest nesting of arrays and objects accepted in an input.
pub(crate) const MAX_DEPTH: usize = 128;

/// Whether `text` nests arrays/objects deeper than `max` (strings are skipped correctly).
/// Checked before parsing, so hostile input never reaches a recursive parser.
fn nests_deeper_than(text: &[u8], max: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in text {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// Refuses an input nested deeper than [`MAX_DEPTH`], before anything parses it to a tree.
pub(crate) fn check_depth(input: &RawInput) -> Result<(), Error> {
    match input {
        Some(raw) if nests_deeper_than(raw.get().as_bytes(), MAX_DEPTH) => Err(too_deep()),
        _ => Ok(()),
    }
}

fn too_deep() -> Error {
    Error::new(
        ErrorCode::BadRequest,
        format!(
            "Input is nested too deeply: at most {MAX_DEPTH} levels of arrays and objects are accepted"
        ),
    )
}

/// The client's `connectionParams`: a JSON object of strings, or `null`.
pub(crate) type ConnectionParams = Option<BTreeMap<String, String>>;

/// Parses `connectionParams` (an HTTP query parameter, or the data of a WebSocket frame).
pub(crate) fn parse_connection_params(text: &str) -> Result<ConnectionParams, Error> {
    serde_json::from_str(text)
        .map_err(|_| Error::new(ErrorCode::ParseError, "Invalid connection params shape"))
}

/// Parses one input; empty text counts as "no input". The input is a slice of `text`.
pub(crate) fn parse(text: &ByteString) -> Result<RawInput, Error> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    serde_json::from_str::<&RawValue>(text)
        .map(|raw| Some(InputText::within(text, raw.get())))
        .map_err(|e| {
            // Too deep and broken: the limit is the clearer answer (and the same either way).
            if nests_deeper_than(text.as_bytes(), MAX_DEPTH) {
                return too_deep();
            }
            Error::new(
                ErrorCode::ParseError,
                format!("Input is not valid JSON: {e}"),
            )
        })
}

/// Parses a batch input `{"0":…,"1":…}` into one input per call, in one pass: each call's
/// raw value is captured by its index (keys that are not a call's index are skipped, a repeated
/// key keeps its last value). Each input is a slice of `text`.
pub(crate) fn parse_batch(text: &ByteString, calls: usize) -> Result<Vec<RawInput>, Error> {
    if text.trim().is_empty() {
        return Ok(vec![None; calls]);
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let parsed = serde::de::DeserializeSeed::deserialize(BatchInputs { calls, text }, &mut de)
        .and_then(|inputs| de.end().map(|()| inputs));
    parsed.map_err(|e| match e.classify() {
        serde_json::error::Category::Data => {
            Error::bad_request("\"input\" needs to be an object when doing a batch call")
        }
        _ if nests_deeper_than(text.as_bytes(), MAX_DEPTH) => too_deep(),
        _ => Error::new(
            ErrorCode::ParseError,
            format!("Input is not valid JSON: {e}"),
        ),
    })
}

/// Deserializes a batch object (`text`) straight into one slot per call.
struct BatchInputs<'t> {
    calls: usize,
    text: &'t ByteString,
}

impl<'de> serde::de::DeserializeSeed<'de> for BatchInputs<'_> {
    type Value = Vec<RawInput>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for BatchInputs<'_> {
    type Value = Vec<RawInput>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object of inputs by call index")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut inputs: Vec<RawInput> = vec![None; self.calls];
        while let Some(CallIndex(index)) = map.next_key()? {
            match index.and_then(|i| inputs.get_mut(i)) {
                Some(slot) => {
                    let raw: &'de RawValue = map.next_value()?;
                    *slot = Some(InputText::within(self.text, raw.get()));
                }
                None => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(inputs)
    }
}

/// A batch key: the call index it names, if it is one written as tRPC writes it (`"0"`,
/// `"12"`: decimal digits, no sign, no leading zero).
struct CallIndex(Option<usize>);

impl<'de> serde::Deserialize<'de> for CallIndex {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Key;
        impl serde::de::Visitor<'_> for Key {
            type Value = CallIndex;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a call index")
            }

            fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<CallIndex, E> {
                let canonical = !key.is_empty()
                    && key.bytes().all(|b| b.is_ascii_digit())
                    && (key.len() == 1 || !key.starts_with('0'));
                Ok(CallIndex(canonical.then(|| key.parse().ok()).flatten()))
            }
        }
        d.deserialize_str(Key)
    }
}

/// Merges the client's last seen event id into a subscription input (spec §6.3): an object
/// gains `lastEventId`, no input (or `null`) becomes `{ "lastEventId": … }`, anything else is
/// left alone.
pub(crate) fn merge_last_event_id(
    input: RawInput,
    last_event_id: Option<&str>,
) -> Result<RawInput, Error> {
    let Some(id) = last_event_id else {
        return Ok(input);
    };
    let id = serde_json::Value::String(id.to_owned());
    let merged = match input
        .as_ref()
        .map(|raw| serde_json::from_str::<serde_json::Value>(raw.get()))
    {
        None | Some(Ok(serde_json::Value::Null)) => serde_json::json!({ "lastEventId": id }),
        Some(Ok(serde_json::Value::Object(mut map))) => {
            map.insert("lastEventId".to_owned(), id);
            serde_json::Value::Object(map)
        }
        Some(Ok(_)) => return Ok(input),
        Some(Err(e)) => {
            return Err(Error::new(
                ErrorCode::ParseError,
                format!("Input is not valid JSON: {e}"),
            ));
        }
    };
    serde_json::to_string(&merged)
        .map(|json| Some(InputText::written(json)))
        .map_err(Error::internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_ignores_brackets_in_strings() {
        assert!(!nests_deeper_than(br#"["[[[[", {"a": "{{{{\"[["}]"#, 2));
        assert!(nests_deeper_than(b"[[[1]]]", 2));
    }

    #[test]
    fn empty_is_undefined_and_errors_have_codes() {
        assert!(parse(&ByteString::from("")).expect("empty").is_none());
        assert_eq!(
            parse(&ByteString::from("{nope")).expect_err("bad").code(),
            ErrorCode::ParseError
        );
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let deep =
            parse(&ByteString::from(deep)).expect("raw values are captured without recursion");
        assert_eq!(
            check_depth(&deep).expect_err("deep").code(),
            ErrorCode::BadRequest
        );
        assert!(check_depth(&parse(&ByteString::from("[[1]]")).expect("json")).is_ok());
    }

    #[test]
    fn last_event_id_is_merged_into_objects_and_nothing_else() {
        let merged = merge_last_event_id(
            parse(&ByteString::from(r#"{"from":1}"#)).expect("json"),
            Some("7"),
        )
        .expect("merge");
        assert_eq!(
            merged.as_ref().map(InputText::get),
            Some(r#"{"from":1,"lastEventId":"7"}"#)
        );
        let merged = merge_last_event_id(None, Some("7")).expect("merge");
        assert_eq!(
            merged.as_ref().map(InputText::get),
            Some(r#"{"lastEventId":"7"}"#)
        );
        let merged = merge_last_event_id(parse(&ByteString::from("5")).expect("json"), Some("7"))
            .expect("merge");
        assert_eq!(merged.as_ref().map(InputText::get), Some("5"));
        assert!(merge_last_event_id(None, None).expect("none").is_none());
    }

    #[test]
    fn batch_inputs_by_index() {
        let v = parse_batch(&ByteString::from(r#"{"1":{"a":1}}"#), 3).expect("ok");
        assert!(v[0].is_none() && v[2].is_none());
        assert_eq!(v[1].as_ref().map(InputText::get), Some(r#"{"a":1}"#));
        assert_eq!(
            parse_batch(&ByteString::from("[1]"), 1)
                .expect_err("array")
                .code(),
            ErrorCode::BadRequest
        );
        assert_eq!(
            parse_batch(&ByteString::from(""), 2).expect("none").len(),
            2
        );
    }

    #[test]
    fn inputs_are_slices_of_the_text_they_came_in() {
        let text = ByteString::from(String::from(r#"{"0":"a","1":{"b":[1,2]}}"#));
        let range = text.as_bytes().as_ptr_range();
        let inputs = parse_batch(&text, 2).expect("ok");
        for (input, json) in inputs.iter().zip([r#""a""#, r#"{"b":[1,2]}"#]) {
            let input = input.as_ref().expect("an input");
            assert_eq!(input.get(), json);
            assert!(range.contains(&input.get().as_ptr()), "{json} was copied");
        }
        let one = ByteString::from(String::from(" [1] "));
        let input = parse(&one).expect("ok").expect("an input");
        assert_eq!(input.get(), "[1]");
        assert!(
            one.as_bytes()
                .as_ptr_range()
                .contains(&input.get().as_ptr())
        );
        // Text from elsewhere is copied, not sliced out of the wrong buffer.
        let elsewhere = InputText::within(&one, "[2]");
        assert_eq!(elsewhere.get(), "[2]");
        assert!(
            !one.as_bytes()
                .as_ptr_range()
                .contains(&elsewhere.get().as_ptr())
        );
    }

    #[test]
    fn batch_keys_must_name_a_call_as_trpc_writes_it() {
        let v = parse_batch(
            &ByteString::from(r#"{"0":1,"01":2,"+1":3,"9":4,"x":{"deep":[1]},"\u0031":5,"0":6}"#),
            2,
        )
        .expect("ok");
        // "0" repeated: the last value wins; "\u0031" is "1"; the rest name no call.
        assert_eq!(v[0].as_ref().map(InputText::get), Some("6"));
        assert_eq!(v[1].as_ref().map(InputText::get), Some("5"));
        for (text, code) in [
            ("null", ErrorCode::BadRequest),
            ("\"0\"", ErrorCode::BadRequest),
            (r#"{"0":1"#, ErrorCode::ParseError),
            (r#"{"0":1} x"#, ErrorCode::ParseError),
            (r#"{"0":[1,}"#, ErrorCode::ParseError),
        ] {
            assert_eq!(
                parse_batch(&ByteString::from(text), 1)
                    .expect_err(text)
                    .code(),
                code,
                "{text}"
            );
        }
        // Captured without recursion; the depth limit is checked per input (by dispatch).
        let deep = format!(r#"{{"0":{}{}}}"#, "[".repeat(200), "]".repeat(200));
        let v = parse_batch(&ByteString::from(deep), 1).expect("captured");
        assert!(
            check_depth(&v[0])
                .expect_err("deep")
                .message()
                .contains("nested too deeply")
        );
    }
}
