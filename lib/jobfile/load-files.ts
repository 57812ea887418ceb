import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { JobSpecError } from '../util/errors.js';
import { keyName, roomForRow, validateJobSpec, type JobSpec } from './job-spec.js';
import { readEach, type Row } from './sweep.js';
import { parseYaml, readYamlText, YamlProblem, type ParsedYaml, type YamlPath } from './yaml.js';
import { provenValid } from './shell-syntax.js';

// Job files as `queue` and `run` take them: files, or directories of *.yaml / *.yml files. Each is
// parsed safely and validated, then checked against the world: its modules exist and export the
// functions its steps name, and its shell commands parse. Every problem names the file and line.

export const MAX_JOB_FILE_BYTES = 1024 * 1024;

export interface LoadedJob {
  file: string;
  spec: JobSpec;
  /** The job definition as written; for a sweep, without `Each`. */
  raw: unknown;
  /** A sweep (`Each:`, sweep.ts): one job per row; null for a job file of one job. */
  rows: Row[] | null;
}

export interface LoadResult {
  jobs: LoadedJob[];
  errors: JobSpecError[];
}

export function expandJobPaths(args: string[], cwd = process.cwd()): { files: string[]; errors: JobSpecError[] } {
  const files: string[] = [];
  const errors: JobSpecError[] = [];
  for (const arg of args) {
    const path = resolve(cwd, arg);
    let isDir = false;
    try {
      isDir = statSync(path).isDirectory();
    } catch {
      errors.push(new JobSpecError(arg, null, null, 'no such file or directory'));
      continue;
    }
    if (!isDir) {
      files.push(path);
      continue;
    }
    const found = readdirSync(path).filter((name) => /\.ya?ml$/.test(name)).sort(naturalOrder()).map((name) => join(path, name));
    if (found.length === 0) errors.push(new JobSpecError(arg, null, null, 'the directory holds no .yaml or .yml job files'));
    files.push(...found);
  }
  return { files, errors };
}

/** file2 before file10: one collator for all (localeCompare builds one per call), made when needed. */
let collator: Intl.Collator['compare'] | null = null;
const naturalOrder = () => (collator ??= new Intl.Collator(undefined, { numeric: true }).compare);

export async function loadJobFiles(args: string[], cwd = process.cwd()): Promise<LoadResult> {
  const { files, errors } = expandJobPaths(args, cwd);
  // Every file is parsed and validated first, so that the world checks below can settle all
  // shell commands at once; problems are still reported in the order of the files. (Parsing in
  // worker threads was measured on 2 cores and lost: a parsing thread already keeps the second
  // core busy with V8's compiler and garbage collector, and each thread pays its own warm-up.)
  const texts = new TextParser();
  const readings: (JobSpecError | (LoadedJob & { lineOf: ParsedYaml['lineOf'] }))[] = [];
  for (const file of files) {
    try {
      const parsed = texts.parse(readYamlText(file, MAX_JOB_FILE_BYTES));
      const spec = validateJobSpec(parsed.value, { file, lineOf: parsed.lineOf });
      readings.push({ file, spec, lineOf: parsed.lineOf, ...sweepOf(parsed.value, spec, parsed.lineOf) });
    } catch (err) {
      if (err instanceof YamlProblem) readings.push(new JobSpecError(file, err.line, err.path ? keyName(err.path) : null, err.reason));
      else if (err instanceof JobSpecError) readings.push(err);
      else throw err;
    }
  }
  const jobs: LoadedJob[] = [];
  const checker = new WorldChecker();
  await checker.settleCommands(readings.flatMap((r) => (r instanceof JobSpecError ? [] : [r.spec])));
  for (const reading of readings) {
    if (reading instanceof JobSpecError) {
      errors.push(reading);
      continue;
    }
    const { file, spec, raw, rows, lineOf } = reading;
    try {
      await checker.check(spec, lineOf);
      jobs.push({ file, spec, raw, rows });
    } catch (err) {
      if (err instanceof JobSpecError) errors.push(err);
      else throw err;
    }
  }
  return { jobs, errors };
}

/** A job file's rows if it is a sweep (it has `Each:`), and its definition without them. */
function sweepOf(value: unknown, spec: JobSpec, lineOf: ParsedYaml['lineOf']): { raw: unknown; rows: Row[] | null } {
  if (value === null || typeof value !== 'object' || !('Each' in value)) return { raw: value, rows: null };
  // A copy: the parsed value may be shared with other files of the same text (TextParser).
  const { Each: each, ...raw } = value as Record<string, unknown>;
  return { raw, rows: readEach(each, { file: spec.file, baseDir: spec.baseDir, lineOf, maxRowBytes: roomForRow(spec) }) };
}

/**
 * Parses each distinct text once. Files often share their text (one job queued many times, each
 * in a file of its own), and the same text always parses to the same value (or is refused for the
 * same reason): the jobs of those files share that value, and only ever read it.
 */
class TextParser {
  private readonly seen = new Map<string, ParsedYaml | YamlProblem>();

