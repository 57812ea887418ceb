// Every Redis key JobManager uses is built here (and nowhere else: a Lua script is given its keys
// in KEYS, or, for a key it only finds inside Redis -- the record of a job id popped from a queue
// -- builds it with lua/includes/keys.lua, which mirrors this file; spec/store.spec.ts checks that
// both build the same names). All keys of one deployment share the hash tag {deployment}, so each
// Lua script touches one hash slot and also runs on Redis Cluster.
//
// The old tool's names stay visible: Job_Queue, Granted_Queue, Running_Queue, LocalJobs,
// RemoteJobs.
//
//   Job_Queue            list   intake: ids pushed by `queue`, routed by the manager
//   Job_Queue:<location> list   validated jobs waiting for room at a location (local: any node's,
//                               local:<node>, host:<name>, any, ec2:<image>:<type>)
//   Delayed              zset   id → time a retry may run again
//   Granted_Queue:<node> list   launch payloads of jobs the node granted a slot, for its starter
//   Running_Queue:<node> zset   id → next time the node's fetcher looks at it
//   LocalJobs:<node>     set    ids holding one of the node's LocalMaxJobs slots
//   RemoteJobs:<host>    set    ids holding one of the host's slots (EC2 instances are hosts)
//   Slots:<location>     set    the slots of any other location: none today (jobs of `any` and
//                               of ec2: locations take a host's slot); named so that every slot
//                               location names a set
//   Jobs                 zset   every job id (score = id), for listings
//   NextId               string the last job id given
//   Named:<name>         zset   the jobs of that name, for selectors (lib/cli/selectors.ts): a job's
//                               id, or a sweep's range `first-last`; score = the first id
//   sweep:<first id>     hash   a sweep's shared definition (name, raw, file, baseDir, classType,
//                               first, count; spec once routed): its jobs hold only their row
//   submission:<token>   string the id a `queue` submission got (a day), so a retry is not a 2nd job
//   job:<id>             hash   the job record (lib/store/job-record.ts)
//   job:<id>:runs        list   one JSON entry per finished run
//   Events               stream every state change (job, state, run, reason)
//   Signal:<actor>       list   wake-up tokens an actor blocks on (losing one is harmless); the
//                               first node's actor to wait takes it
//   Signal:<actor>:<node> list  wake-up tokens for one node's actor (the manager: jobs were
//                               routed to a queue every node draws from)
//   Control              list   commands for the supervisor (`jobmanager debug crash-actor`)
//   Epoch                string the last starter incarnation number given (a new launcher and run log)
//   Runlogs:<node>       hash   epoch → run log path of the node's local launchers with jobs in flight
//   Supervisor:<node>    hash   the node's supervisor: pid, host, actors, heartbeat
//   Nodes                hash   node name → its lease (JSON: host, pid, state dir, since, renewedAt,
//                               LocalMaxJobs), renewed by its heartbeat (lib/nodes/)
//   Ec2Lease             string the node that provisions EC2 and ends idle instances (PX: lapses)
//   Hosts                hash   host name → connection (JSON) of hosts named only in job files
//   HostState            hash   host name → {state: up|down, since, reason} (JSON)
//   RemoteLogs           hash   host name → how far its run log has been read (bytes)
//   HostLeases           hash   host name → when (ms) the starter last sent it a launch, which
//                               renews the host's lease (lib/backends/remote/lease.ts)
//   Unreachable          hash   host name → since when a fetcher has not reached it, and when it
//                               last tried (JSON): a fetcher started anew counts on from there
//   Instances            hash   launch token → EC2 instance record (JSON), see registry-records.ts
//   Ec2Locations         set    the EC2 locations (ec2:<image>:<type>) jobs have been queued for
//   ReplicaMark          string a counter the starter increments after a take, through Redis
//                               Sentinel only, so that WAIT covers the take (replica-wait.ts)
//   StoreId              string this Redis's random id, set once: keeps the files its jobs leave
//                               on hosts apart from another Redis's (lib/backends/remote/paths.ts)
//
// Before nodes (issue 12) one supervisor used LocalJobs, Granted_Queue, Running_Queue, Runlogs
// and Supervisor without a node; `legacy` names them, for the node that adopts them
// (lib/nodes/adopt.ts).

import { defaultNodeName } from '../nodes/node-name.js';

export type Location = string; // 'local' | `local:${node}` | `host:${name}` | 'any' | `ec2:${image}:${type}`
export type ActorName = 'manager' | 'starter' | 'fetcher';

