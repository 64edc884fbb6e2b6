// Two instances of the quickstart server sharing events through Redis (`./scripts/scale-demo`
// starts everything). This client watches `user.onCreated` on one instance (FEED_URL) while
// users are created on the other (TRPC_URL); then it goes away, users are created meanwhile,
// and it comes back to the *other* instance with the last event id it saw: it gets exactly the
// users it missed, then live ones.
import { createTRPCClient, httpBatchLink, httpSubscriptionLink } from '@trpc/client';
import { EventSource } from 'eventsource';
import type { AppRouter } from './generated/AppRouter.js';

const first = process.env.FEED_URL ?? 'http://127.0.0.1:3001/trpc';
const second = process.env.TRPC_URL ?? 'http://127.0.0.1:3000/trpc';

const ada = createTRPCClient<AppRouter>({
  links: [httpBatchLink({ url: second, headers: { authorization: 'Bearer ada' } })],
});
const feedOn = (url: string) =>
  createTRPCClient<AppRouter>({ links: [httpSubscriptionLink({ url, EventSource })] });

const created: string[] = [];
const seen: string[] = [];
async function create(...names: string[]): Promise<void> {
  for (const name of names) {
    created.push(name);
    await ada.user.create.mutate({ name });
  }
}

/** Follows the feed on `url` until `count` more users arrived; resolves to the last event id. */
function follow(url: string, count: number, lastEventId: string | undefined, whenStarted: () => Promise<void>): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`feed on ${url}: no ${count} users within 20 s`)), 20_000);
    let left = count;
    const subscription = feedOn(url).user.onCreated.subscribe(lastEventId ? { lastEventId } : undefined, {
      onStarted: () => void whenStarted().catch(reject),
      onData: ({ id, data }) => {
        console.log(`feed on ${url}: ${data.name} (event ${id})`);
        seen.push(data.name);
        left -= 1;
        if (left === 0) {
          clearTimeout(timer);
          subscription.unsubscribe();
          resolve(id);
        }
      },
      onError: (err) => {
        clearTimeout(timer);
        reject(err);
      },
    });
  });
}

const last = await follow(first, 3, undefined, () => create('ada', 'grace', 'linus'));
console.log('feed: gone; two users are created while nobody listens');
await create('ken', 'barbara');
await follow(second, 3, last, () => create('margaret'));
if (seen.join() !== created.join()) {
  console.error(`feed: expected ${created.join()}, saw ${seen.join()}`);
  process.exit(1);
}
console.log(`feed: every user exactly once (${seen.join(', ')}), across two instances and a reconnect`);
