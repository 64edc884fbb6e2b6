/**
 * Helpers of the WebSocket tests (ws-link.test.ts, ws-raw.test.ts): the server's WS URL and
 * test-control endpoints, a frame-recording `ws` socket for `createWSClient`
 * (conformance-ideas.md §2.1), subscription recorders, and a raw socket for frame-level probes.
 * Every wait has a deadline.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  createTRPCClient,
  createWSClient,
  TRPCClientError,
  wsLink,
  type TRPCClient,
  type TRPCWebSocketClient,
  type WebSocketClientOptions,
} from '@trpc/client';
import { WebSocket as WsSocket, type ClientOptions, type RawData } from 'ws';
import type { AppRouter } from '../generated/AppRouter.js';
import type { RunningServer } from './server.js';
import { CALL_TIMEOUT_MS, JSONRPC, raw, withTimeout, type AppClientError } from './harness.js';

// ---------------------------------------------------------------------------------------------
// Wire messages and the server's URLs
// ---------------------------------------------------------------------------------------------

/** A tRPC WebSocket message in either direction (§7.2, §7.3), loosely typed for assertions. */
export interface WsMessage {
  id?: string | number | null;
  jsonrpc?: string;
  method?: string;
  params?: { path?: string; input?: unknown; lastEventId?: string };
  data?: unknown;
  result?: { type?: string; data?: unknown; id?: string };
  error?: { message: string; code: number; data: { code: string; httpStatus: number; path?: string } };
}

/** The WebSocket URL of a server: the HTTP base with the `ws:` scheme. */
export function wsUrl(server: RunningServer): string {
  return server.url.replace(/^http:/, 'ws:');
}

/** A test-control endpoint of the conformance server (conformance-ideas.md §3.3). */
export function control(server: RunningServer, name: string): string {
  return `${new URL(server.url).origin}/__test/${name}`;
}

/** `POST /__test/broadcast-reconnect`: `{"id":null,"method":"reconnect"}` to every WS client. */
export async function broadcastReconnect(server: RunningServer): Promise<void> {
  const res = await raw(control(server, 'broadcast-reconnect'), { method: 'POST' });
  assert.equal(res.status, 200, `broadcast-reconnect: ${res.text}`);
}

/** `POST /__test/drop-connections`: the server closes every WS socket abruptly. */
export async function dropConnections(server: RunningServer): Promise<void> {
  const res = await raw(control(server, 'drop-connections'), { method: 'POST' });
  assert.equal(res.status, 200, `drop-connections: ${res.text}`);
}

/** `GET /__test/ws-connections`: how many WS connections the server has open. */
export async function wsConnections(server: RunningServer): Promise<number> {
  const res = await raw(control(server, 'ws-connections'));
  assert.equal(res.status, 200, `ws-connections: ${res.text}`);
  const count = Number(res.text.trim());
  assert.ok(Number.isInteger(count), `ws-connections answered ${JSON.stringify(res.text)}`);
  return count;
}

/**
 * Polls `condition` every 20 ms until it holds; fails the test after `ms` milliseconds. Each
 * evaluation of an async condition has its own deadline too.
 */
export async function waitFor(
  condition: () => boolean | Promise<boolean>,
  label: string,
  ms: number = CALL_TIMEOUT_MS,
): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await withTimeout(Promise.resolve(condition()), CALL_TIMEOUT_MS, label)) return;
    if (Date.now() > deadline) assert.fail(`${label}: not reached within ${ms} ms`);
    await sleep(20);
  }
}

// ---------------------------------------------------------------------------------------------
// A recording WebSocket for the client (conformance-ideas.md §2.1)
// ---------------------------------------------------------------------------------------------

/** One text (or binary) frame seen by a recording socket. */
export interface Frame {
  /** Which socket: 1 for the first one the client opened, 2 for the next, … */
  conn: number;
  dir: 'c2s' | 's2c';
  text: string;
}

/** Everything the sockets of one client sent and received, in order. */
export class FrameLog {
  readonly frames: Frame[] = [];
  /** The URL of every socket the client constructed (one per connection attempt). */
  readonly urls: string[] = [];
  /** Sockets (by `conn`) that have fired `open`. */
  readonly opened: number[] = [];
  /** Sockets (by `conn`) that have fired `close`. */
  readonly closed: number[] = [];
  /** The sockets themselves, to terminate them when the client cannot close. */
  readonly sockets: WsSocket[] = [];

