/**
 * The chat example end to end, in a real browser: starts `target/debug/chat-server` on a free
 * port with a fresh data folder, and drives two Chromium windows (alice and bob, separate
 * cookies) through the web app it serves:
 *
 * - history pages ("Load older"), live messages, typing indicator, who is online;
 * - a too-long message: the validation error shows next to the input, nothing is sent;
 * - the server restarted mid-conversation (same port, same data): a send while it is down
 *   shows an error, alice's sends right after the restart go through, and both windows
 *   reconnect by themselves and end up with every message exactly once, in order.
 *
 * Once with subscriptions over WebSocket (the server stopped with SIGTERM), once over SSE
 * (`?transport=sse`, the server killed with SIGKILL). Writes a screenshot of the two windows to
 * target/chat-screenshot.png ($CHAT_SCREENSHOT to choose; the README's is examples/chat/screenshot.png).
 *
 * `npm test --workspace examples/chat/e2e` (builds the web app first; build the server with
 * `cargo build -p chat-server`). Needs Debian's chromium: `apt-get install -y chromium`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

const chromiumPath = '/usr/bin/chromium';
const started = Date.now();
const log = (...args: unknown[]) => console.log(`[${((Date.now() - started) / 1000).toFixed(1).padStart(5)}s]`, ...args);

// ---- deadlines ---------------------------------------------------------------------------

class Failure extends Error {}

function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Failure(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Polls `probe` until it returns something other than undefined (or the deadline). */
async function until<T>(what: string, probe: () => Promise<T | undefined>, ms = 15_000): Promise<T> {
  const end = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const value = await within(Math.max(1, end - Date.now()), what, probe());
      if (value !== undefined) return value;
    } catch (e) {
      if (e instanceof Failure) break;
      last = e;
    }
    if (Date.now() >= end) break;
    await sleep(100);
  }
  throw new Failure(`timed out after ${ms} ms: ${what}${last ? ` (last error: ${String(last)})` : ''}`);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function check(condition: boolean, what: string): asserts condition {
  if (!condition) throw new Failure(`check failed: ${what}`);
}

// ---- the server --------------------------------------------------------------------------

function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'Cargo.lock'))) {
    const up = dirname(dir);
    if (up === dir) throw new Failure('no Cargo.lock above the e2e folder: where is the repository?');
    dir = up;
  }
  return dir;
}

function freePort(): Promise<number> {
  return within(
    5_000,
    'a free port',
    new Promise((resolve, reject) => {
      const probe = createServer();
      probe.on('error', reject);
      probe.listen(0, '127.0.0.1', () => {
        const address = probe.address();
        const port = typeof address === 'object' && address ? address.port : 0;
        probe.close(() => resolve(port));
      });
    }),
  );
}

/** `chat-server --port <port> --data <data>`; its output goes to `output` (printed on failure). */
class ChatServer {
  private child: ChildProcess | null = null;
  readonly output: string[] = [];

