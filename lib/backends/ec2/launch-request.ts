import { readFileSync } from 'node:fs';
import type { RunInstancesCommandInput } from '@aws-sdk/client-ec2';
import type { Config } from '../../config/config.js';
import type { InstanceRecord } from './instances.js';

// The RunInstances request for one launch record, and the order in which instance types and
// subnets are tried when EC2 has no capacity for one of them.
//
// Every instance is launched to guard itself: InstanceInitiatedShutdownBehavior terminate (its
// watchdog's shutdown ends it, and its billing, for good), IMDSv2 required (AWS's baseline: no
// metadata without a session token), and the deployment's tags on the instance and its volumes.

export const DEPLOYMENT_TAG = 'jobmanager:deployment';
export const TOKEN_TAG = 'jobmanager:token';

/** Errors that say "not this type here, now": the next type or subnet is tried at once. */
export const CAPACITY_ERRORS = new Set([
  'InsufficientInstanceCapacity', 'InsufficientHostCapacity', 'InsufficientReservedInstanceCapacity', 'InsufficientCapacity',
  'InsufficientFreeAddressesInSubnet', 'Unsupported', 'SpotMaxPriceTooLow', 'MaxSpotInstanceCountExceeded', 'InsufficientSpotInstanceCapacity',
]);

export interface LaunchChoice {
  instanceType: string;
  subnetId: string | null;
}

/**
 * Types and subnets in the order tried: each type in every subnet before the next type (a type
 * short in one zone is often there in another). A job file's own InstanceType is the only type.
 */
export function launchChoices(config: Config, locationType: string): LaunchChoice[] {
  const types = config.ec2.instanceTypes.includes(locationType) ? config.ec2.instanceTypes.slice(config.ec2.instanceTypes.indexOf(locationType)) : [locationType];
  const subnets: (string | null)[] = config.ec2.subnetIds.length ? config.ec2.subnetIds : [null];
  return types.flatMap((instanceType) => subnets.map((subnetId) => ({ instanceType, subnetId })));
}

export function runInstancesInput(config: Config, record: InstanceRecord, rootDevice: string | null): RunInstancesCommandInput {
  const ec2 = config.ec2;
  const tags = [
    { Key: 'Name', Value: `jobmanager-${config.deployment}` },
    ...Object.entries(ec2.tags).map(([Key, Value]) => ({ Key, Value })),
    { Key: DEPLOYMENT_TAG, Value: config.deployment },
    { Key: TOKEN_TAG, Value: record.token },
  ];
  const profile = ec2.iamInstanceProfile;
  return {
    ClientToken: record.token,
    ImageId: record.imageId,
    InstanceType: record.instanceType as never,
    MinCount: 1,
    MaxCount: 1,
    ...(ec2.keyName ? { KeyName: ec2.keyName } : {}),
    ...(ec2.securityGroupIds.length ? { SecurityGroupIds: ec2.securityGroupIds } : {}),
    ...(record.subnetId ? { SubnetId: record.subnetId } : {}),
    ...(profile ? { IamInstanceProfile: profile.startsWith('arn:') ? { Arn: profile } : { Name: profile } } : {}),
    // The SDK sends UserData as given: EC2 wants it base64-encoded.
    ...(ec2.userData ? { UserData: readFileSync(ec2.userData).toString('base64') } : {}),
    ...(ec2.rootVolumeSize && rootDevice ? { BlockDeviceMappings: [{ DeviceName: rootDevice, Ebs: { VolumeSize: ec2.rootVolumeSize, DeleteOnTermination: true } }] } : {}),
    ...(record.spot ? { InstanceMarketOptions: { MarketType: 'spot', SpotOptions: { SpotInstanceType: 'one-time', InstanceInterruptionBehavior: 'terminate' } } } : {}),
    InstanceInitiatedShutdownBehavior: 'terminate',
    MetadataOptions: { HttpTokens: 'required', HttpEndpoint: 'enabled' },
    TagSpecifications: [
      { ResourceType: 'instance', Tags: tags },
      { ResourceType: 'volume', Tags: tags },
    ],
  };
}
