import { closeSync, openSync, writeSync } from 'node:fs';
import { format } from 'node:util';
import { runFunctionStep } from '../../runtime/function-step.js';

// The piscina task for Thread jobs: one Function step in a pool thread. What the function
// prints with console goes to the step's log file, as it would for a Local job.

export interface ThreadTask {
  jobDir: string;
  step: number;
  logFile: string;
}

export default async function runThreadTask(task: ThreadTask): Promise<void> {
  const fd = openSync(task.logFile, 'a');
  const saved = { log: console.log, info: console.info, warn: console.warn, error: console.error, debug: console.debug };
  const write = (...args: unknown[]) => {
    writeSync(fd, format(...args) + '\n');
  };
  console.log = console.info = console.warn = console.error = console.debug = write;
  try {
    await runFunctionStep(task.jobDir, task.step);
  } catch (err) {
    write(err instanceof Error ? err.stack ?? err.message : String(err));
    throw err;
  } finally {
    Object.assign(console, saved);
    closeSync(fd);
  }
}
