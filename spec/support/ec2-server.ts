import { randomBytes, randomUUID } from 'node:crypto';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTcpServer } from 'node:net';
import { chmodSync, mkdtempSync, readdirSync, rmSync, watch, type FSWatcher } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cloudInitLines, kernelLines } from './ec2-console.js';
import { Ec2Error, ec2ErrorStatus, el, errorXml, escapeRegExp, MESSAGES, node, QueryParams, readParams, responseXml } from './ec2-query.js';
import { ensureLoginUser, LOOPBACK_NET, loopbackAddress, SshHost } from './sshd.js';

// A loopback server that speaks the EC2 Query API for the calls JobManager makes, so EC2 specs
// run the real @aws-sdk/client-ec2 with no client mock. Its "instances" are real OpenSSH sshd
// hosts on 127.K.0.<firstIndex>, <firstIndex+1>, … (K: JM_SPEC_LOOPBACK_NET, see sshd.ts) that
// all listen on one port (sshPort), log in one user and authorize one client key, each with fresh
// host keys it prints to its console the way cloud-init does (ec2-console.ts). The wire format is
// in ec2-query.ts. This file stays long (~750 lines) because it is one state machine: the
// instances' lifecycle, the faults injected into it and the five calls that read and move it.
//
//   RunInstances ──▶ pending ──bootDelayMs──▶ sshd up ──▶ running ──▶ (console: host keys)
//                                   (sshReadyDelayMs > 0: running first, sshd that much later)
//   TerminateInstances ──▶ shutting-down ──sshd and its sessions killed, shutdownDelayMs──▶ terminated
//   stop() from outside ──▶ stopping ──sshd and its sessions killed, shutdownDelayMs──▶ stopped
//   the instance's own shutdown (its ShutdownCommand touched <shutdownMarkerDir>/<id>):
//     InstanceInitiatedShutdownBehavior terminate ──▶ shutting-down …; otherwise stopping …
//
// It also plays each instance's metadata service (IMDSv2 only: a PUT for a token first) at
// <endpoint>/imds/<instance address>/latest/… — `metadataEndpoint` is that with {address}, as
// EC2.MetadataEndpoint takes it — where interruptSpot() puts a spot interruption notice.
//
// What real EC2 does and this server copies, because client code must cope with it:
// - RunInstances is idempotent per ClientToken: the same token with the same parameters returns
//   the same reservation (current states) and creates nothing; other parameters are
//   IdempotentParameterMismatch. The SDK fills ClientToken itself when the caller gives none.
// - A new instance is invisible for visibilityDelayMs: DescribeInstances does not list it, and
//   every call naming its id (DescribeInstances, CreateTags, TerminateInstances,
//   GetConsoleOutput) fails with InvalidInstanceID.NotFound, as in EC2's eventual consistency.
// - Terminated instances stay listed (code 48) without private address; empty tag sets and empty
//   console output are left out of the XML, so the SDK returns `undefined` for them.
// - Errors are `<Response><Errors><Error><Code>` bodies with EC2's HTTP status. The SDK retries
//   500 and 503 (InsufficientInstanceCapacity, RequestLimitExceeded) itself, 3 attempts by default:
//   failNext() counts requests received, so `times` must cover the SDK's own retries.

const OWNER_ID = '123456789012';
const ZONE = 'us-east-1a';
const DEFAULT_SUBNET = 'subnet-0123456789abcdef0';
const DEFAULT_VPC = 'vpc-0123456789abcdef0';
const DEFAULT_GROUP = 'sg-0123456789abcdef0';
const LAST_INDEX = 254;

export type InstanceStateName = 'pending' | 'running' | 'shutting-down' | 'terminated' | 'stopping' | 'stopped';

const STATE_CODES: Record<InstanceStateName, number> = { pending: 0, running: 16, 'shutting-down': 32, terminated: 48, stopping: 64, stopped: 80 };

const MOVES: Record<InstanceStateName, InstanceStateName[]> = {
  pending: ['running', 'shutting-down'],
  running: ['shutting-down', 'stopping'],
  'shutting-down': ['terminated'],
  terminated: [],
  stopping: ['stopped', 'shutting-down'],
  stopped: ['shutting-down'],
};

/** vCPUs of the instance types DescribeInstanceTypes knows (EC2's figures). */
const INSTANCE_TYPES: Record<string, number> = {
  't3.micro': 2, 't3.small': 2, 't3.medium': 2, 't3.large': 2, 't3.xlarge': 4, 't3a.large': 2, 'm5.large': 2, 'm5.xlarge': 4,
  'c7i.large': 2, 'c7i.2xlarge': 8, 'c5.4xlarge': 16, 'm1.small': 1,
};

export interface LoopbackEc2Options {
  /** An OpenSSH public key line; every instance's sshd authorizes it for `username`. */
  clientPublicKey: string;
  /** The login user of every instance (made if missing: shell /bin/sh, no password). */
  username: string;
  /** The port every instance's sshd listens on. @defaultValue a free port */
  sshPort?: number;
  /** Instances live on 127.0.0.<firstIndex>, <firstIndex+1>, … @defaultValue 20 */
  firstIndex?: number;
  /** pending → running (its sshd started and answering). @defaultValue 300 */
  bootDelayMs?: number;
  /**
   * When above 0, an instance turns running at bootDelayMs but its sshd starts only this much
   * later (connections refused meanwhile, console without host keys), as on real EC2.
   * @defaultValue 0
   */
  sshReadyDelayMs?: number;
  /** shutting-down → terminated, counted once its sshd is dead. @defaultValue 200 */
  shutdownDelayMs?: number;
  /** A new instance is known to no call but RunInstances for this long. @defaultValue 0 */
  visibilityDelayMs?: number;
  /** GetConsoleOutput includes cloud-init's SSH HOST KEY KEYS block. @defaultValue true */
  consoleHostKeys?: boolean;
}

