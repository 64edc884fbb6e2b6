/**
 * wsLink conformance (trpc-protocol.md §7 and the captures of §11.8; conformance-ideas.md §4
 * "wsLink"): the official `createWSClient` + `wsLink` against the Rust conformance server, with the
 * `ws` package as the WebSocket implementation (Node 20 has no global one).
 *
 * Every socket the client opens records its frames (ws-harness.ts), so the tests assert what went
 * over the wire as well as what the client returned. Following §4.1 of the conformance notes,
 * nothing here depends on exact connection counts after a reconnect, on the order of the answers
 * to a batched frame, or on how often `onStarted` fires. Raw-frame probes are in ws-raw.test.ts.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createTRPCClient, httpLink } from '@trpc/client';
import type { AppRouter, BusPost, Count, UserTick } from '../generated/AppRouter.js';
import { startServer, type RunningServer } from './server.js';
import { rejectsWithClientError, withTimeout, type AppClientError } from './harness.js';
import {
  assertConsecutive,
  assertWsError,
  broadcastReconnect,
  dropConnections,
  SubLog,
  waitFor,
  wsConnections,
  WsClients,
  type WsMessage,
} from './ws-harness.js';

/** Per-hook deadline: the server helper itself gives up after 20 s. */
const HOOK = { timeout: 30_000 };

