// What a bench row reports, and how the table is printed. A row is one line of issue 10's table:
// what JobManager did, and what the reference did in the same run, with the ratio between them
// (the machine's speed cancels out of the ratio; the load on it does not).

export type Unit = 'jobs/s' | 's' | 'ms' | 'MB' | 'KB' | 'B';

export interface Figure {
  label: string;
  value: number | null;
  unit: Unit;
}

export interface Row {
  /** The name `--only` takes. */
  id: string;
  measure: string;
  jobmanager: Figure[];
  reference: Figure[];
  /** How the two compare, in words ("0.45× xargs' time"). */
  comparison: string[];
  /** Raw figures for --json (every run, every sample count). */
  details?: Record<string, unknown>;
  skipped?: string;
}

export function figure(label: string, value: number | null, unit: Unit): Figure {
  return { label, value, unit };
}

export function formatValue(value: number | null, unit: Unit): string {
  if (value === null || !Number.isFinite(value)) return 'n/a';
  switch (unit) {
    case 'jobs/s': return `${Math.round(value).toLocaleString('en-US')} jobs/s`;
    case 's': return `${value.toFixed(2)} s`;
    case 'ms': return `${value < 10 ? value.toFixed(2) : value.toFixed(1)} ms`;
    case 'MB': return `${value.toFixed(0)} MB`;
    case 'KB': return `${value.toFixed(2)} KB`;
    case 'B': return `${Math.round(value)} B`;
  }
}

/** "×" ratios to two places; null when either side is missing. */
export function ratio(a: number | null, b: number | null): string {
  return a === null || b === null || !(b > 0) ? 'n/a' : `${(a / b).toFixed(2)}×`;
}

const cell = (figures: Figure[]) => figures.map((f) => `${f.label} ${formatValue(f.value, f.unit)}`).join('; ') || '—';

/** The table, as Markdown (it reads as text and pastes into an issue or the README). */
export function formatTable(rows: Row[]): string {
  const lines = ['| measure | JobManager | reference, same run | comparison |', '|---|---|---|---|'];
  for (const row of rows) {
    if (row.skipped) lines.push(`| ${row.measure} | skipped: ${row.skipped} | | |`);
    else lines.push(`| ${row.measure} | ${cell(row.jobmanager)} | ${cell(row.reference)} | ${row.comparison.join('; ') || '—'} |`);
  }
  return lines.join('\n');
}
