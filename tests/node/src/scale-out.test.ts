/**
 * Subscriptions across server instances through Redis (`conformance-server --redis URL`),
 * judged by the real client: two instances behind a TCP load balancer share `posts` through
 * a Redis stream, a publisher adds posts on one instance, subscribers (wsLink and
 * httpSubscriptionLink) are connected to the other. An instance crashes mid-stream, another
 * one shuts down gracefully, Redis itself crashes and restarts: each time the subscribers land
 * on an instance alive and finish with every post exactly once, in order.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  createTRPCClient,
  createWSClient,
  httpLink,
  httpSubscriptionLink,
  TRPCClientError,
  wsLink,
  type TRPCClient,
} from '@trpc/client';
import { EventSource } from 'eventsource';
import { WebSocket } from 'ws';
import type { AppRouter } from '../generated/AppRouter.js';
import { Balancer } from './balancer.js';
import { withTimeout } from './harness.js';
import { RedisServer } from './redis.js';
import { startServer, type RunningServer } from './server.js';

type Post = { id: string; data: { title: string } };

/** What one subscriber received. */
class Received {
  readonly posts: Post[] = [];
  readonly errors: unknown[] = [];
  async reach(n: number, what: string, ms = 20_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (this.posts.length < n) {
      if (this.errors.length > 0) throw new Error(`${what}: subscription error ${String(this.errors[0])}`);
      if (Date.now() > deadline) throw new Error(`${what}: ${this.posts.length} of ${n} posts after ${ms} ms`);
      await sleep(20);
    }
  }
}

/** Adds posts through `client` one by one, retrying while the bus is unavailable. */
class Publisher {
  readonly published: Post[] = [];
  readonly unavailable: string[] = [];
  constructor(private readonly client: TRPCClient<AppRouter>) {}
  async add(count: number): Promise<void> {
    const deadline = Date.now() + 20_000;
    for (let i = 0; i < count;) {
      const title = `post-${this.published.length}`;
      try {
        const { id } = await withTimeout(this.client.posts.add.mutate({ title }), 5_000, 'posts.add');
        this.published.push({ id, data: { title } });
        i += 1;
        await sleep(10);
      } catch (err) {
        assert.ok(err instanceof TRPCClientError, `posts.add failed: ${String(err)}`);
        assert.equal(err.data?.code, 'SERVICE_UNAVAILABLE', `posts.add: ${err.message}`);
        this.unavailable.push(err.message);
        if (Date.now() > deadline) throw new Error(`posts.add kept failing: ${err.message}`);
        await sleep(100);
      }
    }
  }
}

function assertExactlyOnce(what: string, received: Received, publisher: Publisher): void {
  assert.deepEqual(
    received.posts.map((p) => p.id),
    publisher.published.map((p) => p.id),
    `${what}: every post's id once, in order`,
  );
  assert.deepEqual(received.posts, publisher.published, `${what}: the posts themselves`);
}

