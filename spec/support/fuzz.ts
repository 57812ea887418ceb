import { stringify } from 'yaml';
import { shq } from '../../lib/util/shell.js';
import { seededRandom } from './random.js';

// Hostile input for the fuzz pass (spec/fuzz.spec.ts): job files, config files and raw job
// definitions as the manager reads them from Redis, all drawn from one seed, so a failure replays
// with JM_SEED=<seed>. Three families:
//   - anything at all: bad YAML, wrong types, deep nesting, alias bombs, huge values, custom
//     tags, random bytes, mutations of good files. Never run; only checked (refused or accepted).
//   - nasty but well formed: every string field holds shell metacharacters, unicode, YAML
//     look-alikes, control characters or path traversal.
//   - runnable: jobs whose only commands are safe to run as written (the payloads sit in quoted
//     data) and which check, as they run, that every value reached them unchanged. Every shell
//     payload, if anything ever evaluated it, would create a file whose name holds the run's
//     token in the canary directory or in /tmp: the spec looks for those afterwards.
// About 650 lines on purpose: the families share one corpus of payloads and one seeded stream, and
// the spec takes them from one module; each family is a section below (`// ---- …`).

/** JM_SEED (as the crash spec), else a fresh one; printed so a failure can be replayed. */
export function fuzzSeed(): number {
  const given = process.env.JM_SEED;
  return given !== undefined && given !== '' ? Number(given) >>> 0 : Math.floor(Math.random() * 2 ** 32) >>> 0;
}

export class Rng {
  private readonly next: () => number;
  constructor(readonly seed: number) {
    this.next = seededRandom(seed);
  }
  float(): number {
    return this.next();
  }
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)];
  }
  /** A derived generator: each family of cases draws from its own stream. */
  fork(salt: number): Rng {
    return new Rng((this.seed ^ Math.imul(salt + 1, 0x9e3779b1)) >>> 0);
  }
}

// ---- the corpus -------------------------------------------------------------------------------

export type Family = 'shell' | 'unicode' | 'yaml' | 'traversal' | 'control' | 'proto';

export interface Corpus {
  token: string;
  canaryDir: string;
  shell: string[];
  unicode: string[];
  yaml: string[];
  traversal: string[];
  /** Control characters; the first entries hold NUL, which no field accepts. */
  control: string[];
  proto: string[];
}

/** Names of the traces a shell payload leaves, if it is ever evaluated, contain `token`. */
export function corpus(token: string, canaryDir: string): Corpus {
  let n = 0;
  const trace = () => `${canaryDir}/${token}-${++n}`;
  const tmpTrace = () => `/tmp/${token}-${++n}`;
  const local = () => `${token}-rel-${++n}`;
  return {
    token,
    canaryDir,
    shell: [
      `$(touch ${trace()})`, `\`touch ${trace()}\``, `; touch ${trace()};`, `| touch ${tmpTrace()}`, `&& touch ${tmpTrace()} &&`,
      `' ; touch ${trace()} ; '`, `" ; touch ${trace()} ; "`, `\ntouch ${trace()}\n`, `$(touch ${tmpTrace()})`, `>${trace()}`,
      `\\"; touch ${trace()}; echo \\"`, `'$(touch ${tmpTrace()})'`, `"$(touch ${trace()})"`, `\${IFS}touch\${IFS}${tmpTrace()}`,
      `x\`touch ${tmpTrace()}\`y`, `$(touch ${local()})`, `;touch ${local()}`, `%s%s%n%x`, '$HOME', '${HOME}', '~', '*', '?', '[a-z]*',
      '\\', '-rf', '--help', '-', '&', '!', '#', '$$', '$?', '$0', '$((1+1))', "'", '"', '`', `'"'"'`, '<<EOF', '; exit 7', '\\$(x)',
      '$(', '${', '{a,b}', 'a b\tc',
    ],
    unicode: [
      'ünïcødé', '日本語テキスト', '🙂🔥💥', '\u202eevil\u202c', 'zero\u200bwidth', 'e\u0301', 'line\u2028sep', '\ufeffbom', 'مرحبا',
      '👩‍👩‍👧‍👦', 'Ω≈ç√∫', 'ﬁ', 'İı', '\u00a0nbsp', 'Ａ', '𝔘𝔫𝔦', 'ẞ',
    ],
    yaml: [
      '*a', '&a x', '!!str x', '? x', '- x', 'a: b', '#c', '{x: y}', '[x, y]', '|', '>', '%YAML 1.2', '---', '...', 'null', '~',
      'yes', 'no', 'on', 'off', 'true', '0x1F', '0o17', '1e3', '.inf', '-.inf', '.nan', '@x', ',', ':', '  ', '',
    ],
    traversal: [
      '..', '.', '../', './', '/', '//', '../../x', `${'../'.repeat(12)}tmp/${token}-trav`, `/tmp/${token}-abs`, `${canaryDir}/target.txt`,
      '../canary/target.txt', '../../canary/target.txt', 'a/../../b', '.jm', '.jm/status', 'job.log', '..\\..\\x', '%2e%2e%2f', '~/x', '~',
      '~root/x', '/etc/passwd', '/dev/null', 'a/./b', 'dir/', ' ../x', '.../x', '..;/x',
    ],
    control: ['\u0000', 'a\u0000b', '\t', '\r', '\u001b[31mred\u001b[0m', '\u001b]0;title\u0007', '\u0007', '\u007f', '\u000b', '\u000c', 'a\nb', '\u0085'],
    proto: ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf'],
  };
}

