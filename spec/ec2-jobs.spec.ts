import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { EC2Client, RunInstancesCommand } from '@aws-sdk/client-ec2';
import { Workspace, FAST_CONFIG } from './support/workspace.js';
import { LoopbackEc2 } from './support/ec2-server.js';
import { SshHost } from './support/sshd.js';
import { waitFor } from './support/wait-for.js';
import { logMessages, supervisorLog } from './support/supervisor-log.js';
import type { JobView } from '../lib/cli/views.js';

// EC2 jobs against a loopback server that speaks the EC2 Query API, used through the real
// @aws-sdk/client-ec2; its "instances" are real sshd hosts on 127.0.0.x.

const IMAGE = 'ami-0123456789abcdef0';
// The spec's own SDK client (the orphan test) would print the SDK's Node 22 notice otherwise.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

interface Instances {
  instances: { instanceId: string | null; state: string; jobs: string[] }[];
}

async function queue(ws: Workspace, ...files: string[]): Promise<string[]> {
  const result = await ws.cli('queue', ...files);
  expect(result.code, result.stderr).to.equal(0);
  return Workspace.ids(result.stdout);
}

async function waitJobs(ws: Workspace, ids: string[], timeout = '90s'): Promise<JobView[]> {
  const result = await ws.cli('wait', ...ids, '--json', '--timeout', timeout);
  return (JSON.parse(result.stdout) as { jobs: JobView[] }).jobs;
}

/** No instance left from an earlier test: each test sees launches of its own. */
async function noInstances(ec2: LoopbackEc2): Promise<void> {
  await waitFor('earlier instances to be terminated', () => ec2.instances().every((i) => i.state === 'terminated'), 60_000);
}

/** The endpoint goes in the config, or (endpointFromEnv) in AWS_ENDPOINT_URL_EC2, which the SDK reads. */
async function setUp(options: { consoleHostKeys?: boolean; config?: Record<string, unknown>; endpointFromEnv?: boolean } = {}): Promise<{ ws: Workspace; ec2: LoopbackEc2 }> {
  // Credentials through the standard chain (the environment), as a user gives them.
  process.env.AWS_ACCESS_KEY_ID = 'AKIDLOOPBACKTEST';
  process.env.AWS_SECRET_ACCESS_KEY = 'loopback-secret-never-logged';
  const ws = await Workspace.create();
  const key = join(ws.dir, 'ec2_key');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]);
  const ec2 = await LoopbackEc2.start({ clientPublicKey: readFileSync(`${key}.pub`, 'utf8'), username: 'jmec2', bootDelayMs: 300, consoleHostKeys: options.consoleHostKeys ?? true });
  ws.writeConfig({
    ...FAST_CONFIG,
    LogLevel: 'info',
    Deployment: `e${basename(ws.dir).slice(-6)}`,
    KnownHosts: join(ws.dir, 'known_hosts'),
    EC2: { Region: 'us-east-1', ImageId: IMAGE, InstanceType: 't3.micro', KeyName: 'jm-test', Username: 'jmec2', Key: key, MaxInstances: 3, IdleTimeout: '2s', ReadyTimeout: '20s', Port: ec2.sshPort, Endpoint: options.endpointFromEnv ? null : ec2.endpoint, ShutdownCommand: ec2.shutdownCommand, MetadataEndpoint: ec2.metadataEndpoint },
    ...options.config,
  });
  return { ws, ec2 };
}

function jobFile(ws: Workspace, name: string, run: string): string {
  return ws.write(`${name}.yaml`, ['ClassType: EC2', 'Order:', `  - Run: ${JSON.stringify(run)}`].join('\n'));
}

