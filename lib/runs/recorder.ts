import type { GrantPool, RunFinished, RunStarted, Store } from '../store/store.js';
import type { Logger } from '../util/log.js';
import { errorMessage } from '../util/errors.js';
import { finishedRun, type RunOutcome } from './outcome.js';

// Records runs' starts (granted -> running) and ends (finishRun: retry, final state, slot handed
// on) in batches: what comes in while one batch is on its way to Redis goes in the next, so a
// thousand Thread jobs ending together cost a few round trips, not a thousand. Starts go before
// ends in a batch (a run may start and end within one); each batch is one markRunning and one
// finishRun call, each atomic, and both ignore a run that is not the job's current one, so a
// batch sent twice changes nothing the second time.
//
// A run that starts and ends within one batch is only recorded as ended: finishRun takes it from
// granted to its end with its real start time, and a `running` that nobody could have seen costs
// no Redis work. The two calls go out together (one round trip), in that order.

const MAX_ATTEMPTS = 5;

export class RunRecorder {
  private started: RunStarted[] = [];
  private ended: RunFinished[] = [];
  private sending: Promise<void> | null = null;
  private scheduled = false;
  private failures = 0;
  /** Runs recorded as ended so far (for the actor's closing line). */
  endedCount = 0;

  constructor(
    private readonly store: Store,
    /** Where freed slots may go (see finishRun-5.lua); read at each send. */
    private readonly pools: () => GrantPool[],
    private readonly log: Logger,
    /** How the log names who records: JobStarter, ResultFetcher. */
    private readonly actor: string,
    private readonly backoffMs: number,
  ) {}

  /** Starts and ends gathered and not yet sent. */
  get pending(): number {
    return this.started.length + this.ended.length;
  }

  start(run: RunStarted): void {
    this.started.push(run);
    this.schedule();
  }

  end(id: string, run: number, outcome: RunOutcome, result: unknown = null): void {
    this.ended.push(finishedRun(id, run, outcome, result, this.backoffMs));
    this.schedule();
  }

  /** Sends everything gathered so far; resolves when it is in Redis. Returns the earliest Running_Queue score given (or null). */
  async flush(): Promise<number | null> {
    let earliest: number | null = null;
    while (this.started.length || this.ended.length || this.sending) {
      if (this.sending) {
        await this.sending;
        continue;
      }
      const ended = this.ended.splice(0);
      const ending = new Set(ended.map((f) => `${f.id}.${f.run}`));
      const started = this.started.splice(0).filter((s) => !ending.has(`${s.id}.${s.run}`));
      const send = this.send(started, ended);
      this.sending = send.then(() => undefined);
      try {
        const score = await send;
        if (score !== null) earliest = earliest === null ? score : Math.min(earliest, score);
      } finally {
        this.sending = null;
      }
    }
    return earliest;
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.flush();
    });
  }

  private async send(started: RunStarted[], ended: RunFinished[]): Promise<number | null> {
    try {
      const [earliest] = await Promise.all([this.store.markRunning(started), this.store.finishRuns(ended, this.pools())]);
      this.failures = 0;
      this.endedCount += ended.length;
      for (const f of ended) {
        const line = `${this.actor}: job ${f.id} run ${f.run} ${f.outcome}${f.reason ? `: ${f.reason}` : ''}`;
        if (f.outcome === 'succeeded') this.log.debug(line, { job: f.id });
        else this.log.info(line, { job: f.id });
      }
      return earliest;
    } catch (err) {
      // The actors' Redis connection waits out a restart by itself: an error here is a refused
      // script (a bug, or a Redis that lost its scripts). Try again a few times, then give up on
      // the batch loudly: its runs are picked up as interrupted by the next starter or fetcher.
      this.failures++;
      if (this.failures > MAX_ATTEMPTS) {
        this.log.error(`${this.actor}: could not record ${started.length} starts and ${ended.length} ends (${errorMessage(err)}); giving up on them`);
        this.failures = 0;
        return null;
      }
      this.log.warn(`${this.actor}: recording ${started.length} starts and ${ended.length} ends failed (${errorMessage(err)}); trying again`);
      await new Promise((resolve) => setTimeout(resolve, 100 * this.failures));
      this.started.unshift(...started);
      this.ended.unshift(...ended);
      return null;
    }
  }
}
