// The environment jobs start from: the supervisor's, less the secrets the supervisor holds for
// itself (AWS credentials for EC2, the Redis URL with its password). A job that prints its
// environment must not print those into its log, its result or `--json`.

const WITHHELD = ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'JM_REDIS_URL', 'JM_REDIS_CA', 'REDISCLI_AUTH'];

export function jobEnvironment(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const copy = { ...env };
  for (const name of WITHHELD) delete copy[name];
  return copy;
}
