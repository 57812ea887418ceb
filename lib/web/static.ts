import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../util/paths.js';

// The pages' CSS and JavaScript: plain files in lib/web/static (no build step, nothing from a
// CDN), read once and served from memory under /static/<name>. Only the files listed here are
// served: a request names one of them or gets a 404, never a path.

const STATIC_DIR = join(PROJECT_ROOT, 'lib', 'web', 'static');
const TYPES: Record<string, string> = {
  'style.css': 'text/css; charset=utf-8',
  'common.js': 'text/javascript; charset=utf-8',
  'jobs.js': 'text/javascript; charset=utf-8',
  'job.js': 'text/javascript; charset=utf-8',
  'hosts.js': 'text/javascript; charset=utf-8',
};

export interface StaticFile {
  type: string;
  body: Buffer;
}

let files: Map<string, StaticFile> | null = null;

export function staticFile(name: string): StaticFile | null {
  files ??= new Map(Object.entries(TYPES).map(([file, type]) => [file, { type, body: readFileSync(join(STATIC_DIR, file)) }]));
  return files.get(name) ?? null;
}

/**
 * What the pages may load and run: their own scripts and styles only. No inline script can run,
 * so text that slipped through unescaped still could not act; no other site may frame them.
 */
export const CONTENT_SECURITY_POLICY = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
