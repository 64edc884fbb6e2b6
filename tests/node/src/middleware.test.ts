/**
 * Middleware conformance (tests/src/auth.rs): context refinement (`RequireUser`), a reusable
 * middleware stack with meta (`admin.ban`), router-level middleware (`private.*`), an around
 * middleware that short-circuits (`limited`), the `Audit` middleware wrapping every procedure, and
 * the router's error formatter (`data.retryable`), all through the official `@trpc/client` with
 * `httpLink` and `httpBatchLink`.
 *
 * `Authorization: ABC` signs in as the member `abc`, `Authorization: ADMIN` as the admin `root`;
 * anything else is anonymous.
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { createTRPCClient, httpBatchLink, httpLink, type TRPCClient } from '@trpc/client';
import type { AppRouter, AuditEntry, BanInput } from '../generated/AppRouter.js';
import { startServer, type RunningServer } from './server.js';
import {
  assertClientError,
  fulfilled,
  inputParam,
  pathsOf,
  recorder,
  rejection,
  rejectsWithClientError,
  settleAll,
  withTimeout,
  type AppClientError,
  type Exchange,
  type Recorder,
} from './harness.js';

/** Per-hook deadline: the server helper itself gives up after 20 s. */
const HOOK = { timeout: 30_000 };

/** Who the client claims to be (the `Authorization` header it sends, if any). */
type Caller = 'anonymous' | 'member' | 'admin';
const AUTHORIZATION: Record<Caller, string | undefined> = { anonymous: undefined, member: 'ABC', admin: 'ADMIN' };

/** The message `RequireUser` answers anonymous callers with. */
const SIGN_IN = 'sign in with the Authorization header';

/** `headers` link option for a caller (none at all for an anonymous one). */
function headersFor(caller: Caller): Record<string, string> {
  const authorization = AUTHORIZATION[caller];
  return authorization === undefined ? {} : { authorization };
}

/** A typed `httpLink` client for `caller`, recording into `rec`. */
function linkClient(server: RunningServer, rec: Recorder, caller: Caller): TRPCClient<AppRouter> {
  return createTRPCClient<AppRouter>({
    links: [httpLink<AppRouter>({ url: server.url, fetch: rec.fetch, headers: headersFor(caller) })],
  });
}

/** A typed `httpBatchLink` client for `caller`, recording into `rec`. */
function batchClient(server: RunningServer, rec: Recorder, caller: Caller): TRPCClient<AppRouter> {
  return createTRPCClient<AppRouter>({
    links: [httpBatchLink<AppRouter>({ url: server.url, fetch: rec.fetch, headers: headersFor(caller) })],
  });
}

/** The only exchange recorded since the last `clear()`. */
function single(rec: Recorder): Exchange {
  assert.equal(rec.exchanges.length, 1, `expected exactly one request, got ${rec.exchanges.length}`);
  return rec.exchanges[0]!;
}

/** A key no other run (or test) has used: `limited` counts calls per key for the server's lifetime. */
function uniqueKey(label: string): string {
  return `${label}-${Date.now()}-${Math.random().toString(36).slice(2, 10)}`;
}

/** `err.data.retryable`, read through the generated error shape (a compile-time check as well). */
function retryable(err: AppClientError): boolean {
  assert.ok(err.data, `no error data: ${err.message}`);
  const value: boolean = err.data.retryable;
  assert.equal(typeof value, 'boolean', 'data.retryable is a boolean');
  return value;
}

