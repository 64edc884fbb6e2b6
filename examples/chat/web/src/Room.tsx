import { skipToken, useInfiniteQuery, useMutation } from '@tanstack/react-query';
import { type TRPCSubscriptionStatus, useSubscription } from '@trpc/tanstack-react-query';
import { useCallback, useEffect, useLayoutEffect, useMemo, useRef, useState } from 'react';
import type { RouterOutputs } from './generated/AppRouter';
import { transport, useTRPC } from './trpc';

type ChatMessage = RouterOutputs['messages']['send'];

const maxLength = 280;

type RoomProps = {
  /** The room's id. */
  room: string;
  /** Its display name. */
  name: string;
  /** Who we are signed in as. */
  me: string;
  /** Who is typing in the room (from `rooms.onActivity`). */
  typing: string[];
};

export function Room({ room, name, me, typing }: RoomProps) {
  const trpc = useTRPC();

  // History, newest page first; "Load older" fetches the page before the oldest one shown.
  const history = useInfiniteQuery(
    trpc.messages.history.infiniteQueryOptions(
      { room, limit: 20 },
      {
        getNextPageParam: (page) => page.nextCursor,
        // The subscription below keeps the room current: no refetching.
        staleTime: Infinity,
      },
    ),
  );

  // Live messages, from right after the newest one in the history: the server replays what
  // was sent in between, and after a reconnect the client resumes from the last event it saw.
  const [live, setLive] = useState<ChatMessage[]>([]);
  const add = useCallback((message: ChatMessage) => setLive((list) => [...list, message]), []);
  const newest = history.data?.pages[0]?.items.at(-1)?.id;
  const onMessage = useSubscription(
    trpc.messages.onMessage.subscriptionOptions(
      history.isSuccess ? { room, lastEventId: newest === undefined ? undefined : String(newest) } : skipToken,
      { onData: ({ data }) => add(data) },
    ),
  );

  // History pages and live messages, oldest first, each message once.
  const messages = useMemo(() => {
    const byId = new Map<number, ChatMessage>();
    for (const message of history.data?.pages.flatMap((page) => page.items) ?? []) byId.set(message.id, message);
    for (const message of live) byId.set(message.id, message);
    return [...byId.values()].sort((a, b) => a.id - b.id);
  }, [history.data, live]);

  const others = typing.filter((name) => name !== me);

  return (
    <main className="room">
      <header>
        <h2># {name}</h2>
        <span className="connection" data-testid="connection" data-state={onMessage.status}>
          {connectionLabel(onMessage.status, onMessage.error?.message)} · {transport === 'sse' ? 'SSE' : 'WebSocket'}
        </span>
      </header>
      {history.error && <p className="error">{history.error.message}</p>}
      <MessageList
        name={name}
        messages={messages}
        hasOlder={history.hasNextPage}
        loadingOlder={history.isFetchingNextPage}
        onLoadOlder={() => void history.fetchNextPage()}
      />
      <p className="typing" data-testid="typing">
        {typingLabel(others)}
      </p>
      <Composer room={room} name={name} onSent={add} />
    </main>
  );
}

function connectionLabel(status: TRPCSubscriptionStatus, error?: string): string {
  switch (status) {
    case 'pending':
      return 'live';
    case 'connecting':
      return error ? 'reconnecting…' : 'connecting…';
    case 'error':
      return `error: ${error ?? 'unknown'}`;
    case 'idle':
      return 'offline';
  }
}

function typingLabel(names: string[]): string {
  if (names.length === 0) return '';
  if (names.length === 1) return `${names[0]} is typing…`;
  if (names.length === 2) return `${names[0]} and ${names[1]} are typing…`;
  return 'several people are typing…';
}

type MessageListProps = {
  name: string;
  messages: ChatMessage[];
  hasOlder: boolean;
  loadingOlder: boolean;
  onLoadOlder: () => void;
};

