// Every Redis key JobManager uses is built here. All keys of one deployment share the hash tag
// {deployment}, so each Lua script touches one slot and also runs on Redis Cluster.
//
// The old tool's names stay visible: Job_Queue, Granted_Queue, Running_Queue, LocalJobs,
// RemoteJobs.
//
//   Job_Queue            list   intake: ids pushed by `queue`, routed by the manager
//   Job_Queue:<location> list   validated jobs waiting for room at a location (local, host:<name>…)
//   Delayed              zset   id → time a retry may run again
//   Granted_Queue        list   launch payloads of jobs granted a slot, for the starter
//   Running_Queue        zset   id → next time the fetcher looks at it
//   LocalJobs            set    ids holding one of the LocalMaxJobs slots
//   RemoteJobs:<host>    set    ids holding one of the host's slots
//   Jobs                 zset   every job id (score = id), for listings
//   job:<id>             hash   the job record
//   job:<id>:runs        list   one JSON entry per finished run
//   Events               stream every state change (job, state, run, reason)
//   Signal:<actor>       list   wake-up tokens an actor blocks on (losing one is harmless)
//   Runlogs              hash   epoch → run log path of local launchers with jobs in flight
//   Supervisor           hash   the running supervisor's pid, host, actors, heartbeat
//   Hosts                hash   host name → connection (JSON) of hosts named only in job files
//   HostState            hash   host name → {state: up|down, since, reason} (JSON)
//   RemoteLogs           hash   host name → how far its run log has been read (bytes)
//   Instances            hash   launch token → EC2 instance record (JSON), see lib/backends/ec2/instances.ts
//   StoreId              string this Redis's random id, set once: keeps the files its jobs leave
//                               on hosts apart from another Redis's (lib/backends/remote/paths.ts)

export type Location = string; // 'local' | `host:${name}` | 'any' | 'ec2'

export class Keys {
  readonly prefix: string;
  constructor(readonly deployment: string) {
    this.prefix = `jm:{${deployment}}:`;
  }
  private k(name: string): string {
    return this.prefix + name;
  }
  get jobQueue(): string { return this.k('Job_Queue'); }
  locationQueue(location: Location): string { return this.k(`Job_Queue:${location}`); }
  get delayed(): string { return this.k('Delayed'); }
  get grantedQueue(): string { return this.k('Granted_Queue'); }
  get runningQueue(): string { return this.k('Running_Queue'); }
  get localJobs(): string { return this.k('LocalJobs'); }
  remoteJobs(host: string): string { return this.k(`RemoteJobs:${host}`); }
  get jobs(): string { return this.k('Jobs'); }
  job(id: string): string { return this.k(`job:${id}`); }
  jobRuns(id: string): string { return this.k(`job:${id}:runs`); }
  get events(): string { return this.k('Events'); }
  get nextId(): string { return this.k('NextId'); }
  signal(actor: 'manager' | 'starter' | 'fetcher'): string { return this.k(`Signal:${actor}`); }
  get runlogs(): string { return this.k('Runlogs'); }
  get epoch(): string { return this.k('Epoch'); }
  get supervisor(): string { return this.k('Supervisor'); }
  get control(): string { return this.k('Control'); }
  get hosts(): string { return this.k('Hosts'); }
  get hostState(): string { return this.k('HostState'); }
  get remoteLogs(): string { return this.k('RemoteLogs'); }
  get instances(): string { return this.k('Instances'); }
  get storeId(): string { return this.k('StoreId'); }
  /** The EC2 locations (ec2:<image>:<type>) jobs have been queued for. */
  get ec2Locations(): string { return this.k('Ec2Locations'); }
  /** The slot set that a location's jobs hold. */
  slotSet(location: Location): string {
    if (location === 'local') return this.localJobs;
    if (location.startsWith('host:')) return this.remoteJobs(location.slice(5));
    return this.k(`Slots:${location}`);
  }
}
