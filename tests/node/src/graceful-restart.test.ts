/**
 * A graceful restart under load, judged by the real client: the server gets SIGTERM while an
 * HTTP query is in flight and WebSocket and SSE subscribers are streaming, and a new server
 * takes its place on the same port. The in-flight query finishes; both subscribers reconnect
 * and resume after their last id, so every tracked id arrives exactly once.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createTRPCClient, httpLink, httpSubscriptionLink } from '@trpc/client';
import { EventSource } from 'eventsource';
import type { AppRouter } from '../generated/AppRouter.js';
import { startServer, type RunningServer } from './server.js';
import { withTimeout } from './harness.js';
import { WsClients } from './ws-harness.js';

/** Tracked ids as they arrive. */
class Ids {
  readonly seen: number[] = [];
  push(id: string): void {
    this.seen.push(Number(id));
  }
  async reach(n: number, what: string, ms = 20_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (this.seen.length < n) {
      if (Date.now() > deadline) throw new Error(`${what}: ${this.seen.length} of ${n} ids after ${ms} ms`);
      await sleep(25);
    }
  }
  assertConsecutive(what: string): void {
    assert.deepEqual(this.seen, [...this.seen.keys()], `${what}: every id once, in order`);
  }
}

describe('graceful restart under load', () => {
  const servers: RunningServer[] = [];
  const clients = new WsClients();
  after(async () => {
    await clients.closeAll();
    for (const server of servers) await server.stop();
  }, { timeout: 30_000 });

  it('in-flight HTTP finishes; WebSocket and SSE subscribers resume on the new server without loss', { timeout: 60_000 }, async () => {
    const first = await startServer('plain');
    servers.push(first);
    const port = Number(new URL(first.url).port);

    const { client: ws } = clients.create(first);
    const overWs = new Ids();
    const wsSub = ws.onTicks.subscribe(undefined, { onData: (e) => overWs.push(e.id) });

    const sse = createTRPCClient<AppRouter>({ links: [httpSubscriptionLink({ url: first.url, EventSource })] });
    const overSse = new Ids();
    const sseSub = sse.onTicks.subscribe(undefined, { onData: (e) => overSse.push(e.id) });

    await overWs.reach(5, 'WebSocket before the restart');
    await overSse.reach(5, 'SSE before the restart');

    const http = createTRPCClient<AppRouter>({ links: [httpLink({ url: first.url })] });
    const inFlight = http.slow.query(800);
    await sleep(100);
    const stopping = first.stop();
    assert.deepEqual(await withTimeout(inFlight, 10_000), { waited: 800 }, 'the in-flight query finished');
    await withTimeout(stopping, 15_000, 'graceful shutdown');

    const before = { ws: overWs.seen.length, sse: overSse.seen.length };
    servers.push(await startServer('plain', port));
    await overWs.reach(before.ws + 10, 'WebSocket after the restart');
    await overSse.reach(before.sse + 10, 'SSE after the restart');
    wsSub.unsubscribe();
    sseSub.unsubscribe();

    overWs.assertConsecutive('WebSocket');
    overSse.assertConsecutive('SSE');
  });
});
