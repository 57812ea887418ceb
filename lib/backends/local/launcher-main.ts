// The local launcher, a program of its own: starts local jobs for the starter and records what
// it did in the run log. lib/backends/local/launcher.ts starts it (one per starter incarnation,
// "epoch") and feeds it on stdin.
//
//   starter ──(stdin: run id \0 job dir \0 script \0)──> launcher ──spawn──> sh -c script (its own
//                                                           │                 session and process
//                                                           │                 group, in the job's
//                                                           │                 directory)
//                                                           └──appends──> run log <──appends── job
//
// Run log lines (one write each, O_APPEND, so lines from many processes never interleave):
//   P <launcher pid> <ms>        the launcher started
//   F <run> <pid> <ms>           spawned: the job's process (and process group) id
//   K <run> <reason>             the job could not be started (no directory, spawn failed)
//   R <run> <wait status> <ms>   reaped: the job's shell ended with this wait(2) status
//   E <ms>                       stdin closed: this launcher will start nothing more
//   Q <ms>                       every job it started has been reaped; the launcher exits
// The job script itself appends D (a step done) and X (exit) lines; see lib/backends/job-script.ts,
// and lib/runs/run-log.ts for the reader.
//
// The launcher runs in a session of its own (its parent spawns it detached), so it outlives a
// supervisor that dies: it keeps reaping (and recording) its jobs until the last one ends. It
// never stops a job. It is a separate small process, not the supervisor: it holds none of the
// supervisor's connections or secrets (its environment is the jobs' one, lib/backends/job-env.ts),
// and a spawn by node's child_process forks the process that asks for it, which costs more the
// bigger that process is. Where native/spawn.c was built at install it spawns with posix_spawn
// instead (a vfork: nothing copied), about 0.4 ms of its CPU per job rather than 3.3-3.7 ms.
//
// Node built-ins only, and small files of its own: it is started once per epoch and should be
// up in the time node itself needs. Variables that would change how node starts it (NODE_OPTIONS,
// NODE_EXTRA_CA_CERTS) reach it set aside, and are handed back to the jobs (launcher-env.ts).
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { constants } from 'node:os';
import { getSystemErrorMap } from 'node:util';
import { jobEnvironmentOf } from './launcher-env.js';
import { nativeSpawn, type NativeSpawn } from './native-spawn.js';

const SHELL = '/bin/sh';

/** A spawn refused for want of processes (EAGAIN) is tried again, this many times, waiting longer each time. */
const SPAWN_TRIES = 20;
const SPAWN_RETRY_MS = 50;

const runLogPath = process.argv[2];
if (!runLogPath) {
  process.stderr.write('usage: launcher-main.js RUN_LOG\n');
  process.exit(2);
}

// A supervisor that died leaves stderr a broken pipe: a warning that cannot be written is dropped,
// never a crash that would leave the jobs' ends unrecorded.
process.stderr.on('error', () => {});
// Its own session has no terminal, but a hang-up or interrupt sent to it must not end it.
process.on('SIGHUP', () => {});
process.on('SIGINT', () => {});

const runLog = openSync(runLogPath, 'a', 0o600);
const jobEnv = jobEnvironmentOf(process.env);

function record(line: string): void {
  try {
    writeSync(runLog, `${line}\n`);
  } catch (err) {
    warn(`cannot write to ${runLogPath}: ${reasonOf(err)} (lost: ${line})`);
  }
}

function warn(text: string): void {
  process.stderr.write(`${text}\n`);
}

function reasonOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Jobs spawned and not yet reaped, and spawns waiting to be tried again. */
let inFlight = 0;
let inputOpen = true;

function quitWhenDone(): void {
  if (inputOpen || inFlight > 0) return;
  record(`Q ${Date.now()}`);
  closeSync(runLog);
  // Nothing else holds the event loop now (stdin has ended), so the process exits by itself.
}

/** wait(2)'s status word, as run-log.ts decodes it (node gives the exit code or the signal). */
function waitStatus(code: number | null, signal: NodeJS.Signals | null): number {
  if (signal) return constants.signals[signal] ?? 0x7f;
  return (code ?? 0) << 8;
}

function launch(run: string, dir: string, script: string, attempt = 1): void {
  const out = openJobLog(run, dir);
  if (out === null) return;
  inFlight++;
  startJob(run, dir, script, out, {
    started(pid) {
      record(`F ${run} ${pid} ${Date.now()}`);
    },
    failed(err) {
      inFlight--;
      spawnFailed(run, dir, script, attempt, err);
      quitWhenDone();
    },
    ended(status) {
      record(`R ${run} ${status} ${Date.now()}`);
      inFlight--;
      quitWhenDone();
    },
  });
  closeSync(out);
}

/** What becomes of one spawn: started, then ended; or failed (no process was made). */
interface JobEvents {
  started(pid: number): void;
  failed(err: NodeJS.ErrnoException): void;
  /** Its wait(2) status. */
  ended(status: number): void;
}

/**
 * Run `run`: `sh -c script` in `dir`, the leader of a session and process group of its own (apart from the
 * launcher's, so that a kill of its group reaches all of it), stdin empty, stdout and stderr `out`.
 */
