/**
 * Raw WebSocket frames against the Rust conformance server (trpc-protocol.md §7, captures of
 * §11.8): protocol edges the official client never produces (malformed and binary frames, string
 * ids with `jsonrpc`, duplicate ids, unknown stops, floods), the limits of the `options` profile,
 * and a failing `createContext`. Plain `ws` sockets, no tRPC client, except where noted.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { TRPCClientError } from '@trpc/client';
import type { ClientOptions } from 'ws';
import { startServer, type RunningServer } from './server.js';
import { CALL_TIMEOUT_MS, withTimeout } from './harness.js';
import {
  assertErrorFrame,
  isStopped,
  RawSocket,
  waitFor,
  wsConnections,
  WsClients,
  wsUrl,
  type RawFrame,
  type WsMessage,
} from './ws-harness.js';

/** Per-hook deadline: the server helper itself gives up after 20 s. */
const HOOK = { timeout: 30_000 };

describe('raw WebSocket frames, plain profile', () => {
  let server: RunningServer;
  const sockets: RawSocket[] = [];

  /** A raw socket that is closed after the test. */
  async function rawSocket(options: ClientOptions = {}): Promise<RawSocket> {
    const socket = await RawSocket.open(wsUrl(server), options);
    sockets.push(socket);
    return socket;
  }

  before(async () => {
    server = await startServer('plain');
  }, HOOK);
  afterEach(async () => {
    for (const socket of sockets.splice(0)) socket.close();
    await waitFor(async () => (await wsConnections(server)) === 0, 'connections of the previous test closed');
  }, HOOK);
  after(async () => {
    await server?.stop();
  }, HOOK);

  it('malformed JSON → {"id":null,"error":PARSE_ERROR}; the connection keeps working', async () => {
    const ws = await rawSocket();
    ws.send('not json');
    assertErrorFrame(await ws.next('malformed JSON'), null, 'PARSE_ERROR', 400);
    ws.sendJson({ id: null, method: 'query', params: { path: 'hello' } });
    const idRequired = assertErrorFrame(await ws.next('id null'), null, 'PARSE_ERROR', 400);
    assert.equal(idRequired?.message, '`id` is required');
    ws.sendJson({ id: 3, method: 'frobnicate', params: { path: 'hello' } });
    const invalid = assertErrorFrame(await ws.next('unknown method'), null, 'PARSE_ERROR', 400);
    assert.equal(invalid?.message, 'Invalid procedure type');
    ws.send('PING');
    assert.equal(await ws.next('PING'), 'PONG');
    ws.sendJson({ id: 4, method: 'query', params: { path: 'hello' } });
    assert.deepEqual(await ws.next('hello'), { id: 4, result: { type: 'data', data: 'hello world' } });
  });

  it('a binary frame → PARSE_ERROR; the connection keeps working', async () => {
    const ws = await rawSocket();
    ws.send(Buffer.from('{"id":1,"method":"query","params":{"path":"hello"}}'));
    assertErrorFrame(await ws.next('binary frame'), null, 'PARSE_ERROR', 400);
    ws.sendJson({ id: 2, method: 'query', params: { path: 'hello' } });
    assert.deepEqual(await ws.next('hello'), { id: 2, result: { type: 'data', data: 'hello world' } });
    assert.equal(ws.isClosed, false);
  });

  it('subscription.stop for an unknown id is ignored', async () => {
    const ws = await rawSocket();
    ws.sendJson({ id: 99, method: 'subscription.stop' });
    ws.sendJson({ id: 'nope', method: 'subscription.stop' });
    ws.sendJson({ id: 1, method: 'query', params: { path: 'hello' } });
    // The very next frame is the answer: nothing was sent for the stops.
    assert.deepEqual(await ws.next('hello'), { id: 1, result: { type: 'data', data: 'hello world' } });
  });

  it('a duplicate subscription id → "Duplicate id" BAD_REQUEST, and the first subscription keeps sending', async () => {
    const ws = await rawSocket();
    ws.sendJson({ id: 1, method: 'subscription', params: { path: 'onForever' } });
    assert.deepEqual(await ws.next('started'), { id: 1, result: { type: 'started' } });
    assert.deepEqual(await ws.next('first value'), { id: 1, result: { type: 'data', data: 0 } });
    ws.sendJson({ id: 1, method: 'subscription', params: { path: 'onForever' } });
    const frames = await ws.until((f) => typeof f === 'object' && f.error !== undefined, 'duplicate id');
    const error = assertErrorFrame(frames.at(-1)!, 1, 'BAD_REQUEST', 400);
    assert.equal(error?.message, 'Duplicate id 1');
    assert.equal(error?.data.path, 'onForever');
    // The first one goes on: its values keep counting up.
    const more = await ws.until((f) => typeof f === 'object' && f.result?.data === 3, 'values after the duplicate', 3_000);
    const values = [...frames, ...more]
      .filter((f): f is WsMessage => typeof f === 'object' && f.result?.type === 'data')
      .map((f) => f.result!.data);
    assert.deepEqual(values, [1, 2, 3]);
    ws.sendJson({ id: 1, method: 'subscription.stop' });
    await ws.until(isStopped(1), 'stopped');
  });

  it('jsonrpc "2.0" and string ids are echoed in every response', async () => {
    const ws = await rawSocket();
    ws.sendJson({ jsonrpc: '2.0', id: 'abc', method: 'query', params: { path: 'greet', input: { name: 'x' } } });
    assert.deepEqual(await ws.next('greet'), {
      id: 'abc',
      jsonrpc: '2.0',
      result: { type: 'data', data: { text: 'hi x', times: 1 } },
    });
    ws.sendJson({ jsonrpc: '2.0', id: 's', method: 'subscription', params: { path: 'onCount', input: { from: 0 }, lastEventId: '4' } });
    const frames = await ws.until(isStopped('s'), 'onCount');
    assert.deepEqual(frames, [
      { id: 's', jsonrpc: '2.0', result: { type: 'started' } },
      { id: 's', jsonrpc: '2.0', result: { type: 'data', data: { id: '5', data: { n: 5 } }, id: '5' } },
      { id: 's', jsonrpc: '2.0', result: { type: 'data', data: { id: '6', data: { n: 6 } }, id: '6' } },
      { id: 's', jsonrpc: '2.0', result: { type: 'data', data: { id: '7', data: { n: 7 } }, id: '7' } },
      { id: 's', jsonrpc: '2.0', result: { type: 'stopped' } },
    ]);
    ws.sendJson({ jsonrpc: '2.0', id: 'e', method: 'query', params: { path: 'notFound' } });
    const err = await ws.nextJson('notFound');
    assert.equal(err.jsonrpc, '2.0');
    assertErrorFrame(err, 'e', 'NOT_FOUND', 404);
  });

  it('a flood of 500 queries in one array frame → 500 answers', async () => {
    const ws = await rawSocket();
    const ids = Array.from({ length: 500 }, (_, i) => i + 1);
    ws.sendJson(ids.map((id) => ({ id, method: 'query', params: { path: 'greet', input: { name: `n${id}` } } })));
    const answers = new Map<unknown, WsMessage>();
    while (answers.size < ids.length) {
      const frame = await ws.nextJson(`answer ${answers.size + 1} of 500`);
      assert.ok(!answers.has(frame.id), `a second answer for id ${String(frame.id)}`);
      answers.set(frame.id, frame);
    }
    for (const id of ids) {
      assert.deepEqual(answers.get(id), { id, result: { type: 'data', data: { text: `hi n${id}`, times: 1 } } });
    }
    // Still serving afterwards.
    ws.sendJson({ id: 501, method: 'query', params: { path: 'hello' } });
    assert.deepEqual(await ws.next('hello'), { id: 501, result: { type: 'data', data: 'hello world' } });
  });
});

