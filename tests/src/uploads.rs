//! Binary and multipart inputs (conformance-ideas §3.1 `upload` and `form`), streamed.

use std::collections::BTreeMap;

use oxrpc::upload::{FormData, Octets};
use oxrpc::{Error, Router, procedure};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::Ctx;
use crate::auth::{Authed, RequireUser};

/// What `upload` answers.
#[derive(Debug, Serialize, TS, JsonSchema)]
pub struct Uploaded {
    /// How many bytes arrived.
    pub size: u64,
}

async fn count(body: Octets) -> Result<Uploaded, Error> {
    let mut body = body;
    let mut size = 0u64;
    while let Some(chunk) = body.chunk().await? {
        size += chunk.len() as u64;
    }
    Ok(Uploaded { size })
}

/// Counts the bytes of a binary upload (`Blob`, `File` or `Uint8Array`), up to 1 GiB, as they
/// stream in.
#[procedure(mutation)]
pub async fn upload(input: Octets) -> Result<Uploaded, Error> {
    count(input.max_size(1 << 30)).await
}

/// Like `upload`, with a limit of 64 KiB.
#[procedure(mutation)]
pub async fn upload_small(input: Octets) -> Result<Uploaded, Error> {
    count(input.max_size(64 * 1024)).await
}

/// The text fields of a `FormData` (any), and its files as `"file:<name>:<size>"` under their
/// field names.
#[procedure(mutation)]
pub async fn form(
    input: FormData<BTreeMap<String, serde_json::Value>>,
) -> Result<BTreeMap<String, serde_json::Value>, Error> {
    let mut form = input;
    let mut out = form.fields().await?;
    while let Some(mut file) = form.next_file().await? {
        let key = file.name().unwrap_or_default().to_owned();
        let name = file.file_name().unwrap_or_default().to_owned();
        let mut size = 0usize;
        while let Some(chunk) = file.chunk().await? {
            size += chunk.len();
        }
        out.insert(key, format!("file:{name}:{size}").into());
    }
    Ok(out)
}

/// The text fields of `photo`.
#[derive(Debug, Deserialize, TS, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PhotoFields {
    /// 1 to 20 characters.
    #[schemars(length(min = 1, max = 20))]
    pub caption: String,
    /// Tags, if any (a field sent several times).
    #[serde(default)]
    #[ts(optional)]
    pub tag: Option<Vec<String>>,
}

/// What `photo` answers.
#[derive(Debug, Serialize, TS, JsonSchema)]
pub struct Photo {
    /// The caption.
    pub caption: String,
    /// The tags.
    pub tags: Vec<String>,
    /// Each file: its field, name, content type and size.
    pub files: Vec<String>,
}

/// A typed form: the caption is validated before any file is read.
#[procedure(mutation)]
pub async fn photo(input: FormData<PhotoFields>) -> Result<Photo, Error> {
    let mut form = input.max_size(4 * 1024 * 1024);
    let fields = form.fields().await?;
    let mut files = Vec::new();
    while let Some(file) = form.next_file().await? {
        let label = format!(
            "{}:{}:{}",
            file.name().unwrap_or_default(),
            file.file_name().unwrap_or_default(),
            file.content_type().unwrap_or_default()
        );
        let size = file.bytes().await?.len();
        files.push(format!("{label}:{size}"));
    }
    Ok(Photo {
        caption: fields.caption,
        tags: fields.tag.unwrap_or_default(),
        files,
    })
}

/// Like `upload`, for signed-in callers only: a refused upload still gets its answer (the
/// body is drained, not reset).
#[procedure(mutation, use = RequireUser)]
pub async fn upload_private(_ctx: &Authed, input: Octets) -> Result<Uploaded, Error> {
    count(input.max_size(1 << 30)).await
}

/// `upload`, `uploadSmall`, `uploadPrivate`, `form`, `photo`.
pub fn router() -> Router<Ctx> {
    Router::new()
        .add(upload::procedure())
        .add(upload_private::procedure())
        .add(upload_small::procedure())
        .add(form::procedure())
        .add(photo::procedure())
}
