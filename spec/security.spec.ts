import { expect } from 'chai';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { Redis } from 'ioredis';
import type { JobView } from '../lib/cli/views.js';
import { Workspace, FAST_CONFIG } from './support/workspace.js';
import { loopbackAddress, SshHost } from './support/sshd.js';
import { SupervisorProcess } from './support/supervisor-process.js';
import { CLI_MAIN, runCli, type CliResult } from './support/cli.js';
import { TlsRedisServer } from './support/tls-redis.js';
import { LoopbackEc2 } from './support/ec2-server.js';
import { findNamed } from './support/fs-snapshot.js';
import { waitFor } from './support/wait-for.js';
import { nodeLocation } from '../lib/store/keys.js';
import { defaultNodeName } from '../lib/nodes/node-name.js';

/** The local slots of the supervisors these specs start (their node: this machine's host name). */
const HERE = nodeLocation(defaultNodeName());
import { logMessages, supervisorLog } from './support/supervisor-log.js';

// Security checks as specs (issue 5, item 3): SSH host keys (strict, and accept-new's one-time
// trust), no secret in any log, record, event or --json output, nothing read from Redis
// evaluated or run but a job's own declared commands, the embedded Redis closed to other users,
// and Redis over TLS with a password. All against real services: redis-server (plain, embedded
// and TLS), sshd, the loopback EC2 server and the real supervisor.

function jobsOf(result: CliResult): JobView[] {
  return (JSON.parse(result.stdout) as { jobs: JobView[] }).jobs;
}

/** Every key of a Redis, with its value, as text (for looking for secrets). */
async function dumpRedis(redis: Redis): Promise<string> {
  const lines: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'COUNT', 1000);
    cursor = next;
    for (const key of keys) {
      const type = await redis.type(key);
      const value =
        type === 'string' ? await redis.get(key)
        : type === 'hash' ? await redis.hgetall(key)
        : type === 'list' ? await redis.lrange(key, 0, -1)
        : type === 'set' ? await redis.smembers(key)
        : type === 'zset' ? await redis.zrange(key, 0, -1, 'WITHSCORES')
        : type === 'stream' ? await redis.xrange(key, '-', '+')
        : null;
      lines.push(`${key} ${JSON.stringify(value)}`);
    }
  } while (cursor !== '0');
  return lines.join('\n');
}

