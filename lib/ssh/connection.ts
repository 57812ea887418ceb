import { readFileSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { Client, type ClientChannel, type SFTPWrapper } from 'ssh2';
import type { HostKeyPolicy } from '../config/config.js';
import { JobManagerError, errorMessage } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import { addHostKey, checkHostKey, knownHostsName } from './known-hosts.js';

// One pooled SSH connection to a host (ssh2), shared by everything an actor does there.
//  - TCP_NODELAY on the socket: without it every round trip waits ~40 ms (Nagle + delayed ACK).
//  - Keepalives notice a dead host; a lost connection is re-made on the next use, with backoff.
//  - Channels in flight are capped well below the server's MaxSessions (10 by default), and a
//    refused channel open is retried: OpenSSH frees a session slot a little after the client
//    sees the channel close (see shared/TESTING.md).
//  - Every script is fed to `sh -s` on its standard input, whatever the user's login shell is
//    and however long the script (a command-line argument is capped at 128 KiB on Linux).

export interface SshTarget {
  name: string;
  hostname: string;
  port: number;
  username: string;
  /** Private key file; null: the ssh-agent (SSH_AUTH_SOCK). */
  key: string | null;
}

export interface SshSettings {
  knownHosts: string;
  hostKeyPolicy: HostKeyPolicy;
  log: Logger;
  maxChannels?: number;
  connectTimeoutMs?: number;
}

export interface ExecResult {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

export class HostKeyError extends JobManagerError {
  override readonly code = 'JM_HOST_KEY';
}

/** Connecting cannot work until the config changes: the key cannot be read or is refused. */
export class SshConfigError extends JobManagerError {
  override readonly code = 'JM_SSH_CONFIG';
}

/** The host could not be reached (or the connection broke): the state of its jobs is unknown. */
export class SshUnavailableError extends JobManagerError {
  override readonly code = 'JM_SSH_UNAVAILABLE';
}

const DEFAULT_MAX_CHANNELS = 6;
const KEEPALIVE_MS = 5000;
const KEEPALIVE_COUNT = 3;

export class SshConnection {
  private client: Client | null = null;
  private connecting: Promise<Client> | null = null;
  private sftpSession: Promise<SFTPWrapper> | null = null;
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  private failures = 0;
  private retryAt = 0;
  private closed = false;
  /** Why the last connection attempt failed, for `jobmanager hosts`. */
  lastError: string | null = null;

  constructor(
    readonly target: SshTarget,
    private readonly settings: SshSettings,
  ) {}

  get connected(): boolean {
    return this.client !== null;
  }

  /** Runs `script` with sh on the host. Rejects with SshUnavailableError if the host cannot be reached. */
  async exec(script: string): Promise<ExecResult> {
    return this.withChannel(async (client) => {
      const channel = await openChannel((cb) => client.exec('sh -s', cb));
      return collect(channel, script);
    });
  }

  /** Runs `script` and hands its output to `onData` as it comes, until it ends or is closed. */
  async stream(script: string, onData: (chunk: Buffer) => void): Promise<{ close(): void; ended: Promise<void> }> {
    const session = await this.session(onData);
    session.write(script);
    session.endInput();
    return { close: session.close, ended: session.ended };
  }

  /**
   * A long-lived `sh -s` on the host: what is written is run as it arrives (a shell reading its
   * script from a pipe runs each complete command as soon as it has read it), its output goes to
   * `onData`. It holds one channel until closed or the connection ends.
   */
  async session(onData: (chunk: Buffer) => void): Promise<{ write(text: string): boolean; endInput(): void; close(): void; ended: Promise<void> }> {
    const client = await this.connection();
    await this.acquire();
    let channel: ClientChannel;
    try {
      channel = await openChannel((cb) => client.exec('sh -s', cb));
    } catch (err) {
      this.release();
      throw this.unavailable(err);
    }
    channel.on('data', onData);
    channel.stderr.resume();
    channel.on('error', () => {});
    const ended = new Promise<void>((resolve) => channel.once('close', () => {
      this.release();
      resolve();
    }));
    return { write: (text) => channel.write(text), endInput: () => channel.end(), close: () => channel.close(), ended };
  }

  async sftp(): Promise<SFTPWrapper> {
    const client = await this.connection();
    this.sftpSession ??= new Promise<SFTPWrapper>((resolve, reject) => client.sftp((err, sftp) => (err ? reject(err) : resolve(sftp))));
    try {
      return await this.sftpSession;
    } catch (err) {
      this.sftpSession = null;
      throw this.unavailable(err);
    }
  }

  private async withChannel<T>(work: (client: Client) => Promise<T>): Promise<T> {
    const client = await this.connection();
    await this.acquire();
    try {
      return await work(client);
    } catch (err) {
      throw err instanceof JobManagerError ? err : this.unavailable(err);
    } finally {
      this.release();
    }
  }

  private acquire(): Promise<void> {
    const max = this.settings.maxChannels ?? DEFAULT_MAX_CHANNELS;
    if (this.active < max) {
      this.active++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push(() => {
      this.active++;
      resolve();
    }));
  }

  private release(): void {
    this.active--;
    this.waiting.shift()?.();
  }

  private unavailable(err: unknown): Error {
    if (err instanceof JobManagerError) return err;
    return new SshUnavailableError(`${this.target.name}: ${errorMessage(err)}`, { cause: err });
  }

  /** The connection, made (again) if needed; fails fast while a reconnect backoff runs. */
  private connection(): Promise<Client> {
    if (this.closed) return Promise.reject(new SshUnavailableError(`${this.target.name}: the connection is closed`));
    if (this.client) return Promise.resolve(this.client);
    if (this.connecting) return this.connecting;
    if (Date.now() < this.retryAt) return Promise.reject(new SshUnavailableError(`${this.target.name}: unreachable (${this.lastError}); trying again shortly`));
    this.connecting = this.connect().then(
      (client) => {
        this.connecting = null;
        this.failures = 0;
        this.lastError = null;
        return client;
      },
      (err: unknown) => {
        this.connecting = null;
        this.failures++;
        this.retryAt = Date.now() + Math.min(200 * 2 ** this.failures, 10_000);
        this.lastError = errorMessage(err);
        throw err instanceof JobManagerError ? err : this.unavailable(err);
      },
    );
    return this.connecting;
  }

  private async connect(): Promise<Client> {
    const { hostname, port, username, key, name } = this.target;
    const timeout = this.settings.connectTimeoutMs ?? 10_000;
    const socket = await tcpConnect(hostname, port, timeout);
    const client = new Client();
    let keyProblem: HostKeyError | null = null;
    const verify = (blob: Buffer): boolean => {
      const verdict = checkHostKey(this.settings.knownHosts, hostname, port, blob);
      if (verdict === 'known') return true;
      const where = `${knownHostsName(hostname, port)} (host ${name})`;
      if (verdict === 'unknown' && this.settings.hostKeyPolicy === 'accept-new') {
        addHostKey(this.settings.knownHosts, hostname, port, blob);
        this.settings.log.warn(`SSH: accepted the new host key of ${where} into ${this.settings.knownHosts} (HostKeyPolicy: accept-new)`);
        return true;
      }
      keyProblem = new HostKeyError(
        verdict === 'unknown'
          ? `${where} is not in ${this.settings.knownHosts}; add its key (ssh-keyscan -p ${port} ${hostname} >> ${this.settings.knownHosts}, after checking it) or set HostKeyPolicy: accept-new`
          : verdict === 'revoked'
            ? `the host key of ${where} is marked @revoked in ${this.settings.knownHosts}; refusing to connect`
            : `the host key of ${where} does not match the one in ${this.settings.knownHosts}: someone may be intercepting the connection. If the host was reinstalled, remove the old key (ssh-keygen -R '${knownHostsName(hostname, port)}' -f ${this.settings.knownHosts}) and add the new one`,
      );
      return false;
    };
    let privateKey: Buffer | undefined;
    if (key) {
      try {
        privateKey = readFileSync(key);
      } catch (err) {
        socket.destroy();
        throw new SshConfigError(`${name}: cannot read the key ${key} (${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}); check Key in the config or job file`);
      }
    } else if (!process.env.SSH_AUTH_SOCK) {
      socket.destroy();
      throw new SshConfigError(`${name}: no Key is configured and no ssh-agent is running (SSH_AUTH_SOCK is not set)`);
    }
    await new Promise<void>((resolve, reject) => {
      // ssh2's readyTimeout does not run for a socket handed to it already connected: time the
      // handshake here, so a host that accepts TCP and never speaks SSH is noticed.
      const timer = setTimeout(() => {
        client.end();
        socket.destroy();
        reject(new Error(`no SSH handshake from ${hostname}:${port} within ${timeout}ms`));
      }, timeout);
      // Errors after the first (the socket closing under a failed handshake) are expected.
      client.on('error', () => {});
      client.once('ready', () => {
        clearTimeout(timer);
        resolve();
      });
      client.once('error', (err) => {
        clearTimeout(timer);
        reject(keyProblem ?? (isConfigProblem(err) ? new SshConfigError(`${name}: ${describeAuthError(err, this.target)}`, { cause: err }) : err));
      });
      try {
        client.connect({
          sock: socket,
          username,
          privateKey,
          agent: privateKey ? undefined : process.env.SSH_AUTH_SOCK,
          hostVerifier: verify,
          keepaliveInterval: KEEPALIVE_MS,
          keepaliveCountMax: KEEPALIVE_COUNT,
          readyTimeout: timeout,
        });
      } catch (err) {
        // ssh2 throws at once for a key it cannot parse: that is the config's problem, not the host's.
        clearTimeout(timer);
        socket.destroy();
        reject(new SshConfigError(`${name}: ${describeAuthError(err as Error, this.target)}`, { cause: err }));
      }
    });
    client.on('error', (err) => this.settings.log.debug(`SSH ${name}: ${errorMessage(err)}`));
    client.once('close', () => {
      if (this.client === client) {
        this.client = null;
        this.sftpSession = null;
        this.settings.log.info(`SSH ${name}: connection closed`);
      }
    });
    this.client = client;
    this.settings.log.debug(`SSH ${name}: connected to ${username}@${hostname}:${port}`);
    return client;
  }

  /** Drops the connection (a dead one is noticed by keepalives; this is for tests and errors). */
  reset(): void {
    this.client?.end();
    this.client = null;
    this.sftpSession = null;
  }

  close(): void {
    this.closed = true;
    this.reset();
  }
}

function tcpConnect(host: string, port: number, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ host, port });
    socket.setNoDelay(true);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer from ${host}:${port} within ${timeoutMs}ms`));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      resolve(socket);
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** Opens a channel, retrying a refused open (the server's session slots are briefly full). */
async function openChannel(open: (cb: (err: Error | undefined, channel: ClientChannel) => void) => void): Promise<ClientChannel> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await new Promise<ClientChannel>((resolve, reject) => open((err, channel) => (err ? reject(err) : resolve(channel))));
    } catch (err) {
      if (!/open failure|Channel open/i.test(errorMessage(err)) || attempt >= 20) throw err;
      await new Promise((resolve) => setTimeout(resolve, Math.min(5 * 2 ** attempt, 200)));
    }
  }
}

function collect(channel: ClientChannel, input: string): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let code: number | null = null;
    let signal: string | null = null;
    channel.on('data', (d: Buffer) => out.push(d));
    channel.stderr.on('data', (d: Buffer) => err.push(d));
    channel.on('exit', (c: number | null, s?: string) => {
      code = c;
      signal = s ?? null;
    });
    channel.once('error', reject);
    channel.once('close', () => resolve({ code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') }));
    channel.end(input);
  });
}

function isConfigProblem(err: Error): boolean {
  return /Cannot parse privateKey|authentication methods failed|encrypted private key/i.test(err.message);
}

function describeAuthError(err: Error, target: SshTarget): string {
  if (/authentication methods failed/i.test(err.message)) {
    return `${target.username}@${target.hostname}:${target.port} refused the ${target.key ? `key ${target.key}` : 'ssh-agent\'s keys'}; check Username and Key`;
  }
  return `the key ${target.key} cannot be used (${err.message}); give an unencrypted private key in OpenSSH or PEM format, or use the ssh-agent`;
}
