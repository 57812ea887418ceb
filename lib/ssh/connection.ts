import type { Client, ClientChannel, SFTPWrapper } from 'ssh2';
import type { HostKeyPolicy } from '../config/config.js';
import { JobManagerError, errorMessage } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import { ChannelSlots, collect, openChannel, type ExecResult } from './channels.js';
import { SshUnavailableError } from './errors.js';
import { ExecFiles } from './exec-files.js';
import type { RemoteFiles } from './remote-files.js';
import { SftpFiles } from './sftp-files.js';
import { handshake, type SshTarget } from './handshake.js';

// One pooled SSH connection to a host (ssh2), shared by everything an actor does there.
//  - Made on first use (handshake.ts: TCP_NODELAY, host key, auth); keepalives notice a dead
//    host; a lost connection is re-made on the next use, with backoff.
//  - Channels in flight are capped and a refused open is retried (channels.ts).
//  - Every script is fed to `sh -s` on its standard input, whatever the user's login shell is
//    and however long the script (a command-line argument is capped at 128 KiB on Linux).

// What callers of the SSH module use comes from here.
export { HostKeyError, RemoteFileError, SshConfigError, SshUnavailableError } from './errors.js';
export type { RemoteFiles, Source, TransferKind } from './remote-files.js';
export type { ExecResult } from './channels.js';
export type { SshTarget } from './handshake.js';

export interface SshSettings {
  knownHosts: string;
  hostKeyPolicy: HostKeyPolicy;
  log: Logger;
  maxChannels?: number;
  connectTimeoutMs?: number;
}

const DEFAULT_MAX_CHANNELS = 6;
const KEEPALIVE_MS = 5000;
const KEEPALIVE_COUNT = 3;

export class SshConnection {
  private client: Client | null = null;
  private connecting: Promise<Client> | null = null;
  /** SFTP or exec channels, for this connection (files()). */
  private transfer: Promise<RemoteFiles> | null = null;
  private readonly slots: ChannelSlots;
  private failures = 0;
  private retryAt = 0;
  private closed = false;
  /** Why the last connection attempt failed, for `jobmanager hosts`. */
  lastError: string | null = null;

  constructor(
    readonly target: SshTarget,
    private readonly settings: SshSettings,
  ) {
    this.slots = new ChannelSlots(settings.maxChannels ?? DEFAULT_MAX_CHANNELS);
  }

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
   * A long-lived `sh -s` (or `command`) on the host: what is written is run as it arrives (a
   * shell reading its script from a pipe runs each complete command as soon as it has read it),
   * its output goes to `onData` (its standard error to `onStderr`, if given). It holds one channel
   * until closed or the connection ends.
   */
  async session(onData: (chunk: Buffer) => void, onStderr?: (chunk: Buffer) => void, command = 'sh -s'): Promise<{ write(text: string): boolean; endInput(): void; close(): void; ended: Promise<void> }> {
    const client = await this.connection();
    await this.slots.acquire();
    let channel: ClientChannel;
    try {
      channel = await openChannel((cb) => client.exec(command, cb));
    } catch (err) {
      this.slots.release();
      throw this.unavailable(err);
    }
    channel.on('data', onData);
    if (onStderr) channel.stderr.on('data', onStderr);
    else channel.stderr.resume();
    channel.on('error', () => {});
    const ended = new Promise<void>((resolve) => channel.once('close', () => {
      this.slots.release();
      resolve();
    }));
    return { write: (text) => channel.write(text), endInput: () => channel.end(), close: () => channel.close(), ended };
  }

  /**
   * How files travel on this connection: SFTP where the host's sshd offers it, else exec
   * channels (remote-files.ts). Decided once per connection, the first time files are needed.
   */
  async files(): Promise<RemoteFiles> {
    const client = await this.connection();
    this.transfer ??= this.chooseTransfer(client);
    try {
      return await this.transfer;
    } catch (err) {
      this.transfer = null;
      throw this.unavailable(err);
    }
  }

  /** Runs `command` (one line, for the login shell) on a channel of its own, which `use` drives until it closes. */
  async withExec<T>(command: string, use: (channel: ClientChannel) => Promise<T>): Promise<T> {
    return this.withChannel(async (client) => use(await openChannel((cb) => client.exec(command, cb))));
  }

  private async chooseTransfer(client: Client): Promise<RemoteFiles> {
    try {
      // A refused channel open (session slots briefly full) says nothing about SFTP: retried.
      const sftp = await openChannel<SFTPWrapper>((cb) => client.sftp(cb));
      return new SftpFiles(sftp);
    } catch (err) {
      if (this.client !== client || /open failure|Channel open/i.test(errorMessage(err))) throw err;
      // "Unable to start subsystem: sftp" (no Subsystem line), or an sftp-server that is not there.
      this.settings.log.info(`SSH ${this.target.name}: no SFTP (${errorMessage(err)}); files are copied over exec channels`);
      return new ExecFiles((command, use) => this.withExec(command, use));
    }
  }

  private async withChannel<T>(work: (client: Client) => Promise<T>): Promise<T> {
    const client = await this.connection();
    await this.slots.acquire();
    try {
      return await work(client);
    } catch (err) {
      throw err instanceof JobManagerError ? err : this.unavailable(err);
    } finally {
      this.slots.release();
    }
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
    const { hostname, port, username, name } = this.target;
    const client = await handshake(this.target, {
      knownHosts: this.settings.knownHosts,
      hostKeyPolicy: this.settings.hostKeyPolicy,
      log: this.settings.log,
      timeoutMs: this.settings.connectTimeoutMs ?? 10_000,
      keepaliveMs: KEEPALIVE_MS,
      keepaliveCount: KEEPALIVE_COUNT,
    });
    client.on('error', (err) => this.settings.log.debug(`SSH ${name}: ${errorMessage(err)}`));
    client.once('close', () => {
      if (this.client === client) {
        this.client = null;
        this.transfer = null;
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
    this.transfer = null;
  }

  close(): void {
    this.closed = true;
    this.reset();
  }
}
