//! The SSE side of the wire (spec §6): the events of a `httpSubscriptionLink` stream and
//! where the client's last event id comes from.

use std::time::Duration;

use http::HeaderMap;

use crate::protocol::error::ErrorShape;

/// Keep-alive: resets the client's inactivity timer, otherwise ignored.
pub(crate) const PING: &str = "event: ping\ndata: \n\n";

/// The normal end of a subscription: the client closes the EventSource and completes.
pub(crate) const RETURN: &str = "event: return\ndata: \n\n";

/// The first event: the client options (`{}` or `{"reconnectAfterInactivityMs":N}`).
pub(crate) fn connected(reconnect_after_inactivity: Option<Duration>) -> String {
    match reconnect_after_inactivity {
        Some(after) => format!(
            "event: connected\ndata: {{\"reconnectAfterInactivityMs\":{}}}\n\n",
            after.as_millis()
        ),
        None => "event: connected\ndata: {}\n\n".to_owned(),
    }
}

/// One value. A tracked one carries its `id:`. An untracked one sent when the client already
/// has a last event id (`last_id`) carries an empty `id:` and is followed by `restore-id`, so
/// the EventSource's buffer keeps the real id and the value is not delivered with a stale one
/// (spec §6.3).
pub(crate) fn data(json: &str, id: Option<&str>, last_id: Option<&str>) -> String {
    let mut out = String::with_capacity(json.len() + 32);
    // serde_json writes one line; a raw value could hold line breaks between tokens, and each
    // line needs its own `data:` field (EventSource joins them back with `\n`).
    for line in json.split(['\n', '\r']).filter(|l| !l.is_empty()) {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    match (id, last_id) {
        (Some(id), _) => {
            out.push_str("id: ");
            out.push_str(id);
            out.push_str("\n\n");
        }
        (None, Some(last)) => {
            out.push_str("id: \n\nevent: restore-id\ndata: \nid: ");
            out.push_str(last);
            out.push_str("\n\n");
        }
        (None, None) => out.push('\n'),
    }
    out
}

/// An error on a known subscription path, in-band (the response stays 200); the body then
/// ends without `return`.
pub(crate) fn serialized_error(shape: &ErrorShape<'_>) -> String {
    format!("event: serialized-error\ndata: {}\n\n", shape.to_wire())
}

/// The client's last event id: the `Last-Event-ID` header (native EventSource reconnects),
/// else the `lastEventId` query parameter, else `Last-Event-Id` (some polyfills).
/// Ids that could not travel in an `id:` line (empty, or with `\0`, `\r`, `\n`) are ignored.
pub(crate) fn last_event_id(headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    last_event_id_unchecked(headers, query)
        .filter(|id| !id.is_empty() && !id.contains(['\0', '\r', '\n']))
}

fn last_event_id_unchecked(headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    if let Some(id) = headers.get("last-event-id").and_then(|v| v.to_str().ok()) {
        return Some(id.to_owned());
    }
    let params: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    ["lastEventId", "Last-Event-Id"].iter().find_map(|name| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_match_the_reference_server() {
        assert_eq!(connected(None), "event: connected\ndata: {}\n\n");
        assert_eq!(
            connected(Some(Duration::from_millis(600))),
            "event: connected\ndata: {\"reconnectAfterInactivityMs\":600}\n\n"
        );
        let five = r#"{"n":5}"#;
        assert_eq!(data(five, Some("5"), None), "data: {\"n\":5}\nid: 5\n\n");
        assert_eq!(data(five, None, None), "data: {\"n\":5}\n\n");
        assert_eq!(
            data(five, None, Some("42")),
            "data: {\"n\":5}\nid: \n\nevent: restore-id\ndata: \nid: 42\n\n"
        );
        assert_eq!(data("[1,\n2]", None, None), "data: [1,\ndata: 2]\n\n");
    }

    #[test]
    fn last_event_id_precedence() {
        let mut headers = HeaderMap::new();
        assert_eq!(
            last_event_id(&headers, Some("Last-Event-Id=3&lastEventId=2")).as_deref(),
            Some("2")
        );
        assert_eq!(
            last_event_id(&headers, Some("Last-Event-Id=3")).as_deref(),
            Some("3")
        );
        headers.insert("Last-Event-ID", http::HeaderValue::from_static("1"));
        assert_eq!(
            last_event_id(&headers, Some("lastEventId=2")).as_deref(),
            Some("1")
        );
        assert_eq!(last_event_id(&HeaderMap::new(), None), None);
        assert_eq!(
            last_event_id(&HeaderMap::new(), Some("lastEventId=1%0Aevent%3Areturn")),
            None
        );
        assert_eq!(last_event_id(&HeaderMap::new(), Some("lastEventId=")), None);
    }
}
