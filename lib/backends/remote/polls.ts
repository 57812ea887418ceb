import { shellPath, shq } from '../../util/shell.js';
import { INTERNAL_DIR } from '../../runtime/layout.js';

// Polling remote runs whose run log has been silent for a poll period: one command per host per
// round, however many runs, answers for each: alive, exited (its status file, written whole while
// its process still lived), or gone. A host that cannot be reached answers nothing: the runs'
// state is unknown, never failed.

export type RemotePoll = { kind: 'alive' } | { kind: 'exited'; exitCode: number } | { kind: 'gone' };

/** One command that polls every listed run of a host: A alive, S exited (status), G gone. */
export function pollScript(runs: { runId: string; pid: number; dir: string }[]): string {
  return [
    `p() { if kill -0 "$2" 2>/dev/null; then echo "A $1"; elif [ -s "$3/${INTERNAL_DIR}/status" ] && read s <"$3/${INTERNAL_DIR}/status"; then echo "S $1 $s"; else echo "G $1"; fi; }`,
    ...runs.map((r) => `p ${shq(r.runId)} ${r.pid} ${shellPath(r.dir)}`),
  ].join('\n');
}

/** The poll command's answers, by run id. */
export function parsePolls(stdout: string): Map<string, RemotePoll> {
  const polls = new Map<string, RemotePoll>();
  for (const line of stdout.trim().split('\n')) {
    const [kind, runId, code] = line.split(' ');
    if (kind === 'A') polls.set(runId, { kind: 'alive' });
    else if (kind === 'S') polls.set(runId, { kind: 'exited', exitCode: Number(code) });
    else if (kind === 'G') polls.set(runId, { kind: 'gone' });
  }
  return polls;
}
