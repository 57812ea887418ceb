import { appendFileSync } from 'node:fs';
import type { LogLevel } from '../config/config.js';

// Logging. Actors post log lines to the supervisor, which is the only writer of the supervisor
// log (and of stderr when it runs in the foreground). Every line passes through redact(), so a
// secret that slips into a message (a Redis password in a URL, an AWS secret, a private key) never
// reaches a file.

export interface Logger {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export function enabled(level: LogLevel, threshold: LogLevel): boolean {
  return RANK[level] >= RANK[threshold];
}

const SECRET_PATTERNS: [RegExp, string][] = [
  [/(\w+:\/\/[^:/@\s]*:)[^@\s]+@/g, '$1***@'],
  [/-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----/g, '[private key]'],
  [/(aws_secret_access_key|AWS_SECRET_ACCESS_KEY|SecretAccessKey|secretAccessKey)(["'\s:=]+)[A-Za-z0-9/+=]{20,}/g, '$1$2***'],
  [/(password|requirepass|AUTH)(["'\s:=]+)\S+/gi, '$1$2***'],
];

export function redact(text: string): string {
  let out = text;
  for (const [pattern, replacement] of SECRET_PATTERNS) out = out.replace(pattern, replacement);
  return out;
}

export function formatLine(level: LogLevel, source: string, message: string, at = new Date()): string {
  return `${at.toISOString()} ${level.toUpperCase().padEnd(5)} ${source.padEnd(10)} ${redact(message)}\n`;
}

/** Writes to a file (and optionally stderr): the supervisor's logger. */
export class FileLogger implements Logger {
  constructor(
    private readonly file: string | null,
    private readonly threshold: LogLevel,
    private readonly source: string,
    private readonly echo: boolean,
  ) {}
  write(level: LogLevel, source: string, message: string): void {
    if (!enabled(level, this.threshold)) return;
    const line = formatLine(level, source, message);
    if (this.file) {
      try {
        appendFileSync(this.file, line);
      } catch {
        // a full disk must not stop the supervisor
      }
    }
    if (this.echo) process.stderr.write(line);
  }
  debug(m: string): void { this.write('debug', this.source, m); }
  info(m: string): void { this.write('info', this.source, m); }
  warn(m: string): void { this.write('warn', this.source, m); }
  error(m: string): void { this.write('error', this.source, m); }
}

export class CallbackLogger implements Logger {
  constructor(
    private readonly threshold: LogLevel,
    private readonly emit: (level: LogLevel, message: string) => void,
  ) {}
  private write(level: LogLevel, message: string): void {
    if (enabled(level, this.threshold)) this.emit(level, redact(message));
  }
  debug(m: string): void { this.write('debug', m); }
  info(m: string): void { this.write('info', m); }
  warn(m: string): void { this.write('warn', m); }
  error(m: string): void { this.write('error', m); }
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };
