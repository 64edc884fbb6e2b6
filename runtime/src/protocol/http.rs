//! The HTTP side of the wire (spec §1, §3, §5): which procedures a URL names, where each
//! call's input is, which methods reach which kinds, and what the client accepts.

use std::borrow::Cow;

use http::{HeaderMap, Method};

use crate::call::{ProcedureKind, RawInput};
use crate::error::{Error, ErrorCode};
use crate::protocol::input::{self, ConnectionParams};

/// `/trpc/greet` → `greet` for endpoint `/trpc`; `None` outside the endpoint.
pub(crate) fn strip_endpoint<'a>(path: &'a str, endpoint: &str) -> Option<&'a str> {
    path.strip_prefix(endpoint)?.strip_prefix('/')
}

/// Whether a request path is the endpoint itself or under it (WebSocket upgrades).
pub(crate) fn in_endpoint(path: &str, endpoint: &str) -> bool {
    strip_endpoint(path, endpoint).is_some()
        || path == endpoint
        || (endpoint.is_empty() && path == "/")
}

/// What the URL and headers of a tRPC HTTP request say.
#[derive(Debug)]
pub(crate) struct Target {
    /// The procedure paths, one per call (percent-decoded).
    pub(crate) paths: Paths,
    /// `?batch=1`.
    pub(crate) batch: bool,
    /// The `input` query parameter (GET).
    pub(crate) input: Option<String>,
    /// The `connectionParams` query parameter.
    pub(crate) connection_params: ConnectionParams,
    /// The client asked for a JSONL stream (`httpBatchStreamLink`).
    pub(crate) jsonl: bool,
}

/// One item per call of a request: a single call (the common case) needs no allocation.
pub(crate) type PerCall<T> = smallvec::SmallVec<[T; 1]>;

/// The procedure paths of a request, percent-decoded, in one string (one allocation however
/// long the batch).
#[derive(Debug, Clone, Default)]
pub(crate) struct Paths {
    text: String,
    /// Where each path ends in `text`.
    ends: PerCall<usize>,
}

impl Paths {
    /// `text` as one path, or (a batch) as paths separated by `,`.
    fn new(text: String, batch: bool) -> Self {
        let mut ends = PerCall::new();
        if batch {
            ends.reserve_exact(text.bytes().filter(|&b| b == b',').count() + 1);
            ends.extend(text.match_indices(',').map(|(i, _)| i));
        }
        ends.push(text.len());
        Paths { text, ends }
    }

    /// How many calls.
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    /// The path of call `i`.
    pub(crate) fn get(&self, i: usize) -> Option<&str> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] + 1 };
        self.text.get(start..end)
    }

    /// The path of the first call.
    pub(crate) fn first(&self) -> Option<&str> {
        self.get(0)
    }

    /// Every path, in call order. Exact-size, so what is collected from it is sized once.
    pub(crate) fn iter(&self) -> impl ExactSizeIterator<Item = &str> {
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            // Paths end at a `,` or at the end of the text: always a character boundary.
            let path = self.text.get(start..end).unwrap_or_default();
            start = end + 1;
            path
        })
    }
}

/// Reads the procedure paths and parameters of a request to `{endpoint}/{p0},{p1}?batch=1`.
/// `rest` is the URL path after the endpoint. An error belongs to the call when there is
/// exactly one (its path comes with it).
pub(crate) fn parse_target(
    rest: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    separator: char,
) -> Result<Target, Error> {
    let decoded = decode_path(rest, separator)?;
    let Query {
        batch,
        input,
        connection_params,
    } = parse_query(query);
    let jsonl = wants_jsonl(headers);
    if jsonl && !batch {
        return Err(Error::bad_request(
            "Streaming requests must be batched (you can do a batch of 1)",
        ));
    }
    let connection_params = match connection_params {
        Some(text) => input::parse_connection_params(&text)?,
        None => None,
    };
    Ok(Target {
        paths: Paths::new(decoded.into_owned(), batch),
        batch,
        input,
        connection_params,
        jsonl,
    })
}

/// The tRPC parameters of a query string.
#[derive(Debug, Default)]
pub(crate) struct Query {
    /// `batch=1`.
    pub(crate) batch: bool,
    /// `input`: one input, or a batch object.
    pub(crate) input: Option<String>,
    /// `connectionParams`, still JSON text.
    pub(crate) connection_params: Option<String>,
}

