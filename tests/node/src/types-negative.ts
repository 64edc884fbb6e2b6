/**
 * Compile-only checks of the generated `AppRouter.d.ts` (trpc-types.md §7): correct calls must
 * type-check with exact types, wrong calls must not.
 *
 * Each `// @ts-expect-error` line below must produce a type error; if the generated declaration
 * ever becomes too permissive, the directive is unused and `tsc` fails the build (TS2578).
 *
 * Nothing here runs: the calls sit in exported functions that are never invoked (the file is not a
 * `*.test.js` and is not imported by any test).
 */
import { createTRPCClient, httpLink, type TRPCClientError } from '@trpc/client';
import type { inferRouterInputs, inferRouterOutputs, TRPC_ERROR_CODE_KEY, TRPC_ERROR_CODE_NUMBER } from '@trpc/server';
import type {
  AppRouter,
  AuditEntry,
  Count,
  CtxInfo,
  ErrorData,
  ErrorExtra,
  ErrorShape,
  Echoed,
  Everything,
  GreetInput,
  Greeting,
  JsonValue,
  Post,
  Me,
  RouterInputs,
  RouterOutputs,
  Shape,
  Signup,
  ValidationIssue,
  Welcome,
  WhoAmI,
} from '../generated/AppRouter.js';

/** `true` iff `A` and `B` are identical types (not merely mutually assignable). */
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
/** Compiles only when `T` is `true`. */
function assertType<T extends true>(): T | void {}

/** The typed client under test (only ever created inside the never-invoked functions below). */
function makeClient() {
  return createTRPCClient<AppRouter>({ links: [httpLink({ url: 'http://127.0.0.1:1/trpc' })] });
}

