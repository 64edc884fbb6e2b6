/**
 * httpBatchStreamLink against oxrpc's streamed JSONL answer (protocol §5.4/§5.5 form B: the head
 * line at once, then one line per call as it settles): values and errors, out-of-order
 * delivery asserted by timing, and an aborted call.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createTRPCClient, httpBatchStreamLink, httpLink, TRPCClientError } from '@trpc/client';
import type { AppRouter } from '../generated/AppRouter.js';
import { startServer, type RunningServer } from './server.js';
import { rejectsWithClientError, withTimeout, clientAtLeast, linkFetch } from './harness.js';

const HOOK = { timeout: 30_000 };

describe('httpBatchStreamLink, plain profile', () => {
  let server: RunningServer;

  before(async () => {
    server = await startServer('plain');
  }, HOOK);
  after(async () => {
    await server?.stop();
  }, HOOK);

  for (const streamHeader of ['trpc-accept', 'accept'] as const) {
    it(`values and errors of one batch arrive (streamHeader: '${streamHeader}')`, async () => {
      const sent: Headers[] = [];
      const fetchRecording = linkFetch((input, init) => {
        sent.push(new Headers(init?.headers));
        return fetch(input, init);
      });
      const client = createTRPCClient<AppRouter>({
        links: [httpBatchStreamLink({ url: server.url, streamHeader, fetch: fetchRecording })],
      });
      const hello = client.hello.query();
      const greet = client.greet.query({ name: 'stream', times: 2 });
      const missing = rejectsWithClientError(client.notFound.query());
      assert.equal(await withTimeout(hello), 'hello world');
      assert.deepEqual(await withTimeout(greet), { text: 'hi stream', times: 2 });
      const err = await missing;
      // Known since 11.22.1; 11.0.0 has no such option and always sends `trpc-accept`.
      const header = clientAtLeast('11.22.1') ? streamHeader : 'trpc-accept';
      assert.equal(sent[0]?.get(header), 'application/jsonl', `the ${header} header`);
      assert.equal(err.message, 'thing not found');
      assert.equal(err.data?.code, 'NOT_FOUND');
      assert.equal(err.data?.httpStatus, 404);
      assert.equal(err.data?.path, 'notFound');
      assert.equal(err.shape?.code, -32004);
    });
  }

  it('a fast result arrives while a slow call of the same batch is still running', async () => {
    const client = createTRPCClient<AppRouter>({ links: [httpBatchStreamLink({ url: server.url })] });
    const started = Date.now();
    const slow = client.slow.query(1500).then((v) => ({ v, at: Date.now() - started }));
    const fast = client.hello.query().then((v) => ({ v, at: Date.now() - started }));
    const [s, f] = await withTimeout(Promise.all([slow, fast]), 10_000);
    assert.deepEqual(s.v, { waited: 1500 });
    assert.equal(f.v, 'hello world');
    assert.ok(s.at >= 1400, `slow settled after ${s.at} ms`);
    assert.ok(s.at - f.at >= 1000, `fast settled at ${f.at} ms, slow at ${s.at} ms: the fast one waited`);
  });

  it('aborting one call of a streamed batch rejects it; the server keeps serving', async () => {
    const client = createTRPCClient<AppRouter>({ links: [httpBatchStreamLink({ url: server.url })] });
    const controller = new AbortController();
    const slow = client.slow.query(10_000, { signal: controller.signal });
    setTimeout(() => controller.abort(), 100);
    await assert.rejects(withTimeout(slow, 5_000), (err: Error) => /abort/i.test(err.message) || err.name === 'AbortError' || err.name === 'TRPCClientError');
    assert.equal(await withTimeout(client.hello.query()), 'hello world');
  });

  it('deferred fields: the value arrives at once, its promises settle later (one resolves, one rejects typed)', async () => {
    const client = createTRPCClient<AppRouter>({ links: [httpBatchStreamLink({ url: server.url })] });
    const out = await withTimeout(client.deferred.query());
    assert.equal(out.now, 1);
    assert.ok(out.later instanceof Promise, 'later is a promise');
    assert.equal(await withTimeout(out.later), 'later-value');
    const err = await withTimeout(
      out.failing.then(
        () => assert.fail('failing must reject'),
        (e: unknown) => e,
      ),
    );
    assert.ok(err instanceof TRPCClientError, String(err));
    assert.equal(err.message, 'deferred failed');
    assert.equal(err.data?.code, 'CONFLICT');
  });

  it('an async-iterable output is consumed with for await; an error ends the iteration typed', async () => {
    const client = createTRPCClient<AppRouter>({ links: [httpBatchStreamLink({ url: server.url })] });
    const values: number[] = [];
    for await (const n of await withTimeout(client.iterQuery.query())) values.push(n);
    assert.deepEqual(values, [1, 2]);

    const seen: number[] = [];
    const failure = await withTimeout(
      (async () => {
        for await (const n of await client.iterFails.query()) seen.push(n);
      })().then(
        () => assert.fail('the iteration must fail'),
        (e: unknown) => e,
      ),
    );
    assert.deepEqual(seen, [1]);
    assert.ok(failure instanceof TRPCClientError, String(failure));
    assert.equal(failure.data?.code, 'CONFLICT');
    assert.equal(failure.message, 'iteration failed');
  });

  it('a stream-like output over a non-streaming link is refused (415 UNSUPPORTED_MEDIA_TYPE), as tRPC does', async () => {
    const client = createTRPCClient<AppRouter>({ links: [httpLink({ url: server.url })] });
    const err = await rejectsWithClientError(client.deferred.query());
    assert.equal(err.data?.code, 'UNSUPPORTED_MEDIA_TYPE');
    assert.equal(err.data?.httpStatus, 415);
    assert.match(err.message, /httpBatchStreamLink/);
  });

  it('mutations, including an undefined output', async () => {
    const client = createTRPCClient<AppRouter>({ links: [httpBatchStreamLink({ url: server.url })] });
    const post = client.addPost.mutate({ title: 'streamed' });
    const nothing = client.types.nothing.mutate('x');
    assert.deepEqual(await withTimeout(post), { id: 1, title: 'streamed' });
    assert.equal(await withTimeout(nothing), undefined);
  });
});

describe('httpBatchStreamLink, options profile (JSONL ping every 30 ms)', () => {
  let server: RunningServer;

  before(async () => {
    server = await startServer('options');
  }, HOOK);
  after(async () => {
    await server?.stop();
  }, HOOK);

  it('the client reads through the keep-alive spaces of a slow streamed batch', async () => {
    const client = createTRPCClient<AppRouter>({ links: [httpBatchStreamLink({ url: server.url })] });
    const [slow, fast] = await withTimeout(Promise.all([client.slow.query(300), client.hello.query()]));
    assert.deepEqual(slow, { waited: 300 });
    assert.equal(fast, 'hello world');
  });
});
