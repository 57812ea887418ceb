import type { ClientChannel } from 'ssh2';
import { errorMessage } from '../util/errors.js';

// Channels on one SSH connection. OpenSSH allows MaxSessions channels per connection (10 by
// default, sshd_config(5)) and frees a slot a little after the client sees a channel close:
// measured here, with 8 channels in flight a quarter of the opens were refused ("Channel open
// failure", reason 2). So channels in flight are capped well below the limit (ChannelSlots), and
// a refused open is retried (openChannel).

export interface ExecResult {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

/** At most `max` channels in flight; the others wait their turn, first come first served. */
export class ChannelSlots {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly max: number) {}

  acquire(): Promise<void> {
    if (this.active < this.max) {
      this.active++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push(() => {
      this.active++;
      resolve();
    }));
  }

  release(): void {
    this.active--;
    this.waiting.shift()?.();
  }
}

/** Opens a channel, retrying a refused open (the server's session slots are briefly full). */
export async function openChannel<C = ClientChannel>(open: (cb: (err: Error | undefined, channel: C) => void) => void): Promise<C> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await new Promise<C>((resolve, reject) => open((err, channel) => (err ? reject(err) : resolve(channel))));
    } catch (err) {
      if (!/open failure|Channel open/i.test(errorMessage(err)) || attempt >= 20) throw err;
      await new Promise((resolve) => setTimeout(resolve, Math.min(5 * 2 ** attempt, 200)));
    }
  }
}

/** Feeds `input` to the channel's standard input and gathers its output and exit status. */
export function collect(channel: ClientChannel, input: string): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let code: number | null = null;
    let signal: string | null = null;
    channel.on('data', (d: Buffer) => out.push(d));
    channel.stderr.on('data', (d: Buffer) => err.push(d));
    channel.on('exit', (c: number | null, s?: string) => {
      code = c;
      signal = s ?? null;
    });
    channel.once('error', reject);
    channel.once('close', () => resolve({ code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') }));
    channel.end(input);
  });
}