const ALL_FAMILIES: Family[] = ['shell', 'shell', 'unicode', 'yaml', 'traversal', 'control', 'proto'];
const PLAIN = ['job', 'x', 'data', 'A', 'value 1', 'ok'];

/** One to three corpus pieces, sometimes after plain text. */
export function nasty(r: Rng, c: Corpus, families: readonly Family[] = ALL_FAMILIES): string {
  let text = r.chance(0.3) ? r.pick(PLAIN) : '';
  for (let i = r.int(1, 3); i > 0; i--) text += r.pick(c[r.pick(families)]);
  return text;
}

/** Long values: over the limits, and just under them. */
function huge(r: Rng): string {
  return r.pick(['A'.repeat(4097), 'é'.repeat(3000), 'x'.repeat(70_000), '💥'.repeat(300), 'y'.repeat(201), 'z'.repeat(256)]);
}

/** A value of the wrong type for almost any key. */
function wrong(r: Rng): unknown {
  return r.pick<unknown>([[], {}, [1, 2], { a: 1 }, { a: [{ b: null }] }, 0, -1, 1.5, 1e308, -1e308, 2 ** 53 + 2, true, false, null, '', ' ', NaN, Infinity, -Infinity, [[[]]], 'x'.repeat(5000)]);
}

// ---- building YAML --------------------------------------------------------------------------

type Obj = Record<string, unknown>;

/** A mapping whose keys are all its own, `__proto__` included (a literal would set the prototype). */
export function own(entries: [string, unknown][]): Obj {
  const out: Obj = {};
  for (const [key, value] of entries) Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
  return out;
}

export function toYaml(value: unknown): string {
  return stringify(value, { lineWidth: 0, minContentWidth: 0, aliasDuplicateObjects: false });
}

// ---- job files ------------------------------------------------------------------------------

export type JobKind =
  | 'nasty' | 'wrong-type' | 'unknown-key' | 'traversal' | 'deep' | 'alias' | 'tag' | 'huge' | 'mutated' | 'raw-text' | 'binary' | 'runnable';

export interface FuzzFile {
  kind: JobKind;
  /** File name (no directory); may itself be nasty. */
  name: string;
  content: string | Buffer;
}

export interface JobWorld {
  corpus: Corpus;
  /** Module paths that exist, as a job file in the fuzz directory would write them. */
  moduleRefs: string[];
}

const STEP_KEYS = ['Run', 'Function', 'Module', 'Inputs', 'Outputs', 'Log', 'Name'];
const TOP_KEYS = ['ClassType', 'Name', 'Modules', 'Order', 'Env', 'Timeout', 'Retries', 'PollPeriod'];
const REMOTE_KEYS = ['Hostname', 'Username', 'Port', 'Key', 'RemoteWorkingDir', 'Uploads', 'Downloads', 'LocalOutputDir'];
/** Env names the job script or JobManager itself uses, and names that are special to sh. */
export const SPECIAL_ENV = ['L', 'R', 'C', 's', 'rc', 'IFS', 'PATH', 'HOME', 'ENV', 'PS4', 'JM_JOB_DIR', 'JM_JOB_ID', 'JM_RUN', '__proto__', 'constructor'];

function identifier(r: Rng): string {
  return r.pick(['x', 'out', 'A_1', '_', 'value', 'Zz9', 'path', 'text']);
}

function nameOrNasty(r: Rng, c: Corpus): string {
  return r.chance(0.6) ? identifier(r) : r.chance(0.5) ? r.pick(c.proto) : nasty(r, c);
}

function anyString(r: Rng, c: Corpus): unknown {
  if (r.chance(0.05)) return huge(r);
  if (r.chance(0.05)) return wrong(r);
  return nasty(r, c);
}

function commandText(r: Rng, c: Corpus): string {
  // Never run: may be anything, valid sh or not.
  return r.pick([
    () => `echo ${nasty(r, c)}`,
    () => nasty(r, c),
    () => `printf '%s\\n' ${shq(nasty(r, c).replace(/\u0000/g, ''))}`,
    () => 'if then fi',
    () => `cat <<'EOF'\n${nasty(r, c)}\nEOF`,
    () => 'true',
    () => `(${nasty(r, c)}`,
  ])();
}

function step(r: Rng, c: Corpus, w: JobWorld): Obj {
  const entries: [string, unknown][] = [];
  if (r.chance(0.7)) {
    entries.push(['Run', r.chance(0.9) ? commandText(r, c) : anyString(r, c)]);
    if (r.chance(0.2)) entries.push(['Outputs', [nameOrNasty(r, c)]]);
  } else {
    entries.push(['Function', r.chance(0.7) ? r.pick(['echo', 'boom', 'missing']) : nasty(r, c)]);
    if (r.chance(0.7)) entries.push(['Module', r.chance(0.8) ? 'm' : nameOrNasty(r, c)]);
    if (r.chance(0.6)) entries.push(['Inputs', Array.from({ length: r.int(0, 3) }, () => own([[nameOrNasty(r, c), r.chance(0.2) ? null : r.chance(0.1) ? 'self.yaml' : anyString(r, c)]]))]);
    if (r.chance(0.5)) entries.push(['Outputs', Array.from({ length: r.int(1, 2) }, () => nameOrNasty(r, c))]);
  }
  if (r.chance(0.3)) entries.push(['Log', r.chance(0.3) ? r.pick(c.traversal) : nasty(r, c)]);
  if (r.chance(0.15)) entries.push(['Name', nasty(r, c)]);
  return own(entries);
}

