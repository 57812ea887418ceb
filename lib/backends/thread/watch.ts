import type { RunOutcome } from '../../runs/outcome.js';
import type { KillSignal, RunLogBatch, WatchedRun, WatchSide } from '../backend.js';

// Thread jobs, the fetcher's half: there is little to watch, since the starter that runs a Thread
// job records its start and end itself (thread/launch.ts). What stays with the fetcher is Timeout
// and cancel: it decides that a run must stop, and asks the starter to stop it.

export class ThreadWatch implements WatchSide {
  constructor(private readonly stopRun: (id: string, run: number, reason: string) => void) {}

  async refresh(): Promise<{ ended: []; nextInMs: number }> {
    return { ended: [], nextInMs: Infinity };
  }

  drain(): RunLogBatch[] {
    return [];
  }

  async commit(): Promise<void> {}

  async observe(): Promise<Map<string, RunOutcome>> {
    return new Map();
  }

  kill({ info }: WatchedRun, _signal: KillSignal, reason: string): void {
    this.stopRun(info.id, info.run, reason);
  }

  async collect(): Promise<unknown> {
    return null; // recorded by the starter with the run's end
  }

  async close(): Promise<void> {}
}