const startJob = nativeSpawn ? startNatively(nativeSpawn) : startWithNode;

function startWithNode(run: string, dir: string, script: string, out: number, on: JobEvents): void {
  let child: ChildProcess;
  try {
    // detached: setsid() in the child.
    child = spawn(SHELL, ['-c', script], { cwd: dir, detached: true, stdio: ['ignore', out, out], env: jobEnv });
  } catch (err) {
    // Errors that node throws at once (E2BIG: a script longer than one argument may be; ENOMEM).
    on.failed(err as NodeJS.ErrnoException);
    return;
  }
  if (child.pid === undefined) {
    // Errors that node reports a moment later (ENOENT, EACCES, EAGAIN): no process was made.
    child.once('error', (err: NodeJS.ErrnoException) => on.failed(err));
    return;
  }
  const pid = child.pid;
  on.started(pid);
  child.once('exit', (code, signal) => on.ended(waitStatus(code, signal)));
  child.on('error', (err) => warn(`job ${run} (pid ${pid}): ${reasonOf(err)}`));
}

function startNatively(native: NativeSpawn): typeof startWithNode {
  const envp = Object.entries(jobEnv).flatMap(([name, value]) => (value === undefined ? [] : [`${name}=${value}`]));
  const running = new Map<number, JobEvents>();
  // A signal listener does not keep node running; this timer does, while jobs run (and reaps
  // once a second besides, which costs nothing and needs no signal).
  let keepAlive: NodeJS.Timeout | undefined;
  const reap = () => {
    const ended = native.reap();
    for (let i = 0; i < ended.length; i += 2) {
      const on = running.get(ended[i]);
      running.delete(ended[i]);
      on?.ended(ended[i + 1]);
    }
    if (running.size === 0 && keepAlive) {
      clearInterval(keepAlive);
      keepAlive = undefined;
    }
  };
  process.on('SIGCHLD', reap);
  return (_run, dir, script, out, on) => {
    const pid = native.spawn(SHELL, [SHELL, '-c', script], envp, dir, out);
    if (pid < 0) {
      on.failed(systemError(pid));
      return;
    }
    running.set(pid, on);
    keepAlive ??= setInterval(reap, 1000);
    // Reaped on a later turn of the event loop at the earliest: F is always written before R.
    on.started(pid);
  };
}

/** A libuv error code (-errno) as the error node would have thrown for it. */
function systemError(code: number): NodeJS.ErrnoException {
  const [name, text] = getSystemErrorMap().get(code) ?? [`E${-code}`, `error ${-code}`];
  return Object.assign(new Error(`${text} (${name})`), { errno: code, code: name });
}

/**
 * The job's log, opened for appending, to be its stdout and stderr. The manager makes the job's
 * directory ahead of the start; if it is missing it is made here (one level: its parent must
 * exist). A run whose log cannot be opened gets its K line, and null.
 */
function openJobLog(run: string, dir: string): number | null {
  const path = `${dir}/job.log`;
  try {
    return openSync(path, 'a', 0o666);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      record(`K ${run} cannot open ${path}: ${describe(err)}`);
      return null;
    }
  }
  try {
    mkdirSync(dir, { mode: 0o755 });
    return openSync(path, 'a', 0o666);
  } catch (err) {
    record(`K ${run} cannot make the job directory ${dir}: ${describe(err)}`);
    return null;
  }
}

function spawnFailed(run: string, dir: string, script: string, attempt: number, err: NodeJS.ErrnoException): void {
  if (err.code === 'EAGAIN' && attempt < SPAWN_TRIES) {
    // Out of processes for the moment (a limit reached by the jobs running): wait, try again.
    inFlight++;
    setTimeout(() => {
      inFlight--;
      launch(run, dir, script, attempt + 1);
      quitWhenDone();
    }, SPAWN_RETRY_MS * attempt);
    return;
  }
  record(`K ${run} cannot start ${SHELL} in ${dir}: ${describe(err)}`);
}

/** A system error as its text and code: "argument list too long (E2BIG)". */
function describe(err: unknown): string {
  const { errno, code } = err as NodeJS.ErrnoException;
  const text = errno === undefined ? undefined : getSystemErrorMap().get(errno)?.[1];
  return oneLine(text && code ? `${text} (${code})` : reasonOf(err));
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ');
}

record(`P ${process.pid} ${Date.now()}`);

// Requests: three NUL-terminated fields each. A request cut short by the end of input (a starter
// killed mid-write) is dropped: it was never started, and the starter's recovery knows that from
// its missing F or K line.
let buffer = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (text: string) => {
  buffer += text;
  let fields = buffer.split('\0');
  buffer = fields.pop()!;
  const whole = fields.length - (fields.length % 3);
  if (whole < fields.length) {
    buffer = `${fields.slice(whole).join('\0')}\0${buffer}`;
    fields = fields.slice(0, whole);
  }
  for (let i = 0; i < fields.length; i += 3) launch(fields[i], fields[i + 1], fields[i + 2]);
});
const inputEnded = () => {
  if (!inputOpen) return;
  inputOpen = false;
  process.stdin.destroy();
  record(`E ${Date.now()}`);
  quitWhenDone();
};
process.stdin.on('end', inputEnded);
process.stdin.on('error', inputEnded);