function jobObject(r: Rng, c: Corpus, w: JobWorld): Obj {
  const classType = r.pick<unknown>(['Local', 'Local', 'Local', 'Remote', 'Remote', 'Thread', 'EC2', undefined, undefined, nasty(r, c), 'local']);
  const entries: [string, unknown][] = [];
  if (classType !== undefined) entries.push(['ClassType', classType]);
  if (r.chance(0.7)) entries.push(['Name', r.chance(0.9) ? nasty(r, c) : anyString(r, c)]);
  if (r.chance(0.35)) {
    const modules: [string, unknown][] = [['m', r.chance(0.7) ? r.pick(w.moduleRefs) : r.chance(0.5) ? r.pick(c.traversal) : nasty(r, c)]];
    if (r.chance(0.3)) modules.push([nameOrNasty(r, c), r.pick([...w.moduleRefs, ...c.traversal])]);
    entries.push(['Modules', own(modules)]);
  }
  entries.push(['Order', Array.from({ length: r.int(1, 4) }, () => step(r, c, w))]);
  if (r.chance(0.6)) {
    entries.push(['Env', own(Array.from({ length: r.int(1, 4) }, (): [string, unknown] => [r.chance(0.5) ? identifier(r).toUpperCase() : r.chance(0.5) ? r.pick(SPECIAL_ENV) : nasty(r, c), anyString(r, c)]))]);
  }
  if (r.chance(0.2)) entries.push(['Timeout', r.pick<unknown>(['30s', '1h30m', '500ms', '0s', '0.0001s', '-1s', '1e400', nasty(r, c), wrong(r)])]);
  if (r.chance(0.2)) entries.push(['Retries', r.pick<unknown>([0, 1, 100, 101, -1, 1.5, '2', wrong(r)])]);
  if (r.chance(0.2)) entries.push(['PollPeriod', r.pick<unknown>(['10s', '49ms', '50ms', 30, 1e9, nasty(r, c), wrong(r)])]);
  if (classType === 'Remote' || classType === 'EC2' || r.chance(0.05)) {
    for (const key of REMOTE_KEYS) {
      if (!r.chance(0.5)) continue;
      if (key === 'Uploads' || key === 'Downloads') entries.push([key, r.chance(0.9) ? Array.from({ length: r.int(1, 3) }, () => r.chance(0.5) ? r.pick(c.traversal) : nasty(r, c)) : anyString(r, c)]);
      else if (key === 'Port') entries.push([key, r.pick<unknown>([22, 2222, 0, 65536, '22', wrong(r)])]);
      else if (key === 'Hostname') entries.push([key, r.pick<unknown>(['any', 'lab1', '127.0.0.1', '::1', nasty(r, c)])]);
      else if (key === 'Key') entries.push([key, r.pick<unknown>(['~/.ssh/id_ed25519', '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n', r.pick(c.traversal), nasty(r, c)])]);
      else entries.push([key, r.chance(0.5) ? r.pick(c.traversal) : nasty(r, c)]);
    }
    if (classType === 'EC2' && r.chance(0.5)) entries.push(['ImageId', nasty(r, c)], ['InstanceType', nasty(r, c)]);
  }
  return own(entries);
}

/** Replaces the value at one known path with a value of the wrong type (if the path exists). */
function breakType(r: Rng, job: Obj): Obj {
  const order = job.Order as Obj[];
  const targets: [Obj, string][] = [
    ...TOP_KEYS.map((k): [Obj, string] => [job, k]),
    ...REMOTE_KEYS.map((k): [Obj, string] => [job, k]),
    ...(Array.isArray(order) ? order.flatMap((s) => STEP_KEYS.map((k): [Obj, string] => [s, k])) : []),
  ];
  const env = job.Env as Obj | undefined;
  if (env && typeof env === 'object') targets.push(...Object.keys(env).map((k): [Obj, string] => [env, k]));
  const [holder, key] = r.pick(targets);
  Object.defineProperty(holder, key, { value: wrong(r), enumerable: true, writable: true, configurable: true });
  return job;
}

function addUnknownKey(r: Rng, c: Corpus, job: Obj): Obj {
  const typos = ['Timout', 'Orders', 'order', 'Envs', 'Retry', 'Hostnme', 'Uplods', 'Downlaods', 'classtype', 'Modul', 'Lgo', 'Outputz', 'awsIDs', '<<'];
  const key = r.chance(0.6) ? r.pick(typos) : r.chance(0.5) ? r.pick(c.proto) : nasty(r, c);
  const order = job.Order as Obj[];
  const holder = r.chance(0.6) || !Array.isArray(order) ? job : r.pick(order);
  Object.defineProperty(holder, key, { value: r.chance(0.5) ? nasty(r, c) : wrong(r), enumerable: true, writable: true, configurable: true });
  return job;
}

function traversalJob(r: Rng, c: Corpus, w: JobWorld): Obj {
  const t = () => r.pick(c.traversal);
  const entries: [string, unknown][] = [['ClassType', r.pick(['Local', 'Remote', 'Remote'])], ['Name', t()]];
  if (r.chance(0.7)) entries.push(['Modules', own([['m', t()]])]);
  entries.push(['Order', [own([['Run', 'true'], ['Log', t()]])]]);
  entries.push(['Hostname', 'lab1'], ['Uploads', [t(), t()]], ['Downloads', [t(), t()]], ['LocalOutputDir', t()], ['RemoteWorkingDir', t()], ['Key', t()]);
  return own(entries);
}

