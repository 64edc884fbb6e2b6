/**
 * httpBatchStreamLink against oxrpc's streamed JSONL answer (protocol §5.4/§5.5 form B: the head
 * line at once, then one line per call as it settles): values and errors, out-of-order
 * delivery asserted by timing, and an aborted call.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createTRPCClient, httpBatchStreamLink } from '@trpc/client';
import type { AppRouter } from '../generated/AppRouter.js';
import { startServer, type RunningServer } from './server.js';
import { rejectsWithClientError, withTimeout } from './harness.js';

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
      const client = createTRPCClient<AppRouter>({
        links: [httpBatchStreamLink({ url: server.url, streamHeader })],
      });
      const hello = client.hello.query();
      const greet = client.greet.query({ name: 'stream', times: 2 });
      const missing = rejectsWithClientError(client.notFound.query());
      assert.equal(await withTimeout(hello), 'hello world');
      assert.deepEqual(await withTimeout(greet), { text: 'hi stream', times: 2 });
      const err = await missing;
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

  it('mutations, including an undefined output', async () => {
    const client = createTRPCClient<AppRouter>({ links: [httpBatchStreamLink({ url: server.url })] });
    const post = client.addPost.mutate({ title: 'streamed' });
    const nothing = client.types.nothing.mutate('x');
    assert.deepEqual(await withTimeout(post), { id: 1, title: 'streamed' });
    assert.equal(await withTimeout(nothing), undefined);
  });
});
