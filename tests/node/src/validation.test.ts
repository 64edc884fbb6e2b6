/**
 * Input and output validation conformance (tests/src/validated.rs): constraints declared once on
 * the Rust types, every problem reported at once in `error.data.issues` (zod issue codes) and in
 * the zod `flatten()` form `error.data.zodError`, as the official `@trpc/client` delivers them.
 *
 * Profiles: `plain` ignores unknown input fields and never validates outputs; `options` rejects
 * unknown fields (`unrecognized_keys`) and, in dev mode, validates outputs too.
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { createTRPCClient, httpBatchLink, httpLink, type TRPCClient } from '@trpc/client';
import type { AppRouter, Signup, ValidationIssue } from '../generated/AppRouter.js';
import { startServer, type RunningServer } from './server.js';
import {
  assertClientError,
  fulfilled,
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

/** A typed `httpLink` client recording into `rec`. */
function linkClient(server: RunningServer, rec: Recorder): TRPCClient<AppRouter> {
  return createTRPCClient<AppRouter>({ links: [httpLink<AppRouter>({ url: server.url, fetch: rec.fetch })] });
}

/** The only exchange recorded since the last `clear()`. */
function single(rec: Recorder): Exchange {
  assert.equal(rec.exchanges.length, 1, `expected exactly one request, got ${rec.exchanges.length}`);
  return rec.exchanges[0]!;
}

/** A signup that satisfies every constraint of validated.rs. */
const VALID: Signup = {
  name: 'Ann',
  email: 'ann@example.com',
  age: 30,
  homepage: 'https://ann.example/',
  handle: 'ann42',
  tags: ['ab', 'cd'],
  address: { city: 'Oslo', zip: '12345' },
  contact: { kind: 'phone', number: '+4712345678' },
  scores: { math: 90, art: 0 },
  terms: 'I agree',
};

/**
 * Breaks a constraint in every field (and in nested ones), yet fully type-correct TypeScript:
 * the constraints live only in the server's schema.
 */
const EVERYTHING_WRONG: Signup = {
  name: '',
  email: 'not-an-email',
  age: 200,
  homepage: 'not a url',
  handle: 'AB',
  tags: ['x', 'ok'],
  address: { city: 'O', zip: '12a' },
  contact: { kind: 'phone', number: '12' },
  scores: { math: 101, art: 50 },
  terms: 'no',
};

/** `['address', 'zip']` → `'address.zip'`, `['tags', 0]` → `'tags.0'`. */
function pathString(path: ValidationIssue['path']): string {
  return path.join('.');
}

/** The `[path, code]` pairs of the client-visible issues, sorted for set comparison. */
function pairs(issues: readonly ValidationIssue[]): Array<[string, string]> {
  const key = ([path, code]: [string, string]): string => `${path}\u0000${code}`;
  return issues
    .map((i): [string, string] => [pathString(i.path), i.code])
    .sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}

/**
 * Asserts a BAD_REQUEST validation failure of `path` and returns its issues, after checking the
 * shape of every issue and that `zodError` is exactly zod's `flatten()` of those issues.
 */
function validationIssues(err: AppClientError, path: string, responseStatus?: number): ValidationIssue[] {
  assertClientError(err, { code: 'BAD_REQUEST', httpStatus: 400, path, message: /^Invalid input: /, responseStatus });
  assert.equal(err.data?.retryable, false);
  const issues = err.data?.issues;
  assert.ok(Array.isArray(issues) && issues.length > 0, `no data.issues: ${JSON.stringify(err.data)}`);
  for (const issue of issues) {
    assert.ok(Array.isArray(issue.path), 'issue.path is an array');
    for (const seg of issue.path) assert.ok(typeof seg === 'string' || typeof seg === 'number', `path segment ${String(seg)}`);
    assert.equal(typeof issue.code, 'string');
    assert.ok(typeof issue.message === 'string' && issue.message.length > 0, 'issue.message is a non-empty string');
  }
  // zod's flatten(): issues with a path go to fieldErrors[path[0]] (in order), the others to formErrors.
  const fieldErrors: Record<string, string[]> = {};
  const formErrors: string[] = [];
  for (const issue of issues) {
    const [first] = issue.path;
    if (first === undefined) formErrors.push(issue.message);
    else (fieldErrors[String(first)] ??= []).push(issue.message);
  }
  assert.deepEqual(err.data?.zodError, { formErrors, fieldErrors }, 'zodError is the flatten() of issues');
  // The message leads with the first issue.
  const head = issues[0]!;
  const where = head.path.length === 0 ? '' : `${pathString(head.path)}: `;
  assert.ok(err.message.startsWith(`Invalid input: ${where}${head.message}`), `message: ${err.message}`);
  return issues;
}

