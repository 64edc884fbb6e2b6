/**
 * Starts and stops the Rust conformance server (`tests/src/bin/conformance-server.rs`).
 *
 * One child process per call to {@link startServer}. The child is always stopped by its own PID
 * (`child.kill`), never by name, so parallel runs and other servers on the machine are untouched.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { EventSource } from 'eventsource';

// Clients before the links' `EventSource` option (11.0.0) use the global one, which Node 20
// lacks: install the `eventsource` package's, as a Node app on such a client would.
if (!('EventSource' in globalThis)) {
  Object.assign(globalThis, { EventSource });
}

/** Server configuration profiles of the conformance server (conformance-ideas.md §3.2). */
export type Profile = 'plain' | 'superjson' | 'options' | 'inactivity';

/** A running conformance server. */
export interface RunningServer {
  /** The tRPC base URL, e.g. `http://127.0.0.1:41234/trpc`. */
  readonly url: string;
  /** The profile the server was started with. */
  readonly profile: Profile;
  /** PID of the child process. */
  readonly pid: number;
  /** Everything the server wrote to stderr so far (bounded), for failure diagnostics. */
  stderr(): string;
  /** SIGTERM, then SIGKILL after 3 s; resolves once the process has exited. Idempotent. */
  stop(): Promise<void>;
  /** SIGKILL (a crash: no goodbye to its clients); resolves once the process has exited. */
  kill(): Promise<void>;
}

/** How long the server may take to print its `listening on` line. */
const STARTUP_DEADLINE_MS = 20_000;
/** Grace period between SIGTERM and SIGKILL. */
const KILL_GRACE_MS = 3_000;
/** Keep at most this many characters of the server's stderr. */
const STDERR_LIMIT = 16_384;

/** Finds the repository root: the nearest ancestor of this file that holds `Cargo.lock`. */
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'Cargo.lock'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error('cannot locate the oxrpc repository root (no Cargo.lock above the harness)');
    dir = parent;
  }
}

/** Path of the server binary: `$CONFORMANCE_SERVER`, or `<repo>/target/debug/conformance-server`. */
export function serverBinary(): string {
  const path = process.env.CONFORMANCE_SERVER || join(repoRoot(), 'target', 'debug', 'conformance-server');
  if (!existsSync(path)) {
    throw new Error(
      `conformance-server not built: run \`cargo build -p oxrpc-tests --bin conformance-server\` (looked for ${path})`,
    );
  }
  return path;
}

/** Resolves once `child` has exited (immediately if it already has). */
function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/**
 * Spawns the conformance server with `--port <port> --profile <profile>` (port 0: a free one; a
 * given port: to restart a server where its clients expect it) and waits (at most 20 s) for its
 * `listening on http://127.0.0.1:PORT` line.
 */
export async function startServer(profile: Profile = 'plain', port = 0, extraArgs: string[] = []): Promise<RunningServer> {
  const binary = serverBinary();
  const args = ['--port', String(port), '--profile', profile, ...extraArgs];
  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const pid = child.pid;
  if (pid === undefined) {
    // spawn failed synchronously (e.g. EACCES); the 'error' event carries the reason.
    const err = await new Promise<Error>((resolve) => child.once('error', resolve));
    throw new Error(`could not spawn ${binary}: ${err.message}`);
  }

  // If this test process dies without running `after` hooks, do not leave the server behind.
  const killOnExit = (): void => {
    child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);

  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-STDERR_LIMIT);
  });

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        const done = exited(child);
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS);
        try {
          await done;
        } finally {
          clearTimeout(timer);
        }
      }
      process.removeListener('exit', killOnExit);
    })();
    return stopping;
  };

  // Wait for the `listening on` line, an early exit, or the deadline, whichever comes first.
  const lines = createInterface({ input: child.stdout! });
  try {
    const origin = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`conformance-server (${profile}) did not report "listening on" within ${STARTUP_DEADLINE_MS} ms`)),
        STARTUP_DEADLINE_MS,
      );
      const settle = (): void => clearTimeout(timer);
      lines.on('line', (line) => {
        const match = /^listening on (http:\/\/\S+)$/.exec(line.trim());
        if (match) {
          settle();
          resolve(match[1]!);
        }
      });
      child.once('exit', (code, signal) => {
        settle();
        reject(new Error(`conformance-server (${profile}) exited early (code ${code}, signal ${signal}): ${stderr}`));
      });
      child.once('error', (err) => {
        settle();
        reject(err);
      });
    });
    const kill = async (): Promise<void> => {
      const done = exited(child);
      child.kill('SIGKILL');
      await done;
      await stop();
    };
    return {
      url: `${origin.replace(/\/$/, '')}/trpc`,
      profile,
      pid,
      stderr: () => stderr,
      stop,
      kill,
    };
  } catch (err) {
    await stop();
    throw err;
  } finally {
    // Keep draining stdout so the child never blocks on a full pipe.
    lines.removeAllListeners('line');
    child.stdout!.resume();
  }
}
