import { join } from 'node:path';
import { isFinal, type JobRecord } from '../lib/store/job-record.js';
import type { Store } from '../lib/store/store.js';
import { HOST_GIVEN_UP, type Evidence } from './evidence.js';
import { EC2_MAX_INSTANCES, type World } from './world.js';
import { failExitCode, parseJobName } from './workload.js';
import { logMessages, supervisorLog } from '../spec/support/supervisor-log.js';

// The invariants a chaos run must leave true, each checked against what Redis, the ledger, the
// loopback EC2 and the supervisor's log say once everything has settled. A check lists what
// broke it (at most a few lines each, with job ids to look up with `jobmanager show`).

export interface Check {
  name: string;
  ok: boolean;
  problems: string[];
}

/** The exit code an injected `jobmanager debug crash-actor` ends an actor thread with. */
const INJECTED_CRASH_CODE = 70;

export async function runChecks(world: World, store: Store, evidence: Evidence, faultErrors: string[], injectedCrashes: number): Promise<Check[]> {
  return [
    finalStates(evidence),
    outcomes(evidence),
    noRunTwice(evidence),
    noOverlap(evidence),
    succeededOnce(evidence),
    ledgerRunsRecorded(evidence),
    await noSlotTaken(store),
    noInstanceLeft(world),
    actorExits(world, injectedCrashes),
    check('every fault was recovered from (restarts worked)', faultErrors),
  ];
}

function check(name: string, problems: string[]): Check {
  const shown = problems.length > 8 ? [...problems.slice(0, 8), `... and ${problems.length - 8} more`] : problems;
  return { name, ok: problems.length === 0, problems: shown };
}

function describe(job: JobRecord): string {
  return `job ${job.id} (${job.name})`;
}

function finalStates({ jobs }: Evidence): Check {
  return check(`every job in a final state (${jobs.length} jobs)`, jobs.filter((j) => !isFinal(j.state)).map((j) => `${describe(j)} is ${j.state}`));
}

/**
 * Each job ended as its intent says: its failed runs are the ones it fails on purpose (a flaky
 * job its first attempt, a doomed job every one), and it ends succeeded (ok, flaky) or failed
 * after its two attempts (doomed). The one other failure the design allows: a job bound to one
 * host (Hostname: <name>) has a run fail, using an attempt, when that host is given up on; when
 * that was its last attempt, it fails with that reason.
 */
function outcomes({ jobs, runs }: Evidence): Check {
  const problems: string[] = [];
  for (const job of jobs) {
    if (!isFinal(job.state)) continue; // reported by finalStates
    const meant = parseJobName(job.name);
    if (!meant) {
      problems.push(`${describe(job)} is not a job of the workload (state ${job.state}: ${job.reason ?? ''})`);
      continue;
    }
    // A fenced run counts as what it was given up as (failed, for a job bound to its host).
    const failed = (runs.get(job.id) ?? []).filter((r) => (r.outcome === 'fenced' ? r.gaveUpAs : r.outcome) === 'failed');
    const excused = failed.filter((r) => meant.kind === 'remote-named' && HOST_GIVEN_UP.test(r.reason));
    const own = failed.filter((r) => !excused.includes(r));
    const { kind, intent } = meant;
    const unexpected = intent === 'ok'
      ? own
      : own.filter((r) => Number(r.exitCode) !== failExitCode(kind, intent) || (intent === 'flaky' && r.attempt !== 1));
    for (const r of unexpected) problems.push(`${describe(job)}: run ${r.run} (attempt ${r.attempt}) failed: ${r.reason || `exit ${r.exitCode}`}`);
    const givenUp = excused.length > 0 && job.state === 'failed' && HOST_GIVEN_UP.test(job.reason ?? '');
    if (meant.intent === 'doomed') {
      if (job.state !== 'failed' || failed.length !== 2) problems.push(`${describe(job)} should have failed both its attempts; it is ${job.state} after ${failed.length} failed runs (${job.reason ?? ''})`);
    } else if (job.state !== 'succeeded' && !givenUp) {
      problems.push(`${describe(job)} should have succeeded; it is ${job.state} on attempt ${job.attempt} (${job.reason ?? ''})`);
    }
  }
  return check('every job ended as its job file intends (or failed because its one host was given up on)', problems);
}

function countBy<T>(items: T[], key: (item: T) => string | number): Map<string | number, number> {
  const counts = new Map<string | number, number>();
  for (const item of items) counts.set(key(item), (counts.get(key(item)) ?? 0) + 1);
  return counts;
}

function noRunTwice({ jobs, ledger }: Evidence): Check {
  const problems: string[] = [];
  for (const job of jobs) {
    for (const [run, n] of countBy(ledger.get(job.id) ?? [], (l) => l.run)) {
      if (n > 1) problems.push(`${describe(job)}: run ${run} executed ${n} times`);
    }
  }
  return check('no run executed twice (no run number twice in the ledger)', problems);
}

/**
 * No two runs of one job overlapped in time. A run ran from its begin line to its end line; one
 * without an end line (stopped before it) until the latest it can have stopped: when its host's
 * watchdog stopped it (a fenced run's stoppedAt), else when it was found and killed (fencedAt),
 * else when its end was recorded (endedAt: a Thread run cut short with its supervisor).
 */
