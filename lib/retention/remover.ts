import { rm } from 'node:fs/promises';
import type { Config } from '../config/config.js';
import type { Store } from '../store/store.js';
import type { JobRecord } from '../store/job-record.js';
import { jobDir } from '../runs/paths.js';
import { remoteJobDir } from '../backends/remote/paths.js';
import { specOfRecord } from '../jobfile/record-spec.js';
import { HostRegistry } from '../ssh/hosts.js';
import { SshPool } from '../ssh/pool.js';
import { shellPath } from '../util/shell.js';
import { errorMessage } from '../util/errors.js';
import type { Logger } from '../util/log.js';

// Removing finished jobs with all they own, for retention and `jobmanager purge`:
//   1. their records are read (where each ran, its definition: where its remote directory is);
//   2. Redis forgets them in one step (removeJobs-N.lua), and only those final at that instant:
//      a job retried meanwhile is kept, with its files;
//   3. StateDir/jobs/<id>/ of each one removed goes;
//   4. on SSH hosts, their directories go, one `rm -rf` per host, best effort: a host that is
//      marked down, no longer known (an EC2 instance that ended: its disk went with it) or that
//      does not answer keeps them, and the log says how many and where. Nothing comes back for
//      them later: the records that named them are gone.

export interface Removal {
  removed: string[];
  /** Jobs that are not final: kept, with the state they have. */
  kept: { id: string; state: string }[];
  unknown: string[];
}

/** How long one host gets for its `rm -rf` (a blackholed host must not hold retention up). */
const REMOTE_TIMEOUT_MS = 30_000;

export class JobRemover {
  private pool: SshPool | null = null;

  constructor(
    private readonly config: Config,
    private readonly store: Store,
    private readonly log: Logger,
    private readonly hosts: HostRegistry = new HostRegistry(config, store),
  ) {}

  async remove(ids: string[]): Promise<Removal> {
    const removal: Removal = { removed: [], kept: [], unknown: [] };
    // Ids become paths: only numbers are job ids (anything else was never a job's).
    const valid = ids.filter((id) => /^\d+$/.test(id));
    removal.unknown.push(...ids.filter((id) => !/^\d+$/.test(id)));
    if (valid.length === 0) return removal;
    const records = await this.store.getJobs(valid);
    const results = await this.store.removeJobs(valid);
    const remote = new Map<string, string[]>();
    const storeId = await this.store.storeId();
    for (let i = 0; i < valid.length; i++) {
      const [id, result, record] = [valid[i], results[i], records[i]];
      if (result === 'unknown') removal.unknown.push(id);
      if (result !== 'removed') {
        if (result !== 'unknown') removal.kept.push({ id, state: result });
        continue;
      }
      removal.removed.push(id);
      await rm(jobDir(this.config.stateDir, id), { recursive: true, force: true }).catch((err: unknown) => this.log.warn(`retention: job ${id}: its directory stays: ${errorMessage(err)}`));
      const host = remoteHostOf(record);
      if (host && record) {
        const dir = remoteJobDir({ deployment: this.config.deployment, storeId }, host, id, specOfRecord(record));
        remote.set(host, [...(remote.get(host) ?? []), dir]);
      }
    }
    await Promise.all([...remote].map(([host, dirs]) => this.removeRemote(host, dirs)));
    return removal;
  }

  private async removeRemote(host: string, dirs: string[]): Promise<void> {
    const left = (why: string) => this.log.warn(`retention: ${dirs.length} job directories stay on ${host} (${why}), e.g. ${dirs[0]}`);
    await this.hosts.refresh();
    if (!this.hosts.get(host)) return; // an instance that ended, a host taken out of the config: nothing to reach
    if (this.hosts.isDown(host)) return left('the host is marked down');
    this.pool ??= new SshPool(this.hosts, this.config, this.log);
    let timer: NodeJS.Timeout | undefined;
    try {
      // Many ids a host: xargs-sized batches would be needless here, the paths are short and
      // `sh -s` reads its script from standard input, not the command line.
      const script = dirs.map((d) => `rm -rf -- ${shellPath(d)}`).join('\n') + '\n';
      const timeout = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`no answer in ${REMOTE_TIMEOUT_MS / 1000}s`)), REMOTE_TIMEOUT_MS); });
      const result = await Promise.race([this.pool.connection(host).exec(script), timeout]);
      if (result.code !== 0) left(`rm exited ${result.code}`);
    } catch (err) {
      left(errorMessage(err));
    } finally {
      clearTimeout(timer);
    }
  }

  /** Idempotent. */
  close(): void {
    this.pool?.closeAll();
    this.pool = null;
  }
}

/** The SSH host a job's last run was on (host:<name>), or null (local and thread jobs). */
function remoteHostOf(record: JobRecord | null): string | null {
  return record?.host?.startsWith('host:') ? record.host.slice(5) : null;
}
