import { expect } from 'chai';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DIST_DIR, PROJECT_ROOT } from '../lib/util/paths.js';
import { RUNTIME_FILES } from '../lib/backends/remote/paths.js';

// lib/runtime is what is copied to remote hosts for Function steps and run there by any Node.js:
// it may import only Node's built-ins and its own files, and every file of it must be copied. The
// compiled files are read, as they are what is shipped (type-only imports are gone from them).

const RUNTIME = join(PROJECT_ROOT, 'lib', 'runtime');
const SHIPPED = join(DIST_DIR, 'lib', 'runtime');

function importsOf(file: string): string[] {
  const text = readFileSync(join(SHIPPED, file), 'utf8');
  return [...text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'"]*?from\s+['"]([^'"]+)['"]|import\s*\(\s*['"]([^'"]+)['"]/g)].map((m) => m[1] ?? m[2]);
}

describe('the runtime shipped to hosts (lib/runtime)', function () {
  const sources = readdirSync(RUNTIME).filter((f) => f.endsWith('.ts'));
  const shipped = sources.map((f) => f.replace(/\.ts$/, '.js'));

  it('imports nothing but node: built-ins and its own files', function () {
    const own = new Set(shipped.map((f) => `./${f}`));
    const outside = shipped.flatMap((f) => importsOf(f).filter((spec) => !spec.startsWith('node:') && !own.has(spec)).map((spec) => `${f}: ${spec}`));
    expect(outside).to.deep.equal([]);
    expect(shipped.flatMap(importsOf), 'the check sees imports').to.include('node:fs');
  });

  it('is copied whole: every file of it is in RUNTIME_FILES', function () {
    expect([...RUNTIME_FILES].sort()).to.deep.equal([...shipped].sort());
  });
});
