import type { Redis } from 'ioredis';
import type { JobSpec } from '../jobfile/job-spec.js';
import type { Keys } from './keys.js';

// The jobs of a sweep (a job file with `Each:`) hold only their row; the definition they share
// is stored once, in their sweep's hash (sweep:<first id>: raw, file, baseDir, and spec once the
// manager has routed one of them). Whoever reads a job's spec, raw, file or baseDir reads it
// through Store (getFields, getJobs), which lays the job's row over its sweep's definition here:
// so every reader (the starter's recovery, the fetcher, `show`, `logs`, the web page) sees one
// job's whole spec, as if it had been queued from a file of its own. (The Lua scripts that build
// launch payloads do the same in their own way: lua/includes/grantFrom.lua.)

/** Fields of a job record that a sweep's job takes from its sweep. */
export const SHARED_FIELDS = ['spec', 'raw', 'file', 'baseDir'] as const;
/** Fields of a sweep's job that say which sweep, and its row. */
const OWN_FIELDS = ['sweep', 'params', 'name'] as const;

/** One job's spec: its sweep's, with its row as environment variables and `params`, and its own name. */
export function layRow(spec: JobSpec, params: Record<string, string>, name: string): JobSpec {
  return { ...spec, name: name || spec.name, env: { ...spec.env, ...params }, params };
}

/** A row as stored (JSON): an object of strings, or null if it is not one (a record is data). */
export function parseRow(text: string | null | undefined): Record<string, string> | null {
  if (!text) return null;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return null;
  const row: Record<string, string> = {};
  for (const [key, v] of Object.entries(value)) {
    if (typeof v !== 'string' || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(key) || key.startsWith('JM_')) return null;
    row[key] = v;
  }
  return row;
}

/**
 * HMGET of `fields` for each id, with the shared fields of sweep jobs taken from their sweep
 * (one HMGET per distinct sweep, in the same round trip as no other: two in all).
 */
export async function readFields(redis: Redis, keys: Keys, ids: string[], fields: string[]): Promise<(string | null)[][]> {
  const shared = fields.some((f) => (SHARED_FIELDS as readonly string[]).includes(f));
  const asked = shared ? [...fields, ...OWN_FIELDS] : fields;
  const pipeline = redis.pipeline();
  for (const id of ids) pipeline.hmget(keys.job(id), ...asked);
  const rows = ((await pipeline.exec()) ?? []).map(([err, values]) => (err ? asked.map(() => null) : (values as (string | null)[])));
  if (!shared) return rows;
  const at = (name: string) => asked.indexOf(name);
  const sweeps = await readSweeps(redis, keys, rows.map((row) => row[at('sweep')]));
  return rows.map((row) => {
    const sweep = row[at('sweep')];
    const from = sweep === null ? undefined : sweeps.get(sweep);
    if (from) {
      for (const field of SHARED_FIELDS) {
        const i = fields.indexOf(field);
        if (i < 0 || row[i] !== null) continue;
        row[i] = field === 'spec' ? specOfRow(from.parsed, row[at('params')], row[at('name')]) : from[field];
      }
    }
    return row.slice(0, fields.length);
  });
}

/** Whole records (HGETALL), with the shared fields of sweep jobs filled in from their sweep. */
export async function readRecords(redis: Redis, keys: Keys, ids: string[]): Promise<(Record<string, string> | null)[]> {
  const pipeline = redis.pipeline();
  for (const id of ids) pipeline.hgetall(keys.job(id));
  const hashes = ((await pipeline.exec()) ?? []).map(([err, hash]) => (err ? null : (hash as Record<string, string>)));
  const sweeps = await readSweeps(redis, keys, hashes.map((hash) => hash?.sweep ?? null));
  for (const hash of hashes) {
    const from = hash?.sweep === undefined ? undefined : sweeps.get(hash.sweep);
    if (!hash || !from) continue;
    for (const field of SHARED_FIELDS) {
      const value = field === 'spec' ? specOfRow(from.parsed, hash.params, hash.name) : from[field];
      if (hash[field] === undefined && value !== null) hash[field] = value;
    }
  }
  return hashes;
}

type SweepFields = Record<(typeof SHARED_FIELDS)[number], string | null> & {
  /** The spec, parsed once for all the sweep's jobs read in one call (null: none, or not JSON). */
  parsed: JobSpec | null;
};

async function readSweeps(redis: Redis, keys: Keys, named: (string | null)[]): Promise<Map<string, SweepFields>> {
  const ids = [...new Set(named.filter((s): s is string => s !== null && s !== ''))];
  const found = new Map<string, SweepFields>();
  if (ids.length === 0) return found;
  const pipeline = redis.pipeline();
  for (const id of ids) pipeline.hmget(keys.sweep(id), ...SHARED_FIELDS);
  ((await pipeline.exec()) ?? []).forEach(([err, values], i) => {
    if (err) return;
    const [spec, raw, file, baseDir] = values as (string | null)[];
    found.set(ids[i], { spec, raw, file, baseDir, parsed: parseSpec(spec) });
  });
  return found;
}

/** The spec JSON of one job of a sweep; null while the sweep has none (not routed yet) or a row is corrupt. */
function specOfRow(shared: JobSpec | null, params: string | null | undefined, name: string | null | undefined): string | null {
  const row = parseRow(params);
  if (shared === null || row === null) return null;
  return JSON.stringify(layRow(shared, row, name ?? ''));
}

function parseSpec(spec: string | null): JobSpec | null {
  if (spec === null) return null;
  try {
    const parsed = JSON.parse(spec) as unknown;
    return parsed !== null && typeof parsed === 'object' ? (parsed as JobSpec) : null;
  } catch {
    return null;
  }
}
