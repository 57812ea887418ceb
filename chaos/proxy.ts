import { connect, createServer, type Server, type Socket } from 'node:net';

// A TCP proxy in front of one host's sshd that can cut the host off: while cut, it forwards
// nothing in either direction and closes nothing, as a network partition does (the kernel keeps
// both ends' sockets open; no RST, no FIN). What either side sends meanwhile is held, and a
// side that closes has its close held too; `restore()` delivers all of it in order, as TCP's
// retransmissions would once the partition heals. New connections are accepted while cut (the
// client's kernel would keep sending SYNs) but reach sshd only on restore.
//
//   client ──▶ proxy (127.0.0.N:port) ──▶ sshd (127.0.0.N:sshPort)
//                 cut: hold ◀──┴──▶ hold

type Item = Buffer | 'end';

class Link {
  private upstream: Socket | null = null;
  private closed = false;
  private readonly toUpstream: Item[] = [];
  private readonly toClient: Item[] = [];

  constructor(
    private readonly client: Socket,
    private readonly target: { host: string; port: number },
    private readonly isCut: () => boolean,
    private readonly onClose: (link: Link) => void,
  ) {
    client.setNoDelay(true);
    client.on('data', (chunk) => this.send(this.toUpstream, chunk));
    client.on('end', () => this.send(this.toUpstream, 'end'));
    client.on('error', () => this.send(this.toUpstream, 'end'));
    client.on('close', () => this.send(this.toUpstream, 'end'));
    this.pump();
  }

  private send(queue: Item[], item: Item): void {
    if (item === 'end' && queue[queue.length - 1] === 'end') return;
    queue.push(item);
    this.pump();
  }

  /** Delivers what is held, unless the host is cut off. */
  pump(): void {
    if (this.closed || this.isCut()) return;
    if (!this.upstream) this.openUpstream();
    this.drain(this.toUpstream, this.upstream!);
    this.drain(this.toClient, this.client);
  }

  private openUpstream(): void {
    const upstream = connect(this.target.port, this.target.host);
    upstream.setNoDelay(true);
    upstream.on('data', (chunk) => this.send(this.toClient, chunk));
    upstream.on('end', () => this.send(this.toClient, 'end'));
    upstream.on('error', () => this.send(this.toClient, 'end'));
    upstream.on('close', () => this.send(this.toClient, 'end'));
    this.upstream = upstream;
  }

  private drain(queue: Item[], to: Socket): void {
    while (queue.length > 0) {
      const item = queue.shift()!;
      if (item === 'end') {
        // One side is gone: so is the link (an SSH connection cannot go on half-closed).
        this.destroy();
        this.onClose(this);
        return;
      }
      if (!to.destroyed) to.write(item);
    }
  }

  destroy(): void {
    this.closed = true;
    this.client.destroy();
    this.upstream?.destroy();
  }
}

export class CutoffProxy {
  private cut = false;
  private readonly links = new Set<Link>();

  private constructor(
    private readonly server: Server,
    readonly address: string,
    readonly port: number,
  ) {}

  /** Listens on `address` (a free port) and forwards to target. */
  static async start(address: string, target: { host: string; port: number }): Promise<CutoffProxy> {
    const server = createServer();
    const port = await new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, address, () => resolve((server.address() as { port: number }).port));
    });
    const proxy = new CutoffProxy(server, address, port);
    server.on('connection', (socket) => {
      const link = new Link(socket, target, () => proxy.cut, (l) => proxy.links.delete(l));
      proxy.links.add(link);
    });
    return proxy;
  }

  get isCut(): boolean {
    return this.cut;
  }

  /** The host is cut off: nothing passes, nothing is closed. */
  cutOff(): void {
    this.cut = true;
  }

  /** The partition heals: everything held is delivered, in order. */
  restore(): void {
    this.cut = false;
    for (const link of [...this.links]) link.pump();
  }

  async close(): Promise<void> {
    for (const link of this.links) link.destroy();
    this.links.clear();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
