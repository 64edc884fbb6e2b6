//! Non-JSON inputs, as tRPC v11's `httpLink` sends them: binary bodies ([`Octets`], from a
//! `Blob`, `File` or `Uint8Array`) and multipart forms ([`FormData`]). Both are streamed:
//! the procedure reads the body as it arrives, within a size limit.
//!
//! ```
//! use oxrpc::upload::{FormData, Octets};
//! use oxrpc::{procedure, Error};
//!
//! /// Stores a file; answers its size.
//! #[procedure(mutation)]
//! async fn upload(input: Octets) -> Result<u64, Error> {
//!     let mut body = input.max_size(50 * 1024 * 1024); // this procedure takes up to 50 MiB
//!     let mut size = 0;
//!     while let Some(chunk) = body.chunk().await? {
//!         size += chunk.len() as u64; // write it somewhere
//!     }
//!     Ok(size)
//! }
//!
//! #[derive(serde::Deserialize, ts_rs::TS, schemars::JsonSchema)]
//! struct Caption {
//!     #[schemars(length(min = 1, max = 200))]
//!     caption: String,
//! }
//!
//! /// A caption (validated like any input) and any number of files.
//! #[procedure(mutation)]
//! async fn post_photos(input: FormData<Caption>) -> Result<Vec<String>, Error> {
//!     let mut form = input;
//!     let Caption { caption } = form.fields().await?;
//!     let mut names = Vec::new();
//!     while let Some(mut file) = form.next_file().await? {
//!         names.push(format!("{caption}: {}", file.file_name().unwrap_or("?")));
//!         while let Some(_chunk) = file.chunk().await? {}
//!     }
//!     Ok(names)
//! }
//! ```
//!
//! On the client (types: `Blob | Uint8Array | File` and `FormData`), send them through
//! `httpLink`, e.g. `splitLink({ condition: (op) => isNonJsonSerializable(op.input), true:
//! httpLink(…), false: httpBatchLink(…) })`. They cannot be batched or sent over WebSocket.

use std::any::TypeId;
use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde::{Deserialize, Deserializer};

use crate::error::{Error, ErrorCode};
use crate::request_body::{BodyKind, BodyStream, FORM_ID_PREFIX, OCTETS_ID, RequestBody};
use crate::types::{Input, TypeInfo};
use crate::validate::{UnknownFields, Validator};

thread_local! {
    /// The body being decoded into an input right now (see [`set_pending`]).
    static PENDING: RefCell<Option<(RequestBody, UnknownFields)>> = const { RefCell::new(None) };
}

/// Hands a body to the input's `Deserialize` ([`Octets`] or [`FormData`]), which takes it
/// from here, synchronously, on this thread; `None` clears what was not taken.
pub(crate) fn set_pending(pending: Option<(RequestBody, UnknownFields)>) {
    PENDING.with(|slot| *slot.borrow_mut() = pending);
}

/// Our inputs' `Deserialize` only fails on the request: a wrong kind, a bad boundary.
pub(crate) fn bad_upload(e: &serde_json::Error) -> Error {
    Error::bad_request(format!(
        "Bad upload: {}",
        crate::serde_error::serde_message(e)
    ))
}

/// What the transport hands over is checked first (content type, boundary): a failure here is
/// the request's fault.
fn take_pending<'de, D: Deserializer<'de>>(
    kind: BodyKind,
    deserializer: D,
) -> Result<(RequestBody, UnknownFields), D::Error> {
    serde::de::IgnoredAny::deserialize(deserializer)?;
    match PENDING.with(|slot| slot.borrow_mut().take()) {
        Some(pending) if pending.0.kind == kind => Ok(pending),
        _ => Err(serde::de::Error::custom(format!(
            "expected a {} request body",
            kind.media_type()
        ))),
    }
}

/// The stream, counting bytes against a limit the procedure may change before reading.
struct Limited {
    stream: BodyStream,
    limit: Arc<AtomicUsize>,
    declared_length: Option<u64>,
    read: usize,
    done: bool,
}

impl Limited {
    fn new(body: RequestBody) -> (Self, Arc<AtomicUsize>) {
        let limit = Arc::new(AtomicUsize::new(body.default_limit));
        let limited = Limited {
            stream: body.stream,
            limit: Arc::clone(&limit),
            declared_length: body.declared_length,
            read: 0,
            done: false,
        };
        (limited, limit)
    }
}