function deepText(r: Rng): string {
  const depth = r.pick([20, 63, 64, 65, 66, 100, 1000, 5000, 20_000]);
  return r.pick([
    () => `Order: [{Run: "true"}]\nEnv: {A: ${'['.repeat(depth)}${']'.repeat(depth)}}\n`,
    () => `Order: ${'['.repeat(depth)}${']'.repeat(depth)}\n`,
    () => `Order:\n  - Function: echo\n    Module: m\n    Inputs:\n      - x: ${'{a: '.repeat(depth)}1${'}'.repeat(depth)}\nModules: {m: x.mjs}\n`,
    () => `Name: x\nEnv:\n${Array.from({ length: Math.min(depth, 3000) }, (_, i) => `${' '.repeat(i + 1)}a${i}:`).join('\n')} 1\n`,
    () => `Order:\n${Array.from({ length: Math.min(depth, 3000) }, (_, i) => `${' '.repeat(2 * i)}-`).join('\n')} x\n`,
    () => `Order: [{Run: "true"}]\nName: ${'- '.repeat(Math.min(depth, 5000))}x\n`,
  ])();
}

function aliasText(r: Rng, c: Corpus): string {
  return r.pick([
    () => {
      const width = r.int(2, 10);
      const levels = r.int(3, 9);
      const lines = [`l0: &l0 [${Array(width).fill('"lol"').join(', ')}]`];
      for (let n = 1; n <= levels; n++) lines.push(`l${n}: &l${n} [${Array(width).fill(`*l${n - 1}`).join(', ')}]`);
      return `${lines.join('\n')}\nOrder:\n  - Run: echo hi\n`;
    },
    () => `Order:\n  - Run: &r echo hi\n  - Run: *r\nEnv: {${Array.from({ length: r.pick([99, 100, 101, 150]) }, (_, i) => `K${i}: *r`).join(', ')}}\n`,
    () => `Order: *nope\n`,
    () => `Order: &a [*a]\n`,
    () => `base: &b {Run: "true"}\nOrder: [{<<: *b}]\n`,
    () => `Order: [{Run: "true"}]\nEnv: &e {A: "1"}\n*e : x\n`,
    () => `Name: &${r.pick(['x', 'ä', 'a b', '*', '[x]'])} ${nasty(r, c)}\nOrder: [{Run: "true"}]\n`,
    () => `Order: [&s {Run: "true"}, *s, *s]\n`,
  ])();
}

function tagText(r: Rng, c: Corpus): string {
  const tag = r.pick([
    `!!python/object/apply:os.system ["touch ${c.canaryDir}/${c.token}-tag"]`, '!!js/function "function(){}"', '!custom x', '!!binary aGVsbG8=',
    '!!timestamp 2001-12-14', '!!set {a, b}', '!!omap [a: 1]', '!<tag:yaml.org,2002:str> x', '!!str x', '!!int "3"', '!!float 1', '!!null ""',
    '!!bool yes', '!!map {}', '!!seq []', '!<!> x', '!! x', `!${nasty(r, c).replace(/\s/g, '')} x`,
  ]);
  return r.pick([
    () => `Order:\n  - Run: ${tag}\n`,
    () => `Name: ${tag}\nOrder: [{Run: "true"}]\n`,
    () => `Order: [{Run: "true"}]\nEnv: {A: ${tag}}\n`,
    () => `Order: [{Run: "true"}]\nRetries: ${tag}\n`,
    () => `%TAG !e! tag:example.com,2000:\n---\nOrder: [{Run: !e!x "true"}]\n`,
  ])();
}

function hugeText(r: Rng): string {
  return r.pick([
    () => `Name: ${'n'.repeat(10_000)}\nOrder: [{Run: "true"}]\n`,
    () => `Order:\n  - Run: "echo ${'x'.repeat(70_000)}"\n`,
    () => `Order:\n  - Run: "echo ${'x'.repeat(60_000)}"\n`,
    () => `Order:\n${'  - Run: "true"\n'.repeat(r.pick([1000, 1001]))}`,
    () => `Order: [{Run: "true"}]\nEnv:\n${Array.from({ length: 3000 }, (_, i) => `  K${i}: "${i}"`).join('\n')}\n`,
    () => `Order: [{Run: "true"}]\nEnv: {BIG: "${'v'.repeat(r.pick([100_000, 200_000, 500_000]))}"}\n`,
    () => `Order: [{Run: "true", Outputs: [${Array.from({ length: 101 }, (_, i) => `o${i}`).join(', ')}]}]\n`,
    () => `Order: [{Run: "true"}]\n${'# pad the file out past one MiB\n'.repeat(40_000)}`,
    () => `Order: [{Run: "true"}]\nRetries: 1${'0'.repeat(400)}\n`,
    () => `Order: [{Run: "true"}]\nTimeout: ${'9'.repeat(40)}d\n`,
  ])();
}

