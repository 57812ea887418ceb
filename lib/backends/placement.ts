import type { Config } from '../config/config.js';
import type { JobSpec } from '../jobfile/job-spec.js';
import { nodeLocation, type Location } from '../store/keys.js';
import type { GrantPool } from '../store/store.js';
import { configuredHosts, type Host, type HostRegistry } from '../ssh/hosts.js';
import { SshConfigError } from '../ssh/errors.js';
import type { SshRoute } from '../ssh/handshake.js';
import { resolveHost } from '../ssh/ssh-config.js';

// Where a job runs, as a location, and the slot pools the manager grants from.
//   local         Local and Thread jobs that may run on any node: a queue only, which every
//                 node's own pool draws from after its own queue
//   local:<node>  Local and Thread jobs of one node (Node: in the job file): a queue, and the
//                 node's LocalMaxJobs slots (the set LocalJobs:<node>), which only that node's
//                 supervisor grants (its local run logs and launcher are on its machine)
//   host:<name>   Remote jobs for that host: its Slots (the set RemoteJobs:<name>)
//   any           Remote jobs with Hostname: any: a slot on any configured host that has one
//   ec2:<image>:<type>   EC2 jobs: a slot of an instance launched for that image and type (the
//                 type of the job file, or the config's first InstanceTypes; the instance may be
//                 of a later one of those, tried on capacity errors)

export type Placement = { location: Location; adhoc?: Host } | { reason: string };

export function locationOf(spec: JobSpec, config: Config): Placement {
  switch (spec.classType) {
    case 'Local':
    case 'Thread':
      // Without Node: the shared local queue, which every node's pool draws from (poolsFor).
      return { location: spec.node ? nodeLocation(spec.node) : 'local' };
    case 'Remote':
      return remoteLocation(spec, config);
    case 'EC2': {
      const imageId = spec.ec2?.imageId ?? config.ec2.imageId;
      if (!imageId) return { reason: 'EC2 jobs need an image: set EC2.ImageId in the config (or ImageId in the job file)' };
      if (!config.ec2.key && !process.env.SSH_AUTH_SOCK) return { reason: 'EC2 jobs need EC2.Key in the config (the private key of EC2.KeyName) or an ssh-agent' };
      return { location: `ec2:${imageId}:${spec.ec2?.instanceType ?? config.ec2.instanceTypes[0]}` };
    }
  }
}

function remoteLocation(spec: JobSpec, config: Config): Placement {
  const remote = spec.remote!;
  const hostname = remote.hostname!;
  const hosts = configuredHosts(config);
  if (hostname === 'any') {
    if (hosts.length === 0) return { reason: 'Hostname: any needs hosts in the config (Hosts: [...]); none are configured' };
    return { location: 'any' };
  }
  const configured = config.hosts.find((h) => h.name === hostname || h.alias === hostname || h.hostname === hostname);
  if (configured) {
    for (const [key, value] of [['Username', remote.username], ['Port', remote.port], ['Key', remote.key]] as const) {
      if (value !== null) return { reason: `${key} is set in the job file, but ${hostname} is a host from the config, which says how to reach it: remove ${key} from the job file (or change the config)` };
    }
    return { location: `host:${configured.name}` };
  }
  // A host only this job file names, as the old tool's RemoteJob did; ~/.ssh/config may know it
  // (an alias, its user, port, keys, jump host), and the job file's own keys win over it.
  let route: SshRoute;
  try {
    route = resolveHost(config.sshConfig, { name: hostname, port: remote.port, username: remote.username, key: remote.key });
  } catch (err) {
    if (err instanceof SshConfigError) return { reason: err.message };
    throw err;
  }
  const name = remote.port !== null && remote.port !== 22 ? `${hostname}_${remote.port}` : hostname;
  return { location: `host:${name}`, adhoc: { name, ...route, slots: config.remoteMaxJobsPerHost, adhoc: true } };
}

export function poolsFor(config: Config, hosts: HostRegistry | null = null): GrantPool[] {
  // A node's own queue first: a job that asked for this node can run nowhere else.
  const own = nodeLocation(config.nodeName);
  const pools: GrantPool[] = [{ location: own, limit: config.localMaxJobs, queues: [own, 'local'] }];
  for (const host of hosts?.all() ?? configuredHosts(config)) {
    if (hosts?.isDown(host.name)) continue;
    const location = `host:${host.name}`;
    pools.push({ location, limit: host.slots, queues: host.queues ?? (host.adhoc ? [location] : [location, 'any']) });
  }
  return pools;
}
