import type { ChaosReport } from './chaos.js';

// The chaos run's printout: the jobs, the faults of each kind, and every check with what broke it.

function counts(map: Map<string, number>): string {
  const parts = [...map].filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`);
  return parts.length ? parts.join(', ') : 'none';
}

export function replayCommand(report: Pick<ChaosReport, 'seed' | 'minutes'> & { nodes?: number }): string {
  return `npm run chaos -- --seed ${report.seed} --minutes ${report.minutes}${report.nodes && report.nodes > 1 ? ` --nodes ${report.nodes}` : ''}`;
}

export function formatReport(report: ChaosReport): string {
  const total = [...report.queued.values()].reduce((a, b) => a + b, 0);
  const faults = [...report.faults.values()].reduce((a, b) => a + b, 0);
  const lines = [
    '',
    `Chaos run, seed ${report.seed}, ${report.minutes} min budget, ${report.nodes} node${report.nodes > 1 ? 's' : ''}, ${(report.elapsedMs / 1000).toFixed(0)}s in all${report.settled ? '' : ' (did NOT settle in time)'}`,
    `  jobs queued   ${total}: ${counts(report.queued)}${report.queueFailures ? ` (${report.queueFailures} queue commands failed and were repeated)` : ''}`,
    `  jobs ended    ${counts(report.byState)}`,
    `  runs recorded ${counts(report.runs)} (${report.hostGivenUp} ended as their host was given up on); runs in the ledger ${report.ledgerLines}`,
    `  faults        ${faults}:`,
    ...[...report.faults].map(([kind, n]) => `    ${kind.padEnd(22)} ${n}`),
    '  checks',
  ];
  for (const check of report.checks) {
    lines.push(`    ${check.ok ? 'ok  ' : 'FAIL'} ${check.name}`);
    for (const problem of check.problems) lines.push(`           ${problem}`);
  }
  if (report.evidenceDir) lines.push(`  evidence kept in ${report.evidenceDir} (jobs.json, ledger, state/supervisor.log, state/runs)`);
  lines.push(report.ok ? `All checks hold (seed ${report.seed}).` : `Checks FAILED with seed ${report.seed}. Replay: ${replayCommand(report)}`);
  return lines.join('\n');
}
