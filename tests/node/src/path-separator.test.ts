/**
 * tRPC's `pathSeparator` (client 11.24+, wire-updates.md): with the server started with
 * `--path-separator ~`, the official links built with `pathSeparator: '~'` call nested
 * procedures at `/nested~deep~q` over httpLink, httpBatchLink and httpSubscriptionLink. Older
 * clients do not know the option (a type error there, expected by scripts/client-versions) and
 * keep sending dotted paths, which the server still serves.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createTRPCClient, httpBatchLink, httpLink, httpSubscriptionLink, splitLink } from '@trpc/client';
import { EventSource } from 'eventsource';
import type { AppRouter } from '../generated/AppRouter.js';
import { startServer, type RunningServer } from './server.js';
import { clientAtLeast, linkFetch, withTimeout } from './harness.js';

const HAS_PATH_SEPARATOR = clientAtLeast('11.24.0');

describe('pathSeparator ~', () => {
  let server: RunningServer;
  const urls: string[] = [];
  const recordingFetch = linkFetch((input, init) => {
    urls.push(String(input instanceof Request ? input.url : input));
    return fetch(input, init);
  });

  before(async () => {
    server = await startServer('plain', 0, ['--path-separator', '~']);
  }, { timeout: 30_000 });
  after(async () => {
    await server?.stop();
  }, { timeout: 30_000 });

  it('httpLink and httpBatchLink address nested procedures with the separator', async () => {
    for (const link of [
      httpLink({ url: server.url, pathSeparator: '~', fetch: recordingFetch }),
      httpBatchLink({ url: server.url, pathSeparator: '~', fetch: recordingFetch }),
    ]) {
      const client = createTRPCClient<AppRouter>({ links: [link] });
      const [ok, hello] = await withTimeout(Promise.all([client.nested.deep.q.query(), client.hello.query()]));
      assert.deepEqual(ok, { ok: true });
      assert.equal(hello, 'hello world');
    }
    const sent = (path: string): boolean => urls.some((u) => new URL(u).pathname.includes(path));
    if (HAS_PATH_SEPARATOR) {
      assert.ok(sent('nested~deep~q'), urls.join('\n'));
    } else {
      // Absent in this client: the option is ignored and paths stay dotted.
      assert.ok(sent('nested.deep.q') && !sent('nested~deep~q'), urls.join('\n'));
    }
  });

  it('httpSubscriptionLink subscribes at posts~onAdd', async () => {
    const client = createTRPCClient<AppRouter>({
      links: [
        splitLink({
          condition: (op) => op.type === 'subscription',
          true: httpSubscriptionLink({ url: server.url, pathSeparator: '~', EventSource }),
          false: httpLink({ url: server.url, pathSeparator: '~' }),
        }),
      ],
    });
    const received = new Promise<string>((resolve, reject) => {
      const sub = client.posts.onAdd.subscribe(undefined, {
        onStarted: () => {
          void client.posts.add.mutate({ title: 'separated' }).catch(reject);
        },
        onData: (event) => {
          if (event.data.title === 'separated') {
            sub.unsubscribe();
            resolve(event.data.title);
          }
        },
        onError: reject,
      });
    });
    assert.equal(await withTimeout(received), 'separated');
  });
});
