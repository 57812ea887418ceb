import { readFileSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { Client } from 'ssh2';
import type { HostKeyPolicy } from '../config/config.js';
import { errorMessage } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import { HostKeyError, SshConfigError } from './errors.js';
import { addHostKey, checkHostKey, knownHostsName } from './known-hosts.js';

// Making one SSH connection: TCP with TCP_NODELAY (without it every round trip waits ~40 ms, Nagle
// + delayed ACK), the host key checked against known_hosts under the HostKeyPolicy, then the
// user's key (or the ssh-agent's). A problem only the config can fix comes back as SshConfigError
// or HostKeyError; anything else (no answer, a reset) as the plain error, for the caller to retry.

export interface SshTarget {
  name: string;
  hostname: string;
  port: number;
  username: string;
  /** Private key file; null: the ssh-agent (SSH_AUTH_SOCK). */
  key: string | null;
}

export interface HandshakeSettings {
  knownHosts: string;
  hostKeyPolicy: HostKeyPolicy;
  log: Logger;
  timeoutMs: number;
  keepaliveMs: number;
  keepaliveCount: number;
}

/** An authenticated ssh2 Client for `target`; its later errors and close are the caller's to handle. */
export async function handshake(target: SshTarget, settings: HandshakeSettings): Promise<Client> {
  const { hostname, port, username, key, name } = target;
  const timeout = settings.timeoutMs;
  const socket = await tcpConnect(hostname, port, timeout);
  const client = new Client();
  let keyProblem: HostKeyError | null = null;
  const verify = (blob: Buffer): boolean => {
    const verdict = checkHostKey(settings.knownHosts, hostname, port, blob);
    if (verdict === 'known') return true;
    const where = `${knownHostsName(hostname, port)} (host ${name})`;
    if (verdict === 'unknown' && settings.hostKeyPolicy === 'accept-new') {
      addHostKey(settings.knownHosts, hostname, port, blob);
      settings.log.warn(`SSH: accepted the new host key of ${where} into ${settings.knownHosts} (HostKeyPolicy: accept-new)`);
      return true;
    }
    keyProblem = new HostKeyError(
      verdict === 'unknown'
        ? `${where} is not in ${settings.knownHosts}; add its key (ssh-keyscan -p ${port} ${hostname} >> ${settings.knownHosts}, after checking it) or set HostKeyPolicy: accept-new`
        : verdict === 'revoked'
          ? `the host key of ${where} is marked @revoked in ${settings.knownHosts}; refusing to connect`
          : `the host key of ${where} does not match the one in ${settings.knownHosts}: someone may be intercepting the connection. If the host was reinstalled, remove the old key (ssh-keygen -R '${knownHostsName(hostname, port)}' -f ${settings.knownHosts}) and add the new one`,
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
      reject(keyProblem ?? (isConfigProblem(err) ? new SshConfigError(`${name}: ${describeAuthError(err, target)}`, { cause: err }) : err));
    });
    try {
      client.connect({
        sock: socket,
        username,
        privateKey,
        agent: privateKey ? undefined : process.env.SSH_AUTH_SOCK,
        hostVerifier: verify,
        keepaliveInterval: settings.keepaliveMs,
        keepaliveCountMax: settings.keepaliveCount,
        readyTimeout: timeout,
      });
    } catch (err) {
      // ssh2 throws at once for a key it cannot parse: that is the config's problem, not the host's.
      clearTimeout(timer);
      socket.destroy();
      reject(new SshConfigError(`${name}: ${describeAuthError(err as Error, target)}`, { cause: err }));
    }
  });
  return client;
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

function isConfigProblem(err: Error): boolean {
  return /Cannot parse privateKey|authentication methods failed|encrypted private key/i.test(err.message);
}

function describeAuthError(err: Error, target: SshTarget): string {
  if (/authentication methods failed/i.test(err.message)) {
    return `${target.username}@${target.hostname}:${target.port} refused the ${target.key ? `key ${target.key}` : 'ssh-agent\'s keys'}; check Username and Key`;
  }
  return `the key ${target.key} cannot be used (${err.message}); give an unencrypted private key in OpenSSH or PEM format, or use the ssh-agent`;
}
