import { existsSync, readFileSync, statSync } from 'node:fs';
import { homedir, userInfo } from 'node:os';
import { isAbsolute, join } from 'node:path';
import SSHConfig from 'ssh-config';
import { SshConfigError } from './errors.js';
import type { SshRoute } from './handshake.js';

// Hosts as OpenSSH users know them: the client config (`SshConfig`, default ~/.ssh/config) read
// with the ssh-config package, the way ssh(1) reads it (ssh_config(5)): the name a user types is
// matched against the Host patterns, the first value found for a keyword wins, and HostName,
// User, Port, IdentityFile and ProxyJump are honoured.
//
// Precedence, as on ssh's command line: what the JobManager config's Hosts entry or the job
// file says (Username, Port, Key) wins over ~/.ssh/config, which wins over the defaults (port
// 22, the local user name). The name looked up is the one a user would type after `ssh`: the
// entry's (or job's) Hostname, else the entry's Name; its HostName, if the file gives one, is
// the address. With no IdentityFile and no Key, ssh's default identities (~/.ssh/id_ed25519, …)
// are tried, and the ssh-agent always is (handshake.ts).
//
// Not followed: Include, Match (Match exec would run commands), ProxyCommand, IdentitiesOnly, and
// tokens other than %h, %p, %r, %u, %d, %% and ~.

export interface HostQuery {
  /** The name looked up, as typed after `ssh` (an alias, a host name or an address). */
  name: string;
  port?: number | null;
  username?: string | null;
  key?: string | null;
}

/** ssh's default identities (ssh_config(5), IdentityFile), tried when none is configured. */
const DEFAULT_IDENTITIES = ['id_rsa', 'id_ecdsa', 'id_ecdsa_sk', 'id_ed25519', 'id_ed25519_sk'];
/** ProxyJump hops followed at most (ssh has no limit, but a loop must end). */
const MAX_HOPS = 8;

const cache = new Map<string, { stamp: string; parsed: SSHConfig }>();

/** The parsed file, re-read when it changes; an absent file reads as empty. */
function parsed(file: string): SSHConfig | null {
  if (!existsSync(file)) return null;
  const stat = statSync(file);
  const stamp = `${stat.mtimeMs}:${stat.size}`;
  const known = cache.get(file);
  if (known?.stamp === stamp) return known.parsed;
  let config: SSHConfig;
  try {
    config = SSHConfig.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new SshConfigError(`${file} cannot be read as an OpenSSH client config (${(err as Error).message}); fix it, or set SshConfig: null in the JobManager config to ignore it`);
  }
  cache.set(file, { stamp, parsed: config });
  return config;
}

/** What the file says for `name`, keywords in lower case (first value wins, as in ssh). */
function lookup(file: string | null, name: string): Record<string, string | string[]> {
  const config = file ? parsed(file) : null;
  // matchExec false: a Match exec line would run a shell command inside the supervisor.
  return config ? config.compute(name, { ignoreCase: true, matchExec: false }) : {};
}

/** Does the file give `name` a HostName (is it an alias there)? */
export function knowsHostName(file: string | null, name: string): boolean {
  return lookup(file, name).hostname !== undefined;
}

/** How to reach the host named in `query`; `file` null: no ssh config (only what the query says). */
export function resolveHost(file: string | null, query: HostQuery, hops = 0): SshRoute {
  if (hops > MAX_HOPS) throw new SshConfigError(`${file}: ProxyJump goes through more than ${MAX_HOPS} hosts (a loop?) on the way to ${query.name}`);
  const found = lookup(file, query.name);
  const first = (key: string) => {
    const value = found[key];
    return Array.isArray(value) ? value[0] : value;
  };
  const port = query.port ?? portOf(first('port'), file, query.name) ?? 22;
  const username = query.username ?? first('user') ?? localUser();
  const hostname = expandTokens(first('hostname') ?? query.name, { h: query.name, p: String(port), r: username });
  const tokens = { h: hostname, p: String(port), r: username };
  const listed = found.identityfile === undefined ? [] : ([] as string[]).concat(found.identityfile).map((f) => expandPath(f, tokens));
  const identityFiles = listed.length || query.key || !file ? listed : DEFAULT_IDENTITIES.map((f) => join(homedir(), '.ssh', f)).filter((f) => existsSync(f));
  const jumpText = first('proxyjump');
  const jump = jumpText && jumpText.toLowerCase() !== 'none' ? jumpChain(file, jumpText, hops) : null;
  return { hostname, port, username, key: query.key ?? null, identityFiles, jump };
}

/** `ProxyJump a,user@b:2222`: connect to a, through it to b, through b to the host. */
function jumpChain(file: string | null, text: string, hops: number): SshRoute {
  let via: SshRoute | null = null;
  for (const hop of text.split(',').map((h) => h.trim()).filter(Boolean)) {
    const match = /^(?:ssh:\/\/)?(?:([^@]+)@)?(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(hop);
    if (!match) throw new SshConfigError(`${file}: ProxyJump ${text}: ${hop} is not [user@]host[:port]`);
    const route = resolveHost(file, { name: match[2].replace(/^\[|\]$/g, ''), username: match[1] ?? null, port: match[3] ? Number(match[3]) : null }, hops + 1);
    // The first hop keeps its own ProxyJump (from its Host block); later hops go through the one before.
    via = via === null ? route : { ...route, jump: via };
  }
  return via!;
}

function portOf(text: string | undefined, file: string | null, name: string): number | null {
  if (text === undefined) return null;
  const port = Number(text);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new SshConfigError(`${file}: Port ${text} for ${name} is not a port number (1-65535)`);
  return port;
}

function localUser(): string {
  return process.env.USER ?? userInfo().username ?? 'root';
}

/** %h %p %r %u %d %% (ssh_config(5), TOKENS). */
function expandTokens(text: string, values: { h: string; p: string; r: string }): string {
  return text.replace(/%([hprud%])/g, (_, t: string) => (t === '%' ? '%' : t === 'u' ? localUser() : t === 'd' ? homedir() : values[t as 'h' | 'p' | 'r']));
}

function expandPath(path: string, values: { h: string; p: string; r: string }): string {
  const expanded = expandTokens(path.replace(/^"(.*)"$/, '$1'), values);
  if (expanded === '~' || expanded.startsWith('~/')) return join(homedir(), expanded.slice(1));
  return isAbsolute(expanded) ? expanded : join(homedir(), expanded);
}