type CompiledOptions = Required<LoopbackEc2Options>;

/** An instance as a spec sees it (a snapshot). */
export interface LoopbackInstance {
  id: string;
  reservationId: string;
  state: InstanceStateName;
  tags: Record<string, string>;
  clientToken: string;
  /** 127.0.0.N, kept after termination (EC2 no longer reports it then). */
  address: string;
  imageId: string;
  instanceType: string;
  keyName: string | undefined;
  launchedAt: Date;
  /** The pid of its listening sshd while it has one. */
  sshdPid: number | undefined;
  /** Why its sshd did not start (or stop), if it did not. */
  sshdError: string | undefined;
  /** A one-time spot instance (InstanceMarketOptions). */
  spot: boolean;
  /** InstanceInitiatedShutdownBehavior as asked (EC2's default: stop). */
  shutdownBehavior: 'stop' | 'terminate';
}

interface Instance {
  id: string;
  reservationId: string;
  index: number;
  launchIndex: number;
  imageId: string;
  instanceType: string;
  keyName: string | undefined;
  subnetId: string;
  securityGroupIds: string[];
  clientToken: string;
  tags: Map<string, string>;
  state: InstanceStateName;
  launchedAt: Date;
  visibleAt: number;
  transitionReason: string;
  stateReason: { code: string; message: string } | null;
  host: SshHost | null;
  /** Starting its sshd; awaited before stopping it. */
  booting: Promise<void> | null;
  /** Stopping its sshd after TerminateInstances. */
  shuttingDown: Promise<void> | null;
  timers: Set<NodeJS.Timeout>;
  console: string[];
  consoleAt: Date;
  sshdError: string | undefined;
  spot: boolean;
  shutdownBehavior: 'stop' | 'terminate';
  /** The spot interruption notice its metadata service gives (JSON), once interruptSpot() was called. */
  spotNotice: string | null;
}

interface Reservation {
  id: string;
  instanceIds: string[];
  /** The RunInstances parameters, to tell a repeated request from a mismatched one. */
  fingerprint: string;
}

interface Fault {
  code: string;
  message: string;
  remaining: number;
}

export class LoopbackEc2 {
  readonly endpoint: string;
  private readonly byId = new Map<string, Instance>();
  private readonly order: Instance[] = [];
  private readonly reservations = new Map<string, Reservation>();
  private readonly byToken = new Map<string, Reservation>();
  private readonly faults = new Map<string, Fault[]>();
  private readonly received = new Map<string, Record<string, string>[]>();

  /** How long a new instance stays pending (changeable between calls). */
  get bootDelayMs(): number {
    return this.options.bootDelayMs;
  }

  set bootDelayMs(ms: number) {
    this.options.bootDelayMs = ms;
  }
  private readonly usedIndexes = new Set<number>();
  private nextIndex: number;
  private alivePeak = 0;
  private stopping = false;
  private stopped: Promise<void> | null = null;

  private constructor(
    private readonly server: Server,
    port: number,
    private readonly options: CompiledOptions,
  ) {
    this.endpoint = `http://127.0.0.1:${port}`;
    this.nextIndex = options.firstIndex;
  }

  get sshPort(): number {
    return this.options.sshPort;
  }

  get username(): string {
    return this.options.username;
  }

  /** The most instances that were at once pending, running or shutting-down. */
  get maxAlive(): number {
    return this.alivePeak;
  }

