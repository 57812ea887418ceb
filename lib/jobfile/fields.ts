import { parseDuration } from '../util/duration.js';
import type { YamlPath } from './yaml.js';

// Small readers shared by the job file and config validators. Each takes the path of the value so
// that the failure can name the key and (through the caller's `fail`) the line.

export type Fail = (path: YamlPath, reason: string) => never;

/** A name a step output, Env variable or module key may have (letters, digits and _, no leading digit). */
export const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Control characters (C0, DEL, C1) and line separators: never in a name that tables show. */
export const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;
const CONTROL_ALL = new RegExp(CONTROL.source, 'g');

export function describeType(value: unknown): string {
  if (value === null || value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') {
    // A password in a URL is not echoed, wherever the URL was written (found by spec/fuzz.spec.ts).
    const text = value.replace(/(\w+:\/\/[^:/@\s]*:)[^@\s]+@/g, '$1***@');
    return `the text ${printable(JSON.stringify(text.length > 40 ? text.slice(0, 40) + '…' : text))}`;
  }
  return `${typeof value} ${String(value)}`;
}

/**
 * `text` with control characters (C0, DEL, C1) and line separators written as \uXXXX: messages
 * quote keys and values from the file, and a terminal must not act on an escape sequence in a
 * hostile file, nor an error take more than its one line (found by spec/fuzz.spec.ts).
 */
export function printable(text: string): string {
  return text.replace(CONTROL_ALL, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Key material rather than a path: a PEM or OpenSSH block, or anything over several lines. */
export function looksLikeKey(value: string): boolean {
  return /PRIVATE KEY|[\r\n]/.test(value);
}

export function expectMap(value: unknown, path: YamlPath, fail: Fail, what: string): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    fail(path, `${what} must be a mapping of keys to values, not ${describeType(value)}`);
  }
  return value as Record<string, unknown>;
}

export function checkKeys(map: Record<string, unknown>, allowed: readonly string[], path: YamlPath, fail: Fail, what: string): void {
  for (const key of Object.keys(map)) {
    if (allowed.includes(key)) continue;
    const near = suggest(key, allowed);
    fail([...path, key], `unknown key in ${what}${near ? `; did you mean ${near}?` : `; known keys: ${allowed.join(', ')}`}`);
  }
}

export function optString(map: Record<string, unknown>, key: string, path: YamlPath, fail: Fail, maxLength = 4096): string | undefined {
  const value = map[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (typeof value !== 'string') fail([...path, key], `must be text, not ${describeType(value)}`);
  if (value.length > maxLength) fail([...path, key], `is ${value.length} characters long; at most ${maxLength} are allowed`);
  if (value.includes('\0')) fail([...path, key], 'must not contain a NUL character');
  return value;
}

export function optInt(map: Record<string, unknown>, key: string, path: YamlPath, fail: Fail, min: number, max: number): number | undefined {
  const value = map[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    fail([...path, key], `must be a whole number from ${min} to ${max}, not ${describeType(value)}`);
  }
  return value;
}

export function optBool(map: Record<string, unknown>, key: string, path: YamlPath, fail: Fail): boolean | undefined {
  const value = map[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'boolean') fail([...path, key], `must be true or false, not ${describeType(value)}`);
  return value;
}

export function optDuration(map: Record<string, unknown>, key: string, path: YamlPath, fail: Fail, maxMs = 365 * 86_400_000): number | undefined {
  const value = map[key];
  if (value === undefined || value === null) return undefined;
  const ms = parseDuration(value);
  if (ms === null) fail([...path, key], `must be a duration such as 30s, 10m or 1h30m, not ${describeType(value)}`);
  if (ms > maxMs) fail([...path, key], `is longer than the longest allowed (${Math.round(maxMs / 86_400_000)} days)`);
  return ms;
}

export function optStringList(map: Record<string, unknown>, key: string, path: YamlPath, fail: Fail, maxItems = 1000): string[] | undefined {
  const value = map[key];
  if (value === undefined || value === null) return undefined;
  const list = typeof value === 'string' ? [value] : value;
  if (!Array.isArray(list)) fail([...path, key], `must be a list of text values, not ${describeType(value)}`);
  if (list.length > maxItems) fail([...path, key], `has ${list.length} entries; at most ${maxItems} are allowed`);
  return list.map((item, i) => {
    if (typeof item !== 'string' && typeof item !== 'number') fail([...path, key, i], `must be text, not ${describeType(item)}`);
    return String(item);
  });
}

export function optStringMap(map: Record<string, unknown>, key: string, path: YamlPath, fail: Fail, keyPattern?: RegExp): Record<string, string> | undefined {
  const value = map[key];
  if (value === undefined || value === null) return undefined;
  const entries = expectMap(value, [...path, key], fail, key);
  const out: Record<string, string> = {};
  for (const [name, item] of Object.entries(entries)) {
    if (keyPattern && !keyPattern.test(name)) fail([...path, key, name], `is not a valid name (letters, digits and _ only, not starting with a digit)`);
    // `out[name] =` would set the map's prototype and drop the entry without a word (found by
    // spec/fuzz.spec.ts).
    if (name === '__proto__') fail([...path, key, name], 'is not a usable name; choose another');
    if (item !== null && typeof item === 'object') fail([...path, key, name], `must be text, not ${describeType(item)}`);
    const text = String(item ?? '');
    if (text.includes('\0')) fail([...path, key, name], 'must not contain a NUL character');
    out[name] = text;
  }
  return out;
}

/** The allowed key closest to `key` (case-insensitive edit distance ≤ 2), for "did you mean". */
export function suggest(key: string, allowed: readonly string[]): string | null {
  let best: string | null = null;
  let bestDistance = 3;
  for (const candidate of allowed) {
    const d = editDistance(key.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 2) return 3;
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length];
}
