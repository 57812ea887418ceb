import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

// The job files a bench queues: N files in a directory of their own, written before the clock
// starts and flushed to disk (so that the kernel does not write them back in the middle of a run).

export const LOCAL_TRUE = 'Order: [{Run: "true"}]\n';

/** A Thread job whose one Function step does nothing (its module sits beside the files). */
export const THREAD_NOOP = 'ClassType: Thread\nModules: {m: noop.mjs}\nOrder: [{Function: noop, Module: m}]\n';

export function remoteTrue(hostName: string): string {
  return `ClassType: Remote\nHostname: ${hostName}\nOrder: [{Run: "true"}]\n`;
}

/** Writes `count` copies of `text` as DIR/<prefix><i>.yaml; returns DIR. */
export function writeJobFiles(dir: string, count: number, text: string, prefix = 'j'): string {
  mkdirSync(dir, { recursive: true });
  for (let i = 0; i < count; i++) writeFileSync(join(dir, `${prefix}${i}.yaml`), text);
  if (text === THREAD_NOOP) writeFileSync(join(dir, 'noop.mjs'), 'export function noop() {}\n');
  spawnSync('sync');
  return dir;
}
