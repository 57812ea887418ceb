import { readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { expandHome } from '../util/paths.js';
import { checkKeys, describeType, expectMap, optBool, optDuration, optInt, optString, optStringList, optStringMap, looksLikeKey, type Fail } from '../jobfile/fields.js';

// The EC2 section of the config (config/default.yaml documents each key and its default),
// validated and compiled here into an Ec2Config of plain values, apart from config.ts because it
// has grown to a score of keys of its own.

export interface Ec2Config {
  region: string;
  imageId: string | null;
  /** Types tried in order on capacity errors: InstanceTypes, or [InstanceType] when that is empty. */
  instanceTypes: string[];
  keyName: string | null;
  securityGroupIds: string[];
  /** Subnets tried in order on capacity errors: SubnetIds, or [SubnetId], or [] (EC2's default). */
  subnetIds: string[];
  username: string;
  key: string | null;
  maxInstances: number;
  idleTimeoutMs: number;
  readyTimeoutMs: number;
  port: number;
  tags: Record<string, string>;
  endpoint: string | null;
  /** Jobs at once on one instance; null: its type's vCPU count (DescribeInstanceTypes). */
  slots: number | null;
  spot: boolean;
  /** An instance profile's name, or its ARN. */
  iamInstanceProfile: string | null;
  /** The user data file (absolute path), read and checked here; sent as it is. */
  userData: string | null;
  /** The root volume's size in GiB; null: the image's. */
  rootVolumeSize: number | null;
  /** What an instance's watchdog runs to end it (it was launched to terminate on shutdown). */
  shutdownCommand: string;
  /** The instance metadata service, as the instance reaches it; `{address}`: the instance's own address. */
  metadataEndpoint: string;
}

const EC2_KEYS = [
  'Region', 'ImageId', 'InstanceType', 'InstanceTypes', 'KeyName', 'SecurityGroupIds', 'SubnetId', 'SubnetIds', 'Username', 'Key',
  'MaxInstances', 'IdleTimeout', 'ReadyTimeout', 'Port', 'Tags', 'Endpoint', 'Slots', 'Spot', 'IamInstanceProfile', 'UserData',
  'RootVolumeSize', 'ShutdownCommand', 'MetadataEndpoint',
];

/** EC2 takes at most 16 KB of user data (before base64). */
const USER_DATA_MAX = 16 * 1024;
const INSTANCE_TYPE = /^[a-z][a-z0-9-]*\.[a-z0-9-]+$/;
const SUBNET = /^subnet-[0-9a-f]{8,17}$/;

/**
 * A key pasted where its path belongs would be echoed by every "cannot read the key" error, into
 * logs, job records and `hosts --json` (found by spec/security.spec.ts).
 */
export const KEY_NOT_PATH = 'must be the path of a private key file, not the key itself: save the key in a file (mode 600) and give its path';

export function compileEc2(raw: unknown, fail: Fail): Ec2Config {
  const ec2 = expectMap(raw ?? {}, ['EC2'], fail, 'EC2');
  checkKeys(ec2, EC2_KEYS, ['EC2'], fail, 'EC2');
  const path = ['EC2'];
  const key = optString(ec2, 'Key', path, fail, 1024);
  if (key && looksLikeKey(key)) fail([...path, 'Key'], KEY_NOT_PATH);
  const instanceType = optString(ec2, 'InstanceType', path, fail, 64) ?? 't3.micro';
  const instanceTypes = optStringList(ec2, 'InstanceTypes', path, fail, 20) ?? [];
  instanceTypes.forEach((type, i) => {
    if (!INSTANCE_TYPE.test(type)) fail([...path, 'InstanceTypes', i], `${describeType(type)} is not an instance type: write it as EC2 names it (t3.large, c7i.2xlarge)`);
  });
  const subnetId = optString(ec2, 'SubnetId', path, fail, 64) ?? null;
  const subnetIds = optStringList(ec2, 'SubnetIds', path, fail, 20) ?? [];
  subnetIds.forEach((subnet, i) => {
    if (!SUBNET.test(subnet)) fail([...path, 'SubnetIds', i], `${describeType(subnet)} is not a subnet id: write subnet-0123456789abcdef0`);
  });
  const profile = optString(ec2, 'IamInstanceProfile', path, fail, 2048) ?? null;
  if (profile !== null && !/^(arn:aws[\w-]*:iam::\d{12}:instance-profile\/[\w+=,.@/-]+|[\w+=,.@-]{1,128})$/.test(profile)) {
    fail([...path, 'IamInstanceProfile'], 'must be an instance profile\'s name (letters, digits and +=,.@-_) or its ARN (arn:aws:iam::123456789012:instance-profile/NAME)');
  }
  const shutdownCommand = optString(ec2, 'ShutdownCommand', path, fail, 1024) ?? 'sudo shutdown -h now';
  if (shutdownCommand.trim() === '' || /[\r\n]/.test(shutdownCommand)) fail([...path, 'ShutdownCommand'], 'must be one line of shell that shuts the instance down (the default is sudo shutdown -h now)');
  const metadataEndpoint = optString(ec2, 'MetadataEndpoint', path, fail, 1024) ?? 'http://169.254.169.254';
  if (!/^https?:\/\/[^\s'"\\`$]+$/.test(metadataEndpoint)) fail([...path, 'MetadataEndpoint'], 'must be an http:// URL without spaces or quotes (the default is http://169.254.169.254)');
  return {
    region: optString(ec2, 'Region', path, fail, 64) ?? 'us-east-1',
    imageId: optString(ec2, 'ImageId', path, fail, 64) ?? null,
    instanceTypes: instanceTypes.length ? instanceTypes : [instanceType],
    keyName: optString(ec2, 'KeyName', path, fail, 255) ?? null,
    securityGroupIds: optStringList(ec2, 'SecurityGroupIds', path, fail, 20) ?? [],
    subnetIds: subnetIds.length ? subnetIds : subnetId ? [subnetId] : [],
    username: optString(ec2, 'Username', path, fail, 64) ?? 'ec2-user',
    key: key ? resolve(expandHome(key)) : null,
    maxInstances: optInt(ec2, 'MaxInstances', path, fail, 0, 1000) ?? 4,
    idleTimeoutMs: optDuration(ec2, 'IdleTimeout', path, fail) ?? 600_000,
    readyTimeoutMs: optDuration(ec2, 'ReadyTimeout', path, fail) ?? 600_000,
    port: optInt(ec2, 'Port', path, fail, 1, 65535) ?? 22,
    tags: optStringMap(ec2, 'Tags', path, fail) ?? {},
    endpoint: optString(ec2, 'Endpoint', path, fail, 1024) ?? null,
    slots: optInt(ec2, 'Slots', path, fail, 1, 1000) ?? null,
    spot: optBool(ec2, 'Spot', path, fail) ?? false,
    iamInstanceProfile: profile,
    userData: userDataFile(optString(ec2, 'UserData', path, fail, 1024) ?? null, fail),
    rootVolumeSize: optInt(ec2, 'RootVolumeSize', path, fail, 1, 65536) ?? null,
    shutdownCommand,
    metadataEndpoint: metadataEndpoint.replace(/\/+$/, ''),
  };
}

/** The user data file, checked now (readable, at most 16 KB) so that a launch never fails on it. */
function userDataFile(text: string | null, fail: Fail): string | null {
  if (text === null) return null;
  const file = resolve(expandHome(text));
  let size: number;
  try {
    size = statSync(file).size;
    readFileSync(file);
  } catch (err) {
    return fail(['EC2', 'UserData'], `cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): give the path of a user data file (a cloud-init script), or null`);
  }
  if (size > USER_DATA_MAX) fail(['EC2', 'UserData'], `${file} is ${size} bytes; EC2 takes at most ${USER_DATA_MAX} bytes of user data: make it smaller (fetch the rest from S3 in the script)`);
  return file;
}
