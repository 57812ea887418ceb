import { existsSync } from 'node:fs';
import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { ConfigError } from '../util/errors.js';
import { DEFAULT_CONFIG_FILE, expandHome } from '../util/paths.js';
import { checkKeys, describeType, expectMap, optDuration, optInt, optString, optStringList, optStringMap, printable, looksLikeKey, type Fail } from '../jobfile/fields.js';
import { compileEc2, KEY_NOT_PATH, type Ec2Config } from './ec2-config.js';
import { compileRetention, type RetentionConfig } from './retention-config.js';
import { readYamlFile, YamlProblem, type ParsedYaml, type YamlPath } from '../jobfile/yaml.js';
import type { SshRoute } from '../ssh/handshake.js';
import { SshConfigError } from '../ssh/errors.js';
import { knowsHostName, resolveHost } from '../ssh/ssh-config.js';
import { clusterUrl, parseNodes, parseRedisAddress, sentinelUrl } from '../store/redis-address.js';
import { defaultNodeName, isNodeName, NODE_NAME_RULE } from '../nodes/node-name.js';
import { NODE_LEASE_MS } from '../nodes/lease.js';

// Configuration: config/default.yaml documents every key and holds its default; a user file
// (--config, JM_CONFIG, or ./jobmanager.yaml) overrides keys; JM_REDIS_URL and JM_STATE_DIR
// override those. It is validated once here and compiled into plain numbers and absolute paths:
// the actors receive a Config, never YAML.

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type HostKeyPolicy = 'strict' | 'accept-new';
/** When a Remote job's Downloads are fetched: whatever the outcome (the evidence of a failure too), or only on success. */
export type DownloadsOn = 'always' | 'success';

/** A host of the config's Hosts, resolved through ~/.ssh/config (SshConfig) at load. */
export interface HostConfig extends SshRoute {
  name: string;
  /** The name looked up in ~/.ssh/config (its Hostname as written, else its Name): a job's Hostname may use it too. */
  alias: string;
  slots: number;
}

export type { Ec2Config } from './ec2-config.js';
export type { RetentionConfig } from './retention-config.js';

/** Where the web page listens (lib/web): an address of this machine and a port (0: any free one). */
export interface WebListen {
  host: string;
  port: number;
}

export interface WebConfig {
  /** null: no web page. */
  listen: WebListen | null;
  /** Required unless `listen` is a loopback address; when set, every request needs it. */
  token: string | null;
}

export interface Config {
  /** The file the user's settings came from, or null when only defaults apply. */
  file: string | null;
  redisUrl: string | null;
  deployment: string;
  stateDir: string;
  localMaxJobs: number;
  remoteMaxJobsPerHost: number;
  pollPeriodMs: number;
  retryBackoffMs: number;
  killGraceMs: number;
  logLevel: LogLevel;
  knownHosts: string;
  hostKeyPolicy: HostKeyPolicy;
  /** OpenSSH client config read for host aliases, users, ports, keys, ProxyJump; null: none. */
  sshConfig: string | null;
  downloadsOn: DownloadsOn;
  hostDownAfterMs: number;
  /** This supervisor's node name (lib/nodes/): its local slots, run logs and queues are its own. */
  nodeName: string;
  /** A node whose lease lapsed this long ago has its granted, not started, jobs given to others. */
  nodeDownAfterMs: number;
  hosts: HostConfig[];
  ec2: Ec2Config;
  web: WebConfig;
  retention: RetentionConfig;
}

const TOP_KEYS = ['Redis', 'Deployment', 'StateDir', 'LocalMaxJobs', 'RemoteMaxJobsPerHost', 'PollPeriod', 'RetryBackoff', 'KillGrace', 'LogLevel', 'KnownHosts', 'HostKeyPolicy', 'SshConfig', 'DownloadsOn', 'HostDownAfter', 'NodeName', 'NodeDownAfter', 'Hosts', 'EC2', 'Web', 'Retention'];
const HOST_KEYS = ['Name', 'Hostname', 'Port', 'Username', 'Key', 'Slots'];
/** The old tool's config keys, and where they live now. */
export const LEGACY_EC2_KEYS: Record<string, string> = {
  ec2MaxInstances: 'MaxInstances',
  regionName: 'Region',
  amiID: 'ImageId',
  instanceSize: 'InstanceType',
  securityGroups: 'SecurityGroupIds',
  sshKeyName: 'KeyName',
};
/** Old keys that are understood and deliberately ignored. */
const LEGACY_IGNORED = ['InstPollPeriod'];

