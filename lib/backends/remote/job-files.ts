import { basename, extname, isAbsolute, join } from 'node:path';
import type { JobSpec } from '../../jobfile/job-spec.js';
import { INTERNAL_DIR } from '../../runtime/layout.js';
import { RemoteFileError, type RemoteFiles, type SshConnection, type Source } from '../../ssh/connection.js';
import { eachLimited, PARALLEL_FILES, walkTree } from '../../ssh/remote-files.js';
import { DIST_DIR } from '../../util/paths.js';
import { shq } from '../../util/shell.js';
import { RUNTIME_FILES } from './paths.js';

// What a remote job brings to its host before it starts, over SFTP or exec channels alike
// (lib/ssh/remote-files.ts): its modules, its Uploads (files and whole directory trees), and,
// for Function steps, job.json (its spec with the modules' paths on the host). The step runner
// those steps need is copied once per host and deployment (ensureRuntime).

export interface JobFiles {
  id: string;
  run: number;
  attempt: number;
  spec: JobSpec;
  raw: unknown;
}

/** Does the job bring files (so the connection's file transfer is needed at all)? */
export function needsFiles(spec: JobSpec): boolean {
  return Object.keys(spec.modules).length > 0 || (spec.remote?.uploads.length ?? 0) > 0 || spec.order.some((step) => step.kind === 'function');
}

/** Copies the job's files into `dir` (absolute, on the host). Every directory is made in one command. */
export async function uploadJobFiles(ssh: SshConnection, files: RemoteFiles, dir: string, job: JobFiles): Promise<void> {
  const dirs: string[] = [`${dir}/${INTERNAL_DIR}`];
  const copies: { source: Source; remote: string }[] = [];
  const modules: Record<string, string> = {};
  for (const [key, path] of Object.entries(job.spec.modules)) {
    modules[key] = `${dir}/${INTERNAL_DIR}/modules/${key}${extname(path) || '.mjs'}`;
    copies.push({ source: { path }, remote: modules[key] });
  }
  if (copies.length) dirs.push(`${dir}/${INTERNAL_DIR}/modules`);
  for (const upload of job.spec.remote?.uploads ?? []) {
    const local = isAbsolute(upload) ? upload : join(job.spec.baseDir, upload);
    const root = `${dir}/${basename(local)}`;
    const tree = walkTree(local);
    dirs.push(...tree.dirs.map((d) => (d ? `${root}/${d}` : root)));
    copies.push(...tree.files.map((f) => ({ source: { path: f ? join(local, f) : local }, remote: f ? `${root}/${f}` : root })));
  }
  if (job.spec.order.some((step) => step.kind === 'function')) {
    const remoteSpec: JobSpec = { ...job.spec, modules };
    copies.push({ source: { data: JSON.stringify({ jobId: job.id, run: job.run, attempt: job.attempt, spec: remoteSpec, raw: job.raw }) }, remote: `${dir}/${INTERNAL_DIR}/job.json` });
  }
  await makeDirs(ssh, dirs);
  await eachLimited(copies, PARALLEL_FILES, (copy) => files.put(copy.source, copy.remote));
}

/**
 * The step runner for Function steps, in `dir` (absolute; named by its content's hash, so a
 * copy there is the right one). step-runner.js goes last: once it is there, the rest is.
 */
export async function ensureRuntime(ssh: SshConnection, files: RemoteFiles, dir: string): Promise<void> {
  const present = await ssh.exec(`test -f ${shq(`${dir}/step-runner.js`)} && echo yes || mkdir -p ${shq(dir)}`);
  if (present.stdout.includes('yes')) return;
  await files.put({ data: JSON.stringify({ type: 'module' }) }, `${dir}/package.json`);
  for (const file of [...RUNTIME_FILES].reverse()) await files.put({ path: join(DIST_DIR, 'lib', 'runtime', file) }, `${dir}/${file}`);
}

async function makeDirs(ssh: SshConnection, dirs: string[]): Promise<void> {
  const made = await ssh.exec(`mkdir -p ${dirs.map(shq).join(' ')}`);
  if (made.code !== 0) throw new RemoteFileError(`mkdir: ${made.stderr.trim() || `exit code ${made.code}`}`);
}