fn too_large(limit: usize) -> Error {
    Error::new(
        ErrorCode::PayloadTooLarge,
        format!("The upload is larger than this procedure's limit of {limit} bytes"),
    )
}

impl Stream for Limited {
    type Item = Result<Bytes, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        let limit = self.limit.load(Ordering::Relaxed);
        // A declared length over the limit fails before anything is read.
        if self.read == 0 && self.declared_length.is_some_and(|len| len > limit as u64) {
            self.done = true;
            return Poll::Ready(Some(Err(too_large(limit))));
        }
        match self.stream.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                self.read += chunk.len();
                if self.read > limit {
                    self.done = true;
                    return Poll::Ready(Some(Err(too_large(limit))));
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => {
                self.done = true;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                self.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A binary input (`application/octet-stream`): what the client sent as a `Blob`, `File` or
/// `Uint8Array`, streamed. On the TypeScript side its type is `Blob | Uint8Array | File`.
///
/// At most the server's `max_upload_size` is read unless the procedure says otherwise with
/// [`Octets::max_size`]; beyond it reading fails with `PAYLOAD_TOO_LARGE`. A client that goes
/// away mid-upload makes reading fail; nothing else is affected.
pub struct Octets {
    body: Limited,
    limit: Arc<AtomicUsize>,
    content_type: String,
}

impl fmt::Debug for Octets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Octets")
            .field("content_type", &self.content_type)
            .field("read", &self.body.read)
            .finish_non_exhaustive()
    }
}

impl Octets {
    /// Sets this upload's size limit in bytes (instead of the server's `max_upload_size`).
    pub fn max_size(self, bytes: usize) -> Self {
        self.limit.store(bytes, Ordering::Relaxed);
        self
    }

    /// The size the client declared (`content-length`), if it did.
    pub fn declared_size(&self) -> Option<u64> {
        self.body.declared_length
    }

    /// The next chunk, or `None` at the end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, Error> {
        self.body.next().await.transpose()
    }

    /// The whole body (within the size limit), in memory.
    pub async fn bytes(mut self) -> Result<Bytes, Error> {
        let mut all = bytes::BytesMut::new();
        while let Some(chunk) = self.chunk().await? {
            all.extend_from_slice(&chunk);
        }
        Ok(all.freeze())
    }
}

impl Stream for Octets {
    type Item = Result<Bytes, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.body).poll_next(cx)
    }
}

impl Octets {
    fn from_body(body: RequestBody) -> Octets {
        let content_type = body.content_type.clone();
        let (body, limit) = Limited::new(body);
        Octets {
            body,
            limit,
            content_type,
        }
    }

    /// An upload of `bytes`, for tests: call the procedure's function with it (the
    /// `#[procedure]` function stays an ordinary `async fn`).
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// use oxrpc::upload::Octets;
    /// assert_eq!(&Octets::from_bytes("hello").bytes().await.unwrap()[..], b"hello");
    /// # });
    /// ```
    pub fn from_bytes(bytes: impl Into<Bytes>) -> Octets {
        Octets::from_body(RequestBody::in_memory(
            BodyKind::Octets,
            "application/octet-stream".to_owned(),
            bytes.into(),
        ))
    }
}

impl<'de> Deserialize<'de> for Octets {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (body, _) = take_pending(BodyKind::Octets, deserializer)?;
        Ok(Octets::from_body(body))
    }
}

/// A multipart input (`multipart/form-data`): what the client sent as a `FormData`, streamed
/// part by part. Text fields become `T` (deserialized and validated like any input: declare
/// them as strings, FormData has no other type); files come one by one from
/// [`FormData::next_file`]. On the TypeScript side its type is `FormData`.
///
/// Put the text fields before the files in the `FormData` (the client sends parts in the order
/// they were appended): [`FormData::fields`] reads up to the first file.
pub struct FormData<T = ()> {
    multipart: multer::Multipart<'static>,
    limit: Arc<AtomicUsize>,
    unknown_fields: UnknownFields,
    text: serde_json::Map<String, serde_json::Value>,
    /// The first file, read while looking for text fields.
    next: Option<multer::Field<'static>>,
    ended: bool,
    _fields: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for FormData<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FormData")
            .field("text_fields", &self.text.len())
            .finish_non_exhaustive()
    }
}

