/**
 * Shared test helpers: deadlines, a transcript-recording `fetch` for the tRPC links, raw HTTP
 * probes and typed error assertions.
 */
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { httpLink, TRPCClientError } from '@trpc/client';
import type { AppRouter } from '../generated/AppRouter.js';

/** Default deadline of a single client call or raw request. */
export const CALL_TIMEOUT_MS = 10_000;

/**
 * Rejects with a descriptive error if `promise` has not settled within `ms` milliseconds, so that a
 * hanging server fails one test quickly instead of stalling the whole run.
 */
export function withTimeout<T>(promise: Promise<T>, ms: number = CALL_TIMEOUT_MS, label = 'operation'): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${label} did not settle within ${ms} ms`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

/** One HTTP exchange as seen by the client's `fetch`. */
export interface Exchange {
  method: string;
  /** The full URL the client requested. */
  url: URL;
  /** Request headers, lower-cased names. */
  headers: Record<string, string>;
  /** Whether the request had a body at all (`undefined`/`null` body means "no body"). */
  hasBody: boolean;
  /** The request body if it was a string. */
  body: string | undefined;
  /** Response status, once the response arrived. */
  status?: number;
  /** Response headers, once the response arrived. */
  responseHeaders?: Headers;
  /** Response body text, once the response arrived. */
  responseBody?: string;
}

/** The `fetch` the tRPC links accept (its exact type differs between client versions). */
export type LinkFetch = NonNullable<Parameters<typeof httpLink>[0]['fetch']>;

/** A global-`fetch`-shaped function as a link's `fetch`. */
export function linkFetch(f: (input: RequestInfo | URL | string, init?: RequestInit) => Promise<Response>): LinkFetch {
  return f as unknown as LinkFetch;
}

/** The `@trpc/client` version the harness runs against (scripts/client-versions runs older ones). */
export const CLIENT_VERSION: string = (
  createRequire(import.meta.url)('@trpc/client/package.json') as { version: string }
).version;

/**
 * The `content-type` the client puts on a `GET` (none since tRPC's contentTypeHeaders fix;
 * 11.0.0 still sent `application/json`; 11.22.1 and newer send none).
 */
export function getContentType(): string | undefined {
  return clientAtLeast('11.22.1') ? undefined : 'application/json';
}

/** Whether the client is `version` or newer (plain `major.minor.patch` versions). */
export function clientAtLeast(version: string): boolean {
  const parse = (v: string): number[] => v.split(/[.-]/).slice(0, 3).map(Number);
  const [have, want] = [parse(CLIENT_VERSION), parse(version)];
  for (let i = 0; i < 3; i += 1) {
    if (have[i]! !== want[i]!) return have[i]! > want[i]!;
  }
  return true;
}

/** A `fetch` for the tRPC links that records every exchange; see conformance-ideas.md §2.1. */
export interface Recorder {
  readonly fetch: LinkFetch;
  readonly exchanges: Exchange[];
  /** Forgets the recorded exchanges. */
  clear(): void;
}

/**
 * Creates a recording `fetch`. Every request also gets a {@link CALL_TIMEOUT_MS} deadline on top of
 * the signal the client passes, so no exchange can hang forever.
 */
export function recorder(): Recorder {
  const exchanges: Exchange[] = [];
  const recFetch = linkFetch(async (input, init = {}) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    const headers: Record<string, string> = {};
    new Headers(init.headers).forEach((value, name) => {
      headers[name] = value;
    });
    const exchange: Exchange = {
      method: init.method ?? 'GET',
      url,
      headers,
      hasBody: init.body !== undefined && init.body !== null,
      body: typeof init.body === 'string' ? init.body : undefined,
    };
    exchanges.push(exchange);
    const deadline = AbortSignal.timeout(CALL_TIMEOUT_MS);
    const signal = init.signal ? AbortSignal.any([init.signal, deadline]) : deadline;
    const res = await fetch(url, { ...init, signal });
    exchange.status = res.status;
    exchange.responseHeaders = res.headers;
    // Plain JSON responses only (no streaming links here), so reading a clone in full is safe.
    exchange.responseBody = await res.clone().text();
    return res;
  });
  return {
    fetch: recFetch,
    exchanges,
    clear: () => {
      exchanges.length = 0;
    },
  };
}

/** The paths of a tRPC request URL below the base URL, e.g. `['hello', 'greet']` for `/trpc/hello,greet`. */
export function pathsOf(url: URL, base: string): string[] {
  const basePath = new URL(base).pathname;
  assert.ok(url.pathname.startsWith(`${basePath}/`), `${url.pathname} is not below ${basePath}`);
  return decodeURIComponent(url.pathname.slice(basePath.length + 1)).split(',');
}

/** The parsed `input` query parameter of a recorded URL, or `undefined` when there is none. */
export function inputParam(url: URL): unknown {
  const raw = url.searchParams.get('input');
  return raw === null ? undefined : JSON.parse(raw);
}

/** A raw HTTP request (no tRPC client) with a deadline. */
export async function raw(
  url: string,
  init: RequestInit = {},
): Promise<{ status: number; headers: Headers; text: string; json: unknown }> {
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(CALL_TIMEOUT_MS) });
  const text = await res.text();
  let json: unknown;
  try {
    json = text === '' ? undefined : JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

/** The error envelope of a tRPC response body (`{"error": {...}}`). */
export interface ErrorEnvelope {
  error: { message: string; code: number; data: { code: string; httpStatus: number; path?: string; stack?: string } };
}

/** Asserts that `body` is a tRPC error envelope with the given `data.code` and `httpStatus`, and returns it. */
export function assertErrorEnvelope(body: unknown, code: string, httpStatus: number): ErrorEnvelope['error'] {
  assert.ok(body !== null && typeof body === 'object' && 'error' in body, `not an error envelope: ${JSON.stringify(body)}`);
  const error = (body as ErrorEnvelope).error;
  assert.equal(typeof error.message, 'string');
  assert.equal(typeof error.code, 'number');
  assert.equal(error.data.code, code);
  assert.equal(error.data.httpStatus, httpStatus);
  return error;
}

/** JSON-RPC numbers of the tRPC error codes used by these tests (trpc-protocol.md §2.4). */
export const JSONRPC = {
  PARSE_ERROR: -32700,
  BAD_REQUEST: -32600,
  UNAUTHORIZED: -32001,
  FORBIDDEN: -32003,
  NOT_FOUND: -32004,
  METHOD_NOT_SUPPORTED: -32005,
  CONFLICT: -32009,
  PRECONDITION_FAILED: -32012,
  PAYLOAD_TOO_LARGE: -32013,
  UNSUPPORTED_MEDIA_TYPE: -32015,
  TOO_MANY_REQUESTS: -32029,
  INTERNAL_SERVER_ERROR: -32603,
} as const;

/** A client error typed with the generated router's error shape. */
export type AppClientError = TRPCClientError<AppRouter>;

/**
 * Awaits `promise` (with a deadline), asserts that it rejects with a `TRPCClientError`, and returns
 * the error for further checks.
 */
export async function rejectsWithClientError(promise: Promise<unknown>, label = 'call'): Promise<AppClientError> {
  const outcome = await withTimeout(
    promise.then(
      (value) => ({ ok: true as const, value }),
      (error: unknown) => ({ ok: false as const, error }),
    ),
    CALL_TIMEOUT_MS,
    label,
  );
  if (outcome.ok) assert.fail(`${label} resolved with ${JSON.stringify(outcome.value)} instead of rejecting`);
  assert.ok(outcome.error instanceof TRPCClientError, `${label} rejected with a non-TRPCClientError: ${String(outcome.error)}`);
  return outcome.error as AppClientError;
}

/** The HTTP status of the response a client error came from (`error.meta.response.status`). */
export function responseStatus(err: AppClientError): number | undefined {
  const response = err.meta?.['response'];
  return response instanceof Response ? response.status : undefined;
}

/**
 * Asserts the full client-side error surface: `.message`, `.data.code`, `.data.httpStatus`,
 * `.data.path`, `.shape.code` and `.meta.response.status`.
 */
export function assertClientError(
  err: AppClientError,
  expected: {
    code: keyof typeof JSONRPC | 'NOT_IMPLEMENTED';
    httpStatus: number;
    /** `null` asserts that no path is present (request-level failure). */
    path?: string | null;
    message?: string | RegExp;
    /** Expected `meta.response.status`; defaults to `httpStatus`. */
    responseStatus?: number;
  },
): void {
  assert.equal(err.data?.code, expected.code, `data.code (message: ${err.message})`);
  assert.equal(err.data?.httpStatus, expected.httpStatus, 'data.httpStatus');
  const jsonRpc = expected.code === 'NOT_IMPLEMENTED' ? JSONRPC.INTERNAL_SERVER_ERROR : JSONRPC[expected.code];
  assert.equal(err.shape?.code, jsonRpc, 'shape.code');
  assert.equal(err.shape?.message, err.message, 'shape.message mirrors .message');
  if (expected.path === null) assert.equal(err.data?.path, undefined, 'data.path must be absent');
  else if (expected.path !== undefined) assert.equal(err.data?.path, expected.path, 'data.path');
  if (typeof expected.message === 'string') assert.equal(err.message, expected.message);
  else if (expected.message) assert.match(err.message, expected.message);
  assert.equal(responseStatus(err), expected.responseStatus ?? expected.httpStatus, 'meta.response.status');
}

/** Settles all promises with one shared deadline (for calls that one batching link sends together). */
export function settleAll<T extends readonly unknown[]>(
  promises: { [K in keyof T]: Promise<T[K]> },
): Promise<{ [K in keyof T]: PromiseSettledResult<T[K]> }> {
  return withTimeout(Promise.allSettled(promises) as Promise<{ [K in keyof T]: PromiseSettledResult<T[K]> }>);
}

/** The value of a fulfilled result (fails the test on a rejection). */
export function fulfilled<T>(result: PromiseSettledResult<T>, label = 'call'): T {
  if (result.status === 'rejected') assert.fail(`${label}: expected success, got ${String(result.reason)}`);
  return result.value;
}

/** The `TRPCClientError` of a rejected result (fails the test on a success or another error). */
export function rejection(result: PromiseSettledResult<unknown>, label = 'call'): Promise<AppClientError> {
  return rejectsWithClientError(
    result.status === 'rejected' ? Promise.reject(result.reason) : Promise.resolve(result.value),
    label,
  );
}