  constructor(
    private readonly root: string,
    readonly port: number,
    private readonly data: string,
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    // Right after a stop, binding the same port may fail for a moment: try again.
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.startOnce();
      } catch (e) {
        if (attempt === 10) throw e;
        log(`server did not start (${String(e)}), again`);
        await sleep(300);
      }
    }
  }

  private startOnce(): Promise<void> {
    const child = spawn('./target/debug/chat-server', ['--port', String(this.port), '--data', this.data], {
      cwd: this.root,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    const banner = `listening on ${this.url}`;
    return within(
      20_000,
      `the server's "${banner}"`,
      new Promise<void>((resolve, reject) => {
        createInterface({ input: child.stderr! }).on('line', (line) => this.output.push(`[server ${child.pid} stderr] ${line}`));
        createInterface({ input: child.stdout! }).on('line', (line) => {
          this.output.push(`[server ${child.pid}] ${line}`);
          if (line.trim() === banner) resolve();
        });
        child.on('error', reject);
        child.on('exit', (code, signal) => reject(new Failure(`server exited (${code ?? signal}) before listening`)));
      }),
    ).catch((e) => {
      child.kill('SIGKILL');
      throw e;
    });
  }

  /** SIGTERM (or `signal`), then SIGKILL if it is still there after 5 s. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.child;
    this.child = null;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const begun = Date.now();
    child.kill(signal);
    try {
      await within(5_000, `server ${child.pid} to exit on ${signal}`, exited);
      if (signal !== 'SIGKILL') log(`server ${child.pid} exited ${Date.now() - begun} ms after ${signal}`);
    } catch {
      log(`server ${child.pid} still running 5 s after ${signal}: SIGKILL`);
      child.kill('SIGKILL');
      await within(5_000, `server ${child.pid} to exit on SIGKILL`, exited);
    }
  }
}

// ---- the API, straight over HTTP (seeding and the expected end state) ----------------------

type ChatMessage = { id: number; room: string; author: string; text: string; sentAt: string };

async function api<T>(base: string, method: 'GET' | 'POST', path: string, input: unknown, token?: string): Promise<T> {
  const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
  let url = `${base}/trpc/${path}`;
  let body: string | undefined;
  if (method === 'GET') url += `?input=${encodeURIComponent(JSON.stringify(input))}`;
  else {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(input);
  }
  const res = await fetch(url, { method, headers, body, signal: AbortSignal.timeout(5_000) });
  const json = (await res.json()) as { result?: { data: T }; error?: unknown };
  if (!json.result) throw new Failure(`${path}: HTTP ${res.status} ${JSON.stringify(json.error)}`);
  return json.result.data;
}

async function signIn(base: string, name: string): Promise<string> {
  return (await api<{ token: string }>(base, 'POST', 'auth.signIn', { name })).token;
}

/** Every message of the room, oldest first, paging back through `messages.history`. */
async function fullHistory(base: string, token: string, room: string): Promise<ChatMessage[]> {
  const all: ChatMessage[] = [];
  let cursor: number | null = null;
  for (let pages = 0; pages < 100; pages++) {
    const page: { items: ChatMessage[]; nextCursor: number | null } = await api(base, 'GET', 'messages.history', {
      room,
      limit: 50,
      ...(cursor === null ? {} : { cursor }),
    }, token);
    all.unshift(...page.items);
    cursor = page.nextCursor;
    if (cursor === null) return all;
  }
  throw new Failure('messages.history: more than 100 pages');
}

// ---- the browser windows -----------------------------------------------------------------

const offsite: string[] = [];
const pageErrors: string[] = [];
let signInError: string | undefined;

async function openWindow(browser: Browser, base: string, name: string, room: string, query: string): Promise<Page> {
  const context: BrowserContext = await browser.newContext({ viewport: { width: 600, height: 600 } });
  const onlyLocal = (url: string) => {
    const { protocol, hostname } = new URL(url);
    if (!['data:', 'about:', 'blob:'].includes(protocol) && hostname !== '127.0.0.1') offsite.push(`${name}: ${url}`);
  };
  context.on('request', (req) => onlyLocal(req.url()));
  const page = await context.newPage();
  page.on('websocket', (ws) => onlyLocal(ws.url()));
  page.on('pageerror', (err) => pageErrors.push(`${name}: ${err.message}`));
  page.setDefaultTimeout(10_000);
  await page.goto(`${base}/${query}`, { timeout: 15_000 });
  // An invalid name first: the validation error shows on the form.
  await page.getByTestId('name-input').fill(`${name}!`);
  await page.getByTestId('sign-in').click();
  const refused = (await page.getByTestId('field-error').textContent()) ?? '';
  check(refused !== '', `${name}: "${name}!" refused with a message`);
  signInError ??= refused;
  await page.getByTestId('name-input').fill(name);
  await page.getByTestId('sign-in').click();
  await page.getByTestId(`room-${room}`).click();
  await live(page, name);
  return page;
}

/** Waits for the window's live-message subscription to be connected. */
async function live(page: Page, who: string, ms = 20_000): Promise<void> {
  await until(
    `${who}'s connection to be live`,
    async () => ((await page.getByTestId('connection').getAttribute('data-state')) === 'pending' ? true : undefined),
    ms,
  );
}

async function shown(page: Page): Promise<{ ids: number[]; texts: string[] }> {
  return page.getByTestId('message-list').evaluate((list) => {
    const items = [...list.querySelectorAll<HTMLElement>('[data-testid="message"]')];
    return {
      ids: items.map((el) => Number(el.dataset.id)),
      texts: items.map((el) => el.querySelector('p')?.textContent ?? ''),
    };
  });
}

async function text(page: Page, testId: string): Promise<string> {
  return (await page.getByTestId(testId).textContent()) ?? '';
}

/** Sends through the UI: resolves to the error shown, or null once the input was cleared (sent). */
async function sendOnce(page: Page, message: string): Promise<string | null> {
  const input = page.getByTestId('message-input');
  await input.fill(''); // editing clears the error of the last attempt
  await input.fill(message);
  check((await page.getByTestId('field-error').count()) === 0, 'no error shown before sending');
  await page.getByTestId('send').click();
  return until(`"${message.slice(0, 30)}" to be sent or refused`, async () => {
    const error = page.getByTestId('field-error');
    if (await error.isVisible()) return (await error.textContent()) ?? '';
    return (await input.inputValue()) === '' ? null : undefined;
  });
}

async function send(page: Page, message: string, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    const error = await sendOnce(page, message);
    if (error === null) return;
    if (Date.now() > end) throw new Failure(`could not send "${message}": ${error}`);
    log(`send failed (${error}), again`);
    await sleep(250);
  }
}

async function loadAllOlder(page: Page, who: string): Promise<void> {
  for (let i = 0; i < 50; i++) {
    const button = page.getByTestId('load-older');
    if ((await button.count()) === 0) return;
    const before = (await shown(page)).ids.length;
    await button.click();
    await until(`${who}: older messages after "Load older"`, async () =>
      (await shown(page)).ids.length > before ? true : undefined,
    );
  }
  throw new Failure(`${who}: "Load older" never ran out`);
}

// ---- the scenario ------------------------------------------------------------------------

type Pass = { transport: 'websocket' | 'sse'; room: string; restartSignal: NodeJS.Signals; screenshot?: string };

async function scenario(browser: Browser, server: ChatServer, pass: Pass): Promise<void> {
  const base = server.url;
  const { room } = pass;
  const query = pass.transport === 'sse' ? '?transport=sse' : '';
  const expected: string[] = [];
  log(`--- ${pass.transport}: room ${room}`);

  // 25 older messages from carol: the first page shows the newest 20.
  const carol = await signIn(base, 'carol');
  for (let i = 1; i <= 25; i++) {
    const text = `older message ${i}`;
    await api(base, 'POST', 'messages.send', { room, text }, carol);
    expected.push(text);
  }

  const alice = await openWindow(browser, base, 'alice', room, query);
  const bob = await openWindow(browser, base, 'bob', room, query);
  log(`alice and bob signed in (an invalid name first: "${signInError}") and joined`, room);
  for (const [who, page] of [['alice', alice], ['bob', bob]] as const) {
    const { ids } = await until(`${who} to show the first history page`, async () => {
      const s = await shown(page);
      return s.ids.length >= 20 ? s : undefined;
    });
    check(ids.length === 20, `${who} shows the newest 20 of 25 messages (${ids.length})`);
    check(await page.getByTestId('load-older').isVisible(), `${who} offers "Load older"`);
  }
  await loadAllOlder(alice, 'alice');
  check((await shown(alice)).ids.length === 25, 'alice shows all 25 after "Load older"');
  log('history pages: ok');

  // Who is online.
  for (const [who, page] of [['alice', alice], ['bob', bob]] as const) {
    await until(`${who} to see alice and bob online`, async () => {
      const online = await text(page, 'online');
      return online.includes('alice') && online.includes('bob') ? true : undefined;
    });
  }
  log('online: ok');

  // The HTTP-only cookie `auth.signIn` set also authenticates a WebSocket (on its upgrade
  // request), without connectionParams: what a page that never sees the token can use.
  const viaCookie = await alice.evaluate(
    () =>
      new Promise<string>((resolve, reject) => {
        const ws = new WebSocket(`${location.origin.replace(/^http/, 'ws')}/trpc`);
        const timer = setTimeout(() => reject(new Error('no answer within 10 s')), 10_000);
        ws.onopen = () => ws.send(JSON.stringify({ id: 1, method: 'query', params: { path: 'auth.me' } }));
        ws.onmessage = (event) => {
          clearTimeout(timer);
          ws.close();
          resolve(String(event.data));
        };
        ws.onerror = () => reject(new Error('WebSocket error'));
      }),
  );
  check(JSON.parse(viaCookie)?.result?.data === 'alice', `a cookie-authenticated WebSocket knows alice: ${viaCookie}`);
  log('cookie on the WebSocket upgrade: ok');

  // A live message.
  const hi = `hi bob, this is ${pass.transport === 'sse' ? 'Server-Sent Events' : 'a WebSocket'}`;
  await send(alice, hi);
  expected.push(hi);
  await until(`bob to see "${hi}"`, async () => ((await shown(bob)).texts.includes(hi) ? true : undefined));
  log('live message: ok');

  // Typing: bob types, alice sees it; bob idle for 2 s, it goes away.
  await bob.getByTestId('message-input').pressSequentially('hey al', { delay: 40 });
  await until('alice to see "bob is typing"', async () => ((await text(alice, 'typing')).includes('bob is typing') ? true : undefined));
  check(!(await text(bob, 'typing')).includes('bob'), 'bob does not see himself typing');
  await until('"bob is typing" to go away after 2 s idle', async () => ((await text(alice, 'typing')) === '' ? true : undefined), 8_000);
  await bob.getByTestId('message-input').pressSequentially('ice, I see you typing', { delay: 20 });
  await until('alice to see "bob is typing" again', async () => ((await text(alice, 'typing')).includes('bob is typing') ? true : undefined));
  await bob.getByTestId('send').click();
  expected.push('hey alice, I see you typing');
  await until('alice to see bob\'s answer', async () => ((await shown(alice)).texts.includes('hey alice, I see you typing') ? true : undefined));
  await until('"bob is typing" to go away on send', async () => ((await text(alice, 'typing')) === '' ? true : undefined), 3_000);
  log('typing: ok');

  // Too long: the field error shows next to the input, nothing is sent.
  const before = (await shown(alice)).ids;
  const error = await sendOnce(alice, 'x'.repeat(300));
  check(error === 'Expected at most 280 characters, received 300', `field error for 300 characters (got ${JSON.stringify(error)})`);
  check(
    await alice.getByTestId('message-input').evaluate((input) => input.parentElement!.contains(document.querySelector('[data-testid="field-error"]'))),
    'the field error is next to the input',
  );
  await sleep(300);
  check((await shown(alice)).ids.join() === before.join(), 'nothing was sent');
  await alice.getByTestId('message-input').fill('');
  check((await alice.getByTestId('field-error').count()) === 0, 'the field error goes away when editing');
  log('validation error: ok');

  await send(alice, 'restarting the server now');
  expected.push('restarting the server now');
  await until('bob to see "restarting the server now"', async () => ((await shown(bob)).texts.includes('restarting the server now') ? true : undefined));

  // The server goes away mid-conversation...
  await server.stop(pass.restartSignal);
  log(`server stopped (${pass.restartSignal})`);
  for (const [who, page] of [['alice', alice], ['bob', bob]] as const) {
    await until(`${who} to show the connection is down`, async () =>
      (await page.getByTestId('connection').getAttribute('data-state')) !== 'pending' ? true : undefined,
    );
  }
  const down = await sendOnce(alice, 'is it back?');
  check(down !== null, 'a send while the server is down fails');
  log(`send while down: error shown (${down})`);

  // ...and comes back on the same port with the same data; alice sends right away.
  await server.start();
  log('server restarted');
  await send(alice, 'is it back?');
  expected.push('is it back?');
  await send(alice, 'sent right after the restart');
  expected.push('sent right after the restart');
  await live(alice, 'alice');
  await live(bob, 'bob');
  log('both reconnected');
  await send(bob, 'it is: I got both, once each');
  expected.push('it is: I got both, once each');
  await send(alice, 'history too, after a restart');
  expected.push('history too, after a restart');

  // Everything exactly once, in order, in both windows.
  const referee = await signIn(base, 'referee');
  const all = await fullHistory(base, referee, room);
  check(
    JSON.stringify(all.map((m) => m.text)) === JSON.stringify(expected),
    `the server has every message once, in order:\n  expected ${JSON.stringify(expected)}\n  got      ${JSON.stringify(all.map((m) => m.text))}`,
  );
  const ids = all.map((m) => m.id);
  for (const [who, page] of [['alice', alice], ['bob', bob]] as const) {
    await loadAllOlder(page, who);
    const got = await until(`${who} to show all ${ids.length} messages`, async () => {
      const s = await shown(page);
      return s.ids.length >= ids.length ? s : undefined;
    });
    check(new Set(got.ids).size === got.ids.length, `${who}: no duplicates (${got.ids.join()})`);
    check(got.ids.join() === ids.join(), `${who}: every message once, in order\n  expected ${ids.join()}\n  got      ${got.ids.join()}`);
    check(JSON.stringify(got.texts) === JSON.stringify(expected), `${who}: the texts`);
  }
  log(`${ids.length} messages exactly once in both windows: ok`);

  if (pass.screenshot) {
    for (const page of [alice, bob]) {
      await page.getByTestId('message-list').evaluate((list) => list.scrollTo({ top: list.scrollHeight }));
    }
    await bob.getByTestId('message-input').pressSequentially('see you', { delay: 30 });
    await until('alice to see bob typing (screenshot)', async () => ((await text(alice, 'typing')).includes('bob is typing') ? true : undefined));
    await sideBySide(browser, alice, bob, pass.screenshot);
    log(`screenshot: ${pass.screenshot}`);
  }
  await alice.context().close();
  await bob.context().close();
}

/** Both windows, side by side, in one PNG. */
async function sideBySide(browser: Browser, left: Page, right: Page, path: string): Promise<void> {
  const [a, b] = await Promise.all([left.screenshot(), right.screenshot()]);
  const page = await browser.newPage({ viewport: { width: 1200, height: 600 } });
  const img = (png: Buffer) => `<img src="data:image/png;base64,${png.toString('base64')}" width="600" height="600">`;
  await page.setContent(
    `<body style="margin:0;display:flex;position:relative">${img(a)}${img(b)}` +
      `<div style="position:absolute;left:599px;top:0;width:2px;height:600px;background:#57606a"></div></body>`,
  );
  await page.waitForFunction(() => [...document.images].every((i) => i.complete));
  await page.screenshot({ path });
  await page.close();
}

// ---- main --------------------------------------------------------------------------------

async function main(): Promise<void> {
  if (!existsSync(chromiumPath)) {
    throw new Failure(`${chromiumPath} is missing: install Debian's chromium with \`apt-get install -y chromium\``);
  }
  const root = repoRoot();
  const bin = join(root, 'target/debug/chat-server');
  if (!existsSync(bin)) throw new Failure(`${bin} is missing: build it with \`cargo build -p chat-server\``);
  if (!existsSync(join(root, 'examples/chat/web/dist/index.html'))) {
    throw new Failure('examples/chat/web/dist is missing: `npm run build --workspace examples/chat/web`');
  }

  const data = mkdtempSync(join(tmpdir(), 'chat-e2e-'));
  const server = new ChatServer(root, await freePort(), data);
  let browser: Browser | null = null;
  const cleanup = async () => {
    await browser?.close().catch(() => {});
    await server.stop().catch(() => {});
    rmSync(data, { recursive: true, force: true });
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => void cleanup().finally(() => process.exit(130)));
  }
  // Whatever hangs, the test ends.
  const watchdog = setTimeout(() => {
    console.error('chat e2e: FAILED: the whole test took more than 4 minutes');
    for (const line of server.output) console.error(line);
    void cleanup().finally(() => process.exit(1));
  }, 240_000);

  try {
    await server.start();
    log(`server on ${server.url}, data in ${data}`);
    browser = await within(30_000, 'chromium to start', chromium.launch({ executablePath: chromiumPath, args: ['--no-sandbox'] }));
    await scenario(browser, server, {
      transport: 'websocket',
      room: 'general',
      restartSignal: 'SIGTERM',
      screenshot: process.env.CHAT_SCREENSHOT || join(root, 'target/chat-screenshot.png'),
    });
    await scenario(browser, server, { transport: 'sse', room: 'random', restartSignal: 'SIGKILL' });
    check(offsite.length === 0, `requests only to 127.0.0.1; also: ${offsite.join(', ')}`);
    check(pageErrors.length === 0, `no uncaught errors in the pages: ${pageErrors.join('; ')}`);
    log(`chat e2e: passed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } catch (e) {
    console.error('chat e2e: FAILED:', e instanceof Failure ? e.message : e);
    console.error('--- server output');
    for (const line of server.output) console.error(line);
    process.exitCode = 1;
  } finally {
    clearTimeout(watchdog);
    await cleanup();
  }
}

await main();
