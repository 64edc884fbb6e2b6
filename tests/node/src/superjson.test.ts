/**
 * The superjson transformer (trpc-protocol.md §4, conformance profile `superjson`): the real
 * client with `transformer: superjson` on every link — httpLink, httpBatchLink,
 * httpBatchStreamLink, wsLink, httpSubscriptionLink — against the same router with the
 * transformer on. `Date`, `bigint`, `Set`, `Map` and `undefined` round-trip through Rust types
 * (`oxrpc::js`), `echo` gives back what it got, errors arrive as superjson shapes, JSONL lines
 * and tracked WebSocket events are one superjson value each, and the wire is checked byte for
 * byte where the spec captured it. The types are checked by tsc in superjson.types.ts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  createTRPCClient,
  createWSClient,
  httpBatchLink,
  httpBatchStreamLink,
  httpLink,
  httpSubscriptionLink,
  splitLink,
  TRPCClientError,
  wsLink,
  type TRPCClient,
} from '@trpc/client';
import { EventSource } from 'eventsource';
import superjson from 'superjson';
import type { AppRouter as SjRouter } from '../generated/AppRouterSuperjson.js';
import { JSONRPC, raw, recorder, withTimeout, type LinkFetch } from './harness.js';
import { startServer, type RunningServer } from './server.js';
import { FrameLog, recordingSocket, waitFor, wsUrl } from './ws-harness.js';

const HOOK = { timeout: 30_000 };

type SjClient = TRPCClient<SjRouter>;
type HttpLinkName = 'httpLink' | 'httpBatchLink' | 'httpBatchStreamLink';
const HTTP_LINKS: readonly HttpLinkName[] = ['httpLink', 'httpBatchLink', 'httpBatchStreamLink'];

/** Every value type the Rust `JsValues` maps, sent by the client. */
function everything() {
  return {
    at: new Date('2024-01-02T03:04:05.006Z'),
    until: new Date(0),
    big: -9_007_199_254_740_993n, // beyond Number.MIN_SAFE_INTEGER
    huge: 2n ** 100n,
    tags: new Set(['a', 'b']),
    scores: new Map([
      ['x', 2n ** 62n],
      ['y', -1n],
    ]),
    byDay: new Map([
      [1, new Date(86_400_000)],
      [2, new Date(172_800_000)],
    ]),
    note: undefined,
    maybe: null,
    history: [{ label: 'one', at: new Date(1000) }],
    count: 3,
  };
}

/** What comes back: the same values, `note` (an absent `Option`) gone. */
function everythingBack() {
  const { note: _note, ...rest } = everything();
  return rest;
}

/** The `date` contract values (conformance-ideas §3.1). */
function assertContractDate(out: Awaited<ReturnType<SjClient['date']['query']>>): void {
  assert.ok(out.at instanceof Date, `at is a Date: ${String(out.at)}`);
  assert.equal(out.at.toISOString(), '2024-01-02T03:04:05.000Z');
  assert.equal(out.big, 10n);
  assert.deepEqual(out.set, new Set([1, 2]));
  assert.equal(out.undef, undefined);
}

/** A value with a little of everything, for `echo`. */
function anything() {
  return {
    d: new Date(5),
    b: 12345678901234567890n,
    s: new Set([1, 'two']),
    m: new Map<unknown, unknown>([
      [1, { d: new Date(2) }],
      ['k', new Set([3n])],
    ]),
    u: undefined,
    n: null,
    list: [undefined, 1, 'x', new Date(3)],
    'dotted.key': new Date(4),
    nested: { deeper: { at: new Date(6) } },
  };
}