  parse(text: string): ParsedYaml {
    let parsed = this.seen.get(text);
    if (parsed === undefined) {
      try {
        parsed = parseYaml(text);
      } catch (err) {
        if (!(err instanceof YamlProblem)) throw err;
        parsed = err;
      }
      this.seen.set(text, parsed);
    }
    if (parsed instanceof YamlProblem) throw parsed;
    return parsed;
  }
}

/** Checks that need the file system: modules, their exports, shell syntax. Results are cached. */
class WorldChecker {
  private readonly exports = new Map<string, Promise<Set<string> | string>>();
  private readonly commands = new Map<string, string | null>();
  private readonly moduleFiles = new Map<string, boolean>();

  /** Settles at once, in batches, which shell commands of all `specs` are valid sh. */
  async settleCommands(specs: JobSpec[]): Promise<void> {
    const commands = new Set<string>();
    for (const spec of specs) for (const step of spec.order) if (step.kind === 'run') commands.add(step.run);
    // One command costs the same either way; batches pay off from two.
    if (commands.size < 2) return;
    for (const command of await provenValid(commands)) this.commands.set(command, null);
  }

  async check(spec: JobSpec, lineOf: (path: YamlPath) => number | null): Promise<void> {
    const fail = (path: (string | number)[], key: string, reason: string): never => {
      throw new JobSpecError(spec.file, lineOf(path), key, reason);
    };
    for (const [key, path] of Object.entries(spec.modules)) {
      if (!this.isFile(path)) fail(['Modules', key], `Modules.${key}`, `no such file: ${path} (paths in Modules are relative to the job file's directory)`);
    }
    for (let i = 0; i < spec.order.length; i++) {
      const step = spec.order[i];
      if (step.kind === 'run') {
        const problem = this.shellProblem(step.run);
        if (problem) fail(['Order', i, 'Run'], `Order[${i}].Run`, `the command is not valid sh: ${problem}`);
        continue;
      }
      const path = spec.modules[step.module];
      const names = await this.moduleExports(path);
      if (typeof names === 'string') return fail(['Modules', step.module], `Modules.${step.module}`, `cannot load ${path}: ${names}`);
      if (!names.has(step.function)) {
        fail(['Order', i, 'Function'], `Order[${i}].Function`, `${path} exports no function ${step.function}${names.size ? ` (it exports: ${[...names].slice(0, 10).join(', ')})` : ''}`);
      }
    }
  }

  private isFile(path: string): boolean {
    let ok = this.moduleFiles.get(path);
    if (ok === undefined) {
      try {
        ok = statSync(path).isFile();
      } catch {
        ok = false;
      }
      this.moduleFiles.set(path, ok);
    }
    return ok;
  }

  private shellProblem(command: string): string | null {
    if (!this.commands.has(command)) {
      const result = spawnSync('/bin/sh', ['-n', '-c', command], { encoding: 'utf8', timeout: 5000 });
      const text = result.status === 0 ? null : (result.stderr || 'syntax error').trim().replace(/^\/bin\/sh: \d+: /, '');
      this.commands.set(command, text);
    }
    return this.commands.get(command)!;
  }

  /** The module's exported function names, or why it cannot be loaded. Loaded in a worker. */
  private moduleExports(path: string): Promise<Set<string> | string> {
    let pending = this.exports.get(path);
    if (!pending) {
      pending = loadExportNames(path);
      this.exports.set(path, pending);
    }
    return pending;
  }
}

const EXPORTS_PROBE = `
const { parentPort, workerData } = require('node:worker_threads');
import(workerData.url).then(
  (m) => {
    const names = Object.keys(m).filter((k) => typeof m[k] === 'function');
    if (m.default && typeof m.default === 'object') names.push(...Object.keys(m.default).filter((k) => typeof m.default[k] === 'function'));
    parentPort.postMessage({ names });
  },
  (e) => parentPort.postMessage({ error: String((e && e.message) || e).split('\\n')[0] }),
);`;

function loadExportNames(path: string): Promise<Set<string> | string> {
  return new Promise((resolvePromise) => {
    // Loading runs the module's top-level code, so it happens in a worker that can be stopped
    // and whose output is discarded.
    const worker = new Worker(EXPORTS_PROBE, { eval: true, workerData: { url: pathToFileURL(path).href }, stdout: true, stderr: true });
    const timer = setTimeout(() => {
      void worker.terminate();
      resolvePromise('loading it took more than 10s');
    }, 10_000);
    worker.once('message', (reply: { names?: string[]; error?: string }) => {
      clearTimeout(timer);
      void worker.terminate();
      resolvePromise(reply.names ? new Set(reply.names) : reply.error ?? 'unknown error');
    });
    worker.once('error', (err) => {
      clearTimeout(timer);
      resolvePromise(err.message);
    });
    // A module that calls process.exit() while loading ends the worker without a reply: say so now
    // rather than after the timeout. (After a reply or an error, resolving again does nothing.)
    worker.once('exit', (code) => {
      clearTimeout(timer);
      resolvePromise(`it exited while loading (process.exit(${code}))`);
    });
  });
}
