import { spawn } from 'node:child_process';
import { availableParallelism } from 'node:os';

// Whether a Run command is valid sh is settled by `sh -n -c COMMAND`, one process per distinct
// command: about 2 ms each here, so 5,000 jobs that differ in an argument spent 11 s on it. One
// `sh` can parse many commands instead: each is evaluated under `set -n` (read, never run) in a
// subshell of its own, so one command's text cannot reach into the next one's. A subshell costs
// a fork of a small process (0.25 ms), and the batches run side by side, one per core.
//
// This only ever proves commands valid. A command it does not prove valid (a syntax error, a
// shell that fails, a batch that times out) goes through `sh -n -c` on its own as before, which
// gives the verdict and the message. Before it parses anything, the script makes sure that the
// shell honours `set -n` inside eval (POSIX says it must; if it did not, the commands would run):
// if the probe's `exit 7` runs, the batch stops and proves nothing.

const SCRIPT = [
  `( eval 'set -n\nexit 7' ) 2>/dev/null; [ $? -ne 7 ] || exit 99`,
  `for c; do if ( eval "set -n\n$c" ) 2>/dev/null; then printf 0; else printf 1; fi; done`,
].join('\n');

/** Arguments per sh process: well under ARG_MAX (2 MiB on Linux, environment included). */
const BATCH_BYTES = 256 * 1024;
const BATCH_TIMEOUT_MS = 30_000;

/** The commands among `commands` that `sh -n` accepts, as far as batches could tell. */
export async function provenValid(commands: Iterable<string>): Promise<Set<string>> {
  const all = [...commands];
  const lanes = Math.max(1, Math.min(availableParallelism(), 4));
  const perLane = Math.ceil(all.length / lanes);
  const valid = new Set<string>();
  await Promise.all(
    Array.from({ length: lanes }, async (_, lane) => {
      for (const batch of batches(all.slice(lane * perLane, (lane + 1) * perLane))) {
        for (const command of await checkBatch(batch)) valid.add(command);
      }
    }),
  );
  return valid;
}

function batches(commands: string[]): string[][] {
  const out: string[][] = [];
  let batch: string[] = [];
  let bytes = 0;
  for (const command of commands) {
    const size = Buffer.byteLength(command) + 1;
    if (batch.length && bytes + size > BATCH_BYTES) {
      out.push(batch);
      batch = [];
      bytes = 0;
    }
    batch.push(command);
    bytes += size;
  }
  if (batch.length) out.push(batch);
  return out;
}

/** The commands of `batch` that one `sh` parsed without error (none if it failed). */
function checkBatch(batch: string[]): Promise<string[]> {
  return new Promise((resolve) => {
    const child = spawn('/bin/sh', ['-c', SCRIPT, 'sh', ...batch], { stdio: ['ignore', 'pipe', 'ignore'], timeout: BATCH_TIMEOUT_MS });
    let verdicts = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (verdicts += chunk));
    child.on('error', () => resolve([]));
    child.on('close', (code) => {
      resolve(code === 0 && verdicts.length === batch.length ? batch.filter((_, i) => verdicts[i] === '0') : []);
    });
  });
}