export interface LoadConfigOptions {
  file?: string | null;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}

/** The config file that applies: --config, else JM_CONFIG, else ./jobmanager.yaml, else none. */
export function findConfigFile(options: LoadConfigOptions = {}): string | null {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  if (options.file) return resolve(cwd, expandHome(options.file));
  if (env.JM_CONFIG) return resolve(cwd, expandHome(env.JM_CONFIG));
  const local = resolve(cwd, 'jobmanager.yaml');
  return existsSync(local) ? local : null;
}

export function loadConfig(options: LoadConfigOptions = {}): Config {
  const env = options.env ?? process.env;
  const defaults = read(DEFAULT_CONFIG_FILE);
  const file = findConfigFile(options);
  let merged = defaults.value as Record<string, unknown>;
  let user: ParsedYaml | null = null;
  if (file) {
    if (!existsSync(file)) throw new ConfigError(file, null, 'no such file (from --config or JM_CONFIG)');
    user = read(file);
    merged = merge(merged, normaliseLegacy(user.value, file, user));
  }
  const where = file ?? DEFAULT_CONFIG_FILE;
  const fail: Fail = (path, reason) => {
    const line = user?.lineOf(path);
    throw new ConfigError(line ? `${where}:${line}` : where, keyPath(path), printable(withoutLongText(reason)));
  };
  return compile(merged, file, env, fail);
}

function read(file: string): ParsedYaml {
  try {
    const parsed = readYamlFile(file, 1024 * 1024);
    if (parsed.value === null || parsed.value === undefined) return { value: {}, lineOf: () => null };
    return parsed;
  } catch (err) {
    if (err instanceof YamlProblem) throw new ConfigError(err.line ? `${file}:${err.line}` : file, err.path ? keyPath(err.path) : null, err.reason);
    throw err;
  }
}

function normaliseLegacy(value: unknown, file: string, parsed: ParsedYaml): Record<string, unknown> {
  const fail: Fail = (path, reason) => {
    const line = parsed.lineOf(path);
    throw new ConfigError(line ? `${file}:${line}` : file, keyPath(path), printable(withoutLongText(reason)));
  };
  const top = { ...expectMap(value, [], fail, 'the config file') };
  if ('awsIDs' in top) {
    fail(['awsIDs'], 'AWS credentials do not belong in the config: use the standard AWS chain (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, ~/.aws/credentials, or an instance role) and remove awsIDs');
  }
  for (const key of LEGACY_IGNORED) delete top[key];
  const ec2: Record<string, unknown> = top.EC2 === undefined ? {} : { ...expectMap(top.EC2, ['EC2'], fail, 'EC2') };
  for (const [old, now] of Object.entries(LEGACY_EC2_KEYS)) {
    if (!(old in top)) continue;
    if (now in ec2) fail([old], `is the old name of EC2.${now}, which is also set; keep one`);
    ec2[now] = top[old];
    delete top[old];
  }
  if (Object.keys(ec2).length || top.EC2 !== undefined) top.EC2 = ec2;
  return top;
}