  static async start(options: LoopbackEc2Options): Promise<LoopbackEc2> {
    if (!SshHost.available()) throw new Error('LoopbackEc2 needs /usr/sbin/sshd and root (apt-get install -y openssh-server)');
    const firstIndex = options.firstIndex ?? 20;
    if (!Number.isInteger(firstIndex) || firstIndex < 2 || firstIndex > LAST_INDEX) throw new Error(`firstIndex must be 2..${LAST_INDEX}, not ${firstIndex}`);
    ensureLoginUser(options.username);
    const compiled: CompiledOptions = {
      clientPublicKey: options.clientPublicKey.trim(),
      username: options.username,
      sshPort: options.sshPort ?? (await freeSharedPort()),
      firstIndex,
      bootDelayMs: options.bootDelayMs ?? 300,
      sshReadyDelayMs: options.sshReadyDelayMs ?? 0,
      shutdownDelayMs: options.shutdownDelayMs ?? 200,
      visibilityDelayMs: options.visibilityDelayMs ?? 0,
      consoleHostKeys: options.consoleHostKeys ?? true,
    };
    const server = createHttpServer();
    // 127.0.0.1, never `localhost`: that may resolve to ::1, where nothing listens.
    const port = await new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port));
    });
    const ec2 = new LoopbackEc2(server, port, compiled);
    ec2.watchMarkers();
    server.on('request', (req, res) => void ec2.handle(req, res));
    return ec2;
  }

  // ---- fault injection and introspection ------------------------------------------------

  /**
   * The next `times` requests of `action` fail with `code`, with EC2's status for it (500 for
   * InsufficientInstanceCapacity, 503 for RequestLimitExceeded, 400 for most others). `times`
   * counts requests received: the SDK retries 500 and 503 by itself (3 attempts by default), so
   * one failed SDK call of those codes takes `times: 3`, or a client with `maxAttempts: 1`.
   */
  failNext(action: string, code: string, times = 1, message = MESSAGES[code] ?? `Injected ${code}`): void {
    const queue = this.faults.get(action) ?? [];
    queue.push({ code, message, remaining: times });
    this.faults.set(action, queue);
  }

  /** Every instance ever launched, oldest first. */
  instances(): LoopbackInstance[] {
    return this.order.map((i) => ({
      id: i.id,
      reservationId: i.reservationId,
      state: i.state,
      tags: Object.fromEntries(i.tags),
      clientToken: i.clientToken,
      address: addressOf(i.index),
      imageId: i.imageId,
      instanceType: i.instanceType,
      keyName: i.keyName,
      launchedAt: i.launchedAt,
      sshdPid: i.host?.pid,
      sshdError: i.sshdError,
      spot: i.spot,
      shutdownBehavior: i.shutdownBehavior,
    }));
  }

  /** How many requests of `action` were received (failed and injected ones included). */
  calls(action: string): number {
    return this.received.get(action)?.length ?? 0;
  }

  /** The form parameters of each request of `action` received, oldest first. */
  requests(action: string): Record<string, string>[] {
    return [...(this.received.get(action) ?? [])];
  }

  /** The sshd host behind an instance while it has one (to run checks on it, or kill it). */
  host(id: string): SshHost | undefined {
    return this.byId.get(id)?.host ?? undefined;
  }

  /** Terminate an instance from outside the API (the console, a spot reclaim). */
  terminate(id: string): void {
    this.beginTermination(this.known(id), 'Service initiated', 'Server.SpotInstanceTermination', 'Server.SpotInstanceTermination: Spot instance termination');
  }

  /** Stop an instance from outside the API (the console, a maintenance event). */
  stopInstance(id: string): void {
    this.beginStop(this.known(id), 'User initiated', 'Client.UserInitiatedShutdown', 'Client.UserInitiatedShutdown: User initiated shutdown');
  }

  /**
   * A spot interruption notice: from now on the instance's metadata service answers
   * spot/instance-action with `{"action": "terminate", "time": <2 minutes on>}`, as EC2 does
   * two minutes before it reclaims the capacity (the instance itself goes only when terminate()
   * is called).
   */
  interruptSpot(id: string): void {
    const instance = this.known(id);
    if (!instance.spot) throw new Error(`${id} is not a spot instance`);
    instance.spotNotice = JSON.stringify({ action: 'terminate', time: new Date(Date.now() + 120_000).toISOString().replace(/\.\d+Z$/, 'Z') });
  }

  /** New instances stay pending until releaseBoots() (an instance that takes as long as a spec needs). */
  holdBoots(): void {
    this.bootsHeld ??= [];
  }

  releaseBoots(): void {
    const held = this.bootsHeld ?? [];
    this.bootsHeld = null;
    for (const instance of held) this.boot(instance);
  }

  private bootsHeld: Instance[] | null = null;

  private known(id: string): Instance {
    const instance = this.byId.get(id);
    if (!instance) throw new Error(`no instance ${id}`);
    return instance;
  }

  /**
   * A ShutdownCommand that is harmless here and that this server takes for the instance shutting
   * itself down (the watchdog sets JM_INSTANCE_ID): never the machine's own shutdown.
   */
  get shutdownCommand(): string {
    return `touch ${this.markerDir}/"$JM_INSTANCE_ID"`;
  }

  /** EC2.MetadataEndpoint for instances of this server. */
  get metadataEndpoint(): string {
    return `${this.endpoint}/imds/{address}`;
  }

  /** Stops every instance's sshd (by pid) and the HTTP server. Idempotent. */
  stop(): Promise<void> {
    this.stopped ??= this.close();
    return this.stopped;
  }

  private async close(): Promise<void> {
    this.stopping = true;
    this.markerWatch?.close();
    clearInterval(this.markerTimer);
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    for (const instance of this.order) {
      for (const timer of instance.timers) clearTimeout(timer);
      instance.timers.clear();
    }
    // One failing step does not keep the others from running.
    await Promise.allSettled(this.order.map((i) => i.booting));
    await Promise.allSettled(this.order.map((i) => i.shuttingDown));
    await Promise.allSettled(this.order.map(async (i) => {
      const host = i.host;
      i.host = null;
      await host?.stop();
    }));
    await closed;
    rmSync(this.markerDir, { recursive: true, force: true });
  }

  // ---- the instances' own shutdown ---------------------------------------------------------

  private readonly markerDir = mkdtempSync(join(tmpdir(), 'jm-ec2-shutdown-'));
  private markerWatch: FSWatcher | null = null;
  private markerTimer: NodeJS.Timeout | undefined;

  /** Watches the marker directory (writable by the instances' user) for instances shutting down. */
  private watchMarkers(): void {
    chmodSync(this.markerDir, 0o1777);
    this.markerWatch = watch(this.markerDir, () => this.readMarkers());
    // fs.watch can miss an event under load: a slow look as well.
    this.markerTimer = setInterval(() => this.readMarkers(), 500);
    this.markerTimer.unref();
  }

  private readMarkers(): void {
    if (this.stopping) return;
    for (const name of readdirSync(this.markerDir)) {
      rmSync(join(this.markerDir, name), { force: true });
      const instance = this.byId.get(name);
      if (!instance) continue;
      this.shutdowns.push(name);
      const how = ['Client.InstanceInitiatedShutdown', 'Client.InstanceInitiatedShutdown: Instance initiated shutdown'] as const;
      if (instance.shutdownBehavior === 'terminate') this.beginTermination(instance, 'User initiated', ...how);
      else this.beginStop(instance, 'User initiated', ...how);
    }
  }

  /** Ids of the instances that shut themselves down (through shutdownCommand), in order. */
  readonly shutdowns: string[] = [];

  // ---- the metadata service (IMDSv2) -------------------------------------------------------

  private readonly imdsTokens = new Map<string, string>();

  /** /imds/<address>/latest/api/token (PUT) and /imds/<address>/latest/meta-data/… (GET, with a token). */
  private imds(req: IncomingMessage, res: ServerResponse): void {
    const match = /^\/imds\/([0-9.]+)\/latest\/(.*)$/.exec(req.url ?? '');
    const instance = match ? this.order.find((i) => addressOf(i.index) === match[1] && (i.state === 'running' || i.state === 'pending')) : undefined;
    const answer = (status: number, body = '') => {
      res.writeHead(status, { 'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(body) });
      res.end(body);
    };
    req.resume();
    if (!match || !instance) return answer(404);
    if (match[2] === 'api/token') {
      if (req.method !== 'PUT' || !req.headers['x-aws-ec2-metadata-token-ttl-seconds']) return answer(400);
      const token = randomBytes(16).toString('base64');
      this.imdsTokens.set(token, instance.id);
      return answer(200, token);
    }
    // IMDSv2 only (HttpTokens required): no token, no metadata.
    if (this.imdsTokens.get(String(req.headers['x-aws-ec2-metadata-token'] ?? '')) !== instance.id) return answer(401);
    if (match[2] === 'meta-data/instance-id') return answer(200, instance.id);
    if (match[2] === 'meta-data/spot/instance-action' && instance.spotNotice) return answer(200, instance.spotNotice);
    return answer(404);
  }

  // ---- HTTP ------------------------------------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.url?.startsWith('/imds/')) return this.imds(req, res);
    const requestId = randomUUID();
    let status = 200;
    let body: string;
    let action = '';
    try {
      const params = await readParams(req);
      action = params.get('Action') ?? '';
      const log = this.received.get(action) ?? [];
      log.push(params.toRecord());
      this.received.set(action, log);
      if (this.stopping) throw new Ec2Error('Unavailable', MESSAGES.Unavailable);
      this.takeFault(action);
      body = responseXml(action, requestId, this.dispatch(action, params));
    } catch (error) {
      const known = error instanceof Ec2Error ? error : new Ec2Error('InternalError', `${(error as Error).message}`);
      status = ec2ErrorStatus(known.code);
      body = errorXml(known, requestId);
    }
    const held = this.held.get(action);
    if (held) await new Promise<void>((resolve) => held.push(resolve));
    res.writeHead(status, { 'Content-Type': 'text/xml;charset=UTF-8', 'x-amzn-RequestId': requestId, 'Content-Length': Buffer.byteLength(body) });
    res.end(body);
  }

  /**
   * From now on the answers to `action` are held back (the work is done: an instance launched
   * exists) until release(): a client can be killed while its call is in flight.
   */
  hold(action: string): void {
    if (!this.held.has(action)) this.held.set(action, []);
  }

  release(action: string): void {
    const waiting = this.held.get(action) ?? [];
    this.held.delete(action);
    for (const resolve of waiting) resolve();
  }

  /** Drops every injected failure not used yet. */
  clearFaults(): void {
    this.faults.clear();
  }

  private readonly held = new Map<string, (() => void)[]>();

  private takeFault(action: string): void {
    const queue = this.faults.get(action);
    const fault = queue?.[0];
    if (!fault) return;
    fault.remaining -= 1;
    if (fault.remaining <= 0) queue.shift();
    throw new Ec2Error(fault.code, fault.message);
  }

  private dispatch(action: string, params: QueryParams): string {
    if (action === '') throw new Ec2Error('MissingAction', 'The request must contain the parameter Action');
    const handlers: Record<string, (params: QueryParams) => string> = {
      RunInstances: (p) => this.runInstances(p),
      DescribeInstances: (p) => this.describeInstances(p),
      TerminateInstances: (p) => this.terminateInstances(p),
      CreateTags: (p) => this.createTags(p),
      GetConsoleOutput: (p) => this.getConsoleOutput(p),
      DescribeInstanceTypes: (p) => this.describeInstanceTypes(p),
      DescribeImages: (p) => this.describeImages(p),
    };
    const handler = handlers[action];
    if (!handler) throw new Ec2Error('InvalidAction', `The action ${action} is not valid for this web service.`);
    if (params.get('DryRun') === 'true') throw new Ec2Error('DryRunOperation', 'Request would have succeeded, but DryRun flag is set.');
    return handler(params);
  }

  // ---- actions ---------------------------------------------------------------------------

  private runInstances(p: QueryParams): string {
    const imageId = p.required('ImageId');
    if (!/^ami-[0-9a-f]{8,17}$/.test(imageId)) throw new Ec2Error('InvalidAMIID.Malformed', `Invalid id: "${imageId}" (expecting "ami-...")`);
    const minCount = p.integer('MinCount');
    const maxCount = p.integer('MaxCount');
    if (minCount < 1 || maxCount < minCount) throw new Ec2Error('InvalidParameterValue', `Invalid counts: MinCount ${minCount}, MaxCount ${maxCount}`);
    const token = p.get('ClientToken') ?? '';
    if (token.length > 64) throw new Ec2Error('InvalidParameterValue', 'Value for parameter clientToken is invalid. Length exceeds 64 characters.');
    const fingerprint = p.fingerprint(['Action', 'Version']);
    const earlier = token ? this.byToken.get(token) : undefined;
    if (earlier) {
      if (earlier.fingerprint !== fingerprint) {
        throw new Ec2Error('IdempotentParameterMismatch', 'Arguments on this idempotent request are inconsistent with arguments used in previous request(s).');
      }
      return this.reservationXml(earlier);
    }
    const instanceType = p.get('InstanceType') ?? 'm1.small';
    const market = p.get('InstanceMarketOptions.MarketType');
    if (market !== undefined && market !== 'spot' && market !== 'capacity-block') throw new Ec2Error('InvalidParameterValue', `Value (${market}) for parameter MarketType is invalid.`);
    const spot = market === 'spot';
    const shutdownText = p.get('InstanceInitiatedShutdownBehavior') ?? 'stop';
    if (shutdownText !== 'stop' && shutdownText !== 'terminate') throw new Ec2Error('InvalidParameterValue', `Value (${shutdownText}) for parameter instanceInitiatedShutdownBehavior is invalid.`);
    // One-time spot instances cannot be stopped: EC2 refuses the combination.
    if (spot && shutdownText === 'stop' && p.get('InstanceMarketOptions.SpotOptions.SpotInstanceType') !== 'persistent') {
      throw new Ec2Error('InvalidParameterCombination', 'The parameter InstanceInitiatedShutdownBehavior "stop" is not supported for one-time spot instances.');
    }
    const shutdownBehavior: 'stop' | 'terminate' = shutdownText;
    const tokens = p.get('MetadataOptions.HttpTokens');
    if (tokens !== undefined && tokens !== 'required' && tokens !== 'optional') throw new Ec2Error('InvalidParameterValue', `Value (${tokens}) for parameter HttpTokens is invalid.`);
    const tags = new Map<string, string>();
    for (const spec of p.groups('TagSpecification')) {
      const resourceType = spec.required('ResourceType');
      for (const tag of spec.groups('Tag')) {
        const key = tag.required('Key');
        if (key.toLowerCase().startsWith('aws:')) throw new Ec2Error('InvalidParameterValue', `Tag keys starting with 'aws:' are reserved for internal use`);
        if (resourceType === 'instance') tags.set(key, tag.get('Value') ?? '');
      }
    }
    const indexes: number[] = [];
    for (let n = 0; n < maxCount; n++) {
      const index = this.allocateIndex();
      if (index === null) break;
      indexes.push(index);
    }
    if (indexes.length < minCount) {
      for (const index of indexes) this.usedIndexes.delete(index);
      throw new Ec2Error('InsufficientInstanceCapacity', `We currently do not have sufficient ${instanceType} capacity in the Availability Zone you requested (${ZONE}).`);
    }
    const reservation: Reservation = { id: `r-${hexId()}`, instanceIds: [], fingerprint };
    const now = Date.now();
    const launchedAt = new Date(Math.floor(now / 1000) * 1000);
    indexes.forEach((index, launchIndex) => {
      const instance: Instance = {
        id: `i-${hexId()}`,
        reservationId: reservation.id,
        index,
        launchIndex,
        imageId,
        instanceType,
        keyName: p.get('KeyName'),
        subnetId: p.get('SubnetId') ?? DEFAULT_SUBNET,
        securityGroupIds: p.list('SecurityGroupId').length > 0 ? p.list('SecurityGroupId') : [DEFAULT_GROUP],
        clientToken: token,
        tags: new Map(tags),
        state: 'pending',
        launchedAt,
        visibleAt: now + this.options.visibilityDelayMs,
        transitionReason: '',
        stateReason: { code: 'pending', message: 'pending' },
        host: null,
        booting: null,
        shuttingDown: null,
        timers: new Set(),
        console: [],
        consoleAt: launchedAt,
        sshdError: undefined,
        spot,
        shutdownBehavior,
        spotNotice: null,
      };
      this.byId.set(instance.id, instance);
      this.order.push(instance);
      reservation.instanceIds.push(instance.id);
      this.schedule(instance, this.options.bootDelayMs, () => this.boot(instance));
    });
    this.countAlive();
    this.reservations.set(reservation.id, reservation);
    if (token) this.byToken.set(token, reservation);
    return this.reservationXml(reservation);
  }

  private describeInstances(p: QueryParams): string {
    const ids = p.list('InstanceId');
    const filters = p.groups('Filter').map((f) => ({ name: f.required('Name'), values: f.list('Value') }));
    for (const filter of filters) checkFilterName(filter.name);
    const maxResultsText = p.get('MaxResults');
    if (maxResultsText !== undefined && ids.length > 0) {
      throw new Ec2Error('InvalidParameterCombination', 'The parameter instancesSet cannot be used with the parameter maxResults');
    }
    const maxResults = maxResultsText === undefined ? Infinity : Number(maxResultsText);
    if (maxResultsText !== undefined && (!Number.isInteger(maxResults) || maxResults < 5 || maxResults > 1000)) {
      throw new Ec2Error('InvalidParameterValue', `Value ( ${maxResultsText} ) for parameter maxResults is invalid. Expecting a value between 5 and 1000.`);
    }
    const candidates = ids.length > 0 ? this.lookUp(ids) : this.order.filter((i) => this.visible(i));
    const matched = candidates.filter((i) => filters.every((f) => matchesFilter(i, f.name, f.values)));
    const offset = p.get('NextToken') === undefined ? 0 : parseToken(p.get('NextToken')!);
    const page = matched.slice(offset, offset + maxResults);
    const nextToken = offset + page.length < matched.length ? el('nextToken', makeToken(offset + page.length)) : '';
    // Grouped by reservation, in order of first appearance, as EC2 lists them.
    const groups = new Map<string, Instance[]>();
    for (const instance of page) {
      if (!groups.has(instance.reservationId)) groups.set(instance.reservationId, []);
      groups.get(instance.reservationId)!.push(instance);
    }
    const items = [...groups].map(([id, instances]) => node('item', this.reservationBody(id, instances)));
    return node('reservationSet', items.join('')) + nextToken;
  }

  private terminateInstances(p: QueryParams): string {
    const ids = p.list('InstanceId');
    if (ids.length === 0) throw new Ec2Error('MissingParameter', 'The request must contain the parameter InstanceId');
    const instances = this.lookUp(ids);
    const items = instances.map((instance) => {
      const previous = instance.state;
      this.beginTermination(instance, 'User initiated', 'Client.UserInitiatedShutdown', 'Client.UserInitiatedShutdown: User initiated shutdown');
      return node('item', el('instanceId', instance.id) + stateXml('currentState', instance.state) + stateXml('previousState', previous));
    });
    return node('instancesSet', items.join(''));
  }

  private describeInstanceTypes(p: QueryParams): string {
    const types = p.list('InstanceType');
    const unknown = types.filter((t) => !(t in INSTANCE_TYPES));
    if (unknown.length) throw new Ec2Error('InvalidInstanceType', `The following supplied instance types do not exist: [${unknown.join(', ')}]`);
    const items = (types.length ? types : Object.keys(INSTANCE_TYPES)).map((t) => node('item', el('instanceType', t) + node('vCpuInfo', el('defaultVCpus', String(INSTANCE_TYPES[t])))));
    return node('instanceTypeSet', items.join(''));
  }

  /** Any well-formed image id is an image here, with /dev/xvda as its root device. */
  private describeImages(p: QueryParams): string {
    const ids = p.list('ImageId');
    for (const id of ids) {
      if (!/^ami-[0-9a-f]{8,17}$/.test(id)) throw new Ec2Error('InvalidAMIID.Malformed', `Invalid id: "${id}" (expecting "ami-...")`);
    }
    const items = ids.map((id) => node('item', el('imageId', id) + el('imageState', 'available') + el('rootDeviceType', 'ebs') + el('rootDeviceName', '/dev/xvda') + el('architecture', 'x86_64')));
    return node('imagesSet', items.join(''));
  }

  private createTags(p: QueryParams): string {
    const ids = p.list('ResourceId');
    if (ids.length === 0) throw new Ec2Error('MissingParameter', 'The request must contain the parameter ResourceId');
    const tags = p.groups('Tag').map((t) => [t.required('Key'), t.get('Value') ?? ''] as const);
    if (tags.length === 0) throw new Ec2Error('MissingParameter', 'The request must contain the parameter Tag');
    for (const id of ids) {
      if (!id.startsWith('i-')) throw new Ec2Error('InvalidID', `The ID '${id}' is not valid`);
    }
    for (const instance of this.lookUp(ids)) {
      for (const [key, value] of tags) instance.tags.set(key, value);
    }
    return el('return', 'true');
  }

  private getConsoleOutput(p: QueryParams): string {
    const [instance] = this.lookUp([p.required('InstanceId')]);
    const output = instance.console.length === 0 ? '' : el('output', Buffer.from(instance.console.join('\n') + '\n').toString('base64'));
    return el('instanceId', instance.id) + el('timestamp', instance.consoleAt.toISOString()) + output;
  }

  // ---- lifecycle -------------------------------------------------------------------------

  /** Every lifecycle move goes through here; an illegal one is a bug in this server. */
  private setState(instance: Instance, next: InstanceStateName): void {
    if (!MOVES[instance.state].includes(next)) throw new Error(`${instance.id}: illegal move ${instance.state} → ${next}`);
    instance.state = next;
    if (next === 'running') instance.stateReason = null;
    if (next === 'terminated') this.usedIndexes.delete(instance.index);
    this.countAlive();
  }

  private countAlive(): void {
    const alive = this.order.filter((i) => i.state !== 'terminated').length;
    this.alivePeak = Math.max(this.alivePeak, alive);
  }

  /** A timer that stop() can cut short; it does nothing once the server is stopping. */
  private schedule(instance: Instance, ms: number, fn: () => void): void {
    const timer = setTimeout(() => {
      instance.timers.delete(timer);
      if (!this.stopping) fn();
    }, ms);
    instance.timers.add(timer);
  }

  private boot(instance: Instance): void {
    if (instance.state !== 'pending') return;
    if (this.bootsHeld) {
      this.bootsHeld.push(instance);
      return;
    }
    this.appendConsole(instance, kernelLines(instance.index));
    if (this.options.sshReadyDelayMs > 0) {
      this.setState(instance, 'running');
      this.schedule(instance, this.options.sshReadyDelayMs, () => this.startSshd(instance));
    } else {
      this.startSshd(instance);
    }
  }

  private startSshd(instance: Instance): void {
    instance.booting = (async () => {
      try {
        const host = await SshHost.start({
          index: instance.index,
          port: this.options.sshPort,
          username: this.options.username,
          authorizedKey: this.options.clientPublicKey,
          hostKeyTypes: ['ed25519', 'ecdsa'],
          hostKeyComment: `root@${hostnameOf(instance.index)}`,
        });
        if (this.stopping || (instance.state !== 'pending' && instance.state !== 'running')) {
          await host.stop();
          return;
        }
        instance.host = host;
        this.appendConsole(instance, cloudInitLines(host.hostPublicKeys, this.options.consoleHostKeys));
      } catch (error) {
        instance.sshdError = (error as Error).message;
        this.appendConsole(instance, [`[FAILED] Failed to start OpenSSH server daemon: ${instance.sshdError}`]);
      }
      if (instance.state === 'pending') this.setState(instance, 'running');
    })();
  }

  private beginTermination(instance: Instance, by: string, code: string, message: string): void {
    if (instance.state === 'shutting-down' || instance.state === 'terminated') return;
    this.powerDown(instance, 'shutting-down', 'terminated', by, code, message);
  }

  private beginStop(instance: Instance, by: string, code: string, message: string): void {
    if (instance.state !== 'running' && instance.state !== 'pending') return;
    this.powerDown(instance, 'stopping', 'stopped', by, code, message);
  }

  /** Into `going` now; its sshd and every process of its sessions killed; `gone` shutdownDelayMs later. */
  private powerDown(instance: Instance, going: 'shutting-down' | 'stopping', gone: 'terminated' | 'stopped', by: string, code: string, message: string): void {
    for (const timer of instance.timers) clearTimeout(timer);
    instance.timers.clear();
    // A pending instance that is stopped is terminated instead (it never ran).
    if (going === 'stopping' && instance.state === 'pending') return this.powerDown(instance, 'shutting-down', 'terminated', by, code, message);
    this.setState(instance, going);
    instance.transitionReason = `${by} (${new Date().toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' GMT')})`;
    instance.stateReason = { code, message };
    const previous = instance.shuttingDown;
    instance.shuttingDown = (async () => {
      // A boot in progress ends first, or its sshd would outlive the instance.
      await instance.booting;
      await previous;
      const host = instance.host;
      instance.host = null;
      try {
        await host?.stop();
      } catch (error) {
        instance.sshdError = (error as Error).message;
      }
      this.appendConsole(instance, ['[  OK  ] Stopped OpenSSH server daemon.', 'reboot: Power down']);
      this.schedule(instance, this.options.shutdownDelayMs, () => {
        if (instance.state === going) this.setState(instance, gone);
      });
    })();
  }

  private appendConsole(instance: Instance, lines: string[]): void {
    instance.console.push(...lines);
    instance.consoleAt = new Date();
  }

  private allocateIndex(): number | null {
    // Fresh addresses first; then those of terminated instances (EC2 reuses private addresses).
    while (this.nextIndex <= LAST_INDEX) {
      const index = this.nextIndex++;
      if (!this.usedIndexes.has(index)) {
        this.usedIndexes.add(index);
        return index;
      }
    }
    for (let index = this.options.firstIndex; index <= LAST_INDEX; index++) {
      if (!this.usedIndexes.has(index)) {
        this.usedIndexes.add(index);
        return index;
      }
    }
    return null;
  }

  private visible(instance: Instance): boolean {
    return Date.now() >= instance.visibleAt;
  }

  /** The instances named, all or nothing, as EC2 answers: unknown or not yet visible ids fail. */
  private lookUp(ids: string[]): Instance[] {
    for (const id of ids) {
      if (!/^i-[0-9a-f]{8,17}$/.test(id)) throw new Ec2Error('InvalidInstanceID.Malformed', `Invalid id: "${id}"`);
    }
    const missing = ids.filter((id) => {
      const instance = this.byId.get(id);
      return !instance || !this.visible(instance);
    });
    if (missing.length === 1) throw new Ec2Error('InvalidInstanceID.NotFound', `The instance ID '${missing[0]}' does not exist`);
    if (missing.length > 1) throw new Ec2Error('InvalidInstanceID.NotFound', `The instance IDs '${missing.join(', ')}' do not exist`);
    const wanted = new Set(ids);
    return this.order.filter((i) => wanted.has(i.id));
  }

  // ---- XML -------------------------------------------------------------------------------

  private reservationXml(reservation: Reservation): string {
    return this.reservationBody(reservation.id, reservation.instanceIds.map((id) => this.byId.get(id)!));
  }

  private reservationBody(id: string, instances: Instance[]): string {
    return el('reservationId', id) + el('ownerId', OWNER_ID) + node('groupSet', '') + node('instancesSet', instances.map((i) => instanceXml(i)).join(''));
  }
}

