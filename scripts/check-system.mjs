// Runs at `npm install` (after the TypeScript build): makes sure the programs JobManager needs
// at run time are there. redis-server is installed from the system's packages when that can be
// done without asking (root, or sudo without a password); otherwise this says what to run.
// It never fails the install: a missing program is reported again, clearly, when it is needed.
import { spawnSync } from 'node:child_process';

const has = (cmd, args = ['--version']) => !spawnSync(cmd, args, { stdio: 'ignore' }).error;
const say = (text) => process.stderr.write(`jobmanager: ${text}\n`);

if (!has('redis-server')) {
  const root = process.getuid?.() === 0;
  const sudo = !root && spawnSync('sudo', ['-n', 'true'], { stdio: 'ignore' }).status === 0;
  if ((root || sudo) && has('apt-get', ['--version'])) {
    say('redis-server is missing; installing it with apt-get (the embedded default runs its own)');
    const prefix = root ? [] : ['sudo', '-n'];
    const install = (args) => spawnSync(prefix[0] ?? 'apt-get', [...prefix.slice(1), ...(prefix.length ? ['apt-get'] : []), ...args], { stdio: 'inherit' }).status === 0;
    if (!install(['install', '-y', 'redis-server'])) {
      install(['update']);
      install(['install', '-y', 'redis-server']);
    }
  }
  if (!has('redis-server')) {
    say('redis-server is missing. Install it (Debian/Ubuntu: sudo apt-get install redis-server),');
    say('or point JobManager at a Redis you run: Redis.Url in jobmanager.yaml, or JM_REDIS_URL.');
  }
}
