import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { DIST_DIR } from '../../lib/util/paths.js';

// Runs the real command line in a child process, as a user would: the executable's entry point.

export const CLI_MAIN = join(DIST_DIR, 'bin', 'jobmanager.js');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `watch`, if given, sees the output so far each time more arrives (to act on it live). */
export function runCli(args: string[], env: NodeJS.ProcessEnv, cwd?: string, watch?: (stdout: string, stderr: string) => void): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI_MAIN, ...args], { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      watch?.(stdout, stderr);
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
      watch?.(stdout, stderr);
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
