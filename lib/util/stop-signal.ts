// Long loops check a StopSignal; every wait they do can be cut short by it, so `close()` never
// waits for a sleep or a poll period to run out.

export class StopSignal {
  private readonly controller = new AbortController();
  get stopped(): boolean {
    return this.controller.signal.aborted;
  }
  get signal(): AbortSignal {
    return this.controller.signal;
  }
  stop(): void {
    this.controller.abort();
  }
  /** Resolves after `ms`, or at once when stopped. Returns false when cut short by stop(). */
  sleep(ms: number): Promise<boolean> {
    return sleep(ms, this.controller.signal);
  }
}

export function sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve(false);
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(true);
    }, Math.max(0, ms));
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * A wake-up that several sources can trigger (a Redis signal, a file change, a message). Waiting
 * resolves on the first trigger since the last wait, on timeout, or on stop.
 */
export class Wakeup {
  private pending = false;
  private resolve: (() => void) | null = null;
  trigger(): void {
    this.pending = true;
    this.resolve?.();
  }
  async wait(ms: number, stop: StopSignal): Promise<void> {
    if (this.pending || stop.stopped) {
      this.pending = false;
      return;
    }
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        stop.signal.removeEventListener('abort', done);
        this.resolve = null;
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, Math.min(ms, 2 ** 31 - 1)));
      stop.signal.addEventListener('abort', done, { once: true });
      this.resolve = done;
    });
    this.pending = false;
  }
}