describe('middleware, plain profile', () => {
  let server: RunningServer;
  const rec = recorder();
  let anonymous: TRPCClient<AppRouter>;
  let member: TRPCClient<AppRouter>;
  let admin: TRPCClient<AppRouter>;

  before(async () => {
    server = await startServer('plain');
    anonymous = linkClient(server, rec, 'anonymous');
    member = linkClient(server, rec, 'member');
    admin = linkClient(server, rec, 'admin');
  }, HOOK);
  after(async () => {
    await server?.stop();
  }, HOOK);
  beforeEach(() => rec.clear());

  describe('context refinement (RequireUser on `secret`)', () => {
    it('anonymous: UNAUTHORIZED 401 with the middleware message; the handler never runs', async () => {
      const err = await rejectsWithClientError(anonymous.secret.mutate(), 'anonymous secret');
      assertClientError(err, { code: 'UNAUTHORIZED', httpStatus: 401, path: 'secret', message: SIGN_IN });
      assert.equal(retryable(err), false);
      const ex = single(rec);
      assert.equal(ex.method, 'POST');
      assert.equal(ex.headers['authorization'], undefined);
      assert.equal(ex.status, 401);
    });

    it('member: the refined context reaches the handler (the user name)', async () => {
      assert.equal(await withTimeout(member.secret.mutate()), 'access granted to abc');
      const ex = single(rec);
      assert.equal(ex.headers['authorization'], 'ABC');
      assert.equal(ex.status, 200);
    });

    it('admin: a different refined context', async () => {
      assert.equal(await withTimeout(admin.secret.mutate()), 'access granted to root');
    });

    it('the async function form of `headers` works as well', async () => {
      const fn = createTRPCClient<AppRouter>({
        links: [httpLink<AppRouter>({ url: server.url, fetch: rec.fetch, headers: async () => ({ authorization: 'ABC' }) })],
      });
      assert.equal(await withTimeout(fn.secret.mutate()), 'access granted to abc');
    });

    it('an unknown Authorization value is anonymous', async () => {
      const stranger = createTRPCClient<AppRouter>({
        links: [httpLink<AppRouter>({ url: server.url, fetch: rec.fetch, headers: { authorization: 'abc' } })],
      });
      const err = await rejectsWithClientError(stranger.secret.mutate(), 'lower-case abc');
      assertClientError(err, { code: 'UNAUTHORIZED', httpStatus: 401, path: 'secret', message: SIGN_IN });
    });

    it('whoami (no middleware) reports every caller, anonymous included', async () => {
      assert.deepEqual(await withTimeout(anonymous.whoami.query()), { authenticated: false, user: null });
      assert.deepEqual(await withTimeout(member.whoami.query()), { authenticated: true, user: 'abc' });
      assert.deepEqual(await withTimeout(admin.whoami.query()), { authenticated: true, user: 'root' });
      assert.ok(rec.exchanges.every((e) => e.method === 'GET' && e.status === 200));
    });
  });

  describe('a middleware stack with meta (`admin.ban`: RequireUser, then RequireRole(Admin))', () => {
    it('anonymous → UNAUTHORIZED (the first middleware stops the chain)', async () => {
      const err = await rejectsWithClientError(anonymous.admin.ban.mutate({ userId: 'u1' }), 'anonymous ban');
      assertClientError(err, { code: 'UNAUTHORIZED', httpStatus: 401, path: 'admin.ban', message: SIGN_IN });
      assert.equal(retryable(err), false);
    });

    it('member → FORBIDDEN 403 naming the Admin role', async () => {
      const err = await rejectsWithClientError(member.admin.ban.mutate({ userId: 'u1' }), 'member ban');
      assertClientError(err, { code: 'FORBIDDEN', httpStatus: 403, path: 'admin.ban', message: /Admin role/ });
      assert.equal(retryable(err), false);
    });

    it('admin → the handler runs with the refined context and the input', async () => {
      assert.equal(await withTimeout(admin.admin.ban.mutate({ userId: 'u1' })), 'root banned u1');
      const ex = single(rec);
      assert.equal(ex.body, '{"userId":"u1"}');
      assert.equal(ex.status, 200);
    });

    it('admin with an invalid input → BAD_REQUEST with the validation issue', async () => {
      const err = await rejectsWithClientError(admin.admin.ban.mutate({ userId: '' }), 'admin ban ""');
      assertClientError(err, { code: 'BAD_REQUEST', httpStatus: 400, path: 'admin.ban', message: /^Invalid input: / });
      assert.deepEqual(
        err.data?.issues?.map((i) => [i.path, i.code]),
        [[['userId'], 'too_small']],
      );
      assert.deepEqual(Object.keys(err.data?.zodError?.fieldErrors ?? {}), ['userId']);
      assert.equal(retryable(err), false);
    });

    it('middleware runs before input validation: a bad input from anonymous/member callers is UNAUTHORIZED/FORBIDDEN', async () => {
      const empty = await rejectsWithClientError(anonymous.admin.ban.mutate({ userId: '' }), 'anonymous ban ""');
      assertClientError(empty, { code: 'UNAUTHORIZED', httpStatus: 401, path: 'admin.ban', message: SIGN_IN });
      assert.equal(empty.data?.issues, undefined, 'no validation issues: validation never ran');

      const missing = await rejectsWithClientError(
        anonymous.admin.ban.mutate({} as BanInput),
        'anonymous ban {}',
      );
      assertClientError(missing, { code: 'UNAUTHORIZED', httpStatus: 401, path: 'admin.ban', message: SIGN_IN });

      const forbidden = await rejectsWithClientError(member.admin.ban.mutate({ userId: '' }), 'member ban ""');
      assertClientError(forbidden, { code: 'FORBIDDEN', httpStatus: 403, path: 'admin.ban' });
      assert.equal(forbidden.data?.issues, undefined);

      // The same missing field from an admin does reach validation.
      const invalid = await rejectsWithClientError(admin.admin.ban.mutate({} as BanInput), 'admin ban {}');
      assertClientError(invalid, { code: 'BAD_REQUEST', httpStatus: 400, path: 'admin.ban' });
      assert.deepEqual(
        invalid.data?.issues?.map((i) => [i.path, i.code]),
        [[['userId'], 'invalid_type']],
      );
      assert.match(invalid.data?.issues?.[0]?.message ?? '', /^Required/);
    });
  });

  describe('router-level middleware (`private.*` behind RequireUser)', () => {
    it('anonymous → UNAUTHORIZED with the nested path', async () => {
      const err = await rejectsWithClientError(anonymous.private.me.query(), 'anonymous private.me');
      assertClientError(err, { code: 'UNAUTHORIZED', httpStatus: 401, path: 'private.me', message: SIGN_IN });
      assert.equal(single(rec).method, 'GET');
    });

    it('member and admin get their refined context', async () => {
      assert.deepEqual(await withTimeout(member.private.me.query()), { user: 'abc', role: 'member' });
      assert.deepEqual(await withTimeout(admin.private.me.query()), { user: 'root', role: 'admin' });
    });
  });

  describe('around middleware that short-circuits (`limited`: 3 calls per key)', () => {
    it('3 calls succeed, the 4th and 5th are TOO_MANY_REQUESTS 429', async () => {
      const key = uniqueKey('limit');
      for (let i = 1; i <= 3; i++) {
        assert.equal(await withTimeout(anonymous.limited.query({ key }), undefined, `limited #${i}`), key);
      }
      for (const n of [4, 5]) {
        const err = await rejectsWithClientError(anonymous.limited.query({ key }), `limited #${n}`);
        assertClientError(err, { code: 'TOO_MANY_REQUESTS', httpStatus: 429, path: 'limited' });
        assert.match(err.message, new RegExp(`\\b${n}\\b`), 'the message counts the calls');
        assert.equal(retryable(err), false, '429 is a 4xx: not retryable by this formatter');
      }
      assert.deepEqual(
        rec.exchanges.map((e) => e.status),
        [200, 200, 200, 429, 429],
      );
    });

    it('keys are counted separately', async () => {
      const a = uniqueKey('a');
      const b = uniqueKey('b');
      for (let i = 0; i < 3; i++) await withTimeout(anonymous.limited.query({ key: a }));
      await rejectsWithClientError(anonymous.limited.query({ key: a }), 'a #4');
      assert.equal(await withTimeout(member.limited.query({ key: b })), b);
    });
  });

  describe('Audit (around middleware over the whole router) and `audit.log`', () => {
    /** The audit log of `path` (fetched without being recorded by the test's recorder). */
    async function auditOf(path: string): Promise<AuditEntry[]> {
      return withTimeout(anonymous.audit.log.query({ path }), undefined, `audit.log ${path}`);
    }

    it('a successful query: path, kind, input, ok and the output JSON', async () => {
      const name = uniqueKey('audited');
      assert.deepEqual(await withTimeout(anonymous.greet.query({ name })), { text: `hi ${name}`, times: 1 });
      const entries = (await auditOf('greet')).filter(
        (e) => typeof e.input === 'object' && e.input !== null && !Array.isArray(e.input) && e.input['name'] === name,
      );
      assert.equal(entries.length, 1, 'exactly one entry for this call');
      const entry = entries[0]!;
      assert.equal(entry.path, 'greet');
      assert.equal(entry.kind, 'query');
      assert.deepEqual(entry.input, { name });
      assert.equal(entry.ok, true);
      assert.equal(entry.errorCode, null);
      assert.equal(typeof entry.output, 'string');
      assert.deepEqual(JSON.parse(entry.output!), { text: `hi ${name}`, times: 1 });
      assert.ok(entry.output!.includes(`hi ${name}`));
      assert.ok(Number.isInteger(entry.millis) && entry.millis >= 0, `millis: ${entry.millis}`);
    });

    it('a failed query: ok false, the error code, no output, no input key', async () => {
      const before = (await auditOf('notFound')).length;
      await rejectsWithClientError(anonymous.notFound.query(), 'notFound');
      const entries = await auditOf('notFound');
      assert.equal(entries.length, before + 1);
      const entry = entries.at(-1)!;
      assert.equal(entry.path, 'notFound');
      assert.equal(entry.kind, 'query');
      assert.equal(entry.ok, false);
      assert.equal(entry.errorCode, 'NOT_FOUND');
      assert.equal(entry.output, null);
      assert.equal('input' in entry, false, 'no input was sent');
    });

    it('Audit wraps the inner middleware: calls they reject are recorded with their code', async () => {
      const userId = uniqueKey('victim');
      await rejectsWithClientError(member.admin.ban.mutate({ userId }), 'member ban');
      await rejectsWithClientError(anonymous.admin.ban.mutate({ userId }), 'anonymous ban');
      assert.equal(await withTimeout(admin.admin.ban.mutate({ userId })), `root banned ${userId}`);
      const entries = (await auditOf('admin.ban')).filter((e) => JSON.stringify(e.input) === JSON.stringify({ userId }));
      assert.deepEqual(
        entries.map((e) => [e.kind, e.ok, e.errorCode, e.output]),
        [
          ['mutation', false, 'FORBIDDEN', null],
          ['mutation', false, 'UNAUTHORIZED', null],
          ['mutation', true, null, JSON.stringify(`root banned ${userId}`)],
        ],
      );
    });

    it('input validation failures happen inside the chain, so Audit records BAD_REQUEST', async () => {
      const before = (await auditOf('admin.ban')).length;
      await rejectsWithClientError(admin.admin.ban.mutate({ userId: '' }), 'admin ban ""');
      const entries = await auditOf('admin.ban');
      assert.equal(entries.length, before + 1);
      assert.deepEqual(entries.at(-1), {
        ...entries.at(-1),
        path: 'admin.ban',
        kind: 'mutation',
        input: { userId: '' },
        ok: false,
        errorCode: 'BAD_REQUEST',
        output: null,
      });
    });
  });

  describe('error formatter: data.retryable', () => {
    it('true for 5xx (boom 500, notImpl 501), false for 4xx', async () => {
      const boom = await rejectsWithClientError(anonymous.boom.query(), 'boom');
      assertClientError(boom, { code: 'INTERNAL_SERVER_ERROR', httpStatus: 500, path: 'boom' });
      assert.equal(retryable(boom), true);

      const notImpl = await rejectsWithClientError(anonymous.notImpl.query(), 'notImpl');
      assertClientError(notImpl, { code: 'NOT_IMPLEMENTED', httpStatus: 501, path: 'notImpl' });
      assert.equal(retryable(notImpl), true);

      const notFound = await rejectsWithClientError(anonymous.notFound.query(), 'notFound');
      assert.equal(retryable(notFound), false);

      const unauthorized = await rejectsWithClientError(anonymous.unauthorized.query(), 'unauthorized');
      assert.equal(retryable(unauthorized), false);
    });

    it('framework errors are formatted too: unknown procedure, and a failed createContext', async () => {
      const untyped = anonymous as unknown as { nope: { query(): Promise<unknown> } };
      const err = await rejectsWithClientError(untyped.nope.query(), 'nope');
      assertClientError(err, { code: 'NOT_FOUND', httpStatus: 404, path: 'nope' });
      assert.equal(retryable(err), false);

      const refused = createTRPCClient<AppRouter>({
        links: [httpLink<AppRouter>({ url: server.url, fetch: rec.fetch, headers: { 'x-fail-context': '1' } })],
      });
      const ctxErr = await rejectsWithClientError(refused.hello.query(), 'hello with x-fail-context');
      // As in the reference server (resolveResponse throws the stored createContext error inside
      // each call), the error belongs to the call and carries its path.
      assertClientError(ctxErr, { code: 'FORBIDDEN', httpStatus: 403, path: 'hello' });
      assert.equal(retryable(ctxErr), false);
    });

    it('the formatter field sits beside the standard ones in the wire envelope', async () => {
      await rejectsWithClientError(anonymous.boom.query(), 'boom');
      const body = JSON.parse(single(rec).responseBody ?? 'null') as { error: { data: Record<string, unknown> } };
      assert.deepEqual(
        { ...body.error.data, stack: undefined },
        { code: 'INTERNAL_SERVER_ERROR', httpStatus: 500, path: 'boom', retryable: true, stack: undefined },
      );
    });
  });

  describe('httpBatchLink', () => {
    it('anonymous query batch: the middleware rejects one call (401), the others succeed → 207', async () => {
      const client = batchClient(server, rec, 'anonymous');
      const key = uniqueKey('batch');
      const [who, me, hello, limited] = await settleAll([
        client.whoami.query(),
        client.private.me.query(),
        client.hello.query(),
        client.limited.query({ key }),
      ]);
      const ex = single(rec);
      assert.equal(ex.method, 'GET');
      assert.deepEqual(pathsOf(ex.url, server.url), ['whoami', 'private.me', 'hello', 'limited']);
      assert.deepEqual(inputParam(ex.url), { 3: { key } });
      assert.equal(ex.headers['authorization'], undefined);
      assert.equal(ex.status, 207);

      assert.deepEqual(fulfilled(who, 'whoami'), { authenticated: false, user: null });
      assert.equal(fulfilled(hello, 'hello'), 'hello world');
      assert.equal(fulfilled(limited, 'limited'), key);
      const err = await rejection(me, 'private.me');
      assertClientError(err, { code: 'UNAUTHORIZED', httpStatus: 401, path: 'private.me', message: SIGN_IN, responseStatus: 207 });
      assert.equal(retryable(err), false);
    });

    it('member mutation batch: refined context reaches `secret`, `admin.ban` is FORBIDDEN → 207', async () => {
      const client = batchClient(server, rec, 'member');
      const [secret, ban, done] = await settleAll([
        client.secret.mutate(),
        client.admin.ban.mutate({ userId: 'u2' }),
        client.noInputMut.mutate(),
      ]);
      const ex = single(rec);
      assert.equal(ex.method, 'POST');
      assert.deepEqual(pathsOf(ex.url, server.url), ['secret', 'admin.ban', 'noInputMut']);
      assert.deepEqual(JSON.parse(ex.body ?? 'null'), { 1: { userId: 'u2' } });
      assert.equal(ex.headers['authorization'], 'ABC', 'the header is sent once for the whole batch');
      assert.equal(ex.status, 207);

      assert.equal(fulfilled(secret, 'secret'), 'access granted to abc');
      assert.equal(fulfilled(done, 'noInputMut'), 'done');
      const err = await rejection(ban, 'admin.ban');
      assertClientError(err, { code: 'FORBIDDEN', httpStatus: 403, path: 'admin.ban', message: /Admin role/, responseStatus: 207 });
    });

    it('anonymous mutation batch: one UNAUTHORIZED among successes → 207', async () => {
      const client = batchClient(server, rec, 'anonymous');
      const [secret, post, done] = await settleAll([
        client.secret.mutate(),
        client.addPost.mutate({ title: 'batch' }),
        client.noInputMut.mutate(),
      ]);
      assert.equal(single(rec).status, 207);
      assert.deepEqual(fulfilled(post, 'addPost'), { id: 1, title: 'batch' });
      assert.equal(fulfilled(done, 'noInputMut'), 'done');
      const err = await rejection(secret, 'secret');
      assertClientError(err, { code: 'UNAUTHORIZED', httpStatus: 401, path: 'secret', message: SIGN_IN, responseStatus: 207 });
    });

    it('admin mutation batch: every call sees the admin context → 200', async () => {
      const client = batchClient(server, rec, 'admin');
      const [secret, ban] = await settleAll([client.secret.mutate(), client.admin.ban.mutate({ userId: 'u3' })]);
      assert.equal(fulfilled(secret, 'secret'), 'access granted to root');
      assert.equal(fulfilled(ban, 'admin.ban'), 'root banned u3');
      assert.equal(single(rec).status, 200);
    });

    it('every call rejected by the middleware with the same code → that status (401)', async () => {
      const client = batchClient(server, rec, 'anonymous');
      const results = await settleAll([client.secret.mutate(), client.admin.ban.mutate({ userId: '' })]);
      assert.equal(single(rec).status, 401);
      for (const [i, r] of results.entries()) {
        const err = await rejection(r, `item ${i}`);
        assertClientError(err, { code: 'UNAUTHORIZED', httpStatus: 401, message: SIGN_IN });
      }
    });

    it('the rate limit counts the calls inside one batch: 3 succeed, 2 get 429 → 207', async () => {
      const client = batchClient(server, rec, 'member');
      const key = uniqueKey('batch-limit');
      const results = await settleAll([1, 2, 3, 4, 5].map(() => client.limited.query({ key })));
      assert.equal(single(rec).status, 207);
      const ok = results.filter((r) => r.status === 'fulfilled');
      assert.equal(ok.length, 3, 'three calls within the limit');
      for (const r of ok) assert.equal(fulfilled(r), key);
      const limited = results.filter((r) => r.status === 'rejected');
      assert.equal(limited.length, 2, 'two calls over the limit');
      for (const r of limited) {
        const err = await rejection(r, 'limited over the limit');
        assertClientError(err, { code: 'TOO_MANY_REQUESTS', httpStatus: 429, path: 'limited', responseStatus: 207 });
      }
    });
  });
});
