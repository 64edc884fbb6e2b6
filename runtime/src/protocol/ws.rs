//! The WebSocket side of the wire (spec §7): incoming messages (one object or a batch array
//! per frame), the connection-params frame, and every outgoing frame. Event data is spliced
//! in as raw JSON text.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;
use smallvec::SmallVec;

use crate::call::ProcedureKind;
use crate::error::{Error, ErrorCode};
use crate::protocol::error::ErrorShape;
use crate::protocol::input::{self, ConnectionParams};
use crate::protocol::superjson;

/// The server's keep-alive ping, and the answer to a client's.
pub(crate) const PING: &str = "PING";
/// The answer to the client's `PING`.
pub(crate) const PONG: &str = "PONG";
/// Tells the client to reconnect (and resubscribe with its last event ids).
pub(crate) const RECONNECT: &str = r#"{"id":null,"method":"reconnect"}"#;

/// One incoming message (spec §7.2), borrowed from its frame where it can be.
#[derive(Deserialize)]
struct Incoming<'a> {
    #[serde(default, borrow)]
    id: Option<&'a RawValue>,
    #[serde(default, borrow)]
    jsonrpc: Option<&'a RawValue>,
    #[serde(default, borrow)]
    method: Option<Text<'a>>,
    #[serde(default, borrow)]
    params: Option<Params<'a>>,
}

/// A string borrowed from the frame unless it has escapes (`Option<Cow<str>>` would always
/// copy: serde borrows only a field that is a `Cow` itself).
#[derive(Deserialize)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

#[derive(Deserialize)]
struct Params<'a> {
    #[serde(borrow)]
    path: Cow<'a, str>,
    #[serde(default, borrow)]
    input: Option<&'a RawValue>,
    #[serde(default, rename = "lastEventId")]
    last_event_id: Option<String>,
}

/// What one incoming message asks for.
#[derive(Debug)]
pub(crate) enum Request<'a> {
    /// A query, mutation or subscription.
    Call {
        /// Where the answers go.
        reply: ReplyTo,
        /// The procedure kind the client expects.
        kind: ProcedureKind,
        /// The procedure path.
        path: Cow<'a, str>,
        /// The raw input, borrowed from the frame.
        input: Option<&'a RawValue>,
        /// The client's last seen event id (subscriptions).
        last_event_id: Option<String>,
    },
    /// `subscription.stop` for the subscription with this id.
    Stop(ReplyTo),
    /// A repeated connection-params frame (the context is already set): ignored.
    ConnectionParams,
    /// A message with an id whose fault is reported to that id.
    Invalid(ReplyTo, Error),
}

/// The messages of a frame: one object or an array of them, each still unparsed text. A
/// frame of one object is not read here at all ([`parse_message`] reads it once). Inputs
/// are captured as raw JSON without recursion, so the depth limit is the dispatcher's to
/// apply.
pub(crate) fn split_frame(text: &str) -> Result<SmallVec<[&str; 1]>, Error> {
    if !text.trim_start().starts_with('[') {
        return Ok(smallvec::smallvec![text]);
    }
    let messages: Vec<&RawValue> = serde_json::from_str(text)
        .map_err(|e| Error::new(ErrorCode::ParseError, format!("Invalid JSON: {e}")))?;
    Ok(messages.into_iter().map(RawValue::get).collect())
}

/// Reads one message. `Err` is a fault that cannot be tied to a request id (answered with
/// `"id": null`).
pub(crate) fn parse_message(text: &str) -> Result<Request<'_>, Error> {
    let incoming: Incoming<'_> = serde_json::from_str(text).map_err(|e| {
        let what = if e.is_data() {
            "Invalid message"
        } else {
            "Invalid JSON"
        };
        Error::new(ErrorCode::ParseError, format!("{what}: {e}"))
    })?;
    let method = incoming.method.as_ref().map(|m| &*m.0);
    if method == Some("connectionParams") && incoming.id.is_none() {
        return Ok(Request::ConnectionParams);
    }
    let Some(id) = incoming.id.and_then(reply_id) else {
        return Err(Error::new(ErrorCode::ParseError, "`id` is required"));
    };
    let reply = ReplyTo {
        id,
        jsonrpc: incoming.jsonrpc.is_some(),
    };
    if incoming.jsonrpc.is_some_and(|v| v.get() != r#""2.0""#) {
        let e = Error::new(
            ErrorCode::ParseError,
            r#"`jsonrpc` must be "2.0" when present"#,
        );
        return Ok(Request::Invalid(reply, e));
    }
    let kind = match method {
        Some("query") => ProcedureKind::Query,
        Some("mutation") => ProcedureKind::Mutation,
        Some("subscription") => ProcedureKind::Subscription,
        Some("subscription.stop") => return Ok(Request::Stop(reply)),
        _ => return Err(Error::new(ErrorCode::ParseError, "Invalid procedure type")),
    };
    let Some(params) = incoming.params else {
        let e = Error::new(ErrorCode::ParseError, "`params.path` is required");
        return Ok(Request::Invalid(reply, e));
    };
    Ok(Request::Call {
        reply,
        kind,
        path: params.path,
        input: params.input,
        last_event_id: params.last_event_id,
    })
}

