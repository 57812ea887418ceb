#!/usr/bin/env node
import { fileURLToPath } from 'node:url';
import { main } from '../lib/cli/main.js';

// The executable: the command line (lib/cli) given the supervisor (actors/). It is the one place
// where the two meet, so that lib/ never imports from actors/. The supervisor is loaded only by
// the commands that start one. The process ends by itself when the command has closed what it
// opened (no forced exit: a handle left open is a bug to find).

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
