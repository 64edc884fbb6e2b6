/**
 * httpLink conformance (conformance-ideas.md §4 "httpLink"): the official `@trpc/client` with a
 * non-batching link against the Rust conformance server, in both server profiles.
 *
 * Every exchange goes through a recording `fetch`, so the tests assert both what the client
 * returns and what actually went over the wire.
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { createTRPCClient, httpLink, TRPCClientError, type TRPCClient } from '@trpc/client';
import type { AppRouter, Everything, GreetInput, NewPost } from '../generated/AppRouter.js';
import { startServer, type RunningServer } from './server.js';
import {
  assertClientError,
  inputParam,
  pathsOf,
  recorder,
  rejectsWithClientError,
  responseStatus,
  withTimeout,
  type Recorder, getContentType } from './harness.js';

/** Per-hook deadline: the server helper itself gives up after 20 s. */
const HOOK = { timeout: 30_000 };

/** A typed client over `httpLink` with a recording fetch and optional extra link options. */
function makeClient(
  server: RunningServer,
  rec: Recorder,
  extra: Partial<Parameters<typeof httpLink<AppRouter>>[0]> = {},
): TRPCClient<AppRouter> {
  return createTRPCClient<AppRouter>({ links: [httpLink<AppRouter>({ url: server.url, fetch: rec.fetch, ...extra })] });
}

/** The only exchange recorded since the last `clear()`. */
function single(rec: Recorder) {
  assert.equal(rec.exchanges.length, 1, `expected exactly one request, got ${rec.exchanges.length}`);
  return rec.exchanges[0]!;
}

