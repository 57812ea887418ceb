import { readFileSync } from 'node:fs';
import { SshUnavailableError, type SshConnection } from '../../ssh/connection.js';
import { shq } from '../../util/shell.js';
import { SPAWNER_FILE } from '../../util/paths.js';
import type { Logger } from '../../util/log.js';
import { HOST_CLOCK_SH } from './lease.js';

// A shell kept open on a host for the starter's launches: one SSH channel, to which each batch of
// launches is written, and which answers "JM-ACK <n>" when it has run batch n. This saves every
// batch a channel open, an sshd fork and a login shell: most of a launch's cost.
//
// Where the host has Python 3.8 or later, the channel runs spawner.py, which starts each job with
// posix_spawn; elsewhere, `sh -s`, which starts each job with a subshell, a background fork and
// setsid. On this project's VM the spawner cuts the host's CPU per launch by half (the README's
// bench section). Which one is asked each time the channel is opened: spawner.py answers
// "JM-SPAWNER ready", or ends (no python3, or too old), and `sh -s` is opened instead.
// JM_REMOTE_SPAWNER=sh makes every host use the shell; JM_REMOTE_SPAWNER=<command> names the
// Python to run.
//
// A shell batch is one brace group: the shell reads a group whole before running it, so a batch
// cut short by a lost connection runs not at all (a group left open at the end of input is a
// syntax error), and the starter sends it again on a new shell. spawner.py does the same with its
// batches, one JSON line each. Sending twice is safe: each run claims itself once (see
// host-launcher.ts).
//
// Each acknowledgement carries the host's clock (lease.ts) as read when the batch had run: a
// launch is sent with a stamp the starter received before it, and a run whose launch reaches
// the host later than a lease after that stamp does not start.

const ACK_TIMEOUT_MS = 30_000;
/** How long spawner.py may take to say whether it can run (a cold Python start is well under). */
const SPAWNER_ANSWER_MS = 15_000;
const SPAWNER_CODE = readFileSync(SPAWNER_FILE, 'utf8');
const SPAWNER_BOOT = 'import json, sys; exec(json.loads(sys.stdin.readline()))';

/** A host clock stamp, and when (by this machine's clock) it was received. */
export interface HostStamp {
  stamp: number;
  receivedAt: number;
}

/** A batch as spawner.py takes it (its id is the shell's to add); paths are absolute. */
export interface SpawnerBatch {
  runLog: string;
  launchedAt: number;
  dirs: string[];
  /** The watchdog's file and text, written if it is missing. */
  watchdog: [string, string] | null;
  jobs: { dir: string; run: string; claim: string; script: string; yaml: string }[];
}

/** One batch of launches, in both forms: the shell's commands, and spawner.py's request. */
export interface LaunchBatch {
  sh(): string;
  spawner(): SpawnerBatch;
}

const NOTHING: LaunchBatch = {
  sh: () => ':',
  spawner: () => ({ runLog: '', launchedAt: 0, dirs: [], watchdog: null, jobs: [] }),
};

type Session = Awaited<ReturnType<SshConnection['session']>>;
type Mode = 'spawner' | 'sh';

export class LaunchShell {
  private session: Promise<{ session: Session; mode: Mode }> | null = null;
  private next = 0;
  private readonly waiting = new Map<number, { resolve(stamp: HostStamp): void; reject(err: Error): void; timer: NodeJS.Timeout }>();
  private output = '';
  /** The latest stamp an acknowledgement carried. */
  private latest: HostStamp | null = null;
  /** Told the first line spawner.py writes ("JM-SPAWNER ..."), while it is being started. */
  private onSpawnerLine: ((line: string) => void) | null = null;
  /** How the last channel was opened, so that a change is logged once. */
  private lastMode: Mode | null = null;

  constructor(
    private readonly ssh: SshConnection,
    private readonly log: Logger,
    private readonly python = process.env.JM_REMOTE_SPAWNER ?? 'python3',
  ) {}

  /** A stamp received no longer than `maxAgeMs` ago: the latest, or a new one (one round trip). */
  async freshStamp(maxAgeMs: number): Promise<HostStamp> {
    if (this.latest && Date.now() - this.latest.receivedAt <= maxAgeMs) return this.latest;
    return this.run(NOTHING);
  }

