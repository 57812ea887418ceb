import { mkdirSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import type { JobSpec } from '../../jobfile/job-spec.js';
import { outputFile } from '../../runtime/layout.js';
import { jobDir } from '../../runs/paths.js';
import type { SshConnection } from '../../ssh/connection.js';
import { errorMessage } from '../../util/errors.js';
import type { Logger } from '../../util/log.js';
import { shellPath } from '../../util/shell.js';
import { absoluteRemote } from './paths.js';

// What a remote run leaves to collect: the last step's outputs, read on the host, and the job's
// Downloads, copied into its LocalOutputDir (default: the job's local directory).

export async function collectRemote(ssh: SshConnection, job: { id: string; spec: JobSpec; remoteDir: string; stateDir: string }, log: Logger): Promise<unknown> {
  const { spec, remoteDir } = job;
  const last = spec.order.length - 1;
  const step = spec.order[last];
  let data: unknown = null;
  if (step.kind === 'function' || step.outputs.length > 0) {
    const read = await ssh.exec(`cat ${shellPath(`${remoteDir}/${outputFile(last, step.kind)}`)}`);
    if (read.code === 0) data = parseOutput(read.stdout, step.kind, step.outputs);
  }
  const downloads = spec.remote?.downloads ?? [];
  if (downloads.length) {
    const target = localOutputDir(job.stateDir, job.id, spec);
    const home = (await ssh.exec('printf "%s" "$HOME"')).stdout;
    const files = await ssh.files();
    for (const file of downloads) {
      const to = join(target, file);
      mkdirSync(dirname(to), { recursive: true });
      try {
        await files.get(`${absoluteRemote(remoteDir, home)}/${file}`, to);
      } catch (err) {
        if (!ssh.connected) throw err;
        log.warn(`ResultFetcher: job ${job.id}: could not download ${file} from ${ssh.target.name}: ${errorMessage(err)}`, { job: job.id });
      }
    }
    log.info(`ResultFetcher: job ${job.id}: downloaded ${downloads.join(', ')} into ${target}`, { job: job.id });
  }
  return data;
}

function localOutputDir(stateDir: string, id: string, spec: JobSpec): string {
  const configured = spec.remote?.localOutputDir;
  if (!configured) return jobDir(stateDir, id);
  return isAbsolute(configured) ? configured : resolve(spec.baseDir, configured);
}

function parseOutput(text: string, kind: 'run' | 'function', outputs: string[]): unknown {
  if (kind === 'run') return { [outputs[0]]: text.trim() };
  try {
    const stored = JSON.parse(text) as { outputs: Record<string, unknown> | null; value?: unknown };
    return stored.outputs ?? stored.value ?? null;
  } catch {
    return null;
  }
}