/// Reads `batch`, `input` and `connectionParams` (the first of each wins) as
/// `application/x-www-form-urlencoded` (`+` is a space), decoding only what is used: the hot
/// path of every `GET`, so it allocates only the values it keeps.
pub(crate) fn parse_query(query: Option<&str>) -> Query {
    let mut out = Query::default();
    for pair in query.unwrap_or("").split('&') {
        if pair.is_empty() {
            continue;
        }
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match &*form_decode(key) {
            "batch" => out.batch = form_decode(value) == "1",
            "input" if out.input.is_none() => out.input = Some(form_decode(value).into_owned()),
            "connectionParams" if out.connection_params.is_none() => {
                out.connection_params = Some(form_decode(value).into_owned());
            }
            _ => {}
        }
    }
    out
}

/// Decodes one form-urlencoded component: `+` → space, `%XY` → byte (a `%` not followed by two
/// hex digits stays as it is), invalid UTF-8 replaced (what `URLSearchParams` does).
fn form_decode(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let Some(first) = bytes.iter().position(|b| *b == b'%' || *b == b'+') else {
        return Cow::Borrowed(text);
    };
    // Decoded over a copy of the text (decoding never lengthens it), by index, then cut to
    // what was written: a bounds check a byte where `push` would check capacity.
    let mut out = bytes.to_vec();
    let mut written = first;
    let mut rest = &bytes[first..];
    // An escape or a byte a turn (JSON in a URL is mostly escapes).
    loop {
        let (decoded, tail) = match *rest {
            [b'%', hi, lo, ref tail @ ..] if (HEX[usize::from(hi)] | HEX[usize::from(lo)]) < 16 => {
                ((HEX[usize::from(hi)] << 4) | HEX[usize::from(lo)], tail)
            }
            // `+` is a space; a `%` not followed by two hex digits stays as it is.
            [b'+', ref tail @ ..] => (b' ', tail),
            [b, ref tail @ ..] => (b, tail),
            [] => break,
        };
        if let Some(slot) = out.get_mut(written) {
            *slot = decoded;
        }
        written += 1;
        rest = tail;
    }
    out.truncate(written);
    match String::from_utf8(out) {
        Ok(s) => Cow::Owned(s),
        Err(e) => Cow::Owned(String::from_utf8_lossy(e.as_bytes()).into_owned()),
    }
}

/// Each byte's value as a hex digit, or 0xFF when it is not one.
const HEX: [u8; 256] = {
    let mut table = [0xFF; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        table[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

/// The separators tRPC's `pathSeparator` option allows in URLs (`post~byId`).
pub(crate) const PATH_SEPARATORS: [char; 4] = ['.', '_', '~', '-'];

/// Percent-decodes a URL path and turns the `pathSeparator` back into dots (the dotted form
/// keeps working, as with tRPC's server). Borrowed when there is nothing to change (the common
/// case).
fn decode_path(rest: &str, separator: char) -> Result<Cow<'_, str>, Error> {
    if !rest.contains('%') && (separator == '.' || !rest.contains(separator)) {
        return Ok(Cow::Borrowed(rest));
    }
    let bytes = rest.as_bytes();
    let well_formed = bytes.iter().enumerate().all(|(i, b)| {
        *b != b'%'
            || (bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    });
    if !well_formed {
        return Err(Error::bad_request(
            "The procedure path is not validly percent-encoded",
        ));
    }
    let Ok(decoded) = percent_encoding::percent_decode_str(rest).decode_utf8() else {
        return Err(Error::bad_request("The procedure path is not valid UTF-8"));
    };
    Ok(if separator == '.' || !decoded.contains(separator) {
        decoded
    } else {
        Cow::Owned(decoded.replace(separator, "."))
    })
}

/// The inputs of the calls: one input, or a batch object `{"0":…,"1":…}`.
pub(crate) fn parse_inputs(
    text: &bytestring::ByteString,
    target: &Target,
) -> Result<PerCall<RawInput>, Error> {
    if target.batch {
        input::parse_batch(text, target.paths.len()).map(PerCall::from_vec)
    } else {
        input::parse(text).map(|i| smallvec::smallvec![i])
    }
}

/// Whether the client asked for a JSONL stream (`httpBatchStreamLink`).
fn wants_jsonl(headers: &HeaderMap) -> bool {
    // Constant names: a `&str` name would be parsed again on every request. One pass over the
    // request's few headers costs less than hashing both names for two lookups.
    const TRPC_ACCEPT: http::HeaderName = http::HeaderName::from_static("trpc-accept");
    headers.iter().any(|(name, value)| {
        (*name == http::header::ACCEPT || *name == TRPC_ACCEPT)
            && value.to_str().is_ok_and(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("application/jsonl"))
            })
    })
}

/// What an HTTP method may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HttpMethod {
    /// `GET`: queries, input in the URL.
    Get,
    /// `POST`: mutations (and queries with method override), input in the body.
    Post,
}