impl<T: Input> FormData<T> {
    /// Sets this upload's size limit in bytes, all parts together (instead of the server's
    /// `max_upload_size`).
    pub fn max_size(self, bytes: usize) -> Self {
        self.limit.store(bytes, Ordering::Relaxed);
        self
    }

    /// The text fields sent before the first file, as `T`: `BAD_REQUEST` with every issue
    /// when they do not validate. A field sent more than once, or declared as a list
    /// (`Vec<String>`), becomes an array of strings.
    pub async fn fields(&mut self) -> Result<T, Error> {
        while self.next.is_none() && !self.ended {
            match self.multipart.next_field().await.map_err(multipart_error)? {
                None => self.ended = true,
                Some(field) if field.file_name().is_some() => self.next = Some(field),
                Some(field) => self.add_text(field).await?,
            }
        }
        let compiled = compiled_for::<T>()?;
        let mut text = self.text.clone();
        // A field declared as a list is a list even when sent once.
        for name in &compiled.lists {
            if let Some(value @ serde_json::Value::String(_)) = text.get_mut(name) {
                *value = serde_json::Value::Array(vec![value.take()]);
            }
        }
        let value = serde_json::Value::Object(text);
        let issues = compiled.validator.validate(&value, self.unknown_fields);
        if !issues.is_empty() {
            return Err(Error::invalid_input(issues));
        }
        let text = value.to_string();
        serde_json::from_str(&text).map_err(|e| crate::serde_error::serde_issue(&text, &e))
    }

    /// The next file part, or `None` after the last one. Text fields met on the way are
    /// kept for [`FormData::fields`].
    pub async fn next_file(&mut self) -> Result<Option<FormFile>, Error> {
        if let Some(field) = self.next.take() {
            return Ok(Some(FormFile { field }));
        }
        while !self.ended {
            match self.multipart.next_field().await.map_err(multipart_error)? {
                None => self.ended = true,
                Some(field) if field.file_name().is_some() => return Ok(Some(FormFile { field })),
                Some(field) => self.add_text(field).await?,
            }
        }
        Ok(None)
    }

    async fn add_text(&mut self, field: multer::Field<'static>) -> Result<(), Error> {
        let name = field.name().unwrap_or_default().to_owned();
        let text = field.text().await.map_err(multipart_error)?;
        match self.text.get_mut(&name) {
            Some(serde_json::Value::Array(values)) => values.push(text.into()),
            Some(first) => *first = serde_json::Value::Array(vec![first.take(), text.into()]),
            None => {
                self.text.insert(name, text.into());
            }
        }
        Ok(())
    }
}

impl<T> FormData<T> {
    fn from_body(body: RequestBody, unknown_fields: UnknownFields) -> Result<Self, String> {
        let boundary = multer::parse_boundary(&body.content_type)
            .map_err(|e| format!("bad multipart content-type: {e}"))?;
        let (body, limit) = Limited::new(body);
        Ok(FormData {
            multipart: multer::Multipart::new(body, boundary),
            limit,
            unknown_fields,
            text: serde_json::Map::new(),
            next: None,
            ended: false,
            _fields: PhantomData,
        })
    }

