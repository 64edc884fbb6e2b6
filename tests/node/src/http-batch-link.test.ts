/**
 * httpBatchLink conformance (conformance-ideas.md §4 "httpBatchLink") plus raw-fetch probes of the
 * wire edges the official client never produces (tRPC's rawFetch, issue-4673 `%2C`, issue-4783
 * charset tests, HEAD, vary, nesting limits, malformed input).
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { createTRPCClient, httpBatchLink, type TRPCClient } from '@trpc/client';
import type { AppRouter, GreetInput } from '../generated/AppRouter.js';
import { startServer, type RunningServer } from './server.js';
import {
  assertClientError,
  assertErrorEnvelope,
  inputParam,
  JSONRPC,
  pathsOf,
  raw,
  recorder,
  rejectsWithClientError,
  withTimeout,
  type Exchange,
  type Recorder, getContentType } from './harness.js';

/** Per-hook deadline: the server helper itself gives up after 20 s. */
const HOOK = { timeout: 30_000 };

/** A typed client over `httpBatchLink` with a recording fetch and optional extra link options. */
function makeClient(
  server: RunningServer,
  rec: Recorder,
  extra: Partial<Parameters<typeof httpBatchLink<AppRouter>>[0]> = {},
): TRPCClient<AppRouter> {
  return createTRPCClient<AppRouter>({
    links: [httpBatchLink<AppRouter>({ url: server.url, fetch: rec.fetch, ...extra })],
  });
}

/** Settles all promises with one shared deadline. */
function settleAll<T extends readonly unknown[]>(
  promises: { [K in keyof T]: Promise<T[K]> },
): Promise<{ [K in keyof T]: PromiseSettledResult<T[K]> }> {
  return withTimeout(Promise.allSettled(promises) as Promise<{ [K in keyof T]: PromiseSettledResult<T[K]> }>);
}

/** The value of a fulfilled result (fails the test on a rejection). */
function fulfilled<T>(result: PromiseSettledResult<T>): T {
  if (result.status === 'rejected') assert.fail(`expected success, got ${String(result.reason)}`);
  return result.value;
}

/** The only exchange recorded since the last `clear()`. */
function single(rec: Recorder): Exchange {
  assert.equal(rec.exchanges.length, 1, `expected exactly one request, got ${rec.exchanges.length}`);
  return rec.exchanges[0]!;
}

/** Parses a raw batch response body (a JSON array of envelopes). */
function batchBody(body: unknown): Array<{ result?: { data?: unknown }; error?: unknown }> {
  assert.ok(Array.isArray(body), `expected a JSON array, got ${JSON.stringify(body)}`);
  return body as Array<{ result?: { data?: unknown }; error?: unknown }>;
}

