/**
 * httpSubscriptionLink (SSE, trpc-protocol.md §6 and the captures of §11.6/§11.7;
 * conformance-ideas.md §4): the official link with the `eventsource` ponyfill (Node 20 has no
 * global EventSource) against the Rust conformance server: tracked values, `return`, typed
 * in-band errors, connectionParams, unsubscribe dropping the server-side stream, native
 * reconnect with `Last-Event-ID` after a retryable error, and the inactivity timeout.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createTRPCClient, httpLink, httpSubscriptionLink, splitLink, TRPCClientError } from '@trpc/client';
import { EventSource } from 'eventsource';
import type { AppRouter, Count } from '../generated/AppRouter.js';
import { startServer, type RunningServer } from './server.js';
import { withTimeout, type AppClientError } from './harness.js';

const HOOK = { timeout: 30_000 };

function client(server: RunningServer, connectionParams?: Record<string, string>) {
  return createTRPCClient<AppRouter>({
    links: [
      splitLink({
        condition: (op) => op.type === 'subscription',
        true: httpSubscriptionLink({ url: server.url, EventSource, connectionParams }),
        false: httpLink({ url: server.url }),
      }),
    ],
  });
}

/** What one subscription delivered, and how it ended. */
interface Run<T> {
  data: T[];
  started: number;
  error?: AppClientError;
  completed: boolean;
}

/** Subscribes, collects until `done(data)` or completion/error, then unsubscribes. */
function collect<T>(
  subscribe: (handlers: {
    onStarted: () => void;
    onData: (value: T) => void;
    onError: (err: AppClientError) => void;
    onComplete: () => void;
  }) => { unsubscribe(): void },
  done: (data: T[]) => boolean = () => false,
  ms = 15_000,
): Promise<Run<T>> {
  const run: Run<T> = { data: [], started: 0, completed: false };
  let sub: { unsubscribe(): void } | undefined;
  const finished = new Promise<Run<T>>((resolve) => {
    sub = subscribe({
      onStarted: () => {
        run.started += 1;
      },
      onData: (value) => {
        run.data.push(value);
        if (done(run.data)) resolve(run);
      },
      onError: (err) => {
        run.error = err;
        resolve(run);
      },
      onComplete: () => {
        run.completed = true;
        resolve(run);
      },
    });
  });
  return withTimeout(finished, ms, 'subscription').finally(() => sub?.unsubscribe());
}

async function liveOnForever(server: RunningServer): Promise<number> {
  const res = await fetch(`${server.url}/streams.live`);
  const body = (await res.json()) as { result: { data: { onForever: number } } };
  return body.result.data.onForever;
}

