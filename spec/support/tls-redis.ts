import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { removeDir, tempDir } from './temp.js';
import { waitFor } from './wait-for.js';
import { answersPing } from '../../lib/store/embedded-redis.js';
import { freePort } from './free-port.js';

// A real redis-server that speaks TLS only (no plain port) and wants a password, for the specs
// of rediss:// URLs. Its certificate is made here with openssl: a CA of its own, and a server
// certificate for 127.0.0.1 (subjectAltName IP) signed by it. Clients need the CA to trust it.

export class TlsRedisServer {
  private constructor(
    readonly dir: string,
    readonly port: number,
    readonly password: string,
    private readonly child: ChildProcess,
  ) {}

  /** The CA certificate (PEM) that signed the server's certificate. */
  get caFile(): string {
    return join(this.dir, 'ca.crt');
  }

  /** rediss://:PASSWORD@127.0.0.1:PORT/ (no CA: give it with ?ca= or JM_REDIS_CA). */
  url(password = this.password): string {
    return `rediss://:${encodeURIComponent(password)}@127.0.0.1:${this.port}/`;
  }

  static async start(password: string): Promise<TlsRedisServer> {
    const dir = tempDir('jm-tls-redis-');
    makeCertificates(dir);
    const port = await freePort();
    const child = spawn('redis-server', [
      '--port', '0', '--tls-port', String(port), '--bind', '127.0.0.1',
      '--tls-cert-file', join(dir, 'server.crt'), '--tls-key-file', join(dir, 'server.key'), '--tls-ca-cert-file', join(dir, 'ca.crt'),
      '--tls-auth-clients', 'no', '--requirepass', password,
      '--dir', dir, '--save', '', '--appendonly', 'no', '--logfile', join(dir, 'redis.log'),
    ], { stdio: 'ignore' });
    const server = new TlsRedisServer(dir, port, password, child);
    await waitFor('the TLS redis-server to answer PING', async () => {
      if (child.exitCode !== null) throw new Error(`redis-server exited (${child.exitCode}); see ${join(dir, 'redis.log')}`);
      return answersPing({ host: '127.0.0.1', port, password, tls: { ca: readFileSync(server.caFile) } });
    });
    return server;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const exited = new Promise((resolve) => this.child.once('exit', resolve));
      this.child.kill('SIGTERM');
      await exited;
    }
    removeDir(this.dir);
  }
}

function makeCertificates(dir: string): void {
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=JobManager spec CA');
  openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1');
  writeFileSync(join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1\n');
  openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '2', '-extfile', 'san.ext');
}
