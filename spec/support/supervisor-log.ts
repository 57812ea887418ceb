import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { logFilesInOrder } from '../../lib/util/log-rotation.js';

// supervisor.log as specs read it: one JSON object a line (lib/util/log.ts). A line that is not
// JSON fails the spec that reads it, so every reader also checks the format.

export interface LogLine {
  time: string;
  level: 'debug' | 'info' | 'warn' | 'error';
  /** manager, starter, fetcher, supervisor, or web (the supervisor's web page). */
  actor: string;
  /** The job the line is about, if it is about one. */
  job?: string;
  msg: string;
  [field: string]: unknown;
}

export function parseLogLines(text: string, where = 'the log'): LogLine[] {
  return text.split('\n').filter((line) => line.trim() !== '').map((line, i) => {
    try {
      return JSON.parse(line) as LogLine;
    } catch {
      throw new Error(`${where}, line ${i + 1}, is not a JSON line: ${line.slice(0, 200)}`);
    }
  });
}

/**
 * The lines of StateDir/supervisor.log ([] when there is none yet), and before them those of the
 * rotated files it keeps (supervisor.log.N … .1, lib/util/log-rotation.ts), oldest first.
 */
export function supervisorLog(stateDir: string): LogLine[] {
  return logFilesInOrder(join(stateDir, 'supervisor.log')).flatMap((file) => parseLogLines(readFileSync(file, 'utf8'), file));
}

/** The messages of the lines whose message matches `pattern`. */
export function logMessages(lines: LogLine[], pattern: RegExp): string[] {
  return lines.map((line) => line.msg).filter((msg) => pattern.test(msg));
}
