import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { JobSpec, Step } from '../jobfile/job-spec.js';
import { INTERNAL_DIR, outputFile, SELF_YAML } from './layout.js';

// One Function step: load the module, resolve the step's Inputs (values, earlier steps' Outputs,
// or `self.yaml`, the job's own definition), call the function, and store what it returned as
// JSON in the job's directory. Used by the step runner (a process of its own, here or on a remote
// host) and by the thread pool (Thread jobs), so all behave the same. It imports only node
// built-ins and ./layout.js: with step-runner.js, it is the runtime copied to remote hosts.

/** What the starter leaves in the job's directory for Function steps: .jm/job.json */
export interface JobFile {
  jobId: string;
  run: number;
  attempt: number;
  spec: JobSpec;
  raw: unknown;
}

export interface StoredOutput {
  /** Named outputs (the step's Outputs), or null when it lists none. */
  outputs: Record<string, unknown> | null;
  /** What the function returned, for steps without Outputs. */
  value: unknown;
}

export function jobFilePath(jobDir: string): string {
  return join(jobDir, INTERNAL_DIR, 'job.json');
}

export function writeJobFile(jobDir: string, file: JobFile): void {
  writeAtomically(jobFilePath(jobDir), JSON.stringify(file));
}

export function writeAtomically(path: string, text: string): void {
  const temp = `${path}.${process.pid}.tmp`;
  writeFileSync(temp, text);
  renameSync(temp, path);
}

/** The function's `this`: where it runs. */
export interface StepContext {
  jobId: string;
  jobName: string;
  run: number;
  attempt: number;
  jobDir: string;
  step: number;
  env: Record<string, string>;
  /** A sweep's job: its row (`Each:`); {} for a job of its own file. */
  params: Record<string, string>;
}

export async function runFunctionStep(jobDir: string, index: number): Promise<void> {
  const job = JSON.parse(readFileSync(jobFilePath(jobDir), 'utf8')) as JobFile;
  writeStepOutput(jobDir, index, await callFunctionStep(job, index, () => jobDir));
}

/**
 * Calls step `index` of `job` and returns what it gave, to be stored: a StoredOutput as JSON
 * (what cannot be JSON is refused here, the same for every runner). `dir()` gives the job's
 * directory: the thread pool makes it only when it is first asked for (a Thread job that reads no
 * earlier output and never looks at this.jobDir costs no file system work).
 */
export async function callFunctionStep(job: JobFile, index: number, dir: () => string): Promise<string> {
  const step = job.spec.order[index];
  if (!step || step.kind !== 'function') throw new Error(`step ${index} of job ${job.jobId} is not a Function step`);
  const args = step.inputs.map((input) => {
    if (input.fromOutput) return readOutputByName(dir(), job.spec.order, index, input.name);
    if (input.value === SELF_YAML) return job.raw;
    return input.value;
  });
  const path = job.spec.modules[step.module];
  const module = await importModule(path);
  const fn = module[step.function] ?? (module.default as Record<string, unknown> | undefined)?.[step.function];
  if (typeof fn !== 'function') throw new Error(`${path} exports no function ${step.function}`);
  const context = { jobId: job.jobId, jobName: job.spec.name, run: job.run, attempt: job.attempt, step: index, env: job.spec.env, params: job.spec.params ?? {} } as StepContext;
  Object.defineProperty(context, 'jobDir', { get: dir, enumerable: true });
  const value = await (fn as (...a: unknown[]) => unknown).apply(context, args);
  const stored: StoredOutput = { outputs: nameOutputs(step.outputs, value), value: step.outputs.length ? undefined : value };
  try {
    return JSON.stringify(stored) ?? '{}';
  } catch (err) {
    throw new Error(`${step.function} returned a value that cannot be stored as JSON (${(err as Error).message})`);
  }
}

/**
 * A step's module, imported once per process or thread: import() of a module already loaded
 * still resolves its URL and walks the loader (~0.1 ms), a no-op Thread job's largest cost. The
 * loader caches a module by URL anyway, so an edited file is not read again either way.
 */
const modules = new Map<string, Promise<Record<string, unknown>>>();

function importModule(path: string): Promise<Record<string, unknown>> {
  let module = modules.get(path);
  if (!module) {
    module = import(pathToFileURL(path).href) as Promise<Record<string, unknown>>;
    modules.set(path, module);
    module.catch(() => modules.delete(path)); // a module that failed to load is tried again next time
  }
  return module;
}

/** Stores what a Function step gave (callFunctionStep's JSON) in the job's directory, where later steps and getReturnData read it. */
export function writeStepOutput(jobDir: string, index: number, stored: string): void {
  writeAtomically(join(jobDir, outputFile(index, 'function')), stored);
}

/** getReturnData() of a Function step from what it gave (callFunctionStep's JSON), as readReturnData reads it back from its file. */
export function returnDataOf(step: Step, stored: string): unknown {
  const output = JSON.parse(stored) as StoredOutput;
  return step.outputs.length > 0 ? output.outputs : output.value ?? null;
}

function nameOutputs(names: string[], value: unknown): Record<string, unknown> | null {
  if (names.length === 0) return null;
  if (names.length === 1) return { [names[0]]: value };
  if (!Array.isArray(value)) throw new Error(`the step lists ${names.length} Outputs (${names.join(', ')}) but its function returned ${typeof value}, not a list of ${names.length} values`);
  return Object.fromEntries(names.map((name, i) => [name, value[i]]));
}

/** The output named `name` of the latest earlier step that lists it. */
export function readOutputByName(jobDir: string, order: Step[], before: number, name: string): unknown {
  for (let i = before - 1; i >= 0; i--) {
    if (order[i].outputs.includes(name)) return readStepOutputs(jobDir, order[i], i)?.[name];
  }
  throw new Error(`no earlier step has an output named ${name}`);
}

/** A finished step's named outputs (a Run step's output is its standard output, trimmed). */
export function readStepOutputs(jobDir: string, step: Step, index: number): Record<string, unknown> | null {
  if (step.outputs.length === 0) return null;
  const file = join(jobDir, outputFile(index, step.kind));
  if (step.kind === 'run') return { [step.outputs[0]]: readFileSync(file, 'utf8').trim() };
  return (JSON.parse(readFileSync(file, 'utf8')) as StoredOutput).outputs;
}

/** getReturnData() of a job whose last step is `step`: its named outputs, else what it returned. */
export function readReturnData(jobDir: string, step: Step, index: number): unknown {
  if (step.outputs.length > 0) return readStepOutputs(jobDir, step, index);
  if (step.kind === 'run') return null;
  const stored = JSON.parse(readFileSync(join(jobDir, outputFile(index, 'function')), 'utf8')) as StoredOutput;
  return stored.value ?? null;
}
