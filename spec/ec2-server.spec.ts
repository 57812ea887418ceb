import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  CreateTagsCommand,
  DescribeInstancesCommand,
  EC2Client,
  GetConsoleOutputCommand,
  RunInstancesCommand,
  TerminateInstancesCommand,
  type Instance,
  type RunInstancesCommandInput,
} from '@aws-sdk/client-ec2';
import { Client } from 'ssh2';
import { LoopbackEc2 } from './support/ec2-server.js';
import { loopbackAddress, SshHost, sshBanner } from './support/sshd.js';
import { removeDir, tempDir } from './support/temp.js';
import { waitFor } from './support/wait-for.js';

// The loopback EC2 server against the real @aws-sdk/client-ec2 (no client mock): every call
// JobManager makes, its instances as real sshd hosts, and the faults it can inject.

// The SDK prints a support warning on Node < 22 whenever a client is made (this machine has 20).
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

const IMAGE = 'ami-0123456789abcdef0';
const USER = 'jmec2';

function sdk(ec2: LoopbackEc2, maxAttempts?: number): EC2Client {
  return new EC2Client({
    endpoint: ec2.endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'AKIDLOOPBACK', secretAccessKey: 'loopback-secret' },
    ...(maxAttempts === undefined ? {} : { maxAttempts }),
  });
}

function launchInput(spec: string, extra: Partial<RunInstancesCommandInput> = {}): RunInstancesCommandInput {
  return {
    ImageId: IMAGE,
    InstanceType: 't3.micro',
    KeyName: 'jobmanager',
    MinCount: 1,
    MaxCount: 1,
    SecurityGroupIds: ['sg-0aaaaaaaaaaaaaaaa'],
    SubnetId: 'subnet-0bbbbbbbbbbbbbbbb',
    TagSpecifications: [
      { ResourceType: 'instance', Tags: [{ Key: 'JobManager', Value: 'loopback' }, { Key: 'Spec', Value: spec }] },
      { ResourceType: 'volume', Tags: [{ Key: 'OnlyOnVolumes', Value: 'yes' }] },
    ],
    ...extra,
  };
}

/** The cloud-init host key lines of a console output, `type base64 comment` each. */
function consoleHostKeys(output: string): string[] {
  const block = /-----BEGIN SSH HOST KEY KEYS-----\r?\n([\s\S]*?)\r?\n-----END SSH HOST KEY KEYS-----/.exec(output);
  return block ? block[1].split(/\r?\n/).filter((line) => line.trim() !== '') : [];
}