function merge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(over)) {
    // Own keys only, set as own keys: `__proto__: {...}` in a file must stay a key (and be
    // refused as unknown), not become the prototype of the config (found by spec/fuzz.spec.ts).
    const prior = Object.hasOwn(base, key) ? base[key] : undefined;
    const bothMaps = isMap(prior) && isMap(value) && key !== 'Tags';
    Object.defineProperty(out, key, { value: bothMaps ? merge(prior, value) : value, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

/**
 * A config may hold secrets (a Redis password, a key, tags), and a slip of the editor can put one
 * where another value goes (found by spec/fuzz.spec.ts: a password moved onto RetryBackoff's
 * line): an error quotes a wrong value only when it is short ("fast", "8650"), and gives the
 * length of a longer one; the file and line it names show the rest.
 */
function withoutLongText(reason: string): string {
  return reason.replace(/the text ("(?:[^"\\]|\\.)*")/g, (quoted, json: string) => {
    const text = JSON.parse(json.replace(/…"$/, '"')) as string;
    return text.length <= SHOWN_TEXT_MAX && !json.endsWith('…"') ? quoted : `a text of ${json.endsWith('…"') ? 'over 40' : text.length} characters (not shown)`;
  });
}
const SHOWN_TEXT_MAX = 12;

/** `Hosts.0.Key`: how a config key is named in messages (control characters escaped). */
function keyPath(path: YamlPath): string {
  return printable(path.join('.'));
}

function isMap(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function compile(raw: Record<string, unknown>, file: string | null, env: NodeJS.ProcessEnv, fail: Fail): Config {
  checkKeys(raw, TOP_KEYS, [], fail, 'the config');
  // `Redis: redis://…` is an easy slip; the message must not quote the URL's password.
  if (typeof raw.Redis === 'string') {
    const shown = printable(redactUrl(raw.Redis));
    fail(['Redis'], `must be a mapping: write Redis: {Url: ${shown.length > 200 ? 'the URL' : shown}}`);
  }
  const redis = expectMap(raw.Redis ?? {}, ['Redis'], fail, 'Redis');
  checkKeys(redis, ['Url', 'Sentinels', 'Name', 'Cluster'], ['Redis'], fail, 'Redis');
  const fileUrl = compileRedisAddress(redis, fail);
  const urlRule = 'must start with redis://, rediss://, unix://, redis+sentinel:// or redis+cluster://';
  // The environment wins, so a bad JM_REDIS_URL is named as such, not blamed on the file.
  const envProblem = env.JM_REDIS_URL ? redisUrlProblem(env.JM_REDIS_URL, urlRule) : null;
  if (envProblem) throw new ConfigError('environment', 'JM_REDIS_URL', `${envProblem} (or be unset)`);
  let redisUrl = env.JM_REDIS_URL || fileUrl;
  const deployment = optString(raw, 'Deployment', [], fail, 64) ?? 'default';
  if (!/^[A-Za-z0-9_.-]+$/.test(deployment)) fail(['Deployment'], 'must be letters, digits, _, . and - only');
  const stateDirText = env.JM_STATE_DIR || optString(raw, 'StateDir', [], fail) || '~/.local/state/jobmanager';
  const stateDir = resolve(expandHome(stateDirText));
  const logLevel = (optString(raw, 'LogLevel', [], fail) ?? 'info') as LogLevel;
  if (!['debug', 'info', 'warn', 'error'].includes(logLevel)) fail(['LogLevel'], 'must be debug, info, warn or error');
  const hostKeyPolicy = (optString(raw, 'HostKeyPolicy', [], fail) ?? 'strict') as HostKeyPolicy;
  if (!['strict', 'accept-new'].includes(hostKeyPolicy)) fail(['HostKeyPolicy'], 'must be strict or accept-new');
  const downloadsOn = (optString(raw, 'DownloadsOn', [], fail) ?? 'always') as DownloadsOn;
  if (!['always', 'success'].includes(downloadsOn)) fail(['DownloadsOn'], 'must be always (fetch Downloads whatever the outcome) or success');
  const sshConfigText = raw.SshConfig === null ? null : optString(raw, 'SshConfig', [], fail, 1024) ?? '~/.ssh/config';
  const sshConfig = sshConfigText ? resolve(expandHome(sshConfigText)) : null;
  const remoteMaxJobsPerHost = optInt(raw, 'RemoteMaxJobsPerHost', [], fail, 1, 1000) ?? 3;
  const pollPeriodMs = optDuration(raw, 'PollPeriod', [], fail) ?? 30_000;
  if (pollPeriodMs < 50) fail(['PollPeriod'], 'must be at least 50ms');
  redisUrl = redisUrl ?? null;
  const nodeName = optString(raw, 'NodeName', [], fail, 63) || defaultNodeName();
  if (!isNodeName(nodeName)) fail(['NodeName'], `${NODE_NAME_RULE} (it names this supervisor's node in Redis keys), e.g. NodeName: lab-ws1`);
  const nodeDownAfterMs = optDuration(raw, 'NodeDownAfter', [], fail) ?? 60_000;
  if (nodeDownAfterMs < NODE_LEASE_MS) fail(['NodeDownAfter'], `must be at least ${NODE_LEASE_MS / 1000}s (a node's lease: it is renewed every 2s)`);
  return {
    file,
    redisUrl,
    deployment,
    stateDir,
    localMaxJobs: optInt(raw, 'LocalMaxJobs', [], fail, 0, 10_000) ?? 4,
    remoteMaxJobsPerHost,
    pollPeriodMs,
    retryBackoffMs: optDuration(raw, 'RetryBackoff', [], fail) ?? 1000,
    killGraceMs: optDuration(raw, 'KillGrace', [], fail) ?? 10_000,
    logLevel,
    knownHosts: resolve(expandHome(optString(raw, 'KnownHosts', [], fail) ?? '~/.ssh/known_hosts')),
    hostKeyPolicy,
    sshConfig,
    downloadsOn,
    hostDownAfterMs: optDuration(raw, 'HostDownAfter', [], fail) ?? 120_000,
    nodeName,
    nodeDownAfterMs,
    hosts: compileHosts(raw.Hosts, remoteMaxJobsPerHost, sshConfig, fail),
    ec2: compileEc2(raw.EC2, fail),
    web: compileWeb(raw.Web, fail),
    retention: compileRetention(raw.Retention, fail),
  };
}

/**
 * Redis: one of Url, Sentinels (with Name) or Cluster, as one address URL (lib/store/redis-address.ts);
 * null: the embedded redis-server.
 */
function compileRedisAddress(redis: Record<string, unknown>, fail: Fail): string | null {
  const url = optString(redis, 'Url', ['Redis'], fail) || null;
  const sentinels = optStringList(redis, 'Sentinels', ['Redis'], fail, 100);
  const cluster = optStringList(redis, 'Cluster', ['Redis'], fail, 100);
  const name = optString(redis, 'Name', ['Redis'], fail, 100);
  const given = [url !== null && 'Url', sentinels && 'Sentinels', cluster && 'Cluster'].filter(Boolean);
  if (given.length > 1) fail(['Redis', given[1] as string], `cannot go with Redis.${given[0]}: give one of Url, Sentinels (with Name) or Cluster`);
  if (name !== undefined && !sentinels) fail(['Redis', 'Name'], 'names the master of Redis.Sentinels: give Sentinels too, or leave Name out');
  if (url !== null) {
    const problem = redisUrlProblem(url, 'must start with redis://, rediss://, unix://, redis+sentinel:// or redis+cluster://');
    if (problem) fail(['Redis', 'Url'], `${problem} (or be null for the embedded redis-server)`);
    return url;
  }
  const nodesOf = (key: string, list: string[]) => {
    const nodes = parseNodes(list);
    if (!nodes) fail(['Redis', key], `must be a list of host:port (e.g. [10.0.0.5:${key === 'Sentinels' ? 26379 : 6379}, 10.0.0.6:${key === 'Sentinels' ? 26379 : 6379}])`);
    return nodes;
  };
  if (sentinels) {
    const master = name ?? 'mymaster';
    if (!/^[A-Za-z0-9_.-]+$/.test(master)) fail(['Redis', 'Name'], 'must be the master name the Sentinels monitor (letters, digits, _, . and -)');
    return sentinelUrl(nodesOf('Sentinels', sentinels), master);
  }
  if (cluster) return clusterUrl(nodesOf('Cluster', cluster));
  return null;
}

/** Why a Redis URL cannot be used (null: it can); `rule` names the schemes. */
function redisUrlProblem(url: string, rule: string): string | null {
  if (!/^(rediss?|unix|redis\+sentinel|redis\+cluster):\/\//.test(url)) return rule;
  const address = parseRedisAddress(url);
  return 'problem' in address ? address.problem : null;
}

function compileHosts(raw: unknown, defaultSlots: number, sshConfig: string | null, fail: Fail): HostConfig[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) fail(['Hosts'], `must be a list of hosts, not ${describeType(raw)}`);
  const names = new Set<string>();
  return raw.map((entry, i) => {
    const path: YamlPath = ['Hosts', i];
    const host = expectMap(entry, path, fail, 'a host');
    checkKeys(host, HOST_KEYS, path, fail, 'a host');
    const hostname = optString(host, 'Hostname', path, fail, 255);
    const name = optString(host, 'Name', path, fail, 64) ?? hostname;
    // Only Name: it must be an alias that SshConfig gives a HostName (a typo is not taken for a DNS name).
    if (!name || (!hostname && !knowsHostName(sshConfig, name))) {
      fail([...path, 'Hostname'], `is missing: the address or DNS name of the host${name ? ` (or a Host ${name} block with a HostName in ${sshConfig ?? 'SshConfig'})` : ''}`);
    }
    if (!/^[A-Za-z0-9_.-]+$/.test(name)) fail([...path, 'Name'], 'must be letters, digits, _, . and - only');
    if (name === 'any') fail([...path, 'Name'], '`any` is reserved: Hostname: any means any configured host');
    if (names.has(name)) fail([...path, 'Name'], `${name} is listed twice`);
    names.add(name);
    const key = optString(host, 'Key', path, fail, 1024);
    if (key && looksLikeKey(key)) fail([...path, 'Key'], KEY_NOT_PATH);
    const alias = hostname ?? name;
    let route: SshRoute;
    try {
      // Hosts' own keys win over ~/.ssh/config, as options on ssh's command line do (ssh-config.ts).
      route = resolveHost(sshConfig, {
        name: alias,
        port: optInt(host, 'Port', path, fail, 1, 65535) ?? null,
        username: optString(host, 'Username', path, fail, 64) ?? null,
        key: key ? resolve(expandHome(key)) : null,
      });
    } catch (err) {
      if (err instanceof SshConfigError) fail(path, `${err.message} (SshConfig)`);
      throw err;
    }
    return { name, alias, ...route, slots: optInt(host, 'Slots', path, fail, 1, 1000) ?? defaultSlots };
  });
}

const WEB_TOKEN_MIN = 16;

function compileWeb(raw: unknown, fail: Fail): WebConfig {
  const web = expectMap(raw ?? {}, ['Web'], fail, 'Web');
  checkKeys(web, ['Listen', 'Token'], ['Web'], fail, 'Web');
  const listenText = optString(web, 'Listen', ['Web'], fail, 300);
  // The token is a secret: its messages never quote it.
  const token = web.Token === undefined || web.Token === null ? null : web.Token;
  if (token !== null && typeof token !== 'string') fail(['Web', 'Token'], 'must be text (a secret of at least 16 characters, e.g. from `openssl rand -hex 24`)');
  if (typeof token === 'string' && (token.length < WEB_TOKEN_MIN || token.length > 1024 || !/^[\x21-\x7e]+$/.test(token))) {
    fail(['Web', 'Token'], `must be ${WEB_TOKEN_MIN} to 1024 printable characters without spaces (e.g. from \`openssl rand -hex 24\`)`);
  }
  if (!listenText) return { listen: null, token };
  const listen = parseListen(listenText);
  if (!listen) fail(['Web', 'Listen'], `must be ADDRESS:PORT (127.0.0.1:8650, [::1]:8650, 0.0.0.0:8650; port 0 for any free one) or null to turn the page off, not ${describeType(listenText)}`);
  if (!isLoopback(listen.host) && token === null) {
    fail(['Web', 'Listen'], `${printable(listenText)} is not a loopback address, so the page needs a secret: set Web.Token (16+ characters, e.g. from \`openssl rand -hex 24\`), or listen on 127.0.0.1`);
  }
  return { listen, token };
}

/** `127.0.0.1:8650`, `[::1]:8650`, `localhost:8650`; null when it is not an address and port. */
export function parseListen(text: string): WebListen | null {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(text.trim());
  if (!match) return null;
  const port = Number(match[3]);
  if (port > 65535) return null;
  const host = match[1] ?? match[2];
  if (match[2] !== undefined && !isIP(host) && !/^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/.test(host)) return null;
  if (match[1] !== undefined && isIP(host) !== 6) return null;
  return { host, port };
}

/** Only this machine can reach it: 127.0.0.0/8, ::1 or localhost. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'));
}

/** A Redis URL fit for logs and `--json`: the password is never shown. */
export function redactUrl(url: string): string {
  let out = url;
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    out = u.toString();
  } catch {
    out = url.replace(/\/\/[^@/]*@/, '//***@');
  }
  // A URL inside other text (`url: http://user:pw@host` parses as a URL of scheme url:) keeps
  // its password from the parser: take out any user:password@ left (found by spec/fuzz.spec.ts).
  return out.replace(/(\w+:\/\/[^:/@\s]*:)[^@\s]+@/g, '$1***@');
}
