import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { Workspace, FAST_CONFIG } from './support/workspace.js';
import { LoopbackEc2 } from './support/ec2-server.js';
import { SshHost } from './support/sshd.js';
import { waitFor } from './support/wait-for.js';
import type { JobView } from '../lib/cli/views.js';

// EC2 instances as a real workload uses them (issues 13 and 9.2), on the real SDK against the
// loopback EC2 server: several jobs per instance, lost instances (terminated, stopped, spot
// notices) whose jobs move at once, launch options, and no instance outliving its use (`run`
// ends its instances; an instance whose supervisor died shuts itself down, through a harmless
// ShutdownCommand the server takes for the instance's own shutdown).

const IMAGE = 'ami-0123456789abcdef0';
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

interface Listed { instanceId: string; state: string; jobs: string[]; slots: number; spot: boolean; instanceType: string }
interface Shown extends JobView { runs: { run: number; outcome: string; reason: string; startedAt: number }[]; startedAt: number | null }

async function setUp(ec2Config: Record<string, unknown>): Promise<{ ws: Workspace; ec2: LoopbackEc2 }> {
  process.env.AWS_ACCESS_KEY_ID = 'AKIDLOOPBACKTEST';
  process.env.AWS_SECRET_ACCESS_KEY = 'loopback-secret-never-logged';
  const ws = await Workspace.create();
  chmodSync(ws.dir, 0o755);
  const key = join(ws.dir, 'ec2_key');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]);
  const ec2 = await LoopbackEc2.start({ clientPublicKey: readFileSync(`${key}.pub`, 'utf8'), username: 'jmec2', firstIndex: 120, bootDelayMs: 300 });
  ws.writeConfig({
    ...FAST_CONFIG,
    LogLevel: 'info',
    Deployment: `i${basename(ws.dir).slice(-6)}`,
    EC2: {
      Region: 'us-east-1', ImageId: IMAGE, InstanceType: 't3.large', KeyName: 'jm-test', Username: 'jmec2', Key: key, MaxInstances: 2,
      IdleTimeout: '2s', ReadyTimeout: '30s', Port: ec2.sshPort, Endpoint: ec2.endpoint,
      ShutdownCommand: ec2.shutdownCommand, MetadataEndpoint: ec2.metadataEndpoint, ...ec2Config,
    },
  });
  return { ws, ec2 };
}

/** A job that runs until the file `gate` exists. */
function gatedJob(ws: Workspace, name: string, gate: string, extra: string[] = []): string {
  return ws.write(`${name}.yaml`, ['ClassType: EC2', ...extra, 'Order:', `  - Run: "while [ ! -e ${join(ws.dir, gate)} ]; do sleep 0.1; done; echo done"`].join('\n'));
}

async function queue(ws: Workspace, ...files: string[]): Promise<string[]> {
  const result = await ws.cli('queue', ...files);
  expect(result.code, result.stderr).to.equal(0);
  return Workspace.ids(result.stdout);
}

async function listed(ws: Workspace): Promise<Listed[]> {
  return (JSON.parse((await ws.cli('instances', '--json')).stdout) as { instances: Listed[] }).instances;
}

async function show(ws: Workspace, id: string): Promise<Shown> {
  return JSON.parse((await ws.cli('show', id, '--json')).stdout) as Shown;
}

async function waitJobs(ws: Workspace, ids: string[]): Promise<JobView[]> {
  return (JSON.parse((await ws.cli('wait', ...ids, '--json', '--timeout', '90s')).stdout) as { jobs: JobView[] }).jobs;
}

async function allEnded(ec2: LoopbackEc2): Promise<void> {
  await waitFor('every instance to be terminated', () => ec2.instances().every((i) => i.state === 'terminated'), 60_000);
}