/** Correct calls with exact result types. */
export async function positives(): Promise<void> {
  const client = makeClient();
  const hello = await client.hello.query();
  assertType<Equal<typeof hello, string>>();

  const greeting = await client.greet.query({ name: 'a' });
  assertType<Equal<typeof greeting, { text: string; times: number }>>();
  await client.greet.query({ name: 'a', times: 2 });

  const ok = await client.nested.deep.q.query();
  assertType<Equal<typeof ok, { ok: boolean }>>();

  // Outputs streamed over JSONL: `Deferred<T>` fields are promises, `Streamed<T>` async iterables.
  const deferred = await client.deferred.query();
  assertType<Equal<typeof deferred, { now: number; later: Promise<string>; failing: Promise<string> }>>();
  const later: string = await deferred.later;
  void later;
  const items = await client.iterQuery.query();
  // The client maps the `void` return of the declared `AsyncIterable<number, void, any>` to `never`.
  assertType<Equal<typeof items, AsyncIterable<number, never, any>>>();
  for await (const n of items) {
    const item: number = n;
    void item;
  }
  // @ts-expect-error a deferred field is a promise, not the value
  const notYet: string = deferred.later;
  void notYet;

  const post = await client.addPost.mutate({ title: 't' });
  assertType<Equal<typeof post, Post>>();

  const done = await client.noInputMut.mutate();
  assertType<Equal<typeof done, string>>();

  // Optional whole inputs (`Option<T>`): the argument may be omitted, undefined, or null.
  const echoed = await client.echo.query();
  assertType<Equal<typeof echoed, Echoed>>();
  await client.echo.query({ any: ['json', 1, null] });
  await client.echoMut.mutate(null);
  await client.types.optional.query();
  await client.types.optional.query(undefined);
  await client.types.optional.query(null);
  const plusOne = await client.types.optional.query(1);
  assertType<Equal<typeof plusOne, number | null>>();

  // A unit result is `undefined` (not `void`, which tRPC would turn into `never`).
  const nothing = await client.types.nothing.mutate('x');
  assertType<Equal<typeof nothing, undefined>>();

  const sample = await client.types.sample.query();
  assertType<Equal<typeof sample.bigSigned, number>>();
  assertType<Equal<typeof sample.at, string>>();
  assertType<Equal<typeof sample.maybe, string | null>>();
  assertType<Equal<typeof sample.nickname, string | undefined>>();
  assertType<Equal<typeof sample.role, 'admin' | 'member'>>();
  assertType<Equal<typeof sample.pair, [number, string]>>();
  assertType<Equal<typeof sample.extra, JsonValue>>();
  // Narrowing on the discriminant of a tagged enum.
  if (sample.shape.kind === 'circle') {
    assertType<Equal<typeof sample.shape.radius, number>>();
  } else {
    assertType<Equal<typeof sample.shape.w, number>>();
  }
  const roundTripped = await client.types.roundTrip.mutate(sample);
  assertType<Equal<typeof roundTripped, Everything>>();

  const shapes = await client.types.shapes.query();
  assertType<Equal<typeof shapes, Shape[]>>();

  const ctx = await client.ctx.query();
  assertType<Equal<typeof ctx, CtxInfo>>();

  const waited = await client.slow.query(10, { signal: AbortSignal.timeout(1000) });
  assertType<Equal<typeof waited, { waited: number }>>();

  // Router-level inference helpers, both the generated aliases and tRPC's own.
  assertType<Equal<RouterOutputs['greet'], Greeting>>();
  assertType<Equal<RouterInputs['greet'], GreetInput>>();
  // tRPC widens an input that accepts `undefined` with `void`, which makes the argument optional.
  assertType<Equal<RouterInputs['types']['optional'], number | null | undefined | void>>();
  assertType<Equal<RouterInputs['echo'], JsonValue | undefined | void>>();
  assertType<Equal<RouterOutputs['types']['nothing'], undefined>>();
  assertType<Equal<inferRouterOutputs<AppRouter>['nested']['deep']['q'], { ok: boolean }>>();
  assertType<Equal<inferRouterInputs<AppRouter>['addPost'], { title: string }>>();

  // The error shape is tRPC's default one.
  const err = null as unknown as TRPCClientError<AppRouter>;
  type ErrData = NonNullable<typeof err.data>;
  assertType<Equal<ErrData['code'], TRPC_ERROR_CODE_KEY>>();
  assertType<Equal<ErrData['httpStatus'], number>>();
  assertType<Equal<ErrData['path'], string | undefined>>();
  assertType<Equal<NonNullable<typeof err.shape>['code'], TRPC_ERROR_CODE_NUMBER>>();
  if (err.data?.code === 'NOT_FOUND') {
    const status: number = err.data.httpStatus;
    void status;
  }

  // oxrpc's error data: validation issues, the zod flatten() view, and the formatter's field.
  assertType<Equal<typeof err.data, ErrorData & ErrorExtra | null | undefined>>();
  assertType<Equal<NonNullable<typeof err.shape>, ErrorShape>>();
  assertType<Equal<ErrData['issues'], ValidationIssue[] | undefined>>();
  assertType<Equal<ErrData['zodError'], { formErrors: string[]; fieldErrors: { [key: string]: string[] | undefined } } | undefined>>();
  assertType<Equal<ErrData['retryable'], boolean>>();
  assertType<Equal<ErrData['stack'], string | undefined>>();
  // `issues` and `zodError` are optional keys; `retryable` is required.
  assertType<Equal<{} extends Pick<ErrData, 'issues'> ? true : false, true>>();
  assertType<Equal<{} extends Pick<ErrData, 'zodError'> ? true : false, true>>();
  assertType<Equal<{} extends Pick<ErrData, 'retryable'> ? true : false, false>>();
  assertType<Equal<ValidationIssue, { path: Array<string | number>; code: string; message: string }>>();
  if (err.data) {
    const retryable: boolean = err.data.retryable;
    const firstSegment: string | number | undefined = err.data.issues?.[0]?.path[0];
    const emailErrors: string[] | undefined = err.data.zodError?.fieldErrors['email'];
    void [retryable, firstSegment, emailErrors];
  }

  // The middleware and validation procedures.
  const who = await client.whoami.query();
  assertType<Equal<typeof who, WhoAmI>>();
  assertType<Equal<typeof who.user, string | null>>();
  const secret = await client.secret.mutate();
  assertType<Equal<typeof secret, string>>();
  const banned = await client.admin.ban.mutate({ userId: 'u' });
  assertType<Equal<typeof banned, string>>();
  const me = await client.private.me.query();
  assertType<Equal<typeof me, Me>>();
  assertType<Equal<typeof me.role, 'member' | 'admin'>>();
  const limited = await client.limited.query({ key: 'k' });
  assertType<Equal<typeof limited, string>>();
  const log = await client.audit.log.query({ path: 'greet' });
  assertType<Equal<typeof log, AuditEntry[]>>();
  assertType<Equal<AuditEntry['errorCode'], string | null>>();
  const welcome = await client.validated.signup.mutate(null as unknown as Signup);
  assertType<Equal<typeof welcome, Welcome>>();
  assertType<Equal<RouterInputs['validated']['signup']['contact'], { kind: 'email'; address: string } | { kind: 'phone'; number: string }>>();
  const bounded = await client.validated.badOutput.query();
  assertType<Equal<typeof bounded, { n: number }>>();

  // Subscriptions: a tracked event reaches `onData` as the `{ id, data }` pair; untracked ones as is.
  const subscription = client.onCount.subscribe(
    { from: 10 },
    {
      onData(value) {
        assertType<Equal<typeof value, { id: string; data: Count }>>();
        const n: number = value.data.n;
        void n;
      },
    },
  );
  subscription.unsubscribe();
  client.onCount.subscribe(undefined, { onStopped() {} });
  client.onForever.subscribe(undefined, {
    onData(value) {
      assertType<Equal<typeof value, number>>();
    },
  });
  client.tokenTicks.subscribe({ token: 'ABC' }, {
    onData(value) {
      assertType<Equal<typeof value, number>>();
    },
  });
}

