import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { format } from 'node:util';
import { INTERNAL_DIR } from '../../runtime/layout.js';
import { callFunctionStep, writeStepOutput, type JobFile } from '../../runtime/function-step.js';

// The piscina task for Thread jobs: one Function step in a pool thread. What the function
// prints with console goes to the step's log file, as it would for a Local job.
//
// The job comes in the task itself, and what the step gave goes back as the task's result (as
// JSON text, as a runner stores it: the same values survive, and a string is cheap to pass): a
// no-op step touches no file. The job's directory and log file are made the first time they are
// needed (the function prints, reads an earlier step's output, or asks for this.jobDir); a step
// whose named Outputs a later step may read leaves them in their file, as every runner does.

export interface ThreadTask {
  job: JobFile;
  jobDir: string;
  step: number;
  logFile: string;
}

export default async function runThreadTask(task: ThreadTask): Promise<string> {
  let fd: number | null = null;
  const dir = () => {
    mkdirSync(task.jobDir, { recursive: true });
    return task.jobDir;
  };
  const saved = { log: console.log, info: console.info, warn: console.warn, error: console.error, debug: console.debug };
  const write = (...args: unknown[]) => {
    if (fd === null) {
      mkdirSync(dirname(task.logFile), { recursive: true });
      fd = openSync(task.logFile, 'a');
    }
    writeSync(fd, format(...args) + '\n');
  };
  console.log = console.info = console.warn = console.error = console.debug = write;
  try {
    const stored = await callFunctionStep(task.job, task.step, dir);
    const order = task.job.spec.order;
    if (task.step < order.length - 1 && order[task.step].outputs.length > 0) {
      mkdirSync(join(dir(), INTERNAL_DIR), { recursive: true });
      writeStepOutput(task.jobDir, task.step, stored);
    }
    return stored;
  } catch (err) {
    write(err instanceof Error ? err.stack ?? err.message : String(err));
    throw err;
  } finally {
    Object.assign(console, saved);
    if (fd !== null) closeSync(fd);
  }
}
