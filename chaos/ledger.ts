import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

// The ledger: two lines per run that actually executed, appended by the job itself wherever it
// runs, "begin <JM_JOB_ID> <JM_RUN> <JM_ATTEMPT> <ms>" as it starts and "end ..." as it ends
// (the time in milliseconds since the epoch, read where the run is). Every "host" here is a
// loopback sshd, so one file and one clock on this machine serve all of them: local jobs
// (root), thread jobs (the supervisor), SSH host users and EC2 instance users append to it
// (O_APPEND: lines from many processes never mix). A run stopped before its end (killed when
// fenced, or with the supervisor that ran it) has no end line.

export interface LedgerLine {
  id: string;
  run: number;
  attempt: number;
  /** When it began (ms). */
  begin: number;
  /** When it reached its end (ms), or null: it never did. */
  end: number | null;
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

  /** The sh command a Run step uses to append its begin or end line. */
  shellAppend(kind: 'begin' | 'end'): string {
    return `echo "${kind} $JM_JOB_ID $JM_RUN $JM_ATTEMPT $(date +%s%3N)" >> ${this.path}`;
  }

  /** Each run that began, with its end if it had one, in the order they began. */
  read(): LedgerLine[] {
    if (!existsSync(this.path)) return [];
    const runs: LedgerLine[] = [];
    const open = new Map<string, LedgerLine[]>();
    for (const line of readFileSync(this.path, 'utf8').split('\n')) {
      const [kind, id, run, attempt, ms] = line.trim().split(/\s+/);
      if (!id) continue;
      const key = `${id}.${run}`;
      if (kind === 'begin') {
        const entry = { id, run: Number(run), attempt: Number(attempt), begin: Number(ms), end: null };
        runs.push(entry);
        open.set(key, [...(open.get(key) ?? []), entry]);
      } else if (kind === 'end') {
        const entry = open.get(key)?.find((e) => e.end === null);
        if (entry) entry.end = Number(ms);
      }
    }
    return runs;
  }
}