    /// A form made of `parts`, in order, for tests: call the procedure's function with it.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// use std::collections::BTreeMap;
    /// use oxrpc::upload::{FormData, FormPart};
    ///
    /// let mut form = FormData::<BTreeMap<String, String>>::from_parts([
    ///     FormPart::text("caption", "sunset"),
    ///     FormPart::file("photo", "p.jpg", "image/jpeg", &b"jpeg"[..]),
    /// ]);
    /// assert_eq!(form.fields().await.unwrap()["caption"], "sunset");
    /// let file = form.next_file().await.unwrap().unwrap();
    /// assert_eq!((file.file_name(), file.content_type()), (Some("p.jpg"), Some("image/jpeg")));
    /// assert_eq!(&file.bytes().await.unwrap()[..], b"jpeg");
    /// # });
    /// ```
    pub fn from_parts(parts: impl IntoIterator<Item = FormPart>) -> Self {
        const BOUNDARY: &str = "oxrpc-form-boundary-5f0c1a";
        let mut body = bytes::BytesMut::new();
        // As browsers do: quotes escaped, line breaks dropped from names.
        let quoted = |text: &str| text.replace('"', "%22").replace(['\r', '\n'], "");
        for part in parts {
            body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
            match part {
                FormPart::Text { name, value } => {
                    let name = quoted(&name);
                    body.extend_from_slice(
                        format!("content-disposition: form-data; name=\"{name}\"\r\n\r\n")
                            .as_bytes(),
                    );
                    body.extend_from_slice(value.as_bytes());
                }
                FormPart::File {
                    name,
                    file_name,
                    content_type,
                    bytes,
                } => {
                    let (name, file_name) = (quoted(&name), quoted(&file_name));
                    let content_type = quoted(&content_type);
                    body.extend_from_slice(
                        format!(
                            "content-disposition: form-data; name=\"{name}\"; filename=\"{file_name}\"\r\ncontent-type: {content_type}\r\n\r\n"
                        )
                        .as_bytes(),
                    );
                    body.extend_from_slice(&bytes);
                }
            }
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
        let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
        let body = RequestBody::in_memory(BodyKind::Form, content_type, body.freeze());
        // The boundary above always parses.
        Self::from_body(body, UnknownFields::Ignore).unwrap_or_else(|e| unreachable!("{e}"))
    }
}

/// One part of a [`FormData`] made with [`FormData::from_parts`].
#[derive(Debug, Clone)]
pub enum FormPart {
    /// A text field.
    Text {
        /// The field's name.
        name: String,
        /// Its value.
        value: String,
    },
    /// A file.
    File {
        /// The field's name.
        name: String,
        /// The file's name.
        file_name: String,
        /// Its content type.
        content_type: String,
        /// Its content.
        bytes: Bytes,
    },
}

impl FormPart {
    /// A text field.
    pub fn text(name: impl Into<String>, value: impl Into<String>) -> Self {
        FormPart::Text {
            name: name.into(),
            value: value.into(),
        }
    }

    /// A file.
    pub fn file(
        name: impl Into<String>,
        file_name: impl Into<String>,
        content_type: impl Into<String>,
        bytes: impl Into<Bytes>,
    ) -> Self {
        FormPart::File {
            name: name.into(),
            file_name: file_name.into(),
            content_type: content_type.into(),
            bytes: bytes.into(),
        }
    }
}

impl<'de, T> Deserialize<'de> for FormData<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (body, unknown_fields) = take_pending(BodyKind::Form, deserializer)?;
        FormData::from_body(body, unknown_fields).map_err(serde::de::Error::custom)
    }
}

/// One file of a [`FormData`], streamed.
pub struct FormFile {
    field: multer::Field<'static>,
}

impl fmt::Debug for FormFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FormFile")
            .field("name", &self.name())
            .field("file_name", &self.file_name())
            .field("content_type", &self.content_type())
            .finish()
    }
}

impl FormFile {
    /// The form field's name (`formData.append(name, file)`).
    pub fn name(&self) -> Option<&str> {
        self.field.name()
    }

    /// The file's name, as the client gave it (do not use it as a path).
    pub fn file_name(&self) -> Option<&str> {
        self.field.file_name()
    }

    /// The file's content type, as the client gave it.
    pub fn content_type(&self) -> Option<&str> {
        self.field.content_type().map(|m| m.as_ref())
    }

    /// The next chunk of the file, or `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, Error> {
        self.field.chunk().await.map_err(multipart_error)
    }

    /// The whole file (within the form's size limit), in memory.
    pub async fn bytes(self) -> Result<Bytes, Error> {
        self.field.bytes().await.map_err(multipart_error)
    }
}

/// The transport's own errors (too large, too slow, cut short) pass through multer intact.
fn multipart_error(error: multer::Error) -> Error {
    if let multer::Error::StreamReadFailed(inner) = error {
        return match inner.downcast::<Error>() {
            Ok(ours) => *ours,
            Err(other) => Error::bad_request(format!("The upload failed: {other}")),
        };
    }
    Error::bad_request(format!("Malformed multipart/form-data body: {error}"))
}

/// What `FormData` needs of a field type: its validator, and which fields are lists.
struct Compiled {
    validator: Validator,
    lists: Vec<String>,
}

