import { mkdirSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import type { DownloadsOn } from '../../config/config.js';
import type { JobSpec } from '../../jobfile/job-spec.js';
import type { RunOutcome } from '../../runs/outcome.js';
import { outputFile } from '../../runtime/layout.js';
import { jobDir } from '../../runs/paths.js';
import type { SshConnection } from '../../ssh/connection.js';
import type { DownloadFailure, Store } from '../../store/store.js';
import { errorMessage } from '../../util/errors.js';
import type { Logger } from '../../util/log.js';
import { shellPath } from '../../util/shell.js';
import { absoluteRemote } from './paths.js';

// What a remote run leaves to collect: the last step's outputs (read on the host) when it
// succeeded, and the job's Downloads, copied into its LocalOutputDir (default: the job's local
// directory) whatever the outcome with DownloadsOn: always (the default), so that a failed job's
// evidence does not stay on the host (nor go with an EC2 instance when it is terminated).
//
// A download that fails is noted on the job (noteDownloads-0.lua), for `show` and the web page,
// before the run's end is recorded; a connection that breaks meanwhile is thrown instead: the
// fetcher collects again when the host answers, as for any result it cannot read yet.

export interface CollectedRun {
  id: string;
  run: number;
  spec: JobSpec;
  remoteDir: string;
  /** The run never started on the host (its launch found no job directory, say): nothing to fetch. */
  notStarted: boolean;
}

export interface CollectSettings {
  stateDir: string;
  downloadsOn: DownloadsOn;
  store: Store;
  log: Logger;
}

/** At most this many failures are noted (the rest are counted), each reason cut to this length: a record stays small. */
const MAX_NOTED = 20;
const MAX_REASON = 200;

export async function collectRemote(ssh: SshConnection, job: CollectedRun, outcome: RunOutcome, settings: CollectSettings): Promise<unknown> {
  const { spec, remoteDir } = job;
  const last = spec.order.length - 1;
  const step = spec.order[last];
  let data: unknown = null;
  if (outcome.kind === 'succeeded' && (step.kind === 'function' || step.outputs.length > 0)) {
    const read = await ssh.exec(`cat ${shellPath(`${remoteDir}/${outputFile(last, step.kind)}`)}`);
    if (read.code === 0) data = parseOutput(read.stdout, step.kind, step.outputs);
  }
  const downloads = spec.remote?.downloads ?? [];
  const wanted = outcome.kind === 'succeeded' || (outcome.kind === 'failed' && settings.downloadsOn === 'always');
  if (downloads.length && wanted && !job.notStarted) await download(ssh, job, downloads, settings);
  return data;
}

async function download(ssh: SshConnection, job: CollectedRun, downloads: string[], settings: CollectSettings): Promise<void> {
  const { log } = settings;
  const target = localOutputDir(settings.stateDir, job.id, job.spec);
  const home = (await ssh.exec('printf "%s" "$HOME"')).stdout;
  const files = await ssh.files();
  const failed: DownloadFailure[] = [];
  const fetched: string[] = [];
  for (const file of downloads) {
    const to = join(target, file);
    try {
      mkdirSync(dirname(to), { recursive: true });
      await files.get(`${absoluteRemote(job.remoteDir, home)}/${file}`, to);
      fetched.push(file);
    } catch (err) {
      if (!ssh.connected) throw err;
      failed.push({ file, reason: errorMessage(err).slice(0, MAX_REASON) });
      log.warn(`ResultFetcher: job ${job.id}: could not download ${file} from ${ssh.target.name}: ${errorMessage(err)}`, { job: job.id });
    }
  }
  if (fetched.length) log.info(`ResultFetcher: job ${job.id}: downloaded ${fetched.join(', ')} into ${target}`, { job: job.id });
  const noted = failed.length > MAX_NOTED ? [...failed.slice(0, MAX_NOTED - 1), { file: `… ${failed.length - MAX_NOTED + 1} more`, reason: 'see the supervisor log' }] : failed;
  await settings.store.noteDownloads(job.id, job.run, noted);
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
