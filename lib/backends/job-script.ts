import { shellPath, shq } from '../util/shell.js';
import type { JobSpec, Step } from '../jobfile/job-spec.js';
import { INTERNAL_DIR, outputFile } from '../runtime/layout.js';
import { HOST_CLOCK_SH } from './remote/lease.js';
import { ensureWatchdogSh } from './remote/watchdog.js';

// A job's Order becomes one POSIX sh script, run by the launcher (locally) or by sh on a remote
// host: the job's own detached process, which records its progress in the run log itself, so a
// supervisor that dies loses nothing and finds the record when it comes back.
//
// Lines it appends (besides the launcher's F/R lines):
//   D <run> <step> <exit code> <ms>   a step that is not the last one ended
//   X <run> <exit code> [r]           the script exited (an EXIT trap, so `exit` in a step counts);
//                                     r: the last step leaves return data to collect
//   N <run> <age>                     remote: the launch reached the host <age> centiseconds (host
//                                     clock) after it was sent, later than the lease allows; the
//                                     run will never start there (see remote/lease.ts)
//
// Each Run step but the last runs in a subshell, so `cd`, variables and `exit` stay inside it;
// the last one runs in the script's own shell (nothing follows it, and a job of one `Run: true`
// then costs no process beyond the shell). Commands are passed through eval of a quoted variable,
// so no command text can change the script's structure.

export interface ScriptContext {
  runId: string;
  runLog: string;
  jobId: string;
  run: number;
  attempt: number;
  jobDir: string;
  /** The node binary and step runner used for Function steps. */
  node: string;
  stepRunner: string;
  /** Shell expression for milliseconds since the epoch. */
  clock: string;
  /**
   * Remote: started by the remote launch script rather than the launcher, so the script writes
   * its own start line (F, with the launch script's clock reading JM_LAUNCHED_AT) and, at exit, a
   * status file; and it lives by its host's lease (remote/lease.ts). Paths may start with ~/
   * (the remote user's home); JM_JOB_DIR is where it was started.
   */
  remote?: RemoteLease;
}

/** What a remote run needs to live by its host's lease (see remote/lease.ts, remote/watchdog.ts). */
export interface RemoteLease {
  /** The host's base directory (lease, live/, frozen/, the watchdog). */
  base: string;
  /** The lease, in centiseconds of the host clock. */
  leaseCs: number;
  /** A host clock stamp the starter received before it sent this launch (and recorded it). */
  sentAfter: number;
}

export { INTERNAL_DIR, outputFile };
export const GNU_CLOCK = '$(date +%s%3N)';

/** Whether getReturnData() has anything to read: the last step has Outputs or is a function. */
export function returnsData(spec: JobSpec): boolean {
  const last = spec.order[spec.order.length - 1];
  return last.kind === 'function' || last.outputs.length > 0;
}

/** Whether the job needs its internal directory (a spec copy for Function steps, output files). */
export function needsInternalDir(spec: JobSpec): boolean {
  return spec.order.some((step) => step.kind === 'function' || step.outputs.length > 0);
}

