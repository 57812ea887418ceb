import { readFileSync, statSync } from 'node:fs';
import { Lexer, LineCounter, parseDocument, isMap, isNode, isScalar, isSeq, type Document, type DocumentOptions, type ParseOptions, type SchemaOptions } from 'yaml';
import { printable } from './fields.js';

// Safe YAML: the core schema only (no custom tags: `!!python/object` and friends are refused, not
// turned into anything), unique keys, a cap on aliases (a "billion laughs" file is refused before it
// expands) and a cap on file size. Values come back as plain data with a way to find the line that
// held any part of it, so validation errors can name the line.

export const MAX_ALIASES = 100;
const MAX_DEPTH = 64;

export type YamlPath = readonly (string | number)[];

export interface ParsedYaml {
  value: unknown;
  /** 1-based line of the key (or list item) at `path`, or of its nearest ancestor that exists. */
  lineOf(path: YamlPath): number | null;
}

export class YamlProblem extends Error {
  /** Control characters quoted from the file are escaped (see printable). */
  readonly reason: string;
  constructor(
    readonly line: number | null,
    reason: string,
    /** The key the problem is at, when the parser can tell (a duplicate key, a custom tag). */
    readonly path: YamlPath | null = null,
  ) {
    super(printable(reason));
    this.reason = this.message;
  }
}

export function readYamlFile(file: string, maxBytes: number): ParsedYaml {
  return parseYaml(readYamlText(file, maxBytes));
}