  /** Runs a batch; resolves with the host's clock as read when it had run. */
  async run(batch: LaunchBatch): Promise<HostStamp> {
    const { session, mode } = await this.open();
    const id = ++this.next;
    const acked = new Promise<HostStamp>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new SshUnavailableError(`${this.ssh.target.name}: the launch shell did not answer within ${ACK_TIMEOUT_MS / 1000}s`));
        this.reset();
      }, ACK_TIMEOUT_MS);
      this.waiting.set(id, { resolve, reject, timer });
    });
    if (mode === 'spawner') session.write(`${JSON.stringify({ id, ...batch.spawner() })}\n`);
    else session.write(`{\n${HOST_CLOCK_SH}\n${batch.sh()}\njm_now; echo "JM-ACK ${id} $JM_NOW"\n}\n`);
    return acked;
  }

  private open(): Promise<{ session: Session; mode: Mode }> {
    this.session ??= this.start().then((opened) => {
      void opened.session.ended.then(() => this.lost());
      return opened;
    });
    this.session.catch(() => {
      this.session = null;
    });
    return this.session;
  }

  /** spawner.py if it answers ready, else `sh -s`. */
  private async start(): Promise<{ session: Session; mode: Mode }> {
    const onOutput = (chunk: Buffer) => this.onOutput(chunk.toString('utf8'));
    let why = 'JM_REMOTE_SPAWNER=sh';
    if (this.python !== 'sh') {
      const answer = new Promise<string>((resolve) => {
        this.onSpawnerLine = resolve;
      });
      // -I: no PYTHON* variables, user site or current directory can change what runs. The code
      // comes as the first line of input, so that `ps` on the host shows a short command.
      const session = await this.ssh.session(onOutput, undefined, `${this.python} -I -u -c ${shq(SPAWNER_BOOT)}`);
      session.write(`${JSON.stringify(SPAWNER_CODE)}\n`);
      let timer: NodeJS.Timeout | undefined;
      const silent = new Promise<string>((resolve) => {
        timer = setTimeout(() => resolve(`JM-SPAWNER unavailable ${this.python} did not answer within ${SPAWNER_ANSWER_MS / 1000}s`), SPAWNER_ANSWER_MS);
      });
      const line = await Promise.race([answer, silent, session.ended.then(() => null)]);
      clearTimeout(timer);
      this.onSpawnerLine = null;
      if (line === 'JM-SPAWNER ready') return this.opened(session, 'spawner', '');
      session.close();
      // The connection ended (or went silent and was dropped): nothing is known of the host's Python yet.
      if (!this.ssh.connected) throw new SshUnavailableError(`${this.ssh.target.name}: the connection ended while the launch shell was opened`);
      why = line?.replace(/^JM-SPAWNER unavailable /, '') ?? `${this.python} did not start`;
      this.output = '';
    }
    return this.opened(await this.ssh.session(onOutput), 'sh', why);
  }

  private opened(session: Session, mode: Mode, why: string): { session: Session; mode: Mode } {
    if (mode !== this.lastMode) {
      if (mode === 'sh') this.log.info(`SSH ${this.ssh.target.name}: jobs are started by sh (${why})`);
      else this.log.debug(`SSH ${this.ssh.target.name}: jobs are started by ${this.python} (spawner.py)`);
      this.lastMode = mode;
    }
    return { session, mode };
  }

  private onOutput(text: string): void {
    this.output += text;
    let end: number;
    while ((end = this.output.indexOf('\n')) >= 0) {
      const line = this.output.slice(0, end);
      this.output = this.output.slice(end + 1);
      if (this.onSpawnerLine && line.startsWith('JM-SPAWNER ')) {
        this.onSpawnerLine(line);
        continue;
      }
      const match = /^JM-ACK (\d+) (\d+)$/.exec(line);
      const waiter = match ? this.waiting.get(Number(match[1])) : undefined;
      if (waiter) {
        clearTimeout(waiter.timer);
        this.waiting.delete(Number(match![1]));
        const stamp = { stamp: Number(match![2]), receivedAt: Date.now() };
        if (!this.latest || stamp.stamp >= this.latest.stamp) this.latest = stamp;
        waiter.resolve(stamp);
      }
    }
  }

  /** The shell ended (connection lost): every batch not acknowledged fails, to be sent again. */
  private lost(): void {
    this.session = null;
    this.output = '';
    this.latest = null;
    for (const [id, waiter] of this.waiting) {
      clearTimeout(waiter.timer);
      waiter.reject(new SshUnavailableError(`${this.ssh.target.name}: the connection ended before launch batch ${id} was confirmed`));
    }
    this.waiting.clear();
  }

  reset(): void {
    void this.session?.then(({ session }) => session.close(), () => {});
    this.lost();
  }
}