  /** A position in the log, to look only at what came after it. */
  mark(): number {
    return this.frames.length;
  }

  /** Raw text frames in one direction since `from`. */
  texts(dir: Frame['dir'], from = 0): Frame[] {
    return this.frames.slice(from).filter((f) => f.dir === dir);
  }

  /** The JSON frames the client sent since `from` (keep-alive frames skipped), arrays kept whole. */
  sentFrames(from = 0): unknown[] {
    return this.texts('c2s', from)
      .filter((f) => f.text !== 'PING' && f.text !== 'PONG')
      .map((f) => JSON.parse(f.text) as unknown);
  }

  /** Every message the client sent since `from`, with batched frames flattened. */
  sent(from = 0): WsMessage[] {
    return this.sentFrames(from).flatMap((m) => (Array.isArray(m) ? (m as WsMessage[]) : [m as WsMessage]));
  }

  /** Every JSON message the server sent since `from` (keep-alive frames skipped). */
  received(from = 0): WsMessage[] {
    return this.texts('s2c', from)
      .filter((f) => f.text !== 'PING' && f.text !== 'PONG')
      .map((f) => JSON.parse(f.text) as WsMessage);
  }
}

/**
 * A `ws` WebSocket class for `createWSClient` that records every frame into `log`. `options` go to
 * the `ws` constructor, e.g. `{ headers: { authorization: 'ADMIN' } }` for the upgrade request.
 */
export function recordingSocket(log: FrameLog, options: ClientOptions = {}): typeof globalThis.WebSocket {
  class RecordingSocket extends WsSocket {
    constructor(url: string | URL, protocols?: string | string[]) {
      super(url, protocols ?? [], options);
      log.urls.push(String(url));
      log.sockets.push(this);
      const conn = log.urls.length;
      this.on('open', () => log.opened.push(conn));
      this.on('close', () => log.closed.push(conn));
      this.on('message', (data: RawData, isBinary: boolean) => {
        log.frames.push({ conn, dir: 's2c', text: isBinary ? '<binary>' : data.toString() });
      });
      const send = this.send.bind(this) as (data: unknown, ...rest: unknown[]) => void;
      this.send = ((data: unknown, ...rest: unknown[]) => {
        log.frames.push({ conn, dir: 'c2s', text: typeof data === 'string' ? data : '<binary>' });
        send(data, ...rest);
      }) as WsSocket['send'];
    }
  }
  // The client only needs the browser-like surface (`addEventListener`, `readyState`, `send`,
  // `close`, `OPEN`…), which `ws` provides; its TypeScript class is not the DOM one.
  return RecordingSocket as unknown as typeof globalThis.WebSocket;
}

/** A typed client over its own `createWSClient`, and the log of its sockets. */
export interface WsHarness {
  client: TRPCClient<AppRouter>;
  wsClient: TRPCWebSocketClient;
  log: FrameLog;
}

/** Options of {@link WsClients.create}: the client's own, plus options for the `ws` constructor. */
export type HarnessOptions = Omit<WebSocketClientOptions, 'url' | 'WebSocket'> & { socket?: ClientOptions };

/** Creates WS clients for a test and closes all of them afterwards. */
export class WsClients {
  private readonly live: WsHarness[] = [];

  /** A client with `retryDelayMs: () => 50` unless given otherwise. */
  create(server: RunningServer, opts: HarnessOptions = {}): WsHarness {
    const { socket, ...clientOpts } = opts;
    const log = new FrameLog();
    const wsClient = createWSClient({
      url: wsUrl(server),
      WebSocket: recordingSocket(log, socket),
      retryDelayMs: () => 50,
      ...clientOpts,
    });
    const client = createTRPCClient<AppRouter>({ links: [wsLink<AppRouter>({ client: wsClient })] });
    const harness = { client, wsClient, log };
    this.live.push(harness);
    return harness;
  }

