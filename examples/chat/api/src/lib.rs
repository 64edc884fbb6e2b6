//! The chat example's API: sign-in, rooms, message history (cursor-paginated), live messages
//! that resume after a reconnect, presence and typing indicators.
//!
//! State lives in [`Chat`]: messages and sessions in memory, appended to files in a data
//! folder when one is given (so a restarted server keeps its history and its event ids).

mod store;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::Stream;
use oxrpc::{
    Call, Error, ErrorCode, Middleware, Next, Reply, RequestInfo, ResponseHeaders, Router, Tracked,
    procedure,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

pub use store::Store;

/// A chat message.
#[derive(Debug, Clone, Serialize, Deserialize, TS, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChatMessage {
    /// Increasing across all rooms; also the event id of `messages.onMessage`.
    pub id: u64,
    /// The room it was sent to.
    pub room: String,
    /// Who sent it.
    pub author: String,
    /// What it says.
    pub text: String,
    /// When the server got it.
    pub sent_at: DateTime<Utc>,
}

/// A room.
#[derive(Debug, Clone, Serialize, TS, JsonSchema)]
pub struct Room {
    /// Its id, used in every other call.
    pub id: String,
    /// Its display name.
    pub name: String,
}

const ROOMS: [(&str, &str); 2] = [("general", "General"), ("random", "Random")];

fn check_room(room: &str) -> Result<(), Error> {
    if ROOMS.iter().any(|(id, _)| *id == room) {
        Ok(())
    } else {
        Err(Error::not_found(format!("no room {room:?}")))
    }
}

/// Everything the server keeps: messages, sessions, who is in which room and typing.
#[derive(Clone)]
pub struct Chat {
    store: Store,
    activity: Arc<Mutex<Activity>>,
    changed: tokio::sync::watch::Sender<u64>,
}

#[derive(Default)]
struct Activity {
    /// room → user → open activity subscriptions (tabs).
    online: BTreeMap<String, BTreeMap<String, usize>>,
    /// room → user → typing until.
    typing: BTreeMap<String, BTreeMap<String, tokio::time::Instant>>,
}

impl Chat {
    /// A chat keeping its messages and sessions in `data` (created if missing), or only in
    /// memory.
    pub fn open(data: Option<&Path>) -> std::io::Result<Chat> {
        Ok(Chat {
            store: Store::open(data)?,
            activity: Arc::default(),
            changed: tokio::sync::watch::Sender::new(0),
        })
    }

    /// Builds the context of a request: the caller is whoever the session token names, taken
    /// from `Authorization: Bearer …` (HTTP), the `token` connection param (WebSocket and SSE
    /// from the browser), or the `chat_token` cookie that `auth.signIn` sets (any of them).
    pub fn context(&self, info: &RequestInfo) -> AppCtx {
        let token = info
            .header("authorization")
            .and_then(|h| h.strip_prefix("Bearer "))
            .or_else(|| info.connection_params()?.get("token").map(String::as_str))
            // A cookie comes with every request to this host, also from other sites' pages
            // (a cross-site WebSocket, for one): only trusted when the request says it comes
            // from this very origin, or says nothing (not a browser).
            .or_else(|| {
                let same_origin = info.header("origin").is_none_or(|origin| {
                    let host = origin.split_once("://").map_or(origin, |(_, host)| host);
                    info.header("host") == Some(host)
                });
                same_origin
                    .then(|| cookie(info.header("cookie")?, "chat_token"))
                    .flatten()
            });
        AppCtx {
            user: token.and_then(|t| self.store.user_of(t)),
            chat: self.clone(),
            response_headers: info.response_headers(),
        }
    }

    fn activity(&self) -> std::sync::MutexGuard<'_, Activity> {
        self.activity
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn touch(&self) {
        self.changed.send_modify(|n| *n += 1);
    }
}

fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find_map(|(k, v)| (k == name).then_some(v))
}

/// What every procedure receives.
#[derive(Clone)]
pub struct AppCtx {
    chat: Chat,
    user: Option<String>,
    response_headers: ResponseHeaders,
}

/// The context of signed-in callers: only [`RequireUser`] makes one.
#[derive(Clone)]
pub struct Authed {
    chat: Chat,
    user: String,
}

/// Lets signed-in callers through (`UNAUTHORIZED` otherwise).
#[derive(Debug, Clone, Copy, Default)]
pub struct RequireUser;

impl Middleware for RequireUser {
    type In = AppCtx;
    type Out = Authed;

