import { expect } from 'chai';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Workspace } from './support/workspace.js';
import type { Store } from '../lib/store/store.js';
import type { JobView } from '../lib/cli/views.js';

// Bad job files through the real `queue`: exit 2, one `error: FILE:LINE: KEY: reason` line per
// problem, and nothing queued — not even the valid file given alongside. A real redis-server
// holds the (empty) queue; no supervisor is needed, since queued jobs would just wait there.

interface Refusal {
  what: string;
  text: string;
  /** null: the problem has no line (the file as a whole). */
  line: number | null;
  key: string | null;
  reason: RegExp;
}

const SCHEMA_CASES: Refusal[] = [
  {
    what: 'malformed YAML (an unclosed bracket)',
    text: 'ClassType: Local\nOrder: [{Run: "echo hi"}\nEnv: {A: "1"}\n',
    line: 3,
    key: null,
    reason: /^not valid YAML: .*end with a \]$/,
  },
  {
    what: 'a duplicate key',
    text: 'ClassType: Local\nOrder:\n  - Run: echo hi\nClassType: Thread\n',
    line: 4,
    key: 'ClassType',
    reason: /set twice in the same mapping; keep one/,
  },
  {
    what: 'a duplicate key inside a step',
    text: 'Order:\n  - Run: echo hi\n    Log: a.log\n    Log: b.log\n',
    line: 4,
    key: 'Order[0].Log',
    reason: /set twice in the same mapping; keep one/,
  },
  {
    what: 'an unknown top-level key, suggesting the right one',
    text: 'Order:\n  - Run: echo hi\nTimout: 5s\n',
    line: 3,
    key: 'Timout',
    reason: /^unknown key in the job file; did you mean Timeout\?$/,
  },
  {
    what: 'an unknown step key, suggesting the right one',
    text: 'Order:\n  - Run: echo hi\n    Lgo: run.log\n',
    line: 3,
    key: 'Order[0].Lgo',
    reason: /^unknown key in a step; did you mean Log\?$/,
  },
  {
    what: 'Retries that is not a number',
    text: 'Order:\n  - Run: echo hi\nRetries: "three"\n',
    line: 3,
    key: 'Retries',
    reason: /^must be a whole number from 0 to 100, not the text "three"$/,
  },
  {
    what: 'a Timeout that is not a duration',
    text: 'Timeout: banana\nOrder:\n  - Run: echo hi\n',
    line: 1,
    key: 'Timeout',
    reason: /^must be a duration such as 30s, 10m or 1h30m, not the text "banana"$/,
  },
  {
    what: 'an Order that is text, not a list',
    text: 'Order: "echo"\n',
    line: 1,
    key: 'Order',
    reason: /^must be a list of steps, not the text "echo"$/,
  },
  {
    what: 'an Env value that is a mapping',
    text: 'Order:\n  - Run: echo hi\nEnv:\n  GOOD: "1"\n  BAD: {nested: 1}\n',
    line: 5,
    key: 'Env.BAD',
    reason: /^must be text, not a mapping$/,
  },
  {
    what: 'a Remote job whose Port is out of range',
    text: 'ClassType: Remote\nHostname: lab1\nPort: 70000\nOrder:\n  - Run: echo hi\n',
    line: 3,
    key: 'Port',
    reason: /^must be a whole number from 1 to 65535, not number 70000$/,
  },
  {
    what: 'an unknown ClassType',
    text: 'ClassType: Lokal\nOrder:\n  - Run: echo hi\n',
    line: 1,
    key: 'ClassType',
    reason: /^unknown ClassType "Lokal"; use one of Local, Thread, Remote, EC2$/,
  },
  {
    what: 'a missing Order',
    text: 'ClassType: Local\nName: no-steps\n',
    line: 1,
    key: 'Order',
    reason: /^is missing: list the steps to run, e\.g\. Order: \[/,
  },
  {
    what: 'an empty Order',
    text: 'ClassType: Local\nOrder: []\n',
    line: 2,
    key: 'Order',
    reason: /^has no steps; add at least one/,
  },
  {
    what: 'a step with both Run and Function',
    text: 'Modules: {m: steps.mjs}\nOrder:\n  - Run: echo hi\n    Function: alpha\n',
    line: 3,
    key: 'Order[0]',
    reason: /either Run \(a shell command\) or Function \(a JS function\), not both/,
  },
  {
    what: 'a Function step whose module file does not exist',
    text: 'Modules: {m: missing.mjs}\nOrder:\n  - Function: alpha\n',
    line: 1,
    key: 'Modules.m',
    reason: /^no such file: \/.*\/missing\.mjs \(paths in Modules are relative to the job file's directory\)$/,
  },
  {
    what: 'a Function that the module does not export, listing what it does export',
    text: 'Modules: {m: steps.mjs}\nOrder:\n  - Function: alpha\n  - Function: gamma\n',
    line: 4,
    key: 'Order[1].Function',
    reason: /steps\.mjs exports no function gamma \(it exports: alpha, beta\)$/,
  },
  {
    what: 'a module that throws when it is loaded',
    text: 'Modules: {m: throws.mjs}\nOrder:\n  - Function: alpha\n',
    line: 1,
    key: 'Modules.m',
    reason: /^cannot load \/.*\/throws\.mjs: boom while loading$/,
  },
  {
    // Before the fix this waited for the 10 s load timeout and blamed the time.
    what: 'a module that calls process.exit() when it is loaded',
    text: 'Modules: {m: exits.mjs}\nOrder:\n  - Function: alpha\n',
    line: 1,
    key: 'Modules.m',
    reason: /^cannot load \/.*\/exits\.mjs: it exited while loading \(process\.exit\(3\)\)$/,
  },
  {
    what: 'an input {x: null} that no earlier step produces',
    text: 'Modules: {m: steps.mjs}\nOrder:\n  - Function: alpha\n    Outputs: [y]\n  - Function: beta\n    Inputs:\n      - x: null\n',
    line: 7,
    key: 'Order[1].Inputs[0].x',
    reason: /no earlier step lists x in its Outputs$/,
  },
  {
    what: 'a Run command that is not valid sh',
    text: 'Order:\n  - Run: echo fine\n  - Run: "if then"\n',
    line: 3,
    key: 'Order[1].Run',
    reason: /^the command is not valid sh: .*then/,
  },
  {
    what: 'a Thread job with a Run step',
    text: 'ClassType: Thread\nOrder:\n  - Run: echo hi\n',
    line: 3,
    key: 'Order[0].Run',
    reason: /use ClassType: Local for shell commands$/,
  },
  {
    what: 'a Log path that climbs out with ..',
    text: 'Order:\n  - Run: echo hi\n    Log: ../escape.log\n',
    line: 3,
    key: 'Order[0].Log',
    reason: /^must be a file name in the job's directory, such as zip\.log \(no \/ and no \.\.\)$/,
  },
  {
    what: 'a Log path with a /',
    text: 'Order:\n  - Run: echo hi\n    Log: /etc/passwd\n',
    line: 3,
    key: 'Order[0].Log',
    reason: /\(no \/ and no \.\.\)$/,
  },
  {
    what: 'an alias whose anchor was never set',
    text: 'Order: *steps\n',
    line: null,
    key: null,
    reason: /^refused: Unresolved alias .*steps$/,
  },
];

describe('job files', function () {
  let ws: Workspace;
  let store: Store;
  let good: string;

  before(async function () {
    ws = await Workspace.create();
    store = await ws.store();
    good = ws.write('good.yaml', 'Order:\n  - Run: echo fine\n');
    ws.write('steps.mjs', 'export function alpha() {}\nexport function beta() {}\nexport const answer = 42;\n');
    ws.write('throws.mjs', "throw new Error('boom while loading');\n");
    ws.write('exits.mjs', 'process.exit(3);\n');
  });

  after(async function () {
    await ws.dispose();
  });

  /** `queue` of a valid file and `files`: exit 2, nothing queued. Returns the `error:` lines. */
  async function refused(...files: string[]): Promise<string[]> {
    const result = await ws.cli('queue', good, ...files);
    expect(result.code, result.stderr).to.equal(2);
    expect(result.stderr).to.match(/nothing was queued: \d+ job files? ha(s|ve) problems/);
    expect(result.stdout, 'no job ids are printed').to.equal('');
    expect(await store.redis.llen(store.keys.jobQueue), 'Job_Queue length').to.equal(0);
    expect(await store.jobIds(0, 100), 'job ids').to.deep.equal([]);
    return result.stderr.split('\n').filter((line) => line.startsWith('error: '));
  }

  /** The error line for `file` reads `error: FILE[:LINE]: [KEY: ]reason`, reason matching. */
  function expectError(lines: string[], file: string, line: number | null, key: string | null, reason: RegExp): void {
    const prefix = `error: ${file}${line ? `:${line}` : ''}: ${key ? `${key}: ` : ''}`;
    const found = lines.find((l) => l.startsWith(prefix));
    expect(found, `no line starting "${prefix}" in:\n${lines.join('\n')}`).to.be.a('string');
    expect(found!.slice(prefix.length)).to.match(reason);
  }

  describe('refuses a file that breaks the schema, naming file, line, key and the fix', function () {
    SCHEMA_CASES.forEach((c, i) => {
      it(c.what, async function () {
        const file = ws.write(`case-${i}.yaml`, c.text);
        const lines = await refused(file);
        expect(lines, 'one error, for the bad file only').to.have.length(1);
        expectError(lines, file, c.line, c.key, c.reason);
      });
    });
  });

  describe('refuses unsafe YAML without acting on it', function () {
    it('refuses a custom tag such as !!python/object/apply and runs nothing', async function () {
      const marker = join(ws.dir, 'pwned');
      const file = ws.write('tag.yaml', `Order:\n  - Run: !!python/object/apply:os.system ["touch ${marker}"]\n`);
      const lines = await refused(file);
      expectError(lines, file, 2, 'Order[0].Run', /^not valid YAML: Unresolved tag: .*python\/object\/apply:os\.system \(custom tags are not allowed/);
      expect(existsSync(marker)).to.equal(false);
    });

    it('refuses an alias bomb (billion laughs) before expanding it', async function () {
      this.timeout(20_000);
      const levels = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]'];
      for (let n = 1; n <= 9; n++) levels.push(`l${n}: &l${n} [${Array(10).fill(`*l${n - 1}`).join(', ')}]`);
      const file = ws.write('bomb.yaml', `${levels.join('\n')}\nOrder:\n  - Run: echo hi\n`);
      const started = Date.now();
      const lines = await refused(file);
      // 10^10 strings would take far longer than this (and run out of memory first); the bound is loose.
      expect(Date.now() - started).to.be.below(10_000);
      expectError(lines, file, null, null, /^refused: .*alias.* \(at most 100 alias expansions\)$/);
    });

    it('refuses a 50 MB file by its size', async function () {
      const file = join(ws.dir, 'huge.yaml');
      writeFileSync(file, Buffer.alloc(50 * 1024 * 1024, '# a comment that pads the file out\n'));
      const lines = await refused(file);
      expectError(lines, file, null, null, /^the file is 50\.0 MiB; files over 1\.0 MiB are refused \(keep data out of job files: pass a path instead\)$/);
    });

    it('refuses 10000 nested lists without overflowing the stack', async function () {
      const file = ws.write('deep-flow.yaml', `Order: ${'['.repeat(10_000)}${']'.repeat(10_000)}\n`);
      const lines = await refused(file);
      expectError(lines, file, null, null, /^refused: nested more than 64 levels deep$/);
    });

    it('refuses deeply indented mappings the same way', async function () {
      // 1300 levels of `a:` by indentation (~850 KB, under the size limit): deeper than the
      // parser's recursion can follow.
      const text = Array.from({ length: 1300 }, (_, i) => `${' '.repeat(i)}a:\n`).join('') + `${' '.repeat(1300)}b: 1\n`;
      const file = ws.write('deep-block.yaml', text);
      const lines = await refused(file);
      expectError(lines, file, null, null, /^refused: nested more than 64 levels deep$/);
    });
  });

  describe('refuses paths that hold no job', function () {
    it('refuses a directory with no .yaml files', async function () {
      ws.write('no-jobs/README.txt', 'nothing here\n');
      const dir = join(ws.dir, 'no-jobs');
      expectError(await refused(dir), dir, null, null, /^the directory holds no \.yaml or \.yml job files$/);
    });

    it('refuses a path that does not exist', async function () {
      const path = join(ws.dir, 'not-there.yaml');
      expectError(await refused(path), path, null, null, /^no such file or directory$/);
    });
  });

  describe('reports every bad file', function () {
    it('at once, and as JSON (code JM_JOB_SPEC, file, line, key) with --json', async function () {
      const typo = ws.write('typo.yaml', 'Order:\n  - Run: echo hi\nRetrys: 2\n');
      const missing = join(ws.dir, 'missing.yaml');
      const result = await ws.cli('queue', good, typo, missing, '--json');
      expect(result.code, result.stderr).to.equal(2);
      const body = JSON.parse(result.stdout) as { queued: unknown[]; errors: { code: string; file: string; line: number | null; key: string | null; reason: string }[] };
      expect(body.queued).to.deep.equal([]);
      expect(body.errors).to.have.deep.members([
        { code: 'JM_JOB_SPEC', file: typo, line: 3, key: 'Retrys', reason: 'unknown key in the job file; did you mean Retries?' },
        { code: 'JM_JOB_SPEC', file: missing, line: null, key: null, reason: 'no such file or directory' },
      ]);
      expect(await store.redis.llen(store.keys.jobQueue)).to.equal(0);
      expect(await store.jobIds(0, 100)).to.deep.equal([]);
    });
  });
});

describe('job files: valid input with odd characters', function () {
  let ws: Workspace;

  before(async function () {
    ws = await Workspace.create();
  });

  after(async function () {
    await ws.dispose();
  });

  it('queues a job whose Name and Env hold unicode and shell metacharacters, unchanged', async function () {
    const name = 'ünïcødé; rm -rf / $(x)';
    const file = ws.write('odd.yaml', [
      `Name: ${JSON.stringify(name)}`,
      'Env: {SHELLISH: "`id` $(touch pwned) | & ; > <", GREEK: "αβγ"}',
      'Order:',
      '  - Run: echo "$SHELLISH"',
    ].join('\n'));
    const queued = await ws.cli('queue', file);
    expect(queued.code, queued.stderr).to.equal(0);
    const [id] = Workspace.ids(queued.stdout);

    const listed = await ws.cli('jobs', '--json');
    expect(listed.code, listed.stderr).to.equal(0);
    const jobs = (JSON.parse(listed.stdout) as { jobs: JobView[] }).jobs;
    expect(jobs.map((job) => [job.id, job.name, job.state])).to.deep.equal([[id, name, 'queued']]);
    const store = await ws.store();
    expect(await store.redis.llen(store.keys.jobQueue)).to.equal(1);
  });
});
