/**
 * Binary and multipart inputs (trpc-protocol.md §1.5) with the real client: `Uint8Array`,
 * `Blob` and `File` bodies (`application/octet-stream`) and `FormData` (`multipart/form-data`)
 * through `httpLink`, streamed to the procedure; limits, refusals and a client that gives up
 * mid-upload; the server's memory while a large upload streams through.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createTRPCClient, httpBatchLink, httpLink, isNonJsonSerializable, splitLink } from '@trpc/client';
import type { AppRouter } from '../generated/AppRouter.js';
import { assertClientError, assertErrorEnvelope, raw, rejectsWithClientError, withTimeout } from './harness.js';
import { startServer, type RunningServer } from './server.js';
import { WsClients } from './ws-harness.js';

const MiB = 1024 * 1024;

/** Resident memory of a process, in bytes (Linux). */
function rss(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = /VmRSS:\s+(\d+) kB/.exec(status)?.[1];
  assert.ok(kb, 'VmRSS in /proc/PID/status');
  return Number(kb) * 1024;
}

describe('uploads: binary and FormData inputs', () => {
  let server: RunningServer;
  const clients = new WsClients();
  before(async () => {
    server = await startServer('plain');
  });
  after(async () => {
    await clients.closeAll();
    await server.stop();
  });

  const client = () => createTRPCClient<AppRouter>({ links: [httpLink({ url: server.url })] });

  it('a multi-megabyte Uint8Array, a Blob and a File arrive whole', async () => {
    const bytes = new Uint8Array(6 * MiB).map((_, i) => i % 251);
    assert.deepEqual(await withTimeout(client().upload.mutate(bytes)), { size: 6 * MiB });
    assert.deepEqual(await withTimeout(client().upload.mutate(new Blob(['hello ', 'world']))), { size: 11 });
    const file = new File([new Uint8Array(3 * MiB)], 'big.bin', { type: 'application/x-thing' });
    assert.deepEqual(await withTimeout(client().upload.mutate(file)), { size: 3 * MiB });
    assert.deepEqual(await withTimeout(client().upload.mutate(new Uint8Array(0))), { size: 0 });
  });

  it('a FormData with fields and two files: every part reaches the procedure', async () => {
    const form = new FormData();
    form.append('name', 'n1');
    form.append('note', 'two words');
    form.append('a', new File(['hello'], 'a.txt', { type: 'text/plain' }));
    form.append('b', new Blob([new Uint8Array(2 * MiB)]), 'b.bin');
    assert.deepEqual(await withTimeout(client().form.mutate(form)), {
      name: 'n1',
      note: 'two words',
      a: 'file:a.txt:5',
      b: `file:b.bin:${2 * MiB}`,
    });
  });

  it('typed form fields are validated (every issue at once) before any file is read', async () => {
    const good = new FormData();
    good.append('caption', 'sunset');
    good.append('tag', 'sky');
    good.append('photo', new File(['jpeg bytes'], 'p.jpg', { type: 'image/jpeg' }));
    assert.deepEqual(await withTimeout(client().photo.mutate(good)), {
      caption: 'sunset',
      tags: ['sky'],
      files: ['photo:p.jpg:image/jpeg:10'],
    });
    const tags = new FormData();
    tags.append('caption', 'x');
    tags.append('tag', 'a');
    tags.append('tag', 'b');
    assert.deepEqual((await withTimeout(client().photo.mutate(tags))).tags, ['a', 'b']);

    const bad = new FormData();
    bad.append('caption', '');
    bad.append('extra', 'no such field');
    bad.append('photo', new File(['x'], 'p.jpg'));
    const err = await rejectsWithClientError(client().photo.mutate(bad), 'photo with a bad caption');
    assertClientError(err, { code: 'BAD_REQUEST', httpStatus: 400, path: 'photo' });
    const issues = (err.data as { issues?: { path: (string | number)[] }[] }).issues ?? [];
    assert.deepEqual(issues.map((i) => i.path.join('.')).sort(), ['caption', 'extra'], JSON.stringify(issues));
  });

  it('an oversized upload gets PAYLOAD_TOO_LARGE, and the server goes on', async () => {
    const err = await rejectsWithClientError(client().uploadSmall.mutate(new Uint8Array(2 * MiB)), 'oversized');
    assertClientError(err, { code: 'PAYLOAD_TOO_LARGE', httpStatus: 413, path: 'uploadSmall', message: /65536 bytes/ });
    const form = new FormData();
    form.append('caption', 'big');
    form.append('photo', new Blob([new Uint8Array(5 * MiB)]), 'big.jpg');
    const formErr = await rejectsWithClientError(client().photo.mutate(form), 'oversized form');
    assertClientError(formErr, { code: 'PAYLOAD_TOO_LARGE', httpStatus: 413, path: 'photo' });
    assert.deepEqual(await withTimeout(client().uploadSmall.mutate(new Uint8Array(1000))), { size: 1000 });
  });

  it('an upload refused before it is read (middleware, no boundary) still gets its answer; a signed-in one is read', async () => {
    // 5 MiB to a procedure behind an auth middleware: refused unread, the body drained.
    const err = await rejectsWithClientError(client().uploadPrivate.mutate(new Uint8Array(5 * MiB)), 'unauthenticated upload');
    assertClientError(err, { code: 'UNAUTHORIZED', httpStatus: 401, path: 'uploadPrivate' });
    // Signed in, the middleware passes the call on and the procedure reads the whole body.
    const signedIn = createTRPCClient<AppRouter>({
      links: [httpLink({ url: server.url, headers: { authorization: 'ABC' } })],
    });
    assert.deepEqual(await withTimeout(signedIn.uploadPrivate.mutate(new Uint8Array(3 * MiB))), { size: 3 * MiB });
    const noBoundary = await raw(`${server.url}/form`, {
      method: 'POST',
      headers: { 'content-type': 'multipart/form-data' },
      body: 'no parts',
    });
    assert.equal(noBoundary.status, 400);
    assert.match(assertErrorEnvelope(noBoundary.json, 'BAD_REQUEST', 400).message, /boundary/);
  });

  it('what tRPC refuses is refused: batches, the wrong content type, GET, WebSocket', async () => {
    const octet = { 'content-type': 'application/octet-stream' };
    // A batch of an upload (the batching links cannot send one; raw callers can).
    const batch = await raw(`${server.url}/upload?batch=1`, { method: 'POST', headers: octet, body: 'hi' });
    assert.equal(batch.status, 415);
    assertErrorEnvelope(batch.json, 'UNSUPPORTED_MEDIA_TYPE', 415);
    // Bytes to a JSON procedure, and to the FormData one.
    const toJson = await raw(`${server.url}/addPost`, { method: 'POST', headers: octet, body: 'hi' });
    assert.equal(toJson.status, 415);
    assert.match(assertErrorEnvelope(toJson.json, 'UNSUPPORTED_MEDIA_TYPE', 415).message, /takes JSON input/);
    const toForm = await raw(`${server.url}/form`, { method: 'POST', headers: octet, body: 'hi' });
    assert.equal(toForm.status, 415);
    // JSON to the binary procedure: what httpBatchLink would do with a Uint8Array.
    const batched = createTRPCClient<AppRouter>({ links: [httpBatchLink({ url: server.url })] });
    const viaBatch = await rejectsWithClientError(batched.upload.mutate(new Uint8Array(3)), 'upload through httpBatchLink');
    assertClientError(viaBatch, { code: 'UNSUPPORTED_MEDIA_TYPE', httpStatus: 415, path: 'upload', message: /application\/octet-stream body/, responseStatus: 415 });
    // Another content type.
    const text = await raw(`${server.url}/upload`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'hi' });
    assert.equal(text.status, 415);
    // GET: uploads are mutations.
    const get = await raw(`${server.url}/upload`);
    assert.equal(get.status, 405);
    // Over WebSocket there is no body to send.
    const { client: ws } = clients.create(server);
    const overWs = await rejectsWithClientError(ws.upload.mutate(new Uint8Array(3)), 'upload over WebSocket');
    assert.equal(overWs.data?.code, 'UNSUPPORTED_MEDIA_TYPE');
  });

  it('splitLink with isNonJsonSerializable: uploads go through httpLink, the rest is batched', async () => {
    const app = createTRPCClient<AppRouter>({
      links: [
        splitLink({
          condition: (op) => isNonJsonSerializable(op.input),
          true: httpLink({ url: server.url }),
          false: httpBatchLink({ url: server.url }),
        }),
      ],
    });
    const [uploaded, greeting] = await withTimeout(
      Promise.all([app.upload.mutate(new Blob(['abc'])), app.greet.query({ name: 'split' })]),
    );
    assert.deepEqual(uploaded, { size: 3 });
    assert.equal(greeting.text, 'hi split');
  });

  it('a client that stops mid-upload harms nothing', async () => {
    const { port } = new URL(server.url);
    for (const path of ['upload', 'form']) {
      const type = path === 'upload' ? 'application/octet-stream' : 'multipart/form-data; boundary=XYZ';
      const socket = connect(Number(port), '127.0.0.1');
      await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
      socket.write(`POST /trpc/${path} HTTP/1.1\r\nhost: x\r\ncontent-type: ${type}\r\ncontent-length: 10000000\r\n\r\n`);
      socket.write(path === 'upload' ? 'x'.repeat(50_000) : '--XYZ\r\ncontent-disposition: form-data; name="f"; filename="f.bin"\r\n\r\n' + 'y'.repeat(50_000));
      await sleep(100);
      socket.destroy();
    }
    await sleep(100);
    assert.deepEqual(await withTimeout(client().upload.mutate(new Uint8Array(10))), { size: 10 });
    assert.ok(!/panicked/.test(server.stderr()), server.stderr());
  });

  it("the server's memory stays flat while 1 GiB streams through", { timeout: 120_000 }, async () => {
    const { port } = new URL(server.url);
    const total = 1024 * MiB;
    const chunk = Buffer.alloc(MiB, 7);
    const before = rss(server.pid);
    let peak = before;
    const sampler = setInterval(() => {
      peak = Math.max(peak, rss(server.pid));
    }, 20);
    try {
      const body = await withTimeout(
        new Promise<string>((resolve, reject) => {
          const req = request(
            { host: '127.0.0.1', port: Number(port), path: '/trpc/upload', method: 'POST', headers: { 'content-type': 'application/octet-stream', 'content-length': total } },
            (res) => {
              let text = '';
              res.setEncoding('utf8');
              res.on('data', (d: string) => (text += d));
              res.on('end', () => resolve(text));
            },
          );
          req.on('error', reject);
          let sent = 0;
          const pump = (): void => {
            while (sent < total) {
              sent += chunk.length;
              if (!req.write(chunk)) {
                req.once('drain', pump);
                return;
              }
            }
            req.end();
          };
          pump();
        }),
        100_000,
        '1 GiB upload',
      );
      assert.deepEqual(JSON.parse(body), { result: { data: { size: total } } });
    } finally {
      clearInterval(sampler);
    }
    const grew = peak - before;
    console.log(`upload of 1 GiB: server RSS ${(before / MiB).toFixed(1)} MiB before, peak +${(grew / MiB).toFixed(1)} MiB`);
    assert.ok(grew < 32 * MiB, `the server grew by ${(grew / MiB).toFixed(1)} MiB while streaming 1 GiB`);
  });
});
