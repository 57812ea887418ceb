import { basename, extname, isAbsolute, join, normalize, resolve } from 'node:path';
import { isNodeName, NODE_NAME_RULE } from '../nodes/node-name.js';
import { JobSpecError } from '../util/errors.js';
import { checkKeys, CONTROL, describeType, expectMap, IDENTIFIER, optDuration, optInt, optString, optStringList, optStringMap, printable, looksLikeKey, type Fail } from './fields.js';
import { readStep, type Step } from './steps.js';
import type { YamlPath } from './yaml.js';

// The job file, validated and normalised. Keys keep the old tool's spelling (ClassType, Modules,
// Order, Inputs, Outputs...), so its job files still read the same; everything else is checked here
// once (the steps of Order in steps.ts), and the actors only ever see a JobSpec.

export const CLASS_TYPES = ['Local', 'Thread', 'Remote', 'EC2'] as const;
export type ClassType = (typeof CLASS_TYPES)[number];

export type { FunctionStep, InputSpec, RunStep, Step } from './steps.js';

export interface RemoteSpec {
  hostname: string | null;
  username: string | null;
  port: number | null;
  key: string | null;
  remoteWorkingDir: string | null;
  uploads: string[];
  downloads: string[];
  localOutputDir: string | null;
  /**
   * How long a run whose host stops answering is waited for before it is given up on (counted
   * from when the host stopped answering; never less than HostDownAfter and the fence bound:
   * lib/backends/remote/watch.ts). null: the default for its kind (Hostname: any and EC2: 0,
   * replaced at once; one named host: an hour).
   */
  lostAfterMs: number | null;
}

export interface JobSpec {
  classType: ClassType;
  name: string;
  /** Absolute path of the job file ('' when the job was not read from a file). */
  file: string;
  /** Directory that relative paths in the job file are relative to. */
  baseDir: string;
  /** Module key → absolute path. */
  modules: Record<string, string>;
  order: Step[];
  env: Record<string, string>;
  timeoutMs: number | null;
  retries: number;
  pollPeriodMs: number | null;
  remote: RemoteSpec | null;
  ec2: { imageId: string | null; instanceType: string | null } | null;
  /**
   * A sweep's job (`Each:`, sweep.ts): its row, also laid over `env`; a function sees it as
   * `this.params`. Absent for a job of its own file.
   */
  params?: Record<string, string>;
  /** Local and Thread jobs: the node (supervisor) they must run on; absent: any node with room. */
  node?: string;
}

/** `Each` (a sweep: one job per row) is read by sweep.ts, at `queue`; the jobs it makes never hold it. */
const TOP_KEYS = ['ClassType', 'Name', 'Modules', 'Order', 'Env', 'Timeout', 'Retries', 'PollPeriod', 'Each'] as const;
const REMOTE_KEYS = ['Hostname', 'Username', 'Port', 'Key', 'RemoteWorkingDir', 'Uploads', 'Downloads', 'LocalOutputDir', 'LostAfter'] as const;
const EC2_KEYS = ['ImageId', 'InstanceType'] as const;
const LOCAL_KEYS = ['Node'] as const;
const MAX_STEPS = 1000;
/**
 * A job's Order and Env become one sh script, which reaches sh as one argument: Linux takes at
 * most 128 KiB there (MAX_ARG_STRLEN). Over it the job could never start ("Argument list too
 * long"; found by spec/fuzz.spec.ts). This much is left for its commands and Env, quoted; the
 * rest is for the script's own lines (SCRIPT_LINE_BYTES a step, and paths).
 */
const MAX_SCRIPT_DATA = 112 * 1024;
const SCRIPT_LINE_BYTES = 160;
/** As deep as a job file may nest (lib/jobfile/yaml.ts); a definition read from Redis is held to it too. */
const MAX_DEPTH = 64;

export interface SpecSource {
  file: string;
  baseDir?: string;
  lineOf?: (path: YamlPath) => number | null;
}

