import { AsyncLocalStorage } from 'node:async_hooks';
import { appendFileSync, closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { format } from 'node:util';
import { INTERNAL_DIR } from '../../runtime/layout.js';
import { callFunctionStep, writeStepOutput, type JobFile } from '../../runtime/function-step.js';
import type { TakenJob } from '../../store/types.js';
import { grantedRun } from '../granted.js';
import { RunStopped, StopListener } from './thread-stops.js';

// The piscina task for Thread jobs: one Function step in a pool thread. What the function
// prints with console goes to the step's log file, as it would for a Local job.
//
// The job comes in the task as the starter took it from Granted_Queue (its texts: strings cost
// a copy to send, where a parsed spec costs a structured clone of every object in it) and is
// parsed here; the jobs of a sweep share their spec's text, parsed once per thread (granted.ts).
// What the step gave goes back as the task's result (as JSON text, as a runner stores it). A
// no-op step touches no file: the job's directory and log file are made the first time they are
// needed (the function prints, reads an earlier step's output, or asks for this.jobDir); a step
// whose named Outputs a later step may read leaves them in their file, as every runner does.
//
// A thread runs several tasks at once (concurrentTasksPerWorker: a slot is a job in flight, a
// thread is a core), so console is routed by the task whose code is running: AsyncLocalStorage
// follows each task through its awaits.

export interface ThreadTask {
  taken: TakenJob;
  /** The run's key (id.run) and its row of the stops table (thread-stops.ts). */
  key: string;
  stops: SharedArrayBuffer;
  row: number;
  jobDir: string;
  step: number;
  logFile: string;
}

/** Where the console of the task now running writes. */
interface TaskLog {
  write(text: string): void;
}

const current = new AsyncLocalStorage<TaskLog>();
const listener = new StopListener();
const original = { log: console.log, info: console.info, warn: console.warn, error: console.error, debug: console.debug };
for (const name of Object.keys(original) as (keyof typeof original)[]) {
  console[name] = (...args: unknown[]) => {
    const log = current.getStore();
    if (log) log.write(format(...args) + '\n');
    else original[name](...args);
  };
}

export default async function runThreadTask(task: ThreadTask): Promise<string> {
  const job = grantedRun(task.taken);
  if ('problem' in job) throw new Error(job.problem);
  const file: JobFile = { jobId: job.id, run: job.run, attempt: job.attempt, spec: job.spec, raw: job.raw };
  let fd: number | null = null;
  let done = false;
  const dir = () => {
    mkdirSync(task.jobDir, { recursive: true });
    return task.jobDir;
  };
  const log: TaskLog = {
    write(text) {
      // Printed after the step returned (a timer it left): appended, the file not held open.
      if (done) return appendFileSync(task.logFile, text);
      if (fd === null) {
        mkdirSync(dirname(task.logFile), { recursive: true });
        fd = openSync(task.logFile, 'a');
      }
      writeSync(fd, text);
    },
  };
  return current.run(log, async () => {
    try {
      // Asked to stop (Timeout, cancel), the task ends at once; what the function still had
      // going on is left to finish or not (its prints still reach its log).
      const stopped = listener.register(task.key, task.stops, task.row, 'stopped before it started');
      const stored = await Promise.race([callFunctionStep(file, task.step, dir), stopped]);
      const order = file.spec.order;
      if (task.step < order.length - 1 && order[task.step].outputs.length > 0) {
        mkdirSync(join(dir(), INTERNAL_DIR), { recursive: true });
        writeStepOutput(task.jobDir, task.step, stored);
      }
      return stored;
    } catch (err) {
      if (!(err instanceof RunStopped)) log.write((err instanceof Error ? err.stack ?? err.message : String(err)) + '\n');
      throw err;
    } finally {
      listener.unregister(task.key);
      done = true;
      if (fd !== null) closeSync(fd);
    }
  });
}
