// The bench contract served by tRPC v11 on Node (the official @trpc/server, standalone HTTP
// adapter and WebSocket adapter): `greet` query, `add` mutation, `ticks` subscription, the
// same answers as oxrpc's bench-server and bench/src/bin/raw-hyper.rs. Inputs are checked by
// plain validator functions (what a zod schema of the same shape would do, without zod's cost
// being counted against tRPC).
//
// Run with: node bench/node/trpc-server.mjs [--port N]  (prints `listening on http://127.0.0.1:PORT`;
// tRPC at /trpc, WebSocket on the same port). Uses the repository's npm packages (`npm ci`).
import { createServer } from 'node:http';
import { initTRPC, TRPCError } from '@trpc/server';
import { createHTTPHandler } from '@trpc/server/adapters/standalone';
import { applyWSSHandler } from '@trpc/server/adapters/ws';
import { WebSocketServer } from 'ws';

const t = initTRPC.create();

const string = (value) => {
  if (typeof value !== 'string') throw new TRPCError({ code: 'BAD_REQUEST', message: 'expected a string' });
  return value;
};
const addInput = (value) => {
  if (typeof value !== 'object' || value === null || typeof value.a !== 'number' || typeof value.b !== 'number') {
    throw new TRPCError({ code: 'BAD_REQUEST', message: 'expected {a: number, b: number}' });
  }
  return value;
};

const ticksInput = (value) => {
  if (value === undefined) return undefined;
  const ok = (v) => v === undefined || (typeof v === 'number' && v >= 0);
  if (typeof value !== 'object' || value === null || !ok(value.intervalMs) || !ok(value.count)) {
    throw new TRPCError({ code: 'BAD_REQUEST', message: 'expected {intervalMs?: number, count?: number}' });
  }
  return value;
};

const router = t.router({
  greet: t.procedure.input(string).query(({ input }) => ({ greeting: `hello ${input}` })),
  add: t.procedure.input(addInput).mutation(({ input }) => input.a + input.b),
  ping: t.procedure.input((v) => v).query(({ input }) => input),
  ticks: t.procedure.input(ticksInput).subscription(async function* ({ input, signal }) {
    // Slots are the wall-clock multiples of intervalMs; missed slots are skipped.
    const interval = Math.min(Math.max(Math.floor(input?.intervalMs ?? 100), 1), 3_600_000);
    const count = input?.count ?? Infinity;
    const first = Math.floor(Date.now() / interval) + 1;
    let slot = first;
    for (let sent = 0; sent < count && !signal?.aborted; sent++) {
      const due = slot * interval;
      await new Promise((resolve) => setTimeout(resolve, Math.max(due - Date.now(), 0)));
      if (signal?.aborted) return;
      yield { n: slot - first, ts: due };
      slot = Math.max(Math.floor(Date.now() / interval) + 1, slot + 1);
    }
  }),
});

const port = Number(process.argv[process.argv.indexOf('--port') + 1] || 0);
const handler = createHTTPHandler({ router, basePath: '/trpc/' });
const server = createServer((req, res) => handler(req, res));
const wss = new WebSocketServer({ server, path: '/trpc' });
const wsHandler = applyWSSHandler({ wss, router });
server.listen(port, '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}`);
});
const stop = () => {
  wsHandler.broadcastReconnectNotification();
  wss.close();
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
