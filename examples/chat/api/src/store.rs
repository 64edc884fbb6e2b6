//! Messages and sessions: in memory, and appended to JSON-lines files in a data folder when
//! there is one (a real app would use its database). New messages are also broadcast to the
//! live subscriptions of this process.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use futures_util::Stream;
use oxrpc::{Error, ErrorCode, Tracked};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::ChatMessage;

#[derive(Default)]
struct Inner {
    messages: Vec<ChatMessage>,
    sessions: HashMap<String, String>,
}

/// Where the chat keeps its data.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Mutex<Inner>>,
    folder: Option<PathBuf>,
    live: broadcast::Sender<ChatMessage>,
}

#[derive(Serialize, Deserialize)]
struct Session {
    token: String,
    name: String,
}

impl Store {
    /// Opens the store, reading what `folder` holds (created if missing).
    pub fn open(folder: Option<&Path>) -> std::io::Result<Store> {
        let mut inner = Inner::default();
        if let Some(folder) = folder {
            std::fs::create_dir_all(folder)?;
            for line in read_lines(&folder.join("messages.jsonl"))? {
                inner.messages.push(serde_json::from_str(&line)?);
            }
            for line in read_lines(&folder.join("sessions.jsonl"))? {
                let session: Session = serde_json::from_str(&line)?;
                inner.sessions.insert(session.token, session.name);
            }
        }
        Ok(Store {
            inner: Arc::new(Mutex::new(inner)),
            folder: folder.map(Path::to_owned),
            live: broadcast::channel(1024).0,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn persist(&self, file: &str, record: &impl Serialize) -> std::io::Result<()> {
        let Some(folder) = &self.folder else {
            return Ok(());
        };
        let mut line = serde_json::to_string(record)?;
        line.push('\n');
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(folder.join(file))?
            .write_all(line.as_bytes())
    }

    /// Starts a session for `name`; returns its token.
    pub fn new_session(&self, name: &str) -> std::io::Result<String> {
        let token = uuid::Uuid::new_v4().simple().to_string();
        let mut inner = self.lock();
        self.persist(
            "sessions.jsonl",
            &Session {
                token: token.clone(),
                name: name.to_owned(),
            },
        )?;
        inner.sessions.insert(token.clone(), name.to_owned());
        Ok(token)
    }

    /// Who a session token belongs to.
    pub fn user_of(&self, token: &str) -> Option<String> {
        self.lock().sessions.get(token).cloned()
    }

    /// Stores a message and tells the live subscriptions.
    pub fn append(
        &self,
        room: String,
        author: String,
        text: String,
    ) -> std::io::Result<ChatMessage> {
        let mut inner = self.lock();
        let message = ChatMessage {
            id: inner.messages.last().map_or(1, |m| m.id + 1),
            room,
            author,
            text,
            sent_at: chrono::Utc::now(),
        };
        self.persist("messages.jsonl", &message)?;
        inner.messages.push(message.clone());
        // Sent under the lock, so live subscribers see messages in id order.
        let _ = self.live.send(message.clone());
        Ok(message)
    }

    /// Up to `limit` messages of `room` before the id `before` (oldest first), and whether
    /// there are older ones.
    pub fn before(
        &self,
        room: &str,
        before: Option<u64>,
        limit: usize,
    ) -> (Vec<ChatMessage>, bool) {
        let inner = self.lock();
        let mut older = inner
            .messages
            .iter()
            .rev()
            .filter(|m| m.room == room && before.is_none_or(|b| m.id < b));
        let mut page: Vec<ChatMessage> = older.by_ref().take(limit).cloned().collect();
        let more = older.next().is_some();
        page.reverse();
        (page, more)
    }

    /// The messages of `room` after the id `after`, then live ones, each once and in order.
    /// (Registered for live messages before reading the stored ones, so none falls between.)
    pub fn follow(
        &self,
        room: String,
        after: Option<u64>,
    ) -> impl Stream<Item = Result<Tracked<ChatMessage>, Error>> + use<> {
        let mut live = self.live.subscribe();
        let (backlog, newest) = {
            let inner = self.lock();
            let newest = inner.messages.last().map_or(0, |m| m.id);
            let backlog: Vec<ChatMessage> = match after {
                Some(after) => inner
                    .messages
                    .iter()
                    .filter(|m| m.room == room && m.id > after)
                    .cloned()
                    .collect(),
                None => Vec::new(),
            };
            (backlog, newest)
        };
        let store = self.clone();
        async_stream::stream! {
            if after.is_some_and(|a| a > newest) {
                yield Err(Error::new(
                    ErrorCode::PreconditionFailed,
                    "lastEventId is newer than any message: resubscribe without it",
                ));
                return;
            }
            let mut last = after.unwrap_or(newest);
            for message in backlog {
                last = message.id;
                yield Ok(Tracked::new(message.id.to_string(), message));
            }
            loop {
                match live.recv().await {
                    Ok(message) if message.room == room && message.id > last => {
                        last = message.id;
                        yield Ok(Tracked::new(message.id.to_string(), message));
                    }
                    Ok(_) => {}
                    // Too slow for the buffer: read the rest from the store.
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let missed: Vec<ChatMessage> = store
                            .lock()
                            .messages
                            .iter()
                            .filter(|m| m.room == room && m.id > last)
                            .cloned()
                            .collect();
                        for message in missed {
                            last = message.id;
                            yield Ok(Tracked::new(message.id.to_string(), message));
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        }
    }
}

fn read_lines(path: &Path) -> std::io::Result<Vec<String>> {
    match File::open(path) {
        Ok(file) => BufReader::new(file)
            .lines()
            .filter(|l| !matches!(l, Ok(line) if line.trim().is_empty()))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures_util::StreamExt;

    use super::*;

    #[tokio::test]
    async fn a_reopened_store_keeps_messages_ids_and_sessions_and_resumes_after_an_id() {
        let folder = std::env::temp_dir().join(format!("chat-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&folder);
        let token = {
            let store = Store::open(Some(&folder)).expect("open");
            for text in ["one", "two", "three"] {
                store
                    .append("general".into(), "ann".into(), text.into())
                    .expect("append");
            }
            store
                .append("random".into(), "ann".into(), "elsewhere".into())
                .expect("append");
            store.new_session("ann").expect("session")
        };
        // A restarted server.
        let store = Store::open(Some(&folder)).expect("reopen");
        assert_eq!(store.user_of(&token).as_deref(), Some("ann"));
        let mut resumed = Box::pin(store.follow("general".into(), Some(1)));
        store
            .append("general".into(), "bo".into(), "five".into())
            .expect("append");
        let mut ids = Vec::new();
        for _ in 0..3 {
            let event = tokio::time::timeout(Duration::from_secs(5), resumed.next())
                .await
                .expect("deadline")
                .expect("open")
                .expect("event");
            ids.push(event.id().to_owned());
        }
        assert_eq!(ids, ["2", "3", "5"]);
        let (page, more) = store.before("general", Some(3), 1);
        assert_eq!((page[0].text.as_str(), more), ("two", true));
        let mut future = Box::pin(store.follow("general".into(), Some(99)));
        let error = future
            .next()
            .await
            .expect("item")
            .expect_err("newer than any");
        assert_eq!(error.code(), ErrorCode::PreconditionFailed);
        std::fs::remove_dir_all(&folder).expect("clean up");
    }
}