impl HttpMethod {
    /// `GET` or `POST`; other methods are refused, naming the ones tRPC uses.
    pub(crate) fn of(method: &Method) -> Result<Self, Error> {
        match *method {
            Method::GET => Ok(HttpMethod::Get),
            Method::POST => Ok(HttpMethod::Post),
            _ => Err(Error::new(
                ErrorCode::MethodNotSupported,
                format!(
                    "Unsupported {method} request: tRPC uses GET for queries and POST for mutations"
                ),
            )),
        }
    }

    /// The value of the `Allow` header of a 405 answer to a method tRPC never uses.
    pub(crate) const ALLOW: &'static str = "GET, POST, HEAD";

    /// The `Allow` header of a 405 answer for a procedure of `kind` (tRPC ≥ 11.23).
    pub(crate) fn allow_for(kind: ProcedureKind, allow_method_override: bool) -> &'static str {
        match kind {
            ProcedureKind::Query if allow_method_override => "GET, POST",
            ProcedureKind::Query | ProcedureKind::Subscription => "GET",
            ProcedureKind::Mutation => "POST",
        }
    }

    /// Whether this method reaches a procedure of `kind` (spec §1.2); `POST` queries need
    /// the method override. Subscriptions are served by SSE, and never in a batch.
    pub(crate) fn check(
        self,
        kind: ProcedureKind,
        path: &str,
        batch: bool,
        allow_method_override: bool,
    ) -> Result<(), Error> {
        let ok = match kind {
            ProcedureKind::Query => self == HttpMethod::Get || allow_method_override,
            ProcedureKind::Mutation => self == HttpMethod::Post,
            ProcedureKind::Subscription if batch => {
                return Err(Error::bad_request("Cannot batch subscription calls"));
            }
            // A `GET` to a subscription is served as SSE before it gets here.
            ProcedureKind::Subscription => false,
        };
        if ok {
            return Ok(());
        }
        let method = match self {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
        };
        Err(Error::new(
            ErrorCode::MethodNotSupported,
            format!("Unsupported {method}-request to {kind} procedure at path \"{path}\""),
        ))
    }
}

/// A JSON body is required for a `POST` to a procedure that takes JSON: `content_type` is the
/// request's `content-type` header.
pub(crate) fn check_content_type(content_type: Option<&http::HeaderValue>) -> Result<(), Error> {
    let Some(value) = content_type else {
        return Err(Error::new(
            ErrorCode::UnsupportedMediaType,
            "Missing content-type header",
        ));
    };
    let text = value.to_str().unwrap_or("");
    let media = text.split(';').next().unwrap_or("").trim();
    // (Binary and multipart bodies are routed to uploads before this.)
    if media.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(Error::new(
            ErrorCode::UnsupportedMediaType,
            format!(
                "Unsupported content-type \"{text}\": send application/json (or multipart/form-data, application/octet-stream to an upload procedure)"
            ),
        ))
    }
}

/// Refuses kinds that cannot share one request (`Cannot mix procedure types in call`).
pub(crate) fn check_one_kind(kinds: impl IntoIterator<Item = ProcedureKind>) -> Result<(), Error> {
    // A set of kinds as bits (no allocation: this runs for every request).
    let bit = |kind: ProcedureKind| 1u8 << (kind as u8);
    let seen = kinds.into_iter().fold(0u8, |seen, kind| seen | bit(kind));
    if seen.count_ones() <= 1 {
        return Ok(());
    }
    let all = [
        ProcedureKind::Query,
        ProcedureKind::Mutation,
        ProcedureKind::Subscription,
    ];
    let names: Vec<&str> = all
        .into_iter()
        .filter(|k| seen & bit(*k) != 0)
        .map(ProcedureKind::as_str)
        .collect();
    Err(Error::bad_request(format!(
        "Cannot mix procedure types in call: {}",
        names.join(", ")
    )))
}