export function buildJobScript(spec: JobSpec, ctx: ScriptContext): string {
  const env: Record<string, string> = {
    JM_JOB_ID: ctx.jobId,
    JM_JOB_NAME: spec.name,
    JM_RUN: String(ctx.run),
    JM_ATTEMPT: String(ctx.attempt),
    ...(ctx.remote ? {} : { JM_JOB_DIR: ctx.jobDir }),
    ...spec.env,
  };
  // r: the fetcher has something to collect at the end (return data, or remote Downloads).
  const flag = returnsData(spec) || (ctx.remote && (spec.remote?.downloads.length ?? 0) > 0) ? ' r' : '';
  // The script's own variables are JM_ names, which a job's Env may not use (job-spec.ts), and
  // every expansion of them is quoted: no Env value (IFS included) can bend the script.
  for (const name of Object.keys(env)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new Error(`${JSON.stringify(name)} is not a name an environment variable can have`);
  }
  const lines = [
    `export ${Object.entries(env).map(([k, v]) => `${k}=${shq(v)}`).join(' ')}`,
    `JM_L=${shellPath(ctx.runLog)} JM_R=${shq(ctx.runId)}`,
  ];
  if (ctx.remote) {
    const { base, leaseCs, sentAfter } = ctx.remote;
    lines.push(
      'export JM_JOB_DIR="$PWD"',
      `JM_B=${shellPath(base)}`,
      HOST_CLOCK_SH,
      'jm_now',
      // A launch that reaches the host later than the lease allows (held in a partition, say)
      // must not start: the supervisor may have given the run up and started it elsewhere. It
      // takes the run's claim first, so that no other copy of the launch starts it either.
      `if [ "$JM_NOW" -lt ${sentAfter} ] || [ $((JM_NOW - ${sentAfter})) -gt ${leaseCs} ]; then`,
      `  (set -C; echo refused >"${INTERNAL_DIR}/claim-$JM_R") 2>/dev/null && echo "N $JM_R $((JM_NOW - ${sentAfter}))" >>"$JM_L"; exit 0`,
      'fi',
      // The run's claim, made by the detached job itself as its first act (noclobber: exclusive),
      // holding its pid. A claim that exists means this run started; recovery, finding none,
      // makes it itself, after which this run can never start (see remote/host-launcher.ts).
      `set -C; echo "$$" 2>/dev/null >"${INTERNAL_DIR}/claim-$JM_R" || exit 0; set +C`,
      // Registered for the watchdog before it looks for one (watchdog.ts says why), and the
      // launch renews the lease it was sent under (the starter counted on it: lease.ts).
      'echo "$$" >"$JM_B/live/$JM_R"',
      'JM_S=0; [ -f "$JM_B/lease" ] && read JM_S <"$JM_B/lease"',
      'case $JM_S in \'\'|*[!0-9]*) JM_S=0;; esac',
      `if [ "$JM_S" -lt ${sentAfter} ] || [ "$JM_S" -gt "$JM_NOW" ]; then echo ${sentAfter} >"$JM_B/lease"; fi`,
      ensureWatchdogSh('$JM_B', String(leaseCs)),
      'echo "F $JM_R $$ $JM_LAUNCHED_AT" >>"$JM_L"',
      // The status file is written in one write of a few bytes while the job's process still
      // lives: a poll that finds the process gone finds it whole (or empty, after a kill -9 at
      // that very moment: "gone"). No rename, so no `mv` process per job.
      `trap 'JM_RC=$?; echo "X $JM_R $JM_RC${flag}" >>"$JM_L"; echo "$JM_RC" >"$JM_JOB_DIR/${INTERNAL_DIR}/status"; : >"$JM_B/live/$JM_R"' EXIT`,
    );
  } else {
    lines.push(`trap 'echo "X $JM_R $?${flag}" >>"$JM_L"' EXIT`);
  }
  const last = spec.order.length - 1;
  spec.order.forEach((step, i) => {
    const redirect = stepRedirect(step, i);
    const command = step.kind === 'run'
      ? `JM_C=${shq(step.run)}; ${i === last ? 'eval "$JM_C"' : '( eval "$JM_C" )'}${redirect}`
      : `${ctx.remote ? ctx.node : shq(ctx.node)} ${shellPath(ctx.stepRunner)} "$JM_JOB_DIR" ${i}${redirect}`;
    if (i === last) lines.push(command);
    else lines.push(`${command}; JM_S=$?; echo "D $JM_R ${i} $JM_S${ctx.clock ? ` ${ctx.clock}` : ''}" >>"$JM_L"; [ "$JM_S" = 0 ] || exit "$JM_S"`);
  });
  return lines.join('\n') + '\n';
}

function stepRedirect(step: Step, i: number): string {
  const log = step.log ? shq(step.log) : null;
  if (step.kind === 'run' && step.outputs.length > 0) return ` >${shq(outputFile(i, 'run'))}${log ? ` 2>>${log}` : ''}`;
  return log ? ` >>${log} 2>&1` : '';
}
