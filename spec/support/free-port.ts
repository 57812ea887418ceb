import { createServer } from 'node:net';

/** A TCP port free on `address` a moment ago (the kernel's pick for port 0), for a server a spec starts. */
export function freePort(address = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, address, () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}
