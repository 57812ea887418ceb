import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Workspace } from '../spec/support/workspace.js';
import type { SupervisorProcess } from '../spec/support/supervisor-process.js';
import { SshHost } from '../spec/support/sshd.js';
import { LoopbackEc2 } from '../spec/support/ec2-server.js';
import { removeDir, tempDir } from '../spec/support/temp.js';
import { CutoffProxy } from './proxy.js';
import { Ledger } from './ledger.js';

// Everything a chaos run runs against, all real: a workspace with its own append-only
// redis-server, three sshd hosts on loopback (the third reached through a proxy that can cut it
// off), and a loopback EC2 whose instances are sshd hosts too. Loopback addresses and login
// users are the chaos run's own (127.0.0.31-33, jmhost31-33; instances from 127.0.0.60 as
// jmchaos), so specs running beside it are never touched by its kills.

const IMAGE = 'ami-0c4a05c0a05c0a05c';
export const EC2_MAX_INSTANCES = 2;
export const HOST_DOWN_AFTER = '8s';
/**
 * How long a host must be cut off to be given up on: a silent connection is noticed by SSH
 * keepalives (5 s apart, 3 missed: 15 s), and then the host is unreachable for HostDownAfter.
 */
export const GIVEN_UP_AFTER_MS = 15_000 + 8_000;

/** How long a node may be away before its granted, not started jobs go to the others (NodeDownAfter). */
export const NODE_DOWN_AFTER = '10s';

/** One supervisor of the run (a node): its config and state directory, and its process while it runs. */
export interface ChaosNode {
  name: string;
  stateDir: string;
  env: NodeJS.ProcessEnv;
  supervisor: SupervisorProcess | null;
}

export class World {
  /** The supervisors sharing the run's Redis (`--nodes N`; the first is the workspace's own). */
  readonly nodes: ChaosNode[] = [];

  private constructor(
    readonly ws: Workspace,
    /** host31, host32 reached directly; host33 through `proxy`. */
    readonly hosts: SshHost[],
    readonly proxy: CutoffProxy,
    readonly ec2: LoopbackEc2,
    readonly ledger: Ledger,
    private readonly shared: string,
  ) {}

  get hostNames(): string[] {
    return this.hosts.map((h) => h.name);
  }

  /** Starts a node's supervisor (again, after a kill -9). */
  async startNode(node: ChaosNode): Promise<void> {
    node.supervisor = await this.ws.startSupervisor(node.env);
  }

  /** The nodes whose supervisor runs. */
  get runningNodes(): ChaosNode[] {
    return this.nodes.filter((n) => n.supervisor?.running);
  }

  static async create(log: (text: string) => void, nodeCount = 1): Promise<World> {
    if (!SshHost.available()) throw new Error('the chaos run needs /usr/sbin/sshd and root (apt-get install -y openssh-server; run as root)');
    // The EC2 calls go to the loopback server, but the SDK still wants credentials to sign with.
    process.env.AWS_ACCESS_KEY_ID ??= 'AKIDCHAOSLOOPBACK';
    process.env.AWS_SECRET_ACCESS_KEY ??= 'chaos-loopback-secret';
    const ws = await Workspace.create({ appendOnly: true });
    const hosts = await Promise.all([31, 32, 33].map((index) => SshHost.start({ index })));
    const proxy = await CutoffProxy.start(hosts[2].address, { host: hosts[2].address, port: hosts[2].port });
    const key = join(ws.dir, 'ec2_key');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]);
    const ec2 = await LoopbackEc2.start({ clientPublicKey: readFileSync(`${key}.pub`, 'utf8'), username: 'jmchaos', firstIndex: 60, bootDelayMs: 500 });
    const shared = tempDir('jm-chaos-');
    const ledger = new Ledger(shared);
    const [type, blob] = hosts[2].knownHostsLine.split(' ').slice(1);
    const knownHosts = ws.write('known_hosts', [hosts[0].knownHostsLine, hosts[1].knownHostsLine, `[${proxy.address}]:${proxy.port} ${type} ${blob}`].join('\n') + '\n');
    ws.writeConfig({
      Deployment: 'chaos',
      LocalMaxJobs: 4,
      RetryBackoff: '200ms',
      KillGrace: '1s',
      PollPeriod: '2s',
      LogLevel: 'info',
      KnownHosts: knownHosts,
      HostDownAfter: HOST_DOWN_AFTER,
      NodeName: 'chaos1',
      NodeDownAfter: NODE_DOWN_AFTER,
      Web: { Listen: null },
      Hosts: [hosts[0].hostEntry(2), hosts[1].hostEntry(2), { ...hosts[2].hostEntry(2), Port: proxy.port }],
      EC2: {
        Region: 'us-east-1', ImageId: IMAGE, InstanceType: 't3.micro', KeyName: 'jm-chaos', Username: 'jmchaos', Key: key,
        MaxInstances: EC2_MAX_INSTANCES, IdleTimeout: '3s', ReadyTimeout: '45s', Port: ec2.sshPort, Endpoint: ec2.endpoint,
        ShutdownCommand: ec2.shutdownCommand, MetadataEndpoint: ec2.metadataEndpoint,
      },
    });
    log(`world: workspace ${ws.dir}, redis ${ws.redisUrl} (append-only), hosts ${hosts.map((h) => `${h.name}=${h.address}:${h.port}`).join(' ')} (host33 via proxy :${proxy.port}), EC2 ${ec2.endpoint}, ledger ${ledger.path}`);
    const world = new World(ws, hosts, proxy, ec2, ledger, shared);
    world.nodes.push({ name: 'chaos1', stateDir: ws.stateDir, env: ws.env(), supervisor: null });
    // Further nodes: other state directories (as on other workstations), the same Redis and hosts.
    for (let i = 2; i <= nodeCount; i++) {
      const name = `chaos${i}`;
      const { stateDir, env } = ws.node(name, { NodeName: name });
      world.nodes.push({ name, stateDir, env, supervisor: null });
    }
    if (nodeCount > 1) log(`world: ${nodeCount} nodes (${world.nodes.map((n) => `${n.name} in ${n.stateDir}`).join(', ')}) on one Redis`);
    return world;
  }

  /** Stops everything it started, by pid; each step runs even if one before it fails. */
  async dispose(): Promise<void> {
    const steps: (() => Promise<unknown>)[] = [
      () => this.ws.dispose(),
      () => this.proxy.close(),
      () => this.ec2.stop(),
      ...this.hosts.map((h) => () => h.stop()),
      // What the jobs left in the hosts' homes (the hosts' users are the chaos run's own).
      async () => [...this.hosts.map((h) => h.home), `/home/${this.ec2.username}`].forEach((home) => removeDir(join(home, '.jobmanager'))),
      async () => removeDir(this.shared),
    ];
    for (const step of steps) {
      try {
        await step();
      } catch {
        // the next step still runs
      }
    }
  }
}