describe('validation, plain profile', () => {
  let server: RunningServer;
  const rec = recorder();
  let client: TRPCClient<AppRouter>;

  before(async () => {
    server = await startServer('plain');
    client = linkClient(server, rec);
  }, HOOK);
  after(async () => {
    await server?.stop();
  }, HOOK);
  beforeEach(() => rec.clear());

  it('a valid signup succeeds', async () => {
    assert.deepEqual(await withTimeout(client.validated.signup.mutate(VALID)), { name: 'Ann', tags: 2 });
    const ex = single(rec);
    assert.equal(ex.method, 'POST');
    assert.equal(ex.status, 200);
  });

  it('a valid signup without the optional homepage, with the email contact variant and boundary values', async () => {
    const { homepage: _omitted, ...rest } = VALID;
    const input: Signup = {
      ...rest,
      name: 'x'.repeat(32),
      age: 13,
      handle: 'abc',
      tags: ['aa', 'bb', 'cc', 'dd', 'ee'],
      contact: { kind: 'email', address: 'a@b.co' },
      scores: { top: 100, bottom: 0 },
      terms: 'agree',
    };
    assert.deepEqual(await withTimeout(client.validated.signup.mutate(input)), { name: input.name, tags: 5 });
  });

  it('every problem is reported at once, with paths and zod codes', async () => {
    const err = await rejectsWithClientError(client.validated.signup.mutate(EVERYTHING_WRONG), 'signup(everything wrong)');
    const issues = validationIssues(err, 'validated.signup');
    assert.deepEqual(pairs(issues), [
      ['address.city', 'too_small'],
      ['address.zip', 'invalid_string'],
      ['age', 'too_big'],
      ['contact.number', 'invalid_string'],
      ['email', 'invalid_string'],
      ['handle', 'invalid_string'],
      ['homepage', 'invalid_string'],
      ['name', 'too_small'],
      ['scores.math', 'too_big'],
      ['tags.0', 'too_small'],
      ['terms', 'invalid_string'],
    ]);
    // Array indices stay numbers, as in zod.
    const tag = issues.find((i) => i.path[0] === 'tags');
    assert.deepEqual(tag?.path, ['tags', 0]);
    // The messages carry the bounds / what was expected.
    const byPath = new Map(issues.map((i) => [pathString(i.path), i.message]));
    assert.match(byPath.get('age') ?? '', /130/);
    assert.match(byPath.get('scores.math') ?? '', /100/);
    assert.match(byPath.get('name') ?? '', /1/);
    assert.match(byPath.get('email') ?? '', /email/i);
    assert.match(byPath.get('homepage') ?? '', /url/i);
    // zodError: one key per top-level field with a problem, no form errors.
    assert.deepEqual(Object.keys(err.data?.zodError?.fieldErrors ?? {}).sort(), [
      'address', 'age', 'contact', 'email', 'handle', 'homepage', 'name', 'scores', 'tags', 'terms',
    ]);
    assert.equal(err.data?.zodError?.fieldErrors['address']?.length, 2, 'both address problems under `address`');
    assert.deepEqual(err.data?.zodError?.formErrors, []);
    assert.match(err.message, /10 more issues/);
  });

  it('collection bounds: empty tags and a negative/string score', async () => {
    const input = { ...VALID, tags: [], scores: { a: -1, b: 'x' } } as unknown as Signup;
    const issues = validationIssues(
      await rejectsWithClientError(client.validated.signup.mutate(input), 'signup(bounds)'),
      'validated.signup',
    );
    const seen = new Set(pairs(issues).map(([p, c]) => `${p} ${c}`));
    assert.ok(seen.has('tags too_small'), [...seen].join(', '));
    assert.ok(seen.has('scores.a too_small'), [...seen].join(', '));
    assert.ok(seen.has('scores.b invalid_type'), [...seen].join(', '));
    assert.deepEqual(
      [...new Set(issues.map((i) => String(i.path[0])))].sort(),
      ['scores', 'tags'],
      'only the broken fields',
    );
  });

  it('too many tags → too_big on `tags`', async () => {
    const input: Signup = { ...VALID, tags: ['aa', 'bb', 'cc', 'dd', 'ee', 'ff'] };
    const issues = validationIssues(
      await rejectsWithClientError(client.validated.signup.mutate(input), 'signup(6 tags)'),
      'validated.signup',
    );
    assert.deepEqual(pairs(issues), [['tags', 'too_big']]);
    assert.match(issues[0]!.message, /5/);
  });

  it('a missing required field → invalid_type at its path with a "Required" message', async () => {
    const { email: _missing, ...rest } = VALID;
    const err = await rejectsWithClientError(
      client.validated.signup.mutate(rest as unknown as Signup),
      'signup(no email)',
    );
    const issues = validationIssues(err, 'validated.signup');
    assert.deepEqual(issues, [{ path: ['email'], code: 'invalid_type', message: 'Required: expected a string' }]);
    assert.deepEqual(err.data?.zodError?.fieldErrors, { email: ['Required: expected a string'] });
    assert.equal(err.message, 'Invalid input: email: Required: expected a string');
  });

  it('a missing nested field and a missing tagged-enum field', async () => {
    const input = { ...VALID, address: { city: 'Oslo' } } as unknown as Signup;
    const nested = validationIssues(
      await rejectsWithClientError(client.validated.signup.mutate(input), 'signup(no zip)'),
      'validated.signup',
    );
    assert.deepEqual(pairs(nested), [['address.zip', 'invalid_type']]);
    assert.match(nested[0]!.message, /^Required: expected a string/);

    const { contact: _missing, ...rest } = VALID;
    const noContact = validationIssues(
      await rejectsWithClientError(client.validated.signup.mutate(rest as unknown as Signup), 'signup(no contact)'),
      'validated.signup',
    );
    assert.deepEqual(pairs(noContact), [['contact', 'invalid_type']]);
    assert.match(noContact[0]!.message, /^Required/);
  });

  it('an empty object lists every required field', async () => {
    const issues = validationIssues(
      await rejectsWithClientError(client.validated.signup.mutate({} as Signup), 'signup({})'),
      'validated.signup',
    );
    assert.deepEqual(
      issues.map((i) => pathString(i.path)).sort(),
      ['address', 'age', 'contact', 'email', 'handle', 'name', 'scores', 'tags', 'terms'],
      'every required field, and not the optional `homepage`',
    );
    assert.ok(issues.every((i) => i.code === 'invalid_type' && i.message.startsWith('Required')));
  });

  it('a wrong type → invalid_type ("Expected …, received …")', async () => {
    const input = { ...VALID, name: 5, age: 3.5 } as unknown as Signup;
    const issues = validationIssues(
      await rejectsWithClientError(client.validated.signup.mutate(input), 'signup(types)'),
      'validated.signup',
    );
    assert.deepEqual(pairs(issues), [['age', 'invalid_type'], ['name', 'invalid_type']]);
    for (const issue of issues) assert.match(issue.message, /^Expected .+, received .+/);
  });

  it('a non-object input → a form error (path [])', async () => {
    const err = await rejectsWithClientError(client.validated.signup.mutate(42 as unknown as Signup), 'signup(42)');
    const issues = validationIssues(err, 'validated.signup');
    assert.deepEqual(pairs(issues), [['', 'invalid_type']]);
    assert.deepEqual(err.data?.zodError?.fieldErrors, {});
    assert.equal(err.data?.zodError?.formErrors.length, 1);
  });

  it('a wrong tag in the tagged enum `contact` → one issue at contact(.kind)', async () => {
    const input = { ...VALID, contact: { kind: 'fax', number: '123456' } } as unknown as Signup;
    const issues = validationIssues(
      await rejectsWithClientError(client.validated.signup.mutate(input), 'signup(fax)'),
      'validated.signup',
    );
    // Like zod's discriminatedUnion: one issue at the tag, naming every valid tag.
    assert.deepEqual(pairs(issues), [['contact.kind', 'invalid_union_discriminator']]);
    assert.equal(issues[0]!.message, 'Expected "email" | "phone", received "fax"');
  });

  it('the right tag with the other variant’s fields → the matching variant’s problems only', async () => {
    const input = { ...VALID, contact: { kind: 'email', number: '123456' } } as unknown as Signup;
    const issues = validationIssues(
      await rejectsWithClientError(client.validated.signup.mutate(input), 'signup(email without address)'),
      'validated.signup',
    );
    assert.deepEqual(pairs(issues), [['contact.address', 'invalid_type']]);
    assert.match(issues[0]!.message, /^Required/);

    const badEmail: Signup = { ...VALID, contact: { kind: 'email', address: 'nope' } };
    const emailIssues = validationIssues(
      await rejectsWithClientError(client.validated.signup.mutate(badEmail), 'signup(bad email contact)'),
      'validated.signup',
    );
    assert.deepEqual(pairs(emailIssues), [['contact.address', 'invalid_string']]);
  });

  it('`contact` that is not an object at all → invalid_union at `contact`', async () => {
    const input = { ...VALID, contact: 'call me' } as unknown as Signup;
    const issues = validationIssues(
      await rejectsWithClientError(client.validated.signup.mutate(input), 'signup(contact string)'),
      'validated.signup',
    );
    assert.deepEqual(pairs(issues), [['contact', 'invalid_union']]);
  });

  it('unknown fields are ignored (plain profile), top-level and nested', async () => {
    const input = { ...VALID, extra: 1, address: { ...VALID.address, floor: 3 } } as unknown as Signup;
    assert.deepEqual(await withTimeout(client.validated.signup.mutate(input)), { name: 'Ann', tags: 2 });
    assert.deepEqual(JSON.parse(single(rec).body ?? 'null').extra, 1, 'the client did send the field');
  });

  it('no input at all → BAD_REQUEST', async () => {
    const untyped = client.validated.signup as unknown as { mutate(): Promise<unknown> };
    const err = await rejectsWithClientError(untyped.mutate(), 'signup()');
    assertClientError(err, { code: 'BAD_REQUEST', httpStatus: 400, path: 'validated.signup' });
  });

  it('httpBatchLink: three signups, the middle one invalid → 207, each promise gets its own outcome', async () => {
    const batch = createTRPCClient<AppRouter>({
      links: [httpBatchLink<AppRouter>({ url: server.url, fetch: rec.fetch })],
    });
    const second: Signup = { ...VALID, name: 'Bo', age: 12, address: { city: 'Oslo', zip: 'x' } };
    const third: Signup = { ...VALID, name: 'Cy', tags: ['one'] };
    const [a, b, c] = await settleAll([
      batch.validated.signup.mutate(VALID),
      batch.validated.signup.mutate(second),
      batch.validated.signup.mutate(third),
    ]);
    const ex = single(rec);
    assert.equal(ex.method, 'POST');
    assert.equal(ex.url.searchParams.get('batch'), '1');
    assert.equal(ex.status, 207);
    assert.deepEqual(fulfilled(a, 'first'), { name: 'Ann', tags: 2 });
    assert.deepEqual(fulfilled(c, 'third'), { name: 'Cy', tags: 1 });
    const err = await rejection(b, 'second');
    const issues = validationIssues(err, 'validated.signup', 207);
    assert.deepEqual(pairs(issues), [['address.zip', 'invalid_string'], ['age', 'too_small']]);

    // The raw batch body: the error item carries the same issues as the client error.
    const body = JSON.parse(ex.responseBody ?? 'null') as Array<{ error?: { data: { issues: unknown } } }>;
    assert.equal(body.length, 3);
    assert.deepEqual(body[1]?.error?.data.issues, issues);
  });

  it('validated.badOutput: no output validation outside dev mode → {n: 99}', async () => {
    assert.deepEqual(await withTimeout(client.validated.badOutput.query()), { n: 99 });
  });
});

