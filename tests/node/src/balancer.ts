/**
 * A TCP load balancer for the scale-out tests, as simple as the real ones in front of tRPC
 * apps: each new client connection goes to the first backend that accepts it; when a backend
 * dies its connections break, and the clients' reconnects land on the next one alive.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';

export class Balancer {
  /** Backends in order of preference: `127.0.0.1` ports. */
  backends: number[];
  private readonly sockets = new Set<Socket>();
  private constructor(private readonly server: Server, readonly port: number, backends: number[]) {
    this.backends = backends;
  }

  static async start(backends: number[]): Promise<Balancer> {
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', resolve);
    });
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('no port');
    const balancer = new Balancer(server, address.port, backends);
    server.on('connection', (client) => balancer.route(client));
    return balancer;
  }

  /** The tRPC base URL through the balancer. */
  url(scheme: 'http' | 'ws' = 'http'): string {
    return `${scheme}://127.0.0.1:${this.port}/trpc`;
  }

  private track(socket: Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
  }

  private route(client: Socket, index = 0): void {
    this.track(client);
    client.pause();
    const port = this.backends[index];
    if (port === undefined) {
      client.destroy();
      return;
    }
    const upstream = createConnection({ host: '127.0.0.1', port });
    this.track(upstream);
    let connected = false;
    upstream.once('error', () => {
      if (!connected && !client.destroyed) {
        // Refused: try the next backend.
        upstream.destroy();
        this.sockets.delete(client);
        this.route(client, index + 1);
      } else {
        client.destroy();
      }
    });
    upstream.once('connect', () => {
      connected = true;
      client.on('error', () => upstream.destroy());
      client.pipe(upstream);
      upstream.pipe(client);
      client.once('close', () => upstream.destroy());
      upstream.once('close', () => client.destroy());
      client.resume();
    });
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