function instanceXml(i: Instance): string {
  // A terminated instance has given its addresses back: EC2 no longer reports them.
  const addressed = i.state !== 'terminated';
  const address = addressOf(i.index);
  const tags = [...i.tags].map(([key, value]) => node('item', el('key', key) + el('value', value))).join('');
  return node('item', [
    el('instanceId', i.id),
    el('imageId', i.imageId),
    stateXml('instanceState', i.state),
    el('privateDnsName', addressed ? `${hostnameOf(i.index)}.ec2.internal` : ''),
    el('dnsName', ''),
    el('reason', i.transitionReason),
    i.keyName === undefined ? '' : el('keyName', i.keyName),
    el('amiLaunchIndex', String(i.launchIndex)),
    node('productCodes', ''),
    el('instanceType', i.instanceType),
    i.spot ? el('instanceLifecycle', 'spot') : '',
    el('launchTime', i.launchedAt.toISOString()),
    node('placement', el('availabilityZone', ZONE) + el('groupName', '') + el('tenancy', 'default')),
    node('monitoring', el('state', 'disabled')),
    el('subnetId', i.subnetId),
    el('vpcId', DEFAULT_VPC),
    addressed ? el('privateIpAddress', address) : '',
    addressed ? el('ipAddress', address) : '',
    el('sourceDestCheck', 'true'),
    node('groupSet', i.securityGroupIds.map((g) => node('item', el('groupId', g) + el('groupName', 'default'))).join('')),
    i.stateReason ? node('stateReason', el('code', i.stateReason.code) + el('message', i.stateReason.message)) : '',
    el('architecture', 'x86_64'),
    el('rootDeviceType', 'ebs'),
    el('rootDeviceName', '/dev/xvda'),
    node('blockDeviceMapping', ''),
    el('virtualizationType', 'hvm'),
    i.clientToken ? el('clientToken', i.clientToken) : '',
    tags ? node('tagSet', tags) : '',
    el('hypervisor', 'xen'),
    el('ebsOptimized', 'false'),
    el('enaSupport', 'true'),
  ].join(''));
}

