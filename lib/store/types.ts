import type { Location } from './keys.js';

// What Store's methods take and return (lib/store/store.ts), beside the records (job-record.ts,
// registry-records.ts) and events (events.ts).

export interface NewJob {
  token: string;
  name: string;
  classType: string;
  file: string;
  baseDir: string;
  raw: unknown;
}

/** A sweep (a job file with `Each:`): one job per row, sharing the rest of the definition. */
export interface NewSweep extends NewJob {
  /** The job definition without `Each`. */
  raw: unknown;
  /** One row per job: variable name → value. */
  rows: Record<string, string>[];
}

/** A Job_Queue entry as the manager reads it (readIntake-2.lua): its id, and the fields asked for. */
export interface IntakeEntry {
  entry: string;
  fields: (string | null)[];
}

export interface RouteDecision {
  entry: string;
  /** null: rejected, with `detail` as the reason. */
  location: Location | null;
  /** The normalised spec JSON when routed; the reason when rejected. */
  detail: string;
  pollMs: number;
  timeoutMs: number | null;
  retries: number;
  /**
   * The job's sweep (its first id), if it is a sweep's: its spec is stored once, on the sweep;
   * `detail` may then be '' (already stored there).
   */
  sweep?: string | null;
}

export interface GrantPool {
  /** The location whose slots it grants: local, host:<name> (its slot set is Keys.slotSet). */
  location: Location;
  limit: number;
  /** Locations whose queued jobs may take this pool's slots, in order. */
  queues: Location[];
}

/** A granted job, as the starter launches it. */
export interface TakenJob {
  id: string;
  run: number;
  attempt: number;
  /** The location whose slot it holds: local, or host:<name>. */
  where: Location;
  spec: string;
  /** The job definition as written (JSON) when its spec uses the `self.yaml` input, else 'null'. */
  raw: string;
  /** A sweep's job: its row (JSON) and its name, to lay over the spec its sweep shares. */
  sweepRow?: { params: string; name: string };
}

export interface RunStarted {
  id: string;
  run: number;
  pid: number;
  startedAt: number;
  epoch: string;
}

/** What enforceLimits (lua/enforceLimits-N.lua) decided for one running job; the fetcher sends the signal. */
export interface LimitVerdict {
  id: string;
  run: number;
  /** null: nothing yet. */
  signal: 'SIGTERM' | 'SIGKILL' | null;
  /** 'cancelled' | 'timed out' (SIGTERM), `still running <grace>ms after SIGTERM` (SIGKILL), null. */
  reason: string | null;
  /** When it is looked at again (its Running_Queue score, already set). */
  nextLookAt: number;
}

export type Outcome = 'succeeded' | 'failed' | 'cancelled' | 'interrupted';

export interface RunFinished {
  id: string;
  run: number;
  outcome: Outcome;
  exitCode: number | null;
  reason: string;
  result: unknown;
  steps: unknown[] | null;
  backoffMs: number;
  startedAt: number | null;
}

/** How full a location is: jobs waiting in Job_Queue:<location>, and slots held. */
export interface LocationLoad {
  location: Location;
  waiting: number;
  used: number;
}

export interface QueueDepths {
  Job_Queue: number;
  Granted_Queue: number;
  Running_Queue: number;
  Delayed: number;
  locations: LocationLoad[];
}

/** A run the fetcher polled and found still running. */
export interface PolledRun {
  id: string;
  run: number;
}
