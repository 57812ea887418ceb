import { readFileSync, statSync } from 'node:fs';
import { LineCounter, parseDocument, isNode, type Document } from 'yaml';

// Safe YAML: the core schema only (no custom tags: `!!python/object` and friends are refused, not
// turned into anything), unique keys, a cap on aliases (a "billion laughs" file is refused before it
// expands) and a cap on file size. Values come back as plain data with a way to find the line that
// held any part of it, so validation errors can name the line.

export const MAX_ALIASES = 100;
const MAX_DEPTH = 64;

export type YamlPath = readonly (string | number)[];

export interface ParsedYaml {
  value: unknown;
  /** 1-based line of the node at `path`, or of its nearest ancestor that exists. */
  lineOf(path: YamlPath): number | null;
}

export class YamlProblem extends Error {
  constructor(
    readonly line: number | null,
    readonly reason: string,
  ) {
    super(reason);
  }
}

export function readYamlFile(file: string, maxBytes: number): ParsedYaml {
  let size: number;
  try {
    size = statSync(file).size;
  } catch (err) {
    throw new YamlProblem(null, `cannot read the file (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  if (size > maxBytes) {
    throw new YamlProblem(null, `the file is ${formatBytes(size)}; files over ${formatBytes(maxBytes)} are refused (keep data out of job files: pass a path instead)`);
  }
  return parseYaml(readFileSync(file, 'utf8'));
}

export function parseYaml(text: string): ParsedYaml {
  const lines = new LineCounter();
  let doc: Document;
  try {
    doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, strict: true, schema: 'core', customTags: [], prettyErrors: false });
  } catch (err) {
    throw new YamlProblem(null, `not valid YAML (${(err as Error).message})`);
  }
  const problem = doc.errors[0] ?? doc.warnings[0];
  if (problem) {
    const line = problem.linePos?.[0]?.line ?? null;
    throw new YamlProblem(line, `not valid YAML: ${describeYamlError(problem.code, problem.message)}`);
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: MAX_ALIASES });
  } catch (err) {
    const message = err instanceof RangeError ? 'nested too deeply' : (err as Error).message;
    throw new YamlProblem(null, `refused: ${message} (at most ${MAX_ALIASES} alias expansions)`);
  }
  if (depthOf(value) > MAX_DEPTH) throw new YamlProblem(null, `refused: nested more than ${MAX_DEPTH} levels deep`);
  return {
    value,
    lineOf(path) {
      for (let n = path.length; n >= 0; n--) {
        const node = doc.getIn(path.slice(0, n), true);
        if (isNode(node) && node.range) return lines.linePos(node.range[0]).line;
        if (n === 0 && doc.contents?.range) return lines.linePos(doc.contents.range[0]).line;
      }
      return null;
    },
  };
}

function describeYamlError(code: string, message: string): string {
  if (code === 'TAG_RESOLVE_FAILED') return `${message.split(' at line')[0]} (custom tags are not allowed)`;
  return message.split(' at line')[0].split('\n')[0];
}

function depthOf(value: unknown, depth = 0): number {
  if (depth > MAX_DEPTH || value === null || typeof value !== 'object') return depth;
  let max = depth;
  for (const child of Object.values(value as object)) max = Math.max(max, depthOf(child, depth + 1));
  return max;
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(0)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}
