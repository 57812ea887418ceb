import { expect } from 'chai';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { PROJECT_ROOT } from '../lib/util/paths.js';

// lib/ holds what the actors share; actors/ builds on it. An import from lib/ up into actors/
// would make the layers a tangle (and lib/ unusable without the actors), so this spec reads the
// imports of every source file under lib/ and fails on one that reaches into actors/: static
// imports and re-exports (type-only ones too), dynamic import(), and `new URL(..., import.meta.url)`
// (how a Worker's file is named). The executable's entry point (bin/) is where the two meet.

const LIB = join(PROJECT_ROOT, 'lib');
const ACTORS = join(PROJECT_ROOT, 'actors');

const SPECIFIERS = [
  /\bimport\s+(?:type\s+)?[^'"`;]*?\bfrom\s*['"]([^'"]+)['"]/g,
  /\bexport\s+(?:type\s+)?[^'"`;]*?\bfrom\s*['"]([^'"]+)['"]/g,
  /\bimport\s*['"]([^'"]+)['"]/g,
  /\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g,
  /\bnew\s+URL\s*\(\s*['"`]([^'"`]+)['"`]\s*,\s*import\.meta\.url/g,
];

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return /\.(ts|mts|js|mjs)$/.test(entry.name) && !entry.name.endsWith('.d.ts') ? [path] : [];
  });
}

/** Every relative module a file names, resolved to a source path under the project. */
export function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const found = new Set<string>();
  for (const pattern of SPECIFIERS) {
    for (const match of text.matchAll(pattern)) {
      const specifier = match[1];
      if (!specifier.startsWith('.')) continue;
      found.add(resolve(dirname(file), specifier).replace(/\.js$/, '.ts'));
    }
  }
  return [...found];
}

describe('layering', function () {
  it('finds the imports it looks for (the check itself works)', function () {
    const supervisorEntry = join(PROJECT_ROOT, 'bin', 'jobmanager.ts');
    expect(importsOf(supervisorEntry)).to.include(join(ACTORS, 'supervisor.ts')).and.to.include(join(LIB, 'cli', 'main.ts'));
    expect(importsOf(join(ACTORS, 'supervisor.ts')), 'new URL(`./${name}.js`) is a template, not a file').to.include(join(LIB, 'util', 'log.ts'));
  });

  it('has no file under lib/ that imports from actors/', function () {
    const offending: string[] = [];
    for (const file of sourceFiles(LIB)) {
      const name = relative(PROJECT_ROOT, file);
      for (const target of importsOf(file)) {
        const targetName = relative(PROJECT_ROOT, target);
        if (target.startsWith(ACTORS + '/')) offending.push(`${name} imports ${targetName}`);
      }
    }
    expect(offending, 'lib/ must not depend on actors/: pass what is needed in from the caller (see bin/jobmanager.ts)').to.deep.equal([]);
  });
});