  /**
   * Closes every client created so far. `close()` waits for the answers to pending queries, so
   * a client whose server never answers gets its sockets terminated after 2 s.
   */
  async closeAll(): Promise<void> {
    const harnesses = this.live.splice(0);
    await withTimeout(
      Promise.all(
        harnesses.map(async ({ wsClient, log }) => {
          const closed = wsClient.close().catch(() => undefined);
          const done = await Promise.race([closed.then(() => true), sleep(2_000).then(() => false)]);
          if (!done) {
            for (const socket of log.sockets) socket.terminate();
            await closed;
          }
        }),
      ),
      CALL_TIMEOUT_MS,
      'closing WS clients',
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Subscriptions through the client
// ---------------------------------------------------------------------------------------------

/** What one subscription observed, in order. */
export class SubLog<T> {
  readonly data: T[] = [];
  /** `started`, `data`, `error`, `stopped`, `complete`, in the order the callbacks fired. */
  readonly events: string[] = [];
  /** Every `onConnectionStateChange` state. */
  readonly states: string[] = [];
  error: AppClientError | undefined;
  completed = false;

  /** The callbacks to pass to `.subscribe()`. */
  readonly handlers = {
    onStarted: () => {
      this.events.push('started');
    },
    onData: (value: T) => {
      this.data.push(value);
      this.events.push('data');
    },
    onError: (err: unknown) => {
      assert.ok(err instanceof TRPCClientError, `subscription failed with a non-TRPCClientError: ${String(err)}`);
      this.error = err as AppClientError;
      this.events.push('error');
    },
    onStopped: () => {
      this.events.push('stopped');
    },
    onComplete: () => {
      this.completed = true;
      this.events.push('complete');
    },
    onConnectionStateChange: (state: { state: string }) => {
      this.states.push(state.state);
    },
  };

  count(event: string): number {
    return this.events.filter((e) => e === event).length;
  }

  /** Waits until at least `n` values arrived. */
  async values(n: number, label: string, ms: number = CALL_TIMEOUT_MS): Promise<T[]> {
    await waitFor(() => this.data.length >= n || this.error !== undefined, `${label}: ${n} values`, ms);
    if (this.error) assert.fail(`${label}: failed with ${this.error.message}`);
    return this.data;
  }

  /** Waits until the subscription completed (for any reason). */
  async done(label: string): Promise<void> {
    await waitFor(() => this.completed || this.error !== undefined, `${label}: completion`);
  }

  /** Waits until the subscription failed, and returns the error. */
  async failed(label: string): Promise<AppClientError> {
    await waitFor(() => this.error !== undefined || this.completed, `${label}: error`);
    if (!this.error) assert.fail(`${label}: completed without an error (events ${this.events.join(',')})`);
    return this.error;
  }
}

/** Asserts the client-side surface of a WS error (no HTTP response behind it). */
export function assertWsError(
  err: AppClientError,
  expected: { code: keyof typeof JSONRPC; httpStatus: number; path?: string; message?: string },
): void {
  assert.ok(err instanceof TRPCClientError, 'a TRPCClientError');
  assert.equal(err.data?.code, expected.code, `data.code (message: ${err.message})`);
  assert.equal(err.data?.httpStatus, expected.httpStatus, 'data.httpStatus');
  assert.equal(err.shape?.code, JSONRPC[expected.code], 'shape.code');
  if (expected.path !== undefined) assert.equal(err.data?.path, expected.path, 'data.path');
  if (expected.message !== undefined) assert.equal(err.message, expected.message, 'message');
}

/** Asserts that tracked ids are `0, 1, 2, …` (or consecutive from `first`): no gap, no duplicate. */
export function assertConsecutive(ids: string[], label: string, first?: number): void {
  const numbers = ids.map(Number);
  const start = first ?? numbers[0]!;
  const expected = numbers.map((_, i) => start + i);
  assert.deepEqual(numbers, expected, `${label}: tracked ids must increase by exactly 1 (got ${ids.join(',')})`);
}

// ---------------------------------------------------------------------------------------------
// Raw sockets (no tRPC client)
// ---------------------------------------------------------------------------------------------

/** A parsed server frame: JSON, or the raw text (`PING`/`PONG`). */
export type RawFrame = WsMessage | string;

/** A bare `ws` socket with a queue of received frames and deadlines on every wait. */
export class RawSocket {
  private readonly queue: RawFrame[] = [];
  private wake: (() => void) | undefined;
  /** Resolves with the close code once the socket has closed. */
  readonly closed: Promise<number>;
  isClosed = false;

  private constructor(private readonly socket: WsSocket) {
    socket.on('message', (data: RawData, isBinary: boolean) => {
      const text = isBinary ? '<binary>' : data.toString();
      let frame: RawFrame;
      try {
        frame = JSON.parse(text) as WsMessage;
      } catch {
        frame = text;
      }
      this.queue.push(frame);
      this.wake?.();
    });
    this.closed = new Promise((resolve) => {
      socket.on('close', (code: number) => {
        this.isClosed = true;
        this.wake?.();
        resolve(code);
      });
    });
    // Errors (e.g. a reset after the server closes) end in `close` as well.
    socket.on('error', () => undefined);
  }

  /** Opens a socket to `url` (with optional `ws` options such as headers). */
  static async open(url: string, options: ClientOptions = {}): Promise<RawSocket> {
    const socket = new WsSocket(url, options);
    const rawSocket = new RawSocket(socket);
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        socket.once('open', () => resolve());
        socket.once('error', reject);
      }),
      CALL_TIMEOUT_MS,
      `opening ${url}`,
    );
    return rawSocket;
  }