/// The status of a batch answer: the calls' common status, or 207 when they differ. Takes
/// every item (callers write each call's envelope as its status goes by).
pub(crate) fn batch_status(statuses: impl IntoIterator<Item = u16>) -> u16 {
    statuses
        .into_iter()
        .fold(None, |common, status| match common {
            Some(c) if c != status => Some(207),
            _ => Some(status),
        })
        .unwrap_or(200)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use http::header::CONTENT_TYPE;

    #[test]
    fn endpoints() {
        assert_eq!(strip_endpoint("/trpc/greet", "/trpc"), Some("greet"));
        assert_eq!(strip_endpoint("/trpcx/greet", "/trpc"), None);
        assert_eq!(strip_endpoint("/greet", ""), Some("greet"));
        assert_eq!(strip_endpoint("/other", "/trpc"), None);
        assert!(in_endpoint("/trpc", "/trpc") && in_endpoint("/", ""));
    }

    #[test]
    fn content_types() {
        let mut h = HeaderMap::new();
        assert_eq!(
            check_content_type(h.get(CONTENT_TYPE))
                .expect_err("missing")
                .code(),
            ErrorCode::UnsupportedMediaType
        );
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("Application/JSON; charset=utf-8"),
        );
        assert!(check_content_type(h.get(CONTENT_TYPE)).is_ok());
        h.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert!(check_content_type(h.get(CONTENT_TYPE)).is_err());
    }

    #[test]
    fn targets_and_methods() {
        let t = parse_target(
            "a,b%2Ec",
            Some("batch=1&input=%7B%7D"),
            &HeaderMap::new(),
            '.',
        )
        .expect("target");
        let t2 = parse_target("post~byId,a", Some("batch=1"), &HeaderMap::new(), '~')
            .expect("separator");
        assert_eq!(t2.paths.iter().collect::<Vec<_>>(), ["post.byId", "a"]);
        assert!(parse_target("a%zz", None, &HeaderMap::new(), '.').is_err());
        assert!(parse_target("a%2", None, &HeaderMap::new(), '.').is_err());
        assert_eq!(t.paths.iter().collect::<Vec<_>>(), ["a", "b.c"]);
        assert_eq!(t.paths.get(1), Some("b.c"));
        assert_eq!(t.paths.get(2), None);
        assert!(t.batch && !t.jsonl);
        assert_eq!(t.input.as_deref(), Some("{}"));
        assert!(
            HttpMethod::Post
                .check(ProcedureKind::Query, "q", false, false)
                .is_err()
        );
        assert!(
            HttpMethod::Post
                .check(ProcedureKind::Query, "q", false, true)
                .is_ok()
        );
        assert_eq!(batch_status([200, 200]), 200);
        assert_eq!(batch_status([200, 404]), 207);
        assert_eq!(batch_status([404, 200, 200]), 207);
        assert_eq!(batch_status([404, 404]), 404);
        assert_eq!(batch_status([]), 200);
        // Every status is taken, also after a difference decided it.
        let mut seen = 0;
        let statuses = [200, 404, 200].into_iter().inspect(|_| seen += 1);
        assert_eq!((batch_status(statuses), seen), (207, 3));
        assert!(check_one_kind([ProcedureKind::Query, ProcedureKind::Query]).is_ok());
        assert!(check_one_kind([ProcedureKind::Query, ProcedureKind::Mutation]).is_err());
    }

    #[test]
    fn query_parameters_decode_as_urlsearchparams_does() {
        let q = parse_query(Some(
            "batch=1&input=%7B%220%22%3A%22a+b%22%7D&input=second&x=%zz",
        ));
        assert!(q.batch);
        assert_eq!(q.input.as_deref(), Some(r#"{"0":"a b"}"#));
        // Encoded keys, a stray `%`, invalid UTF-8 replaced, empty pieces skipped.
        let q = parse_query(Some("&&%69nput=100%25+%2B%zz%FF&connectionParams&batch=0"));
        assert!(!q.batch);
        assert_eq!(q.input.as_deref(), Some("100% +%zz\u{fffd}"));
        assert_eq!(q.connection_params.as_deref(), Some(""));
        // A `%` with fewer than two hex digits after it, at the end or before one.
        for (raw, decoded) in [
            ("%", "%"),
            ("a%4", "a%4"),
            ("%4g%41", "%4gA"),
            ("+%2b+", " + "),
        ] {
            let q = parse_query(Some(&format!("input={raw}")));
            assert_eq!(q.input.as_deref(), Some(decoded), "{raw}");
        }
        let q = parse_query(None);
        assert!(!q.batch && q.input.is_none() && q.connection_params.is_none());
    }
}