async function waitFor(check: () => Promise<boolean>, what: string, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('httpSubscriptionLink, plain profile', () => {
  let server: RunningServer;
  before(async () => {
    server = await startServer('plain');
  }, HOOK);
  after(async () => {
    await server?.stop();
  }, HOOK);

  it('tracked values arrive as {id, data}; `return` completes the subscription', async () => {
    const trpc = client(server);
    const run = await collect<{ id: string; data: Count }>((h) => trpc.onCount.subscribe({ from: 3 }, h));
    assert.equal(run.error, undefined);
    assert.equal(run.completed, true);
    assert.ok(run.started >= 1, 'onStarted fired (the connected event)');
    assert.deepEqual(run.data, [3, 4, 5].map((n) => ({ id: String(n), data: { n } })));
  });

  it('untracked values arrive as they are', async () => {
    const trpc = client(server);
    const run = await collect<string>((h) => trpc.onPlain.subscribe(undefined, h));
    assert.deepEqual(run.data, ['a', 'b']);
    assert.equal(run.completed, true);
  });

  it('an error inside the stream reaches the client typed', async () => {
    const trpc = client(server);
    const run = await collect<string>((h) => trpc.onErr.subscribe(undefined, h));
    assert.deepEqual(run.data, ['before-error']);
    assert.ok(run.error instanceof TRPCClientError, String(run.error));
    assert.equal(run.error.message, 'sub forbidden');
    assert.equal(run.error.data?.code, 'FORBIDDEN');
    assert.equal(run.error.data?.path, 'onErr');
    assert.equal(run.error.shape?.code, -32003);
  });

  it('bad input is a typed BAD_REQUEST, in-band', async () => {
    const trpc = client(server);
    // @ts-expect-error `from` is a number
    const run = await collect<unknown>((h) => trpc.onCount.subscribe({ from: 'x' }, h));
    assert.equal(run.error?.data?.code, 'BAD_REQUEST');
    assert.equal(run.error?.data?.httpStatus, 400);
  });

  it('connectionParams in the URL reach the context', async () => {
    const authed = client(server, { token: 'ABC' });
    const run = await collect<{ id: string; data: { user: string; n: number } }>((h) =>
      authed.secretTicks.subscribe(undefined, h),
    );
    assert.equal(run.error, undefined, String(run.error));
    assert.deepEqual(run.data.map((e) => e.data.n), [0, 1, 2]);
    const anonymous = await collect<unknown>((h) => client(server).secretTicks.subscribe(undefined, h));
    assert.equal(anonymous.error?.data?.code, 'UNAUTHORIZED');
  });

  it('unsubscribing closes the stream and the server drops its side', async () => {
    const before = await liveOnForever(server);
    const trpc = client(server);
    const run = await collect<number>((h) => trpc.onForever.subscribe(undefined, h), (d) => d.length >= 2);
    assert.deepEqual(run.data, [0, 1]);
    await waitFor(async () => (await liveOnForever(server)) === before, 'the server dropped the onForever stream');
  });

  it('after a retryable error the EventSource reconnects with Last-Event-ID: every id exactly once', async () => {
    const trpc = client(server);
    const run = await collect<{ id: string; data: number }>(
      (h) => trpc.flaky.subscribe(undefined, h),
      undefined,
      20_000,
    );
    assert.equal(run.error, undefined, String(run.error));
    assert.equal(run.completed, true);
    assert.deepEqual(run.data.map((e) => e.id), ['0', '1', '2', '3', '4', '5']);
  });

  it('an unknown path fails without tRPC data (opaque non-200, as with the reference server)', async () => {
    const trpc = client(server) as unknown as {
      nope: { subscribe: (input: undefined, h: object) => { unsubscribe(): void } };
    };
    const run = await collect<unknown>((h) => trpc.nope.subscribe(undefined, h));
    assert.match(String(run.error?.message), /404/);
  });
});

describe('httpSubscriptionLink, inactivity profile (reconnectAfterInactivityMs 600, max duration 1.5 s)', () => {
  let server: RunningServer;
  before(async () => {
    server = await startServer('inactivity');
  }, HOOK);
  after(async () => {
    await server?.stop();
  }, HOOK);

  it('a silent stream is recreated by the client, resuming after its last id', async () => {
    const trpc = client(server);
    const started = Date.now();
    const run = await collect<{ id: string; data: number }>(
      (h) => trpc.idle.subscribe(undefined, h),
      (d) => d.length >= 2,
    );
    assert.deepEqual(run.data.map((e) => e.id), ['0', '1']);
    // `idle` is silent for 5 s after each event: the second one came from a recreated stream.
    assert.ok(Date.now() - started < 4_000, `recreated after ${Date.now() - started} ms`);
  });

  it('a stream cut at the maximum duration reconnects by itself and resumes: every id once', async () => {
    const trpc = client(server);
    // `onTicks` ticks every 100 ms; the server ends the stream after 1.5 s without `return`.
    const run = await collect<{ id: string; data: number }>(
      (h) => trpc.onTicks.subscribe(undefined, h),
      (d) => d.length >= 25,
      20_000,
    );
    assert.equal(run.error, undefined, String(run.error));
    const ids = run.data.map((e) => Number(e.id));
    assert.deepEqual(ids, [...Array(ids.length).keys()], 'consecutive ids from 0, none lost or repeated');
    assert.ok(run.started >= 2, `the stream was opened again (${run.started} starts)`);
  });
});