/// Compiled once per field type.
fn compiled_for<T: Input>() -> Result<Arc<Compiled>, Error> {
    static COMPILED: LazyLock<Mutex<HashMap<TypeId, Arc<Compiled>>>> =
        LazyLock::new(Mutex::default);
    let mut all = COMPILED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(compiled) = all.get(&TypeId::of::<T>()) {
        return Ok(Arc::clone(compiled));
    }
    let info = TypeInfo::of_input::<T>();
    let schema = info.json_schema();
    let compiled = Arc::new(Compiled {
        validator: info.validator().map_err(Error::internal)?,
        lists: list_fields(schema.as_value()),
    });
    all.insert(TypeId::of::<T>(), Arc::clone(&compiled));
    Ok(compiled)
}

/// The properties of an object schema that are arrays (or optional arrays).
fn list_fields(schema: &serde_json::Value) -> Vec<String> {
    fn is_list(schema: &serde_json::Value) -> bool {
        let typed = |t: &serde_json::Value| t == "array";
        match schema.get("type") {
            Some(serde_json::Value::Array(types)) if types.iter().any(typed) => return true,
            Some(t) if typed(t) => return true,
            _ => {}
        }
        ["anyOf", "oneOf"].iter().any(|key| {
            schema
                .get(key)
                .and_then(serde_json::Value::as_array)
                .is_some_and(|options| options.iter().any(is_list))
        })
    }
    schema
        .get("properties")
        .and_then(serde_json::Value::as_object)
        .map(|properties| {
            properties
                .iter()
                .filter(|(_, s)| is_list(s))
                .map(|(name, _)| name.clone())
                .collect()
        })
        .unwrap_or_default()
}

// TypeScript: what the official client accepts for these inputs.

impl ts_rs::TS for Octets {
    type WithoutGenerics = Self;
    type OptionInnerType = Self;

    fn name(_: &ts_rs::Config) -> String {
        "Blob | Uint8Array | File".to_owned()
    }

    fn inline(cfg: &ts_rs::Config) -> String {
        Self::name(cfg)
    }
}

impl<T> ts_rs::TS for FormData<T> {
    type WithoutGenerics = FormData<()>;
    type OptionInnerType = Self;

    fn name(_: &ts_rs::Config) -> String {
        "FormData".to_owned()
    }

    fn inline(cfg: &ts_rs::Config) -> String {
        Self::name(cfg)
    }
}

// JSON Schema: the id marks them as body inputs; the schema says what the body is.

impl schemars::JsonSchema for Octets {
    fn schema_name() -> Cow<'static, str> {
        "Octets".into()
    }

    fn schema_id() -> Cow<'static, str> {
        OCTETS_ID.into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A binary body (application/octet-stream), not JSON",
            "contentMediaType": "application/octet-stream"
        })
    }
}

impl<T: schemars::JsonSchema> schemars::JsonSchema for FormData<T> {
    fn schema_name() -> Cow<'static, str> {
        format!("FormData_{}", T::schema_name()).into()
    }

    fn schema_id() -> Cow<'static, str> {
        format!("{FORM_ID_PREFIX}{}>", T::schema_id()).into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let fields = generator.subschema_for::<T>();
        schemars::json_schema!({
            "description": "A multipart/form-data body, not JSON; its text fields:",
            "contentMediaType": "multipart/form-data",
            "allOf": [fields]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_and_list_fields() {
        assert_eq!(
            BodyKind::of_media_type("Multipart/Form-Data; boundary=x"),
            Some(BodyKind::Form)
        );
        assert_eq!(
            BodyKind::of_media_type("application/octet-stream"),
            Some(BodyKind::Octets)
        );
        assert_eq!(BodyKind::of_media_type("application/json"), None);
        assert_eq!(
            BodyKind::of_schema_id(&<Octets as schemars::JsonSchema>::schema_id()),
            Some(BodyKind::Octets)
        );
        assert_eq!(
            BodyKind::of_schema_id(&<FormData<()> as schemars::JsonSchema>::schema_id()),
            Some(BodyKind::Form)
        );
        assert_eq!(BodyKind::of_schema_id("alloc::string::String"), None);

        #[derive(serde::Deserialize, schemars::JsonSchema)]
        #[allow(dead_code)]
        struct Fields {
            one: String,
            many: Vec<String>,
            maybe_many: Option<Vec<String>>,
        }
        let schema = schemars::schema_for!(Fields);
        let mut lists = list_fields(schema.as_value());
        lists.sort();
        assert_eq!(lists, ["many", "maybe_many"]);
    }
}
