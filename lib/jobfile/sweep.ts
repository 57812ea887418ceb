import { readFileSync, statSync } from 'node:fs';
import { extname, isAbsolute, join } from 'node:path';
import { parse as parseCsv, CsvError } from 'csv-parse/sync';
import { JobSpecError } from '../util/errors.js';
import { describeType, IDENTIFIER, printable, type Fail } from './fields.js';
import { keyName } from './job-spec.js';
import type { YamlPath } from './yaml.js';

// `Each:` makes one job file a sweep: one job per row, each with its row as environment
// variables (and `this.params` in functions), named `Name[i]` with i counted from 0. Three forms:
//
//   Each: {Sample: [a, b, c], Size: [1, 2]}    a map of lists: every combination (here 6), the
//                                              first key varying slowest, as nested loops do
//   Each: [{Sample: a, Size: 1}, {Sample: b}]  a list of maps: one job per map
//   Each: {File: samples.csv}                  one job per row of a CSV file with a header row
//                                              (csv-parse), or per line of a .jsonl file; the
//                                              path is relative to the job file
//
// Names are checked as Env's are (identifiers, no JM_ names); values become text. A bad row is
// refused with its file and line (the YAML line, or the CSV/JSONL line) before anything is queued.

/** More jobs than this in one sweep are refused: a slip (a product of long lists) rather than a plan. */
export const MAX_SWEEP_JOBS = 1_000_000;
/** A sweep's data file: CSV or JSONL. */
const MAX_DATA_FILE_BYTES = 256 * 1024 * 1024;

export type Row = Record<string, string>;

export interface EachSource {
  /** The job file. */
  file: string;
  baseDir: string;
  lineOf: (path: YamlPath) => number | null;
  /** Bytes a row may take as the job's environment (the job script's limit, less what the job takes). */
  maxRowBytes: number;
}

/** The rows of `each` (the value of `Each:`), in order; throws a JobSpecError naming the line. */
export function readEach(each: unknown, source: EachSource): Row[] {
  const fail: Fail = (path, reason) => {
    throw new JobSpecError(source.file, source.lineOf(['Each', ...path]), keyName(['Each', ...path]), printable(reason));
  };
  const rows = Array.isArray(each) ? listOfMaps(each, fail, source) : readMap(each, fail, source);
  if (rows.length === 0) fail([], 'makes no jobs: give at least one row');
  return rows;
}

function readMap(each: unknown, fail: Fail, source: EachSource): Row[] {
  if (each === null || typeof each !== 'object') {
    fail([], `must be a map of lists ({Sample: [a, b]}), a list of maps ([{Sample: a}]) or {File: rows.csv}, not ${describeType(each)}`);
  }
  const map = each as Record<string, unknown>;
  if (typeof map.File === 'string') {
    if (Object.keys(map).length > 1) fail(['File'], 'stands alone: the rows come from the file (put other values in Env)');
    return readDataFile(map.File, fail, source);
  }
  const names = Object.keys(map);
  if (names.length === 0) fail([], 'is an empty map: give lists of values ({Sample: [a, b]})');
  const lists: string[][] = [];
  let count = 1;
  for (const name of names) {
    checkName(name, [name], fail);
    const values = map[name];
    if (!Array.isArray(values)) fail([name], `must be a list of values ([a, b, c]), not ${describeType(values)}`);
    if (values.length === 0) fail([name], 'is an empty list: it would make no jobs');
    lists.push(values.map((value, i) => text(value, [name, i], fail)));
    count *= values.length;
    if (count > MAX_SWEEP_JOBS) fail([], `makes more than ${MAX_SWEEP_JOBS.toLocaleString('en')} jobs (the combinations of ${names.slice(0, lists.length).join(', ')} alone); split the sweep`);
  }
  // Every combination, the first name varying slowest: an odometer over the lists.
  const rows: Row[] = [];
  const at = names.map(() => 0);
  for (let n = 0; n < count; n++) {
    const row: Row = {};
    names.forEach((name, k) => (row[name] = lists[k][at[k]]));
    checkBytes(row, [], fail, source);
    rows.push(row);
    for (let k = names.length - 1; k >= 0 && ++at[k] === lists[k].length; k--) at[k] = 0;
  }
  return rows;
}

function listOfMaps(each: unknown[], fail: Fail, source: EachSource): Row[] {
  if (each.length > MAX_SWEEP_JOBS) fail([], `lists ${each.length} rows; at most ${MAX_SWEEP_JOBS.toLocaleString('en')} are allowed: split the sweep`);
  return each.map((item, i) => {
    if (item === null || typeof item !== 'object' || Array.isArray(item)) fail([i], `must be a map of names to values ({Sample: a}), not ${describeType(item)}`);
    const row: Row = {};
    for (const [name, value] of Object.entries(item as Record<string, unknown>)) {
      checkName(name, [i, name], fail);
      row[name] = text(value, [i, name], fail);
    }
    checkBytes(row, [i], fail, source);
    return row;
  });
}