/// A request id as the JSON text replies carry, if it is a number or a string. The client's
/// own text, except that a string with escapes is written out again, so that one id has one
/// key however it was escaped (`subscription.stop` finds its subscription by it).
fn reply_id(id: &RawValue) -> Option<String> {
    let text = id.get();
    match text.as_bytes().first()? {
        b'"' if text.contains('\\') => {
            let value: String = serde_json::from_str(text).ok()?;
            serde_json::to_string(&value).ok()
        }
        b'"' | b'-' | b'0'..=b'9' => Some(text.to_owned()),
        _ => None,
    }
}

/// The requests of a frame that cannot be served (bad connection params): their ids and
/// paths, so each gets the error.
pub(crate) fn pending_calls(text: &str) -> Vec<(ReplyTo, String)> {
    split_frame(text)
        .unwrap_or_default()
        .iter()
        .filter_map(|raw| match parse_message(raw) {
            Ok(Request::Call { reply, path, .. }) => Some((reply, path.into_owned())),
            _ => None,
        })
        .collect()
}

/// Reads `{"method":"connectionParams","data":{…}|null}` (spec §7.1); `None` if the frame
/// is something else.
pub(crate) fn connection_params(text: &str) -> Option<ConnectionParams> {
    #[derive(Deserialize)]
    struct Frame<'a> {
        method: &'a str,
        #[serde(borrow)]
        data: &'a RawValue,
    }
    let frame: Frame<'_> = serde_json::from_str(text).ok()?;
    if frame.method != "connectionParams" {
        return None;
    }
    input::parse_connection_params(frame.data.get()).ok()
}