function rawText(r: Rng, c: Corpus): string {
  // Unquoted values written straight into the text: YAML decides what they are.
  const v = () => nasty(r, c).replace(/\n/g, ' ');
  return r.pick([
    () => `Name: ${v()}\nOrder:\n  - Run: ${v()}\n`,
    () => `Order:\n  - Run: echo hi\n    Log: ${v()}\nEnv:\n  ${v()}: ${v()}\n`,
    () => `ClassType: Remote\nHostname: ${v()}\nUsername: ${v()}\nRemoteWorkingDir: ${v()}\nUploads: [${v()}]\nDownloads: [${v()}]\nOrder: [{Run: "true"}]\n`,
    () => `Modules: {${v()}: ${v()}}\nOrder:\n  - Function: ${v()}\n    Inputs: [{${v()}: ${v()}}]\n    Outputs: [${v()}]\n`,
    () => `${v()}\n`,
    () => `Order: [{Run: ${v()}}]\n`,
  ])();
}

const INSERTS = [':', '{', '}', '[', ']', ',', '&', '*', '!', '|', '>', "'", '"', '%', '@', '`', '\t', '#', '-', '?', '\n', ' ', '\\', '\u0000', '\ufeff'];

function mutate(r: Rng, text: string): string | Buffer {
  const lines = text.split('\n');
  return r.pick<() => string | Buffer>([
    () => { const i = r.int(0, Math.max(0, text.length - 1)); return text.slice(0, i) + text.slice(i + 1); },
    () => { const i = r.int(0, text.length); return text.slice(0, i) + r.pick(INSERTS) + text.slice(i); },
    () => { const i = r.int(0, lines.length - 1); lines.splice(i, 0, lines[i]); return lines.join('\n'); },
    () => { const i = r.int(0, lines.length - 1); const j = r.int(0, lines.length - 1); [lines[i], lines[j]] = [lines[j], lines[i]]; return lines.join('\n'); },
    () => text.slice(0, r.int(0, text.length)),
    () => `\ufeff${text}`,
    () => text.replace(/\n/g, '\r\n'),
    () => `${text}---\n${text}`,
    () => `---\n${text}...\n`,
    () => { const i = r.int(0, lines.length - 1); lines[i] = `\t${lines[i]}`; return lines.join('\n'); },
    () => { const i = r.int(0, lines.length - 1); lines[i] = lines[i].trimStart(); return lines.join('\n'); },
    () => { const i = r.int(0, lines.length - 1); lines[i] = ` ${lines[i]}`; return lines.join('\n'); },
    () => { const b = Buffer.from(text); const i = r.int(0, b.length); return Buffer.concat([b.subarray(0, i), Buffer.from(r.pick([[0xff], [0xc3], [0xed, 0xa0, 0x80], [0x00], [0xf8, 0x88, 0x80, 0x80, 0x80]])), b.subarray(i)]); },
  ])();
}

/** `count` job files of one kind. */
export function jobFiles(r: Rng, w: JobWorld, kind: Exclude<JobKind, 'runnable'>, count: number): FuzzFile[] {
  const c = w.corpus;
  const files: FuzzFile[] = [];
  for (let i = 0; i < count; i++) {
    const name = r.chance(0.05) ? `${kind}-${i} ${nasty(r, c, ['unicode', 'yaml']).replace(/[/\u0000]/g, '_')}.yaml` : `${kind}-${i}.yaml`;
    let content: string | Buffer;
    switch (kind) {
      case 'nasty': content = toYaml(jobObject(r, c, w)); break;
      case 'wrong-type': content = toYaml(breakType(r, jobObject(r, c, w))); break;
      case 'unknown-key': content = toYaml(addUnknownKey(r, c, jobObject(r, c, w))); break;
      case 'traversal': content = toYaml(traversalJob(r, c, w)); break;
      case 'deep': content = deepText(r); break;
      case 'alias': content = aliasText(r, c); break;
      case 'tag': content = tagText(r, c); break;
      case 'huge': content = hugeText(r); break;
      case 'mutated': content = mutate(r, toYaml(jobObject(r, c, w))); break;
      case 'raw-text': content = rawText(r, c); break;
      case 'binary': content = Buffer.from(Array.from({ length: r.int(1, 2000) }, () => r.int(0, 255))); break;
    }
    files.push({ kind, name, content });
  }
  return files;
}

/** Raw definitions as the manager reads them from Redis (JSON, never YAML). */
export function rawDefinitions(r: Rng, w: JobWorld, count: number): string[] {
  const c = w.corpus;
  const fixed = [
    '{"__proto__": {"Order": [{"Run": "true"}], "polluted": "yes"}}',
    '{"Order": [{"Run": "true", "__proto__": {"Log": "../../escape"}}]}',
    '{"constructor": {"prototype": {"polluted": "yes"}}, "Order": [{"Run": "true"}]}',
    '{"Order": [{"Run": "true"}], "Env": {"__proto__": {"polluted": "yes"}}}',
    '{"Order": [{"Run": "true"}], "Env": {"constructor": "x", "toString": "y"}}',
    `{"Modules": {"m": "x.mjs"}, "Order": [{"Function": "echo", "Inputs": [{"x": ${'['.repeat(20_000)}${']'.repeat(20_000)}}]}]}`,
    `{"Order": [{"Run": "true"}], "Name": ${'['.repeat(5000)}${']'.repeat(5000)}}`,
    '[]', 'null', '"Order"', '5', '{"Order": null}', '{"Order": [null]}', '{"Order": [[]]}', '{"Order": {"0": {"Run": "true"}, "length": 1}}',
  ];
  const out = [...fixed];
  while (out.length < count) out.push(JSON.stringify(r.chance(0.5) ? jobObject(r, c, w) : breakType(r, jobObject(r, c, w))));
  return out;
}

// ---- config files ---------------------------------------------------------------------------

