import { join } from 'node:path';
import type { BenchOptions } from './options.js';
import { BullmqReference } from './bullmq.js';
import { removeDir, tempDir } from '../spec/support/temp.js';

// What every row gets: the options, a temporary directory of its own, and the BullMQ reference
// (its redis-server started the first time a row asks for it, stopped at the end).

export class BenchContext {
  private bull: Promise<BullmqReference> | null = null;
  readonly dir = tempDir('jm-bench-');
  private runs = 0;

  constructor(readonly options: BenchOptions) {}

  /** A fresh directory for one supervisor run (config file, state directory). */
  runDir(name: string): string {
    return join(this.dir, `${name}-${++this.runs}`);
  }

  bullmq(): Promise<BullmqReference> {
    this.bull ??= BullmqReference.start();
    return this.bull;
  }

  /** Progress for the person waiting (stderr: stdout is the table, or the JSON). */
  say(text: string): void {
    process.stderr.write(`bench: ${text}\n`);
  }

  async close(): Promise<void> {
    if (this.bull) await (await this.bull).stop();
    if (!this.options.keep) removeDir(this.dir);
    else this.say(`kept ${this.dir}`);
  }
}
