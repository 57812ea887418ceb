import { SshUnavailableError, type SshConnection } from '../../ssh/connection.js';

// A shell kept open on a host for the starter's launches: one SSH channel running `sh -s`, to which
// each batch of launches is written, and which answers "JM-ACK <n>" when it has run batch n. This
// saves every batch a channel open, an sshd fork and a login shell: most of a launch's cost.
//
// Each batch is one brace group: the shell reads a group whole before running it, so a batch cut
// short by a lost connection runs not at all (a group left open at the end of input is a syntax
// error), and the starter sends it again on a new shell. Sending twice is safe: each run claims
// itself once (see host-launcher.ts).

const ACK_TIMEOUT_MS = 30_000;

type Session = Awaited<ReturnType<SshConnection['session']>>;

export class LaunchShell {
  private session: Promise<Session> | null = null;
  private next = 0;
  private readonly waiting = new Map<number, { resolve(): void; reject(err: Error): void; timer: NodeJS.Timeout }>();
  private output = '';

  constructor(private readonly ssh: SshConnection) {}

  async run(script: string): Promise<void> {
    const session = await this.open();
    const id = ++this.next;
    const acked = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new SshUnavailableError(`${this.ssh.target.name}: the launch shell did not answer within ${ACK_TIMEOUT_MS / 1000}s`));
        this.reset();
      }, ACK_TIMEOUT_MS);
      this.waiting.set(id, { resolve, reject, timer });
    });
    session.write(`{\n${script}\necho "JM-ACK ${id}"\n}\n`);
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
      const match = /^JM-ACK (\d+)$/.exec(line);
      const waiter = match ? this.waiting.get(Number(match[1])) : undefined;
      if (waiter) {
        clearTimeout(waiter.timer);
        this.waiting.delete(Number(match![1]));
        waiter.resolve();
      }
    }
  }

  /** The shell ended (connection lost): every batch not acknowledged fails, to be sent again. */
  private lost(): void {
    this.session = null;
    this.output = '';
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
