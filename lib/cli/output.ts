import { formatDuration } from '../util/duration.js';

// How the command line prints: aligned tables for people, JSON for scripts (--json). Progress
// while waiting is progress.ts.

export interface Output {
  json: boolean;
  line(text?: string): void;
  data(value: unknown): void;
  error(text: string): void;
}

export function consoleOutput(json: boolean): Output {
  return {
    json,
    line: (text = '') => process.stdout.write(text + '\n'),
    data: (value) => process.stdout.write(JSON.stringify(value, null, 2) + '\n'),
    error: (text) => process.stderr.write(text + '\n'),
  };
}

export function table(headers: string[], rows: (string | number | null | undefined)[][], maxWidths: number[] = []): string {
  const cells = rows.map((row) => row.map((cell, i) => clip(cell === null || cell === undefined ? '-' : String(cell), maxWidths[i])));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((row) => (row[i] ?? '').length)));
  const render = (row: string[]) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]))).join('  ').trimEnd();
  return [render(headers), ...cells.map(render)].join('\n');
}

function clip(text: string, max: number | undefined): string {
  const oneLine = text.replace(/\s*\n\s*/g, ' ');
  return max && oneLine.length > max ? oneLine.slice(0, max - 1) + '…' : oneLine;
}

export function age(since: number | null, now = Date.now()): string {
  return since === null ? '-' : formatDuration(now - since);
}

export function took(start: number | null, end: number | null): string {
  return start === null || end === null ? '-' : formatDuration(end - start);
}

export function timestamp(ms: number | null): string {
  if (ms === null) return '-';
  const d = new Date(ms);
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}