export function validateJobSpec(raw: unknown, source: SpecSource): JobSpec {
  const file = source.file;
  // Reasons quote values from the file: control characters in them are escaped (printable).
  const fail: Fail = (path, reason) => {
    throw new JobSpecError(file || '(job)', source.lineOf?.(path) ?? null, keyName(path), printable(reason));
  };
  checkStorable(raw, fail);
  const top = expectMap(raw, [], fail, 'a job file');
  const baseDir = source.baseDir ?? (file ? resolve(file, '..') : process.cwd());

  const classType = (top.ClassType ?? 'Local') as ClassType;
  if (typeof classType !== 'string' || !CLASS_TYPES.includes(classType)) {
    const given = typeof top.ClassType === 'string' ? JSON.stringify(top.ClassType) : describeType(top.ClassType);
    fail(['ClassType'], `unknown ClassType ${given}; use one of ${CLASS_TYPES.join(', ')}`);
  }
  const allowed: string[] = [...TOP_KEYS];
  if (classType === 'Remote' || classType === 'EC2') allowed.push(...REMOTE_KEYS);
  if (classType === 'EC2') allowed.push(...EC2_KEYS);
  if (classType === 'Local' || classType === 'Thread') allowed.push(...LOCAL_KEYS);
  for (const key of Object.keys(top)) {
    if ((LOCAL_KEYS as readonly string[]).includes(key) && !allowed.includes(key)) {
      fail([key], `applies to Local and Thread jobs only (the node, i.e. supervisor, they run on); this job's ClassType is ${classType}`);
    }
    if ((REMOTE_KEYS as readonly string[]).includes(key) && !allowed.includes(key)) {
      fail([key], `applies to Remote and EC2 jobs only; this job's ClassType is ${classType}`);
    }
    if ((EC2_KEYS as readonly string[]).includes(key) && !allowed.includes(key)) {
      fail([key], `applies to EC2 jobs only; this job's ClassType is ${classType}`);
    }
  }
  checkKeys(top, allowed, [], fail, 'the job file');

  const name = optString(top, 'Name', [], fail, 200) ?? (file ? basename(file, extname(file)) : 'job');
  if (CONTROL.test(name)) fail(['Name'], 'must not contain control characters');

  const modules: Record<string, string> = {};
  for (const [key, path] of Object.entries(optStringMap(top, 'Modules', [], fail, IDENTIFIER) ?? {})) {
    if (!path) fail(['Modules', key], 'must be the path of a JavaScript module (.mjs or .js)');
    if (CONTROL.test(path)) fail(['Modules', key], 'must not contain control characters');
    modules[key] = isAbsolute(path) ? normalize(path) : join(baseDir, path);
  }

  if (top.Order === undefined || top.Order === null) fail(['Order'], 'is missing: list the steps to run, e.g. Order: [{Run: "echo hello"}]');
  if (!Array.isArray(top.Order)) fail(['Order'], `must be a list of steps, not ${describeType(top.Order)}`);
  if (top.Order.length === 0) fail(['Order'], 'has no steps; add at least one {Run: …} or {Function: …} step');
  if (top.Order.length > MAX_STEPS) fail(['Order'], `has ${top.Order.length} steps; at most ${MAX_STEPS} are allowed`);

  const declaredOutputs = new Set<string>();
  const order = (top.Order as unknown[]).map((rawStep, i): Step => {
    const step = readStep(rawStep, ['Order', i], fail, modules, declaredOutputs);
    if (classType === 'Thread' && step.kind === 'run') {
      fail(['Order', i, 'Run'], 'Thread jobs run Function steps in worker threads; use ClassType: Local for shell commands');
    }
    for (const output of step.outputs) declaredOutputs.add(output);
    return step;
  });

  const env = optStringMap(top, 'Env', [], fail, IDENTIFIER) ?? {};
  // JobManager sets JM_JOB_DIR and the rest itself; a job that replaced them would have its
  // Function steps read and write in another directory (found by spec/fuzz.spec.ts).
  for (const key of Object.keys(env)) {
    if (key.startsWith('JM_')) fail(['Env', key], 'JM_ names are JobManager\'s own (it sets JM_JOB_ID, JM_JOB_NAME, JM_RUN, JM_ATTEMPT and JM_JOB_DIR for every job); choose another name');
  }
  const timeoutMs = optDuration(top, 'Timeout', [], fail) ?? null;
  if (timeoutMs === 0) fail(['Timeout'], 'must be longer than 0s (leave it out for no limit)');
  const retries = optInt(top, 'Retries', [], fail, 0, 100) ?? 0;
  const pollPeriodMs = optDuration(top, 'PollPeriod', [], fail) ?? null;
  if (pollPeriodMs !== null && pollPeriodMs < 50) fail(['PollPeriod'], 'must be at least 50ms');

  let remote: RemoteSpec | null = null;
  if (classType === 'Remote' || classType === 'EC2') {
    const hostname = optString(top, 'Hostname', [], fail, 255) ?? null;
    if (classType === 'Remote' && !hostname) fail(['Hostname'], 'is missing: name a host from the config\'s Hosts, an address, or `any`');
    if (hostname && !/^[A-Za-z0-9._:-]+$/.test(hostname)) fail(['Hostname'], 'must be a host name, an address or `any`');
    const username = optString(top, 'Username', [], fail, 64) ?? null;
    if (username && !/^[A-Za-z0-9._][A-Za-z0-9._-]*$/.test(username)) fail(['Username'], 'must be a user name (letters, digits, ., _ and -)');
    const key = optString(top, 'Key', [], fail, 1024) ?? null;
    // A key pasted in place of its path would be echoed by every "cannot read the key" error:
    // into job records, events and --json output (found by spec/security.spec.ts).
    if (key !== null && looksLikeKey(key)) fail(['Key'], 'must be the path of a private key file, not the key itself: save the key in a file (mode 600) and give its path');
    remote = {
      hostname,
      username,
      port: optInt(top, 'Port', [], fail, 1, 65535) ?? null,
      key,
      remoteWorkingDir: optString(top, 'RemoteWorkingDir', [], fail, 1024) ?? null,
      uploads: (optStringList(top, 'Uploads', [], fail) ?? []).map((p, i) => relativeInside(p, ['Uploads', i], fail, 'Uploads', true)),
      downloads: (optStringList(top, 'Downloads', [], fail) ?? []).map((p, i) => relativeInside(p, ['Downloads', i], fail, 'Downloads', false)),
      localOutputDir: optString(top, 'LocalOutputDir', [], fail, 1024) ?? null,
      lostAfterMs: optDuration(top, 'LostAfter', [], fail) ?? null,
    };
  }
  if (classType !== 'Thread') {
    const bytes = scriptDataBytes(name, order, env);
    if (bytes > MAX_SCRIPT_DATA) {
      fail(['Order'], `with Env, the steps make a script of about ${Math.ceil(bytes / 1024)} KiB, and sh takes at most ${MAX_SCRIPT_DATA / 1024} KiB of them; keep large data in files that the steps read`);
    }
  }
  const ec2 = classType === 'EC2'
    ? { imageId: optString(top, 'ImageId', [], fail, 64) ?? null, instanceType: optString(top, 'InstanceType', [], fail, 64) ?? null }
    : null;

  const node = optString(top, 'Node', [], fail, 63);
  if (node !== undefined && !isNodeName(node)) fail(['Node'], `${NODE_NAME_RULE}: the NodeName of the supervisor to run on (\`jobmanager nodes\` lists them), or leave Node out for any node with room`);

  return { classType, name, file, baseDir, modules, order, env, timeoutMs, retries, pollPeriodMs, remote, ec2, ...(node === undefined ? {} : { node }) };
}

