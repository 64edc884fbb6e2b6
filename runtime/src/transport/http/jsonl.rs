//! A streamed batch (`httpBatchStreamLink`, JSONL, spec §5): the head line at once, then the
//! lines of each call as it settles, in completion order, errors in-band. An output with
//! `Deferred`/`Streamed` parts is sent as tRPC nests it (§5.5 forms C and D): the envelope,
//! then `result`, then `data` as promise chunks, and each part as a chunk of its own.
//! Dropping the body (the client went away) drops every call and part still running.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::{self, BoxStream, SelectAll};
use http::{Response, StatusCode};

use crate::body::{Body, json_body_response};
use crate::call::{Json, Part, Reply};
use crate::dispatch::Dispatcher;
use crate::error::Error;
use crate::protocol::envelope::{self, ChunkKind, ChunkRef};
use crate::protocol::error::ErrorShape;
use crate::protocol::http::{Paths, PerCall};
use crate::protocol::superjson;
use crate::transport::http::Outcome;

/// Answers a streamed batch.
pub(super) fn respond(
    dispatcher: &Dispatcher,
    paths: Paths,
    outcomes: PerCall<Outcome>,
    ping: Option<Duration>,
) -> Response<Body> {
    let writer = Arc::new(Writer {
        superjson: dispatcher.policy().superjson,
        dispatcher: dispatcher.clone(),
        paths,
        // Ids 0..n are the calls' own promises (the head).
        next_id: AtomicUsize::new(outcomes.len()),
    });
    let mut calls: SelectAll<BoxStream<'static, Bytes>> = SelectAll::new();
    for (i, outcome) in outcomes.into_iter().enumerate() {
        let writer = Arc::clone(&writer);
        calls.push(
            stream::once(outcome.settle())
                .flat_map(move |result| writer.call_lines(i, result))
                .boxed(),
        );
    }
    let head = writer.out(envelope::jsonl_head(writer.paths.len()), None);
    let lines = stream::once(std::future::ready(head)).chain(calls);
    match ping {
        None => json_body_response(StatusCode::OK, Body::stream(lines)),
        Some(every) => json_body_response(StatusCode::OK, Body::stream(with_pings(lines, every))),
    }
}

/// Writes a single space (spec §5.2: no newline; the client folds it into the next line)
/// whenever nothing was written for `every`, so proxies keep a quiet stream open.
fn with_pings(
    lines: impl futures_util::Stream<Item = Bytes> + Send + 'static,
    every: Duration,
) -> impl futures_util::Stream<Item = Bytes> + Send + 'static {
    async_stream::stream! {
        let mut lines = std::pin::pin!(lines);
        loop {
            match tokio::time::timeout(every, lines.next()).await {
                Ok(Some(line)) => yield line,
                Ok(None) => return,
                Err(_) => yield Bytes::from_static(b" "),
            }
        }
    }
}

/// Writes the lines of one response; hands out chunk ids.
struct Writer {
    /// Every line is one superjson value (spec §4).
    superjson: bool,
    dispatcher: Dispatcher,
    paths: Paths,
    next_id: AtomicUsize,
}

impl Writer {
    fn id(&self) -> usize {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    fn path(&self, call: usize) -> Option<&str> {
        self.paths.get(call)
    }

    /// A line as it goes out: with the superjson transformer, the whole line is one value
    /// and `value_at` places the annotations of the value it carries.
    fn out(&self, line: String, value_at: Option<(&str, &str)>) -> Bytes {
        if self.superjson {
            Bytes::from(envelope::jsonl_superjson(&line, value_at))
        } else {
            Bytes::from(line)
        }
    }

    /// An encoded value's JSON and (superjson) annotations.
    fn value<'v>(&self, value: &'v Json) -> (&'v str, Option<&'v str>) {
        if self.superjson {
            let split = superjson::Split::of(value.get());
            (split.json(), split.values())
        } else {
            (value.get(), None)
        }
    }

