import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DIST_DIR } from '../../util/paths.js';
import type { JobSpec } from '../../jobfile/job-spec.js';

// Where remote jobs live on a host (paths may start with ~/, the remote user's home). The host's
// name is part of the path, so hosts that share a home directory (NFS) keep apart:
//   ~/.jobmanager/<deployment>/<store>/<host>/run.log      the host's run log (its jobs append to it)
//   ~/.jobmanager/<deployment>/<store>/<host>/jobs/<id>/   a job's directory
//                                  (or RemoteWorkingDir/<deployment>-<store>-<id>)
//   ~/.jobmanager/<deployment>/runtime/<hash>/             the step runner, for Function steps
//
// <store> is the id of the Redis that holds the jobs (Store.storeId()). Job ids, run numbers and
// run log offsets count from the start in a new Redis, so without it a deployment whose Redis was
// replaced (its state directory wiped, say) met the old jobs' directories, claims, status files
// and run log on its hosts and took them for its own: the new job 1 found claim-1.1, never
// started, and was recorded with the old job 1's exit status (chaos run, seed 2).

/** Whose files, on a host: the deployment's, and of those, the ones of this Redis's jobs. */
export interface RemoteScope {
  deployment: string;
  storeId: string;
}

export function remoteBase(scope: RemoteScope, host: string): string {
  return `~/.jobmanager/${scope.deployment}/${scope.storeId}/${host}`;
}

export function remoteRunLog(scope: RemoteScope, host: string): string {
  return `${remoteBase(scope, host)}/run.log`;
}

export function remoteJobDir(scope: RemoteScope, host: string, jobId: string, spec: JobSpec | null): string {
  const workingDir = spec?.remote?.remoteWorkingDir;
  if (workingDir) return `${workingDir.replace(/\/+$/, '')}/${scope.deployment}-${scope.storeId}-${jobId}`;
  return `${remoteBase(scope, host)}/jobs/${jobId}`;
}

/** The files copied to a host for Function steps: the step runner and what it imports. */
export const RUNTIME_FILES = ['step-runner.js', 'function-step.js', 'layout.js'];

let runtimeHash: string | null = null;
/** Shared by every store's jobs: its name is the hash of what it holds. */
export function remoteRuntimeDir(deployment: string): string {
  if (!runtimeHash) {
    const hash = createHash('sha256');
    for (const file of RUNTIME_FILES) hash.update(readFileSync(join(DIST_DIR, 'lib', 'runtime', file)));
    runtimeHash = hash.digest('hex').slice(0, 12);
  }
  return `~/.jobmanager/${deployment}/runtime/${runtimeHash}`;
}

/** A remote path with ~/ resolved against the remote home (SFTP does not expand ~). */
export function absoluteRemote(path: string, home: string): string {
  return path === '~' ? home : path.startsWith('~/') ? `${home}/${path.slice(2)}` : path;
}