/** The file's text, refused (before it is read) when it is over `maxBytes`. */
export function readYamlText(file: string, maxBytes: number): string {
  let size: number;
  try {
    size = statSync(file).size;
  } catch (err) {
    throw new YamlProblem(null, `cannot read the file (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  if (size > maxBytes) {
    throw new YamlProblem(null, `the file is ${formatBytes(size)}; files over ${formatBytes(maxBytes)} are refused (keep data out of job files: pass a path instead)`);
  }
  return readFileSync(file, 'utf8');
}

const TOO_DEEP = `refused: nested more than ${MAX_DEPTH} levels deep`;

/** The safe parse options (a fresh object for each parse, as before). */
// logLevel 'error': the parser's warnings (a mapping used as a key) would go to stderr as process
// warnings; such keys are refused as unknown keys anyway.
const parseOptions = (): ParseOptions & DocumentOptions & SchemaOptions => ({ uniqueKeys: true, strict: true, schema: 'core', customTags: [], prettyErrors: false, logLevel: 'error' });

export function parseYaml(text: string): ParsedYaml {
  // The parser builds its tree by recursion and needs seconds and hundreds of MB for a 1 MiB file
  // of `[[[[…`: count flow nesting with the (iterative) lexer first and refuse before parsing.
  if (flowDepth(text) > MAX_DEPTH) throw new YamlProblem(null, TOO_DEEP);
  // Most files are valid, and lines are only needed to report a problem: parse without counting
  // lines and keep no syntax tree. Anything unusual takes the full path below, which parses
  // again with lines and so reports exactly what it always did; `lineOf` does the same on demand.
  const value = quickValue(text);
  return value === undefined ? parseWithLines(text) : withLines(text, value);
}

/** `value`, parsed from `text`, with its lines found (by parsing it again) when asked. */
function withLines(text: string, value: unknown): ParsedYaml {
  let full: ParsedYaml | null = null;
  return { value, lineOf: (path) => (full ??= parseWithLines(text)).lineOf(path) };
}

/**
 * The value of a valid document, or undefined when the full parse must say what is wrong. Nesting
 * too deep is refused here at once (as the full parse would: the refusal names no line), so that
 * the expensive case is not parsed twice.
 */
function quickValue(text: string): unknown {
  try {
    const doc = parseDocument(text, parseOptions());
    const problem = doc.errors[0] ?? doc.warnings[0];
    if (problem?.code === 'RESOURCE_EXHAUSTION') throw new YamlProblem(null, TOO_DEEP);
    if (problem) return undefined;
    const value = doc.toJS({ maxAliasCount: MAX_ALIASES });
    if (depthOf(value) > MAX_DEPTH) throw new YamlProblem(null, TOO_DEEP);
    return value;
  } catch (err) {
    if (err instanceof RangeError) throw new YamlProblem(null, TOO_DEEP);
    if (err instanceof YamlProblem) throw err;
    return undefined;
  }
}

function parseWithLines(text: string): ParsedYaml {
  const lines = new LineCounter();
  let doc: Document;
  try {
    doc = parseDocument(text, { ...parseOptions(), lineCounter: lines });
  } catch (err) {
    // Deep block nesting (indentation) still overflows the stack: that is the same refusal.
    if (err instanceof RangeError) throw new YamlProblem(null, TOO_DEEP);
    throw new YamlProblem(null, `not valid YAML (${(err as Error).message})`);
  }
  const problem = doc.errors[0] ?? doc.warnings[0];
  // The composer reports its own stack overflow (deep block nesting) as an error at whatever line
  // it ran out on: that line means nothing to the user.
  if (problem?.code === 'RESOURCE_EXHAUSTION') throw new YamlProblem(null, TOO_DEEP);
  if (problem) {
    // With prettyErrors off the error carries no linePos: the line comes from its offset.
    const line = lines.linePos(problem.pos[0]).line;
    const path = problem.code === 'DUPLICATE_KEY' || problem.code === 'TAG_RESOLVE_FAILED' ? pathAt(doc, problem.pos[0]) : null;
    throw new YamlProblem(line, `not valid YAML: ${describeYamlError(problem.code, problem.message)}`, path?.length ? path : null);
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: MAX_ALIASES });
  } catch (err) {
    if (err instanceof RangeError) throw new YamlProblem(null, TOO_DEEP);
    const message = (err as Error).message;
    throw new YamlProblem(null, `refused: ${message}${/alias count/i.test(message) ? ` (at most ${MAX_ALIASES} alias expansions)` : ''}`);
  }
  if (depthOf(value) > MAX_DEPTH) throw new YamlProblem(null, TOO_DEEP);
  return {
    value,
    lineOf(path) {
      for (let n = path.length; n >= 0; n--) {
        // A key's own line, not its value's: `awsIDs:` rather than the list item below it.
        const parent = n > 0 ? doc.getIn(path.slice(0, n - 1), true) : null;
        const pair = isMap(parent) ? parent.items.find((p) => isScalar(p.key) && String(p.key.value) === String(path[n - 1])) : undefined;
        if (isNode(pair?.key) && pair.key.range) return lines.linePos(pair.key.range[0]).line;
        const node = doc.getIn(path.slice(0, n), true);
        if (isNode(node) && node.range) return lines.linePos(node.range[0]).line;
        if (n === 0 && doc.contents?.range) return lines.linePos(doc.contents.range[0]).line;
      }
      return null;
    },
  };
}

function describeYamlError(code: string, message: string): string {
  if (code === 'TAG_RESOLVE_FAILED') return `${message.split(' at line')[0]} (custom tags are not allowed: remove the tag and write plain text, lists and mappings)`;
  if (code === 'DUPLICATE_KEY') return 'this key is set twice in the same mapping; keep one';
  if (/parseAllDocuments/.test(message)) return 'the file holds more than one YAML document (a second ---); put each job in a file of its own';
  return message.split(' at line')[0].split('\n')[0];
}

/** Deepest nesting of flow collections ([…] and {…}); brackets inside quoted text are not counted. */
function flowDepth(text: string): number {
  // Most files hold a few brackets: counting them is enough to know the depth is small.
  let brackets = 0;
  for (let i = 0; i < text.length && brackets <= MAX_DEPTH; i++) {
    const c = text.charCodeAt(i);
    if (c === 91 || c === 123) brackets++;
  }
  if (brackets <= MAX_DEPTH) return brackets;
  let depth = 0;
  let max = 0;
  for (const token of new Lexer().lex(text)) {
    if (token === '[' || token === '{') max = Math.max(max, ++depth);
    else if (token === ']' || token === '}') depth--;
    if (max > MAX_DEPTH) break;
  }
  return max;
}

/** The path of the deepest key or item whose source holds `offset`. */
function pathAt(doc: Document, offset: number): YamlPath {
  const path: (string | number)[] = [];
  const start = (node: unknown) => (isNode(node) && node.range ? node.range[0] : Infinity);
  const end = (node: unknown) => (isNode(node) && node.range ? node.range[2] : -Infinity);
  let node: unknown = doc.contents;
  // A node's range starts after its tag: an offset before a node's start is in its tag. So a pair
  // spans from its key to the end of its value, an item from the end of the one before.
  while (offset >= start(node)) {
    if (isMap(node)) {
      const pair = node.items.find((p) => start(p.key) <= offset && offset < Math.max(end(p.key), end(p.value)));
      if (!pair) break;
      path.push(String(isScalar(pair.key) ? pair.key.value : pair.key));
      if (offset < end(pair.key)) break;
      node = pair.value;
    } else if (isSeq(node)) {
      const i = node.items.findIndex((item) => offset < end(item));
      if (i < 0) break;
      path.push(i);
      node = node.items[i];
    } else {
      break;
    }
  }
  return path;
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
