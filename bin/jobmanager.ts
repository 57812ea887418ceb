#!/usr/bin/env node
import { fileURLToPath } from 'node:url';
import { main } from '../lib/cli/main.js';

// The executable: the command line (lib/cli) given the supervisor (actors/). It is the one place
// where the two meet, so that lib/ never imports from actors/. The supervisor is loaded only by
// the commands that start one. The process ends by itself when the command has closed what it
// opened (no forced exit: a handle left open is a bug to find).

// A reader that goes away (`jobmanager jobs | head`) is not an error: what is left to print is
// dropped, and the command goes on to its end (`run` still stops the supervisor it started).
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
  });
}

main(process.argv.slice(2), {
  entry: fileURLToPath(import.meta.url),
  createSupervisor: async (config, options) => new (await import('../actors/supervisor.js')).Supervisor(config, options),
}).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`jobmanager: unexpected error: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(70);
  },
);
