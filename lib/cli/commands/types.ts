import type { Output } from '../output.js';
import type { CliRuntime } from '../runtime.js';

export interface CommandArgs {
  positionals: string[];
  config: string | undefined;
  json: boolean;
  wait: boolean;
  detach: boolean;
  /** run: leave the EC2 instances running. */
  keepInstances: boolean;
  follow: boolean;
  all: boolean;
  state: string | undefined;
  /** jobs --name: a job's or a sweep's name (or any selector, lib/cli/selectors.ts). */
  name: string | undefined;
  limit: string | undefined;
  timeout: string | undefined;
  step: string | undefined;
  /** purge: only jobs that ended at least this long ago (a duration). */
  olderThan: string | undefined;
  /** purge: list, remove nothing. */
  dryRun: boolean;
  out: Output;
  /** What the entry point provides: the supervisor, and its own path. */
  runtime: CliRuntime;
}

/** A command returns the process exit code. */
export type Command = (args: CommandArgs) => Promise<number>;

export const EXIT = {
  ok: 0,
  /** Some job did not succeed. */
  jobsFailed: 1,
  /** Bad input: a job file, an argument, the config. Nothing was changed. */
  usage: 2,
  /** The machinery is unavailable: Redis, the supervisor, a lock. */
  unavailable: 3,
} as const;
