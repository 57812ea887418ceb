import type { EC2Client } from '@aws-sdk/client-ec2';
import type { Ec2Config } from '../../config/config.js';

// The EC2 client: credentials from the standard AWS chain (environment, ~/.aws profile, instance
// role), the endpoint from the config's Endpoint or the SDK's own settings (AWS_ENDPOINT_URL_EC2).
// The SDK version is pinned to one that runs on Node.js 20; its notice that later versions will
// need Node.js 22 is silenced, as it concerns no version this project installs.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

export type Ec2Sdk = typeof import('@aws-sdk/client-ec2');

/**
 * The SDK and a client. Loaded on first use: the SDK takes about a second to load, which every
 * supervisor start and actor restart would otherwise pay without ever using EC2.
 */
export async function loadEc2(config: Ec2Config): Promise<{ sdk: Ec2Sdk; client: EC2Client }> {
  const sdk = await import('@aws-sdk/client-ec2');
  return { sdk, client: new sdk.EC2Client({ region: config.region, ...(config.endpoint ? { endpoint: config.endpoint } : {}), maxAttempts: 3 }) };
}

/** The EC2 error code of a failed call (InsufficientInstanceCapacity, RequestLimitExceeded, …). */
export function errorCode(err: unknown): string {
  const e = err as { name?: string; Code?: string; code?: string };
  return e?.Code ?? e?.name ?? e?.code ?? 'Error';
}

/** Errors after which trying again later may work. */
export const RETRYABLE = new Set([
  'InsufficientInstanceCapacity', 'InstanceLimitExceeded', 'VcpuLimitExceeded', 'RequestLimitExceeded',
  'Throttling', 'ThrottlingException', 'ServiceUnavailable', 'Unavailable', 'InternalError', 'InternalFailure',
]);