/** True when `pid` is gone (or a zombie: dead, waiting for its parent to reap it). */
function dead(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

/** Log in with the client key, accepting only the given host keys; run one command. */
function sshExec(address: string, port: number, privateKey: Buffer, hostKeys: string[], command: string): Promise<{ stdout: string; conn: Client }> {
  const accepted = hostKeys.map((line) => Buffer.from(line.split(/\s+/)[1], 'base64'));
  return new Promise((resolve, reject) => {
    const conn = new Client();
    conn.once('error', reject);
    conn.once('ready', () => {
      conn.setNoDelay(true);
      conn.exec(command, (error, stream) => {
        if (error) return reject(error);
        let stdout = '';
        stream.on('data', (data: Buffer) => (stdout += data.toString()));
        stream.stderr.resume();
        stream.once('close', () => resolve({ stdout, conn }));
      });
    });
    conn.connect({
      host: address,
      port,
      username: USER,
      privateKey,
      readyTimeout: 10_000,
      hostVerifier: (key: Buffer) => accepted.some((k) => k.equals(key)),
    });
  });
}

async function expectEc2Error(call: Promise<unknown>, code: string, status: number): Promise<void> {
  try {
    await call;
  } catch (error) {
    const e = error as Error & { $metadata?: { httpStatusCode?: number } };
    expect(e.name, e.message).to.equal(code);
    expect(e.$metadata?.httpStatusCode).to.equal(status);
    return;
  }
  expect.fail(`expected ${code}`);
}

(SshHost.available() ? describe : describe.skip)('loopback EC2 server', function () {
  this.timeout(30_000);
  let dir: string;
  let privateKey: Buffer;
  let ec2: LoopbackEc2;
  let client: EC2Client;
  let once: EC2Client;
  const open: Client[] = [];

  before(async function () {
    dir = tempDir('jm-ec2-');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'jobmanager', '-f', join(dir, 'id_ed25519')]);
    privateKey = readFileSync(join(dir, 'id_ed25519'));
    ec2 = await LoopbackEc2.start({ clientPublicKey: readFileSync(join(dir, 'id_ed25519.pub'), 'utf8'), username: USER, bootDelayMs: 300 });
    client = sdk(ec2);
    once = sdk(ec2, 1);
  });

  after(async function () {
    for (const conn of open) conn.end();
    client?.destroy();
    once?.destroy();
    await ec2?.stop();
    await ec2?.stop(); // idempotent
    if (dir) removeDir(dir);
  });

  async function launch(spec: string): Promise<Instance> {
    const reservation = await client.send(new RunInstancesCommand(launchInput(spec)));
    return reservation.Instances![0];
  }

  async function describeOne(id: string): Promise<Instance> {
    const found = await client.send(new DescribeInstancesCommand({ InstanceIds: [id] }));
    return found.Reservations![0].Instances![0];
  }

  async function waitState(id: string, state: string): Promise<Instance> {
    return waitFor(`${id} ${state}`, async () => {
      const instance = await describeOne(id);
      return instance.State?.Name === state ? instance : null;
    });
  }

  it('launches with tags and a client token: the same token again creates nothing', async function () {
    const before = ec2.instances().length;
    const first = await client.send(new RunInstancesCommand(launchInput('token', { ClientToken: 'token-1' })));
    const again = await client.send(new RunInstancesCommand(launchInput('token', { ClientToken: 'token-1' })));
    expect(first.ReservationId).to.match(/^r-[0-9a-f]{17}$/);
    expect(first.OwnerId).to.equal('123456789012');
    const [instance] = first.Instances!;
    expect(instance.InstanceId).to.match(/^i-[0-9a-f]{17}$/);
    expect(instance.State).to.deep.equal({ Code: 0, Name: 'pending' });
    expect(instance.PrivateIpAddress).to.match(/^127\.\d+\.0\.\d+$/);
    expect(instance.PublicIpAddress).to.equal(instance.PrivateIpAddress);
    expect(instance).to.include({ ImageId: IMAGE, InstanceType: 't3.micro', KeyName: 'jobmanager', ClientToken: 'token-1', SubnetId: 'subnet-0bbbbbbbbbbbbbbbb' });
    expect(instance.LaunchTime).to.be.instanceOf(Date);
    expect(instance.SecurityGroups).to.deep.equal([{ GroupId: 'sg-0aaaaaaaaaaaaaaaa', GroupName: 'default' }]);
    expect(instance.Tags).to.deep.equal([{ Key: 'JobManager', Value: 'loopback' }, { Key: 'Spec', Value: 'token' }]);

    expect(again.ReservationId).to.equal(first.ReservationId);
    expect(again.Instances!.map((i) => i.InstanceId)).to.deep.equal([instance.InstanceId]);
    expect(ec2.instances().length).to.equal(before + 1);
    expect(ec2.instances().at(-1)).to.include({ id: instance.InstanceId, clientToken: 'token-1', imageId: IMAGE, instanceType: 't3.micro' });
    expect(ec2.instances().at(-1)!.tags).to.deep.equal({ JobManager: 'loopback', Spec: 'token' });

    // The same token with other parameters is refused, as EC2 does.
    await expectEc2Error(client.send(new RunInstancesCommand(launchInput('token', { ClientToken: 'token-1', InstanceType: 'c7i.large' }))), 'IdempotentParameterMismatch', 400);
    // The SDK fills a ClientToken itself when none is given (it is an idempotency token).
    await client.send(new RunInstancesCommand(launchInput('token')));
    expect(ec2.requests('RunInstances').at(-1)!.ClientToken).to.match(/^[0-9a-f-]{36}$/);
  });

  it('goes from pending to running, found by tag and state filters', async function () {
    const { InstanceId: id } = await launch('states');
    const early = await client.send(new GetConsoleOutputCommand({ InstanceId: id }));
    expect(early.Output, 'no console output while pending').to.equal(undefined);

    const byTag = await client.send(new DescribeInstancesCommand({ Filters: [{ Name: 'tag:Spec', Values: ['states', 'nothing-else'] }] }));
    expect(byTag.Reservations!.flatMap((r) => r.Instances!).map((i) => i.InstanceId)).to.deep.equal([id]);
    const pending = await client.send(new DescribeInstancesCommand({
      Filters: [{ Name: 'tag:Spec', Values: ['stat*'] }, { Name: 'instance-state-name', Values: ['pending'] }],
    }));
    expect(pending.Reservations!.flatMap((r) => r.Instances!).map((i) => i.InstanceId)).to.deep.equal([id]);

    const running = await waitFor('running by filters', async () => {
      const found = await client.send(new DescribeInstancesCommand({
        Filters: [{ Name: 'tag:Spec', Values: ['states'] }, { Name: 'instance-state-name', Values: ['running'] }, { Name: 'tag-key', Values: ['JobManager'] }],
      }));
      return found.Reservations!.flatMap((r) => r.Instances!)[0] ?? null;
    });
    expect(running.State).to.deep.equal({ Code: 16, Name: 'running' });
    expect(running.InstanceId).to.equal(id);
    const none = await client.send(new DescribeInstancesCommand({ Filters: [{ Name: 'tag:Spec', Values: ['states'] }, { Name: 'instance-state-name', Values: ['pending'] }] }));
    expect(none.Reservations).to.deep.equal([]);
    await expectEc2Error(client.send(new DescribeInstancesCommand({ Filters: [{ Name: 'no-such-filter', Values: ['x'] }] })), 'InvalidParameterValue', 400);
  });

  it('lets the client key log in as the user, the host key matching the one in GetConsoleOutput', async function () {
    const { InstanceId: id } = await launch('ssh');
    const running = await waitState(id!, 'running');
    const { Output } = await client.send(new GetConsoleOutputCommand({ InstanceId: id }));
    const text = Buffer.from(Output!, 'base64').toString('utf8');
    expect(text).to.match(/-----BEGIN SSH HOST KEY KEYS-----\n(.+\n)+-----END SSH HOST KEY KEYS-----/);
    const keys = consoleHostKeys(text);
    expect(keys.map((line) => line.split(' ')[0])).to.have.members(['ssh-ed25519', 'ecdsa-sha2-nistp256']);
    expect(keys.every((line) => line.endsWith(` root@ip-${running.PrivateIpAddress!.replaceAll('.', '-')}`))).to.equal(true);

    const { stdout, conn } = await sshExec(running.PrivateIpAddress!, ec2.sshPort, privateKey, keys, 'id -un; echo ok');
    open.push(conn);
    expect(stdout).to.equal(`${USER}\nok\n`);
    // A key that is not in the console output is refused.
    const other = ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA someone@else'];
    let refused = false;
    await sshExec(running.PrivateIpAddress!, ec2.sshPort, privateKey, other, 'true').then(({ conn: c }) => c.end(), () => (refused = true));
    expect(refused, 'an unknown host key is refused').to.equal(true);
  });

  it('tags an instance with CreateTags', async function () {
    const { InstanceId: id } = await launch('tags');
    const created = await client.send(new CreateTagsCommand({ Resources: [id!], Tags: [{ Key: 'Spec', Value: 'tags-2' }, { Key: 'Idle', Value: '' }] }));
    expect(created.$metadata.httpStatusCode).to.equal(200);
    expect((await describeOne(id!)).Tags).to.deep.equal([{ Key: 'JobManager', Value: 'loopback' }, { Key: 'Spec', Value: 'tags-2' }, { Key: 'Idle', Value: '' }]);
    const found = await client.send(new DescribeInstancesCommand({ Filters: [{ Name: 'tag:Spec', Values: ['tags-2'] }, { Name: 'tag-key', Values: ['Idle'] }] }));
    expect(found.Reservations!.flatMap((r) => r.Instances!).map((i) => i.InstanceId)).to.deep.equal([id]);
    await expectEc2Error(client.send(new CreateTagsCommand({ Resources: ['i-0000000000000000f'], Tags: [{ Key: 'a', Value: 'b' }] })), 'InvalidInstanceID.NotFound', 400);
  });

  it('terminates: shutting-down, then terminated (still listed), its sshd and sessions gone', async function () {
    const { InstanceId: id } = await launch('terminate');
    const running = await waitState(id!, 'running');
    const address = running.PrivateIpAddress!;
    const { Output } = await client.send(new GetConsoleOutputCommand({ InstanceId: id }));
    const keys = consoleHostKeys(Buffer.from(Output!, 'base64').toString('utf8'));
    // A job left running detached (its own session), as JobManager starts them.
    const { stdout, conn } = await sshExec(address, ec2.sshPort, privateKey, keys, 'setsid sleep 1234 </dev/null >/dev/null 2>&1 & echo $!');
    const jobPid = Number(stdout.trim());
    const connClosed = new Promise<void>((resolve) => conn.once('close', () => resolve()));
    const sshdPid = ec2.instances().find((i) => i.id === id)!.sshdPid!;
    expect(dead(jobPid)).to.equal(false);
    expect(dead(sshdPid)).to.equal(false);

    const result = await client.send(new TerminateInstancesCommand({ InstanceIds: [id!] }));
    expect(result.TerminatingInstances).to.deep.equal([{ InstanceId: id, CurrentState: { Code: 32, Name: 'shutting-down' }, PreviousState: { Code: 16, Name: 'running' } }]);
    const terminated = await waitState(id!, 'terminated');
    expect(terminated.State).to.deep.equal({ Code: 48, Name: 'terminated' });
    expect(terminated.PrivateIpAddress, 'a terminated instance has no address').to.equal(undefined);
    expect(terminated.StateReason?.Code).to.equal('Client.UserInitiatedShutdown');
    expect(dead(sshdPid), 'its sshd').to.equal(true);
    expect(dead(jobPid), 'its detached job').to.equal(true);
    expect(await sshBanner(address, ec2.sshPort), 'nothing answers SSH').to.equal(false);
    await connClosed;

    const stateFilter = await client.send(new DescribeInstancesCommand({ Filters: [{ Name: 'instance-state-name', Values: ['terminated'] }, { Name: 'tag:Spec', Values: ['terminate'] }] }));
    expect(stateFilter.Reservations!.flatMap((r) => r.Instances!).map((i) => i.InstanceId)).to.deep.equal([id]);
    // Terminating again is idempotent, as on EC2; an unknown id fails the whole request.
    const again = await client.send(new TerminateInstancesCommand({ InstanceIds: [id!] }));
    expect(again.TerminatingInstances![0].CurrentState).to.deep.equal({ Code: 48, Name: 'terminated' });
    await expectEc2Error(client.send(new TerminateInstancesCommand({ InstanceIds: ['i-0123456789abcdef0'] })), 'InvalidInstanceID.NotFound', 400);
    expect(ec2.maxAlive).to.be.at.least(1);
  });

  it('answers each injected error with its code and EC2 status', async function () {
    const cases: [string, string, number, () => Promise<unknown>][] = [
      ['RunInstances', 'InsufficientInstanceCapacity', 500, () => once.send(new RunInstancesCommand(launchInput('faults')))],
      ['RunInstances', 'VcpuLimitExceeded', 400, () => once.send(new RunInstancesCommand(launchInput('faults')))],
      ['RunInstances', 'InstanceLimitExceeded', 400, () => once.send(new RunInstancesCommand(launchInput('faults')))],
      ['DescribeInstances', 'RequestLimitExceeded', 503, () => once.send(new DescribeInstancesCommand({}))],
      ['TerminateInstances', 'UnauthorizedOperation', 403, () => once.send(new TerminateInstancesCommand({ InstanceIds: ['i-0123456789abcdef0'] }))],
    ];
    const launched = ec2.instances().length;
    for (const [action, code, status, call] of cases) {
      const calls = ec2.calls(action);
      ec2.failNext(action, code);
      await expectEc2Error(call(), code, status);
      expect(ec2.calls(action), `${code}: one request`).to.equal(calls + 1);
    }
    expect(ec2.instances().length, 'a failed RunInstances launches nothing').to.equal(launched);
  });

  it('counts requests received in failNext: the SDK retries 500 and 503 by itself', async function () {
    const calls = ec2.calls('DescribeInstances');
    ec2.failNext('DescribeInstances', 'RequestLimitExceeded', 2);
    await client.send(new DescribeInstancesCommand({ Filters: [{ Name: 'tag:Spec', Values: ['none'] }] }));
    expect(ec2.calls('DescribeInstances')).to.equal(calls + 3);
  });

  it('answers an unknown action with InvalidAction', async function () {
    const response = await fetch(`${ec2.endpoint}/`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'Action=DescribeUnicorns&Version=2016-11-15',
    });
    expect(response.status).to.equal(400);
    expect(await response.text()).to.match(/^<\?xml[^>]*>\n<Response><Errors><Error><Code>InvalidAction<\/Code><Message>[^<]+<\/Message><\/Error><\/Errors><RequestID>[0-9a-f-]{36}<\/RequestID><\/Response>$/);
  });

  describe('with a visibility delay, a late sshd and no host keys on the console', function () {
    let late: LoopbackEc2;
    let lateClient: EC2Client;

    before(async function () {
      late = await LoopbackEc2.start({
        clientPublicKey: readFileSync(join(dir, 'id_ed25519.pub'), 'utf8'), username: USER, firstIndex: 60,
        bootDelayMs: 100, sshReadyDelayMs: 800, visibilityDelayMs: 1500, consoleHostKeys: false,
      });
      lateClient = sdk(late);
    });

    after(async function () {
      lateClient?.destroy();
      await late?.stop();
    });

    it('does not list a new instance until the delay has passed; sshd answers after running', async function () {
      const reservation = await lateClient.send(new RunInstancesCommand(launchInput('late')));
      const id = reservation.Instances![0].InstanceId!;
      const listed = async () => (await lateClient.send(new DescribeInstancesCommand({ Filters: [{ Name: 'tag:Spec', Values: ['late'] }] })))
        .Reservations!.flatMap((r) => r.Instances!).map((i) => i.InstanceId);
      expect(await listed()).to.deep.equal([]);
      await expectEc2Error(lateClient.send(new DescribeInstancesCommand({ InstanceIds: [id] })), 'InvalidInstanceID.NotFound', 400);
      await waitFor('running', async () => (late.instances()[0].state === 'running' ? true : null));
      expect(await sshBanner(loopbackAddress(60), late.sshPort), 'running, but sshd not up yet').to.equal(false);
      await waitFor('the instance listed', async () => ((await listed()).includes(id) ? true : null));
      expect(late.instances().map((i) => i.address)).to.deep.equal([loopbackAddress(60)]);

      // cloud-init finishes once sshd has its keys; this server prints none of them.
      const text = await waitFor('cloud-init finished', async () => {
        const { Output } = await lateClient.send(new GetConsoleOutputCommand({ InstanceId: id }));
        const output = Buffer.from(Output ?? '', 'base64').toString('utf8');
        return output.includes('Cloud-init v. 22.2.2 finished') ? output : null;
      });
      expect(consoleHostKeys(text)).to.deep.equal([]);
      expect(await sshBanner(loopbackAddress(60), late.sshPort), 'sshd up').to.equal(true);
    });
  });
});