(SshHost.available() ? describe : describe.skip)('EC2 jobs', function () {
  this.timeout(180_000);
  let ws: Workspace;
  let ec2: LoopbackEc2;

  before(async function () {
    ({ ws, ec2 } = await setUp({ endpointFromEnv: true }));
    process.env.AWS_ENDPOINT_URL_EC2 = ec2.endpoint;
    await ws.startSupervisor();
  });

  after(async function () {
    delete process.env.AWS_ENDPOINT_URL_EC2;
    const crashes = ws?.actorCrashes() ?? [];
    await ws?.dispose();
    await ec2?.stop();
    expect(crashes, 'no actor may crash').to.deep.equal([]);
  });

  it('runs 20 jobs on at most MaxInstances instances, reusing them, and ends idle ones', async function () {
    const files = Array.from({ length: 20 }, (_, i) => jobFile(ws, `e${i}`, 'echo "$JM_JOB_ID on $(hostname)"; sleep 0.2'));
    const ids = await queue(ws, ...files);
    const jobs = await waitJobs(ws, ids);
    expect(jobs.map((j) => j.state)).to.deep.equal(ids.map(() => 'succeeded'));
    expect(ec2.maxAlive, 'instances alive at once').to.be.at.most(3);
    const launched = ec2.instances().map((i) => `host:ec2-${i.id}`);
    expect(launched.length, 'instances launched').to.be.within(1, 3);
    const hosts = new Set<string>();
    for (const id of ids) hosts.add(JSON.parse((await ws.cli('show', id, '--json')).stdout).host);
    expect([...hosts].filter((h) => !launched.includes(h)), 'jobs ran on the launched instances only').to.deep.equal([]);
    expect(hosts.size, 'instances were reused: 20 jobs on at most 3').to.be.at.most(3);
    // Idle for IdleTimeout (2 s): every instance is terminated, and no record is left.
    await waitFor('every instance to be terminated', () => ec2.instances().every((i) => i.state === 'terminated'), 60_000);
    await waitFor('no instance record', async () => (JSON.parse((await ws.cli('instances', '--json')).stdout) as Instances).instances.length === 0, 30_000);
    const log = readFileSync(join(ws.stateDir, 'supervisor.log'), 'utf8');
    expect(log, 'no AWS secret in the log').not.to.contain('loopback-secret-never-logged');
  });

  it('lets a job file choose its image and instance type, and lists instances with their job', async function () {
    await noInstances(ec2);
    // The job runs until the spec has looked at the listing: it waits for a file to appear.
    const go = join(ws.dir, 'go');
    chmodSync(ws.dir, 0o755);
    const file = ws.write('big.yaml', ['ClassType: EC2', 'ImageId: ami-00000000000000fed', 'InstanceType: c7i.large', 'Order:', `  - Run: while [ ! -e ${go} ]; do sleep 0.1; done`].join('\n'));
    const [id] = await queue(ws, file);
    try {
      const listed = await waitFor('the instance to run the job', async () => {
        const list = JSON.parse((await ws.cli('instances', '--json')).stdout) as Instances & { instances: { instanceType: string; imageId: string }[] };
        return list.instances.find((i) => i.jobs.includes(id)) ?? null;
      }, 60_000);
      expect(listed).to.include({ state: 'ready', instanceType: 'c7i.large', imageId: 'ami-00000000000000fed' });
      const request = ec2.requests('RunInstances').at(-1)!;
      expect(request).to.include({ ImageId: 'ami-00000000000000fed', InstanceType: 'c7i.large', KeyName: 'jm-test' });
      const table = (await ws.cli('instances')).stdout;
      expect(table, table).to.match(new RegExp(`${listed.instanceId}\\s+ready\\s+-\\s+${id}\\s+1/2\\s+on-demand\\s`));
    } finally {
      writeFileSync(go, ''); // the job ends even when an expectation failed: the next specs need the instance idle
    }
    expect((await waitJobs(ws, [id]))[0].state).to.equal('succeeded');
  });

  it('backs off on capacity errors, tells the waiting job why, then runs it', async function () {
    await noInstances(ec2);
    ec2.failNext('RunInstances', 'InsufficientInstanceCapacity', 1000);
    const [id] = await queue(ws, jobFile(ws, 'capacity', 'echo finally'));
    await waitFor('the job to say why it waits', async () => /InsufficientInstanceCapacity/.test(JSON.parse((await ws.cli('show', id, '--json')).stdout).reason ?? ''), 30_000);
    expect(JSON.parse((await ws.cli('show', id, '--json')).stdout).state).to.equal('queued');
    ec2.clearFaults();
    const [job] = await waitJobs(ws, [id]);
    expect(job.state).to.equal('succeeded');
  });

  it('keeps local jobs flowing while an instance boots', async function () {
    await noInstances(ec2);
    // The instance stays pending until the local jobs have all ended: no race with its boot.
    ec2.holdBoots();
    let ec2Id: string;
    try {
      const before = ec2.instances().length;
      [ec2Id] = await queue(ws, jobFile(ws, 'slow-boot', 'echo booted'));
      await waitFor('the instance to be launched', () => ec2.instances().length > before);
      const locals = Array.from({ length: 8 }, (_, i) => ws.write(`local${i}.yaml`, 'Order: [{Run: "sleep 0.1"}]'));
      const localIds = await queue(ws, ...locals);
      const done = await waitJobs(ws, localIds);
      expect(done.map((j) => j.state)).to.deep.equal(localIds.map(() => 'succeeded'));
      const ec2Job = JSON.parse((await ws.cli('show', ec2Id, '--json')).stdout) as JobView;
      expect(ec2Job.state, 'the EC2 job is still waiting for its instance').to.equal('queued');
    } finally {
      ec2.releaseBoots();
    }
    const [job] = await waitJobs(ws, [ec2Id]);
    expect(job.state).to.equal('succeeded');
  });

  it('launches once through a kill -9 of the supervisor in the middle of RunInstances', async function () {
    await noInstances(ec2);
    const before = ec2.instances().length;
    ec2.hold('RunInstances');
    const [id] = await queue(ws, jobFile(ws, 'crash-launch', 'echo survived'));
    await waitFor('RunInstances to be called', () => ec2.instances().length > before);
    await ws.supervisor!.kill9();
    ec2.release('RunInstances');
    await ws.startSupervisor();
    const [job] = await waitJobs(ws, [id]);
    expect(job.state).to.equal('succeeded');
    const made = ec2.instances().slice(before);
    const story = logMessages(supervisorLog(ws.stateDir), /EC2: /).join('\n');
    expect(made, `one instance for the one launch; the log:\n${story}`).to.have.length(1);
    const tokens = ec2.requests('RunInstances').slice(-3).map((r) => r.ClientToken);
    expect(new Set(tokens.filter((t) => t === made[0].clientToken)).size).to.equal(1);
  });

  it('terminates instances with the deployment\'s tag that no record explains', async function () {
    const client = new EC2Client({ region: 'us-east-1', endpoint: ec2.endpoint, maxAttempts: 1 });
    const reply = await client.send(new RunInstancesCommand({
      ImageId: IMAGE, InstanceType: 't3.micro', MinCount: 1, MaxCount: 1,
      TagSpecifications: [{ ResourceType: 'instance', Tags: [{ Key: 'jobmanager:deployment', Value: ws.deployment }] }],
    }));
    const orphan = reply.Instances![0].InstanceId!;
    // A supervisor that starts looks for such instances first.
    await ws.supervisor!.kill9();
    await ws.startSupervisor();
    await waitFor('the orphan to be terminated', () => ec2.instances().find((i) => i.id === orphan)?.state === 'terminated', 30_000);
  });
});