/** Its job running again on another instance: how long after `since` its new run started. */
async function movedAfter(ws: Workspace, id: string, oldHost: string, since: number): Promise<{ job: Shown; ms: number }> {
  const job = await waitFor('the job to run again elsewhere', async () => {
    const shown = await show(ws, id);
    return shown.state === 'running' && shown.host !== oldHost && shown.runs.length >= 1 ? shown : null;
  }, 60_000);
  return { job, ms: (job.startedAt ?? Date.now()) - since };
}

(SshHost.available() ? describe : describe.skip)('EC2 instances: slots, lost instances, self-shutdown', function () {
  this.timeout(180_000);
  let ws: Workspace;
  let ec2: LoopbackEc2;

  before(async function () {
    ({ ws, ec2 } = await setUp({ Slots: 2 }));
    await ws.startSupervisor();
  });

  after(async function () {
    const crashes = ws?.actorCrashes() ?? [];
    await ws?.dispose();
    await ec2?.stop();
    expect(crashes, 'no actor may crash').to.deep.equal([]);
  });

  it('runs as many jobs at once on an instance as it has slots, and launches no more instances than that needs', async function () {
    const ids = await queue(ws, ...Array.from({ length: 4 }, (_, i) => gatedJob(ws, `slot${i}`, 'go-slots')));
    const busy = await waitFor('two instances with two jobs each', async () => {
      const list = await listed(ws);
      return list.length === 2 && list.every((i) => i.jobs.length === 2) ? list : null;
    }, 60_000);
    expect(busy.map((i) => i.slots)).to.deep.equal([2, 2]);
    expect(ec2.instances(), 'instances launched').to.have.length(2);
    const request = ec2.requests('RunInstances')[0];
    expect(request, 'launched to guard itself').to.include({ InstanceInitiatedShutdownBehavior: 'terminate', 'MetadataOptions.HttpTokens': 'required', 'TagSpecification.2.ResourceType': 'volume' });
    writeFileSync(join(ws.dir, 'go-slots'), '');
    expect((await waitJobs(ws, ids)).map((j) => j.state)).to.deep.equal(ids.map(() => 'succeeded'));
    await allEnded(ec2);
  });

  it('places the job of an instance terminated under it again at once, as interrupted (no retry used)', async function () {
    const [id] = await queue(ws, gatedJob(ws, 'lost', 'go-lost'));
    const first = await waitFor('the job to run', async () => ((await show(ws, id)).state === 'running' ? show(ws, id) : null), 60_000);
    const instanceId = first.host!.replace('host:ec2-', '');
    const since = Date.now();
    ec2.terminate(instanceId);
    const { job, ms } = await movedAfter(ws, id, first.host!, since);
    console.log(`      (terminated ${instanceId}: its job ran again on ${job.host} ${ms} ms later)`);
    expect(job.runs[0]).to.include({ outcome: 'interrupted' });
    expect(job.runs[0].reason).to.match(new RegExp(`instance lost: ${instanceId} is (shutting-down|terminated)`));
    writeFileSync(join(ws.dir, 'go-lost'), '');
    expect((await waitJobs(ws, [id]))[0].state).to.equal('succeeded');
    await allEnded(ec2);
  });

  it('terminates an instance stopped from outside, and places its job again', async function () {
    const [id] = await queue(ws, gatedJob(ws, 'stopped', 'go-stopped'));
    const first = await waitFor('the job to run', async () => ((await show(ws, id)).state === 'running' ? show(ws, id) : null), 60_000);
    const instanceId = first.host!.replace('host:ec2-', '');
    ec2.stopInstance(instanceId);
    const { job } = await movedAfter(ws, id, first.host!, Date.now());
    expect(job.runs[0].reason).to.match(/instance lost: .* is (stopping|stopped)/);
    await waitFor('the stopped instance to be terminated', () => ec2.instances().find((i) => i.id === instanceId)?.state === 'terminated', 30_000);
    writeFileSync(join(ws.dir, 'go-stopped'), '');
    expect((await waitJobs(ws, [id]))[0].state).to.equal('succeeded');
    await allEnded(ec2);
  });

  it('an idle instance whose supervisor died shuts itself down (its watchdog), and is terminated', async function () {
    const [id] = await queue(ws, gatedJob(ws, 'orphaned', 'go-orphaned'));
    const first = await waitFor('the job to run', async () => ((await show(ws, id)).state === 'running' ? show(ws, id) : null), 60_000);
    const instanceId = first.host!.replace('host:ec2-', '');
    await ws.supervisor!.kill9();
    // Its job goes on without a supervisor; the instance does not shut down under it.
    writeFileSync(join(ws.dir, 'go-orphaned'), '');
    await waitFor('the instance to shut itself down', () => ec2.shutdowns.includes(instanceId), 90_000);
    expect(ec2.instances().find((i) => i.id === instanceId)?.shutdownBehavior).to.equal('terminate');
    await waitFor('it to be terminated', () => ec2.instances().find((i) => i.id === instanceId)?.state === 'terminated', 30_000);
    await ws.startSupervisor();
    expect((await waitJobs(ws, [id]))[0].state, 'its job ended before the instance did, and is recorded').to.equal('succeeded');
  });
});