describe('validation, options profile (unknown fields rejected, dev mode output validation)', () => {
  let server: RunningServer;
  const rec = recorder();
  let client: TRPCClient<AppRouter>;

  before(async () => {
    server = await startServer('options');
    client = linkClient(server, rec);
  }, HOOK);
  after(async () => {
    await server?.stop();
  }, HOOK);
  beforeEach(() => rec.clear());

  it('a valid signup succeeds', async () => {
    assert.deepEqual(await withTimeout(client.validated.signup.mutate(VALID)), { name: 'Ann', tags: 2 });
  });

  it('an unknown top-level field → unrecognized_keys at [] (a form error)', async () => {
    const input = { ...VALID, extra: 1 } as unknown as Signup;
    const err = await rejectsWithClientError(client.validated.signup.mutate(input), 'signup(extra)');
    const issues = validationIssues(err, 'validated.signup');
    assert.deepEqual(pairs(issues), [['', 'unrecognized_keys']]);
    assert.match(issues[0]!.message, /extra/);
    assert.deepEqual(err.data?.zodError?.fieldErrors, {});
    assert.equal(err.data?.zodError?.formErrors.length, 1);
  });

  it('unknown nested fields are reported at their object, together with other problems', async () => {
    const input = {
      ...VALID,
      age: 7,
      contact: { kind: 'email', address: 'a@b.co', x: 2 },
      address: { ...VALID.address, floor: 3 },
      extra: 1,
    } as unknown as Signup;
    const err = await rejectsWithClientError(client.validated.signup.mutate(input), 'signup(nested extra)');
    const issues = validationIssues(err, 'validated.signup');
    assert.deepEqual(pairs(issues), [
      ['', 'unrecognized_keys'],
      ['address', 'unrecognized_keys'],
      ['age', 'too_small'],
      ['contact', 'unrecognized_keys'],
    ]);
    const byPath = new Map(issues.map((i) => [pathString(i.path), i.message]));
    assert.match(byPath.get('contact') ?? '', /`x`/);
    assert.match(byPath.get('address') ?? '', /floor/);
  });

  it('unknown fields are rejected in other procedures too (admin.ban), after the middleware', async () => {
    const admin = createTRPCClient<AppRouter>({
      links: [httpLink<AppRouter>({ url: server.url, fetch: rec.fetch, headers: { authorization: 'ADMIN' } })],
    });
    const input = { userId: 'u', x: 1 } as unknown as { userId: string };
    const issues = validationIssues(
      await rejectsWithClientError(admin.admin.ban.mutate(input), 'ban(extra)'),
      'admin.ban',
    );
    assert.deepEqual(pairs(issues), [['', 'unrecognized_keys']]);
    // An anonymous caller is stopped by the middleware before validation looks at the keys.
    const anon = await rejectsWithClientError(client.admin.ban.mutate(input), 'anonymous ban(extra)');
    assertClientError(anon, { code: 'UNAUTHORIZED', httpStatus: 401, path: 'admin.ban' });
  });

  it('validated.badOutput: dev mode validates outputs → INTERNAL_SERVER_ERROR with the cause in data.stack', async () => {
    const err = await rejectsWithClientError(client.validated.badOutput.query(), 'badOutput');
    assertClientError(err, {
      code: 'INTERNAL_SERVER_ERROR',
      httpStatus: 500,
      path: 'validated.badOutput',
      message: 'Internal server error: output validation failed',
    });
    assert.equal(err.data?.retryable, true);
    assert.equal(err.data?.issues, undefined, 'output problems are not input issues');
    const stack = err.data?.stack ?? '';
    assert.equal(typeof err.data?.stack, 'string');
    assert.match(stack, /\bn\b/, `stack names the field: ${stack}`);
    assert.match(stack, /99/);
    assert.ok(!(single(rec).responseBody ?? '').includes('"n":99'), 'the invalid output is not sent as a result');
  });

  it('httpBatchLink (maxBatchSize 2): a valid and an invalid signup → 207', async () => {
    const batch = createTRPCClient<AppRouter>({
      links: [httpBatchLink<AppRouter>({ url: server.url, fetch: rec.fetch, maxItems: 2 })],
    });
    const [ok, bad] = await settleAll([
      batch.validated.signup.mutate(VALID),
      batch.validated.signup.mutate({ ...VALID, extra: true } as unknown as Signup),
    ]);
    assert.equal(single(rec).status, 207);
    assert.deepEqual(fulfilled(ok), { name: 'Ann', tags: 2 });
    const issues = validationIssues(await rejection(bad, 'extra in batch'), 'validated.signup', 207);
    assert.deepEqual(pairs(issues), [['', 'unrecognized_keys']]);
  });
});
