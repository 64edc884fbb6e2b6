/**
 * httpBatchStreamLink against oxrpc's non-streaming JSONL answer (protocol §5.5 form A: every
 * result inline in the head line). True streaming is a later transport; this proves the
 * official streaming link already gets correct values and errors.
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

  it('mutations, including an undefined output', async () => {
    const client = createTRPCClient<AppRouter>({ links: [httpBatchStreamLink({ url: server.url })] });
    const post = client.addPost.mutate({ title: 'streamed' });
    const nothing = client.types.nothing.mutate('x');
    assert.deepEqual(await withTimeout(post), { id: 1, title: 'streamed' });
    assert.equal(await withTimeout(nothing), undefined);
  });
});