export type ConfigKind = 'nasty' | 'wrong-type' | 'unknown-key' | 'mutated' | 'deep' | 'alias' | 'tag' | 'legacy' | 'binary';

export interface FuzzConfig {
  kind: ConfigKind;
  content: string | Buffer;
}

const CONFIG_TOP = ['Redis', 'Deployment', 'StateDir', 'LocalMaxJobs', 'RemoteMaxJobsPerHost', 'PollPeriod', 'RetryBackoff', 'KillGrace', 'LogLevel', 'KnownHosts', 'HostKeyPolicy', 'HostDownAfter', 'Hosts', 'EC2'];
const LEGACY = ['ec2MaxInstances', 'regionName', 'amiID', 'instanceSize', 'securityGroups', 'sshKeyName', 'InstPollPeriod', 'awsIDs'];

/** Every secret planted in a config sits in a URL's password or in awsIDs: no error may show it. */
function configObject(r: Rng, c: Corpus, secret: string): Obj {
  const url = () => r.pick([null, `redis://:${secret}@127.0.0.1:6379/0`, `rediss://jm:${secret}@redis.example:6380/?ca=/x/ca.pem`, 'unix:///tmp/x.sock', `http://jm:${secret}@h`, `redis://jm:${secret}@[::1]:6379`, nasty(r, c), '']);
  const value = (key: string): unknown => {
    switch (key) {
      case 'Redis': return r.chance(0.85) ? own([['Url', url()]]) : r.chance(0.5) ? url() : wrong(r);
      case 'Hosts': return Array.from({ length: r.int(0, 3) }, () => own([
        ['Name', r.chance(0.5) ? `lab${r.int(1, 3)}` : nasty(r, c)], ['Hostname', r.chance(0.5) ? '10.0.0.5' : nasty(r, c)],
        ['Port', r.pick<unknown>([22, 0, 70000, '22', wrong(r)])], ['Username', nasty(r, c)],
        ['Key', r.pick<unknown>(['~/.ssh/id_ed25519', r.pick(c.traversal), `-----BEGIN OPENSSH PRIVATE KEY-----\n${secret}\n-----END OPENSSH PRIVATE KEY-----\n`, nasty(r, c)])],
        ['Slots', r.pick<unknown>([1, 8, 0, 1001, wrong(r)])],
      ].filter(() => r.chance(0.8)) as [string, unknown][]));
      case 'EC2': return own([
        ['Region', nasty(r, c)], ['ImageId', nasty(r, c)], ['SecurityGroupIds', [nasty(r, c)]], ['Tags', own([[nasty(r, c), secret]])],
        ['MaxInstances', r.pick<unknown>([4, -1, 1001, wrong(r)])], ['IdleTimeout', r.pick<unknown>(['10m', nasty(r, c)])], ['Endpoint', nasty(r, c)],
        ['Key', r.pick<unknown>([r.pick(c.traversal), `-----BEGIN RSA PRIVATE KEY-----\n${secret}\n-----END RSA PRIVATE KEY-----`])],
      ].filter(() => r.chance(0.5)) as [string, unknown][]);
      case 'LocalMaxJobs': case 'RemoteMaxJobsPerHost': return r.pick<unknown>([4, 0, 10_000, 10_001, -1, wrong(r)]);
      case 'PollPeriod': case 'RetryBackoff': case 'KillGrace': case 'HostDownAfter': return r.pick<unknown>(['30s', '49ms', 1, nasty(r, c), wrong(r)]);
      case 'LogLevel': return r.pick<unknown>(['debug', 'info', 'INFO', nasty(r, c)]);
      case 'HostKeyPolicy': return r.pick<unknown>(['strict', 'accept-new', 'yes', 'no', nasty(r, c)]);
      case 'awsIDs': return ['AKIAIOSFODNN7EXAMPLE', secret];
      default: return r.chance(0.7) ? nasty(r, c) : r.chance(0.5) ? r.pick(c.traversal) : wrong(r);
    }
  };
  const keys = CONFIG_TOP.filter(() => r.chance(0.4));
  if (r.chance(0.15)) keys.push(r.pick(LEGACY));
  return own(keys.map((key) => [key, value(key)]));
}

export function configFiles(r: Rng, c: Corpus, secret: string, kind: ConfigKind, count: number): FuzzConfig[] {
  const out: FuzzConfig[] = [];
  for (let i = 0; i < count; i++) {
    let content: string | Buffer;
    switch (kind) {
      case 'nasty': content = toYaml(configObject(r, c, secret)); break;
      case 'wrong-type': {
        const config = configObject(r, c, secret);
        Object.defineProperty(config, r.pick(CONFIG_TOP), { value: wrong(r), enumerable: true, writable: true, configurable: true });
        content = toYaml(config);
        break;
      }
      case 'unknown-key': {
        const config = configObject(r, c, secret);
        const key = r.pick(['LocalMaxJob', 'Redis.Url', 'redis', 'Host', 'ec2', ...c.proto, nasty(r, c)]);
        const holder = r.chance(0.7) ? config : (config.EC2 as Obj | undefined) ?? config;
        Object.defineProperty(holder, key, { value: r.chance(0.5) ? own([['LocalMaxJobs', 99], ['Hosts', [own([['Name', 'evil'], ['Hostname', '10.6.6.6']])]]]) : nasty(r, c), enumerable: true, writable: true, configurable: true });
        content = toYaml(config);
        break;
      }
      case 'mutated': content = mutate(r, toYaml(configObject(r, c, secret))); break;
      case 'deep': {
        const depth = r.pick([62, 63, 65, 1000, 10_000]);
        content = `LocalMaxJobs: 2\nEC2: {Tags: ${'{a: '.repeat(depth)}1${'}'.repeat(depth)}}\n`;
        break;
      }
      case 'alias': content = `x: &x [1, 2]\nEC2:\n  SecurityGroupIds: [${Array(r.pick([50, 101, 200])).fill('*x').join(', ')}]\n`; break;
      case 'tag': content = `LocalMaxJobs: !!python/object/apply:os.system ["touch ${c.canaryDir}/${c.token}-ctag"]\n`; break;
      case 'legacy': content = toYaml(own([[r.pick(LEGACY), r.chance(0.5) ? nasty(r, c) : 3], ['EC2', own([[r.pick(['Region', 'ImageId', 'MaxInstances']), 'x']])]])); break;
      case 'binary': content = Buffer.from(Array.from({ length: r.int(1, 500) }, () => r.int(0, 255))); break;
    }
    out.push({ kind, content });
  }
  return out;
}

