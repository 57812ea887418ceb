import { Command as Program, Option } from 'commander';
import { FINAL_STATES, JOB_STATES } from '../store/job-record.js';
import { consoleOutput } from './output.js';
import type { CliRuntime } from './runtime.js';
import type { CommandArgs } from './commands/types.js';

// The command tree, as commander declares it: each command with its arguments, its own options,
// its help (a line, the options, an example) and the function that runs it. Global options
// (--config, --json) belong to the program, so commander takes them before or after the
// command's name. Parsing only builds CommandArgs; the commands themselves do the work. A
// command's module is loaded only when it runs: help, refusals and completion then answer without
// loading Redis, SSH and EC2 clients (a shell that sources the completion script waits for it).

/** What commands that take jobs accept (lib/cli/selectors.ts). */
const SELECTORS = 'job ids (12), ranges of ids (12-100011), or names: a job\'s, or a sweep\'s for all its jobs';

const TIMEOUT = () => new Option('--timeout <duration>', 'give up waiting after this long (e.g. 30s, 10m); the jobs go on');

interface CommandDef {
  name: string;
  /** commander argument syntax: '<files...>', '<id>', '[shell]'. */
  args?: [syntax: string, description: string][];
  summary: string;
  /** More than the summary, for the command's own help. */
  description?: string;
  options?: Option[];
  examples: string[];
  /** Loads the command; the program is passed to the commands that describe it (completion). */
  load: () => Promise<(args: CommandArgs, program: Program) => Promise<number>>;
  hidden?: boolean;
}