describe('httpLink, plain profile', () => {
  let server: RunningServer;
  const rec = recorder();
  let client: TRPCClient<AppRouter>;

  before(async () => {
    server = await startServer('plain');
    client = makeClient(server, rec);
  }, HOOK);
  after(async () => {
    await server?.stop();
  }, HOOK);
  beforeEach(() => rec.clear());

  describe('requests and results', () => {
    it('query with object input: GET with url-encoded `input`, no body, no content-type', async () => {
      const out = await withTimeout(client.greet.query({ name: 'bob', times: 3 }));
      assert.deepEqual(out, { text: 'hi bob', times: 3 });

      const ex = single(rec);
      assert.equal(ex.method, 'GET');
      assert.deepEqual(pathsOf(ex.url, server.url), ['greet']);
      assert.deepEqual(inputParam(ex.url), { name: 'bob', times: 3 });
      assert.equal(ex.url.searchParams.has('batch'), false);
      assert.equal(ex.hasBody, false);
      assert.equal(ex.headers['content-type'], getContentType());
      assert.equal(ex.status, 200);
      assert.match(ex.responseHeaders?.get('content-type') ?? '', /^application\/json/);
    });

    it('query with an omitted optional field gets the server default', async () => {
      assert.deepEqual(await withTimeout(client.greet.query({ name: 'al' })), { text: 'hi al', times: 1 });
    });

    it('query without input: GET with no `input` parameter at all', async () => {
      assert.equal(await withTimeout(client.hello.query()), 'hello world');
      const ex = single(rec);
      assert.equal(ex.method, 'GET');
      assert.deepEqual(pathsOf(ex.url, server.url), ['hello']);
      assert.equal(ex.url.search, '', 'no query string at all');
      assert.equal(ex.status, 200);
    });

    it('nested router path is dotted', async () => {
      assert.deepEqual(await withTimeout(client.nested.deep.q.query()), { ok: true });
      assert.equal(single(rec).url.pathname, new URL(`${server.url}/nested.deep.q`).pathname);
    });

    it('mutation with JSON body: POST with content-type application/json', async () => {
      const out = await withTimeout(client.addPost.mutate({ title: 't1' }));
      assert.deepEqual(out, { id: 1, title: 't1' });

      const ex = single(rec);
      assert.equal(ex.method, 'POST');
      assert.deepEqual(pathsOf(ex.url, server.url), ['addPost']);
      assert.equal(ex.url.search, '');
      assert.equal(ex.headers['content-type'], 'application/json');
      assert.equal(ex.body, '{"title":"t1"}');
      assert.equal(ex.status, 200);
    });

    it('mutation without input: POST with no body but content-type set', async () => {
      assert.equal(await withTimeout(client.noInputMut.mutate()), 'done');
      const ex = single(rec);
      assert.equal(ex.method, 'POST');
      assert.equal(ex.hasBody, false, 'no request body');
      assert.equal(ex.headers['content-type'], 'application/json');
      assert.equal(ex.status, 200);
    });

    it('echo: query without input yields {} (no `input` key), with input echoes it', async () => {
      const none = await withTimeout(client.echo.query());
      assert.deepEqual(none, {});
      assert.equal('input' in none, false);

      const value = { a: [1, 'x', null, { b: true }], s: 'é ✓ "quoted" & ?=' };
      assert.deepEqual(await withTimeout(client.echo.query(value)), { input: value });
    });

    it('echoMut: mutation with and without input', async () => {
      assert.deepEqual(await withTimeout(client.echoMut.mutate([1, 2, 3])), { input: [1, 2, 3] });
      assert.deepEqual(await withTimeout(client.echoMut.mutate()), {});
      // Documented oxrpc difference (tests/src/lib.rs): `null` and "no input" are both `None`.
      assert.deepEqual(await withTimeout(client.echoMut.mutate(null)), {});
    });

    it('a long GET (60 KiB of input in the URL) is accepted (protocol §1.4: ideally ~64 KiB)', async () => {
      const long = 'x'.repeat(60 * 1024);
      assert.deepEqual(await withTimeout(client.echo.query(long)), { input: long });
      assert.ok(single(rec).url.href.length > 60 * 1024);
    });

    it('a 100 KiB mutation body is accepted (plain profile allows 2 MiB)', async () => {
      const big = 'y'.repeat(100 * 1024);
      assert.deepEqual(await withTimeout(client.echoMut.mutate({ big })), { input: { big } });
    });
  });

  describe('error surface', () => {
    it('NOT_FOUND thrown by a procedure', async () => {
      const err = await rejectsWithClientError(client.notFound.query(), 'notFound');
      assertClientError(err, { code: 'NOT_FOUND', httpStatus: 404, path: 'notFound', message: 'thing not found' });
      assert.equal(err.data?.stack, undefined, 'no stack outside dev mode');
      assert.equal(single(rec).status, 404);
    });

    it('UNAUTHORIZED without a message uses the code key as message', async () => {
      const err = await rejectsWithClientError(client.unauthorized.query(), 'unauthorized');
      assertClientError(err, { code: 'UNAUTHORIZED', httpStatus: 401, path: 'unauthorized', message: 'UNAUTHORIZED' });
    });

    it('NOT_IMPLEMENTED shares JSON-RPC -32603 but keeps its data.code and HTTP 501', async () => {
      const err = await rejectsWithClientError(client.notImpl.query(), 'notImpl');
      assertClientError(err, { code: 'NOT_IMPLEMENTED', httpStatus: 501, path: 'notImpl', message: 'nope' });
    });

    it('a panicking procedure gives INTERNAL_SERVER_ERROR without leaking the panic text', async () => {
      const err = await rejectsWithClientError(client.boom.query(), 'boom');
      assertClientError(err, {
        code: 'INTERNAL_SERVER_ERROR',
        httpStatus: 500,
        path: 'boom',
        message: 'Internal server error',
      });
      assert.equal(err.data?.stack, undefined, 'no stack outside dev mode');
      const body = single(rec).responseBody ?? '';
      assert.ok(!body.includes('kaboom'), `panic text leaked: ${body}`);
    });

    it('wrong input type → BAD_REQUEST with the path', async () => {
      const bad = { name: 5 } as unknown as GreetInput;
      const err = await rejectsWithClientError(client.greet.query(bad), 'greet(bad)');
      assertClientError(err, { code: 'BAD_REQUEST', httpStatus: 400, path: 'greet' });
    });

    it('missing required input → BAD_REQUEST', async () => {
      const err = await rejectsWithClientError(
        client.greet.query(undefined as unknown as GreetInput),
        'greet(undefined)',
      );
      assertClientError(err, { code: 'BAD_REQUEST', httpStatus: 400, path: 'greet' });
    });

    it('validation failure inside a mutation → BAD_REQUEST', async () => {
      const err = await rejectsWithClientError(client.addPost.mutate({ title: '' }), 'addPost(empty)');
      assertClientError(err, { code: 'BAD_REQUEST', httpStatus: 400, path: 'addPost' });
      const missing = await rejectsWithClientError(client.addPost.mutate({} as NewPost), 'addPost({})');
      assertClientError(missing, { code: 'BAD_REQUEST', httpStatus: 400, path: 'addPost' });
    });

    it('unknown procedure → NOT_FOUND 404', async () => {
      const untyped = client as unknown as { nope: { query(): Promise<unknown> } };
      const err = await rejectsWithClientError(untyped.nope.query(), 'nope');
      assertClientError(err, {
        code: 'NOT_FOUND',
        httpStatus: 404,
        path: 'nope',
        message: 'No procedure found on path "nope"',
      });
    });

    it('calling a mutation as a query → METHOD_NOT_SUPPORTED 405', async () => {
      const untyped = client as unknown as { addPost: { query(input: NewPost): Promise<unknown> } };
      const err = await rejectsWithClientError(untyped.addPost.query({ title: 'x' }), 'addPost as query');
      assertClientError(err, { code: 'METHOD_NOT_SUPPORTED', httpStatus: 405, path: 'addPost' });
      assert.equal(single(rec).method, 'GET');
    });

    it('calling a query as a mutation → METHOD_NOT_SUPPORTED 405 (no method override on plain)', async () => {
      const untyped = client as unknown as { hello: { mutate(): Promise<unknown> } };
      const err = await rejectsWithClientError(untyped.hello.mutate(), 'hello as mutation');
      assertClientError(err, { code: 'METHOD_NOT_SUPPORTED', httpStatus: 405, path: 'hello' });
    });

    it('isTRPCClientError-style checks: instanceof and the original Response', async () => {
      const err = await rejectsWithClientError(client.notFound.query(), 'notFound');
      assert.ok(err instanceof TRPCClientError);
      assert.equal(responseStatus(err), 404);
      assert.equal(err.name, 'TRPCClientError');
    });
  });

  describe('context', () => {
    it('custom headers reach createContext (object form)', async () => {
      const authed = makeClient(server, rec, { headers: { authorization: 'Bearer t0k' } });
      assert.deepEqual(await withTimeout(authed.ctx.query()), { connectionParams: null, hasAuth: 'Bearer t0k' });
      assert.equal(single(rec).headers['authorization'], 'Bearer t0k');
    });

    it('custom headers reach createContext (async function form)', async () => {
      const authed = makeClient(server, rec, { headers: async () => ({ authorization: 'Bearer fn' }) });
      assert.deepEqual(await withTimeout(authed.ctx.query()), { connectionParams: null, hasAuth: 'Bearer fn' });
    });

    it('without headers the context sees no authorization', async () => {
      assert.deepEqual(await withTimeout(client.ctx.query()), { connectionParams: null, hasAuth: null });
    });

    it('a failing createContext (x-fail-context) fails the call with FORBIDDEN', async () => {
      const refused = makeClient(server, rec, { headers: { 'x-fail-context': '1' } });
      const q = await rejectsWithClientError(refused.hello.query(), 'hello with x-fail-context');
      assertClientError(q, { code: 'FORBIDDEN', httpStatus: 403, message: 'context refused by x-fail-context' });
      const m = await rejectsWithClientError(refused.addPost.mutate({ title: 'x' }), 'addPost with x-fail-context');
      assertClientError(m, { code: 'FORBIDDEN', httpStatus: 403, message: 'context refused by x-fail-context' });
    });
  });

  describe('methodOverride', () => {
    it("methodOverride: 'POST' is refused by a server without method override (405)", async () => {
      const mo = makeClient(server, rec, { methodOverride: 'POST' });
      const err = await rejectsWithClientError(mo.greet.query({ name: 'mo' }), 'greet via POST');
      assertClientError(err, { code: 'METHOD_NOT_SUPPORTED', httpStatus: 405, path: 'greet' });
      const ex = single(rec);
      assert.equal(ex.method, 'POST');
      assert.equal(ex.body, '{"name":"mo"}');
    });
  });

  describe('abort', () => {
    it('aborting a slow query via `signal` rejects quickly, and the server keeps serving', async () => {
      const controller = new AbortController();
      const started = performance.now();
      const pending = client.slow.query(2000, { signal: controller.signal });
      setTimeout(() => controller.abort(), 50);
      const err = await rejectsWithClientError(pending, 'aborted slow');
      const elapsed = performance.now() - started;
      assert.ok(elapsed < 1000, `abort took ${Math.round(elapsed)} ms`);
      // The client wraps the fetch AbortError; no server answer is involved.
      assert.equal(err.cause?.name, 'AbortError');
      assert.equal(err.data, undefined, 'a local abort carries no server error data');
      assert.equal(await withTimeout(client.hello.query()), 'hello world');
    });

    it('the same slow query without abort completes', async () => {
      assert.deepEqual(await withTimeout(client.slow.query(30)), { waited: 30 });
    });
  });

  describe('types.* round trips', () => {
    it('types.sample: every wire type arrives as the .d.ts declares', async () => {
      const s = await withTimeout(client.types.sample.query());
      assert.equal(s.bigSigned, -9_007_199_254_740_991);
      assert.equal(s.bigUnsigned, 9_007_199_254_740_991);
      assert.equal(s.bigSigned, Number.MIN_SAFE_INTEGER);
      assert.equal(s.bigUnsigned, Number.MAX_SAFE_INTEGER);
      assert.equal(s.ratio, 0.5);
      assert.equal(s.flag, true);
      assert.equal(s.at, '2024-01-02T03:04:05Z');
      assert.equal(new Date(s.at).toISOString(), '2024-01-02T03:04:05.000Z');
      assert.equal(s.id, '01234567-89ab-cdef-0123-456789abcdef');
      assert.deepEqual(s.extra, { nested: [1, 'two', null, { three: 3.5 }] });
      assert.equal(s.maybe, null);
      assert.equal('nickname' in s, false, 'None with skip_serializing_if is an absent key');
      assert.deepEqual(s.tags, ['a', 'b']);
      assert.deepEqual(s.scores, { x: 1 });
      assert.equal(s.role, 'admin');
      assert.deepEqual(s.shape, { kind: 'rect', w: 2, h: 3 });
      assert.deepEqual(s.pair, [7, 'seven']);
      assert.deepEqual(Object.keys(s).sort(), [
        'at', 'bigSigned', 'bigUnsigned', 'extra', 'flag', 'id', 'maybe', 'pair', 'ratio', 'role', 'scores', 'shape', 'tags',
      ]);
    });

    /** A value built on the client, exercising the other variants (member, circle, nickname). */
    const built: Everything = {
      bigSigned: Number.MAX_SAFE_INTEGER,
      bigUnsigned: 0,
      ratio: -1.25e-7,
      flag: false,
      at: '1999-12-31T23:59:59.123Z',
      id: 'ffffffff-0000-4000-8000-123456789abc',
      extra: [true, { k: ['v', 1.5, null] }, 'ü'],
      maybe: 'present',
      nickname: 'nick',
      tags: [],
      scores: { a: 0, b: 4_294_967_295 },
      role: 'member',
      shape: { kind: 'circle', radius: 0.75 },
      pair: [255, ''],
    };

    it('types.roundTrip returns a client-built value unchanged (with nickname)', async () => {
      const out = await withTimeout(client.types.roundTrip.mutate(built));
      // chrono re-serializes the timestamp in its own RFC 3339 form; the instant must be the same.
      assert.equal(new Date(out.at).getTime(), new Date(built.at).getTime());
      assert.deepEqual({ ...out, at: built.at }, built);
    });

    it('types.roundTrip without nickname: the key stays absent', async () => {
      const { nickname: _dropped, ...withoutNickname } = built;
      const input: Everything = { ...withoutNickname, at: '2024-01-02T03:04:05Z' };
      const out = await withTimeout(client.types.roundTrip.mutate(input));
      assert.deepEqual(out, input);
      assert.equal('nickname' in out, false);
    });

    it('types.roundTrip rejects values outside the Rust types (BAD_REQUEST)', async () => {
      const badRole = { ...built, role: 'root' } as unknown as Everything;
      assertClientError(await rejectsWithClientError(client.types.roundTrip.mutate(badRole), 'bad role'), {
        code: 'BAD_REQUEST',
        httpStatus: 400,
        path: 'types.roundTrip',
      });
      const negativeUnsigned = { ...built, bigUnsigned: -1 };
      assertClientError(await rejectsWithClientError(client.types.roundTrip.mutate(negativeUnsigned), 'u64 -1'), {
        code: 'BAD_REQUEST',
        httpStatus: 400,
        path: 'types.roundTrip',
      });
      const badPair = { ...built, pair: [256, 'x'] as [number, string] };
      assertClientError(await rejectsWithClientError(client.types.roundTrip.mutate(badPair), 'u8 256'), {
        code: 'BAD_REQUEST',
        httpStatus: 400,
        path: 'types.roundTrip',
      });
    });

    it('types.nothing resolves to undefined (wire `{"result":{}}`)', async () => {
      const out = await withTimeout(client.types.nothing.mutate('anything'));
      assert.equal(out, undefined);
      assert.equal(single(rec).responseBody, '{"result":{}}');
    });

    it('types.optional: no argument → null, 1 → 2, null → null', async () => {
      assert.equal(await withTimeout(client.types.optional.query()), null);
      assert.equal(rec.exchanges[0]?.url.searchParams.has('input'), false);
      assert.equal(await withTimeout(client.types.optional.query(1)), 2);
      assert.equal(await withTimeout(client.types.optional.query(null)), null);
    });

    it('types.shapes: a list of tagged enums', async () => {
      assert.deepEqual(await withTimeout(client.types.shapes.query()), [
        { kind: 'circle', radius: 1 },
        { kind: 'rect', w: 1, h: 2 },
      ]);
    });
  });
});