function noOverlap({ jobs, runs, ledger }: Evidence): Check {
  const problems: string[] = [];
  const at = (ms: number) => (Number.isFinite(ms) ? `${new Date(ms).toTimeString().slice(0, 8)}.${String(ms % 1000).padStart(3, '0')}` : 'never recorded');
  for (const job of jobs) {
    const entries = runs.get(job.id) ?? [];
    const spans = (ledger.get(job.id) ?? []).map((line) => {
      const entry = entries.find((e) => e.run === line.run);
      return { run: line.run, from: line.begin, to: line.end ?? entry?.stoppedAt ?? entry?.fencedAt ?? entry?.endedAt ?? Infinity };
    });
    for (const a of spans) {
      for (const b of spans) {
        if (a.run < b.run && a.from < b.to && b.from < a.to) problems.push(`${describe(job)}: run ${a.run} (${at(a.from)}-${at(a.to)}) overlapped run ${b.run} (${at(b.from)}-${at(b.to)})`);
      }
    }
  }
  return check('no two runs of one job overlapped in time (the ledger\'s begin and end lines)', problems);
}

function succeededOnce({ jobs, runs, ledger }: Evidence): Check {
  const problems: string[] = [];
  for (const job of jobs.filter((j) => j.state === 'succeeded')) {
    const won = (runs.get(job.id) ?? []).filter((r) => r.outcome === 'succeeded');
    if (won.length !== 1) {
      problems.push(`${describe(job)}: ${won.length} succeeded runs in job:${job.id}:runs`);
      continue;
    }
    const seen = (ledger.get(job.id) ?? []).filter((l) => l.run === won[0].run).length;
    if (seen !== 1) problems.push(`${describe(job)}: its succeeded run ${won[0].run} is in the ledger ${seen} times`);
  }
  return check('the run that succeeded is in the ledger exactly once', problems);
}

function ledgerRunsRecorded({ jobs, runs, ledger }: Evidence): Check {
  const problems: string[] = [];
  const known = new Set(jobs.map((j) => j.id));
  for (const [id, lines] of ledger) {
    if (!known.has(id)) {
      problems.push(`job ${id} is in the ledger but not in Redis`);
      continue;
    }
    const recorded = runs.get(id) ?? [];
    for (const line of lines) {
      const entry = recorded.find((r) => r.run === line.run);
      if (!entry) problems.push(`job ${id}: run ${line.run} (attempt ${line.attempt}) executed, but job:${id}:runs records runs ${recorded.map((r) => r.run).join(',') || 'none'}`);
      else if (entry.attempt !== line.attempt) problems.push(`job ${id}: run ${line.run} executed as attempt ${line.attempt}; job:${id}:runs says attempt ${entry.attempt}`);
    }
  }
  return check('every run in the ledger is a run that job:<id>:runs records, with its attempt', problems);
}

async function noSlotTaken(store: Store): Promise<Check> {
  const k = store.keys;
  const keys = await store.redis.keys(`${k.prefix}*`);
  const problems: string[] = [];
  // Every node's (LocalJobs:<node>, Granted_Queue:<node>, Running_Queue:<node>), and those of before nodes.
  const slotSets = keys.filter((key) => key.startsWith(`${k.prefix}LocalJobs`) || key.startsWith(`${k.prefix}RemoteJobs:`) || key.startsWith(`${k.prefix}Slots:`));
  for (const key of slotSets) {
    const members = await store.redis.smembers(key);
    if (members.length) problems.push(`${key.slice(k.prefix.length)} still holds ${members.join(' ')}`);
  }
  const lists = keys.filter((key) => key.startsWith(`${k.prefix}Granted_Queue`) || key === k.jobQueue || key.startsWith(`${k.prefix}Job_Queue:`));
  for (const key of lists) {
    const n = await store.redis.llen(key);
    if (n) problems.push(`${key.slice(k.prefix.length)} holds ${n} entries`);
  }
  for (const key of [...keys.filter((key) => key.startsWith(`${k.prefix}Running_Queue`)), k.delayed]) {
    const ids = await store.redis.zrange(key, 0, -1);
    if (ids.length) problems.push(`${key.slice(k.prefix.length)} holds ${ids.join(' ')}`);
  }
  return check('no slot left taken (LocalJobs, RemoteJobs:*, Granted_Queue, Running_Queue and the queues empty)', problems);
}

function noInstanceLeft(world: World): Check {
  const problems = world.ec2.instances().filter((i) => i.state !== 'terminated').map((i) => `${i.id} (${i.address}) is ${i.state}`);
  if (world.ec2.maxAlive > EC2_MAX_INSTANCES) problems.push(`${world.ec2.maxAlive} instances were alive at once; MaxInstances is ${EC2_MAX_INSTANCES}`);
  return check(`no EC2 instance left running (${world.ec2.instances().length} launched, at most ${world.ec2.maxAlive} at once)`, problems);
}

/** Actor threads die only when told to; any other exit is a crash the run found. */
function actorExits(world: World, injected: number): Check {
  const exits = world.nodes.flatMap(({ stateDir }) => logMessages(supervisorLog(stateDir), /actor exited/).flatMap((msg) => [...msg.matchAll(/the (\w+) actor exited \(code (\d+)\)/g)].map((m) => ({ m, log: join(stateDir, 'supervisor.log') }))));
  const problems = exits.filter(({ m }) => Number(m[2]) !== INJECTED_CRASH_CODE).map(({ m, log }) => `the ${m[1]} actor exited with code ${m[2]} (see ${log})`);
  const told = exits.length - problems.length;
  if (told > injected) problems.push(`${told} actors exited as if told to crash, but only ${injected} crashes were injected`);
  return check('no actor thread died but those the injector crashed', problems);
}
