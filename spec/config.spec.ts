import { expect } from 'chai';
import { writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type Config } from '../lib/config/config.js';
import { ConfigError } from '../lib/util/errors.js';
import { describeRedis } from '../lib/store/connect.js';
import { removeDir, tempDir } from './support/temp.js';
import { Workspace } from './support/workspace.js';

// The config: defaults from config/default.yaml, a user file on top, the old tool's key names, the
// environment overrides — and every mistake refused with FILE:LINE, the key and the fix, without
// echoing a secret. Through loadConfig, and through the real CLI with --config.

const SECRET = 'hunter2-do-not-print';

describe('config', function () {
  let dir: string;
  let count = 0;

  before(function () {
    dir = tempDir('jm-config-');
  });

  after(function () {
    removeDir(dir);
  });

  /** Writes a config file in the temporary directory; returns its path. */
  function write(text: string): string {
    const file = join(dir, `config-${++count}.yaml`);
    writeFileSync(file, text);
    return file;
  }

  function load(text: string, env: NodeJS.ProcessEnv = {}): Config {
    return loadConfig({ file: write(text), cwd: dir, env });
  }

  /** The ConfigError that loading `text` throws. */
  function refusal(text: string, env: NodeJS.ProcessEnv = {}): { error: ConfigError; file: string } {
    const file = write(text);
    try {
      loadConfig({ file, cwd: dir, env });
    } catch (err) {
      if (err instanceof ConfigError) return { error: err, file };
      throw err;
    }
    return expect.fail(`the config was accepted:\n${text}`);
  }

  /** Loading `text` fails at FILE:LINE on `key`, with a reason matching `reason`. */
  function expectRefused(text: string, line: number, key: string, reason: RegExp): ConfigError {
    const { error, file } = refusal(text);
    expect(error.code).to.equal('JM_CONFIG');
    expect([error.file, error.key]).to.deep.equal([`${file}:${line}`, key]);
    expect(error.reason).to.match(reason);
    expect(error.message).to.equal(`${file}:${line}: ${key}: ${error.reason}`);
    return error;
  }

  describe('merging', function () {
    it('uses the documented defaults when there is no file', function () {
      const config = loadConfig({ cwd: dir, env: {} });
      expect(config.file).to.equal(null);
      expect(config.redisUrl).to.equal(null);
      expect(config.stateDir).to.equal(join(homedir(), '.local/state/jobmanager'));
      expect([config.localMaxJobs, config.remoteMaxJobsPerHost, config.pollPeriodMs]).to.deep.equal([4, 3, 30_000]);
      expect([config.hostKeyPolicy, config.logLevel, config.deployment]).to.deep.equal(['strict', 'info', 'default']);
      expect(config.hosts).to.deep.equal([]);
      expect(config.ec2).to.deep.include({ region: 'us-east-1', instanceTypes: ['t3.micro'], maxInstances: 4, idleTimeoutMs: 600_000, username: 'ec2-user', securityGroupIds: [] });
      expect(config.ec2).to.deep.include({ subnetIds: [], slots: null, spot: false, iamInstanceProfile: null, userData: null, rootVolumeSize: null, shutdownCommand: 'sudo shutdown -h now', metadataEndpoint: 'http://169.254.169.254' });
    });

    it('lets a user file override some keys and keeps the other defaults, EC2 merged key by key', function () {
      const config = load('LocalMaxJobs: 9\nPollPeriod: 5s\nEC2:\n  Region: eu-west-1\n  MaxInstances: 2\n');
      expect([config.localMaxJobs, config.pollPeriodMs, config.remoteMaxJobsPerHost]).to.deep.equal([9, 5000, 3]);
      expect(config.ec2).to.deep.include({ region: 'eu-west-1', maxInstances: 2, instanceTypes: ['t3.micro'], username: 'ec2-user', idleTimeoutMs: 600_000 });
    });

    it('keeps finished jobs 7 days, at most 100,000 of them, and rotates the log at 10 MB by default; null lifts a limit', function () {
      expect(load('LocalMaxJobs: 2\n').retention).to.deep.equal({ maxAgeMs: 7 * 86_400_000, maxJobs: 100_000, logSizeBytes: 10 * 1024 ** 2, logFiles: 5 });
      expect(load('Retention: {MaxAge: null, LogSize: 64KB}\n').retention).to.deep.equal({ maxAgeMs: null, maxJobs: 100_000, logSizeBytes: 65_536, logFiles: 5 });
      expect(load('Retention: {MaxAge: 12h, MaxJobs: null, LogFiles: 2}\n').retention).to.deep.include({ maxAgeMs: 43_200_000, maxJobs: null, logFiles: 2 });
    });

    it("maps the old tool's keys (its Template.yaml) to the new ones", function () {
      const config = load([
        'regionName: us-east-1',
        'ec2MaxInstances: 18',
        'InstPollPeriod: 15 # in seconds',
        'LocalMaxJobs: 3',
        'RemoteMaxJobsPerHost: 3',
        'amiID: ami-0123456789abcdef0',
        'instanceSize: m1.large',
        'securityGroups:',
        '- sg-0a1b2c3d',
        '- sg-4e5f6a7b',
        'sshKeyName: lab-key',
        'PollPeriod: 1',
      ].join('\n'));
      expect(config.ec2).to.deep.include({
        region: 'us-east-1',
        maxInstances: 18,
        imageId: 'ami-0123456789abcdef0',
        instanceTypes: ['m1.large'],
        securityGroupIds: ['sg-0a1b2c3d', 'sg-4e5f6a7b'],
        keyName: 'lab-key',
        username: 'ec2-user',
      });
      expect([config.localMaxJobs, config.remoteMaxJobsPerHost]).to.deep.equal([3, 3]);
      expect(config.pollPeriodMs, 'a bare number is seconds').to.equal(1000);
    });

    it('lets JM_REDIS_URL and JM_STATE_DIR override the file', function () {
      const text = 'Redis: {Url: "redis://127.0.0.1:6379/0"}\nStateDir: /var/tmp/from-file\n';
      const config = load(text, { JM_REDIS_URL: 'unix:///run/jm/redis.sock', JM_STATE_DIR: join(dir, 'from-env') });
      expect(config.redisUrl).to.equal('unix:///run/jm/redis.sock');
      expect(config.stateDir).to.equal(join(dir, 'from-env'));
      const plain = load(text);
      expect([plain.redisUrl, plain.stateDir]).to.deep.equal(['redis://127.0.0.1:6379/0', '/var/tmp/from-file']);
    });

    it('accepts redis://, rediss:// and unix:// Redis URLs', function () {
      for (const url of ['redis://10.0.0.2:6379/1', 'rediss://user:pw@redis.example:6380', 'unix:///tmp/redis.sock']) {
        expect(load(`Redis: {Url: "${url}"}\n`).redisUrl).to.equal(url);
      }
    });

    it('takes Redis Sentinels (with Name, default mymaster) or Cluster nodes, as one address URL', function () {
      expect(load('Redis: {Sentinels: [10.0.0.5:26379, "[::1]:26380"], Name: jobs}\n').redisUrl).to.equal('redis+sentinel://10.0.0.5:26379,[::1]:26380/jobs');
      expect(load('Redis: {Sentinels: [10.0.0.5:26379]}\n').redisUrl).to.equal('redis+sentinel://10.0.0.5:26379/mymaster');
      expect(load('Redis: {Cluster: [10.0.0.5:7000, 10.0.0.6:7000]}\n').redisUrl).to.equal('redis+cluster://10.0.0.5:7000,10.0.0.6:7000');
      for (const url of ['redis+sentinel://:pw@10.0.0.5:26379,10.0.0.6:26379/mymaster/2', 'redis+cluster://user:pw@10.0.0.5:7000']) {
        expect(load(`Redis: {Url: "${url}"}\n`).redisUrl).to.equal(url);
      }
    });
  });

  describe('Web', function () {
    const TOKEN = 'a-web-token-0123456789abcdef';

    it('is on by default on 127.0.0.1:8650 without a token; null turns it off', function () {
      expect(loadConfig({ cwd: dir, env: {} }).web).to.deep.equal({ listen: { host: '127.0.0.1', port: 8650 }, token: null });
      expect(load('Web: {Listen: null}\n').web).to.deep.equal({ listen: null, token: null });
      expect(load('Web: {Listen: "[::1]:0"}\n').web.listen).to.deep.equal({ host: '::1', port: 0 });
      expect(load('Web: {Listen: "localhost:9000"}\n').web.listen).to.deep.equal({ host: 'localhost', port: 9000 });
    });

    it('takes the EC2 launch options, and refuses bad ones with the key and the fix', function () {
      const userData = write('#!/bin/sh\necho hi\n');
      const ec2 = load(`EC2:\n  InstanceType: t3.large\n  InstanceTypes: [t3.large, t3a.large]\n  SubnetIds: [subnet-0aaaaaaaaaaaaaaaa]\n  Slots: 2\n  Spot: true\n  IamInstanceProfile: jm-jobs\n  UserData: ${userData}\n  RootVolumeSize: 40\n  ShutdownCommand: touch /tmp/x\n`).ec2;
      expect(ec2).to.deep.include({ instanceTypes: ['t3.large', 't3a.large'], subnetIds: ['subnet-0aaaaaaaaaaaaaaaa'], slots: 2, spot: true, iamInstanceProfile: 'jm-jobs', userData, rootVolumeSize: 40, shutdownCommand: 'touch /tmp/x' });
      expectRefused('EC2:\n  InstanceTypes: [t3.large, "big one"]\n', 2, 'EC2.InstanceTypes.1', /is not an instance type: write it as EC2 names it/);
      expectRefused('EC2:\n  SubnetIds: [vpc-1]\n', 2, 'EC2.SubnetIds.0', /is not a subnet id/);
      expectRefused('EC2:\n  UserData: /nonexistent/user-data.sh\n', 2, 'EC2.UserData', /cannot read \/nonexistent\/user-data\.sh \(ENOENT\)/);
      expectRefused('EC2:\n  Slots: 0\n', 2, 'EC2.Slots', /must be a whole number from 1 to 1000/);
      expectRefused('EC2:\n  Spot: sometimes\n', 2, 'EC2.Spot', /must be true or false/);
      expectRefused('EC2:\n  ShutdownCommand: "poweroff\\nrm -rf /"\n', 2, 'EC2.ShutdownCommand', /must be one line of shell/);
      expectRefused('EC2:\n  IamInstanceProfile: "has space"\n', 2, 'EC2.IamInstanceProfile', /instance profile's name .* or its ARN/);
    });

    it('needs a token for any address but loopback, and takes one', function () {
      const error = expectRefused('Web:\n  Listen: 0.0.0.0:8650\n', 2, 'Web.Listen', /^0\.0\.0\.0:8650 is not a loopback address, so the page needs a secret: set Web\.Token/);
      expect(error.message).to.include('openssl rand -hex 24');
      expectRefused('Web: {Listen: "10.1.2.3:80"}\n', 1, 'Web.Listen', /is not a loopback address/);
      expect(load(`Web: {Listen: "0.0.0.0:8650", Token: ${TOKEN}}\n`).web).to.deep.equal({ listen: { host: '0.0.0.0', port: 8650 }, token: TOKEN });
    });

    it('refuses a bad address or a weak token without echoing the token', function () {
      expectRefused('Web: {Listen: "8650"}\n', 1, 'Web.Listen', /^must be ADDRESS:PORT .* or null to turn the page off, not the text "8650"$/);
      expectRefused('Web: {Listen: "127.0.0.1:70000"}\n', 1, 'Web.Listen', /^must be ADDRESS:PORT/);
      expectRefused('Web: {Listen: "http://127.0.0.1:8650"}\n', 1, 'Web.Listen', /^must be ADDRESS:PORT/);
      const weak = expectRefused(`Web: {Token: ${SECRET.slice(0, 10)}}\n`, 1, 'Web.Token', /^must be 16 to 1024 printable characters without spaces/);
      expect(weak.message).not.to.include(SECRET.slice(0, 10));
      expectRefused('Web: {Token: [a]}\n', 1, 'Web.Token', /^must be text/);
      expectRefused('Web: {Port: 8650}\n', 1, 'Web.Port', /^unknown key in Web/);
    });
  });

  describe('refuses', function () {
    it('an old key together with its new name', function () {
      expectRefused('regionName: us-west-2\nEC2:\n  Region: eu-west-1\n', 1, 'regionName', /^is the old name of EC2\.Region, which is also set; keep one$/);
    });

    it('awsIDs, pointing to the AWS credential chain without echoing the secrets', function () {
      const error = expectRefused(`LocalMaxJobs: 2\nawsIDs:\n- AKIAIOSFODNN7EXAMPLE\n- ${SECRET}\n`, 2, 'awsIDs', /use the standard AWS chain \(AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, ~\/\.aws\/credentials, or an instance role\) and remove awsIDs$/);
      expect(error.message).not.to.include(SECRET);
      expect(error.message).not.to.include('AKIAIOSFODNN7EXAMPLE');
    });

    it('an unknown key, suggesting the right one', function () {
      expectRefused('LocalMaxJob: 3\n', 1, 'LocalMaxJob', /^unknown key in the config; did you mean LocalMaxJobs\?$/);
      expectRefused('EC2:\n  InstanceTyp: c7i.large\n', 2, 'EC2.InstanceTyp', /^unknown key in EC2; did you mean InstanceType\?$/);
    });

    it('values of the wrong type or range', function () {
      expectRefused('LocalMaxJobs: -1\n', 1, 'LocalMaxJobs', /^must be a whole number from 0 to 10000, not number -1$/);
      expectRefused('LogLevel: info\nPollPeriod: fast\n', 2, 'PollPeriod', /^must be a duration such as 30s, 10m or 1h30m, not the text "fast"$/);
      expectRefused('HostKeyPolicy: yes\n', 1, 'HostKeyPolicy', /^must be strict or accept-new$/);
      expectRefused('Retention:\n  MaxAge: forever\n', 2, 'Retention.MaxAge', /^must be a duration such as 30s, 10m or 1h30m, not the text "forever"$/);
      expectRefused('Retention:\n  MaxJobs: -5\n', 2, 'Retention.MaxJobs', /^must be a whole number from 0 to 100000000, not number -5$/);
      expectRefused('Retention:\n  LogSize: huge\n', 2, 'Retention.LogSize', /^must be a size such as 10MB, 512KB or a number of bytes, not the text "huge"$/);
      expectRefused('Retention:\n  LogSize: 100\n', 2, 'Retention.LogSize', /^must be at least 4096 bytes/);
      expectRefused('Retention:\n  MaxAgee: 1d\n', 2, 'Retention.MaxAgee', /MaxAge/);
    });

    it('Hosts with a duplicate name, no Hostname, or the reserved name any', function () {
      expectRefused('Hosts:\n  - {Name: lab1, Hostname: 10.0.0.5}\n  - {Name: lab1, Hostname: 10.0.0.6}\n', 3, 'Hosts.1.Name', /^lab1 is listed twice$/);
      expectRefused('Hosts:\n  - Name: lab1\n    Port: 22\n', 2, 'Hosts.0.Hostname', /^is missing: the address or DNS name of the host \(or a Host lab1 block with a HostName in .*\)$/);
      expectRefused('Hosts:\n  - {Name: any, Hostname: 10.0.0.5}\n', 2, 'Hosts.0.Name', /^`any` is reserved/);
    });

    it('a Redis URL that is not redis://, rediss://, unix://, redis+sentinel:// or redis+cluster://', function () {
      expectRefused('Redis:\n  Url: "http://127.0.0.1:6379"\n', 2, 'Redis.Url', /^must start with redis:\/\/, rediss:\/\/, unix:\/\/, redis\+sentinel:\/\/ or redis\+cluster:\/\/ \(or be null for the embedded redis-server\)$/);
    });

    it('Redis Sentinels or Cluster nodes that are not host:port, and more than one kind of Redis', function () {
      expectRefused('Redis:\n  Sentinels: [10.0.0.5]\n', 2, 'Redis.Sentinels', /^must be a list of host:port \(e\.g\. \[10\.0\.0\.5:26379/);
      expectRefused('Redis:\n  Cluster: ["10.0.0.5:7000", nope]\n', 2, 'Redis.Cluster', /^must be a list of host:port/);
      expectRefused('Redis:\n  Name: mymaster\n', 2, 'Redis.Name', /^names the master of Redis\.Sentinels: give Sentinels too/);
      expectRefused('Redis:\n  Url: "redis://10.0.0.5:6379"\n  Cluster: ["10.0.0.5:7000"]\n', 3, 'Redis.Cluster', /^cannot go with Redis\.Url: give one of Url, Sentinels \(with Name\) or Cluster$/);
      expectRefused('Redis:\n  Url: "redis+sentinel://10.0.0.5:26379"\n', 2, 'Redis.Url', /^name the master after the Sentinels: redis\+sentinel:\/\/host:port,host:port\/mymaster/);
    });

    it('a bad redis+cluster:// JM_REDIS_URL, naming the variable', function () {
      const { error } = refusal('LocalMaxJobs: 2\n', { JM_REDIS_URL: 'redis+cluster://10.0.0.5:7000/3' });
      expect([error.file, error.key]).to.deep.equal(['environment', 'JM_REDIS_URL']);
      expect(error.reason).to.match(/^a cluster has no database number or name/);
    });

    it('a bad JM_REDIS_URL, naming the variable rather than the file', function () {
      const { error } = refusal('LocalMaxJobs: 2\n', { JM_REDIS_URL: 'localhost:6379' });
      expect([error.file, error.key]).to.deep.equal(['environment', 'JM_REDIS_URL']);
      expect(error.reason).to.match(/^must start with redis:\/\/, rediss:\/\/, unix:\/\/, redis\+sentinel:\/\/ or redis\+cluster:\/\//);
    });
  });

  describe('never shows a Redis password in an error', function () {
    it('when the Url has the wrong scheme', function () {
      const error = expectRefused(`Redis: {Url: "http://jm:${SECRET}@redis.example:6379"}\n`, 1, 'Redis.Url', /must start with redis:\/\//);
      expect(error.message).not.to.include(SECRET);
    });

    it('when the URL is written where the Redis mapping belongs', function () {
      const error = expectRefused(`Redis: redis://jm:${SECRET}@redis.example:6379/0\n`, 1, 'Redis', /^must be a mapping: write Redis: \{Url: redis:\/\/jm:\*\*\*@redis\.example:6379\/0\}$/);
      expect(error.message).not.to.include(SECRET);
    });

    it('in a redis+sentinel:// or redis+cluster:// URL: refused, or shown in logs and status', function () {
      const error = expectRefused(`Redis: {Url: "redis+sentinel://:${SECRET}@10.0.0.5:26379"}\n`, 1, 'Redis.Url', /^name the master after the Sentinels/);
      expect(error.message).not.to.include(SECRET);
      expect(describeRedis(`redis+sentinel://:${SECRET}@10.0.0.5:26379,10.0.0.6:26379/mymaster`)).to.equal('redis+sentinel://***@10.0.0.5:26379,10.0.0.6:26379/mymaster');
      expect(describeRedis(`redis+cluster://jm:${SECRET}@10.0.0.5:7000`)).not.to.include(SECRET);
    });

    it('when JM_REDIS_URL is bad', function () {
      const { error } = refusal('LocalMaxJobs: 2\n', { JM_REDIS_URL: `http://jm:${SECRET}@redis.example` });
      expect(error.message).not.to.include(SECRET);
    });
  });

  describe('through the CLI (--config FILE)', function () {
    let ws: Workspace;

    before(async function () {
      ws = await Workspace.create();
    });

    after(async function () {
      await ws.dispose();
    });

    /** `queue` of a valid job with --config `file`: exit 2, the `error:` line, nothing queued. */
    async function refusedByCli(file: string): Promise<string> {
      const job = ws.write('job.yaml', 'Order:\n  - Run: echo fine\n');
      const result = await ws.cli('--config', file, 'queue', job);
      expect(result.code, result.stderr).to.equal(2);
      expect(result.stdout).to.equal('');
      const store = await ws.store();
      expect(await store.redis.llen(store.keys.jobQueue)).to.equal(0);
      expect(await store.jobIds(0, 100)).to.deep.equal([]);
      return result.stderr.trim();
    }

    it('refuses a wrong type, naming file:line and key', async function () {
      const file = ws.write('bad-type.yaml', 'LocalMaxJobs: 2\nHostKeyPolicy: yes\n');
      expect(await refusedByCli(file)).to.equal(`error: ${file}:2: HostKeyPolicy: must be strict or accept-new`);
    });

    it('refuses an unknown key with a suggestion', async function () {
      const file = ws.write('typo.yaml', 'EC2:\n  Region: eu-west-1\n  MaxInstance: 3\n');
      expect(await refusedByCli(file)).to.equal(`error: ${file}:3: EC2.MaxInstance: unknown key in EC2; did you mean MaxInstances?`);
    });

    it('refuses awsIDs without printing the secrets', async function () {
      const file = ws.write('aws.yaml', `awsIDs:\n- AKIAIOSFODNN7EXAMPLE\n- ${SECRET}\n`);
      const stderr = await refusedByCli(file);
      expect(stderr).to.match(new RegExp(`^error: ${file}:1: awsIDs: AWS credentials do not belong in the config: use the standard AWS chain`));
      expect(stderr).not.to.include(SECRET);
      expect(stderr).not.to.include('AKIAIOSFODNN7EXAMPLE');
    });

    it('refuses a Redis URL given in place of the mapping without printing its password', async function () {
      const file = ws.write('redis.yaml', `Redis: rediss://jm:${SECRET}@redis.example:6380\n`);
      expect(await refusedByCli(file)).to.equal(`error: ${file}:1: Redis: must be a mapping: write Redis: {Url: rediss://jm:***@redis.example:6380}`);
    });
  });
});
