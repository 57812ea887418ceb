import { connect as netConnect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Client } from 'ssh2';
import type { HostKeyPolicy } from '../config/config.js';
import { errorMessage } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import { HostKeyError, SshConfigError } from './errors.js';
import { identitiesOf, refusedMessage } from './identities.js';
import { loadSsh2 } from './load-ssh2.js';
import { addHostKey, checkHostKey, knownHostsName } from './known-hosts.js';

// Making one SSH connection: TCP with TCP_NODELAY (without it every round trip waits ~40 ms, Nagle
// + delayed ACK) — or, with ProxyJump, a channel forwarded through an SSH connection to the jump
// host (made the same way, its own host key checked too) —, the host key checked against
// known_hosts under the HostKeyPolicy, then the keys (identities.ts: Key, IdentityFile, the
// ssh-agent). A problem only the config can fix comes back as SshConfigError or HostKeyError;
// anything else (no answer, a reset) as the plain error, for the caller to retry.
//
//   supervisor ──TCP──> jump host ──forwardOut (direct-tcpip)──> host:port
//        └────────────── SSH to the host, inside that channel ─────┘

/** How to reach a host (what Hosts, a job file and ~/.ssh/config resolve to: ssh-config.ts). */
export interface SshRoute {
  hostname: string;
  port: number;
  username: string;
  /** The private key file of the config or job file (Key); null: none named. */
  key: string | null;
  /** More key files, tried after `key` (IdentityFile of ~/.ssh/config, or ssh's default ones). */
  identityFiles?: string[];
  /** ProxyJump: the host to go through (which may have a jump host of its own). */
  jump?: SshRoute | null;
}

export interface SshTarget extends SshRoute {
  name: string;
}

export interface HandshakeSettings {
  knownHosts: string;
  hostKeyPolicy: HostKeyPolicy;
  log: Logger;
  timeoutMs: number;
  keepaliveMs: number;
  keepaliveCount: number;
}

/**
 * An authenticated ssh2 Client for `target`; its later errors and close are the caller's to
 * handle. Through a jump host, that connection ends when the client does.
 */
export async function handshake(target: SshTarget, settings: HandshakeSettings): Promise<Client> {
  const { hostname, port, name } = target;
  const timeout = settings.timeoutMs;
  const ssh2 = await loadSsh2();
  // Keys are read before any connection is made: a config problem is reported as such.
  const identities = identitiesOf(target, ssh2.utils.parseKey);
  const jumpClient = target.jump ? await handshake({ ...target.jump, name: `${name} (its jump host ${target.jump.hostname})` }, settings) : null;
  let socket: Duplex;
  try {
    socket = jumpClient ? await forward(jumpClient, hostname, port, timeout) : await tcpConnect(hostname, port, timeout);
  } catch (err) {
    jumpClient?.end();
    throw err;
  }
  const client = new ssh2.Client();
  if (jumpClient) {
    client.once('close', () => jumpClient.end());
    jumpClient.once('close', () => client.end());
  }
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
  await new Promise<void>((resolve, reject) => {
    const fail = (err: Error) => {
      client.end();
      socket.destroy();
      jumpClient?.end();
      reject(err);
    };
    // ssh2's readyTimeout does not run for a socket handed to it already connected: time the
    // handshake here, so a host that accepts TCP and never speaks SSH is noticed.
    const timer = setTimeout(() => fail(new Error(`no SSH handshake from ${hostname}:${port} within ${timeout}ms`)), timeout);
    // Errors after the first (the socket closing under a failed handshake) are expected.
    client.on('error', () => {});
    client.once('ready', () => {
      clearTimeout(timer);
      resolve();
    });
    client.once('error', (err) => {
      clearTimeout(timer);
      fail(keyProblem ?? (/authentication methods failed/i.test(err.message) ? new SshConfigError(`${name}: ${refusedMessage(target, identities)}`, { cause: err }) : err));
    });
    try {
      client.connect({
        sock: socket,
        username: target.username,
        authHandler: identities.methods,
        hostVerifier: verify,
        keepaliveInterval: settings.keepaliveMs,
        keepaliveCountMax: settings.keepaliveCount,
        readyTimeout: timeout,
      });
    } catch (err) {
      clearTimeout(timer);
      fail(new SshConfigError(`${name}: ${errorMessage(err)}`, { cause: err }));
    }
  });
  return client;
}

/** A channel from the jump host to host:port (ssh -J, "direct-tcpip"). */
function forward(jump: Client, host: string, port: number, timeoutMs: number): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the jump host did not open a channel to ${host}:${port} within ${timeoutMs}ms`)), timeoutMs);
    jump.forwardOut('127.0.0.1', 0, host, port, (err, channel) => {
      clearTimeout(timer);
      if (err) reject(new Error(`the jump host could not reach ${host}:${port} (${err.message})`));
      else resolve(channel);
    });
  });
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