describe('raw WebSocket frames, options profile (keep-alive 1 s / 1 s, 4 subscriptions, 16 KiB messages)', () => {
  let server: RunningServer;
  const sockets: RawSocket[] = [];

  async function rawSocket(): Promise<RawSocket> {
    const socket = await RawSocket.open(wsUrl(server));
    sockets.push(socket);
    return socket;
  }

  before(async () => {
    server = await startServer('options');
  }, HOOK);
  afterEach(async () => {
    for (const socket of sockets.splice(0)) socket.close();
    await waitFor(async () => (await wsConnections(server)) === 0, 'connections of the previous test closed');
  }, HOOK);
  after(async () => {
    await server?.stop();
  }, HOOK);

  it('server keep-alive (raw): a socket that never answers PING is terminated', async () => {
    const ws = await rawSocket();
    const opened = Date.now();
    assert.equal(await ws.next('the server pings', 3_000), 'PING');
    await ws.closedWithin(4_000, 'the server terminates the silent socket');
    const after = Date.now() - opened;
    assert.ok(after >= 1_500, `terminated after ${after} ms: ping after 1 s, then 1 s to answer`);
  });

  it('a fifth subscription on one connection → TOO_MANY_REQUESTS; a freed slot can be reused', async () => {
    const ws = await rawSocket();
    for (const id of [1, 2, 3, 4, 5]) ws.sendJson({ id, method: 'subscription', params: { path: 'onForever' } });
    // Answers to the five arrive in any order: four `started` (then values), one refusal.
    const started = new Set<unknown>();
    let refusal: RawFrame | undefined;
    await ws.until((f) => {
      if (typeof f === 'object' && f.result?.type === 'started') started.add(f.id);
      if (typeof f === 'object' && f.error !== undefined) refusal = f;
      return started.size === 4 && refusal !== undefined;
    }, 'four started and one refused');
    const error = assertErrorFrame(refusal!, 5, 'TOO_MANY_REQUESTS', 429);
    assert.equal(error?.data.path, 'onForever');
    assert.deepEqual([...started].sort(), [1, 2, 3, 4]);

    ws.sendJson({ id: 1, method: 'subscription.stop' });
    await ws.until(isStopped(1), 'stopped 1');
    ws.sendJson({ id: 6, method: 'subscription', params: { path: 'onForever' } });
    const next = await ws.until(
      (f) => typeof f === 'object' && f.id === 6,
      'the sixth subscription is answered',
    );
    assert.deepEqual(next.at(-1), { id: 6, result: { type: 'started' } });
  });

  it('an oversized frame (> 16 KiB) closes that socket; another connection keeps working', async () => {
    const big = await rawSocket();
    const other = await rawSocket();
    big.sendJson({ id: 9, method: 'query', params: { path: 'echo', input: 'x'.repeat(17 * 1024) } });
    await big.closedWithin(CALL_TIMEOUT_MS, 'the server closes the oversized socket');
    other.sendJson({ id: 1, method: 'query', params: { path: 'hello' } });
    let frame = await other.next('hello on the other socket');
    while (frame === 'PING') {
      other.send('PONG');
      frame = await other.next('hello on the other socket');
    }
    assert.deepEqual(frame, { id: 1, result: { type: 'data', data: 'hello world' } });
  });
});