/** Wrong calls: every one of them must be a type error. */
export async function negatives(): Promise<void> {
  const client = makeClient();
  // @ts-expect-error wrong input type: `name` is a string
  await client.greet.query({ name: 5 });

  // @ts-expect-error missing required input
  await client.greet.query();

  // @ts-expect-error missing required field
  await client.greet.query({});

  // @ts-expect-error excess property
  await client.greet.query({ name: 'a', nope: true });

  // @ts-expect-error `times` is a number
  await client.greet.query({ name: 'a', times: '2' });

  // @ts-expect-error unknown procedure
  await client.nope.query();

  // @ts-expect-error unknown namespace
  await client.posts.list.query();

  // @ts-expect-error unknown procedure in a known namespace
  await client.types.missing.query();

  // @ts-expect-error `.mutate` on a query
  await client.hello.mutate();

  // @ts-expect-error `.query` on a mutation
  await client.addPost.query({ title: 't' });

  // @ts-expect-error `.subscribe` on a query
  client.hello.subscribe(undefined, {});

  // @ts-expect-error accessing a missing output field
  (await client.greet.query({ name: 'a' })).missing;

  // @ts-expect-error passing input to a procedure without input
  await client.hello.query({ x: 1 });

  // @ts-expect-error passing input to a mutation without input
  await client.noInputMut.mutate('x');

  // @ts-expect-error `types.nothing` requires a string input
  await client.types.nothing.mutate(1);

  // @ts-expect-error a unit-variant enum only accepts its variants
  await client.types.roundTrip.mutate({ ...(await client.types.sample.query()), role: 'root' });

  // @ts-expect-error a tagged enum variant with the other variant's fields
  await client.types.roundTrip.mutate({ ...(await client.types.sample.query()), shape: { kind: 'circle', w: 1 } });

  const sample = await client.types.sample.query();

  // @ts-expect-error `bigSigned` is a number, not a string
  const asString: string = sample.bigSigned;
  void asString;

  // @ts-expect-error `maybe` may be null
  sample.maybe.toLowerCase();

  // @ts-expect-error `nickname` may be absent
  sample.nickname.toLowerCase();

  // @ts-expect-error tuple element 0 is a number
  const first: string = sample.pair[0];
  void first;

  // @ts-expect-error `radius` only exists on the circle variant
  sample.shape.radius;

  // @ts-expect-error `types.optional` output may be null
  (await client.types.optional.query(1)).toFixed();

  const err = null as unknown as TRPCClientError<AppRouter>;

  // @ts-expect-error no such field in the error data
  err.data?.nope;

  // @ts-expect-error `retryable` is a boolean
  const retryableText: string = err.data!.retryable;
  void retryableText;

  // @ts-expect-error `issues` may be absent
  err.data!.issues.length;

  // @ts-expect-error `zodError.fieldErrors` entries may be undefined
  err.data!.zodError!.fieldErrors['email'].length;

  // @ts-expect-error a validation issue has no `expected` field
  err.data!.issues![0]!.expected;

  // @ts-expect-error missing `userId`
  await client.admin.ban.mutate({});

  // @ts-expect-error `userId` is a string
  await client.admin.ban.mutate({ userId: 1 });

  // @ts-expect-error `whoami` is a query
  await client.whoami.mutate();

  // @ts-expect-error `secret` is a mutation
  await client.secret.query();

  // @ts-expect-error `secret` takes no input
  await client.secret.mutate({ user: 'abc' });

  // @ts-expect-error `limited` needs its `key`
  await client.limited.query();

  // @ts-expect-error an unknown `contact` variant
  await client.validated.signup.mutate({ ...(null as unknown as Signup), contact: { kind: 'fax', number: '1' } });

  // @ts-expect-error `age` is a number
  await client.validated.signup.mutate({ ...(null as unknown as Signup), age: '30' });

  // @ts-expect-error `.query` on a subscription
  await client.onCount.query({ from: 1 });

  // @ts-expect-error `.mutate` on a subscription
  await client.onTicks.mutate();

  // @ts-expect-error `.subscribe` on a mutation
  client.addPost.subscribe({ title: 't' }, {});

  client.onCount.subscribe(
    { from: 1 },
    {
      onData(value) {
        // @ts-expect-error a tracked event wraps its value: `n` is under `.data`
        value.n;
      },
    },
  );

  // @ts-expect-error `tokenTicks` needs its `token`
  client.tokenTicks.subscribe({}, { onData() {} });

  // @ts-expect-error `from` is a number
  client.onCount.subscribe({ from: '1' }, { onData() {} });

  // @ts-expect-error a transformer is rejected on a `transformer: false` router
  httpLink<AppRouter>({ url: 'http://127.0.0.1:1/trpc', transformer: { serialize: (v: unknown) => v, deserialize: (v: unknown) => v } });

  // Binary and multipart inputs: exactly what the client sends as such.
  await client.upload.mutate(new Uint8Array(2));
  await client.upload.mutate(new Blob(['hi']));
  await client.form.mutate(new FormData());
  assertType<Equal<RouterInputs['upload'], Blob | Uint8Array | File>>();
  assertType<Equal<RouterInputs['photo'], FormData>>();
  assertType<Equal<RouterOutputs['upload'], { size: number }>>();

  // @ts-expect-error a plain object is not a binary body
  await client.upload.mutate({ size: 1 });

  // @ts-expect-error a string is not a binary body
  await client.upload.mutate('bytes');

  // @ts-expect-error an object is not a FormData
  await client.photo.mutate({ caption: 'x' });

  // @ts-expect-error binary data is not a FormData
  await client.form.mutate(new Uint8Array(1));
}