describe('httpLink, options profile (method override, dev mode, 64 KiB body limit)', () => {
  let server: RunningServer;
  const rec = recorder();
  let client: TRPCClient<AppRouter>;

  before(async () => {
    server = await startServer('options');
    client = makeClient(server, rec);
  }, HOOK);
  after(async () => {
    await server?.stop();
  }, HOOK);
  beforeEach(() => rec.clear());

  it("methodOverride: 'POST' sends queries as POST with a JSON body, and the server accepts them", async () => {
    const mo = makeClient(server, rec, { methodOverride: 'POST' });
    assert.deepEqual(await withTimeout(mo.greet.query({ name: 'mo' })), { text: 'hi mo', times: 1 });
    const withInput = single(rec);
    assert.equal(withInput.method, 'POST');
    assert.equal(withInput.url.search, '');
    assert.equal(withInput.headers['content-type'], 'application/json');
    assert.equal(withInput.body, '{"name":"mo"}');

    rec.clear();
    assert.equal(await withTimeout(mo.hello.query()), 'hello world');
    const noInput = single(rec);
    assert.equal(noInput.method, 'POST');
    assert.equal(noInput.hasBody, false);
    assert.equal(noInput.headers['content-type'], 'application/json');

    rec.clear();
    assert.deepEqual(await withTimeout(mo.addPost.mutate({ title: 'still a mutation' })), {
      id: 1,
      title: 'still a mutation',
    });
    assert.equal(single(rec).method, 'POST');
  });

  it('GET queries still work with method override enabled', async () => {
    assert.equal(await withTimeout(client.hello.query()), 'hello world');
    assert.equal(single(rec).method, 'GET');
  });

  it('a mutation can still not be called with GET, even with method override on the server', async () => {
    const untyped = client as unknown as { addPost: { query(input: NewPost): Promise<unknown> } };
    const err = await rejectsWithClientError(untyped.addPost.query({ title: 'x' }), 'addPost as query');
    assertClientError(err, { code: 'METHOD_NOT_SUPPORTED', httpStatus: 405, path: 'addPost' });
  });

  it('dev mode: a panic carries its cause in data.stack, the message stays generic', async () => {
    const err = await rejectsWithClientError(client.boom.query(), 'boom');
    assertClientError(err, { code: 'INTERNAL_SERVER_ERROR', httpStatus: 500, path: 'boom', message: 'Internal server error' });
    assert.equal(typeof err.data?.stack, 'string');
    assert.match(err.data?.stack ?? '', /kaboom/);
  });

  it('PAYLOAD_TOO_LARGE for a mutation body over 64 KiB, then normal calls still work', async () => {
    const big = 'z'.repeat(70 * 1024);
    const err = await rejectsWithClientError(client.echoMut.mutate({ big }), 'big echoMut');
    assertClientError(err, { code: 'PAYLOAD_TOO_LARGE', httpStatus: 413 });
    assert.equal(single(rec).status, 413);

    assert.equal(await withTimeout(client.hello.query()), 'hello world');
    const small = 'z'.repeat(1024);
    assert.deepEqual(await withTimeout(client.echoMut.mutate({ small })), { input: { small } });
  });
});
