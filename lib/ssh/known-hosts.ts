import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createHmac } from 'node:crypto';
import { dirname } from 'node:path';

// Host keys are checked against a known_hosts file in OpenSSH's format (sshd(8), "SSH_KNOWN_HOSTS
// FILE FORMAT"): plain or hashed (|1|salt|hash) host names, [host]:port for other ports,
// wildcards and negations, @revoked markers. A key that differs from the one on file is always
// refused; a host not on file is refused unless the policy is accept-new, which adds it.

export type HostKeyVerdict = 'known' | 'unknown' | 'changed' | 'revoked';

/** The name a host has in known_hosts: `host`, or `[host]:port` for ports other than 22. */
export function knownHostsName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

/** The key type a raw SSH public key blob starts with (a uint32 length, then the name). */
export function keyTypeOf(blob: Buffer): string {
  const length = blob.readUInt32BE(0);
  return blob.subarray(4, 4 + length).toString('ascii');
}

export function checkHostKey(file: string, host: string, port: number, blob: Buffer): HostKeyVerdict {
  if (!existsSync(file)) return 'unknown';
  const name = knownHostsName(host, port);
  const type = keyTypeOf(blob);
  const key = blob.toString('base64');
  let sawHost = false;
  for (const raw of readFileSync(file, 'utf8').split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const fields = line.split(/\s+/);
    const marker = fields[0].startsWith('@') ? fields.shift() : null;
    if (marker === '@cert-authority' || fields.length < 3) continue;
    const [hosts, entryType, entryKey] = fields;
    if (!hostsMatch(hosts, name)) continue;
    if (marker === '@revoked') {
      if (entryKey === key) return 'revoked';
      continue;
    }
    if (entryType === type && entryKey === key) return 'known';
    sawHost = true;
  }
  return sawHost ? 'changed' : 'unknown';
}

export function addHostKey(file: string, host: string, port: number, blob: Buffer): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  // A file whose last line has no newline (hand-edited ones often lack it) would have the new
  // entry run into that line and spoil both (found by spec/security.spec.ts).
  const unterminated = existsSync(file) && !/(^|\n)$/.test(readFileSync(file, 'utf8'));
  appendFileSync(file, `${unterminated ? '\n' : ''}${knownHostsName(host, port)} ${keyTypeOf(blob)} ${blob.toString('base64')}\n`, { mode: 0o600 });
}

function hostsMatch(patterns: string, name: string): boolean {
  if (patterns.startsWith('|1|')) {
    const [, , salt, hash] = patterns.split('|');
    return createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64') === hash;
  }
  let matched = false;
  for (const pattern of patterns.split(',')) {
    const negated = pattern.startsWith('!');
    if (wildcardMatch(negated ? pattern.slice(1) : pattern, name)) {
      if (negated) return false;
      matched = true;
    }
  }
  return matched;
}

function wildcardMatch(pattern: string, name: string): boolean {
  if (!/[*?]/.test(pattern)) return pattern === name;
  const regex = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`);
  return regex.test(name);
}
