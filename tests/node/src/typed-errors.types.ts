/**
 * Compile-only checks of typed per-procedure errors in the generated `AppRouter.d.ts`: `safe()`
 * (@trpc/client ≥ 11.22.1) types the error of `typedErr` with its Rust error type `Refusal`, and
 * checking `error.data.reason` narrows to one case; procedures without a typed error keep the root
 * shape. Each `// @ts-expect-error` must produce a type error (else tsc fails with TS2578).
 *
 * Nothing here runs (not a `*.test.js`, imported by nothing). Older clients without `safe()` get
 * exactly the errors listed in their expected-tsc-errors.txt.
 */
import { safe, type TRPCClient, type TRPCClientError } from '@trpc/client';
import type { TRPC_ERROR_CODE_KEY } from '@trpc/server';
import type { AppRouter, ErrorShape, Refusal, TypedErrorShape } from '../generated/AppRouter.js';

export async function typedErrNarrowsOnItsTag(client: TRPCClient<AppRouter>): Promise<void> {
  const [data, error] = await safe(client.typedErr.query({ kind: 'conflict' }));
  if (!error) {
    const ok: boolean = data.ok;
    void ok;
    return;
  }
  const d = error.data;
  if (!d) return;
  // oxrpc's fields and the root formatter's are on every branch.
  const code: TRPC_ERROR_CODE_KEY = d.code;
  const status: number = d.httpStatus;
  const retryable: boolean = d.retryable;
  void [code, status, retryable];
  switch (d.reason) {
    case 'sold-out': {
      const stock: number = d.stock;
      void stock;
      break;
    }
    case 'bare': {
      // @ts-expect-error only `sold-out` has a stock
      void d.stock;
      break;
    }
    case 'bad-input': {
      void d.issues;
      break;
    }
    case undefined: {
      // The root shape (FORBIDDEN "no"): no typed fields.
      // @ts-expect-error the root branch has no stock
      void d.stock;
      break;
    }
    // @ts-expect-error not a reason `Refusal` has
    case 'nope':
      break;
  }
}

export async function untypedProceduresKeepTheRootShape(client: TRPCClient<AppRouter>): Promise<void> {
  const [, error] = await safe(client.notFound.query());
  if (!error?.data) return;
  const retryable: boolean = error.data.retryable;
  void retryable;
  // @ts-expect-error `notFound` declares no typed error
  void error.data.reason;
}

export function errorTypesCanBeNamed(err: TRPCClientError<{ errorShape: TypedErrorShape<Refusal>; transformer: false }>): void {
  if (err.data?.reason === 'sold-out') {
    const stock: number = err.data.stock;
    void stock;
  }
  // The root shape is one branch of every typed shape.
  const root: TypedErrorShape<Refusal> = {} as ErrorShape & { data: { reason?: undefined } };
  void root;
  // @ts-expect-error a typed case's data is not the root shape's
  const notRoot: ErrorShape['data'] & { reason?: undefined } = {} as TypedErrorShape<Refusal>['data'];
  void notRoot;
}