// =============================================================================================
// plain profile, own server: a failing createContext
// =============================================================================================

describe('wsLink, a failing createContext (plain profile, own server)', () => {
  // Its own server: a connection whose context failed must not leak into the other tests.
  let server: RunningServer;
  const clients = new WsClients();
  const sockets: RawSocket[] = [];

  before(async () => {
    server = await startServer('plain');
  }, HOOK);
  afterEach(async () => {
    for (const socket of sockets.splice(0)) socket.close();
    await clients.closeAll();
  }, HOOK);
  after(async () => {
    await server?.stop();
  }, HOOK);

  it('raw: x-fail-context on the upgrade → {"id":null,"error":FORBIDDEN}, then the server closes the socket', async () => {
    const ws = await RawSocket.open(wsUrl(server), { headers: { 'x-fail-context': '1' } });
    sockets.push(ws);
    ws.sendJson({ id: 1, method: 'query', params: { path: 'hello' } });
    const frame = await ws.nextJson('the context error', 3_000);
    assertErrorFrame(frame, null, 'FORBIDDEN', 403);
    assert.equal(frame.error?.message, 'context refused by x-fail-context');
    await ws.closedWithin(3_000, 'the server closes the socket after the context error');
    await waitFor(async () => (await wsConnections(server)) === 0, 'the server forgot the connection', 3_000);
  });

  it('client: a query on a connection whose context failed rejects with that error instead of hanging', async () => {
    const { client, log } = clients.create(server, {
      socket: { headers: { 'x-fail-context': '1' } },
      retryDelayMs: () => 1_000,
    });
    const err = await withTimeout(
      client.hello.query().then(
        (value) => assert.fail(`resolved with ${JSON.stringify(value)}`),
        (error: unknown) => error,
      ),
      // The client sends its queued calls a moment after the socket opens, which can be
      // after the server refused the connection: the server waits for them (up to 1 s) and
      // answers each with the refusal before it closes. Closing at once instead leaves them
      // unsent, and the client keeps unsent calls for the next connection, refused again.
      8_000,
      'hello on a connection whose context failed',
    );
    assert.ok(err instanceof TRPCClientError, `a TRPCClientError: ${String(err)}`);
    assert.equal(err.data?.code, 'FORBIDDEN', `the context's own error: ${err.message}`);
    assert.equal(err.message, 'context refused by x-fail-context');
    const contextError = log.received().find((m) => m.id === null && m.error);
    assert.equal(contextError?.error?.data.code, 'FORBIDDEN', 'the client got the {"id":null} context error');
  });
});
