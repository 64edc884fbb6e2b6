//! Subscriptions: streams of events, plain or tracked (`{ id, data }`, resumable).

use std::fmt;
use std::sync::Arc;

use crate::error::Error;
use crate::protocol::superjson::Annotated;
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
#[derive(Clone)]
pub struct Tracked<T> {
    id: String,
    data: T,
    /// `data` as JSON, when an [`crate::EventBus`] already encoded it once for every
    /// subscriber (there is no mutable access to `data`, so it cannot go stale).
    encoded: Option<Arc<Annotated>>,
}

impl<T: fmt::Debug> fmt::Debug for Tracked<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tracked")
            .field("id", &self.id)
            .field("data", &self.data)
            .finish()
    }
}

impl<T: PartialEq> PartialEq for Tracked<T> {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id && self.data == other.data
    }
}

impl<T: Eq> Eq for Tracked<T> {}

impl<T> Tracked<T> {
    /// An event with `id`. Ids must be non-empty and free of `\0`, `\n` and `\r` (they travel
    /// in SSE `id:` lines too); others are rejected when the event is sent.
    pub fn new(id: impl Into<String>, data: T) -> Self {
        Tracked {
            id: id.into(),
            data,
            encoded: None,
        }
    }

    /// An event whose data was already encoded as `encoded` (shared by every subscriber).
    pub(crate) fn pre_encoded(id: String, data: T, encoded: Arc<Annotated>) -> Self {
        Tracked {
            id,
            data,
            encoded: Some(encoded),
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

    /// Like [`Event::into_parts`], but gives the data's JSON instead when it was encoded
    /// already (events from an [`crate::EventBus`] are encoded once per publish, not once per
    /// subscriber).
    #[doc(hidden)]
    fn into_wire(self) -> Result<(Option<String>, Wire<Self::Data>), Error>
    where
        Self: Sized,
    {
        let (id, data) = self.into_parts()?;
        Ok((id, Wire::Value(data)))
    }
}

/// An event's data: a value to encode, or its JSON.
#[doc(hidden)]
#[derive(Debug)]
pub enum Wire<T> {
    /// To be encoded.
    Value(T),
    /// Encoded already (plain JSON and its superjson annotations).
    #[allow(private_interfaces)]
    Json(Arc<Annotated>),
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
        check_id(&self.id)?;
        Ok((Some(self.id), self.data))
    }

    fn into_wire(self) -> Result<(Option<String>, Wire<T>), Error> {
        check_id(&self.id)?;
        let data = match self.encoded {
            Some(json) => Wire::Json(json),
            None => Wire::Value(self.data),
        };
        Ok((Some(self.id), data))
    }
}

fn check_id(id: &str) -> Result<(), Error> {
    if id.is_empty() || id.contains(['\0', '\n', '\r']) {
        return Err(Error::internal(format!("invalid tracked event id {id:?}"))
            .with_message("Internal server error: a subscription produced an invalid event id"));
    }
    Ok(())
}