(SshHost.available() ? describe : describe.skip)('EC2 instances: spot and launch options', function () {
  this.timeout(180_000);
  let ws: Workspace;
  let ec2: LoopbackEc2;
  let userData: string;
  let dir: Workspace;

  before(async function () {
    dir = await Workspace.create();
    userData = dir.write('user-data.sh', '#!/bin/sh\necho prepared > /tmp/prepared\n');
    ({ ws, ec2 } = await setUp({
      Spot: true, InstanceTypes: ['t3.large', 't3a.large'], SubnetIds: ['subnet-0aaaaaaaaaaaaaaaa', 'subnet-0bbbbbbbbbbbbbbbb'],
      IamInstanceProfile: 'jm-jobs', UserData: userData, RootVolumeSize: 20, Tags: { Team: 'lab' },
    }));
    await ws.startSupervisor();
  });

  after(async function () {
    await ws?.dispose();
    await ec2?.stop();
    await dir?.dispose();
  });

  it('falls back through types and subnets on capacity errors, with every launch option', async function () {
    // Three requests per SDK call (its own retries): (t3.large, a) and (t3.large, b) fail.
    ec2.failNext('RunInstances', 'InsufficientInstanceCapacity', 6);
    const [id] = await queue(ws, gatedJob(ws, 'options', 'go-options'));
    const [instance] = await waitFor('an instance with the job', async () => {
      const list = await listed(ws);
      return list.length && list[0].jobs.includes(id) ? list : null;
    }, 60_000);
    expect(instance).to.include({ instanceType: 't3a.large', slots: 2, spot: true });
    const request = ec2.requests('RunInstances').at(-1)!;
    expect(request).to.include({
      InstanceType: 't3a.large', SubnetId: 'subnet-0aaaaaaaaaaaaaaaa', 'IamInstanceProfile.Name': 'jm-jobs',
      UserData: readFileSync(userData).toString('base64'), 'BlockDeviceMapping.1.DeviceName': '/dev/xvda', 'BlockDeviceMapping.1.Ebs.VolumeSize': '20',
      'InstanceMarketOptions.MarketType': 'spot', 'InstanceMarketOptions.SpotOptions.SpotInstanceType': 'one-time',
      'MetadataOptions.HttpTokens': 'required', InstanceInitiatedShutdownBehavior: 'terminate', 'TagSpecification.2.ResourceType': 'volume',
    });
    expect(Object.entries(request).filter(([k, v]) => k.startsWith('TagSpecification.2.Tag.') && v === 'Team').length, 'tags on volumes').to.equal(1);
    expect(ec2.requests('RunInstances').map((r) => `${r.InstanceType} ${r.SubnetId}`)).to.include.members(['t3.large subnet-0aaaaaaaaaaaaaaaa', 't3.large subnet-0bbbbbbbbbbbbbbbb']);
    expect(ec2.calls('DescribeImages'), 'the root device name read from the image').to.be.at.least(1);
    writeFileSync(join(ws.dir, 'go-options'), '');
    expect((await waitJobs(ws, [id]))[0].state).to.equal('succeeded');
    await allEnded(ec2);
  });

  it('moves the jobs of a spot instance on its interruption notice, before it goes', async function () {
    const [id] = await queue(ws, gatedJob(ws, 'spot', 'go-spot'));
    const first = await waitFor('the job to run', async () => ((await show(ws, id)).state === 'running' ? show(ws, id) : null), 60_000);
    const instanceId = first.host!.replace('host:ec2-', '');
    expect(ec2.instances().find((i) => i.id === instanceId)?.spot).to.equal(true);
    expect((await ws.cli('instances')).stdout).to.match(new RegExp(`${instanceId}.*\\sspot\\s`));
    const since = Date.now();
    ec2.interruptSpot(instanceId);
    const { job, ms } = await movedAfter(ws, id, first.host!, since);
    console.log(`      (spot notice on ${instanceId}: its job ran again on ${job.host} ${ms} ms later)`);
    expect(job.runs[0].outcome).to.equal('interrupted');
    expect(job.runs[0].reason).to.match(/spot interruption notice/);
    await waitFor('the interrupted instance to be terminated', () => ec2.instances().find((i) => i.id === instanceId)?.state === 'terminated', 30_000);
    writeFileSync(join(ws.dir, 'go-spot'), '');
    expect((await waitJobs(ws, [id]))[0].state).to.equal('succeeded');
  });
});

