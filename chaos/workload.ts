import type { Workspace } from '../spec/support/workspace.js';
import type { StopSignal } from '../lib/util/stop-signal.js';
import type { Ledger } from './ledger.js';

// The chaos run's workload: waves of job files of every ClassType, queued with `jobmanager
// queue` as a user would, at seeded random moments. Every job appends its ledger's begin line
// first, then sleeps a little, appends its end line, then ends as its intent says:
//   ok      succeeds on its first attempt
//   flaky   fails its first attempt on purpose (exit 3), succeeds on the retry (Retries: 2)
//   doomed  fails every attempt (exit 4; Retries: 1), so it ends failed after two
// The job's Name carries its kind and intent (`remote-any.flaky.17`), so the checks know what
// each job in Redis was meant to do, even one queued twice after a `queue` cut short by a fault.

export type JobKind = 'local' | 'thread' | 'remote-any' | 'remote-named' | 'ec2';
export type Intent = 'ok' | 'flaky' | 'doomed';

export const KINDS: readonly JobKind[] = ['local', 'thread', 'remote-any', 'remote-named', 'ec2'];

const KIND_WEIGHTS: [JobKind, number][] = [['local', 3], ['thread', 2], ['remote-any', 2], ['remote-named', 2], ['ec2', 1]];
const INTENT_WEIGHTS: [Intent, number][] = [['ok', 6], ['flaky', 3], ['doomed', 1]];
const RETRIES: Record<Intent, number> = { ok: 0, flaky: 2, doomed: 1 };
/** Exit codes of the failing attempts (a flaky job's first, every doomed one). */
export const FAIL_CODE: Record<Exclude<Intent, 'ok'>, number> = { flaky: 3, doomed: 4 };

/** The exit code of a failing attempt: a Thread step that throws ends its run with 1. */
export function failExitCode(kind: JobKind, intent: Exclude<Intent, 'ok'>): number {
  return kind === 'thread' ? 1 : FAIL_CODE[intent];
}

export interface WorkloadOptions {
  ws: Workspace;
  ledger: Ledger;
  random: () => number;
  /** Names of the SSH hosts in the config, for Hostname: <name>. */
  hostNames: string[];
  log: (text: string) => void;
}

export function pick<T>(random: () => number, weighted: [T, number][]): T {
  let r = random() * weighted.reduce((sum, [, w]) => sum + w, 0);
  for (const [value, weight] of weighted) {
    r -= weight;
    if (r < 0) return value;
  }
  return weighted[weighted.length - 1][0];
}

/** What a job's Name says about it (null: not a chaos job). */
export function parseJobName(name: string): { kind: JobKind; intent: Intent; host: string | null } | null {
  const match = /^(local|thread|remote-any|remote-named|ec2)\.(ok|flaky|doomed)\.\d+(?:@(.+))?$/.exec(name);
  return match ? { kind: match[1] as JobKind, intent: match[2] as Intent, host: match[3] ?? null } : null;
}

export class Workload {
  private made = 0;
  /** Job files queued, by kind (a file queued again after a failed `queue` counts again). */
  readonly queued = new Map<JobKind, number>(KINDS.map((k) => [k, 0]));
  /** `queue` commands that failed (Redis down, say) and were tried again. */
  queueFailures = 0;
  private readonly stepsModule: string;

  constructor(private readonly options: WorkloadOptions) {
    this.stepsModule = options.ws.write('chaos/steps.mjs', [
      "import { appendFileSync } from 'node:fs';",
      '// A Thread job step: its ledger lines (begin, end) around a short wait, then the end its intent asks for.',
      'export async function record(ledger, failBelow, ms) {',
      '  const line = (kind) => appendFileSync(ledger, `${kind} ${this.jobId} ${this.run} ${this.attempt} ${Date.now()}\\n`);',
      "  line('begin');",
      '  await new Promise((resolve) => setTimeout(resolve, ms));',
      "  line('end');",
      '  if (this.attempt < failBelow) throw new Error(`attempt ${this.attempt} fails on purpose`);',
      '  return this.attempt;',
      '}',
    ].join('\n'));
  }

  get total(): number {
    return [...this.queued.values()].reduce((a, b) => a + b, 0);
  }

  /** Queues waves at random moments (every 2-6 s, 4-12 jobs) until `stop`. */
  async run(stop: StopSignal): Promise<void> {
    const { random } = this.options;
    while (!stop.stopped) {
      const size = 4 + Math.floor(random() * 9);
      const files = Array.from({ length: size }, () => this.jobFile());
      await this.queue(files, stop);
      await stop.sleep(2000 + random() * 4000);
    }
  }

  /** `jobmanager queue`; tried again (every second, while not stopped) if it fails. */
  private async queue(files: { path: string; kind: JobKind }[], stop: StopSignal): Promise<void> {
    for (;;) {
      const result = await this.options.ws.cli('queue', ...files.map((f) => f.path));
      if (result.code === 0) break;
      this.queueFailures++;
      this.options.log(`workload: queue failed (exit ${result.code}: ${result.stderr.trim().split('\n').pop()}); trying again`);
      if (stop.stopped) return;
      await stop.sleep(1000);
    }
    for (const f of files) this.queued.set(f.kind, (this.queued.get(f.kind) ?? 0) + 1);
  }

  private jobFile(): { path: string; kind: JobKind } {
    const { random, ledger, hostNames } = this.options;
    const kind = pick(random, KIND_WEIGHTS);
    const intent = pick(random, INTENT_WEIGHTS);
    // Mostly short; one in eight runs long enough to be caught running by most faults (and by
    // a partition: a remote run still going when its host's lease lapses, 4 s in, is stopped).
    const seconds = random() < 0.125 ? 3 + random() * 7 : 0.05 + random() * 1.5;
    const n = ++this.made;
    const host = kind === 'remote-named' ? hostNames[Math.floor(random() * hostNames.length)] : null;
    const name = `${kind}.${intent}.${n}${host ? `@${host}` : ''}`;
    const lines = [`Name: ${JSON.stringify(name)}`, `Retries: ${RETRIES[intent]}`];
    if (kind === 'thread') {
      const failBelow = intent === 'ok' ? 0 : intent === 'flaky' ? 2 : 1000;
      lines.push(
        'ClassType: Thread',
        `Modules: {chaos: ${JSON.stringify(this.stepsModule)}}`,
        'Order:',
        `  - {Function: record, Module: chaos, Inputs: [{ledger: ${JSON.stringify(ledger.path)}}, {failBelow: ${failBelow}}, {ms: ${Math.round(seconds * 1000)}}]}`,
      );
    } else {
      const classType = kind === 'local' ? 'Local' : kind === 'ec2' ? 'EC2' : 'Remote';
      lines.push(`ClassType: ${classType}`);
      if (kind === 'remote-any') lines.push('Hostname: any');
      if (host) lines.push(`Hostname: ${host}`);
      const end = intent === 'ok' ? 'true' : intent === 'flaky' ? `[ "$JM_ATTEMPT" -ge 2 ] || exit ${FAIL_CODE.flaky}` : `exit ${FAIL_CODE.doomed}`;
      lines.push('Order:', `  - Run: ${JSON.stringify(`${ledger.shellAppend('begin')}; sleep ${seconds.toFixed(2)}; ${ledger.shellAppend('end')}; ${end}`)}`);
    }
    return { path: this.options.ws.write(`chaos/jobs/${n}.yaml`, lines.join('\n') + '\n'), kind };
  }
}