describe('wsLink, plain profile', () => {
  let server: RunningServer;
  const clients = new WsClients();

  before(async () => {
    server = await startServer('plain');
  }, HOOK);
  afterEach(async () => {
    await clients.closeAll();
    // Every test starts without leftover connections (the control endpoints act on all of them).
    await waitFor(async () => (await wsConnections(server)) === 0, 'connections of the previous test closed');
  }, HOOK);
  after(async () => {
    await server?.stop();
  }, HOOK);

  describe('connectionParams and authentication', () => {
    it('connectionParams: the handshake frame comes first and the params reach the context', async () => {
      const { client, log } = clients.create(server, { connectionParams: { token: 'ABC' } });
      const ctx = await withTimeout(client.ctx.query());
      assert.deepEqual(ctx, { connectionParams: { token: 'ABC' }, hasAuth: null });

      assert.equal(new URL(log.urls[0]!).searchParams.get('connectionParams'), '1', 'URL flag');
      const first = log.texts('c2s')[0];
      assert.ok(first, 'the client sent something');
      assert.deepEqual(JSON.parse(first.text), { method: 'connectionParams', data: { token: 'ABC' } });
      const query = log.sent().find((m) => m.method === 'query');
      assert.deepEqual(query?.params, { path: 'ctx' });
    });

    it('a `token` connection param signs the subscription in (secretTicks → user abc)', async () => {
      const { client } = clients.create(server, { connectionParams: { token: 'ABC' } });
      const sub = new SubLog<{ id: string; data: UserTick }>();
      client.secretTicks.subscribe(undefined, sub.handlers);
      await sub.done('secretTicks');
      assert.equal(sub.error, undefined, sub.error?.message);
      assert.deepEqual(sub.data, [
        { id: '0', data: { user: 'abc', n: 0 } },
        { id: '1', data: { user: 'abc', n: 1 } },
        { id: '2', data: { user: 'abc', n: 2 } },
      ]);
      assert.equal(sub.count('stopped'), 1, `events: ${sub.events.join(',')}`);
    });

    it('an authorization header on the upgrade request signs in (secretTicks → user root)', async () => {
      const { client, log } = clients.create(server, { socket: { headers: { authorization: 'ADMIN' } } });
      const ctx = await withTimeout(client.ctx.query());
      assert.deepEqual(ctx, { connectionParams: null, hasAuth: 'ADMIN' });
      assert.equal(new URL(log.urls[0]!).searchParams.get('connectionParams'), null, 'no connectionParams flag');

      const sub = new SubLog<{ id: string; data: UserTick }>();
      client.secretTicks.subscribe(undefined, sub.handlers);
      await sub.done('secretTicks');
      assert.equal(sub.error, undefined, sub.error?.message);
      assert.deepEqual(
        sub.data.map((d) => d.data.user),
        ['root', 'root', 'root'],
      );
    });

    it('a token in the subscription input (tokenTicks): ABC → 1, 2, 3; a bad token → UNAUTHORIZED', async () => {
      const { client, log } = clients.create(server);
      const good = new SubLog<number>();
      client.tokenTicks.subscribe({ token: 'ABC' }, good.handlers);
      await good.done('tokenTicks ABC');
      assert.equal(good.error, undefined, good.error?.message);
      assert.deepEqual(good.data, [1, 2, 3]);
      assert.equal(good.count('stopped'), 1);

      const bad = new SubLog<number>();
      client.tokenTicks.subscribe({ token: 'nope' }, bad.handlers);
      const err = await bad.failed('tokenTicks nope');
      assertWsError(err, { code: 'UNAUTHORIZED', httpStatus: 401, path: 'tokenTicks', message: 'bad token' });
      assert.deepEqual(bad.data, []);
      const sent = log.sent().filter((m) => m.params?.path === 'tokenTicks');
      assert.deepEqual(
        sent.map((m) => [m.method, m.params?.input]),
        [
          ['subscription', { token: 'ABC' }],
          ['subscription', { token: 'nope' }],
        ],
      );
    });

    it('no credentials: secretTicks fails with UNAUTHORIZED', async () => {
      const { client } = clients.create(server);
      const sub = new SubLog<{ id: string; data: UserTick }>();
      client.secretTicks.subscribe(undefined, sub.handlers);
      const err = await sub.failed('secretTicks anonymous');
      assertWsError(err, {
        code: 'UNAUTHORIZED',
        httpStatus: 401,
        path: 'secretTicks',
        message: 'sign in with the Authorization header',
      });
      assert.deepEqual(sub.data, []);
      // The connection is still usable afterwards.
      assert.equal(await withTimeout(client.hello.query()), 'hello world');
    });
  });

  describe('queries, mutations, errors', () => {
    it('two queries in one tick go out as one array frame', async () => {
      const { client, log } = clients.create(server);
      await withTimeout(client.hello.query()); // the socket is open and idle now
      const mark = log.mark();
      const [hello, greet] = await withTimeout(Promise.all([client.hello.query(), client.greet.query({ name: 'ws' })]));
      assert.equal(hello, 'hello world');
      assert.deepEqual(greet, { text: 'hi ws', times: 1 });

      const frames = log.sentFrames(mark);
      assert.equal(frames.length, 1, `one client frame, got ${JSON.stringify(frames)}`);
      const batch = frames[0] as WsMessage[];
      assert.ok(Array.isArray(batch) && batch.length === 2, `a JSON array of 2: ${JSON.stringify(batch)}`);
      assert.deepEqual(
        batch.map((m) => [m.method, m.params]),
        [
          ['query', { path: 'hello' }],
          ['query', { input: { name: 'ws' }, path: 'greet' }],
        ],
      );
      assert.notEqual(batch[0]!.id, batch[1]!.id, 'distinct ids');
      // The answers come back as separate frames (in any order), each with its request's id.
      const answers = log.received(mark);
      assert.equal(answers.length, 2);
      const byId = new Map(answers.map((a) => [a.id, a]));
      assert.deepEqual(byId.get(batch[0]!.id), { id: batch[0]!.id, result: { type: 'data', data: 'hello world' } });
      assert.deepEqual(byId.get(batch[1]!.id), { id: batch[1]!.id, result: { type: 'data', data: { text: 'hi ws', times: 1 } } });
    });

    it('a mutation, and one without output', async () => {
      const { client, log } = clients.create(server);
      const mark = log.mark();
      assert.deepEqual(await withTimeout(client.addPost.mutate({ title: 'p' })), { id: 1, title: 'p' });
      assert.equal(await withTimeout(client.types.nothing.mutate('x')), undefined);
      const sent = log.sent(mark);
      assert.deepEqual(
        sent.map((m) => [m.method, m.params]),
        [
          ['mutation', { input: { title: 'p' }, path: 'addPost' }],
          ['mutation', { input: 'x', path: 'types.nothing' }],
        ],
      );
      const nothing = log.received(mark).find((m) => m.id === sent[1]!.id);
      assert.deepEqual(nothing, { id: sent[1]!.id, result: { type: 'data' } }, 'undefined output: no `data` key');
    });

    it('error surface: TRPCClientError with data.code, httpStatus, path and shape.code', async () => {
      const { client, log } = clients.create(server);
      const mark = log.mark();
      const notFound = await rejectsWithClientError(client.notFound.query(), 'notFound');
      assertWsError(notFound, { code: 'NOT_FOUND', httpStatus: 404, path: 'notFound', message: 'thing not found' });
      const frame = log.received(mark).find((m) => m.error);
      assert.deepEqual(frame?.error && { ...frame.error, data: { ...frame.error.data, retryable: undefined } }, {
        message: 'thing not found',
        code: -32004,
        data: { code: 'NOT_FOUND', httpStatus: 404, path: 'notFound', retryable: undefined },
      });

      const invalid = await rejectsWithClientError(client.greet.query({ name: 5 as unknown as string }), 'greet with a bad input');
      assertWsError(invalid, { code: 'BAD_REQUEST', httpStatus: 400, path: 'greet' });
      const unauthorized = await rejectsWithClientError(client.secret.mutate(), 'secret');
      assertWsError(unauthorized, { code: 'UNAUTHORIZED', httpStatus: 401, path: 'secret' });
      const boom = await rejectsWithClientError(client.boom.query(), 'boom');
      assertWsError(boom, { code: 'INTERNAL_SERVER_ERROR', httpStatus: 500, path: 'boom' });

      // Successes and failures batched in one frame settle independently.
      const [ok, failed] = await withTimeout(
        Promise.allSettled([client.hello.query(), client.notImpl.query()] as const),
      );
      assert.deepEqual(ok, { status: 'fulfilled', value: 'hello world' });
      assert.equal(failed.status, 'rejected');
      assert.equal((failed.reason as AppClientError).data?.code, 'NOT_IMPLEMENTED');
    });
  });

  describe('subscriptions', () => {
    it('tracked onCount {from: 10}: started, {id, data} values with result.id, stopped, complete', async () => {
      const { client, log } = clients.create(server);
      const mark = log.mark();
      const sub = new SubLog<{ id: string; data: Count }>();
      client.onCount.subscribe({ from: 10 }, sub.handlers);
      await sub.done('onCount');
      assert.equal(sub.error, undefined, sub.error?.message);
      assert.deepEqual(sub.data, [
        { id: '10', data: { n: 10 } },
        { id: '11', data: { n: 11 } },
        { id: '12', data: { n: 12 } },
      ]);
      assert.deepEqual(sub.events, ['started', 'data', 'data', 'data', 'stopped', 'complete']);

      const request = log.sent(mark).find((m) => m.method === 'subscription');
      assert.deepEqual(request?.params, { input: { from: 10 }, path: 'onCount' });
      const id = request!.id;
      assert.deepEqual(
        log.received(mark).filter((m) => m.id === id),
        [
          { id, result: { type: 'started' } },
          { id, result: { type: 'data', data: { id: '10', data: { n: 10 } }, id: '10' } },
          { id, result: { type: 'data', data: { id: '11', data: { n: 11 } }, id: '11' } },
          { id, result: { type: 'data', data: { id: '12', data: { n: 12 } }, id: '12' } },
          { id, result: { type: 'stopped' } },
        ],
      );
    });

    it('untracked onPlain and an erroring onErr', async () => {
      const { client } = clients.create(server);
      const plain = new SubLog<string>();
      client.onPlain.subscribe(undefined, plain.handlers);
      await plain.done('onPlain');
      assert.deepEqual(plain.data, ['a', 'b']);
      assert.equal(plain.error, undefined);

      const erring = new SubLog<string>();
      client.onErr.subscribe(undefined, erring.handlers);
      const err = await erring.failed('onErr');
      assert.deepEqual(erring.data, ['before-error']);
      assertWsError(err, { code: 'FORBIDDEN', httpStatus: 403, path: 'onErr', message: 'sub forbidden' });
    });

    it('unsubscribing from onForever sends subscription.stop and the server drops the stream', async () => {
      const { client, log } = clients.create(server);
      const before = (await withTimeout(client.streams.live.query())).onForever;
      const mark = log.mark();
      const sub = new SubLog<number>();
      const subscription = client.onForever.subscribe(undefined, sub.handlers);
      assert.deepEqual((await sub.values(2, 'onForever')).slice(0, 2), [0, 1]);
      assert.equal((await withTimeout(client.streams.live.query())).onForever, before + 1, 'one more live stream');

      subscription.unsubscribe();
      const id = log.sent(mark).find((m) => m.method === 'subscription' && m.params?.path === 'onForever')?.id;
      assert.notEqual(id, undefined);
      await waitFor(
        () => log.sent(mark).some((m) => m.method === 'subscription.stop' && m.id === id),
        'the client sends subscription.stop',
      );
      const stop = log.sent(mark).find((m) => m.method === 'subscription.stop');
      assert.deepEqual(stop, { id, method: 'subscription.stop' });
      await waitFor(
        async () => (await client.streams.live.query()).onForever === before,
        'streams.live.onForever back to its previous value',
      );
      await waitFor(
        () => log.received(mark).some((m) => m.id === id && m.result?.type === 'stopped'),
        'the server confirms with stopped',
      );
    });
  });

  describe('reconnects', () => {
    it('reconnect broadcast: the subscription resumes with lastEventId, no lost or repeated ids', async () => {
      const { client, log } = clients.create(server, { retryDelayMs: () => 50 });
      const sub = new SubLog<{ id: string; data: number }>();
      const subscription = client.onTicks.subscribe(undefined, sub.handlers);
      await sub.values(5, 'onTicks before the broadcast');
      const original = log.sent().find((m) => m.method === 'subscription');
      assert.deepEqual(original?.params, { path: 'onTicks' });

      const mark = log.mark();
      const seenBefore = sub.data.length;
      await broadcastReconnect(server);
      await waitFor(
        () => log.received(mark).some((m) => m.id === null && m.method === 'reconnect'),
        'the client got {"id":null,"method":"reconnect"}',
      );
      await sub.values(seenBefore + 15, 'onTicks after the broadcast');
      subscription.unsubscribe();

      assertConsecutive(sub.data.map((d) => d.id), 'onTicks across a reconnect broadcast', 0);
      for (const d of sub.data) assert.equal(d.data, Number(d.id), 'data matches its id');
      assert.equal(sub.error, undefined);

      const resubscribe = log.sent(mark).find((m) => m.method === 'subscription' && m.params?.path === 'onTicks');
      assert.ok(resubscribe, 'the subscription was sent again after the broadcast');
      assert.equal(resubscribe.id, original!.id, 'the same id as the original subscription');
      assert.equal(typeof resubscribe.params?.lastEventId, 'string', 'resubscribed with lastEventId');
      assert.ok(Number(resubscribe.params!.lastEventId) >= seenBefore - 1, `lastEventId ${resubscribe.params!.lastEventId}`);
      assert.ok(log.urls.length >= 2, 'a new socket was opened');
    });

    it('server drop (drop-connections): the client reconnects and resumes without loss or duplicates', async () => {
      const { client, log } = clients.create(server, { retryDelayMs: () => 50 });
      const sub = new SubLog<{ id: string; data: number }>();
      const subscription = client.onTicks.subscribe(undefined, sub.handlers);
      await sub.values(5, 'onTicks before the drop');
      const mark = log.mark();
      const seenBefore = sub.data.length;
      await dropConnections(server);
      await waitFor(() => log.closed.includes(1), 'the first socket closed');
      await sub.values(seenBefore + 15, 'onTicks after the drop');
      subscription.unsubscribe();

      assertConsecutive(sub.data.map((d) => d.id), 'onTicks across a server drop', 0);
      assert.equal(sub.error, undefined);
      const resubscribe = log.sent(mark).find((m) => m.method === 'subscription' && m.params?.path === 'onTicks');
      assert.ok(resubscribe, 'the subscription was sent again on the new socket');
      assert.equal(typeof resubscribe.params?.lastEventId, 'string', 'resubscribed with lastEventId');
      assert.ok(log.urls.length >= 2, 'a new socket was opened');
      // The subscriber saw the connection drop and come back.
      const dropped = sub.states.lastIndexOf('connecting');
      assert.ok(dropped >= 0, `connection states: ${sub.states.join(',')}`);
      assert.ok(sub.states.slice(dropped).includes('pending'), `connection states: ${sub.states.join(',')}`);
      // Queries work on the new connection.
      assert.equal(await withTimeout(client.hello.query()), 'hello world');
    });
  });

  describe('event bus (posts.add → posts.onAdd)', () => {
    it('fans out to two clients: both receive every post in order, with the ids posts.add returned', async () => {
      const a = clients.create(server);
      const b = clients.create(server);
      const base = (await withTimeout(a.client.streams.live.query())).postSubscribers;
      const subA = new SubLog<{ id: string; data: BusPost }>();
      const subB = new SubLog<{ id: string; data: BusPost }>();
      a.client.posts.onAdd.subscribe(undefined, subA.handlers);
      b.client.posts.onAdd.subscribe(undefined, subB.handlers);
      await waitFor(() => subA.count('started') > 0 && subB.count('started') > 0, 'both subscriptions started');
      await waitFor(
        async () => (await a.client.streams.live.query()).postSubscribers === base + 2,
        'two bus subscribers',
      );

      const titles = ['first', 'second', 'third'];
      const ids: string[] = [];
      for (const title of titles) ids.push((await withTimeout(a.client.posts.add.mutate({ title }))).id);
      for (let i = 1; i < ids.length; i += 1) {
        assert.ok(Number(ids[i]) > Number(ids[i - 1]), `bus ids increase: ${ids.join(',')}`);
      }
      const expected = ids.map((id, i) => ({ id, data: { title: titles[i]! } }));
      assert.deepEqual(await subA.values(3, 'client A'), expected);
      assert.deepEqual(await subB.values(3, 'client B'), expected);
    });

    it('resume: posts added while the client reconnects arrive exactly once', async () => {
      // A longer retry delay leaves a real gap between the drop and the resubscription.
      const { client, log } = clients.create(server, { retryDelayMs: () => 500 });
      const http = createTRPCClient<AppRouter>({ links: [httpLink<AppRouter>({ url: server.url })] });
      const sub = new SubLog<{ id: string; data: BusPost }>();
      const subscription = client.posts.onAdd.subscribe(undefined, sub.handlers);
      await waitFor(() => sub.count('started') > 0, 'posts.onAdd started');

      const ids = [(await withTimeout(http.posts.add.mutate({ title: 'before' }))).id];
      await sub.values(1, 'the first post');
      const mark = log.mark();
      await dropConnections(server);
      for (const title of ['gap-1', 'gap-2', 'gap-3']) ids.push((await withTimeout(http.posts.add.mutate({ title }))).id);
      assert.deepEqual(
        log.sent(mark).filter((m) => m.method === 'subscription'),
        [],
        'the posts were published before the client resubscribed',
      );
      await waitFor(() => log.sent(mark).some((m) => m.method === 'subscription'), 'resubscribed');
      const resubscribe = log.sent(mark).find((m) => m.method === 'subscription');
      assert.equal(resubscribe?.params?.lastEventId, ids[0], 'resubscribed after the last post seen');
      await sub.values(4, 'the posts of the gap');
      ids.push((await withTimeout(http.posts.add.mutate({ title: 'after' }))).id);
      await sub.values(5, 'the post after the reconnect');
      subscription.unsubscribe();

      assert.deepEqual(
        sub.data,
        ['before', 'gap-1', 'gap-2', 'gap-3', 'after'].map((title, i) => ({ id: ids[i]!, data: { title } })),
      );
    });
  });

  describe('lazy mode and keep-alive', () => {
    it('lazy: no socket before the first call, close after closeMs idle, reopen on the next call', async () => {
      const before = await wsConnections(server);
      const { client, wsClient, log } = clients.create(server, { lazy: { enabled: true, closeMs: 300 } });
      await sleep(150);
      assert.equal(log.urls.length, 0, 'no socket before the first call');
      assert.equal(wsClient.connectionState.get().state, 'idle');
      assert.equal(await wsConnections(server), before, 'the server saw no connection');

      assert.equal(await withTimeout(client.hello.query()), 'hello world');
      const answered = Date.now();
      assert.equal(log.urls.length, 1, 'the first query opened one socket');
      assert.equal(await wsConnections(server), before + 1);

      await waitFor(() => log.closed.includes(1), 'the idle socket closes', 3_000);
      const idleFor = Date.now() - answered;
      assert.ok(idleFor >= 250, `closed after ${idleFor} ms, expected about 300`);
      await waitFor(async () => (await wsConnections(server)) === before, 'the server saw the close');
      assert.equal(log.urls.length, 1, 'no reconnect after an idle close');

      assert.deepEqual(await withTimeout(client.greet.query({ name: 'again' })), { text: 'hi again', times: 1 });
      assert.equal(log.urls.length, 2, 'the next query opened a fresh socket');
    });

    it('client keepAlive: PING is answered with PONG, the connection survives 2 s of idle', async () => {
      const { client, log } = clients.create(server, { keepAlive: { enabled: true, intervalMs: 300, pongTimeoutMs: 300 } });
      assert.equal(await withTimeout(client.hello.query()), 'hello world');
      const mark = log.mark();
      await sleep(2_000);
      const pings = log.texts('c2s', mark).filter((f) => f.text === 'PING').length;
      const pongs = log.texts('s2c', mark).filter((f) => f.text === 'PONG').length;
      assert.ok(pings >= 3, `the client pinged (${pings})`);
      assert.ok(pongs >= pings - 1, `the server answered the pings (${pings} PING, ${pongs} PONG)`);
      assert.deepEqual(log.closed, [], 'no socket closed');
      assert.equal(log.urls.length, 1, 'no reconnect');
      assert.equal(await withTimeout(client.hello.query()), 'hello world');
    });
  });

});