    async fn call(&self, ctx: AppCtx, _call: &Call, next: Next<Authed>) -> Result<Reply, Error> {
        let user = ctx
            .user
            .ok_or_else(|| Error::unauthorized().with_message("sign in first"))?;
        next.run(Authed {
            chat: ctx.chat,
            user,
        })
        .await
    }
}

// ---- auth --------------------------------------------------------------------------------

/// Input of `auth.signIn`.
#[derive(Debug, Deserialize, TS, JsonSchema)]
pub struct SignIn {
    /// 1 to 20 letters, digits, `_` or `-`.
    #[schemars(length(min = 1, max = 20), regex(pattern = r"^[A-Za-z0-9_-]*$"))]
    pub name: String,
}

/// What `auth.signIn` returns.
#[derive(Debug, Serialize, TS, JsonSchema)]
pub struct SignedIn {
    /// The session token: send it as `Authorization: Bearer …` or the `token` connection param.
    pub token: String,
    /// The name signed in.
    pub name: String,
}

/// Starts a session: returns its token and sets it as an HTTP-only cookie too.
#[procedure(mutation, name = "signIn")]
pub async fn sign_in(ctx: &AppCtx, input: SignIn) -> Result<SignedIn, Error> {
    let token = ctx
        .chat
        .store
        .new_session(&input.name)
        .map_err(Error::internal)?;
    ctx.response_headers.append(
        "set-cookie",
        &format!("chat_token={token}; HttpOnly; SameSite=Lax; Path=/"),
    )?;
    Ok(SignedIn {
        token,
        name: input.name,
    })
}

/// Who is signed in (`null` if nobody).
#[procedure(query)]
pub async fn me(ctx: &AppCtx) -> Option<String> {
    ctx.user.clone()
}

// ---- rooms -------------------------------------------------------------------------------

/// The rooms.
#[procedure(query)]
pub async fn list() -> Vec<Room> {
    ROOMS
        .iter()
        .map(|(id, name)| Room {
            id: (*id).to_owned(),
            name: (*name).to_owned(),
        })
        .collect()
}

/// Input of `rooms.setTyping`.
#[derive(Debug, Deserialize, TS, JsonSchema)]
pub struct SetTyping {
    /// The room.
    pub room: String,
    /// Typing now (it expires after 5 s unless repeated), or stopped.
    pub typing: bool,
}

/// Says the caller is (or stopped) typing in a room.
#[procedure(mutation, name = "setTyping", use = RequireUser)]
pub async fn set_typing(ctx: &Authed, input: SetTyping) -> Result<(), Error> {
    check_room(&input.room)?;
    {
        let mut activity = ctx.chat.activity();
        let typing = activity.typing.entry(input.room).or_default();
        if input.typing {
            let until = tokio::time::Instant::now() + Duration::from_secs(5);
            typing.insert(ctx.user.clone(), until);
        } else {
            typing.remove(&ctx.user);
        }
    }
    ctx.chat.touch();
    Ok(())
}

/// Input of `rooms.onActivity`.
#[derive(Debug, Deserialize, TS, JsonSchema)]
pub struct RoomInput {
    /// The room.
    pub room: String,
}

/// Who is in a room and who is typing.
#[derive(Debug, Clone, PartialEq, Serialize, TS, JsonSchema)]
pub struct RoomActivity {
    /// Users with the room open.
    pub online: Vec<String>,
    /// Users typing right now.
    pub typing: Vec<String>,
}

/// Counts the caller as online in a room while the subscription lasts.
struct Presence {
    chat: Chat,
    room: String,
    user: String,
}

impl Drop for Presence {
    fn drop(&mut self) {
        {
            let mut activity = self.chat.activity();
            if let Some(users) = activity.online.get_mut(&self.room)
                && let Some(count) = users.get_mut(&self.user)
            {
                *count -= 1;
                if *count == 0 {
                    users.remove(&self.user);
                }
            }
        }
        self.chat.touch();
    }
}

