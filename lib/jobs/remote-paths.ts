import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DIST_DIR } from '../paths.js';
import type { JobSpec } from '../spec/job-spec.js';

// Where remote jobs live on a host (paths may start with ~/, the remote user's home). The host's
// name is part of the path, so hosts that share a home directory (NFS) keep apart:
//   ~/.jobmanager/<deployment>/<host>/run.log          the host's run log (its jobs append to it)
//   ~/.jobmanager/<deployment>/<host>/jobs/<id>/       a job's directory (or RemoteWorkingDir/<deployment>-<id>)
//   ~/.jobmanager/<deployment>/runtime/<hash>/         the step runner, for Function steps

export function remoteBase(deployment: string, host: string): string {
  return `~/.jobmanager/${deployment}/${host}`;
}

export function remoteRunLog(deployment: string, host: string): string {
  return `${remoteBase(deployment, host)}/run.log`;
}

export function remoteJobDir(deployment: string, host: string, jobId: string, spec: JobSpec | null): string {
  const workingDir = spec?.remote?.remoteWorkingDir;
  if (workingDir) return `${workingDir.replace(/\/+$/, '')}/${deployment}-${jobId}`;
  return `${remoteBase(deployment, host)}/jobs/${jobId}`;
}

/** The files copied to a host for Function steps: the step runner and what it imports. */
export const RUNTIME_FILES = ['step-runner.js', 'function-step.js', 'layout.js'];

let runtimeHash: string | null = null;
export function remoteRuntimeDir(deployment: string): string {
  if (!runtimeHash) {
    const hash = createHash('sha256');
    for (const file of RUNTIME_FILES) hash.update(readFileSync(join(DIST_DIR, 'lib', 'jobs', file)));
    runtimeHash = hash.digest('hex').slice(0, 12);
  }
  return `~/.jobmanager/${deployment}/runtime/${runtimeHash}`;
}

/** A remote path with ~/ resolved against the remote home (SFTP does not expand ~). */
export function absoluteRemote(path: string, home: string): string {
  return path === '~' ? home : path.startsWith('~/') ? `${home}/${path.slice(2)}` : path;
}
