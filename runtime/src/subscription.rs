//! Subscriptions: streams of events, plain or tracked (`{ id, data }`, resumable).

use crate::error::Error;
use crate::types::Output;

/// An event with an id: the client remembers the last id it saw and, after a reconnect, sends
/// it back as `lastEventId` so the subscription resumes after it (the TypeScript side sees
/// `{ id: string; data: T }`).
///
/// ```
/// use oxrpc::Tracked;
/// let event = Tracked::new("42", "hello");
/// assert_eq!(event.id(), "42");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracked<T> {
    id: String,
    data: T,
}

impl<T> Tracked<T> {
    /// An event with `id`. Ids must be non-empty and free of `\0`, `\n` and `\r` (they travel
    /// in SSE `id:` lines too); others are rejected when the event is sent.
    pub fn new(id: impl Into<String>, data: T) -> Self {
        Tracked {
            id: id.into(),
            data,
        }
    }

    /// The id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The data.
    pub fn data(&self) -> &T {
        &self.data
    }

    /// The data, by value.
    pub fn into_data(self) -> T {
        self.data
    }
}

/// What a subscription's events are: values, or [`Tracked`] values.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a subscription event",
    note = "a subscription yields values (`Serialize + ts_rs::TS + schemars::JsonSchema`) or `oxrpc::Tracked<T>`, or `Result`s of them with `oxrpc::Error`"
)]
pub trait Event: Send + 'static {
    /// The data type (what the client receives, or receives as `data` when tracked).
    type Data: Output;
    /// Whether events carry ids.
    const TRACKED: bool;

    /// Splits the event into its id and data, or the error that ends the stream.
    fn into_parts(self) -> Result<(Option<String>, Self::Data), Error>;
}

impl<T: Output> Event for T {
    type Data = T;
    const TRACKED: bool = false;

    fn into_parts(self) -> Result<(Option<String>, T), Error> {
        Ok((None, self))
    }
}

impl<T: Output> Event for Tracked<T> {
    type Data = T;
    const TRACKED: bool = true;

    fn into_parts(self) -> Result<(Option<String>, T), Error> {
        if self.id.is_empty() || self.id.contains(['\0', '\n', '\r']) {
            return Err(
                Error::internal(format!("invalid tracked event id {:?}", self.id)).with_message(
                    "Internal server error: a subscription produced an invalid event id",
                ),
            );
        }
        Ok((Some(self.id), self.data))
    }
}