/// Who is online and typing in a room: a snapshot at once, then one on every change. The
/// caller counts as online while subscribed.
#[procedure(subscription, name = "onActivity", use = RequireUser)]
pub async fn on_activity(
    ctx: &Authed,
    input: RoomInput,
) -> Result<impl Stream<Item = RoomActivity> + use<>, Error> {
    check_room(&input.room)?;
    let chat = ctx.chat.clone();
    *chat
        .activity()
        .online
        .entry(input.room.clone())
        .or_default()
        .entry(ctx.user.clone())
        .or_default() += 1;
    chat.touch();
    let presence = Presence {
        chat: chat.clone(),
        room: input.room,
        user: ctx.user.clone(),
    };
    let mut changed = chat.changed.subscribe();
    Ok(async_stream::stream! {
        let presence = presence;
        let mut last = None;
        loop {
            let now = tokio::time::Instant::now();
            let snapshot = {
                let activity = presence.chat.activity();
                let online = activity.online.get(&presence.room);
                let typing = activity.typing.get(&presence.room);
                RoomActivity {
                    online: online.map(|u| u.keys().cloned().collect()).unwrap_or_default(),
                    typing: typing
                        .map(|u| u.iter().filter(|(_, until)| **until > now).map(|(n, _)| n.clone()).collect())
                        .unwrap_or_default(),
                }
            };
            if last.as_ref() != Some(&snapshot) {
                last = Some(snapshot.clone());
                yield snapshot;
            }
            // A change, or a second for typing to expire.
            let _ = tokio::time::timeout(Duration::from_secs(1), changed.changed()).await;
        }
    })
}

// ---- messages ----------------------------------------------------------------------------

/// Input of `messages.send`.
#[derive(Debug, Deserialize, TS, JsonSchema)]
pub struct SendMessage {
    /// The room.
    pub room: String,
    /// 1 to 280 characters.
    #[schemars(length(min = 1, max = 280))]
    pub text: String,
}

/// Sends a message to a room.
#[procedure(mutation, use = RequireUser)]
pub async fn send(ctx: &Authed, input: SendMessage) -> Result<ChatMessage, Error> {
    check_room(&input.room)?;
    ctx.chat
        .store
        .append(input.room, ctx.user.clone(), input.text)
        .map_err(Error::internal)
}

/// Which way an infinite query is fetching.
#[derive(Debug, Clone, Copy, Deserialize, TS, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Older messages (the next page).
    Forward,
    /// Newer messages.
    Backward,
}

/// Input of `messages.history` (an infinite query: the client adds `cursor` and `direction`).
#[derive(Debug, Deserialize, TS, JsonSchema)]
pub struct HistoryInput {
    /// The room.
    pub room: String,
    /// Messages per page (1 to 50, default 20).
    #[serde(default)]
    #[ts(optional)]
    #[schemars(range(min = 1, max = 50))]
    pub limit: Option<usize>,
    /// The page before this message id; none: the newest page.
    #[serde(default)]
    #[ts(optional)]
    pub cursor: Option<u64>,
    /// Set by the client; pages always go back in time.
    #[serde(default)]
    #[ts(optional)]
    pub direction: Option<Direction>,
}

/// A page of history.
#[derive(Debug, Serialize, TS, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryPage {
    /// Oldest first.
    pub items: Vec<ChatMessage>,
    /// The cursor of the page of older messages; `null` at the beginning.
    pub next_cursor: Option<u64>,
}

/// A room's messages, newest page first.
#[procedure(query, use = RequireUser)]
pub async fn history(ctx: &Authed, input: HistoryInput) -> Result<HistoryPage, Error> {
    check_room(&input.room)?;
    let (items, more) = ctx
        .chat
        .store
        .before(&input.room, input.cursor, input.limit.unwrap_or(20));
    Ok(HistoryPage {
        next_cursor: more.then(|| items.first().map(|m| m.id)).flatten(),
        items,
    })
}

/// Input of `messages.onMessage`.
#[derive(Debug, Deserialize, TS, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OnMessage {
    /// The room.
    pub room: String,
    /// The last message id the client has (filled in by the client when it reconnects).
    #[serde(default)]
    #[ts(optional)]
    pub last_event_id: Option<String>,
}

/// A room's new messages; after a reconnect, first those sent meanwhile (exactly once).
#[procedure(subscription, name = "onMessage", use = RequireUser)]
pub async fn on_message(
    ctx: &Authed,
    input: OnMessage,
) -> Result<impl Stream<Item = Result<Tracked<ChatMessage>, Error>> + use<>, Error> {
    check_room(&input.room)?;
    let after =
        match input.last_event_id.as_deref() {
            None => None,
            Some(id) => Some(id.parse::<u64>().map_err(|_| {
                Error::new(ErrorCode::BadRequest, "lastEventId is not a message id")
            })?),
        };
    Ok(ctx.chat.store.follow(input.room, after))
}

/// The API.
pub fn router() -> Router<AppCtx> {
    Router::new()
        .nest(
            "auth",
            Router::new().add(sign_in::procedure()).add(me::procedure()),
        )
        .nest(
            "rooms",
            Router::new()
                .add(list::procedure())
                .add(set_typing::procedure())
                .add(on_activity::procedure()),
        )
        .nest(
            "messages",
            Router::new()
                .add(history::procedure())
                .add(send::procedure())
                .add(on_message::procedure()),
        )
}