function stateXml(name: string, state: InstanceStateName): string {
  return node(name, el('code', String(STATE_CODES[state])) + el('name', state));
}

// ---- filters ---------------------------------------------------------------------------

const FILTERS: Record<string, (i: Instance) => string[]> = {
  'tag-key': (i) => [...i.tags.keys()],
  'tag-value': (i) => [...i.tags.values()],
  'instance-state-name': (i) => [i.state],
  'instance-state-code': (i) => [String(STATE_CODES[i.state])],
  'client-token': (i) => (i.clientToken ? [i.clientToken] : []),
  'instance-id': (i) => [i.id],
  'image-id': (i) => [i.imageId],
  'instance-type': (i) => [i.instanceType],
  'key-name': (i) => (i.keyName === undefined ? [] : [i.keyName]),
  'reservation-id': (i) => [i.reservationId],
  'subnet-id': (i) => [i.subnetId],
  'private-ip-address': (i) => (i.state === 'terminated' ? [] : [addressOf(i.index)]),
};

function checkFilterName(name: string): void {
  if (!name.startsWith('tag:') && !(name in FILTERS)) throw new Ec2Error('InvalidParameterValue', `The filter '${name}' is invalid`);
}

/** Values OR'ed within a filter, each a pattern with EC2's `*` and `?` wildcards. */
function matchesFilter(instance: Instance, name: string, values: string[]): boolean {
  const actual = name.startsWith('tag:')
    ? (instance.tags.has(name.slice(4)) ? [instance.tags.get(name.slice(4))!] : [])
    : FILTERS[name](instance);
  const patterns = values.map(wildcard);
  return actual.some((value) => patterns.some((pattern) => pattern.test(value)));
}