(SshHost.available() ? describe : describe.skip)('EC2 instances: run and stop end them', function () {
  this.timeout(180_000);
  let ws: Workspace;
  let ec2: LoopbackEc2;

  before(async function () {
    ({ ws, ec2 } = await setUp({ IdleTimeout: '5m', Slots: 1 }));
  });

  after(async function () {
    await ws?.dispose();
    await ec2?.stop();
  });

  it('`run` of three EC2 jobs ends with no instance running', async function () {
    const files = [0, 1, 2].map((i) => ws.write(`r${i}.yaml`, ['ClassType: EC2', 'Order:', '  - Run: "sleep 0.3; echo ran"'].join('\n')));
    const result = await ws.cli('run', ...files);
    expect(result.code, result.stderr).to.equal(0);
    expect(result.stderr).to.match(/terminated [12] EC2 instances?: i-/);
    expect(ec2.instances().length).to.be.within(1, 2);
    expect(ec2.instances().filter((i) => i.state !== 'shutting-down' && i.state !== 'terminated'), 'instances left running').to.deep.equal([]);
  });

  it('`stop` terminates idle instances and says which busy one it leaves, and why', async function () {
    await allEnded(ec2);
    await ws.startSupervisor();
    const [quick, busy] = await queue(ws, gatedJob(ws, 'quick', 'go-quick'), gatedJob(ws, 'busy', 'go-busy'));
    await waitFor('both jobs to run', async () => (await show(ws, quick)).state === 'running' && (await show(ws, busy)).state === 'running', 60_000);
    const busyHost = (await show(ws, busy)).host!.replace('host:ec2-', '');
    writeFileSync(join(ws.dir, 'go-quick'), '');
    await waitJobs(ws, [quick]);
    const result = await ws.cli('stop');
    expect(result.stderr).to.match(/terminated 1 EC2 instance: i-/);
    expect(result.stderr).to.contain(`left EC2 instance ${busyHost} running: busy with job ${busy}`);
    expect(ec2.instances().find((i) => i.id === busyHost)?.state).to.equal('running');
    writeFileSync(join(ws.dir, 'go-busy'), '');
  });
});