/** The location of a node's local slots (its LocalMaxJobs): local:<node>. */
export function nodeLocation(node: string): Location {
  return `local:${node}`;
}

export class Keys {
  /** What every key starts with; scripts that build keys (includes/keys.lua) are given it as a KEY. */
  readonly prefix: string;
  /**
   * `node`: the node whose own keys (Granted_Queue, Running_Queue, LocalJobs, Runlogs, Supervisor)
   * the getters name; other nodes' are named by the methods that take a node.
   */
  constructor(
    readonly deployment: string,
    readonly node: string = defaultNodeName(),
  ) {
    this.prefix = `jm:{${deployment}}:`;
  }
  private k(name: string): string {
    return this.prefix + name;
  }
  get jobQueue(): string { return this.k('Job_Queue'); }
  locationQueue(location: Location): string { return this.k(`Job_Queue:${location}`); }
  get delayed(): string { return this.k('Delayed'); }
  get grantedQueue(): string { return this.grantedQueueOf(this.node); }
  grantedQueueOf(node: string): string { return this.k(`Granted_Queue:${node}`); }
  get runningQueue(): string { return this.runningQueueOf(this.node); }
  runningQueueOf(node: string): string { return this.k(`Running_Queue:${node}`); }
  get localJobs(): string { return this.slotSet(nodeLocation(this.node)); }
  remoteJobs(host: string): string { return this.k(`RemoteJobs:${host}`); }
  /** The pattern every host's slot set matches (SCAN; the host's name follows the prefix). */
  get remoteJobsPattern(): { match: string; prefix: string } { return { match: this.k('RemoteJobs:*'), prefix: this.k('RemoteJobs:') }; }
  get jobs(): string { return this.k('Jobs'); }
  get nextId(): string { return this.k('NextId'); }
  named(name: string): string { return this.k(`Named:${name}`); }
  sweep(first: string): string { return this.k(`sweep:${first}`); }
  submission(token: string): string { return this.k(`submission:${token}`); }
  job(id: string): string { return this.k(`job:${id}`); }
  jobRuns(id: string): string { return this.k(`job:${id}:runs`); }
  get events(): string { return this.k('Events'); }
  signal(actor: ActorName): string { return this.k(`Signal:${actor}`); }
  /** Wake-ups for one node's actor (Signal:<actor> wakes whichever node's takes it first). */
  nodeSignal(actor: ActorName, node = this.node): string { return this.k(`Signal:${actor}:${node}`); }
  get control(): string { return this.k('Control'); }
  get epoch(): string { return this.k('Epoch'); }
  get runlogs(): string { return this.runlogsOf(this.node); }
  runlogsOf(node: string): string { return this.k(`Runlogs:${node}`); }
  get supervisor(): string { return this.supervisorOf(this.node); }
  supervisorOf(node: string): string { return this.k(`Supervisor:${node}`); }
  get nodes(): string { return this.k('Nodes'); }
  get ec2Lease(): string { return this.k('Ec2Lease'); }
  /** The keys one supervisor used before nodes (see the header). */
  get legacy(): { localJobs: string; grantedQueue: string; runningQueue: string; runlogs: string; supervisor: string } {
    return { localJobs: this.k('LocalJobs'), grantedQueue: this.k('Granted_Queue'), runningQueue: this.k('Running_Queue'), runlogs: this.k('Runlogs'), supervisor: this.k('Supervisor') };
  }
  get hosts(): string { return this.k('Hosts'); }
  get hostState(): string { return this.k('HostState'); }
  get remoteLogs(): string { return this.k('RemoteLogs'); }
  get hostLeases(): string { return this.k('HostLeases'); }
  get unreachable(): string { return this.k('Unreachable'); }
  get instances(): string { return this.k('Instances'); }
  get ec2Locations(): string { return this.k('Ec2Locations'); }
  get storeId(): string { return this.k('StoreId'); }
  get replicaMark(): string { return this.k('ReplicaMark'); }
  /** The slot set that a location's jobs hold (a job record's `slot` field is such a location). */
  slotSet(location: Location): string {
    if (location === 'local') return this.k('LocalJobs'); // before nodes; adopted since
    if (location.startsWith('local:')) return this.k(`LocalJobs:${location.slice(6)}`);
    if (location.startsWith('host:')) return this.remoteJobs(location.slice(5));
    return this.k(`Slots:${location}`);
  }
}
