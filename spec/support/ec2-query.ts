import type { IncomingMessage } from 'node:http';

// The EC2 Query API as the loopback EC2 server speaks it: requests are form-encoded parameters
// (in the body, as the SDK sends them, or the query string) with flattened lists (`InstanceId.1`,
// `Filter.1.Value.1`); answers are XML whose lists are `<item>` elements; errors are
// `<Response><Errors><Error><Code>` bodies with the HTTP status EC2 gives that code.

const NAMESPACE = 'http://ec2.amazonaws.com/doc/2016-11-15/';

/** HTTP status that EC2 answers an error code with; anything not listed is a 400. */
const STATUS: Record<string, number> = {
  InsufficientInstanceCapacity: 500,
  InternalError: 500,
  RequestLimitExceeded: 503,
  Unavailable: 503,
  ServiceUnavailable: 503,
  AuthFailure: 401,
  UnauthorizedOperation: 403,
  DryRunOperation: 412,
};

/** EC2's own wording for the errors specs inject. */
export const MESSAGES: Record<string, string> = {
  InsufficientInstanceCapacity:
    'We currently do not have sufficient capacity in the Availability Zone you requested (us-east-1a). Our system will be working on provisioning additional capacity.',
  RequestLimitExceeded: 'Request limit exceeded.',
  VcpuLimitExceeded:
    'You have requested more vCPU capacity than your current vCPU limit of 32 allows for the instance bucket that the specified instance type belongs to. Please visit http://aws.amazon.com/contact-us/ec2-request to request an adjustment to this limit.',
  InstanceLimitExceeded: 'Your quota allows for 0 more running instance(s). You requested at least 1.',
  InternalError: 'An internal error has occurred',
  Unavailable: 'The service is unavailable. Please try again shortly.',
  UnauthorizedOperation: 'You are not authorized to perform this operation.',
};

export function ec2ErrorStatus(code: string): number {
  return STATUS[code] ?? 400;
}

/** An error answered as EC2 does: its code picks the HTTP status (ec2ErrorStatus). */
export class Ec2Error extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** The form parameters of one request, with EC2's flattened lists. */
export class QueryParams {
  constructor(private readonly map: Map<string, string>) {}

  get(name: string): string | undefined {
    return this.map.get(name);
  }

  required(name: string): string {
    const value = this.map.get(name);
    if (value === undefined || value === '') throw new Ec2Error('MissingParameter', `The request must contain the parameter ${name}`);
    return value;
  }

  integer(name: string): number {
    const text = this.required(name);
    const value = Number(text);
    if (!Number.isInteger(value)) throw new Ec2Error('InvalidParameterValue', `Value (${text}) for parameter ${name} is invalid. Expected an integer.`);
    return value;
  }

  /** `Prefix.1`, `Prefix.2`, … in numeric order (the SDK numbers from 1; gaps are tolerated). */
  list(prefix: string): string[] {
    const found: [number, string][] = [];
    const pattern = new RegExp(`^${escapeRegExp(prefix)}\\.(\\d+)$`);
    for (const [key, value] of this.map) {
      const match = pattern.exec(key);
      if (match) found.push([Number(match[1]), value]);
    }
    return found.sort((a, b) => a[0] - b[0]).map(([, value]) => value);
  }

  /** `Prefix.N.Rest` grouped by N, each group with its `Rest` keys. */
  groups(prefix: string): QueryParams[] {
    const groups = new Map<number, Map<string, string>>();
    const pattern = new RegExp(`^${escapeRegExp(prefix)}\\.(\\d+)\\.(.+)$`);
    for (const [key, value] of this.map) {
      const match = pattern.exec(key);
      if (!match) continue;
      const n = Number(match[1]);
      if (!groups.has(n)) groups.set(n, new Map());
      groups.get(n)!.set(match[2], value);
    }
    return [...groups.entries()].sort((a, b) => a[0] - b[0]).map(([, map]) => new QueryParams(map));
  }

  /** Every parameter but those named, in a stable order. */
  fingerprint(except: string[]): string {
    return JSON.stringify([...this.map].filter(([key]) => !except.includes(key)).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  }

  toRecord(): Record<string, string> {
    return Object.fromEntries(this.map);
  }
}

export async function readParams(req: IncomingMessage): Promise<QueryParams> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > 1 << 20) throw new Ec2Error('InvalidParameterValue', 'Request body too large');
    chunks.push(chunk as Buffer);
  }
  const map = new Map<string, string>();
  // EC2 takes parameters in the query string (GET) or the form body (POST, what the SDK sends).
  const query = new URL(req.url ?? '/', 'http://127.0.0.1').searchParams;
  for (const [key, value] of query) map.set(key, value);
  for (const [key, value] of new URLSearchParams(Buffer.concat(chunks).toString('utf8'))) map.set(key, value);
  return new QueryParams(map);
}

/** The body of a successful answer to `action`. */
export function responseXml(action: string, requestId: string, inner: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<${action}Response xmlns="${NAMESPACE}">${el('requestId', requestId)}${inner}</${action}Response>`;
}

/** The body of an error answer. */
export function errorXml(error: Ec2Error, requestId: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>${el('Code', error.code)}${el('Message', error.message)}</Error></Errors>${el('RequestID', requestId)}</Response>`;
}

/** An element holding text. */
export function el(name: string, text: string): string {
  return text === '' ? `<${name}/>` : `<${name}>${escapeXml(text)}</${name}>`;
}

/** An element holding elements. */
export function node(name: string, children: string): string {
  return children === '' ? `<${name}/>` : `<${name}>${children}</${name}>`;
}

function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);
}

export function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
