import { createServer, connect, type Server, type Socket } from 'node:net';

// A TCP relay on 127.0.0.1 that a spec can freeze and cut, standing for the network between two
// processes on loopback: frozen, it passes nothing on (what was sent waits, as on a congested
// link); cut, every connection through it is destroyed and what waited is lost. The Sentinel
// harness puts one between the master and its replica, to lose writes the master acknowledged.

export class TcpLink {
  private readonly pairs = new Set<[Socket, Socket]>();
  private frozen = false;

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async open(targetPort: number): Promise<TcpLink> {
    let link: TcpLink | null = null;
    const server = createServer((inbound) => {
      const outbound = connect(targetPort, '127.0.0.1');
      const pair: [Socket, Socket] = [inbound, outbound];
      link!.pairs.add(pair);
      for (const [from, to] of [[inbound, outbound], [outbound, inbound]]) {
        from.on('data', (chunk) => to.write(chunk));
        from.on('error', () => {});
        from.on('close', () => {
          to.destroy();
          link!.pairs.delete(pair);
        });
        if (link!.frozen) from.pause();
      }
    });
    const port = await new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port));
    });
    link = new TcpLink(server, port);
    return link;
  }

  /** Nothing passes any more, either way (new connections included), until cut. */
  freeze(): void {
    this.frozen = true;
    for (const [a, b] of this.pairs) {
      a.pause();
      b.pause();
    }
  }

  /** Every connection through the link is destroyed; what was held back is lost. */
  cut(): void {
    for (const [a, b] of this.pairs) {
      a.destroy();
      b.destroy();
    }
    this.pairs.clear();
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise((resolve) => this.server.close(resolve));
  }
}
