import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CommanderError } from 'commander';
import { PROJECT_ROOT } from '../util/paths.js';
import { JobManagerError } from '../util/errors.js';
import { buildProgram } from './program.js';
import type { CliRuntime } from './runtime.js';
import { EXIT } from './commands/types.js';

// `jobmanager COMMAND ...`: parses the command line (program.ts), runs the command and turns
// what happened into the exit code (commands/types.ts: 0 ok, 1 a job did not succeed, 2 bad
// input, 3 unavailable). It does not exit the process: the entry point sets process.exitCode and
// the process ends once every command has closed what it opened.

export async function main(argv: string[], runtime: CliRuntime): Promise<number> {
  const version = JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')).version as string;
  let code: number = EXIT.usage;
  const program = buildProgram(version, runtime, async (args, run) => {
    try {
      code = await run(args);
    } catch (err) {
      if (!(err instanceof JobManagerError)) throw err;
      if (args.json) args.out.data({ error: err.toJSON() });
      else args.out.error(`error: ${err.message}`);
      code = err.code === 'JM_CONFIG' || err.code === 'JM_JOB_SPEC' ? EXIT.usage : EXIT.unavailable;
    }
  });
  try {
    await program.parseAsync(argv, { from: 'user' });
    return code;
  } catch (err) {
    if (!(err instanceof CommanderError)) throw err;
    // Help and --version asked for: 0. Help shown because no command was given, an unknown
    // command or option, a missing or extra argument: bad input (commander printed why).
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return EXIT.ok;
    if (err.code === 'commander.help') return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    return EXIT.usage;
  }
}