function scriptDataBytes(name: string, order: Step[], env: Record<string, string>): number {
  return order.reduce((n, step) => n + SCRIPT_LINE_BYTES + (step.kind === 'run' ? quotedBytes(step.run) : 0), quotedBytes(name))
    + Object.entries(env).reduce((n, [key, value]) => n + key.length + quotedBytes(value), 0);
}

/**
 * Bytes left for one row of a sweep (its variables, in the job's environment): what the job's
 * script leaves of MAX_SCRIPT_DATA (with room for the `[i]` of the job's name), or, for a
 * Thread job, which has no script, as much (its row is stored with the job in Redis).
 */
export function roomForRow(spec: JobSpec): number {
  if (spec.classType === 'Thread') return MAX_SCRIPT_DATA;
  return MAX_SCRIPT_DATA - scriptDataBytes(`${spec.name}[1000000]`, spec.order, spec.env);
}

/** A path that must stay inside the directory it is relative to (no absolute paths, no `..`). */
function relativeInside(path: string, at: YamlPath, fail: Fail, what: string, allowOutside: boolean): string {
  if (!path) fail(at, `${what} entries must be paths`);
  if (allowOutside) return path;
  const clean = normalize(path);
  if (isAbsolute(path) || clean === '..' || clean.startsWith('../') || clean.split('/').includes('..')) {
    fail(at, `must be a path inside the job's directory (no leading / and no ..)`);
  }
  return clean;
}

/** Bytes of `text` as the job script quotes it (see shq in lib/util/shell.ts). */
function quotedBytes(text: string): number {
  return Buffer.byteLength(text) + 2 + 3 * (text.split("'").length - 1);
}

/** `Order[0].Run`: how a path is named in messages (control characters in keys escaped). */
export function keyName(path: YamlPath): string | null {
  if (path.length === 0) return null;
  return printable(path.map((part, i) => (typeof part === 'number' ? `[${part}]` : i === 0 ? part : `.${part}`)).join(''));
}

/**
 * A job definition is stored as JSON, and the manager validates it again from there: what JSON
 * cannot hold must not get in. `.inf` and `.nan` would read back as null (another job, or a
 * refused one), and a definition read from Redis, which no YAML parser limited, may nest too
 * deep to be stored again, which stopped the manager (found by spec/fuzz.spec.ts). Walked
 * without recursion, since the value may be too deep to recurse.
 */
function checkStorable(raw: unknown, fail: Fail): void {
  const stack: [unknown, (string | number)[]][] = [[raw, []]];
  while (stack.length > 0) {
    const [item, path] = stack.pop()!;
    if (path.length > MAX_DEPTH) fail([], `refused: nested more than ${MAX_DEPTH} levels deep`);
    if (typeof item === 'number' && !Number.isFinite(item)) fail(path, 'is .inf or .nan, which a job definition cannot hold; write a number or text');
    if (item === null || typeof item !== 'object') continue;
    for (const [key, child] of Object.entries(item)) stack.push([child, [...path, Array.isArray(item) ? Number(key) : key]]);
  }
}