const COMMANDS: CommandDef[] = [
  {
    name: 'run', args: [['<files...>', 'job files, or directories of them']],
    summary: 'start a supervisor here, queue the jobs, wait, print the results',
    description: 'Starts a supervisor in this process (or uses the one running for this state directory), queues the jobs, waits for them with a progress bar, prints their results and stops what it started: the supervisor, and the EC2 instances it launched (unless --keep-instances). Exits 0 only if every job succeeded.',
    options: [TIMEOUT(), new Option('--keep-instances', 'leave the EC2 instances running when it ends (they still end themselves once idle: EC2.IdleTimeout plus a margin)')],
    examples: ['jobmanager run examples/', 'jobmanager run align.yaml --json > results.json'],
    load: async () => (await import('./commands/run.js')).runCommand,
  },
  {
    name: 'queue', args: [['<files...>', 'job files, or directories of them']],
    summary: 'check job files and queue them; prints their ids',
    description: 'Checks every file first: if one is invalid, nothing is queued (exit 2). Prints the new job ids; with --wait, waits for the jobs and exits 0 only if every one succeeded.',
    options: [new Option('--wait', 'wait for the jobs to end, with a progress bar; the exit code says whether all succeeded'), TIMEOUT()],
    examples: ['jobmanager queue jobs/ --wait', 'jobmanager queue a.yaml b.yaml --json'],
    load: async () => (await import('./commands/queue.js')).queueCommand,
  },
  {
    name: 'jobs',
    summary: 'list jobs, newest first',
    options: [
      new Option('--state <state>', 'only jobs in this state').choices(JOB_STATES),
      new Option('--name <name>', 'only the jobs of this name, or of the sweep of this name (align: align[0], align[1], …)'),
      new Option('--limit <n>', 'at most this many').default('50'),
      new Option('--all', 'every job').conflicts('limit'),
    ],
    examples: ['jobmanager jobs --state failed', 'jobmanager jobs --name align --state failed', 'jobmanager jobs --all --json'],
    load: async () => (await import('./commands/jobs.js')).jobsCommand,
  },
  {
    name: 'show', args: [['<id>', 'a job id, or a name that only one job has (align[7])']],
    summary: 'one job: its steps, runs, result',
    examples: ['jobmanager show 12', 'jobmanager show 12 --json'],
    load: async () => (await import('./commands/jobs.js')).showCommand,
  },
  {
    name: 'logs', args: [['<id>', 'a job id, or a name that only one job has (align[7])']],
    summary: 'what the job printed',
    description: 'Prints the job\'s log (here, or read over SSH from its host). --follow prints new output as it is written and returns when the job ends.',
    options: [
      new Option('--step <n>', 'the Log file of step n (1 is the first step) instead of job.log'),
      new Option('-f, --follow', 'keep printing what the job writes until it ends'),
    ],
    examples: ['jobmanager logs 12 --follow', 'jobmanager logs 12 --step 2'],
    load: async () => (await import('./commands/logs.js')).logsCommand,
  },
  {
    name: 'wait', args: [['<ids...>', SELECTORS]],
    summary: 'wait for jobs to end; exit 0 if all succeeded',
    options: [TIMEOUT()],
    examples: ['jobmanager wait 12 13 --timeout 10m', 'jobmanager wait 12-100011', 'jobmanager wait align'],
    load: async () => (await import('./commands/jobs.js')).waitCommand,
  },
  {
    name: 'cancel', args: [['<ids...>', SELECTORS]],
    summary: 'cancel jobs (running ones are stopped: TERM, then KILL)',
    examples: ['jobmanager cancel 12 13', 'jobmanager cancel 12-100011', 'jobmanager cancel align'],
    load: async () => (await import('./commands/cancel.js')).cancelCommand,
  },
  {
    name: 'purge', args: [['[jobs...]', 'job ids (12), ranges (12-20) or names (align: every job so named, and a sweep\'s jobs); all must be finished']],
    summary: 'remove finished jobs now: records, runs, directories',
    description: 'Removes finished jobs (succeeded, failed, cancelled, rejected) now, as retention (config Retention) does as it goes: each job\'s record and runs in Redis, its directory under StateDir/jobs/, and its directory on its SSH host when that host answers. Without ids, every finished job the options select; with ids, those of them the options select. A named job that is not finished is refused, and then nothing is removed.',
    options: [
      new Option('--older-than <duration>', 'only jobs that ended at least this long ago (e.g. 7d, 12h; 0s: every finished job)'),
      new Option('--state <state>', 'only jobs in this final state').choices(FINAL_STATES),
      new Option('--dry-run', 'list what would be removed, and remove nothing'),
    ],
    examples: ['jobmanager purge --older-than 7d --dry-run', 'jobmanager purge --state failed --older-than 1d', 'jobmanager purge 12 13 --json', 'jobmanager purge align --state failed'],
    load: async () => (await import('./commands/purge.js')).purgeCommand,
  },
  {
    name: 'start',
    summary: 'run the supervisor in the foreground (--detach: in the background)',
    options: [new Option('--detach', 'run it in the background (pid file in the state directory) and return once it is up')],
    examples: ['jobmanager start --detach'],
    load: async () => (await import('./commands/lifecycle.js')).startCommand,
  },
  {
    name: 'stop',
    summary: 'stop the supervisor of this state directory',
    description: 'Stops the supervisor of this state directory and waits for it to exit. Running jobs go on and are picked up at the next start.',
    examples: ['jobmanager stop'],
    load: async () => (await import('./commands/lifecycle.js')).stopCommand,
  },
  {
    name: 'restart',
    summary: 'stop the supervisor, then start it in the background',
    examples: ['jobmanager restart --config lab.yaml'],
    load: async () => (await import('./commands/lifecycle.js')).restartCommand,
  },
  { name: 'status', summary: 'supervisor, actors, queues and slots', examples: ['jobmanager status --json'], load: async () => (await import('./commands/lifecycle.js')).statusCommand },
  {
    name: 'nodes', args: [['[action]', 'forget: forget a node that will not come back'], ['[node]', 'the node to forget']],
    summary: 'the supervisors (nodes) on this Redis: lease, local slots; `nodes forget NODE`',
    description: 'Lists every node (a supervisor sharing this Redis): its host and pid, its lease (up; stopped; lapsed or down, with when it was last renewed), its local slots used of its LocalMaxJobs, the jobs waiting for it alone (Node: in their job file), and which node provisions EC2. `nodes forget NODE` forgets a node whose machine is gone: its running local jobs are recorded interrupted and retried per their Retries, what was granted to it and not started goes to other nodes, and its remote runs are watched by this node. It refuses a node whose lease is fresh.',
    examples: ['jobmanager nodes', 'jobmanager nodes --json', 'jobmanager nodes forget ws2'],
    load: async () => (await import('./commands/nodes.js')).nodesCommand,
  },
  { name: 'hosts', summary: 'SSH hosts: reachable or not, slots used, jobs running there', examples: ['jobmanager hosts'], load: async () => (await import('./commands/hosts.js')).hostsCommand },
  { name: 'instances', summary: 'EC2 instances this deployment launched: state, job, age', examples: ['jobmanager instances'], load: async () => (await import('./commands/instances.js')).instancesCommand },
  {
    name: 'completion', args: [['<shell>', 'bash']],
    summary: 'print a shell completion script',
    examples: ['source <(jobmanager completion bash)', 'jobmanager completion bash > /etc/bash_completion.d/jobmanager'],
    load: async () => (await import('./completion.js')).completionCommand,
  },
  {
    // Fault injection for the chaos run: not for users, so not in the main help.
    name: 'debug', args: [['<action>', 'crash-actor'], ['<actor>', 'manager, starter or fetcher']],
    summary: 'fault injection for tests', hidden: true,
    examples: ['jobmanager debug crash-actor starter'],
    load: async () => (await import('./commands/lifecycle.js')).debugCommand,
  },
];

