import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { PROJECT_ROOT } from '../util/paths.js';
import { JobManagerError, errorMessage } from '../util/errors.js';
import { consoleOutput } from './output.js';
import { queueCommand } from './commands/queue.js';
import { jobsCommand, showCommand, waitCommand } from './commands/jobs.js';
import { cancelCommand } from './commands/cancel.js';
import { logsCommand } from './commands/logs.js';
import { debugCommand, restartCommand, startCommand, statusCommand, stopCommand } from './commands/lifecycle.js';
import { runCommand } from './commands/run.js';
import { hostsCommand } from './commands/hosts.js';
import { instancesCommand } from './commands/instances.js';
import { EXIT, type Command, type CommandArgs } from './commands/types.js';

// `jobmanager VERB ...`: the command line. Every listing takes --json; exit codes are in
// commands/types.ts (0 ok, 1 a job did not succeed, 2 bad input, 3 unavailable).

const HELP = `jobmanager — run jobs written as YAML files, here, on SSH hosts or on EC2

Usage: jobmanager <command> [options]

  run FILE|DIR...         start a supervisor here, queue the jobs, wait, print the results
  queue FILE|DIR...       check job files and queue them; prints their ids (--wait to wait)
  jobs                    list jobs, newest first (--state STATE, --limit N, --all)
  show ID                 one job: its steps, runs, result
  logs ID                 what the job printed (--step N for a step's own Log, --follow)
  wait ID...              wait for jobs to end (--timeout 10m); exit 0 if all succeeded
  cancel ID...            cancel jobs (running ones are stopped: TERM, then KILL)
  start                   run the supervisor in the foreground (--detach: in the background)
  stop | restart          stop (or restart) the supervisor of this state directory
  status                  supervisor, actors, queues and slots
  hosts                   SSH hosts: reachable or not, slots used, jobs running there
  instances               EC2 instances this deployment launched: state, job, age

Options:
  --config FILE           config file (default: $JM_CONFIG, else ./jobmanager.yaml, else
                          the defaults in config/default.yaml)
  --json                  machine-readable output
  -h, --help              this help;  --version  the version

Exit codes: 0 ok, 1 a job did not succeed, 2 bad input (nothing was changed),
3 Redis or the supervisor is unavailable.
`;

const COMMANDS: Record<string, Command> = {
  run: runCommand,
  queue: queueCommand,
  jobs: jobsCommand,
  show: showCommand,
  logs: logsCommand,
  wait: waitCommand,
  cancel: cancelCommand,
  start: startCommand,
  stop: stopCommand,
  restart: restartCommand,
  status: statusCommand,
  hosts: hostsCommand,
  instances: instancesCommand,
  debug: debugCommand,
};

export async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        config: { type: 'string' },
        json: { type: 'boolean', default: false },
        wait: { type: 'boolean', default: false },
        detach: { type: 'boolean', default: false },
        follow: { type: 'boolean', short: 'f', default: false },
        all: { type: 'boolean', default: false },
        state: { type: 'string' },
        limit: { type: 'string' },
        timeout: { type: 'string' },
        step: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
        version: { type: 'boolean', default: false },
      },
    });
  } catch (err) {
    process.stderr.write(`${errorMessage(err)}\n\n${HELP}`);
    return EXIT.usage;
  }
  const { values, positionals } = parsed;
  if (values.version) {
    process.stdout.write(`${JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')).version}\n`);
    return EXIT.ok;
  }
  const [verb, ...rest] = positionals;
  if (values.help || !verb || verb === 'help') {
    process.stdout.write(HELP);
    return verb || values.help ? EXIT.ok : EXIT.usage;
  }
  const command = COMMANDS[verb];
  if (!command) {
    process.stderr.write(`unknown command: ${verb}\n\n${HELP}`);
    return EXIT.usage;
  }
  const out = consoleOutput(values.json);
  const args: CommandArgs = {
    positionals: rest,
    config: values.config,
    json: values.json,
    wait: values.wait,
    detach: values.detach,
    follow: values.follow,
    all: values.all,
    state: values.state,
    limit: values.limit,
    timeout: values.timeout,
    step: values.step,
    out,
  };
  try {
    return await command(args);
  } catch (err) {
    if (err instanceof JobManagerError) {
      if (values.json) out.data({ error: err.toJSON() });
      else out.error(`error: ${err.message}`);
      return err.code === 'JM_CONFIG' || err.code === 'JM_JOB_SPEC' ? EXIT.usage : EXIT.unavailable;
    }
    throw err;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // Commands close what they open; a forgotten handle must not keep the process alive.
    setTimeout(() => process.exit(code), 200).unref();
  },
  (err: unknown) => {
    process.stderr.write(`jobmanager: unexpected error: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(70);
  },
);
