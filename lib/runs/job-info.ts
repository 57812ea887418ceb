import type { JobSpec } from '../jobfile/job-spec.js';
import { isJobPid } from '../util/process.js';
import type { Store } from '../store/store.js';

// What the fetcher reads of a job record to look at its current run (one HMGET per job, the
// fields in JOB_INFO_FIELDS), parsed defensively: a record is data from Redis, and a corrupt or
// forged one must fail that job, never the fetcher.

export interface JobInfo {
  id: string;
  state: string;
  run: number;
  classType: string;
  spec: JobSpec | null;
  /** The run's process group (local: the job's shell; remote: on its host). */
  pid: number | null;
  startedAt: number | null;
  deadline: number | null;
  cancelRequested: boolean;
  timedOut: boolean;
  killAt: number | null;
  /** Which starter incarnation (local) or host (remote) reported the run's start. */
  runlog: string | null;
  pollMs: number;
  timeoutMs: number | null;
  location: string | null;
  /** Where the current run holds its slot: local, or host:<name>. */
  host: string | null;
}

export const JOB_INFO_FIELDS = ['state', 'run', 'classType', 'spec', 'pid', 'startedAt', 'deadline', 'cancelRequested', 'timedOut', 'killAt', 'runlog', 'pollMs', 'timeoutMs', 'location', 'host'];

export function parseJobInfo(id: string, values: (string | null)[]): JobInfo | null {
  const [state, run, classType, spec, pid, startedAt, deadline, cancelRequested, timedOut, killAt, runlog, pollMs, timeoutMs, location, host] = values;
  if (!state) return null;
  const num = (v: string | null) => (v === null || v === '' ? null : Number(v));
  let parsed: JobSpec | null = null;
  try {
    parsed = spec ? (JSON.parse(spec) as JobSpec) : null;
  } catch {
    parsed = null;
  }
  // A spec of another shape (a corrupt or forged record) counts as none.
  if (parsed && (typeof parsed !== 'object' || !Array.isArray(parsed.order) || typeof parsed.modules !== 'object')) parsed = null;
  return {
    id, state, run: Number(run ?? 0), classType: classType ?? '?', spec: parsed, startedAt: num(startedAt), deadline: num(deadline),
    cancelRequested: Boolean(cancelRequested), timedOut: Boolean(timedOut), killAt: num(killAt), runlog, pollMs: num(pollMs) ?? 30_000,
    // A pid from Redis is only kept if it can be a job's own process group.
    pid: isJobPid(num(pid)) ? num(pid) : null,
    timeoutMs: num(timeoutMs), location, host,
  };
}

/** The label of each step of a spec ('' where a corrupt spec has none). */
export function stepLabels(spec: JobSpec | null): string[] {
  return Array.isArray(spec?.order) ? spec.order.map((step) => (typeof step?.label === 'string' ? step.label : '')) : [];
}

/** The JobInfo of each id that has a record (one HMGET per job, in one round trip). */
export async function loadJobInfo(store: Store, ids: string[]): Promise<Map<string, JobInfo>> {
  const infos = new Map<string, JobInfo>();
  if (ids.length === 0) return infos;
  const rows = await store.getFields(ids, JOB_INFO_FIELDS);
  ids.forEach((id, i) => {
    const info = parseJobInfo(id, rows[i]);
    if (info) infos.set(id, info);
  });
  return infos;
}
