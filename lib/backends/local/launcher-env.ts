// The launcher's own environment, and the jobs' one it gives back. The launcher is a node program
// (launcher-main.ts), and its jobs inherit the environment it was given; but some variables meant
// for the jobs would change how node itself starts the launcher: NODE_OPTIONS (an --inspect or
// --require a user sets for their Function steps) and NODE_EXTRA_CA_CERTS (read at start: ~40 ms
// here). Those reach the launcher set aside under a prefix, and it hands them back to each job.
// Node built-ins only: the launcher imports this file.

const PREFIX = 'JM_JOB_ENV_';
const SET_ASIDE = ['NODE_OPTIONS', 'NODE_EXTRA_CA_CERTS'];

/** The environment to start the launcher with, from the jobs' environment. */
export function launcherEnvironment(jobEnv: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env = { ...jobEnv };
  for (const name of SET_ASIDE) {
    if (env[name] === undefined) continue;
    env[PREFIX + name] = env[name];
    delete env[name];
  }
  return env;
}

/** The jobs' environment, from the launcher's own. */
export function jobEnvironmentOf(launcherEnv: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(launcherEnv)) {
    if (name.startsWith(PREFIX)) env[name.slice(PREFIX.length)] = value;
    else env[name] ??= value;
  }
  return env;
}
