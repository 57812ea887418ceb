import { BroadcastChannel, threadId } from 'node:worker_threads';

// Stopping one Thread run (Timeout, cancel) while others run on the same pool thread.
//
// Piscina stops a task by ending its thread, and so gives a task that can be stopped a thread of
// its own: every Thread run would hold a thread, and LocalMaxJobs runs would need as many threads
// (each a V8 isolate and node's start-up, on a machine with a few cores). Instead a run is asked
// to stop first, and its thread is ended only if it does not:
//
//   starter ──BroadcastChannel {key, reason}──> every pool thread: the one running `key` ends the
//                                               task at once (its function's promise is left)
//   starter, KillGrace later, the task still on ──> the thread it runs on (its thread id, which the
//                                               task wrote in a shared table) is terminated; the
//                                               other runs on it are recorded as interrupted and
//                                               run again
//
// As KillGrace does for a Local job: TERM first, KILL for a process that ignores it. A function
// that blocks its thread (a loop with no await) can only be stopped the second way.

const CHANNEL = 'jobmanager:thread-stops';
/** A row's value for a run asked to stop before a thread took it: it must not start. */
const NEVER = -1;

interface StopMessage {
  key: string;
  reason: string;
}

/** A run ended at the starter's request: its reason is the stop's. */
export class RunStopped extends Error {
  readonly code = 'THREAD_RUN_STOPPED';

  constructor(reason: string) {
    super(reason);
    this.name = 'RunStopped';
  }
}

/** The starter's side: rows of the shared table for runs, stop requests, threads it ended. */
export class ThreadStops {
  /** One row per run in flight: the id of the thread running it (0: not started on one yet). */
  readonly table: SharedArrayBuffer;
  private readonly view: Int32Array;
  private readonly free: number[];
  private readonly channel = new BroadcastChannel(CHANNEL);
  private readonly ended = new Set<number>();

  constructor(rows: number) {
    this.table = new SharedArrayBuffer(rows * Int32Array.BYTES_PER_ELEMENT);
    this.view = new Int32Array(this.table);
    this.free = Array.from({ length: rows }, (_, i) => rows - 1 - i);
    (this.channel as unknown as { unref(): void }).unref();
  }

  /** A row for a run about to be handed to the pool; -1 when all are taken (it cannot be cut loose then). */
  take(): number {
    const row = this.free.pop() ?? -1;
    if (row >= 0) Atomics.store(this.view, row, 0);
    return row;
  }

  /** Between two steps of a run: its next step may go to another thread (unless it was asked to stop). */
  nextStep(row: number): void {
    if (row < 0) return;
    const thread = Atomics.load(this.view, row);
    if (thread !== NEVER) Atomics.compareExchange(this.view, row, thread, 0);
  }

  give(row: number): void {
    if (row >= 0) this.free.push(row);
  }

  /** The thread running the run of this row (0: none yet, or it never will). */
  threadOf(row: number): number {
    return row >= 0 ? Math.max(0, Atomics.load(this.view, row)) : 0;
  }

  /**
   * Asks the run of `key` (row `row`) to stop. A run not yet on a thread (in the pool's queue)
   * finds its row marked and ends before it calls anything; one running ends when its thread
   * reads the message.
   */
  ask(key: string, row: number, reason: string): void {
    if (row >= 0 && Atomics.compareExchange(this.view, row, 0, NEVER) === 0) return;
    this.channel.postMessage({ key, reason } satisfies StopMessage);
  }

  /** Notes that the starter ends this thread: the runs on it did not fail, they were cut short. */
  ending(thread: number): void {
    this.ended.add(thread);
  }

  wasEnded(thread: number): boolean {
    return thread !== 0 && this.ended.has(thread);
  }

  close(): void {
    this.channel.close();
  }
}

/** A pool thread's side: runs register, and end when asked to. */
export class StopListener {
  private readonly stops = new Map<string, (err: RunStopped) => void>();
  private channel: BroadcastChannel | null = null;

  /**
   * Registers the run `key` (row `row` of `table`): the promise rejects when it is asked to stop.
   * Throws RunStopped if it was asked before it started.
   */
  register(key: string, table: SharedArrayBuffer, row: number, reason: string): Promise<never> {
    if (row >= 0 && Atomics.compareExchange(new Int32Array(table), row, 0, threadId) === NEVER) throw new RunStopped(reason);
    this.listen();
    const stopped = new Promise<never>((_, reject) => this.stops.set(key, reject));
    stopped.catch(() => {}); // raced by the caller; unregistered before it could go unheard
    return stopped;
  }

  unregister(key: string): void {
    this.stops.delete(key);
  }

  private listen(): void {
    if (this.channel) return;
    this.channel = new BroadcastChannel(CHANNEL);
    (this.channel as unknown as { unref(): void }).unref();
    this.channel.onmessage = (event) => {
      const { key, reason } = (event as { data: StopMessage }).data;
      this.stops.get(key)?.(new RunStopped(reason));
    };
  }
}