/** Rows of a CSV (header row first) or JSONL file; a bad row is refused with that file's line. */
function readDataFile(path: string, fail: Fail, source: EachSource): Row[] {
  const file = isAbsolute(path) ? path : join(source.baseDir, path);
  const kind = extname(file).toLowerCase();
  if (kind !== '.csv' && kind !== '.jsonl') fail(['File'], `must name a .csv file (with a header row) or a .jsonl file (one JSON object a line), not ${path}`);
  let size: number;
  try {
    size = statSync(file).size;
  } catch {
    return fail(['File'], `no such file: ${file} (a path in Each.File is relative to the job file's directory)`);
  }
  if (size > MAX_DATA_FILE_BYTES) fail(['File'], `${file} has ${size} bytes; at most ${MAX_DATA_FILE_BYTES / 1024 / 1024} MiB are read: split the sweep`);
  const content = readFileSync(file, 'utf8');
  // A row is refused with the data file's own line; the key names its column.
  const failAt = (line: number | null, key: string | null, reason: string): never => {
    throw new JobSpecError(file, line, key, printable(reason));
  };
  const { rows, lineOf } = kind === '.csv' ? csvRows(content, failAt) : jsonlRows(content, failAt);
  if (rows.length === 0) fail(['File'], `${file} holds no rows: it would make no jobs`);
  rows.forEach((row, i) => checkBytes(row, [], (_, reason) => failAt(lineOf(i), null, reason), source));
  return rows;
}

type FailAt = (line: number | null, key: string | null, reason: string) => never;

/**
 * Rows of a CSV file. csv-parse reports the line of each record only when asked (`info`), which
 * costs a third more: the file is read without, and read again with it only to name the line of
 * a row found wanting.
 */
function csvRows(content: string, failAt: FailAt): DataRows {
  const options = { bom: true, skip_empty_lines: true };
  let records: string[][];
  try {
    records = parseCsv(content, options) as string[][];
  } catch (err) {
    if (!(err instanceof CsvError)) throw err;
    const line = typeof err.lines === 'number' ? err.lines : null;
    return failAt(line, null, `not a row of the CSV header's columns: ${err.message.replace(/ on line \d+$/, '')}`);
  }
  let lines: number[] | null = null;
  const lineOf = (record: number): number => {
    lines ??= (parseCsv(content, { ...options, info: true }) as unknown as { info: { lines: number } }[]).map((r) => r.info.lines);
    return lines[record];
  };
  if (records.length === 0) return { rows: [], lineOf };
  const header = records[0];
  const seen = new Set<string>();
  header.forEach((name, column) => {
    const fail: Fail = (_, reason) => failAt(lineOf(0), `column ${column + 1}`, reason);
    checkName(name, [], fail);
    if (seen.has(name)) fail([], `the header names ${name} twice`);
    seen.add(name);
  });
  if (records.length - 1 > MAX_SWEEP_JOBS) failAt(null, null, `has ${records.length - 1} rows; at most ${MAX_SWEEP_JOBS.toLocaleString('en')} are allowed: split the sweep`);
  const rows: Row[] = new Array(records.length - 1);
  for (let i = 1; i < records.length; i++) {
    const row: Row = {};
    const record = records[i];
    for (let column = 0; column < header.length; column++) {
      if (record[column].includes('\0')) failAt(lineOf(i), header[column], 'must not contain a NUL character');
      row[header[column]] = record[column];
    }
    rows[i - 1] = row;
  }
  // Row i of the result is record i + 1 (after the header).
  return { rows, lineOf: (i) => lineOf(i + 1) };
}

/** Rows read from a data file, and the file's line of each (by its index in rows). */
interface DataRows {
  rows: Row[];
  lineOf: (index: number) => number;
}

function jsonlRows(content: string, failAt: FailAt): DataRows {
  const rows: { row: Row; line: number }[] = [];
  const lines = content.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = i + 1;
    if (lines[i].trim() === '') continue;
    if (rows.length === MAX_SWEEP_JOBS) failAt(line, null, `more than ${MAX_SWEEP_JOBS.toLocaleString('en')} rows; split the sweep`);
    let value: unknown;
    try {
      value = JSON.parse(lines[i]);
    } catch (err) {
      failAt(line, null, `not JSON: ${(err as Error).message}`);
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) failAt(line, null, `must be a JSON object of names to values ({"Sample": "a"}), not ${describeType(value)}`);
    const row: Row = {};
    for (const [name, item] of Object.entries(value as Record<string, unknown>)) {
      const fail: Fail = (_, reason) => failAt(line, name, reason);
      checkName(name, [], fail);
      row[name] = text(item, [], fail);
    }
    rows.push({ row, line });
  }
  return { rows: rows.map((r) => r.row), lineOf: (i) => rows[i].line };
}

/** A row's names become environment variables: checked as Env's are (job-spec.ts). */
function checkName(name: string, path: YamlPath, fail: Fail): void {
  if (!IDENTIFIER.test(name)) fail(path, `${JSON.stringify(name)} is not a valid name (letters, digits and _ only, not starting with a digit): it becomes an environment variable`);
  if (name === '__proto__') fail(path, 'is not a usable name; choose another');
  if (name.startsWith('JM_')) fail(path, 'JM_ names are JobManager\'s own (it sets JM_JOB_ID, JM_JOB_NAME, JM_RUN, JM_ATTEMPT and JM_JOB_DIR for every job); choose another name');
}

/** A value as the job sees it: text (numbers and booleans as written; nothing as ''). */
function text(value: unknown, path: YamlPath, fail: Fail): string {
  if (value !== null && typeof value === 'object') fail(path, `must be text or a number, not ${describeType(value)}`);
  if (typeof value === 'number' && !Number.isFinite(value)) fail(path, 'is .inf or .nan; write a number or text');
  const result = String(value ?? '');
  if (result.includes('\0')) fail(path, 'must not contain a NUL character');
  return result;
}

function checkBytes(row: Row, path: YamlPath, fail: Fail, source: EachSource): void {
  let bytes = 0;
  for (const [name, value] of Object.entries(row)) bytes += name.length + Buffer.byteLength(value) + 3;
  if (bytes > source.maxRowBytes) fail(path, `this row takes ${bytes} bytes as environment variables, and the job leaves room for ${source.maxRowBytes}; keep large data in files that the steps read`);
}

