import type { Config } from '../config/config.js';

// What the command line needs from outside lib/: the supervisor (it lives in actors/, which
// builds on lib/, so lib/ must not import it) and the path of the executable's entry point (the
// detached start runs it again). The entry point (bin/jobmanager.ts) composes the two.

/** The part of actors/supervisor.ts's Supervisor that commands use. */
export interface SupervisorHandle {
  start(): Promise<void>;
  /** Idempotent and bounded. */
  stop(): Promise<void>;
  /** Where the web page listens, once started (null: it is off). */
  readonly webUrl: string | null;
}

export interface SupervisorOptions {
  /** Echo the log to stderr (a supervisor in the foreground). */
  echo: boolean;
}

export interface CliRuntime {
  /** The script that `node` runs for `jobmanager` (the detached start spawns it again). */
  entry: string;
  createSupervisor(config: Config, options: SupervisorOptions): Promise<SupervisorHandle>;
}