describe('httpBatchLink, plain profile', () => {
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

  describe('batching', () => {
    it('3 queries in one tick → one GET, comma-joined paths, index-keyed input, 207 for mixed results', async () => {
      const [hello, greet, notFound] = await settleAll([
        client.hello.query(),
        client.greet.query({ name: 'al', times: 2 }),
        client.notFound.query(),
      ]);

      const ex = single(rec);
      assert.equal(ex.method, 'GET');
      assert.deepEqual(pathsOf(ex.url, server.url), ['hello', 'greet', 'notFound']);
      assert.ok(ex.url.pathname.endsWith('/hello,greet,notFound'), 'literal commas in the path');
      assert.equal(ex.url.searchParams.get('batch'), '1');
      assert.deepEqual(inputParam(ex.url), { 1: { name: 'al', times: 2 } });
      assert.equal(ex.headers['content-type'], getContentType());
      assert.equal(ex.status, 207);

      assert.equal(fulfilled(hello), 'hello world');
      assert.deepEqual(fulfilled(greet), { text: 'hi al', times: 2 });
      assert.equal(notFound.status, 'rejected');
      const err = await rejectsWithClientError(Promise.reject(notFound.reason), 'notFound in batch');
      assertClientError(err, { code: 'NOT_FOUND', httpStatus: 404, path: 'notFound', message: 'thing not found', responseStatus: 207 });
    });

    it('all-success batch → 200, and `input={}` is still sent when no call has input', async () => {
      const [a, b] = await settleAll([client.hello.query(), client.nested.deep.q.query()]);
      assert.equal(fulfilled(a), 'hello world');
      assert.deepEqual(fulfilled(b), { ok: true });
      const ex = single(rec);
      assert.deepEqual(pathsOf(ex.url, server.url), ['hello', 'nested.deep.q']);
      assert.deepEqual(inputParam(ex.url), {});
      assert.equal(ex.status, 200);
    });

    it('a batch whose items all fail with the same status gets that status (404)', async () => {
      const results = await settleAll([client.notFound.query(), client.notFound.query()]);
      for (const r of results) assert.equal(r.status, 'rejected');
      assert.equal(single(rec).status, 404);
    });

    it('different errors in one batch → 207, each delivered to its own promise', async () => {
      const [nf, ua, ni] = await settleAll([client.notFound.query(), client.unauthorized.query(), client.notImpl.query()]);
      assert.equal(single(rec).status, 207);
      const errors = await Promise.all(
        [nf, ua, ni].map((r, i) => rejectsWithClientError(Promise.reject((r as PromiseRejectedResult).reason), `item ${i}`)),
      );
      assertClientError(errors[0]!, { code: 'NOT_FOUND', httpStatus: 404, path: 'notFound', responseStatus: 207 });
      assertClientError(errors[1]!, { code: 'UNAUTHORIZED', httpStatus: 401, path: 'unauthorized', responseStatus: 207 });
      assertClientError(errors[2]!, { code: 'NOT_IMPLEMENTED', httpStatus: 501, path: 'notImpl', responseStatus: 207 });
    });

    it('one call failing input validation does not affect the others in the batch', async () => {
      const bad = { name: 5 } as unknown as GreetInput;
      const [ok, invalid, hello] = await settleAll([
        client.greet.query({ name: 'ok' }),
        client.greet.query(bad),
        client.hello.query(),
      ]);
      const ex = single(rec);
      assert.deepEqual(inputParam(ex.url), { 0: { name: 'ok' }, 1: { name: 5 } });
      assert.equal(ex.status, 207);
      assert.deepEqual(fulfilled(ok), { text: 'hi ok', times: 1 });
      assert.equal(fulfilled(hello), 'hello world');
      const err = await rejectsWithClientError(Promise.reject((invalid as PromiseRejectedResult).reason), 'invalid greet');
      assertClientError(err, { code: 'BAD_REQUEST', httpStatus: 400, path: 'greet', responseStatus: 207 });
    });

    it('2 mutations in one tick → one POST with an index-keyed JSON body (undefined input omitted)', async () => {
      const [post, done] = await settleAll([client.addPost.mutate({ title: 'm1' }), client.noInputMut.mutate()]);
      assert.deepEqual(fulfilled(post), { id: 1, title: 'm1' });
      assert.equal(fulfilled(done), 'done');

      const ex = single(rec);
      assert.equal(ex.method, 'POST');
      assert.deepEqual(pathsOf(ex.url, server.url), ['addPost', 'noInputMut']);
      assert.equal(ex.url.searchParams.get('batch'), '1');
      assert.equal(ex.url.searchParams.has('input'), false);
      assert.equal(ex.headers['content-type'], 'application/json');
      assert.deepEqual(JSON.parse(ex.body ?? 'null'), { 0: { title: 'm1' } });
      assert.equal(ex.status, 200);
    });

    it('mutations with mixed outcomes → 207', async () => {
      const [ok, bad] = await settleAll([client.addPost.mutate({ title: 'a' }), client.addPost.mutate({ title: '' })]);
      assert.deepEqual(fulfilled(ok), { id: 1, title: 'a' });
      const err = await rejectsWithClientError(Promise.reject((bad as PromiseRejectedResult).reason), 'empty title');
      assertClientError(err, { code: 'BAD_REQUEST', httpStatus: 400, path: 'addPost', responseStatus: 207 });
      assert.equal(single(rec).status, 207);
    });

    it('queries and mutations in the same tick go in separate requests', async () => {
      const [q, m] = await settleAll([client.hello.query(), client.noInputMut.mutate()]);
      assert.equal(fulfilled(q), 'hello world');
      assert.equal(fulfilled(m), 'done');
      assert.deepEqual(rec.exchanges.map((e) => e.method).sort(), ['GET', 'POST']);
    });

    it('undefined outputs and optional inputs inside a batch (issue-2540)', async () => {
      const [nothing, none, one] = await settleAll([
        client.types.nothing.mutate('x'),
        client.types.optional.query(),
        client.types.optional.query(1),
      ]);
      assert.equal(fulfilled(nothing), undefined);
      assert.equal(fulfilled(none), null);
      assert.equal(fulfilled(one), 2);
      const mutation = rec.exchanges.find((e) => e.method === 'POST');
      assert.deepEqual(batchBody(JSON.parse(mutation?.responseBody ?? 'null')), [{ result: {} }]);
    });

    it('custom headers reach the context once per batch', async () => {
      const authed = makeClient(server, rec, { headers: { authorization: 'Bearer batch' } });
      const [a, b] = await settleAll([authed.ctx.query(), authed.ctx.query()]);
      assert.deepEqual(fulfilled(a), { connectionParams: null, hasAuth: 'Bearer batch' });
      assert.deepEqual(fulfilled(b), { connectionParams: null, hasAuth: 'Bearer batch' });
      assert.equal(single(rec).headers['authorization'], 'Bearer batch');
    });

    it('a failing createContext fails every call of the batch with FORBIDDEN', async () => {
      const refused = makeClient(server, rec, { headers: { 'x-fail-context': '1' } });
      const results = await settleAll([refused.hello.query(), refused.greet.query({ name: 'x' })]);
      assert.equal(single(rec).status, 403);
      for (const [i, r] of results.entries()) {
        const err = await rejectsWithClientError(Promise.reject((r as PromiseRejectedResult).reason), `item ${i}`);
        assertClientError(err, { code: 'FORBIDDEN', httpStatus: 403, message: 'context refused by x-fail-context' });
      }
    });
  });

  describe('client-side limits', () => {
    /**
     * The spec's 120 split two 10-character-name greets with base `http://127.0.0.1:3100`: the client
     * compares the full URL (base included) with `maxURLLength`, so shift it by our base's length.
     */
    const specBase = 'http://127.0.0.1:3100';
    const maxURLLength = (base: string): number => 120 - specBase.length + base.length;

    it('maxURLLength splits a batch that would be too long into separate requests', async () => {
      const limited = makeClient(server, rec, { maxURLLength: maxURLLength(server.url) });
      const [a, b] = await settleAll([
        limited.greet.query({ name: 'aaaaaaaaaa' }),
        limited.greet.query({ name: 'bbbbbbbbbb' }),
      ]);
      assert.deepEqual(fulfilled(a), { text: 'hi aaaaaaaaaa', times: 1 });
      assert.deepEqual(fulfilled(b), { text: 'hi bbbbbbbbbb', times: 1 });

      assert.equal(rec.exchanges.length, 2, 'two requests');
      const inputs = rec.exchanges.map((e) => {
        assert.deepEqual(pathsOf(e.url, server.url), ['greet']);
        assert.equal(e.url.searchParams.get('batch'), '1');
        assert.ok(e.url.href.length <= maxURLLength(server.url));
        return inputParam(e.url);
      });
      assert.deepEqual(
        inputs.map((i) => JSON.stringify(i)).sort(),
        [{ 0: { name: 'aaaaaaaaaa' } }, { 0: { name: 'bbbbbbbbbb' } }].map((i) => JSON.stringify(i)),
      );
    });

    it('a generous maxURLLength keeps the same two calls in one request', async () => {
      const roomy = makeClient(server, rec, { maxURLLength: maxURLLength(server.url) + 100 });
      await settleAll([roomy.greet.query({ name: 'aaaaaaaaaa' }), roomy.greet.query({ name: 'bbbbbbbbbb' })]);
      assert.deepEqual(pathsOf(single(rec).url, server.url), ['greet', 'greet']);
    });

    it('a single input longer than maxURLLength is rejected locally, nothing is sent', async () => {
      const limited = makeClient(server, rec, { maxURLLength: maxURLLength(server.url) });
      const err = await rejectsWithClientError(limited.greet.query({ name: 'x'.repeat(200) }), 'oversized greet');
      assert.match(err.message, /Input is too big for a single dispatch/);
      assert.equal(rec.exchanges.length, 0, 'no request sent');
      // The same client still works for inputs that fit.
      assert.deepEqual(await withTimeout(limited.greet.query({ name: 'fits' })), { text: 'hi fits', times: 1 });
    });

    it('maxItems: 1 → one request per call', async () => {
      const one = makeClient(server, rec, { maxItems: 1 });
      const [a, b] = await settleAll([one.hello.query(), one.hello.query()]);
      assert.equal(fulfilled(a), 'hello world');
      assert.equal(fulfilled(b), 'hello world');
      assert.equal(rec.exchanges.length, 2);
      for (const e of rec.exchanges) {
        assert.deepEqual(pathsOf(e.url, server.url), ['hello']);
        assert.equal(e.url.searchParams.get('batch'), '1');
        assert.deepEqual(inputParam(e.url), {});
        assert.equal(e.status, 200);
      }
    });
  });

  describe('raw HTTP probes', () => {
    it('an encoded comma (%2C) in the path separates batch paths (issue-4673)', async () => {
      const res = await raw(`${server.url}/hello%2Cnested.deep.q?batch=1`);
      assert.equal(res.status, 200);
      assert.deepEqual(res.json, [{ result: { data: 'hello world' } }, { result: { data: { ok: true } } }]);
    });

    it('raw `?batch=1&input=` with unencoded JSON is accepted (rawFetch.test)', async () => {
      const res = await raw(`${server.url}/greet,hello?batch=1&input={"0":{"name":"raw"}}`);
      assert.equal(res.status, 200);
      assert.deepEqual(res.json, [{ result: { data: { text: 'hi raw', times: 1 } } }, { result: { data: 'hello world' } }]);
    });

    it('`batch` must be exactly "1": a non-batch call with batch=0 answers a single envelope', async () => {
      const res = await raw(`${server.url}/hello?batch=0`);
      assert.equal(res.status, 200);
      assert.deepEqual(res.json, { result: { data: 'hello world' } });
    });

    it('content-type `application/json; charset=utf-8` is accepted (issue-4783)', async () => {
      const res = await raw(`${server.url}/addPost`, {
        method: 'POST',
        headers: { 'content-type': 'application/json; charset=utf-8' },
        body: JSON.stringify({ title: 'charset ✓' }),
      });
      assert.equal(res.status, 200);
      assert.deepEqual(res.json, { result: { data: { id: 1, title: 'charset ✓' } } });

      const batched = await raw(`${server.url}/addPost,addPost?batch=1`, {
        method: 'POST',
        headers: { 'content-type': 'Application/JSON;charset=UTF-8' },
        body: JSON.stringify({ 0: { title: 'a' }, 1: { title: 'b' } }),
      });
      assert.equal(batched.status, 200);
      assert.equal(batchBody(batched.json).length, 2);
    });

    it('a POST with an unsupported content-type → 415 UNSUPPORTED_MEDIA_TYPE', async () => {
      const res = await raw(`${server.url}/addPost`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: 'title=x',
      });
      assert.equal(res.status, 415);
      const error = assertErrorEnvelope(res.json, 'UNSUPPORTED_MEDIA_TYPE', 415);
      assert.equal(error.code, JSONRPC.UNSUPPORTED_MEDIA_TYPE);
    });

    it('HEAD → 204 with an empty body', async () => {
      const res = await raw(`${server.url}/hello`, { method: 'HEAD' });
      assert.equal(res.status, 204);
      assert.equal(res.text, '');
    });

    it('JSON responses carry `vary: trpc-accept, accept` and content-type application/json', async () => {
      for (const url of [`${server.url}/hello`, `${server.url}/notFound`, `${server.url}/hello,notFound?batch=1&input=%7B%7D`]) {
        const res = await raw(url);
        const vary = (res.headers.get('vary') ?? '').toLowerCase().split(',').map((s) => s.trim());
        assert.ok(vary.includes('trpc-accept') && vary.includes('accept'), `vary on ${url}: ${res.headers.get('vary')}`);
        assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
      }
    });

    it('GET to a mutation → 405 METHOD_NOT_SUPPORTED', async () => {
      const res = await raw(`${server.url}/addPost?input=${encodeURIComponent(JSON.stringify({ title: 'x' }))}`);
      assert.equal(res.status, 405);
      const error = assertErrorEnvelope(res.json, 'METHOD_NOT_SUPPORTED', 405);
      assert.equal(error.code, JSONRPC.METHOD_NOT_SUPPORTED);
      assert.equal(error.data.path, 'addPost');
    });

    it('mixing queries and mutations in one batch → 400 single error object', async () => {
      const res = await raw(`${server.url}/hello,addPost?batch=1`);
      assert.equal(res.status, 400);
      assert.ok(!Array.isArray(res.json));
      assertErrorEnvelope(res.json, 'BAD_REQUEST', 400);
    });

    it('deeply nested JSON input (10 000 `[`) → 400, and the server keeps answering', async () => {
      const deep = '['.repeat(10_000);
      const get = await raw(`${server.url}/echo?input=${encodeURIComponent(deep)}`);
      assert.equal(get.status, 400);
      assert.equal((get.json as { error: { data: { httpStatus: number } } }).error.data.httpStatus, 400);

      const post = await raw(`${server.url}/echoMut`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: `${'['.repeat(10_000)}${']'.repeat(10_000)}`,
      });
      assert.equal(post.status, 400);

      const hello = await raw(`${server.url}/hello`);
      assert.equal(hello.status, 200);
      assert.deepEqual(hello.json, { result: { data: 'hello world' } });
    });

    it('malformed JSON input → PARSE_ERROR (400)', async () => {
      const res = await raw(`${server.url}/greet?input=%7Bnotjson`);
      assert.equal(res.status, 400);
      const error = assertErrorEnvelope(res.json, 'PARSE_ERROR', 400);
      assert.equal(error.code, JSONRPC.PARSE_ERROR);

      const body = await raw(`${server.url}/addPost`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"title":',
      });
      assert.equal(body.status, 400);
      assertErrorEnvelope(body.json, 'PARSE_ERROR', 400);
    });

    it('unknown path → 404 NOT_FOUND, also inside a batch', async () => {
      const res = await raw(`${server.url}/doesNotExist`);
      assert.equal(res.status, 404);
      const error = assertErrorEnvelope(res.json, 'NOT_FOUND', 404);
      assert.equal(error.message, 'No procedure found on path "doesNotExist"');
      assert.equal(error.data.path, 'doesNotExist');

      const batch = await raw(`${server.url}/hello,doesNotExist?batch=1&input=%7B%7D`);
      assert.equal(batch.status, 207);
      const [first, second] = batchBody(batch.json);
      assert.deepEqual(first, { result: { data: 'hello world' } });
      assertErrorEnvelope(second, 'NOT_FOUND', 404);
    });
  });
});