describe('wsLink, options profile (server keep-alive: PING after 1 s idle, 1 s to answer; 16 KiB messages)', () => {
  let server: RunningServer;
  const clients = new WsClients();

  before(async () => {
    server = await startServer('options');
  }, HOOK);
  afterEach(async () => {
    await clients.closeAll();
    await waitFor(async () => (await wsConnections(server)) === 0, 'connections of the previous test closed');
  }, HOOK);
  after(async () => {
    await server?.stop();
  }, HOOK);

  it('server keep-alive: the client answers PING with PONG and stays on the same connection over 3 s idle', async () => {
    const { client, log } = clients.create(server);
    assert.equal(await withTimeout(client.hello.query()), 'hello world');
    const mark = log.mark();
    await sleep(3_000);
    const pings = log.texts('s2c', mark).filter((f) => f.text === 'PING').length;
    const pongs = log.texts('c2s', mark).filter((f) => f.text === 'PONG').length;
    assert.ok(pings >= 1, `the server pinged (${pings})`);
    assert.ok(pongs >= pings, `the client answered every ping (${pings} PING, ${pongs} PONG)`);
    assert.equal(log.urls.length, 1, 'still the first connection');
    assert.deepEqual(log.closed, [], 'no socket closed');
    assert.equal(await wsConnections(server), 1);
    assert.equal(await withTimeout(client.hello.query()), 'hello world');
  });

  it('a message just under the limit is accepted', async () => {
    const { client } = clients.create(server);
    const input = 'y'.repeat(15 * 1024);
    assert.deepEqual(await withTimeout(client.echo.query(input)), { input });
  });
});
