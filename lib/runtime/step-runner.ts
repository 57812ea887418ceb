// Entry point for one Function step of a Local job: `node step-runner.js JOB_DIR STEP`.
// The job script runs it in the job's directory with the job's environment; anything the
// function prints goes to the step's log. Exit code 0: the outputs are stored.
import { runFunctionStep } from './function-step.js';

const [jobDir, step] = process.argv.slice(2);
runFunctionStep(jobDir, Number(step)).then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    process.exit(1);
  },
);