(SshHost.available() ? describe : describe.skip)('EC2 instance host keys', function () {
  this.timeout(120_000);
  let ws: Workspace;
  let ec2: LoopbackEc2;

  before(async function () {
    ({ ws, ec2 } = await setUp({ consoleHostKeys: false, config: {} }));
    const config = JSON.parse(readFileSync(ws.configFile, 'utf8'));
    config.EC2.ReadyTimeout = '4s';
    ws.writeConfig(config);
    await ws.startSupervisor();
  });

  after(async function () {
    await ws?.dispose();
    await ec2?.stop();
  });

  it('refuses an instance whose host key cannot be read (HostKeyPolicy strict) and terminates it', async function () {
    const [id] = await queue(ws, jobFile(ws, 'no-keys', 'echo should not run'));
    await waitFor('the instance to be terminated', () => ec2.instances().length > 0 && ec2.instances()[0].state === 'terminated', 60_000);
    const shown = JSON.parse((await ws.cli('show', id, '--json')).stdout) as JobView;
    expect(shown.state, 'the job waits for an instance it can trust').to.equal('queued');
    const log = logMessages(supervisorLog(ws.stateDir), /terminating i-/).join('\n');
    expect(log).to.match(/terminating i-\w+: it did not answer over SSH within 4\.0s of its launch \(its console output shows no SSH host keys/);
    await ws.cli('cancel', id);
  });
});
