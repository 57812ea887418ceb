import { StringDecoder } from 'node:string_decoder';
import { shellPath } from '../../util/shell.js';
import type { Logger } from '../../util/log.js';
import { errorMessage } from '../../util/errors.js';
import type { SshConnection } from '../../ssh/connection.js';
import { StopSignal } from '../../util/stop-signal.js';
import { RunLogParser, type RunLogEvent } from '../../runs/run-log.js';

// Follows a host's run log for the fetcher: one long-lived `tail -F` over the host's pooled SSH
// connection, from the byte the fetcher has read up to. Lines arrive as the jobs write them, so
// no poll is needed to learn that a remote job started, finished a step, or exited. When the
// connection breaks (the host, sshd or the network), it reports the host unreachable and starts
// again from where it was, with a growing delay, until it is closed.

export interface FollowerEvents {
  events(events: RunLogEvent[], offset: number): void;
  reachable(ok: boolean, reason: string | null): void;
}

export class RemoteLogFollower {
  private readonly stop = new StopSignal();
  private close$: (() => void) | null = null;
  private offset: number;

  constructor(
    readonly host: string,
    private readonly ssh: SshConnection,
    private readonly runLog: string,
    offset: number,
    private readonly listener: FollowerEvents,
    private readonly log: Logger,
  ) {
    this.offset = offset;
    void this.follow();
  }

  private async follow(): Promise<void> {
    let delay = 200;
    while (!this.stop.stopped) {
      const parser = new RunLogParser();
      parser.consumed = this.offset;
      const decoder = new StringDecoder('utf8');
      try {
        const stream = await this.ssh.stream(`exec tail -c +${this.offset + 1} -F ${shellPath(this.runLog)} 2>/dev/null`, (chunk) => {
          const events = parser.push(decoder.write(chunk));
          this.offset = parser.consumed;
          if (events.length) this.listener.events(events, this.offset);
        });
        this.close$ = stream.close;
        this.listener.reachable(true, null);
        delay = 200;
        await stream.ended;
        this.close$ = null;
        if (this.stop.stopped) return;
        this.log.info(`ResultFetcher: lost the run log stream of ${this.host}; following it again`);
      } catch (err) {
        this.listener.reachable(false, errorMessage(err));
      }
      await this.stop.sleep(delay);
      delay = Math.min(delay * 2, 5000);
    }
  }

  close(): void {
    this.stop.stop();
    this.close$?.();
  }
}