// ---- runnable jobs ----------------------------------------------------------------------------

export interface RunWorld {
  corpus: Corpus;
  /** The echo module's path as the run files write it (relative to their directory). */
  echoModule: string;
  /** Files the run files may upload: path as written in Uploads → content. */
  uploads: { ref: string; base: string; content: string }[];
  /** SSH host names the Remote jobs may name. */
  hosts: string[];
}

export interface RunnableJob {
  file: string;
  text: string;
  classType: 'Local' | 'Thread' | 'Remote';
  expect: 'succeeded' | 'failed';
  /** The result the job must report when it succeeds (undefined: not checked). */
  result?: unknown;
  /** LocalOutputDir as written (relative to the run directory) and the files that must arrive there. */
  downloads: { dir: string; files: Record<string, string> } | null;
  /** RemoteWorkingDir as written, if any. */
  remoteWorkingDir: string | null;
  /** Env names it sets that the job script or the shell treat as their own (see SPECIAL_ENV). */
  specialEnv: string[];
  nastiness: number;
}

/** A string any field may hold once validated: no NUL, no line breaks where a name is wanted. */
function data(r: Rng, c: Corpus, oneLine = false): string {
  const families: Family[] = ['shell', 'shell', 'shell', 'unicode', 'yaml', 'traversal'];
  let text = nasty(r, c, families);
  if (r.chance(0.15)) text += r.pick(c.control.slice(2));
  if (oneLine) text = text.replace(/[\u0000-\u001f\u007f\u0085\u2028\u2029]/g, ' ');
  return text.replace(/\u0000/g, '');
}

/** A file name the job can create in its directory (no /, not . or .., not .jm…, ≤ 200 bytes). */
function fileName(r: Rng, c: Corpus, i: number): string {
  let name = data(r, c, true).replace(/[/\\]/g, '_');
  if (name === '' || name === '.' || name === '..' || name.startsWith('.jm') || name.trim() === '') name = `f${i}${name}`;
  while (Buffer.byteLength(name) > 200) name = codePoints(name, [...name].length - 1);
  return name;
}

/** The first `n` code points of `text` (never half a surrogate pair). */
function codePoints(text: string, n: number): string {
  return [...text].slice(0, n).join('');
}

/** Env names for a runnable job: plain ones, and (sometimes) the special ones. */
function envName(r: Rng, i: number, allowSpecial: boolean): string {
  if (allowSpecial && r.chance(0.15)) return r.pick(['L', 'R', 'C', 's', 'IFS']);
  return r.pick(['V', 'DATA_', '_x', 'K']) + i;
}

export function runnableJobs(r: Rng, w: RunWorld, counts: { local: number; thread: number; remote: number }): RunnableJob[] {
  const jobs: RunnableJob[] = [];
  for (let n = 0; n < counts.local + counts.thread + counts.remote; n++) {
    const classType = n < counts.local ? 'Local' : n < counts.local + counts.thread ? 'Thread' : 'Remote';
    jobs.push(runnable(r, w, n, classType));
  }
  return jobs;
}