const EXIT_CODES = 'Exit codes: 0 ok, 1 a job did not succeed, 2 bad input (nothing was changed),\n3 Redis or the supervisor is unavailable.';

/**
 * The program. Once a command's arguments are parsed, `execute` gets them and the function that
 * runs the command; parse errors, help and --version surface as commander's CommanderError
 * (exitOverride), so that main decides the exit code.
 */
export function buildProgram(version: string, runtime: CliRuntime, execute: (args: CommandArgs, run: (args: CommandArgs) => Promise<number>) => Promise<void>): Program {
  const program = new Program('jobmanager')
    .description('Run jobs written as YAML files, here, on SSH hosts or on EC2.')
    .version(version, '--version', 'print the version')
    .option('--config <file>', 'config file (default: $JM_CONFIG, else ./jobmanager.yaml, else config/default.yaml)')
    .option('--json', 'machine-readable output')
    .helpCommand('help [command]', 'help for a command')
    .configureHelp({ showGlobalOptions: true })
    .exitOverride()
    .addHelpText('after', `\n${EXIT_CODES}\n\`jobmanager help COMMAND\` (or \`jobmanager COMMAND --help\`) shows a command's options.`);
  for (const def of COMMANDS) {
    const command = program.command(def.name, { hidden: def.hidden }).summary(def.summary).description(def.description ?? `${def.summary[0].toUpperCase()}${def.summary.slice(1)}.`);
    for (const [syntax, description] of def.args ?? []) command.argument(syntax, description);
    for (const option of def.options ?? []) command.addOption(option);
    command
      .addHelpText('after', `\nExample${def.examples.length > 1 ? 's' : ''}:\n${def.examples.map((e) => `  $ ${e}`).join('\n')}`)
      .showHelpAfterError(`Usage: jobmanager ${def.name} ${command.usage()}\n(\`jobmanager ${def.name} --help\` shows its options)`)
      .action(async (...params: unknown[]) => {
        const self = params[params.length - 1] as Program;
        const opts = self.optsWithGlobals();
        const args: CommandArgs = {
          positionals: self.args,
          config: opts.config,
          json: Boolean(opts.json),
          wait: Boolean(opts.wait),
          detach: Boolean(opts.detach),
          keepInstances: Boolean(opts.keepInstances),
          follow: Boolean(opts.follow),
          all: Boolean(opts.all),
          state: opts.state,
          name: opts.name,
          limit: opts.limit,
          timeout: opts.timeout,
          step: opts.step,
          olderThan: opts.olderThan,
          dryRun: Boolean(opts.dryRun),
          out: consoleOutput(Boolean(opts.json)),
          runtime,
        };
        await execute(args, async (a) => (await def.load())(a, program));
      });
  }
  program.showHelpAfterError('(`jobmanager --help` lists the commands)');
  return program;
}
