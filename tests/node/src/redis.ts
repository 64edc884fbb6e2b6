/**
 * A private `redis-server` for a test (Debian's `redis-server` package): a free loopback port,
 * its own data directory, append-only persistence with fsync on every write (so a crash and
 * restart keeps every acknowledged event). Stopped by its own PID.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** A free loopback port (bound, read, released). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1_000, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (data) => done(data.toString() === '+PONG\r\n'));
  });
}

export class RedisServer {
  private child: ChildProcess | undefined;
  private readonly dir = mkdtempSync(join(tmpdir(), 'oxrpc-redis-'));

  private constructor(readonly port: number) {}

  /** Starts one and waits (at most 10 s) until it answers PING. */
  static async start(): Promise<RedisServer> {
    const server = new RedisServer(await freePort());
    await server.restart();
    return server;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Starts it (again) on the same port with the same data. */
  async restart(): Promise<void> {
    await this.kill();
    const args = ['--bind', '127.0.0.1', '--port', String(this.port), '--save', '', '--appendonly', 'yes',
      '--appendfsync', 'always', '--protected-mode', 'no', '--daemonize', 'no', '--dir', this.dir];
    const child = spawn('redis-server', args, { stdio: ['ignore', 'ignore', 'inherit'] });
    const failed = new Promise<never>((_, reject) => child.once('error', (err) => reject(new Error(
      `cannot start redis-server (${err.message}); these tests need a real Redis: apt-get install -y redis-server`))));
    failed.catch(() => {});
    this.child = child;
    const deadline = Date.now() + 10_000;
    while (!(await Promise.race([ping(this.port), failed]))) {
      if (Date.now() > deadline) throw new Error(`redis-server did not answer PING on port ${this.port} within 10 s`);
      await sleep(20);
    }
  }

  /** SIGKILL: a crash (its append-only file keeps what it acknowledged). */
  async kill(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGKILL');
    await exited;
  }

  /** Kills it and removes its data. */
  async stop(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