/** Follows new messages while scrolled to the bottom; keeps still when older ones are prepended. */
function MessageList({ name, messages, hasOlder, loadingOlder, onLoadOlder }: MessageListProps) {
  const list = useRef<HTMLOListElement>(null);
  const atBottom = useRef(true);
  const fromBottom = useRef<number | null>(null);
  const first = messages[0]?.id;
  const last = messages.at(-1)?.id;

  useLayoutEffect(() => {
    const el = list.current;
    if (el && atBottom.current) el.scrollTop = el.scrollHeight;
  }, [last]);
  useLayoutEffect(() => {
    const el = list.current;
    if (el && fromBottom.current !== null) el.scrollTop = el.scrollHeight - fromBottom.current;
    fromBottom.current = null;
  }, [first]);

  return (
    <ol
      className="messages"
      data-testid="message-list"
      ref={list}
      onScroll={(e) => {
        const el = e.currentTarget;
        atBottom.current = el.scrollHeight - el.scrollTop - el.clientHeight < 24;
      }}
    >
      <li className="top">
        {hasOlder ? (
          <button
            data-testid="load-older"
            disabled={loadingOlder}
            onClick={() => {
              const el = list.current;
              if (el) fromBottom.current = el.scrollHeight - el.scrollTop;
              onLoadOlder();
            }}
          >
            {loadingOlder ? 'Loading…' : 'Load older'}
          </button>
        ) : (
          last !== undefined && `This is the beginning of #${name}.`
        )}
      </li>
      {messages.map((m, i) => {
        // Consecutive messages of one author within 5 minutes share one header.
        const prev = messages[i - 1];
        const continued = prev?.author === m.author && Date.parse(m.sentAt) - Date.parse(prev.sentAt) < 5 * 60_000;
        return (
          <li key={m.id} className={continued ? 'message continued' : 'message'} data-testid="message" data-id={m.id}>
            {!continued && (
              <div>
                <span className="author" style={{ color: colorOf(m.author) }}>
                  {m.author}
                </span>
                <time dateTime={m.sentAt}>{new Date(m.sentAt).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })}</time>
              </div>
            )}
            <p>{m.text}</p>
          </li>
        );
      })}
    </ol>
  );
}

function colorOf(name: string): string {
  let hash = 0;
  for (const c of name) hash = (hash * 31 + c.charCodeAt(0)) % 360;
  return `hsl(${hash} 55% 40%)`;
}

function Composer({ room, name, onSent }: { room: string; name: string; onSent: (message: ChatMessage) => void }) {
  const trpc = useTRPC();
  const [text, setText] = useState('');
  const typing = useTypingSignal(room);
  const send = useMutation(
    trpc.messages.send.mutationOptions({
      onSuccess: (message) => {
        setText('');
        onSent(message);
      },
    }),
  );
  // A validation error names the field; anything else (e.g. the server is down) is shown as is.
  const error = send.error && (send.error.data?.zodError?.fieldErrors.text?.[0] ?? send.error.message);

  return (
    <form
      className="composer"
      onSubmit={(e) => {
        e.preventDefault();
        typing.stop();
        send.mutate({ room, text });
      }}
    >
      <input
        data-testid="message-input"
        value={text}
        placeholder={`Message #${name}`}
        aria-label={`Message #${name}`}
        aria-invalid={error ? true : undefined}
        onChange={(e) => {
          setText(e.target.value);
          typing.start();
          if (send.error) send.reset();
        }}
      />
      {text !== '' && (
        <span className={text.length > maxLength ? 'count over' : 'count'}>
          {text.length}/{maxLength}
        </span>
      )}
      <button data-testid="send" disabled={send.isPending || text === ''}>
        Send
      </button>
      {error && (
        <p className="field-error" data-testid="field-error">
          {error}
        </p>
      )}
    </form>
  );
}

/**
 * Tells the room that we are typing: at the first keystroke, again every 3 s while typing goes
 * on (the server forgets it after 5 s), and that we stopped after 2 s without a keystroke.
 */
function useTypingSignal(room: string) {
  const trpc = useTRPC();
  const { mutate } = useMutation(trpc.rooms.setTyping.mutationOptions());
  const lastSent = useRef<number | null>(null); // while typing: when we last said so
  const idle = useRef<ReturnType<typeof setTimeout>>(undefined);

  const stop = useCallback(() => {
    clearTimeout(idle.current);
    if (lastSent.current !== null) {
      lastSent.current = null;
      mutate({ room, typing: false });
    }
  }, [mutate, room]);
  const start = useCallback(() => {
    if (lastSent.current === null || Date.now() - lastSent.current > 3000) {
      lastSent.current = Date.now();
      mutate({ room, typing: true });
    }
    clearTimeout(idle.current);
    idle.current = setTimeout(stop, 2000);
  }, [mutate, room, stop]);
  useEffect(() => stop, [stop]); // leaving the room

  return { start, stop };
}