/** Every file under `dir` (that exists), as [path, text]. */
function filesUnder(dir: string): [string, string][] {
  if (!existsSync(dir)) return [];
  const out: [string, string][] = [];
  for (const entry of readdirSync(dir, { recursive: true }) as string[]) {
    const path = join(dir, entry);
    try {
      if (statSync(path).isFile()) out.push([path, readFileSync(path, 'utf8')]);
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** Fails, listing where they were found, if any secret appears in any text. */
function expectNoLeaks(texts: [string, string][], secrets: Record<string, string>): void {
  const found = leaks(texts, secrets);
  expect(found, `secrets found:\n    ${found.slice(0, 12).join('\n    ')}\n`).to.deep.equal([]);
}

/** `name in where` for each secret that appears in a text. */
function leaks(texts: [string, string][], secrets: Record<string, string>): string[] {
  const found: string[] = [];
  for (const [where, text] of texts) {
    for (const [name, secret] of Object.entries(secrets)) if (text.includes(secret)) found.push(`${name} in ${where}`);
  }
  return found;
}

(SshHost.available() ? describe : describe.skip)('security: SSH host keys', function () {
  this.timeout(120_000);
  let host: SshHost;
  const workspaces: Workspace[] = [];

  before(async function () {
    host = await SshHost.start({ index: 12 });
  });

  after(async function () {
    const crashes = workspaces.flatMap((ws) => ws.actorCrashes());
    for (const ws of workspaces) await ws.dispose();
    await host?.stop();
    expect(crashes, 'no actor may crash').to.deep.equal([]);
  });

  async function workspace(config: Record<string, unknown>): Promise<Workspace> {
    const ws = await Workspace.create();
    workspaces.push(ws);
    ws.writeConfig({ ...FAST_CONFIG, Deployment: `k${basename(ws.dir).slice(-6)}`, Hosts: [host.hostEntry(2)], ...config });
    await ws.startSupervisor();
    return ws;
  }

  async function runRemote(ws: Workspace, name: string): Promise<JobView> {
    const file = ws.write(`${name}.yaml`, ['ClassType: Remote', `Hostname: ${host.name}`, 'Order:', `  - Run: echo ${name} > ${name}.out`].join('\n'));
    const queued = await ws.cli('queue', file);
    expect(queued.code, queued.stderr).to.equal(0);
    const [id] = Workspace.ids(queued.stdout);
    return jobsOf(await ws.cli('wait', id, '--json', '--timeout', '60s'))[0];
  }

  function ranOnHost(ws: Workspace, name: string): boolean {
    return findNamed(join(host.home, '.jobmanager', ws.deployment), new RegExp(`^${name}\\.out$`)).length > 0;
  }

  it('accept-new trusts a new host once and writes its key to KnownHosts; a changed key is still refused', async function () {
    // KnownHosts already holds another host's entry, its line not ended by a newline (as a
    // hand-edited file often is): the new entry must not run into it.
    const other = join(host.dir, 'other_key');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', other]);
    const otherLine = `other.example ${readFileSync(`${other}.pub`, 'utf8').trim().split(/\s+/).slice(0, 2).join(' ')}`;
    const ws = await Workspace.create();
    workspaces.push(ws);
    const knownHosts = join(ws.dir, 'ssh', 'known_hosts');
    mkdirSync(dirname(knownHosts));
    writeFileSync(knownHosts, otherLine);
    ws.writeConfig({ ...FAST_CONFIG, Deployment: `k${basename(ws.dir).slice(-6)}`, Hosts: [host.hostEntry(2)], KnownHosts: knownHosts, HostKeyPolicy: 'accept-new' });
    await ws.startSupervisor();

    const first = await runRemote(ws, 'first');
    expect(first.state, first.reason ?? '').to.equal('succeeded');
    const trusted = readFileSync(knownHosts, 'utf8');
    const lines = trusted.split('\n').filter(Boolean);
    expect(lines[0], 'the other host\'s entry is intact').to.equal(otherLine);
    expect(lines.slice(1), 'the new host\'s key, and nothing else').to.have.length.greaterThan(0);
    for (const line of lines.slice(1)) expect(line).to.equal(host.knownHostsLine);
    expect(logMessages(supervisorLog(ws.stateDir), /accepted the new host key/).join('\n')).to.match(/accepted the new host key of \[127\.\d+\.0\.12\]:\d+ \(host host12\) into .* \(HostKeyPolicy: accept-new\)/);

    // A new key, and no connection left from before (one made with the old key would go on).
    await host.killAll();
    await host.changeHostKey();
    const second = await runRemote(ws, 'second');
    expect(second.state).to.equal('failed');
    expect(second.reason).to.match(/host key of \[127\.\d+\.0\.12\]:\d+ \(host host12\) does not match/);
    expect(readFileSync(knownHosts, 'utf8'), 'a changed key is never written').to.equal(trusted);
    expect(ranOnHost(ws, 'second'), 'nothing ran on the impostor').to.equal(false);
    const hosts = JSON.parse((await ws.cli('hosts', '--json')).stdout).hosts as { name: string; reachable: boolean; error: string | null }[];
    expect(hosts.find((h) => h.name === host.name)).to.deep.include({ reachable: false });
    expect(hosts.find((h) => h.name === host.name)!.error).to.match(/does not match/);
  });

  it('strict refuses a host that is not in KnownHosts, and says how to add it', async function () {
    const ws = await workspace({ KnownHosts: join(host.dir, 'empty_known_hosts'), HostKeyPolicy: 'strict' });
    const job = await runRemote(ws, 'unknown');
    expect(job.state).to.equal('failed');
    expect(job.reason).to.match(/\[127\.\d+\.0\.12\]:\d+ \(host host12\) is not in .*empty_known_hosts; add its key \(ssh-keyscan -p \d+ 127\.\d+\.0\.12 >> .*\) or set HostKeyPolicy: accept-new/);
    expect(ranOnHost(ws, 'unknown')).to.equal(false);
    expect(existsSync(join(host.dir, 'empty_known_hosts')), 'strict writes nothing').to.equal(false);
  });
});

(SshHost.available() ? describe : describe.skip)('security: no secret in logs, records, events or --json output', function () {
  this.timeout(180_000);
  const PASSWORD = `rpw${randomBytes(9).toString('hex')}`;
  const AWS_ID = `AKIA${randomBytes(8).toString('hex').toUpperCase()}`;
  const AWS_SECRET = randomBytes(30).toString('base64').replace(/[+/=]/g, 'x');
  let tls: TlsRedisServer;
  let host: SshHost;
  let ec2: LoopbackEc2;
  let ws: Workspace;
  let supervisor: SupervisorProcess;
  let env: NodeJS.ProcessEnv;
  let secrets: Record<string, string>;
  let badKeyReason: string | null = null;
  const outputs: [string, string][] = [];

  async function cli(...args: string[]): Promise<CliResult> {
    const result = await runCli(args, env, ws.dir);
    outputs.push([`\`jobmanager ${args.join(' ').slice(0, 60)}\``, result.stdout + result.stderr]);
    return result;
  }

  before(async function () {
    [tls, host] = await Promise.all([TlsRedisServer.start(PASSWORD), SshHost.start({ index: 13 })]);
    ws = await Workspace.create({ embedded: true });
    const ec2Key = join(ws.dir, 'ec2_key');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', ec2Key]);
    ec2 = await LoopbackEc2.start({ clientPublicKey: readFileSync(`${ec2Key}.pub`, 'utf8'), username: 'jmec2', firstIndex: 40 });
    ec2.failNext('RunInstances', 'AuthFailure', 1000, 'AWS was not able to validate the provided access credentials');
    const keyBody = readFileSync(host.clientKey, 'utf8').split('\n').filter((line) => line && !line.startsWith('-----'));
    secrets = { 'the Redis password': PASSWORD, 'AWS_SECRET_ACCESS_KEY': AWS_SECRET, 'AWS_ACCESS_KEY_ID': AWS_ID };
    keyBody.forEach((line, i) => (secrets[`line ${i + 1} of the private key`] = line));
    ws.writeConfig({
      ...FAST_CONFIG, LogLevel: 'debug', Deployment: `s${basename(ws.dir).slice(-6)}`, HostDownAfter: '3s',
      KnownHosts: ws.write('known_hosts', `${host.knownHostsLine}\n`),
      Hosts: [host.hostEntry(2), { ...host.hostEntry(1), Name: 'badkey', Key: join(ws.dir, 'not-a-key') }],
      EC2: { Region: 'us-east-1', ImageId: 'ami-0123456789abcdef0', InstanceType: 't3.micro', KeyName: 'jm', Username: 'jmec2', Key: ec2Key, MaxInstances: 1, Endpoint: ec2.endpoint, ShutdownCommand: ec2.shutdownCommand, MetadataEndpoint: ec2.metadataEndpoint },
    });
    // The password rides in JM_REDIS_URL and the AWS credentials in the environment, as users set them.
    env = { ...ws.env(), JM_REDIS_URL: `${tls.url()}?ca=${tls.caFile}`, AWS_ACCESS_KEY_ID: AWS_ID, AWS_SECRET_ACCESS_KEY: AWS_SECRET, AWS_REGION: 'us-east-1' };
    supervisor = await SupervisorProcess.start(env);
    ws.write('leak.mjs', 'export function leak() { return ["AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "JM_REDIS_URL"].map((k) => `${k}=${process.env[k]}`).join(" "); }\n');
    ws.write('not-a-key', `AWS_SECRET_ACCESS_KEY=${AWS_SECRET}\n`);
  });

  after(async function () {
    const crashes = supervisor?.log.match(/.*actor exited.*/g) ?? [];
    await supervisor?.stop();
    await ws?.dispose();
    await Promise.all([tls?.stop(), host?.stop(), ec2?.stop()]);
    expect(crashes, 'no actor may crash').to.deep.equal([]);
  });

  /** Everything a secret could reach: logs (the supervisor's, the jobs' here and on the host), Redis, CLI output. */
  async function everywhere(ids: string[]): Promise<[string, string][]> {
    for (const id of ids) await cli('show', id, '--json');
    await cli('jobs', '--all', '--json');
    await cli('jobs', '--all');
    await cli('status', '--json');
    await cli('hosts', '--json');
    await cli('instances', '--json');
    await cli('wait', ...ids, '--json', '--timeout', '1s');
    const client = new Redis({ host: '127.0.0.1', port: tls.port, password: PASSWORD, tls: { ca: readFileSync(tls.caFile) } });
    try {
      return [
        ...outputs,
        ['the supervisor\'s stderr', supervisor.log],
        ...filesUnder(ws.stateDir).filter(([path]) => !path.includes('/redis/')),
        ...filesUnder(join(host.home, '.jobmanager', ws.deployment)),
        ['Redis (every key)', await dumpRedis(client)],
      ];
    } finally {
      client.disconnect();
    }
  }

  it('keeps them out of everything, through jobs that succeed and fail here, on an SSH host and on EC2, and refused input', async function () {
    const files = [
      ws.write('ok.yaml', 'Name: ok\nOrder: [{Run: "echo fine"}]\n'),
      ws.write('fails.yaml', 'Name: "$AWS_SECRET_ACCESS_KEY"\nEnv: {X: "$JM_REDIS_URL", Y: "${AWS_SECRET_ACCESS_KEY}"}\nOrder: [{Run: "echo failing >&2; exit 3"}]\n'),
      ws.write('remote.yaml', `ClassType: Remote\nHostname: ${host.name}\nOrder: [{Run: "echo remote", Outputs: [o]}]\n`),
      ws.write('remote-fails.yaml', `ClassType: Remote\nHostname: ${host.name}\nOrder: [{Run: "exit 4"}]\n`),
      // A "key" that is a file holding a secret: the error names the file, never its content.
      ws.write('bad-key.yaml', 'ClassType: Remote\nHostname: badkey\nOrder: [{Run: "true"}]\n'),
    ];
    const queued = await cli('queue', '--json', ...files);
    expect(queued.code, queued.stderr).to.equal(0);
    const ids = (JSON.parse(queued.stdout) as { queued: { id: string }[] }).queued.map((q) => q.id);
    const ended = jobsOf(await cli('wait', ...ids, '--json', '--timeout', '60s'));
    expect(ended.map((j) => j.state)).to.deep.equal(['succeeded', 'failed', 'succeeded', 'failed', 'failed']);

    // EC2: the SDK signs with the credentials; the launch is refused (AuthFailure) and the job waits.
    const ec2Queued = await cli('queue', ws.write('ec2.yaml', 'ClassType: EC2\nOrder: [{Run: "true"}]\n'));
    const [ec2Id] = Workspace.ids(ec2Queued.stdout);
    await waitFor('the EC2 job to say why it waits', async () => /AuthFailure/.test(jobsOf(await cli('wait', ec2Id, '--json', '--timeout', '1s'))[0].reason ?? ''), 30_000);
    await cli('cancel', ec2Id);

    // Refused input: a private key pasted into a job file, and into the config's Hosts.
    const keyText = readFileSync(host.clientKey, 'utf8');
    const pasted = await cli('queue', ws.write('pasted.yaml', `ClassType: Remote\nHostname: ${loopbackAddress(13)}\nKey: ${JSON.stringify(keyText)}\nOrder: [{Run: "true"}]\n`));
    expect(pasted.code).to.equal(2);
    expect(pasted.stderr).to.match(/Key: must be the path of a private key file, not the key itself/);
    const badConfig = ws.write('pasted-config.yaml', `Hosts:\n  - {Name: lab1, Hostname: 10.0.0.5, Key: ${JSON.stringify(keyText)}}\n`);
    const refusedConfig = await cli('--config', badConfig, 'jobs');
    expect(refusedConfig.code).to.equal(2);
    expect(refusedConfig.stderr).to.match(/Hosts\.0\.Key: must be the path of a private key file/);
    // A wrong password: the error says so, and shows neither password.
    const wrong = await runCli(['status', '--json'], { ...env, JM_REDIS_URL: `${tls.url('wrong-password-x')}?ca=${tls.caFile}` }, ws.dir);
    outputs.push(['status with a wrong password', wrong.stdout + wrong.stderr]);
    expect(wrong.code).to.equal(3);
    expect(wrong.stdout + wrong.stderr).to.match(/refused the user name or password/);
    expect(wrong.stdout + wrong.stderr).not.to.contain('wrong-password-x');

    expectNoLeaks(await everywhere([...ids, ec2Id]), secrets);
    badKeyReason = ended[4].reason;
  });

  it('fails a job whose key file cannot be parsed at once, saying so (not as a host that is down)', async function () {
    expect(badKeyReason).to.match(/badkey: the key .*not-a-key cannot be used/);
  });

  it('gives a job none of the supervisor\'s secrets, through its environment, a Function step or a Thread job', async function () {
    const files = [
      ws.write('env.yaml', 'Order: [{Run: "echo AWS=$AWS_SECRET_ACCESS_KEY ID=$AWS_ACCESS_KEY_ID URL=$JM_REDIS_URL; env"}, {Run: "printf %s \\"$AWS_SECRET_ACCESS_KEY\\"", Outputs: [o]}]\n'),
      ws.write('function.yaml', 'Modules: {m: leak.mjs}\nOrder: [{Function: leak, Outputs: [o]}]\n'),
      ws.write('thread.yaml', 'ClassType: Thread\nModules: {m: leak.mjs}\nOrder: [{Function: leak, Outputs: [o]}]\n'),
    ];
    const queued = await cli('queue', '--json', ...files);
    expect(queued.code, queued.stderr).to.equal(0);
    const ids = (JSON.parse(queued.stdout) as { queued: { id: string }[] }).queued.map((q) => q.id);
    const ended = jobsOf(await cli('wait', ...ids, '--json', '--timeout', '60s'));
    expect(ended.map((j) => j.state)).to.deep.equal(['succeeded', 'succeeded', 'succeeded']);
    const { 'the Redis password': password, AWS_SECRET_ACCESS_KEY: secret, AWS_ACCESS_KEY_ID: id } = secrets;
    expectNoLeaks(await everywhere(ids), { 'the Redis password': password, AWS_SECRET_ACCESS_KEY: secret, AWS_ACCESS_KEY_ID: id });
  });
});

describe('security: what is read from Redis is data', function () {
  this.timeout(120_000);
  let ws: Workspace;
  let markers: string;
  let redis: Redis;
  let prefix: string;

  before(async function () {
    ws = await Workspace.create();
    markers = join(ws.dir, 'markers');
    mkdirSync(markers);
    await ws.startSupervisor();
    const store = await ws.store();
    redis = store.redis;
    prefix = store.keys.prefix;
  });

  after(async function () {
    const crashes = ws?.actorCrashes() ?? [];
    await ws?.dispose();
    expect(crashes, 'no actor may crash').to.deep.equal([]);
  });

  const touch = (name: string) => `touch ${markers}/${name}`;
  const marked = () => readdirSync(markers);

  /** A normalised spec as the manager writes it (JSON), with `extra` fields. */
  function specJson(run: string, extra: Record<string, unknown> = {}, outputs: string[] = []): string {
    return JSON.stringify({
      classType: 'Local', name: 'forged', file: '', baseDir: ws.dir, modules: {},
      order: [{ kind: 'run', label: 'forged', run, log: null, outputs }], env: {}, timeoutMs: null, retries: 0, pollPeriodMs: null, remote: null, ec2: null,
      ...extra,
    });
  }

  /** A job record written straight into Redis (never through `queue`); returns its id. */
  async function forge(fields: Record<string, string | number>): Promise<string> {
    const id = String(await redis.incr(`${prefix}NextId`));
    await redis.hset(`${prefix}job:${id}`, { id, name: `forged-${id}`, classType: 'Local', state: 'queued', queuedAt: Date.now(), attempt: 1, run: 0, file: '', baseDir: ws.dir, ...fields });
    await redis.zadd(`${prefix}Jobs`, id, id);
    return id;
  }

  async function waitStates(ids: string[], timeout = '30s'): Promise<JobView[]> {
    return jobsOf(await ws.cli('wait', ...ids, '--json', '--timeout', timeout));
  }

  it('rejects hostile definitions pushed straight onto Job_Queue (prototype keys, deep nesting, metacharacters) and goes on', async function () {
    const deep = `{"Modules": {"m": "x.mjs"}, "Order": [{"Function": "f", "Inputs": [{"x": ${'['.repeat(10_000)}${']'.repeat(10_000)}}]}]}`;
    const definitions = [
      `{"__proto__": {"Order": [{"Run": "${touch('proto')}"}]}, "Order": [{"Run": "echo ok"}]}`,
      `{"constructor": {"prototype": {"Env": {"X": "1"}}}, "Order": [{"Run": "${touch('ctor')}"}]}`,
      `{"Env": {"A=1; ${touch('envname')}; B": "x"}, "Order": [{"Run": "echo ok"}]}`,
      `{"Order": [{"Run": "echo ok", "Log": "../../${basename(markers)}/log"}]}`,
      deep,
      '{"Order": [',
    ];
    const ids: string[] = [];
    for (const raw of definitions) {
      const id = await forge({ raw });
      await redis.lpush(`${prefix}Job_Queue`, id);
      ids.push(id);
    }
    // Entries that are not job ids at all.
    const junk = [`$(${touch('entry')})`, `1; ${touch('entry2')}`, '\u001b]0;pwned\u0007', '../../etc/passwd'];
    for (const entry of junk) await redis.lpush(`${prefix}Job_Queue`, entry);
    await redis.lpush(`${prefix}Signal:manager`, 1);
    const after = ws.write('after.yaml', 'Order: [{Run: "echo still going"}]\n');
    const [good] = Workspace.ids((await ws.cli('queue', after)).stdout);

    const jobs = await waitStates([...ids, good]);
    expect(jobs.map((j) => j.state)).to.deep.equal([...definitions.map(() => 'rejected'), 'succeeded']);
    expect(jobs[0].reason).to.match(/__proto__: unknown key in the job file/);
    expect(jobs[1].reason).to.match(/constructor: unknown key in the job file/);
    expect(jobs[2].reason).to.match(/is not a valid name/);
    expect(jobs[3].reason).to.match(/Log: must be a file name in the job's directory/);
    expect(jobs[4].reason).to.match(/nested more than 64 levels deep/);
    expect(jobs[5].reason).to.match(/must be a mapping/);
    const listed = jobsOf(await ws.cli('jobs', '--all', '--json'));
    const rejectedJunk = listed.filter((j) => junk.some((entry) => entry.slice(0, 80) === j.name));
    expect(rejectedJunk.map((j) => j.state)).to.deep.equal(junk.map(() => 'rejected'));
    const table = await ws.cli('jobs', '--all');
    expect(table.code).to.equal(0);
    expect(table.stdout, 'no escape sequence reaches the terminal').not.to.match(/\u001b/);
    expect(marked()).to.deep.equal([]);
    expect(ws.supervisor!.running).to.equal(true);
  });

  it('treats records that were never queued as data: show, logs, wait, cancel and a restart run none of their commands', async function () {
    const waiting = await forge({ raw: JSON.stringify({ Order: [{ Run: touch('never-queued') }] }), spec: specJson(touch('never-queued')) });
    const ended = await forge({ state: 'succeeded', endedAt: Date.now(), spec: specJson(touch('ended')), location: 'local', host: HERE });
    await redis.sadd(`${prefix}LocalJobs:${defaultNodeName()}`, ended); // a slot it should not hold: recovery must not take it for a launch
    for (const id of [waiting, ended]) {
      for (const args of [['show', id], ['show', id, '--json'], ['logs', id], ['wait', id, '--timeout', '1s', '--json']]) {
        const result = await ws.cli(...args);
        expect(result.code, `${args.join(' ')}: ${result.stderr}`).to.be.oneOf([0, 1]);
      }
    }
    expect((await ws.cli('cancel', waiting)).code).to.be.oneOf([0, 1]);
    await ws.supervisor!.kill9();
    await ws.startSupervisor();
    const probe = ws.write('probe.yaml', 'Order: [{Run: "true"}]\n');
    const [id] = Workspace.ids((await ws.cli('queue', probe)).stdout);
    expect((await waitStates([id]))[0].state).to.equal('succeeded');
    expect(marked()).to.deep.equal([]);
    await redis.srem(`${prefix}LocalJobs:${defaultNodeName()}`, ended);
  });

  it('starts a forged Granted_Queue payload only as the job its spec declares: extra fields ignored, prototype keys inert', async function () {
    // Own keys named __proto__ and constructor (a literal `__proto__:` would set the prototype instead).
    const pollution = { ['__proto__']: { env: { POLLUTED: 'yes' }, order: [{ kind: 'run', run: touch('proto-order') }] }, constructor: { prototype: { env: { POLLUTED: 'yes' } } } };
    const spec = specJson('printf "%s" "$POLLUTED"', {}, ['o']).replace(/}$/, `,${JSON.stringify(pollution).slice(1, -1)}}`);
    const id = await forge({ state: 'granted', run: 1, host: HERE, location: 'local', slot: HERE, spec });
    await redis.sadd(`${prefix}LocalJobs:${defaultNodeName()}`, id);
    await redis.lpush(`${prefix}Granted_Queue:${defaultNodeName()}`, [id, 1, 1, HERE, spec, 'null', 'EXTRA FIELD', `$(${touch('extra')})`].join('\n'));
    const [job] = await waitStates([id]);
    expect(job.state, job.reason ?? '').to.equal('succeeded');
    expect(job.result, 'an inherited env is no env').to.deep.equal({ o: '' });
    expect(marked()).to.deep.equal([]);
  });

  it('records a forged payload whose spec is not a job as not started, and goes on', async function () {
    // A supervisor of its own: this one may be left unable to record anything.
    const own = await Workspace.create();
    try {
      await own.startSupervisor();
      const store = await own.store();
      const k = store.keys;
      const id = String(await store.redis.incr(`${k.prefix}NextId`));
      await store.redis.hset(k.job(id), { id, name: 'broken', classType: 'Local', state: 'granted', attempt: 1, run: 1, host: HERE, location: 'local', slot: HERE, spec: '{"order": 5}' });
      await store.redis.zadd(k.jobs, id, id);
      await store.redis.sadd(k.localJobs, id);
      await store.redis.lpush(k.grantedQueue, [id, 1, 1, HERE, '{"order": 5}', 'null'].join('\n'));
      const after = own.write('after.yaml', 'Order: [{Run: "true"}]\n');
      const [next] = Workspace.ids((await own.cli('queue', after)).stdout);
      const ended = jobsOf(await own.cli('wait', id, next, '--json', '--timeout', '20s'));
      expect(ended.map((j) => j.state)).to.deep.equal(['failed', 'succeeded']);
      expect(ended[0].reason).to.match(/could not start/);
      expect(own.supervisor!.log).not.to.match(/actor exited/);
    } finally {
      await own.dispose();
    }
  });

  it('runs no command hidden in a forged spec\'s Env names', async function () {
    const spec = specJson('true', { env: { [`A=1; ${touch('env-key')}; B`]: 'x' } });
    const id = await forge({ state: 'granted', run: 1, host: HERE, location: 'local', slot: HERE, spec });
    await redis.sadd(`${prefix}LocalJobs:${defaultNodeName()}`, id);
    await redis.lpush(`${prefix}Granted_Queue:${defaultNodeName()}`, [id, 1, 1, HERE, spec, 'null'].join('\n'));
    await waitStates([id]);
    expect(marked(), 'markers').to.deep.equal([]);
  });

  it('keeps the directory of a forged payload\'s job inside the state directory', async function () {
    const name = `jmsec-escape-${basename(ws.dir)}`;
    await redis.lpush(`${prefix}Granted_Queue:${defaultNodeName()}`, [`../../../${name}`, 1, 1, HERE, specJson('true'), 'null'].join('\n'));
    const probe = ws.write('probe2.yaml', 'Order: [{Run: "true"}]\n');
    const [id] = Workspace.ids((await ws.cli('queue', probe)).stdout);
    await waitStates([id]); // the starter took the forged payload before this one
    const escaped = [...findNamed('/tmp', new RegExp(`^${name}$`), 1), ...findNamed(ws.dir, new RegExp(`^${name}$`), 2)];
    for (const path of escaped) spawnSync('rm', ['-rf', path]);
    expect(escaped, 'directories made outside the state directory').to.deep.equal([]);
  });

  it('lists and shows records whose fields are corrupt, without failing', async function () {
    const ids = [
      await forge({ state: 'running', steps: '5', spec: '{"order": 5}', result: '{', name: 'corrupt \u001b[2J' }),
      await forge({ state: 'failed', steps: '[null, 7, "x"]', spec: '{"order": [null, {"label": 5}]}', reason: 'bad\u0007' }),
      await forge({ state: 'succeeded', spec: 'null', steps: '{"0": 1}', result: '"\\u001b[31m"' }),
    ];
    for (const args of [['jobs', '--all'], ['jobs', '--all', '--json'], ...ids.flatMap((id) => [['show', id], ['show', id, '--json']]), ['wait', ...ids, '--json', '--timeout', '1s']]) {
      const result = await ws.cli(...args);
      expect(result.code, `${args.join(' ')}: ${result.stderr}`).to.be.oneOf([0, 1]);
      if (!args.includes('--json')) expect(result.stdout, `${args.join(' ')} prints no escape sequence`).not.to.match(/[\u0000-\u0008\u000b-\u001f\u007f]/);
    }
    for (const id of ids) await redis.del(`${prefix}job:${id}`);
    await redis.zrem(`${prefix}Jobs`, ...ids);
    // Its list of runs, corrupt too.
    const withRuns = await forge({ state: 'failed' });
    await redis.rpush(`${prefix}job:${withRuns}:runs`, '{', '5', 'null');
    const shown = await ws.cli('show', withRuns, '--json');
    await redis.del(`${prefix}job:${withRuns}`, `${prefix}job:${withRuns}:runs`);
    expect(shown.code, shown.stderr).to.equal(0);
  });
});

describe('security: a pid read from Redis', function () {
  this.timeout(60_000);
  let ws: Workspace;
  let child: ChildProcess | null = null;

  after(async function () {
    if (child && child.exitCode === null) {
      const exited = new Promise((resolve) => child!.once('exit', resolve));
      child.kill('SIGKILL'); // unshare --kill-child: the namespace's processes all end with it
      await exited;
    }
    await ws?.dispose();
  });

  it('never makes the supervisor signal every process (kill -1): it runs in a pid namespace, so that this would stay inside', async function () {
    if (process.getuid?.() !== 0 || spawnSync('unshare', ['--pid', '--fork', '--mount-proc', 'true']).status !== 0) this.skip();
    ws = await Workspace.create();
    child = spawn('unshare', ['--pid', '--fork', '--mount-proc', '--kill-child', process.execPath, CLI_MAIN, 'start'], { env: ws.env(), stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (log += d));
    await waitFor('the supervisor in its namespace', () => /supervisor running/.test(log));
    // Only with the supervisor as pid 1 of its own namespace may a forged pid 1 be tried.
    if (!/supervisor: pid 1,/.test(log)) this.skip();
    const store = await ws.store();
    const victim = ws.write('victim.yaml', 'Order: [{Run: "sleep 3; echo survived"}]\n');
    const [victimId] = Workspace.ids((await ws.cli('queue', victim)).stdout);
    await waitFor('the victim to run', async () => (await store.redis.hget(store.keys.job(victimId), 'state')) === 'running');
    const id = String(await store.redis.incr(`${store.keys.prefix}NextId`));
    await store.redis.hset(store.keys.job(id), {
      id, name: 'forged', classType: 'Local', state: 'running', run: 1, attempt: 1, pid: 1, host: HERE, location: 'local',
      cancelRequested: 1, pollMs: 100, startedAt: Date.now(), spec: '{"order": [{"kind": "run", "label": "x", "run": "true", "outputs": []}]}',
    });
    await store.redis.zadd(store.keys.runningQueue, 0, id);
    await store.redis.lpush(store.keys.signal('fetcher'), 1);
    const victimEnd = jobsOf(await ws.cli('wait', victimId, '--json', '--timeout', '15s'))[0];
    expect(victimEnd.state, victimEnd.reason ?? '').to.equal('succeeded');
    expect(log).not.to.match(/actor exited/);
  });
});

describe('security: the embedded Redis', function () {
  this.timeout(60_000);
  let ws: Workspace;

  after(async function () {
    await ws?.dispose();
  });

  it('lets no other user connect: its socket and its directory are its owner\'s alone', async function () {
    if (process.getuid?.() !== 0 || spawnSync('id', ['nobody']).status !== 0) this.skip();
    ws = await Workspace.create({ embedded: true });
    await ws.startSupervisor();
    const dir = join(ws.stateDir, 'redis');
    const socket = join(dir, 'redis.sock');
    expect(execFileSync('redis-cli', ['-s', socket, 'ping'], { encoding: 'utf8' }).trim(), 'its owner connects').to.equal('PONG');
    // Open the way down to it, so that only its own modes stand in the way.
    chmodSync(ws.dir, 0o755);
    chmodSync(ws.stateDir, 0o755);
    const asNobody = () => spawnSync('su', ['-s', '/bin/sh', 'nobody', '-c', `redis-cli -s '${socket}' ping`], { encoding: 'utf8' });
    const refused = asNobody();
    expect(`${refused.stdout}${refused.stderr}`).to.match(/Permission denied/);
    expect(refused.stdout).not.to.contain('PONG');
    // A directory opened by mistake still leaves the socket's own mode (0700) in the way.
    chmodSync(dir, 0o755);
    try {
      const still = asNobody();
      expect(`${still.stdout}${still.stderr}`).to.match(/Permission denied/);
      expect(still.stdout).not.to.contain('PONG');
    } finally {
      chmodSync(dir, 0o700);
    }
  });
});

describe('security: Redis over TLS with a password', function () {
  this.timeout(90_000);
  const PASSWORD = `tlspw${randomBytes(8).toString('hex')}`;
  let tls: TlsRedisServer;
  let ws: Workspace;
  let job: string;

  before(async function () {
    tls = await TlsRedisServer.start(PASSWORD);
    ws = await Workspace.create({ embedded: true });
    job = ws.write('job.yaml', 'Name: over-tls\nOrder: [{Run: "echo over tls", Outputs: [said]}]\n');
  });

  after(async function () {
    await ws?.dispose();
    await tls?.stop();
  });

  function useUrl(url: string): void {
    ws.writeConfig({ ...FAST_CONFIG, Deployment: `t${basename(ws.dir).slice(-6)}`, Redis: { Url: url } });
  }

  it('runs a job end to end (`jobmanager run`) with the CA given in the URL', async function () {
    useUrl(`${tls.url()}?ca=${tls.caFile}`);
    const result = await ws.cli('run', job);
    expect(result.code, result.stderr).to.equal(0);
    expect(result.stdout).to.match(/over-tls\s+Local\s+succeeded\s+\S+\s+\{"said":"over tls"\}/);
    expect(result.stderr, 'no warning, no password').not.to.match(/Warning|DEP0123/);
    expect(result.stdout + result.stderr).not.to.contain(PASSWORD);
  });

  it('takes the CA from JM_REDIS_CA as well', async function () {
    useUrl(tls.url());
    const result = await runCli(['run', job, '--json'], { ...ws.env(), JM_REDIS_CA: tls.caFile }, ws.dir);
    expect(result.code, result.stderr).to.equal(0);
    expect(jobsOf(result)[0]).to.deep.include({ state: 'succeeded', result: { said: 'over tls' } });
  });

  it('refuses a wrong password with a clear error that shows neither password', async function () {
    useUrl(`${tls.url('not-the-password')}?ca=${tls.caFile}`);
    for (const args of [['status'], ['jobs', '--json'], ['run', job]]) {
      const result = await ws.cli(...args);
      const text = result.stdout + result.stderr;
      expect(result.code, text).to.equal(3);
      expect(text).to.match(/cannot reach Redis at rediss:\/\/:\*\*\*@127\.0\.0\.1:\d+\/.* \(Redis refused the user name or password in the URL \(WRONGPASS\)\)/);
      expect(text).not.to.contain('not-the-password');
      expect(text).not.to.contain(PASSWORD);
    }
  });

  it('says when the certificate does not verify, and when the CA file cannot be read', async function () {
    useUrl(tls.url());
    const unverified = await ws.cli('jobs');
    expect(unverified.code).to.equal(3);
    expect(unverified.stderr).to.match(/its TLS certificate does not verify \(SELF_SIGNED_CERT_IN_CHAIN: .*\); give the CA that signed it with \?ca=FILE in the URL or JM_REDIS_CA/);
    useUrl(`${tls.url()}?ca=${join(ws.dir, 'no-such-ca.pem')}`);
    const missing = await ws.cli('jobs');
    expect(missing.code).to.equal(2);
    expect(missing.stderr.trim()).to.equal(`error: Redis.Url: ca: cannot read the CA certificate ${join(ws.dir, 'no-such-ca.pem')} (ENOENT)`);
    expect(unverified.stderr + missing.stderr).not.to.contain(PASSWORD);
  });
});
