/**
 * Typed per-procedure errors (conformance-ideas §3.1 `typedErr` / `onTypedErr`): the Rust function
 * returns `Result<_, Refusal>` with `Refusal: TypedError`, and the real client receives each case,
 * with its fields in `error.data` beside `code`, `httpStatus`, `path` and the root formatter's
 * `retryable`, over every link: httpLink, httpBatchLink (one batch with every case),
 * httpBatchStreamLink, wsLink, and subscriptions over WebSocket and SSE. The types of these errors
 * (`safe()` narrowing) are checked by tsc in typed-errors.types.ts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as trpc from '@trpc/client';
import {
  createTRPCClient,
  httpBatchLink,
  httpBatchStreamLink,
  httpLink,
  httpSubscriptionLink,
  splitLink,
  type TRPCClient,
} from '@trpc/client';
import { EventSource } from 'eventsource';
import type { AppRouter } from '../generated/AppRouter.js';
import { startServer, type RunningServer } from './server.js';
import {
  CLIENT_VERSION,
  clientAtLeast,
  JSONRPC,
  rejectsWithClientError,
  responseStatus,
  settleAll,
  rejection,
  fulfilled,
  withTimeout,
  type AppClientError,
} from './harness.js';
import { SubLog, WsClients } from './ws-harness.js';

const HOOK = { timeout: 30_000 };

/** `error.data` loosely typed: these tests assert the wire, typed-errors.types.ts the types. */
type Data = Record<string, unknown>;
const dataOf = (err: AppClientError): Data => (err.data ?? {}) as Data;

/**
 * The typed CONFLICT of `typedErr({ kind: 'conflict' })` and `onTypedErr`; `httpStatus` asserts
 * the response status too (a lone call over HTTP).
 */
function assertSoldOut(err: AppClientError, path: string, httpStatus: boolean): void {
  assert.equal(err.message, 'sold out');
  assert.equal(err.shape?.code, JSONRPC.CONFLICT);
  assert.deepEqual(dataOf(err), {
    code: 'CONFLICT',
    httpStatus: 409,
    path,
    retryable: false,
    reason: 'sold-out',
    stock: 0,
  });
  if (httpStatus) assert.equal(responseStatus(err), 409);
}

function assertBare(err: AppClientError): void {
  assert.equal(err.message, 'bare shape');
  assert.equal(err.shape?.code, JSONRPC.PRECONDITION_FAILED);
  // The contract's "bare" shape drops httpStatus and path; oxrpc keeps its standard fields on
  // every error (see tests/src/typed.rs) and adds the typed ones.
  assert.deepEqual(dataOf(err), {
    code: 'PRECONDITION_FAILED',
    httpStatus: 412,
    path: 'typedErr',
    retryable: false,
    reason: 'bare',
  });
}

/** FORBIDDEN "no": the root shape, no typed fields. */
function assertRootForbidden(err: AppClientError): void {
  assert.equal(err.message, 'no');
  assert.deepEqual(dataOf(err), { code: 'FORBIDDEN', httpStatus: 403, path: 'typedErr', retryable: false });
}

/** Invalid input: BAD_REQUEST with its issues, and `reason: 'bad-input'` added by `adopt`. */
function assertBadInput(err: AppClientError): void {
  assert.equal(err.data?.code, 'BAD_REQUEST');
  const data = dataOf(err);
  assert.equal(data['reason'], 'bad-input');
  assert.equal(data['httpStatus'], 400);
  assert.ok(Array.isArray(data['issues']) && data['issues'].length === 1, JSON.stringify(data));
  assert.match(err.message, /^Invalid input: kind: /);
}

/** Input the generated types refuse, sent anyway. */
const badInput = { kind: 'nope' } as unknown as { kind: 'ok' };

function httpClient(server: RunningServer, link: 'httpLink' | 'httpBatchLink' | 'httpBatchStreamLink'): TRPCClient<AppRouter> {
  const url = server.url;
  const terminating =
    link === 'httpLink'
      ? httpLink<AppRouter>({ url })
      : link === 'httpBatchLink'
        ? httpBatchLink<AppRouter>({ url })
        : httpBatchStreamLink<AppRouter>({ url });
  return createTRPCClient<AppRouter>({
    links: [
      splitLink({
        condition: (op) => op.type === 'subscription',
        true: httpSubscriptionLink({ url, EventSource }),
        false: terminating,
      }),
    ],
  });
}

