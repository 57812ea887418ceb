import { SshUnavailableError, type SshConnection } from '../../ssh/connection.js';
import { HOST_CLOCK_SH } from './lease.js';

// A shell kept open on a host for the starter's launches: one SSH channel running `sh -s`, to which
// each batch of launches is written, and which answers "JM-ACK <n>" when it has run batch n. This
// saves every batch a channel open, an sshd fork and a login shell: most of a launch's cost.
//
// Each batch is one brace group: the shell reads a group whole before running it, so a batch cut
// short by a lost connection runs not at all (a group left open at the end of input is a syntax
// error), and the starter sends it again on a new shell. Sending twice is safe: each run claims
// itself once (see host-launcher.ts).
//
// Each acknowledgement carries the host's clock (lease.ts) as read when the batch had run: a
// launch is sent with a stamp the starter received before it, and a run whose launch reaches
// the host later than a lease after that stamp does not start.

const ACK_TIMEOUT_MS = 30_000;

/** A host clock stamp, and when (by this machine's clock) it was received. */
export interface HostStamp {
  stamp: number;
  receivedAt: number;
}

type Session = Awaited<ReturnType<SshConnection['session']>>;

export class LaunchShell {
  private session: Promise<Session> | null = null;
  private next = 0;
  private readonly waiting = new Map<number, { resolve(stamp: HostStamp): void; reject(err: Error): void; timer: NodeJS.Timeout }>();
  private output = '';
  /** The latest stamp an acknowledgement carried. */
  private latest: HostStamp | null = null;

  constructor(private readonly ssh: SshConnection) {}

  /** A stamp received no longer than `maxAgeMs` ago: the latest, or a new one (one round trip). */
  async freshStamp(maxAgeMs: number): Promise<HostStamp> {
    if (this.latest && Date.now() - this.latest.receivedAt <= maxAgeMs) return this.latest;
    return this.run(':');
  }

  /** Runs a batch; resolves with the host's clock as read when it had run. */
  async run(script: string): Promise<HostStamp> {
    const session = await this.open();
    const id = ++this.next;
    const acked = new Promise<HostStamp>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new SshUnavailableError(`${this.ssh.target.name}: the launch shell did not answer within ${ACK_TIMEOUT_MS / 1000}s`));
        this.reset();
      }, ACK_TIMEOUT_MS);
      this.waiting.set(id, { resolve, reject, timer });
    });
    session.write(`{\n${HOST_CLOCK_SH}\n${script}\njm_now; echo "JM-ACK ${id} $JM_NOW"\n}\n`);
    return acked;
  }

  private open(): Promise<Session> {
    this.session ??= this.ssh.session((chunk) => this.onOutput(chunk.toString('utf8'))).then((session) => {
      void session.ended.then(() => this.lost());
      return session;
    });
    this.session.catch(() => {
      this.session = null;
    });
    return this.session;
  }

  private onOutput(text: string): void {
    this.output += text;
    let end: number;
    while ((end = this.output.indexOf('\n')) >= 0) {
      const line = this.output.slice(0, end);
      this.output = this.output.slice(end + 1);
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
    void this.session?.then((session) => session.close(), () => {});
    this.lost();
  }
}