describe('httpBatchLink, options profile (maxBatchSize 2, method override)', () => {
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

  it('a batch within maxBatchSize succeeds', async () => {
    const [a, b] = await settleAll([client.hello.query(), client.greet.query({ name: 'two' })]);
    assert.equal(fulfilled(a), 'hello world');
    assert.deepEqual(fulfilled(b), { text: 'hi two', times: 1 });
    assert.equal(single(rec).status, 200);
  });

  it('3 calls > maxBatchSize 2 → a single error object, handed to every op as BAD_REQUEST', async () => {
    const results = await settleAll([client.hello.query(), client.hello.query(), client.greet.query({ name: 'x' })]);
    const ex = single(rec);
    assert.equal(ex.status, 400);
    const body: unknown = JSON.parse(ex.responseBody ?? 'null');
    assert.ok(!Array.isArray(body), 'request-level error is one object, not an array');
    assertErrorEnvelope(body, 'BAD_REQUEST', 400);

    for (const [i, r] of results.entries()) {
      const err = await rejectsWithClientError(Promise.reject((r as PromiseRejectedResult).reason), `op ${i}`);
      assertClientError(err, { code: 'BAD_REQUEST', httpStatus: 400, path: null, message: /^Batch call exceeds maximum size/ });
    }
  });

  it('maxItems: 2 on the client keeps batches within the server limit', async () => {
    const capped = makeClient(server, rec, { maxItems: 2 });
    const results = await settleAll([capped.hello.query(), capped.hello.query(), capped.nested.deep.q.query()]);
    assert.deepEqual(results.map((r) => fulfilled<unknown>(r)), ['hello world', 'hello world', { ok: true }]);
    assert.equal(rec.exchanges.length, 2);
  });

  it("methodOverride: 'POST' batches queries into one POST", async () => {
    const mo = makeClient(server, rec, { methodOverride: 'POST' });
    const [a, b] = await settleAll([mo.hello.query(), mo.greet.query({ name: 'mo2' })]);
    assert.equal(fulfilled(a), 'hello world');
    assert.deepEqual(fulfilled(b), { text: 'hi mo2', times: 1 });
    const ex = single(rec);
    assert.equal(ex.method, 'POST');
    assert.deepEqual(pathsOf(ex.url, server.url), ['hello', 'greet']);
    assert.equal(ex.url.searchParams.get('batch'), '1');
    assert.equal(ex.headers['content-type'], 'application/json');
    assert.deepEqual(JSON.parse(ex.body ?? 'null'), { 1: { name: 'mo2' } });
    assert.equal(ex.status, 200);
  });

  it('PAYLOAD_TOO_LARGE for a batched mutation body over 64 KiB reaches every op', async () => {
    const big = 'q'.repeat(70 * 1024);
    const results = await settleAll([client.echoMut.mutate({ big }), client.noInputMut.mutate()]);
    assert.equal(single(rec).status, 413);
    for (const [i, r] of results.entries()) {
      const err = await rejectsWithClientError(Promise.reject((r as PromiseRejectedResult).reason), `op ${i}`);
      assertClientError(err, { code: 'PAYLOAD_TOO_LARGE', httpStatus: 413 });
    }
    assert.equal(await withTimeout(client.hello.query()), 'hello world');
  });
});
