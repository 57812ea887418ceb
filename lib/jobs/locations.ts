import type { Config } from '../config/config.js';
import type { JobSpec } from '../spec/job-spec.js';
import type { Keys, Location } from '../store/keys.js';
import type { GrantPool } from '../store/store.js';

// Where a job runs, as a location name, and the slot pools the manager grants from.
//   local       Local and Thread jobs: LocalMaxJobs slots (the set LocalJobs)

export function locationOf(spec: JobSpec, _config: Config): Location | { reason: string } {
  switch (spec.classType) {
    case 'Local':
    case 'Thread':
      return 'local';
    case 'Remote':
    case 'EC2':
      return { reason: `ClassType ${spec.classType} is not supported by this version yet` };
  }
}

export function poolsFor(config: Config, keys: Keys): GrantPool[] {
  return [{ location: 'local', slotKey: keys.localJobs, limit: config.localMaxJobs, queues: ['local'] }];
}
