import { hostname } from 'node:os';

// A node's name (config NodeName): it becomes part of key names (LocalJobs:<node>) and of the
// location local:<node>, which the launch payload and the run log lines carry; so it is an
// identifier: letters, digits, _, . and -, starting with a letter or digit, at most 63.

export const NODE_NAME_RULE = 'must be 1 to 63 letters, digits, _, . and -, starting with a letter or digit';
const NODE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

export function isNodeName(name: string): boolean {
  return NODE_NAME.test(name);
}

/** The default NodeName: this machine's host name, made an identifier (other characters become -). */
export function defaultNodeName(host = hostname()): string {
  const name = host.replace(/[^A-Za-z0-9_.-]/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 63);
  return isNodeName(name) ? name : 'node';
}
