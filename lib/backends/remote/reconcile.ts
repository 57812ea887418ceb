import type { SshConnection } from '../../ssh/connection.js';
import type { Store } from '../../store/store.js';
import { loadJobInfo } from '../../runs/job-info.js';
import { splitRunId } from '../../runs/run-log.js';
import type { Logger } from '../../util/log.js';
import { isJobPid } from '../../util/process.js';
import { shellPath, shq } from '../../util/shell.js';

// The reconcile, when a host answers again (after a session's first renewal) or says its
// watchdog stopped runs (a Z line: the lease lapsed while the fetcher was slow): every run still
// alive there is checked against Redis.
//   - still its job's current run: if the watchdog stopped it, it goes on (SIGCONT): a
//     supervisor that was away longer than the lease costs a run the time it was away, not
//     the run;
//   - given up on meanwhile (the job ran again elsewhere, or failed): killed (SIGKILL to its
//     process group), and its run entry says fenced (fenceRun-1.lua). Its outputs are never
//     collected: the fetcher collects only current runs.
// A run that is neither (it ended by itself and is on its way out) is left alone.
// Each decision is checked again on the next reconcile: a stopped run whose SIGCONT or SIGKILL
// was lost (the connection broke) is still stopped, marked in frozen/, and found again.

export interface HostRun {
  runId: string;
  pid: number;
  /** When the watchdog stopped it (ms, the host's wall clock), or null if it is going. */
  stoppedAt: number | null;
}

export interface Reconciled {
  resumed: string[];
  fenced: string[];
}

/** Lists the runs alive in base directory `base`: "R <run> <pid> [<stopped at ms>]" lines. */
function listScript(base: string): string {
  return [
    `cd ${shellPath(base)} 2>/dev/null || exit 0`,
    'for f in live/*; do',
    '  [ -s "$f" ] || continue',
    '  r=${f#live/}; p=; read p <"$f"',
    "  case $p in ''|*[!0-9]*) continue;; esac",
    '  kill -0 -"$p" 2>/dev/null || kill -0 "$p" 2>/dev/null || continue',
    '  s=; [ -f "frozen/$r" ] && read x s <"frozen/$r"',
    '  echo "R $r $p $s"',
    'done',
    // Marks of runs that ended (killed by someone else while stopped) go.
    'for f in frozen/*; do [ -f "$f" ] || continue; [ -s "live/${f#frozen/}" ] || rm -f "$f"; done',
    'exit 0',
  ].join('\n');
}

export function parseHostRuns(stdout: string): HostRun[] {
  const runs: HostRun[] = [];
  for (const line of stdout.split('\n')) {
    const [kind, runId, pid, stopped] = line.trim().split(' ');
    if (kind !== 'R' || !/^\d+\.\d+$/.test(runId ?? '') || !isJobPid(Number(pid))) continue;
    runs.push({ runId, pid: Number(pid), stoppedAt: stopped && /^\d+$/.test(stopped) ? Number(stopped) : null });
  }
  return runs;
}

export async function reconcileHost(ssh: SshConnection, store: Store, host: string, base: string, log: Logger): Promise<Reconciled> {
  const runs = parseHostRuns((await ssh.exec(listScript(base))).stdout);
  const done: Reconciled = { resumed: [], fenced: [] };
  if (runs.length === 0) return done;
  const infos = await loadJobInfo(store, [...new Set(runs.map((r) => splitRunId(r.runId).jobId))]);
  const actions: string[] = [];
  for (const run of runs) {
    const { jobId, run: number } = splitRunId(run.runId);
    const info = infos.get(jobId);
    const current = info !== undefined && info.run === number && ['granted', 'running'].includes(info.state) && info.host === `host:${host}`;
    if (current) {
      if (run.stoppedAt === null) continue;
      // SIGCONT before the mark goes: a mark left behind only means another SIGCONT.
      actions.push(`kill -CONT -${run.pid} 2>/dev/null || kill -CONT ${run.pid} 2>/dev/null; rm -f ${shq(`frozen/${run.runId}`)}`);
      done.resumed.push(run.runId);
      log.info(`ResultFetcher: job ${jobId} run ${number} on ${host} goes on: its host stopped it at ${time(run.stoppedAt)} (the lease had lapsed), and it is still the job's current run`, { job: jobId });
      continue;
    }
    const note = run.stoppedAt === null
      ? `; found still running on ${host} when it answered again, and killed`
      : `; stopped by its lease on ${host} at ${time(run.stoppedAt)}, and killed when the host answered again`;
    // Recorded before the kill: a kill lost with the connection is made on the next reconcile.
    if (!(await store.fenceRun(jobId, number, note, run.stoppedAt)) && run.stoppedAt === null) continue;
    actions.push(`kill -KILL -${run.pid} 2>/dev/null || kill -KILL ${run.pid} 2>/dev/null; : >${shq(`live/${run.runId}`)}; rm -f ${shq(`frozen/${run.runId}`)}`);
    done.fenced.push(run.runId);
    log.warn(`ResultFetcher: job ${jobId} run ${number} was still on ${host}${run.stoppedAt === null ? '' : ` (stopped by its lease at ${time(run.stoppedAt)})`}, but the job had moved on: killed (fenced)`, { job: jobId });
  }
  if (actions.length) await ssh.exec([`cd ${shellPath(base)} || exit 0`, ...actions, 'exit 0'].join('\n'));
  return done;
}

/** A time of day, local, to the millisecond. */
function time(ms: number): string {
  const d = new Date(ms);
  return `${d.toTimeString().slice(0, 8)}.${String(d.getMilliseconds()).padStart(3, '0')}`;
}
