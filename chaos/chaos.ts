import { StopSignal } from '../lib/util/stop-signal.js';
import { seededRandom } from '../spec/support/random.js';
import { World } from './world.js';
import { Workload, KINDS, type JobKind } from './workload.js';
import { FaultInjector, FAULT_KINDS, type FaultKind } from './faults.js';
import { settle } from './settle.js';
import { runChecks, type Check } from './checks.js';
import { gatherEvidence, keepEvidence, tally, type Tally } from './evidence.js';

// One chaos run, start to end, for `npm run chaos` (chaos/run.ts) and the test suite
// (spec/chaos.spec.ts):
//
//   set up the world ─▶ workload waves ┐ until the --minutes budget is spent (setup included)
//                       fault injector ┘
//   ─▶ calm (every fault ended) ─▶ settle (bounded by SETTLE_MS) ─▶ checks ─▶ tear down
//
// The workload and the injector draw from two generators seeded from one seed, so a seed replays
// the same schedule of jobs and faults (their timing against the system's own is not replayed).

/** The most the run waits, after the faults stop, for every job to end and every instance to go. */
export const SETTLE_MS = 180_000;
/** Tearing down (supervisor stop, sshd and redis-server kills) and slack for a slow machine. */
export const TEARDOWN_MS = 60_000;

export interface ChaosOptions {
  seed: number;
  minutes: number;
  log: (text: string) => void;
  /** Supervisors (nodes) sharing the run's Redis (`--nodes N`, default 1). */
  nodes?: number;
  /** Interrupts the run (Ctrl-C): it tears down what it started and rejects. */
  signal?: AbortSignal;
}

export interface ChaosReport extends Tally {
  seed: number;
  minutes: number;
  nodes: number;
  elapsedMs: number;
  queued: Map<JobKind, number>;
  queueFailures: number;
  faults: Map<FaultKind, number>;
  settled: boolean;
  checks: Check[];
  ok: boolean;
  /** Where the evidence of a failed run was kept (null when every check held). */
  evidenceDir: string | null;
}

export async function runChaos({ seed, minutes, log, signal, nodes = 1 }: ChaosOptions): Promise<ChaosReport> {
  const started = Date.now();
  const world = await World.create(log, nodes);
  try {
    const { ws } = world;
    for (const node of world.nodes) await world.startNode(node);
    const stop = new StopSignal();
    const workload = new Workload({ ws, ledger: world.ledger, random: seededRandom(seed ^ 0x5bd1e995), hostNames: world.hostNames, log });
    const faults = new FaultInjector(world, seededRandom(seed), log, seededRandom(seed ^ 0x2545f491));
    const budget = setTimeout(() => stop.stop(), Math.max(0, started + minutes * 60_000 - Date.now()));
    signal?.addEventListener('abort', () => stop.stop(), { once: true });
    log(`chaos: workload and faults for ${Math.round((started + minutes * 60_000 - Date.now()) / 1000)}s`);
    try {
      await Promise.all([workload.run(stop), faults.run(stop)]);
    } finally {
      clearTimeout(budget);
    }
    log(`chaos: faults stopped after ${workload.total} jobs queued; ending every fault still in effect`);
    await faults.calm();
    if (signal?.aborted) throw new Error('interrupted');
    for (const node of world.nodes) if (!node.supervisor?.running) await world.startNode(node);
    const store = await ws.store();
    const settled = await settle(world, store, Date.now() + SETTLE_MS, log, signal);
    if (signal?.aborted) throw new Error('interrupted');
    const evidence = await gatherEvidence(store, world.ledger.read());
    const crashes = faults.counts.get('actor crash') ?? 0;
    const checks = await runChecks(world, store, evidence, faults.errors, crashes);
    const ok = checks.every((c) => c.ok);
    return {
      seed, minutes, nodes, elapsedMs: Date.now() - started,
      queued: new Map(KINDS.map((k) => [k, workload.queued.get(k) ?? 0])), queueFailures: workload.queueFailures,
      ...tally(evidence),
      faults: new Map(FAULT_KINDS.map((k) => [k, faults.counts.get(k) ?? 0])),
      settled, checks, ok, evidenceDir: ok ? null : keepEvidence(world, evidence, seed),
    };
  } finally {
    log('chaos: tearing down');
    await world.dispose();
  }
}