describe('superjson transformer', () => {
  let server: RunningServer;
  const wsClients: ReturnType<typeof createWSClient>[] = [];

  before(async () => {
    server = await startServer('superjson');
  }, HOOK);
  after(async () => {
    await withTimeout(Promise.all(wsClients.map((c) => c.close().catch(() => undefined))), 10_000, 'closing WS clients');
    await server?.stop();
  }, HOOK);

  function http(link: HttpLinkName, fetch?: LinkFetch): SjClient {
    const url = server.url;
    const terminating =
      link === 'httpLink'
        ? httpLink({ url, transformer: superjson, fetch })
        : link === 'httpBatchLink'
          ? httpBatchLink({ url, transformer: superjson, fetch })
          : httpBatchStreamLink({ url, transformer: superjson, fetch });
    return createTRPCClient<SjRouter>({
      links: [
        splitLink({
          condition: (op) => op.type === 'subscription',
          true: httpSubscriptionLink({ url, transformer: superjson, EventSource }),
          false: terminating,
        }),
      ],
    });
  }

  function ws(): { client: SjClient; log: FrameLog } {
    const log = new FrameLog();
    const wsClient = createWSClient({ url: wsUrl(server), WebSocket: recordingSocket(log), retryDelayMs: () => 50 });
    wsClients.push(wsClient);
    return { client: createTRPCClient<SjRouter>({ links: [wsLink({ client: wsClient, transformer: superjson })] }), log };
  }

  /** Collects a subscription's values until `n` arrived (or it failed / completed). */
  async function collect<T>(
    subscribe: (handlers: { onData: (v: T) => void; onError: (e: unknown) => void; onComplete: () => void }) => {
      unsubscribe: () => void;
    },
    n: number,
    label: string,
  ): Promise<T[]> {
    const values: T[] = [];
    let error: unknown;
    let done = false;
    const sub = subscribe({
      onData: (v) => values.push(v),
      onError: (e) => {
        error = e;
      },
      onComplete: () => {
        done = true;
      },
    });
    try {
      await waitFor(() => values.length >= n || error !== undefined || done, `${label}: ${n} values`);
      if (error) assert.fail(`${label} failed: ${String(error)}`);
      return values;
    } finally {
      sub.unsubscribe();
    }
  }

  for (const link of HTTP_LINKS) {
    it(`${link}: date, every mapped type both ways, echo of anything`, async () => {
      const client = http(link);
      assertContractDate(await withTimeout(client.date.query()));
      assert.deepStrictEqual(await withTimeout(client.roundTrip.mutate(everything())), everythingBack());
      assert.deepStrictEqual(await withTimeout(client.roundTripQuery.query(everything())), everythingBack());
      assert.deepStrictEqual(await withTimeout(client.echo.query(anything())), { input: anything() });
      assert.deepStrictEqual(await withTimeout(client.echoMut.mutate(anything())), { input: anything() });
      // No input (`undefined`) and `null` stay apart.
      assert.deepStrictEqual(await withTimeout(client.echo.query(undefined)), {});
      assert.deepStrictEqual(await withTimeout(client.echo.query(null)), { input: null });
      // Procedures of the plain contract work the same through the transformer.
      assert.equal(await withTimeout(client.hello.query()), 'hello world');
      assert.deepEqual(await withTimeout(client.greet.query({ name: 'sj' })), { text: 'hi sj', times: 1 });
      assert.equal(await withTimeout(client.noInputMut.mutate()), 'done');
    });
  }

  it('httpBatchLink: one request carries mixed inputs, results and errors', async () => {
    const rec = recorder();
    const client = http('httpBatchLink', rec.fetch);
    const [hello, date, trip, echo, notFound, invalid] = await withTimeout(
      Promise.allSettled([
        client.hello.query(),
        client.date.query(),
        client.roundTripQuery.query(everything()),
        client.echo.query(undefined),
        client.notFound.query(),
        client.greet.query({ name: 5 as unknown as string }),
      ]),
    );
    assert.equal(rec.exchanges.length, 1, 'one request');
    const input = JSON.parse(rec.exchanges[0]!.url.searchParams.get('input')!) as Record<string, unknown>;
    assert.deepEqual(input['0'], { json: null, meta: { values: ['undefined'], v: 1 } });
    assert.equal(hello.status === 'fulfilled' && hello.value, 'hello world');
    assert.ok(date.status === 'fulfilled');
    assertContractDate(date.value);
    assert.ok(trip.status === 'fulfilled');
    assert.deepStrictEqual(trip.value, everythingBack());
    assert.ok(echo.status === 'fulfilled');
    assert.deepStrictEqual(echo.value, {});
    assert.ok(notFound.status === 'rejected' && notFound.reason instanceof TRPCClientError);
    assert.equal(notFound.reason.message, 'thing not found');
    assert.deepEqual(notFound.reason.data, { code: 'NOT_FOUND', httpStatus: 404, path: 'notFound', retryable: false });
    assert.ok(invalid.status === 'rejected' && invalid.reason instanceof TRPCClientError);
    assert.equal(invalid.reason.data?.code, 'BAD_REQUEST');
    assert.match(invalid.reason.message, /^Invalid input: name: /);
  });

  it('httpBatchStreamLink: Dates in a promise and an iterable (datedLater)', async () => {
    const client = http('httpBatchStreamLink');
    const out = await withTimeout(client.datedLater.query());
    assert.ok(out.now instanceof Date && out.now.getTime() === 0);
    const later = await withTimeout(out.later);
    assert.ok(later.at instanceof Date, 'the promise resolves to a Tick with a Date');
    assert.deepStrictEqual(later, { n: 7, at: new Date(1_704_164_652_000), big: 7n << 60n });
    const ticks = [];
    for await (const tick of out.ticks) ticks.push(tick);
    assert.deepStrictEqual(ticks, [
      { n: 1, at: new Date(1_704_164_646_000), big: 1n << 60n },
      { n: 2, at: new Date(1_704_164_647_000), big: 2n << 60n },
    ]);
  });

  it('wsLink: queries, mutations, a tracked subscription of Dates resumed after lastEventId', async () => {
    const { client, log } = ws();
    assertContractDate(await withTimeout(client.date.query()));
    assert.deepStrictEqual(await withTimeout(client.roundTrip.mutate(everything())), everythingBack());
    assert.deepStrictEqual(await withTimeout(client.echo.query(anything())), { input: anything() });
    const ticks = await collect<{ id: string; data: { n: number; at: Date; big: bigint } }>(
      (h) => client.onTicksDated.subscribe({ lastEventId: '4' }, h),
      3,
      'onTicksDated (ws)',
    );
    assert.deepStrictEqual(
      ticks.map((t) => [t.id, t.data.n, t.data.at.getTime(), t.data.big]),
      [5, 6, 7].map((n) => [String(n), n, 1_704_164_645_000 + n * 1000, BigInt(n) << 60n]),
    );
    // The `{id, data}` pair is one superjson value, the id also plain beside it (spec §4).
    const frame = log.received().find((m) => JSON.stringify(m).includes('"5"')) as unknown as {
      result: { data: unknown; id: string };
    };
    assert.deepEqual(frame.result.data, {
      json: { id: '5', data: { n: 5, at: '2024-01-02T03:04:10.000Z', big: String(5n << 60n) } },
      meta: { values: { 'data.at': ['Date'], 'data.big': ['bigint'] }, v: 1 },
    });
    assert.equal(frame.result.id, '5');
    const err = await withTimeout(client.notFound.query().then(() => assert.fail('must fail'), (e: unknown) => e));
    assert.ok(err instanceof TRPCClientError);
    assert.equal(err.data?.code, 'NOT_FOUND');
    assert.equal(err.shape?.code, JSONRPC.NOT_FOUND);
  });

  it('httpSubscriptionLink (SSE): tracked Dates, resumed after lastEventId', async () => {
    const client = http('httpLink');
    const ticks = await collect<{ id: string; data: { n: number; at: Date; big: bigint } }>(
      (h) => client.onTicksDated.subscribe({ lastEventId: '1' }, h),
      3,
      'onTicksDated (sse)',
    );
    assert.deepStrictEqual(
      ticks.map((t) => [t.id, t.data.n, t.data.at.toISOString(), t.data.big]),
      [2, 3, 4].map((n) => [String(n), n, new Date(1_704_164_645_000 + n * 1000).toISOString(), BigInt(n) << 60n]),
    );
    // An error ending a subscription is a superjson shape too.
    const errors: unknown[] = [];
    const sub = client.onErr.subscribe(undefined, { onError: (e) => errors.push(e) });
    try {
      await waitFor(() => errors.length > 0, 'onErr (sse): its error');
    } finally {
      sub.unsubscribe();
    }
    assert.ok(errors[0] instanceof TRPCClientError);
    assert.equal(errors[0].data?.code, 'FORBIDDEN');
  });

  it('an event bus encodes once; WebSocket and SSE subscribers get Dates and bigints', async () => {
    const { client: wsClient } = ws();
    const sseClient = http('httpLink');
    type Ev = { id: string; data: { n: number; at: Date; big: bigint } };
    const viaWs: Ev[] = [];
    const viaSse: Ev[] = [];
    const started = { ws: false, sse: false };
    const subs = [
      wsClient.ticks.onAdd.subscribe(undefined, { onStarted: () => (started.ws = true), onData: (e) => viaWs.push(e) }),
      sseClient.ticks.onAdd.subscribe(undefined, { onStarted: () => (started.sse = true), onData: (e) => viaSse.push(e) }),
    ];
    try {
      await waitFor(() => started.ws && started.sse, 'both subscribers started');
      // SSE's `started` is the `connected` event; give the server a moment to register it.
      await new Promise((r) => setTimeout(r, 100));
      for (const n of [11, 12]) await withTimeout(wsClient.ticks.add.mutate(n));
      await waitFor(() => viaWs.length >= 2 && viaSse.length >= 2, 'two events on both');
    } finally {
      subs.forEach((s) => s.unsubscribe());
    }
    for (const events of [viaWs, viaSse]) {
      assert.deepStrictEqual(
        events.map((e) => [e.data.n, e.data.at.getTime(), e.data.big]),
        [11, 12].map((n) => [n, 1_704_164_645_000 + n * 1000, BigInt(n) << 60n]),
      );
    }
  });

  it('typed errors go through the transformer with their fields (typedErr, onTypedErr)', async () => {
    const soldOut = { code: 'CONFLICT', httpStatus: 409, path: 'typedErr', retryable: false, reason: 'sold-out', stock: 0 };
    for (const link of HTTP_LINKS) {
      const err = await withTimeout(
        http(link).typedErr.query({ kind: 'conflict' }).then(() => assert.fail('must fail'), (e: unknown) => e),
      );
      assert.ok(err instanceof TRPCClientError, `${link}: ${String(err)}`);
      assert.equal(err.message, 'sold out');
      assert.deepEqual(err.data, soldOut, link);
    }
    const { client } = ws();
    const values: string[] = [];
    const errors: unknown[] = [];
    const sub = client.onTypedErr.subscribe(undefined, {
      onData: (v) => values.push(v),
      onError: (e) => errors.push(e),
    });
    try {
      await waitFor(() => errors.length > 0, 'onTypedErr (ws): its error');
    } finally {
      sub.unsubscribe();
    }
    assert.deepEqual(values, ['before-typed']);
    assert.ok(errors[0] instanceof TRPCClientError);
    assert.deepEqual(errors[0].data, { ...soldOut, path: 'onTypedErr' });
  });

  it('binary and FormData inputs are never transformed', async () => {
    const client = http('httpLink');
    assert.deepEqual(await withTimeout(client.upload.mutate(new Uint8Array(10))), { size: 10 });
    const form = new FormData();
    form.append('name', 'sj');
    form.append('a', new File(['hello'], 'a.txt', { type: 'text/plain' }));
    assert.deepEqual(await withTimeout(client.form.mutate(form)), { name: 'sj', a: 'file:a.txt:5' });
  });

  it('the wire: values, errors and JSONL lines as spec §11.3 and §11.5 captured them', async () => {
    const undefinedInput = encodeURIComponent(JSON.stringify(superjson.serialize(undefined)));
    const date = await raw(`${server.url}/date?input=${undefinedInput}`);
    assert.equal(date.status, 200);
    assert.deepEqual(date.json, {
      result: {
        data: {
          json: { at: '2024-01-02T03:04:05.000Z', big: '10', set: [1, 2] },
          meta: { values: { at: ['Date'], big: ['bigint'], set: ['set'] }, v: 1 },
        },
      },
    });
    const hello = await raw(`${server.url}/hello?input=${undefinedInput}`);
    assert.equal(hello.text, '{"result":{"data":{"json":"hello world"}}}');
    const notFound = await raw(`${server.url}/notFound?input=${undefinedInput}`);
    assert.equal(notFound.status, 404);
    assert.deepEqual(notFound.json, {
      error: {
        json: {
          message: 'thing not found',
          code: -32004,
          data: { code: 'NOT_FOUND', httpStatus: 404, path: 'notFound', retryable: false },
        },
      },
    });
    // A `()` output is `undefined`, said explicitly.
    const batch = await raw(`${server.url}/date,notFound?batch=1&input=%7B%7D`, {
      headers: { 'trpc-accept': 'application/jsonl' },
    });
    const lines = batch.text.trim().split('\n').map((l) => JSON.parse(l) as { json: unknown; meta?: unknown });
    assert.deepEqual(lines[0], { json: { 0: [[0], [null, 0, 0]], 1: [[0], [null, 0, 1]] } });
    const decoded = lines.slice(1).map((l) => superjson.deserialize(l as Parameters<typeof superjson.deserialize>[0]));
    const dateLine = decoded.find((l) => (l as unknown[])[0] === 0) as [number, number, [[{ result: { data: { at: Date } } }]]];
    assert.ok(dateLine[2][0][0].result.data.at instanceof Date, JSON.stringify(lines));
    const errLine = decoded.find((l) => (l as unknown[])[0] === 1) as [number, number, [[{ error: { message: string } }]]];
    assert.equal(errLine[2][0][0].error.message, 'thing not found');
  });

  it('refused inputs: not superjson, NaN, a RegExp, a circular value; the server keeps serving', async () => {
    const plainInput = await raw(`${server.url}/greet?input=${encodeURIComponent('{"name":"bob"}')}`);
    assert.equal(plainInput.status, 400);
    const shape = (plainInput.json as { error: { json: { message: string; data: { code: string } } } }).error.json;
    assert.equal(shape.data.code, 'BAD_REQUEST');
    assert.match(shape.message, /transformer: superjson/);
    const client = http('httpLink');
    const cases: [unknown, RegExp][] = [
      [{ n: Number.NaN }, /`n` is NaN/],
      [{ r: /a+/g }, /superjson `regexp`/],
    ];
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic['self'] = cyclic;
    cases.push([cyclic, /circular/]);
    for (const [input, message] of cases) {
      const err = await withTimeout(client.echoMut.mutate(input).then(() => assert.fail('must fail'), (e: unknown) => e));
      assert.ok(err instanceof TRPCClientError, String(err));
      assert.equal(err.data?.code, 'BAD_REQUEST');
      assert.match(err.message, message);
    }
    // superjson sends one value referenced many times once: JSON needs copies, within bounds.
    const shared = { d: new Date(9), tags: new Set(['x']) };
    assert.deepStrictEqual(await withTimeout(client.echoMut.mutate({ a: shared, b: [shared] })), {
      input: { a: shared, b: [shared] },
    });
    // superjson writes shared values in full by default; a crafted request that references
    // one 1,000-element array 200 times from a few kilobytes is refused, not expanded.
    const targets = Array.from({ length: 200 }, (_, i) => `r${i}`);
    const crafted = {
      json: { big: new Array(1000).fill(0), ...Object.fromEntries(targets.map((t) => [t, null])) },
      meta: { referentialEqualities: { big: targets }, v: 1 },
    };
    const blowUp = await raw(`${server.url}/echoMut`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(crafted),
    });
    assert.equal(blowUp.status, 413);
    const refused = (blowUp.json as { error: { json: { message: string; data: { code: string } } } }).error.json;
    assert.equal(refused.data.code, 'PAYLOAD_TOO_LARGE');
    assert.match(refused.message, /shared references/);
    assert.equal(await withTimeout(client.hello.query()), 'hello world');
  });
});
