import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

// The ledger: one line per run that actually executed, "<JM_JOB_ID> <JM_RUN> <JM_ATTEMPT>",
// appended by the job itself wherever it runs. Every "host" here is a loopback sshd, so one file
// on this machine serves all of them: local jobs (root), thread jobs (the supervisor), SSH host
// users and EC2 instance users append to it (O_APPEND: lines from many processes never mix).

export interface LedgerLine {
  id: string;
  run: number;
  attempt: number;
}

export class Ledger {
  readonly path: string;

  /** Makes the ledger in `dir` (created world-writable: the hosts' users append to it). */
  constructor(dir: string) {
    mkdirSync(dir, { recursive: true });
    chmodSync(dir, 0o777);
    this.path = join(dir, 'ledger');
    writeFileSync(this.path, '');
    chmodSync(this.path, 0o666);
  }

  /** The sh command a Run step uses to append its line. */
  get shellAppend(): string {
    return `echo "$JM_JOB_ID $JM_RUN $JM_ATTEMPT" >> ${this.path}`;
  }

  read(): LedgerLine[] {
    if (!existsSync(this.path)) return [];
    return readFileSync(this.path, 'utf8')
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => {
        const [id, run, attempt] = line.trim().split(/\s+/);
        return { id, run: Number(run), attempt: Number(attempt) };
      });
  }
}
