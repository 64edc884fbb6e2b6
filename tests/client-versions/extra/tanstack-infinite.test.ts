/**
 * `@trpc/tanstack-react-query` over the generated `AppRouter` (trpc-types.md §5.1): a
 * cursor-paginated query (`numbers.page`) is an infinite query for the option proxy, so
 * `infiniteQueryOptions` type-checks on it (and not on a query without `cursor`), and TanStack
 * Query fetches pages forwards and backwards from the real server, which receives `cursor`
 * and `direction` in the input. (The package is published up to 11.22.1 on the registry CI
 * reaches, so this runs in tests/client-versions, copied next to the harness.)
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { InfiniteQueryObserver, QueryClient } from '@tanstack/react-query';
import { createTRPCClient, httpBatchLink } from '@trpc/client';
import { createTRPCOptionsProxy } from '@trpc/tanstack-react-query';
import type { AppRouter, NumberPage } from '../generated/AppRouter.js';
import { inputParam, recorder, withTimeout } from './harness.js';
import { startServer, type RunningServer } from './server.js';

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function assertType<T extends true>(): T | void {}

describe('@trpc/tanstack-react-query: infinite queries with cursor and direction', () => {
  let server: RunningServer;
  before(async () => {
    server = await startServer('plain');
  });
  after(async () => {
    await server.stop();
  });

  it('fetches pages forwards and backwards; the server gets cursor and direction', async () => {
    const rec = recorder();
    const client = createTRPCClient<AppRouter>({ links: [httpBatchLink({ url: server.url, fetch: rec.fetch })] });
    // Fresh forever: the observer below must not refetch the pages it finds in the cache.
    const queryClient = new QueryClient({ defaultOptions: { queries: { retry: false, staleTime: Infinity } } });
    const trpc = createTRPCOptionsProxy<AppRouter>({ client, queryClient });
    const options = trpc.numbers.page.infiniteQueryOptions(
      { limit: 20 },
      {
        initialCursor: 40,
        getNextPageParam: (last) => last.nextCursor,
        getPreviousPageParam: (first) => first.prevCursor,
      },
    );

    const data = await withTimeout(queryClient.fetchInfiniteQuery({ ...options, pages: 3 }));
    assertType<Equal<(typeof data.pages)[number], NumberPage>>();
    assert.deepEqual(
      data.pages.map((p) => [p.items[0], p.items.at(-1), p.nextCursor]),
      [[40, 59, 60], [60, 79, 80], [80, 99, null]],
    );

    const observer = new InfiniteQueryObserver(queryClient, options);
    const unsubscribe = observer.subscribe(() => {});
    try {
      const previous = await withTimeout(observer.fetchPreviousPage());
      assert.deepEqual(previous.data?.pages[0]?.items, Array.from({ length: 20 }, (_, i) => 20 + i));
      assert.equal(previous.hasPreviousPage, true);
    } finally {
      unsubscribe();
    }

    const inputs = rec.exchanges.flatMap((ex) => Object.values(inputParam(ex.url) as Record<string, unknown>));
    assert.deepEqual(inputs[0], { limit: 20, cursor: 40, direction: 'forward' });
    assert.deepEqual(inputs.at(-1), { limit: 20, cursor: 40, direction: 'backward' }, JSON.stringify(inputs));
  });

  it('only procedures with a cursor are infinite queries (types)', () => {
    const client = createTRPCClient<AppRouter>({ links: [httpBatchLink({ url: 'http://127.0.0.1:1/trpc' })] });
    const trpc = createTRPCOptionsProxy<AppRouter>({ client, queryClient: new QueryClient() });
    assert.equal(typeof trpc.numbers.page.infiniteQueryOptions, 'function');
    // `greet` takes no cursor: its infiniteQueryOptions is `never`, not callable.
    const notInfinite = (): unknown =>
      // @ts-expect-error not callable
      trpc.greet.infiniteQueryOptions({ name: 'x' }, { getNextPageParam: () => null });
    void notInfinite;
    // @ts-expect-error the cursor is a number
    void trpc.numbers.page.infiniteQueryOptions({ limit: 1 }, { initialCursor: 'a', getNextPageParam: () => null });
  });
});
