// Runs at `npm install` (the prepare script): builds native/ (the local launcher's posix_spawn,
// native/spawn.c) with node-gyp, which npm carries. It never fails the install: without a C
// compiler, or Node's headers, local jobs start with node's own spawn, which works the same and
// costs the launcher some 3 ms more per job. `npm run build-native` tries again.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const dir = fileURLToPath(new URL('../native/', import.meta.url));
const say = (text) => process.stderr.write(`jobmanager: ${text}\n`);

// npm tells its scripts where its node-gyp is; run by hand, the one npm carries beside this
// node, or else one on PATH.
const prefix = join(dirname(process.execPath), '..');
const besideNode = join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
const gyp = process.env.npm_config_node_gyp || (existsSync(besideNode) ? besideNode : null);
// Node's headers: npm says where (its nodedir setting); else those installed with this node, if
// any (node-gyp would download them otherwise).
const nodedir = process.env.npm_config_nodedir ? [] : existsSync(join(prefix, 'include', 'node', 'node_api.h')) ? [`--nodedir=${prefix}`] : [];
const [command, args] = gyp ? [process.execPath, [gyp, 'rebuild', ...nodedir]] : ['node-gyp', ['rebuild', ...nodedir]];
const build = spawnSync(command, args, { cwd: dir, encoding: 'utf8' });
if (build.status !== 0) {
  const output = `${build.stdout ?? ''}${build.stderr ?? ''}`.trim().split('\n').filter((line) => line.trim() && !/^gyp (info|ERR! (stack|System|command|cwd|node -v|node-gyp -v|not ok))/.test(line));
  say(`could not build the launcher's posix_spawn in ${dir} (${build.error?.message ?? `node-gyp exited with ${build.status}`}):`);
  for (const line of output.slice(-8)) say(`  ${line}`);
  say('local jobs will start with node\'s own spawn: the same behaviour, about 3 ms more CPU per job.');
  say('With a C compiler and python3 installed: npm run build-native');
}