function runnable(r: Rng, w: RunWorld, n: number, classType: RunnableJob['classType']): RunnableJob {
  const c = w.corpus;
  const remote = classType === 'Remote';
  let nastiness = 0;
  const note = (text: string) => {
    if (/touch/.test(text)) nastiness += 3;
    if (/\.\.|^\//.test(text)) nastiness += 2;
    if (/[^\x20-\x7e]/.test(text)) nastiness += 1;
    return text;
  };
  const useFileName = r.chance(0.1);
  const name = useFileName ? null : note(codePoints(data(r, c, true), 100));
  const file = useFileName ? `r${n} ${fileName(r, c, n).replace(/\.ya?ml$/, '')}.yaml` : `r${n}.yaml`;
  const jobName = name ?? file.replace(/\.yaml$/, '');
  const env: [string, string][] = [];
  const specialEnv: string[] = [];
  for (let i = r.int(0, 4); i > 0; i--) {
    const key = envName(r, i, classType !== 'Thread');
    if (env.some(([k]) => k === key)) continue;
    if (['L', 'R', 'C', 's', 'IFS'].includes(key)) specialEnv.push(key);
    env.push([key, note(data(r, c))]);
  }
  // Now and then a large value: up to the script's limit it must run (it appears twice in the
  // script: in Env and in the check below), over it the file is refused (lib/jobfile/job-spec.ts).
  if (classType !== 'Thread' && r.chance(0.03)) {
    env.push(['BIG', `${'b'.repeat(r.int(10, 70) * 1024)}${r.pick(c.shell)}`]);
    nastiness += 10;
  }
  const steps: Obj[] = [];
  const log = () => (r.chance(0.4) ? [['Log', note(fileName(r, c, steps.length))] as [string, unknown]] : []);
  const modules: [string, unknown][] = [];
  let expect: RunnableJob['expect'] = 'succeeded';
  let result: unknown;
  const downloads: Record<string, string> = {};

  if (classType === 'Thread') {
    modules.push(['m', w.echoModule]);
    for (let i = r.int(0, 2); i > 0; i--) steps.push(own([['Function', 'echo'], ['Inputs', [own([['x', note(data(r, c))]])]], ...log()]));
  } else {
    // Every value must arrive unchanged: the job checks them itself and exits 9x if not.
    const checks = [`[ "$JM_JOB_NAME" = ${shq(jobName)} ] || exit 90`, ...env.map(([k, v]) => `[ "$${k}" = ${shq(v)} ] || exit 91`)];
    if (!remote) checks.push('[ "$PWD" = "$JM_JOB_DIR" ] || exit 92');
    steps.push(own([['Run', checks.join('\n')], ...log()]));
    if (r.chance(0.5)) steps.push(own([['Run', `echo ${shq(note(data(r, c)))} # ${data(r, c, true)}`], ...log()]));
    if (r.chance(0.4)) steps.push(own([['Run', `cat <<'JM_EOF'\n${note(data(r, c)).replace(/^JM_EOF$/gm, '')}\nJM_EOF`], ...log()]));
    for (let i = remote ? r.int(1, 3) : r.int(0, 2); i > 0; i--) {
      const name = fileName(r, c, i);
      const content = note(data(r, c)).replace(/\n+$/, '');
      downloads[name] = content;
      steps.push(own([['Run', `printf '%s' ${shq(content)} > ${shq(name)}`], ...log()]));
    }
    if (r.chance(0.2)) {
      modules.push(['m', w.echoModule]);
      steps.push(own([['Function', 'echo'], ['Module', 'm'], ['Inputs', [own([['x', note(data(r, c))]])]], ['Outputs', ['e']], ...log()]));
    }
  }
  // The last step says what the job reports.
  const last = r.pick(classType === 'Thread' ? ['function', 'function', 'self'] : ['env', 'text', 'text', 'true', 'fail', 'function']);
  if (last === 'env' && env.length) {
    const [k, v] = r.pick(env);
    steps.push(own([['Run', `printf '%s' "$${k}"`], ['Outputs', ['o']]]));
    result = { o: v.trim() };
  } else if (last === 'function' || last === 'self') {
    if (!modules.length) modules.push(['m', w.echoModule]);
    const value = last === 'self' ? 'self.yaml' : note(data(r, c));
    steps.push(own([['Function', 'echo'], ['Module', 'm'], ['Inputs', [own([['x', value]])]], ['Outputs', ['o']]]));
    result = last === 'self' ? 'SELF' : { o: value };
  } else if (last === 'fail') {
    steps.push(own([['Run', `echo ${shq(data(r, c))} >&2; exit 3`]]));
    expect = 'failed';
  } else if (last === 'true') {
    steps.push(own([['Run', 'true']]));
    result = null;
  } else {
    const text = note(data(r, c));
    steps.push(own([['Run', `printf '%s' ${shq(text)}`], ['Outputs', ['o']]]));
    result = { o: text.trim() };
  }

  const entries: [string, unknown][] = [['ClassType', classType]];
  if (name !== null) entries.push(['Name', name]);
  if (modules.length) entries.push(['Modules', own(modules)]);
  entries.push(['Order', steps]);
  if (env.length) entries.push(['Env', own(env)]);
  if (expect === 'failed') entries.push(['Retries', r.int(0, 1)]);
  if (r.chance(0.2)) entries.push(['Timeout', '60s']);
  let outputDir: string | null = null;
  let remoteWorkingDir: string | null = null;
  if (remote) {
    entries.push(['Hostname', r.pick(w.hosts)]);
    const uploads = w.uploads.filter(() => r.chance(0.3));
    if (uploads.length) {
      entries.push(['Uploads', uploads.map((u) => note(u.ref))]);
      (steps[0].Run as string) += `\n${uploads.map((u) => `[ "$(cat < ${shq(u.base)})" = ${shq(u.content)} ] || exit 93`).join('\n')}`;
    }
    const missing = r.chance(0.15) ? [`missing-${n}`] : [];
    entries.push(['Downloads', [...Object.keys(downloads), ...missing]]);
    outputDir = r.pick([`../outputs/o${n}`, `../outputs/o${n}/${fileName(r, c, n)}`, `./../outputs/./p${n}`]);
    entries.push(['LocalOutputDir', note(outputDir)]);
    if (r.chance(0.3)) {
      remoteWorkingDir = `~/wd/${fileName(r, c, n)}`;
      entries.push(['RemoteWorkingDir', note(remoteWorkingDir)]);
    }
  }
  const job = own(entries);
  if (result === 'SELF') result = { o: JSON.parse(JSON.stringify(job)) };
  return {
    file, text: toYaml(job), classType, expect, result,
    downloads: remote ? { dir: outputDir!, files: downloads } : null,
    remoteWorkingDir, specialEnv, nastiness,
  };
}
