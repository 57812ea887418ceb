import { formatDuration } from '../util/duration.js';
import { isFinal, type DownloadsNote, type JobRecord, type RunEntry, type StepState } from '../store/job-record.js';
import { age, table, timestamp, took } from './output.js';

// How jobs look to people (tables) and to scripts (--json: the public fields of a record; never
// the stored definition, whose Env a user may not want echoed).

export interface JobView {
  id: string;
  name: string;
  classType: string;
  state: string;
  reason: string | null;
  attempt: number;
  retries: number;
  location: string | null;
  /** Where its current (or last) run got its slot: local, or host:<name>. */
  host: string | null;
  file: string;
  queuedAt: number | null;
  startedAt: number | null;
  endedAt: number | null;
  exitCode: number | null;
  result: unknown;
  steps: StepState[];
  /** Downloads that did not arrive (Remote jobs), in the last run that fetched them; null: none failed. */
  downloads: DownloadsNote | null;
  /** A sweep's job: the sweep's id (its first job's) and the job's row. */
  sweep?: string;
  params?: Record<string, string> | null;
}

export function jobView(record: JobRecord): JobView {
  return {
    id: record.id,
    name: record.name,
    classType: record.classType,
    state: record.state,
    reason: record.reason,
    attempt: record.attempt,
    retries: record.retries,
    location: record.location,
    host: record.host,
    file: record.file,
    queuedAt: record.queuedAt,
    startedAt: record.startedAt,
    endedAt: record.endedAt,
    exitCode: record.exitCode,
    result: record.result,
    steps: allSteps(record),
    downloads: record.downloads,
    ...(record.sweep ? { sweep: record.sweep, params: record.params } : {}),
  };
}

/** Every step of the job: recorded states, then pending (or skipped, once the job has ended). */
export function allSteps(record: JobRecord): StepState[] {
  // A record is data from Redis: a spec or steps of the wrong shape (a corrupt or forged record)
  // must not stop `jobs`, `show` or `wait` (found by spec/security.spec.ts).
  const order: unknown[] = Array.isArray(record.spec?.order) ? record.spec.order : [];
  const labels = order.map((s) => (s !== null && typeof s === 'object' && typeof (s as { label?: unknown }).label === 'string' ? (s as { label: string }).label : ''));
  const steps = (Array.isArray(record.steps) ? record.steps : []).map((s): StepState => (s !== null && typeof s === 'object' ? s : { label: '', state: 'pending', startedAt: null, endedAt: null, exitCode: null }));
  for (let i = steps.length; i < labels.length; i++) {
    steps.push({ label: labels[i], state: isFinal(record.state) ? 'skipped' : 'pending', startedAt: null, endedAt: null, exitCode: null });
  }
  return steps.map((s, i) => ({ ...s, label: s.label || labels[i] || `step ${i + 1}` }));
}

export function jobsTable(records: JobRecord[], now = Date.now()): string {
  return table(
    ['ID', 'NAME', 'TYPE', 'STATE', 'TIME', 'DETAIL'],
    records.map((r) => [r.id, r.name, r.classType, r.state, timeOf(r, now), detailOf(r)].map(shown)),
    [8, 28, 7, 10, 9, 70],
  );
}

/**
 * Text from a job record as a terminal may print it: control characters (C0 but the line break,
 * which tables turn into a space; DEL; C1) written as \uXXXX. Names, step labels, reasons and
 * results come from job files, job output and Redis, and an escape sequence in them must not act
 * on the terminal of whoever lists the jobs (found by spec/fuzz.spec.ts).
 */
function shown(value: string | number | null | undefined): string | number | null | undefined {
  if (typeof value !== 'string') return value;
  return value.replace(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** One line of text from a job record (line breaks escaped too). */
function shownLine(value: string): string {
  return String(shown(value)).replace(/\n/g, '\\n');
}

function timeOf(r: JobRecord, now: number): string {
  if (r.endedAt !== null && r.startedAt !== null && isFinal(r.state)) return took(r.startedAt, r.endedAt);
  if (r.state === 'running') return age(r.startedAt, now);
  return age(r.queuedAt, now);
}

function detailOf(r: JobRecord): string {
  if (r.state === 'succeeded') return r.result === null || r.result === undefined ? '' : JSON.stringify(r.result);
  if (r.state === 'queued' && r.retryAt) return `retry ${r.attempt}/${r.retries + 1} ${r.retryAt > Date.now() ? `in ${formatDuration(r.retryAt - Date.now())}` : 'due'}: ${r.reason ?? ''}`;
  if (r.state === 'running') {
    const steps = allSteps(r);
    const current = steps.findIndex((s) => s.state === 'running');
    return current >= 0 ? `step ${current + 1}/${steps.length}: ${steps[current].label}` : '';
  }
  return r.reason ?? '';
}

export function showJob(r: JobRecord, runs: RunEntry[], dir: string | null): string {
  const lines: string[] = [];
  lines.push(shownLine(`Job ${r.id}  ${r.name}  (${r.classType})  ${r.state}${r.reason ? `: ${r.reason}` : ''}`));
  const field = (name: string, value: string) => lines.push(`  ${name.padEnd(9)} ${shownLine(value)}`);
  field('file', r.file || '-');
  if (r.sweep) field('row', `${JSON.stringify(r.params ?? {})}  (sweep ${r.sweep})`);
  if (dir) field('directory', dir);
  field('location', r.host && r.host !== r.location ? `${r.location} → ${r.host}` : r.location ?? '-');
  field('attempt', `${r.attempt} of ${r.retries + 1}${r.run ? `, run ${r.run}` : ''}`);
  field('queued', timestamp(r.queuedAt));
  if (r.startedAt) field('started', `${timestamp(r.startedAt)}  (waited ${took(r.queuedAt, r.startedAt)})`);
  if (r.endedAt) field('ended', `${timestamp(r.endedAt)}${r.startedAt ? `  (took ${took(r.startedAt, r.endedAt)})` : ''}`);
  if (r.deadline && r.state === 'running') field('deadline', timestamp(r.deadline));
  if (r.exitCode !== null) field('exit code', String(r.exitCode));
  if (r.result !== null && r.result !== undefined) field('result', JSON.stringify(r.result));
  if (r.downloads) field('downloads', describeDownloads(r.downloads));
  const steps = allSteps(r);
  if (steps.length) {
    lines.push('', 'Steps');
    lines.push(indent(table(['#', 'STEP', 'STATE', 'STARTED', 'TOOK', 'EXIT'], steps.map((s, i) => [i + 1, s.label, s.state, s.startedAt ? timestamp(s.startedAt).slice(11) : '-', took(s.startedAt, s.endedAt), s.exitCode].map(shown)), [3, 40])));
  }
  if (runs.length) {
    lines.push('', 'Runs');
    lines.push(indent(table(['RUN', 'ATTEMPT', 'OUTCOME', 'STARTED', 'TOOK', 'REASON'], runs.map((run) => [run.run, run.attempt, run.outcome, run.startedAt ? timestamp(run.startedAt) : '-', took(run.startedAt, run.endedAt), run.reason || ''].map(shown)), [4, 8, 12, 24, 9, 70])));
  }
  return lines.join('\n');
}

/** `failed in run 2: missing.txt (No such file); out (Not a regular file)` */
export function describeDownloads(note: DownloadsNote): string {
  return `failed in run ${note.run}: ${note.failed.map((f) => `${f.file} (${f.reason})`).join('; ')}`;
}

function indent(text: string): string {
  return text.split('\n').map((l) => '  ' + l).join('\n');
}
