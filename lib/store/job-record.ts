import type { ClassType, JobSpec } from '../jobfile/job-spec.js';
import { parseRow } from './sweep-rows.js';

// The job record as stored in the hash job:<id>, and its lifecycle:
//
//   queued ──────> granted ──────> running
//     │  ^            │               │
//     │  │            └───────┬───────┘
//     │  │                    v
//     │  └─── retry ───── a run ends ──> succeeded | failed | cancelled
//     │   (failed with retries left: after a backoff; interrupted: at once)
//     ├──> cancelled (before it was granted)
//     └──> rejected (the manager could not use the job file)
//
//   failed | cancelled ──retry by hand (lua/retry-N.lua: the web page's button)──> queued, attempt 1
//
// `granted` covers the starter's launch too: a granted job holds a slot and is in Granted_Queue or
// being launched. A run ends from `granted` as well as from `running`: a short job ends before
// the fetcher marks it running (it goes from granted to its end in one step), a job still in
// Granted_Queue is cancelled at once (one being launched when its run ends), a run whose launch
// fails is failed, and one whose host goes down is failed or interrupted.

export const JOB_STATES = ['queued', 'granted', 'running', 'succeeded', 'failed', 'cancelled', 'rejected'] as const;
export type JobState = (typeof JOB_STATES)[number];
export const FINAL_STATES: readonly JobState[] = ['succeeded', 'failed', 'cancelled', 'rejected'];

export function isFinal(state: string | undefined): boolean {
  return FINAL_STATES.includes(state as JobState);
}

export type StepStateName = 'pending' | 'running' | 'succeeded' | 'failed' | 'skipped';

export interface StepState {
  label: string;
  state: StepStateName;
  startedAt: number | null;
  endedAt: number | null;
  exitCode: number | null;
}

export interface RunEntry {
  run: number;
  attempt: number;
  /** succeeded | failed | cancelled | interrupted, or fenced (see gaveUpAs). */
  outcome: string;
  exitCode: string;
  reason: string;
  startedAt: number | null;
  endedAt: number;
  location: string | null;
  /**
   * Fenced runs (lua/fenceRun-1.lua): given up on with this outcome while their host was
   * unreachable, found still there when it answered again, and killed at fencedAt; stoppedAt:
   * when the host's watchdog had stopped them, its lease having lapsed (lib/backends/remote/lease.ts).
   */
  gaveUpAs?: string;
  fencedAt?: number;
  stoppedAt?: number;
}

/** A download of a Remote job that did not arrive (lua/noteDownloads-1.lua). */
export interface DownloadFailure {
  file: string;
  reason: string;
}

/** The downloads of the last run that fetched some and not all of them. */
export interface DownloadsNote {
  run: number;
  failed: DownloadFailure[];
}

export interface JobRecord {
  id: string;
  name: string;
  classType: ClassType | string;
  state: JobState;
  file: string;
  baseDir: string;
  location: string | null;
  /** Where its current (or last) run holds a slot: local, or host:<name>. */
  host: string | null;
  /** The node (supervisor) whose starter launched it or whose fetcher watches it (lib/nodes/). */
  node: string | null;
  reason: string | null;
  attempt: number;
  retries: number;
  run: number;
  pid: number | null;
  queuedAt: number | null;
  grantedAt: number | null;
  startedAt: number | null;
  endedAt: number | null;
  exitCode: number | null;
  result: unknown;
  steps: StepState[];
  cancelRequested: boolean;
  retryAt: number | null;
  deadline: number | null;
  runlog: string | null;
  spec: JobSpec | null;
  raw: unknown;
  dir: string | null;
  /** How often it was run again by hand (lua/retry-N.lua), and when last. */
  manualRetries: number;
  retriedAt: number | null;
  /** Downloads that failed in its last run that fetched them; null: none failed. */
  downloads: DownloadsNote | null;
  /** A sweep's job: the sweep's id (its first job's id) and the job's row; else null. */
  sweep: string | null;
  params: Record<string, string> | null;
}

export function parseJobRecord(hash: Record<string, string>): JobRecord | null {
  if (!hash || !hash.id) return null;
  const num = (key: string) => (hash[key] === undefined || hash[key] === '' ? null : Number(hash[key]));
  return {
    id: hash.id,
    name: hash.name ?? '',
    classType: hash.classType ?? '?',
    state: (hash.state ?? 'queued') as JobState,
    file: hash.file ?? '',
    baseDir: hash.baseDir ?? '',
    location: hash.location || null,
    // A compacted record whose run is folded in (soleRun) ran where it was placed: no host field.
    host: hash.host || (hash.soleRun === '1' ? hash.location || null : null),
    node: hash.node || null,
    reason: hash.reason || null,
    attempt: num('attempt') ?? 1,
    retries: num('retries') ?? 0,
    run: num('run') ?? 0,
    pid: num('pid'),
    queuedAt: num('queuedAt'),
    grantedAt: num('grantedAt'),
    startedAt: num('startedAt'),
    endedAt: num('endedAt'),
    exitCode: num('exitCode'),
    result: parseJson(hash.result),
    steps: parseSteps(parseJson(hash.steps)),
    cancelRequested: Boolean(hash.cancelRequested),
    retryAt: num('retryAt'),
    deadline: num('deadline'),
    runlog: hash.runlog || null,
    spec: parseJson(hash.spec) as JobSpec | null,
    raw: parseJson(hash.raw),
    dir: hash.dir || null,
    manualRetries: num('manualRetries') ?? 0,
    retriedAt: num('retriedAt'),
    downloads: downloadsNote(parseJson(hash.downloads)),
    sweep: hash.sweep || null,
    params: hash.sweep ? parseRow(hash.params) : null,
  };
}

/**
 * Steps as recorded: objects while the job runs, or, once it is compacted (lua/compactJobs-N.lua),
 * [label, state, startedAt, took (ms), exitCode] arrays.
 */
function parseSteps(value: unknown): StepState[] {
  if (!Array.isArray(value)) return [];
  return value.map((s): StepState => {
    if (!Array.isArray(s)) return s as StepState;
    const [label, state, startedAt, took, exitCode] = s as unknown[];
    const num = (v: unknown) => (typeof v === 'number' ? v : null);
    const started = num(startedAt);
    const endedAt = started !== null && num(took) !== null ? started + num(took)! : null;
    return { label: typeof label === 'string' ? label : '', state: (typeof state === 'string' ? state : 'pending') as StepStateName, startedAt: started, endedAt, exitCode: num(exitCode) };
  });
}

/** A downloads note of the right shape, or null (a record is data: a corrupt or forged one must not break `show`). */
function downloadsNote(value: unknown): DownloadsNote | null {
  if (value === null || typeof value !== 'object') return null;
  const { run, failed } = value as { run?: unknown; failed?: unknown };
  if (typeof run !== 'number' || !Array.isArray(failed)) return null;
  const entries = failed.filter((f): f is DownloadFailure => f !== null && typeof f === 'object' && typeof f.file === 'string' && typeof f.reason === 'string');
  return entries.length ? { run, failed: entries.map(({ file, reason }) => ({ file, reason })) } : null;
}

/** JSON from Redis is data: parsed, never evaluated; a corrupt value reads as null. */
export function parseJson(text: string | undefined | null): unknown {
  if (text === undefined || text === null || text === '') return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}
