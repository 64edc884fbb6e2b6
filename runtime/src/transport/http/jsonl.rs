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
use crate::call::{BoxFuture, Part, Reply};
use crate::dispatch::Dispatcher;
use crate::error::Error;
use crate::protocol::envelope::{self, ChunkKind, ChunkRef};
use crate::protocol::error::ErrorShape;
use crate::transport::http::Outcome;

/// Answers a streamed batch.
pub(super) fn respond(
    dispatcher: &Dispatcher,
    paths: Vec<String>,
    outcomes: Vec<Outcome>,
    ping: Option<Duration>,
) -> Response<Body> {
    let head = envelope::jsonl_head(outcomes.len());
    let writer = Arc::new(Writer {
        dispatcher: dispatcher.clone(),
        paths,
        // Ids 0..n are the calls' own promises (the head).
        next_id: AtomicUsize::new(outcomes.len()),
    });
    let mut calls: SelectAll<BoxStream<'static, Bytes>> = SelectAll::new();
    for (i, outcome) in outcomes.into_iter().enumerate() {
        let call: BoxFuture<Result<Reply, Error>> = match outcome {
            Outcome::Unstarted => Box::pin(std::future::ready(Outcome::never_run())),
            Outcome::Done(result) => Box::pin(std::future::ready(result)),
            Outcome::Running(call) => call,
        };
        let writer = Arc::clone(&writer);
        calls.push(
            stream::once(call)
                .flat_map(move |result| writer.call_lines(i, result))
                .boxed(),
        );
    }
    let lines = stream::once(std::future::ready(Bytes::from(head))).chain(calls);
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
    dispatcher: Dispatcher,
    paths: Vec<String>,
    next_id: AtomicUsize,
}

impl Writer {
    fn id(&self) -> usize {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    fn path(&self, call: usize) -> Option<&str> {
        self.paths.get(call).map(String::as_str)
    }

    /// The lines of call `i`: one for a plain result or an error; for a value with parts, the
    /// nesting of §5.5, then the parts' chunks as they come.
    fn call_lines(
        self: &Arc<Self>,
        i: usize,
        result: Result<Reply, Error>,
    ) -> BoxStream<'static, Bytes> {
        let line = |text: String| stream::once(std::future::ready(Bytes::from(text))).boxed();
        let reply = match result {
            Err(e) => {
                let shape = self.dispatcher.policy().shape(&e, self.path(i));
                return line(envelope::jsonl_settled(i, &envelope::error(&shape)));
            }
            Ok(reply) => reply,
        };
        let mut parted = match reply.take_parted() {
            Err(reply) => {
                return line(envelope::jsonl_settled(
                    i,
                    &envelope::result(reply.json_ref()),
                ));
            }
            Ok(parted) => parted,
        };
        let (result_id, data_id) = (self.id(), self.id());
        let mut lines = vec![envelope::jsonl_fulfilled(
            i,
            r#"{"result":0}"#,
            &[(Some("result"), ChunkKind::Promise, result_id)],
        )];
        let mut parts: SelectAll<BoxStream<'static, Bytes>> = SelectAll::new();
        if let [(None, _)] = &parted.parts[..] {
            // The whole output is the part: it sits at `data`.
            let Some((_, part)) = parted.parts.pop() else {
                unreachable!("one part")
            };
            lines.push(envelope::jsonl_fulfilled(
                result_id,
                r#"{"data":0}"#,
                &[(Some("data"), kind_of(&part), data_id)],
            ));
            parts.push(self.part_lines(i, data_id, part));
        } else {
            lines.push(envelope::jsonl_fulfilled(
                result_id,
                r#"{"data":0}"#,
                &[(Some("data"), ChunkKind::Promise, data_id)],
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
            lines.push(envelope::jsonl_fulfilled(data_id, parted.data.get(), &refs));
        }
        stream::iter(lines.into_iter().map(Bytes::from))
            .chain(parts)
            .boxed()
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
                .map(move |settled| {
                    Bytes::from(match settled {
                        Ok(value) => envelope::jsonl_fulfilled(id, value.get(), &[]),
                        Err(e) => writer.failed(call, id, &e, envelope::jsonl_rejected),
                    })
                })
                .boxed(),
            Part::Iterable(mut items) => async_stream::stream! {
                while let Some(item) = items.next().await {
                    match item {
                        Ok(value) => yield Bytes::from(envelope::jsonl_yield(id, &value)),
                        Err(e) => {
                            yield Bytes::from(writer.failed(call, id, &e, envelope::jsonl_iteration_error));
                            return;
                        }
                    }
                }
                yield Bytes::from(envelope::jsonl_return(id));
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
    ) -> String {
        let path = self.path(call);
        self.dispatcher.policy().report(error, path);
        line(id, &self.dispatcher.policy().shape(error, path))
    }
}

fn kind_of(part: &Part) -> ChunkKind {
    match part {
        Part::Promise(_) => ChunkKind::Promise,
        Part::Iterable(_) => ChunkKind::Iterable,
    }
}
