/**
 * Compile-only checks of the superjson router's generated `AppRouterSuperjson.d.ts`
 * (`transformer: true`): outputs are typed as the values superjson delivers (`Date`, `bigint`,
 * `Set`, `Map`, `undefined`), inputs demand them, and the links must (and the plain router's
 * must not) be given `transformer`. Each `// @ts-expect-error` must produce a type error (else
 * tsc fails with TS2578). Nothing here runs.
 */
import { createTRPCClient, httpBatchLink, httpLink, wsLink, type TRPCClient, type TRPCWebSocketClient } from '@trpc/client';
import superjson from 'superjson';
import type { AppRouter } from '../generated/AppRouter.js';
import type { AppRouter as SjRouter, JsValues } from '../generated/AppRouterSuperjson.js';

export async function outputsAreTheValuesSuperjsonDelivers(client: TRPCClient<SjRouter>): Promise<void> {
  const d = await client.date.query();
  const at: Date = d.at;
  const big: bigint = d.big;
  const set: Set<number> = d.set;
  const undef: string | undefined = d.undef;
  // @ts-expect-error a Date, not the string plain JSON would carry
  const asString: string = d.at;
  // @ts-expect-error a bigint, not a number
  const asNumber: number = d.big;
  const trip = await client.roundTrip.mutate({} as JsValues);
  const byDay: Map<number, Date> = trip.byDay;
  const scores: Map<string, bigint> = trip.scores;
  // @ts-expect-error a Map, not an object
  const asRecord: Record<string, bigint> = trip.scores;
  const echoed: unknown = (await client.echo.query(new Date())).input;
  void [at, big, set, undef, asString, asNumber, byDay, scores, asRecord, echoed];
}

export async function inputsDemandThem(client: TRPCClient<SjRouter>, base: JsValues): Promise<void> {
  await client.roundTrip.mutate({ ...base, at: new Date(), big: 1n, tags: new Set(['a']) });
  // @ts-expect-error a Date is required, not its string
  await client.roundTrip.mutate({ ...base, at: '2020-01-01' });
  // @ts-expect-error a bigint, not a number
  await client.roundTrip.mutate({ ...base, big: 1 });
  // @ts-expect-error a Set, not an array
  await client.roundTripQuery.query({ ...base, tags: ['a'] });
}

export function linksMustMatchTheRouter(url: string, ws: TRPCWebSocketClient): void {
  createTRPCClient<SjRouter>({ links: [httpLink({ url, transformer: superjson })] });
  createTRPCClient<SjRouter>({ links: [wsLink({ client: ws, transformer: superjson })] });
  // @ts-expect-error a superjson router's links need the transformer
  createTRPCClient<SjRouter>({ links: [httpBatchLink({ url })] });
  // @ts-expect-error a plain router's links refuse one
  createTRPCClient<AppRouter>({ links: [httpLink({ url, transformer: superjson })] });
}