describe('typed per-procedure errors', () => {
  let server: RunningServer;
  const ws = new WsClients();

  before(async () => {
    server = await startServer('plain');
  }, HOOK);
  after(async () => {
    await ws.closeAll();
    await server?.stop();
  }, HOOK);

  for (const link of ['httpLink', 'httpBatchLink', 'httpBatchStreamLink'] as const) {
    it(`${link}: each case of typedErr, typed or root-shaped`, async () => {
      const client = httpClient(server, link);
      assert.deepEqual(await withTimeout(client.typedErr.query({ kind: 'ok' })), { ok: true });
      // A streamed response has sent its 200 before any call ends.
      const status = link !== 'httpBatchStreamLink';
      assertSoldOut(await rejectsWithClientError(client.typedErr.query({ kind: 'conflict' })), 'typedErr', status);
      assertBare(await rejectsWithClientError(client.typedErr.query({ kind: 'bare' })));
      assertRootForbidden(await rejectsWithClientError(client.typedErr.query({ kind: 'forbidden' })));
      assertBadInput(await rejectsWithClientError(client.typedErr.query(badInput)));
    });
  }

  for (const link of ['httpBatchLink', 'httpBatchStreamLink'] as const) {
    it(`${link}: one batch with every case keeps each call's own shape`, async () => {
      const client = httpClient(server, link);
      const [ok, conflict, bare, forbidden, bad, plain] = await settleAll([
        client.typedErr.query({ kind: 'ok' }),
        client.typedErr.query({ kind: 'conflict' }),
        client.typedErr.query({ kind: 'bare' }),
        client.typedErr.query({ kind: 'forbidden' }),
        client.typedErr.query(badInput),
        client.notFound.query(),
      ] as const);
      assert.deepEqual(fulfilled(ok), { ok: true });
      assertSoldOut(await rejection(conflict), 'typedErr', false);
      assertBare(await rejection(bare));
      assertRootForbidden(await rejection(forbidden));
      assertBadInput(await rejection(bad));
      // A procedure without a typed error in the same batch: root shape only.
      assert.deepEqual(dataOf(await rejection(plain)), {
        code: 'NOT_FOUND',
        httpStatus: 404,
        path: 'notFound',
        retryable: false,
      });
    });
  }

  it('wsLink: each case of typedErr', async () => {
    const { client } = ws.create(server);
    assert.deepEqual(await withTimeout(client.typedErr.query({ kind: 'ok' })), { ok: true });
    assertSoldOut(await rejectsWithClientError(client.typedErr.query({ kind: 'conflict' })), 'typedErr', false);
    assertBare(await rejectsWithClientError(client.typedErr.query({ kind: 'bare' })));
    assertRootForbidden(await rejectsWithClientError(client.typedErr.query({ kind: 'forbidden' })));
    assertBadInput(await rejectsWithClientError(client.typedErr.query(badInput)));
  });

  it('onTypedErr over wsLink: a value, then the typed error ends the subscription', async () => {
    const { client } = ws.create(server);
    const log = new SubLog<string>();
    const sub = client.onTypedErr.subscribe(undefined, log.handlers);
    try {
      const err = await log.failed('onTypedErr (ws)');
      assert.deepEqual(log.data, ['before-typed']);
      assertSoldOut(err, 'onTypedErr', false);
    } finally {
      sub.unsubscribe();
    }
  });

  it('onTypedErr over httpSubscriptionLink (SSE): a value, then the typed error', async () => {
    const client = httpClient(server, 'httpLink');
    const log = new SubLog<string>();
    const sub = client.onTypedErr.subscribe(undefined, log.handlers);
    try {
      const err = await log.failed('onTypedErr (sse)');
      assert.deepEqual(log.data, ['before-typed']);
      assertSoldOut(err, 'onTypedErr', false);
    } finally {
      sub.unsubscribe();
    }
  });

  it(`safe() returns [data, error] (@trpc/client ≥ 11.22.1; absent in ${CLIENT_VERSION} when older)`, async () => {
    const safe = (trpc as Record<string, unknown>)['safe'];
    assert.equal(typeof safe === 'function', clientAtLeast('11.22.1'), 'safe() exists exactly from 11.22.1 on');
    if (typeof safe !== 'function') return;
    const client = httpClient(server, 'httpBatchLink');
    const run = safe as (p: Promise<unknown>) => Promise<readonly [unknown, AppClientError | undefined]>;
    const [data, none] = await withTimeout(run(client.typedErr.query({ kind: 'ok' })));
    assert.deepEqual(data, { ok: true });
    assert.equal(none, undefined);
    const [nothing, error] = await withTimeout(run(client.typedErr.query({ kind: 'conflict' })));
    assert.equal(nothing, undefined);
    assert.ok(error);
    assertSoldOut(error, 'typedErr', false);
  });
});
