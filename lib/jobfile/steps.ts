import { checkKeys, CONTROL, describeType, expectMap, IDENTIFIER, optString, optStringList, printable, type Fail } from './fields.js';
import type { YamlPath } from './yaml.js';

// The steps of a job file's Order: each is either Run (a shell command; its standard output may be
// its one Output) or Function (a function exported by one of the job's Modules, called with
// Inputs, which are literal values or the Outputs of earlier steps).

export interface InputSpec {
  name: string;
  /** true: the value is the output of that name from an earlier step. */
  fromOutput: boolean;
  value: unknown;
}

export interface RunStep {
  kind: 'run';
  label: string;
  run: string;
  log: string | null;
  outputs: string[];
}

export interface FunctionStep {
  kind: 'function';
  label: string;
  function: string;
  module: string;
  inputs: InputSpec[];
  outputs: string[];
  log: string | null;
}

export type Step = RunStep | FunctionStep;

const STEP_KEYS = ['Run', 'Function', 'Module', 'Inputs', 'Outputs', 'Log', 'Name'] as const;
const MAX_COMMAND = 64 * 1024;

/** One entry of Order, checked; `earlierOutputs` are the Outputs of the steps before it. */
export function readStep(raw: unknown, path: YamlPath, fail: Fail, modules: Record<string, string>, earlierOutputs: Set<string>): Step {
  const step = expectMap(raw, path, fail, 'a step');
  checkKeys(step, STEP_KEYS, path, fail, 'a step');
  const label = optString(step, 'Name', path, fail, 200);
  if (label !== undefined && CONTROL.test(label)) fail([...path, 'Name'], 'must not contain control characters');
  const log = optString(step, 'Log', path, fail, 255) ?? null;
  if (log !== null && (!/^[^/\\]+$/.test(log) || log === '.' || log === '..' || log.startsWith('.jm'))) {
    fail([...path, 'Log'], 'must be a file name in the job\'s directory, such as zip.log (no / and no ..)');
  }
  // 255 characters can be more bytes than a file name may have: the step could never write it.
  if (log !== null && Buffer.byteLength(log) > 255) fail([...path, 'Log'], `is ${Buffer.byteLength(log)} bytes long; a file name has at most 255`);
  const outputs = (optStringList(step, 'Outputs', path, fail, 100) ?? []).map((name, i) => {
    if (!IDENTIFIER.test(name)) fail([...path, 'Outputs', i], 'must be a name (letters, digits and _)');
    return name;
  });
  if ('Run' in step && 'Function' in step) fail(path, 'a step has either Run (a shell command) or Function (a JS function), not both');
  if ('Run' in step) {
    const run = optString(step, 'Run', path, fail, MAX_COMMAND);
    if (!run || !run.trim()) fail([...path, 'Run'], 'must be a shell command');
    for (const key of ['Module', 'Inputs'] as const) {
      if (key in step) fail([...path, key], `applies to Function steps; pass values to a shell command through Env or the command itself`);
    }
    if (outputs.length > 1) fail([...path, 'Outputs'], 'a Run step has one output at most: its standard output, as text');
    return { kind: 'run', label: label ?? firstLine(run), run, log, outputs };
  }
  if (!('Function' in step)) fail(path, 'a step needs Run (a shell command) or Function (the name of a JS function)');
  const fn = optString(step, 'Function', path, fail, 200);
  if (!fn || !IDENTIFIER.test(fn)) fail([...path, 'Function'], 'must be the name of a function exported by the module');
  const moduleKeys = Object.keys(modules);
  let module = optString(step, 'Module', path, fail, 200);
  if (module === undefined) {
    if (moduleKeys.length !== 1) fail([...path, 'Module'], moduleKeys.length ? `is missing: name one of the Modules (${moduleKeys.join(', ')})` : 'is missing, and the job has no Modules; add Modules: {name: file.mjs}');
    module = moduleKeys[0];
  }
  // Own keys only: `Module: constructor` is not an entry of every Modules (found by spec/fuzz.spec.ts).
  if (!Object.hasOwn(modules, module)) fail([...path, 'Module'], `names no entry of Modules${moduleKeys.length ? ` (${moduleKeys.join(', ')})` : '; add Modules: {' + module + ': file.mjs}'}`);
  const inputs = readInputs(step.Inputs, [...path, 'Inputs'], fail, earlierOutputs);
  return { kind: 'function', label: label ?? fn, function: fn, module, inputs, outputs, log };
}

function readInputs(raw: unknown, path: YamlPath, fail: Fail, earlierOutputs: Set<string>): InputSpec[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) fail(path, `must be a list of {name: value} entries, not ${describeType(raw)}`);
  if (raw.length > 100) fail(path, `has ${raw.length} entries; at most 100 are allowed`);
  return raw.map((entry, i) => {
    const map = expectMap(entry, [...path, i], fail, 'an input');
    const keys = Object.keys(map);
    if (keys.length !== 1) fail([...path, i], 'each input is one {name: value}; use null as the value to pass an earlier step\'s output of that name');
    const name = keys[0];
    const value = map[name];
    if (value === null) {
      if (!earlierOutputs.has(name)) fail([...path, i, name], `is null, so it takes the output named ${name} of an earlier step, but no earlier step lists ${name} in its Outputs`);
      return { name, fromOutput: true, value: null };
    }
    return { name, fromOutput: false, value };
  });
}

/** A Run step's label: its first line, short, and without control characters (tables show it). */
function firstLine(text: string): string {
  const line = printable(text.trim().split('\n')[0]);
  return line.length > 60 ? line.slice(0, 57) + '...' : line;
}