  send(data: string | Buffer): void {
    this.socket.send(data);
  }

  /** Sends a JSON message (or an array of them). */
  sendJson(message: unknown): void {
    this.socket.send(JSON.stringify(message));
  }

  /** The next frame, waiting at most `ms`. */
  async next(label: string, ms: number = CALL_TIMEOUT_MS): Promise<RawFrame> {
    const deadline = Date.now() + ms;
    for (;;) {
      const frame = this.queue.shift();
      if (frame !== undefined) return frame;
      if (this.isClosed) assert.fail(`${label}: the socket closed instead`);
      const left = deadline - Date.now();
      if (left <= 0) assert.fail(`${label}: no frame within ${ms} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
    }
  }

  /** The next JSON frame (fails on `PING`/`PONG`). */
  async nextJson(label: string, ms?: number): Promise<WsMessage> {
    const frame = await this.next(label, ms);
    assert.ok(typeof frame === 'object', `${label}: expected JSON, got ${JSON.stringify(frame)}`);
    return frame;
  }

  /** Frames up to and including the first one `done` accepts. */
  async until(done: (frame: RawFrame) => boolean, label: string, ms: number = CALL_TIMEOUT_MS): Promise<RawFrame[]> {
    const deadline = Date.now() + ms;
    const frames: RawFrame[] = [];
    for (;;) {
      const frame = await this.next(label, Math.max(deadline - Date.now(), 1));
      frames.push(frame);
      if (done(frame)) return frames;
    }
  }

  /** Waits (at most `ms`) for the socket to close and returns the close code. */
  async closedWithin(ms: number, label: string): Promise<number> {
    return withTimeout(this.closed, ms, label);
  }

  close(): void {
    if (!this.isClosed) this.socket.terminate();
  }
}

/** Whether `frame` is the server's `stopped` result for `id`. */
export const isStopped = (id: string | number) => (frame: RawFrame) =>
  typeof frame === 'object' && frame.id === id && frame.result?.type === 'stopped';

/** Asserts a protocol-level error frame: `{"id":<id>,"error":{…<code>…}}`. */
export function assertErrorFrame(frame: RawFrame, id: string | number | null, code: keyof typeof JSONRPC, httpStatus: number): WsMessage['error'] {
  assert.ok(typeof frame === 'object' && frame.error, `expected an error frame, got ${JSON.stringify(frame)}`);
  assert.equal(frame.id, id, 'id');
  assert.equal(typeof frame.error.message, 'string');
  assert.equal(frame.error.code, JSONRPC[code], `error.code of ${JSON.stringify(frame)}`);
  assert.equal(frame.error.data.code, code, 'error.data.code');
  assert.equal(frame.error.data.httpStatus, httpStatus, 'error.data.httpStatus');
  assert.equal(frame.result, undefined, 'no result beside an error');
  return frame.error;
}
