import { cpSync, mkdirSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { logFilesInOrder } from '../lib/util/log-rotation.js';
import type { JobRecord, RunEntry } from '../lib/store/job-record.js';
import type { Store } from '../lib/store/store.js';
import type { LedgerLine } from './ledger.js';
import { tempDir } from '../spec/support/temp.js';
import type { World } from './world.js';

// What the checks judge, read once everything has settled: every job record, every job's runs
// (job:<id>:runs) and the ledger, by job. When a check fails, it is kept, with the supervisor's
// log and the run logs, in a directory that outlives the run's teardown.

/**
 * The reason of a run ended because its host was given up on (unreachable for HostDownAfter).
 * Not "host … is down" (the starter refusing a launch): no job is granted to a host marked down,
 * so that reason means a grant or a launch went by an out-of-date view of the host.
 */
export const HOST_GIVEN_UP = /unreachable for/;

export interface Evidence {
  jobs: JobRecord[];
  runs: Map<string, RunEntry[]>;
  ledger: Map<string, LedgerLine[]>;
}

export async function gatherEvidence(store: Store, lines: LedgerLine[]): Promise<Evidence> {
  const ids = await store.jobIds(0, 1_000_000);
  const jobs = (await store.getJobs(ids)).filter((r): r is JobRecord => r !== null).sort((a, b) => Number(a.id) - Number(b.id));
  const runs = new Map<string, RunEntry[]>();
  for (const job of jobs) runs.set(job.id, await store.runsOf(job.id));
  const ledger = new Map<string, LedgerLine[]>();
  for (const line of lines) ledger.set(line.id, [...(ledger.get(line.id) ?? []), line]);
  return { jobs, runs, ledger };
}

/** What the printout counts: jobs by final state, runs by outcome, ledger lines. */
export interface Tally {
  byState: Map<string, number>;
  runs: Map<string, number>;
  /** Runs ended because their host was given up on (unreachable for HostDownAfter). */
  hostGivenUp: number;
  ledgerLines: number;
}

export function tally(evidence: Evidence): Tally {
  const byState = new Map<string, number>();
  for (const job of evidence.jobs) byState.set(job.state, (byState.get(job.state) ?? 0) + 1);
  const runs = new Map<string, number>();
  let hostGivenUp = 0;
  for (const r of [...evidence.runs.values()].flat()) {
    runs.set(r.outcome, (runs.get(r.outcome) ?? 0) + 1);
    if (HOST_GIVEN_UP.test(r.reason)) hostGivenUp++;
  }
  return { byState, runs, hostGivenUp, ledgerLines: [...evidence.ledger.values()].reduce((n, lines) => n + lines.length, 0) };
}

/** Copies the evidence, the state directory (logs, run logs) and the ledger; returns where. */
export function keepEvidence(world: World, evidence: Evidence, seed: number): string {
  const dir = tempDir(`jm-chaos-evidence-${seed}-`);
  const jobs = evidence.jobs.map((job) => ({ ...job, spec: undefined, raw: undefined, runs: evidence.runs.get(job.id), ledger: evidence.ledger.get(job.id) ?? [] }));
  writeFileSync(join(dir, 'jobs.json'), JSON.stringify(jobs, null, 1));
  cpSync(world.ledger.path, join(dir, 'ledger'));
  // Each node's state directory: state/ for the first (as with one node), state-<node>/ for others.
  for (const [i, node] of world.nodes.entries()) {
    const into = join(dir, i === 0 ? 'state' : `state-${node.name}`);
    mkdirSync(into);
    for (const name of ['runs', ...logFilesInOrder(join(node.stateDir, 'supervisor.log')).map((file) => basename(file))]) {
      try {
        cpSync(join(node.stateDir, name), join(into, name), { recursive: true });
      } catch {
        // not there: nothing to keep
      }
    }
  }
  return dir;
}