/// An error that belongs to no request: `{"id":null,"error":…}`.
pub(crate) fn error_without_id(shape: &ErrorShape<'_>) -> String {
    format!(r#"{{"id":null,"error":{}}}"#, shape.to_wire())
}

/// Echoes a request's `id` (and `jsonrpc`) on every frame that answers it.
#[derive(Debug, Clone)]
pub(crate) struct ReplyTo {
    id: String,
    jsonrpc: bool,
}

impl ReplyTo {
    /// The request id as JSON text: the key of a subscription on its connection.
    pub(crate) fn key(&self) -> &str {
        &self.id
    }

    fn frame(&self, body: &str) -> String {
        self.frame_of(&[body])
    }

    /// `{"id":…,<body pieces>}`, written into one allocation (every reply and event of every
    /// connection goes through here).
    fn frame_of(&self, body: &[&str]) -> String {
        let jsonrpc = if self.jsonrpc {
            r#","jsonrpc":"2.0""#
        } else {
            ""
        };
        let len = body.iter().map(|p| p.len()).sum::<usize>();
        let mut out = String::with_capacity(9 + self.id.len() + jsonrpc.len() + len);
        out.push_str(r#"{"id":"#);
        out.push_str(&self.id);
        out.push_str(jsonrpc);
        out.push(',');
        for piece in body {
            out.push_str(piece);
        }
        out.push('}');
        out
    }

    /// The answer to a query or mutation.
    pub(crate) fn data(&self, data: Option<&str>) -> String {
        match data {
            Some(data) => self.frame_of(&[r#""result":{"type":"data","data":"#, data, "}"]),
            None => self.frame(r#""result":{"type":"data"}"#),
        }
    }

    /// A subscription started.
    pub(crate) fn started(&self) -> String {
        self.frame(r#""result":{"type":"started"}"#)
    }

    /// One subscription event; a tracked one carries its id twice (spec §7.3). With the
    /// superjson transformer (`data` is then an envelope), a tracked event's `{id, data}`
    /// pair goes through it as a whole (spec §4).
    pub(crate) fn event(&self, id: Option<&str>, data: &str, superjson: bool) -> String {
        match id {
            Some(id) => {
                let id = serde_json::to_string(id).unwrap_or_default();
                let pair = if superjson {
                    let split = superjson::Split::of(data);
                    let pair = format!(r#"{{"id":{id},"data":{}}}"#, split.json());
                    superjson::wrap(&pair, split.values().map(|v| ("data", v)))
                } else {
                    format!(r#"{{"id":{id},"data":{data}}}"#)
                };
                self.frame(&format!(
                    r#""result":{{"type":"data","data":{pair},"id":{id}}}"#
                ))
            }
            None => self.frame_of(&[r#""result":{"type":"data","data":"#, data, "}"]),
        }
    }

    /// A subscription ended.
    pub(crate) fn stopped(&self) -> String {
        self.frame(r#""result":{"type":"stopped"}"#)
    }

    /// The request failed.
    pub(crate) fn error(&self, shape: &ErrorShape<'_>) -> String {
        self.frame(&format!(r#""error":{}"#, shape.to_wire()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_echo_id_and_jsonrpc() {
        let raw = split_frame(r#"[{"id":1,"jsonrpc":"2.0","method":"query","params":{"path":"a","input":{"x":1}}},{"id":"s","method":"subscription.stop"}]"#)
            .expect("frame");
        let Ok(Request::Call {
            reply,
            kind,
            path,
            input,
            ..
        }) = parse_message(raw[0])
        else {
            panic!("a call");
        };
        assert_eq!((kind, &*path), (ProcedureKind::Query, "a"));
        assert_eq!(input.map(RawValue::get), Some(r#"{"x":1}"#));
        assert_eq!(
            reply.started(),
            r#"{"id":1,"jsonrpc":"2.0","result":{"type":"started"}}"#
        );
        let Ok(Request::Stop(stop)) = parse_message(raw[1]) else {
            panic!("a stop");
        };
        assert_eq!(stop.key(), "\"s\"");
        assert_eq!(
            stop.event(Some("7"), "5", false),
            r#"{"id":"s","result":{"type":"data","data":{"id":"7","data":5},"id":"7"}}"#
        );
        assert_eq!(stop.data(None), r#"{"id":"s","result":{"type":"data"}}"#);
    }

    #[test]
    fn a_single_message_is_read_once_and_its_faults_are_named() {
        // Not parsed by the split: the message parser says what is wrong.
        for (frame, says) in [
            (r#"{"id":1,"method":"query""#, "Invalid JSON"),
            (
                r#"{"id":1,"method":"query","params":{"path":5}}"#,
                "Invalid message",
            ),
        ] {
            let messages = split_frame(frame).expect("one message");
            let Err(e) = parse_message(messages[0]) else {
                panic!("{frame} parsed");
            };
            assert_eq!(e.code(), ErrorCode::ParseError);
            assert!(e.message().starts_with(says), "{frame}: {}", e.message());
        }
        let Err(e) = split_frame(r#"[{"id":1},"#) else {
            panic!("a broken batch split");
        };
        assert!(e.message().starts_with("Invalid JSON"), "{}", e.message());
    }

    #[test]
    fn ids_are_echoed_as_sent_and_escapes_have_one_key() {
        let key = |frame: &str| match parse_message(frame) {
            Ok(Request::Stop(reply)) => Ok(reply.key().to_owned()),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e.message().to_owned()),
        };
        assert_eq!(
            key(r#"{"id":7,"method":"subscription.stop"}"#),
            Ok("7".into())
        );
        assert_eq!(
            key(r#"{"id":-1.5,"method":"subscription.stop"}"#),
            Ok("-1.5".into())
        );
        assert_eq!(
            key(r#"{"id":"a\u0062c","method":"subscription.stop"}"#),
            key(r#"{"id":"abc","method":"subscription.stop"}"#)
        );
        for id in ["null", "true", "{}", "[1]"] {
            let frame = format!(r#"{{"id":{id},"method":"subscription.stop"}}"#);
            assert_eq!(key(&frame), Err("`id` is required".into()), "{id}");
        }
        let frame = r#"{"id":1,"jsonrpc":"1.0","method":"query","params":{"path":"a"}}"#;
        assert!(matches!(parse_message(frame), Ok(Request::Invalid(..))));
        let escaped = r#"{"id":1,"method":"qu\u0065ry","params":{"path":"\u0061"}}"#;
        let Ok(Request::Call { kind, path, .. }) = parse_message(escaped) else {
            panic!("escaped method and path");
        };
        assert_eq!((kind, &*path), (ProcedureKind::Query, "a"));
    }

    #[test]
    fn deep_inputs_are_captured_not_refused() {
        let deep = format!("{}{}", "[".repeat(1000), "]".repeat(1000));
        let frame =
            format!(r#"{{"id":1,"method":"query","params":{{"path":"a","input":{deep}}}}}"#);
        let raw = split_frame(&frame).expect("frame");
        assert!(matches!(parse_message(raw[0]), Ok(Request::Call { .. })));
    }

    #[test]
    fn connection_params_frames() {
        let params = connection_params(r#"{"method":"connectionParams","data":{"token":"t"}}"#)
            .expect("params")
            .expect("some");
        assert_eq!(params.get("token").map(String::as_str), Some("t"));
        assert_eq!(
            connection_params(r#"{"method":"connectionParams","data":null}"#),
            Some(None)
        );
        assert!(connection_params(r#"{"method":"connectionParams","data":[1]}"#).is_none());
    }
}