function wildcard(pattern: string): RegExp {
  let source = '';
  for (let n = 0; n < pattern.length; n++) {
    const c = pattern[n];
    if (c === '\\' && n + 1 < pattern.length) source += escapeRegExp(pattern[++n]);
    else if (c === '*') source += '.*';
    else if (c === '?') source += '.';
    else source += escapeRegExp(c);
  }
  return new RegExp(`^${source}$`, 's');
}

function makeToken(offset: number): string {
  return Buffer.from(JSON.stringify({ offset })).toString('base64');
}

function parseToken(token: string): number {
  try {
    const { offset } = JSON.parse(Buffer.from(token, 'base64').toString()) as { offset: unknown };
    if (typeof offset === 'number' && Number.isInteger(offset) && offset >= 0) return offset;
  } catch {
    // falls through to the error below
  }
  throw new Ec2Error('InvalidParameterValue', `Invalid value '${token}' for nextToken`);
}

// ---- small helpers ---------------------------------------------------------------------

function addressOf(index: number): string {
  return loopbackAddress(index);
}

function hostnameOf(index: number): string {
  return `ip-127-${LOOPBACK_NET}-0-${index}`;
}

function hexId(): string {
  return randomBytes(9).toString('hex').slice(0, 17);
}

/**
 * A port free on every loopback address at once (bound on 0.0.0.0 to check), below the
 * kernel's ephemeral range so that no outgoing connection takes it later.
 */
async function freeSharedPort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    const free = await new Promise<boolean>((resolve) => {
      const server = createTcpServer();
      server.once('error', () => resolve(false));
      server.listen(port, '0.0.0.0', () => server.close(() => resolve(true)));
    });
    if (free) return port;
  }
  throw new Error('no free port for the instances\' sshd');
}