    /// The lines of call `i`: one for a plain result or an error; for a value with parts, the
    /// nesting of §5.5, then the parts' chunks as they come.
    fn call_lines(
        self: &Arc<Self>,
        i: usize,
        result: Result<Reply, Error>,
    ) -> BoxStream<'static, Bytes> {
        let line = |bytes: Bytes| stream::once(std::future::ready(bytes)).boxed();
        let reply = match result {
            Err(e) => {
                let shape = self.dispatcher.policy().shape(&e, self.path(i));
                let settled = envelope::jsonl_settled(i, &envelope::error_in_line(&shape));
                return line(self.out(settled, None));
            }
            Ok(reply) => reply,
        };
        let mut parted = match reply.take_parted() {
            Err(reply) => {
                let Some(output) = reply.json_ref() else {
                    return line(
                        self.out(envelope::jsonl_settled(i, &envelope::result(None)), None),
                    );
                };
                let (json, values) = self.value(output);
                let result = envelope::result(Some(json));
                let settled = envelope::jsonl_settled(i, &result);
                let at = values.map(|v| (envelope::JSONL_OUTPUT_PATH, v));
                return line(self.out(settled, at));
            }
            Ok(parted) => parted,
        };
        let (result_id, data_id) = (self.id(), self.id());
        let mut lines: Vec<(String, Option<String>)> = vec![(
            envelope::jsonl_fulfilled(
                i,
                r#"{"result":0}"#,
                &[(Some("result"), ChunkKind::Promise, result_id)],
            ),
            None,
        )];
        let mut parts: SelectAll<BoxStream<'static, Bytes>> = SelectAll::new();
        if let [(None, _)] = &parted.parts[..] {
            // The whole output is the part: it sits at `data`.
            let Some((_, part)) = parted.parts.pop() else {
                unreachable!("one part")
            };
            lines.push((
                envelope::jsonl_fulfilled(
                    result_id,
                    r#"{"data":0}"#,
                    &[(Some("data"), kind_of(&part), data_id)],
                ),
                None,
            ));
            parts.push(self.part_lines(i, data_id, part));
        } else {
            lines.push((
                envelope::jsonl_fulfilled(
                    result_id,
                    r#"{"data":0}"#,
                    &[(Some("data"), ChunkKind::Promise, data_id)],
                ),
                None,
            ));
            let mut refs: Vec<(String, ChunkKind, usize)> = Vec::with_capacity(parted.parts.len());
            for (key, part) in parted.parts {
                let id = self.id();
                refs.push((key.unwrap_or_default(), kind_of(&part), id));
                parts.push(self.part_lines(i, id, part));
            }
            let refs: Vec<ChunkRef<'_>> = refs
                .iter()
                .map(|(key, kind, id)| (Some(key.as_str()), *kind, *id))
                .collect();
            let (json, values) = self.value(&parted.data);
            let values = values.map(ToOwned::to_owned);
            lines.push((envelope::jsonl_fulfilled(data_id, json, &refs), values));
        }
        let lines: Vec<Bytes> = lines
            .into_iter()
            .map(|(text, values)| {
                let at = values.as_deref().map(|v| (envelope::JSONL_VALUE_PATH, v));
                self.out(text, at)
            })
            .collect();
        stream::iter(lines).chain(parts).boxed()
    }

    /// The chunks of one part: a promise's settlement, or an iterable's items and its end.
    fn part_lines(
        self: &Arc<Self>,
        call: usize,
        id: usize,
        part: Part,
    ) -> BoxStream<'static, Bytes> {
        let writer = Arc::clone(self);
        match part {
            Part::Promise(value) => stream::once(value)
                .map(move |settled| match settled {
                    Ok(value) => {
                        let (json, values) = writer.value(&value);
                        let at = values.map(|v| (envelope::JSONL_VALUE_PATH, v));
                        writer.out(envelope::jsonl_fulfilled(id, json, &[]), at)
                    }
                    Err(e) => writer.failed(call, id, &e, envelope::jsonl_rejected),
                })
                .boxed(),
            Part::Iterable(mut items) => async_stream::stream! {
                while let Some(item) = items.next().await {
                    match item {
                        Ok(value) => {
                            let (json, values) = writer.value(&value);
                            let at = values.map(|v| (envelope::JSONL_VALUE_PATH, v));
                            yield writer.out(envelope::jsonl_yield(id, json), at);
                        }
                        Err(e) => {
                            yield writer.failed(call, id, &e, envelope::jsonl_iteration_error);
                            return;
                        }
                    }
                }
                yield writer.out(envelope::jsonl_return(id), None);
            }
            .boxed(),
        }
    }

    /// The line of a part's error, reported here, where it surfaces.
    fn failed(
        &self,
        call: usize,
        id: usize,
        error: &Error,
        line: fn(usize, &ErrorShape<'_>) -> String,
    ) -> Bytes {
        let path = self.path(call);
        self.dispatcher.policy().report(error, path);
        self.out(line(id, &self.dispatcher.policy().shape(error, path)), None)
    }
}

fn kind_of(part: &Part) -> ChunkKind {
    match part {
        Part::Promise(_) => ChunkKind::Promise,
        Part::Iterable(_) => ChunkKind::Iterable,
    }
}