describe('scale-out through Redis', () => {
  let redis: RedisServer;
  const servers: RunningServer[] = [];
  const cleanups: (() => unknown)[] = [];
  const port = (server: RunningServer): number => Number(new URL(server.url).port);
  const instance = async (): Promise<RunningServer> => {
    const server = await startServer('plain', 0, ['--redis', redis.url]);
    servers.push(server);
    return server;
  };

  before(async () => {
    redis = await RedisServer.start();
  });
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
    for (const server of servers) await server.stop();
    await redis.stop();
  }, { timeout: 30_000 });

  /** wsLink and httpSubscriptionLink subscribers of `posts.onAdd` through `balancer`. */
  function subscribe(balancer: Balancer): { ws: Received; sse: Received } {
    const wsClient = createWSClient({
      url: balancer.url('ws'),
      WebSocket: WebSocket as unknown as typeof globalThis.WebSocket,
      retryDelayMs: () => 100,
    });
    const overWs = createTRPCClient<AppRouter>({ links: [wsLink<AppRouter>({ client: wsClient })] });
    const overSse = createTRPCClient<AppRouter>({
      links: [httpSubscriptionLink({ url: balancer.url(), EventSource })],
    });
    const ws = new Received();
    const sse = new Received();
    const subs = [
      overWs.posts.onAdd.subscribe(undefined, { onData: (p) => ws.posts.push(p), onError: (e) => ws.errors.push(e) }),
      overSse.posts.onAdd.subscribe(undefined, { onData: (p) => sse.posts.push(p), onError: (e) => sse.errors.push(e) }),
    ];
    cleanups.push(async () => {
      for (const sub of subs) sub.unsubscribe();
      await withTimeout(wsClient.close(), 5_000, 'closing the WS client').catch(() => {});
    });
    return { ws, sse };
  }

  /** Waits until both subscribers are registered on some instance, then publishes one post. */
  async function warmUp(publisher: Publisher, subs: { ws: Received; sse: Received }): Promise<void> {
    // A subscription only sees posts published after it started; wait until a post published now reaches both.
    const deadline = Date.now() + 10_000;
    while (subs.ws.posts.length === 0 || subs.sse.posts.length === 0) {
      if (Date.now() > deadline) throw new Error('the subscribers never started');
      await publisher.add(1);
      await sleep(100);
    }
    // Forget what came before both were listening.
    const first = Math.max(
      publisher.published.findIndex((p) => p.id === subs.ws.posts[0]!.id),
      publisher.published.findIndex((p) => p.id === subs.sse.posts[0]!.id),
    );
    publisher.published.splice(0, first);
    for (const r of [subs.ws, subs.sse]) r.posts.splice(0, r.posts.findIndex((p) => p.id === publisher.published[0]!.id));
  }

  it('an instance crashes, another shuts down: subscribers move on and miss nothing', { timeout: 90_000 }, async () => {
    const a = await instance();
    const b = await instance();
    // Subscribers land on B; the publisher talks to A directly.
    const balancer = await Balancer.start([port(b), port(a)]);
    cleanups.push(() => balancer.stop());
    const publisher = new Publisher(createTRPCClient<AppRouter>({ links: [httpLink<AppRouter>({ url: a.url })] }));
    const subs = subscribe(balancer);
    await warmUp(publisher, subs);

    await publisher.add(20);
    await subs.ws.reach(10, 'WebSocket on B');
    await subs.sse.reach(10, 'SSE on B');
    // B crashes mid-stream; posts keep coming on A while the clients reconnect (to A).
    const crash = b.kill();
    await publisher.add(30);
    await crash;
    await subs.ws.reach(publisher.published.length, 'WebSocket after B crashed');
    await subs.sse.reach(publisher.published.length, 'SSE after B crashed');

    // A new instance C takes B's place in front; A shuts down gracefully (its clients are told
    // to reconnect) while the publisher moves to C.
    const c = await instance();
    balancer.backends = [port(c)];
    const onC = new Publisher(createTRPCClient<AppRouter>({ links: [httpLink<AppRouter>({ url: c.url })] }));
    const stopping = a.stop();
    await onC.add(30);
    await withTimeout(stopping, 15_000, 'A shutting down');
    publisher.published.push(...onC.published);
    await subs.ws.reach(publisher.published.length, 'WebSocket after A shut down');
    await subs.sse.reach(publisher.published.length, 'SSE after A shut down');
    await sleep(300);

    assertExactlyOnce('WebSocket', subs.ws, publisher);
    assertExactlyOnce('SSE', subs.sse, publisher);
    assert.deepEqual(subs.ws.errors, []);
    assert.deepEqual(subs.sse.errors, []);
  });

  it('Redis crashes and restarts mid-stream: publishers get SERVICE_UNAVAILABLE meanwhile, queries keep working, subscribers miss nothing', { timeout: 90_000 }, async () => {
    const a = await instance();
    const b = await instance();
    const balancer = await Balancer.start([port(b)]);
    cleanups.push(() => balancer.stop());
    const http = createTRPCClient<AppRouter>({ links: [httpLink<AppRouter>({ url: a.url })] });
    const publisher = new Publisher(http);
    const subs = subscribe(balancer);
    await warmUp(publisher, subs);
    await publisher.add(15);
    await subs.ws.reach(10, 'WebSocket before the Redis crash');

    await redis.kill();
    const down = Date.now();
    const failed = await http.posts.add.mutate({ title: 'while down' }).then(
      () => assert.fail('posts.add succeeded with Redis down'),
      (err: unknown) => err,
    );
    assert.ok(failed instanceof TRPCClientError);
    assert.equal(failed.data?.code, 'SERVICE_UNAVAILABLE');
    assert.equal(failed.message, 'The event bus is unavailable; try again shortly');
    assert.ok(Date.now() - down < 5_000, 'the publisher learns within the bus timeout');
    // Everything that does not publish keeps working.
    assert.equal((await withTimeout(http.greet.query({ name: 'Redis' }))).text, 'hi Redis');

    setTimeout(() => void redis.restart(), 1_000);
    await publisher.add(25);
    assert.ok(publisher.unavailable.length > 0, 'posts.add failed while Redis was down');
    await subs.ws.reach(publisher.published.length, 'WebSocket after the Redis restart');
    await subs.sse.reach(publisher.published.length, 'SSE after the Redis restart');
    await sleep(300);

    assertExactlyOnce('WebSocket', subs.ws, publisher);
    assertExactlyOnce('SSE', subs.sse, publisher);
  });
});
