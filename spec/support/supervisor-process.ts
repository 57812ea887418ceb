import { spawn, type ChildProcess } from 'node:child_process';
import { CLI_MAIN } from './cli.js';

// A real supervisor (`jobmanager start` in the foreground) in a child process, so that specs can
// stop it the way users do or kill -9 it at any moment. Ready when it says it is running.

const START_TIMEOUT_MS = 45_000;

export class SupervisorProcess {
  private output = '';
  private constructor(private readonly child: ChildProcess) {
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (this.output += d));
  }

  get pid(): number {
    return this.child.pid!;
  }

  get log(): string {
    return this.output;
  }

  static async start(env: NodeJS.ProcessEnv): Promise<SupervisorProcess> {
    const child = spawn(process.execPath, [CLI_MAIN, 'start'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    const supervisor = new SupervisorProcess(child);
    await new Promise<void>((resolve, reject) => {
      // A bound for a supervisor that will never be ready, not a measure: a loaded machine has
      // taken 20 s to bring the actors up. One that is not ready by then is killed, not left
      // running to keep mocha from exiting.
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`the supervisor did not start within ${START_TIMEOUT_MS / 1000}s:\n${supervisor.output}`));
      }, START_TIMEOUT_MS);
      const onData = () => {
        if (/supervisor running \(pid \d+\)/.test(supervisor.output)) {
          clearTimeout(timer);
          child.stderr!.off('data', onData);
          resolve();
        }
      };
      child.stderr!.on('data', onData);
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`the supervisor exited with code ${code}:\n${supervisor.output}`));
      });
    });
    return supervisor;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  async kill9(): Promise<void> {
    if (!this.running) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.kill('SIGKILL');
    await exited;
  }

  /** As `jobmanager stop` does: SIGTERM, then wait for it to exit. */
  async stop(): Promise<number | null> {
    if (!this.running) return this.child.exitCode;
    const exited = new Promise<number | null>((resolve) => this.child.once('exit', (code) => resolve(code)));
    this.child.kill('SIGTERM');
    return exited;
  }
}
