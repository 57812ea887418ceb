import { createRequire } from 'node:module';
import type { DestinationStream, Logger as Pino, StreamEntry } from 'pino';
import type { LogLevel } from '../config/config.js';
import { RotatingDestination, type LogRotation } from './log-rotation.js';

// Logging. Actors post log lines to the supervisor (CallbackLogger → a `log` message), which is
// the only writer of the supervisor log (FileLogger), and of stderr when it runs in the
// foreground:
//
//   actor thread                         supervisor (main thread)
//   log.info(msg, {job}) ─ redact ─▶ post ─▶ FileLogger.write ─ redact ─▶ pino ─┬▶ supervisor.log (JSON lines)
//                                                                              └▶ stderr (pretty on a terminal)
//
// A line of supervisor.log is one JSON object: time, level, actor (manager, starter, fetcher,
// supervisor, or web for its web page), job (when the line is about one job), any other fields given, and msg, whose text
// keeps the old tool's names (`JobManager: …`, `JobStarter: …`, `ResultFetcher: …`). Every
// message and field passes through redact(), so a secret that slips into a line (a Redis password
// in a URL, an AWS secret, a private key) never reaches a file.

// pino (and pino-pretty) are loaded by the one process that writes the log, when it opens it:
// every actor thread and every command imports this file for Logger and CallbackLogger, and
// need neither.
const load = createRequire(import.meta.url);
const pinoModule = (): typeof import('pino') => load('pino') as typeof import('pino');

/** Structured facts about a line; `job` is the id of the job it is about. */
export type LogFields = Record<string, string | number | boolean | null | undefined>;

export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
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

function redactFields(fields: LogFields): LogFields {
  const out: LogFields = {};
  for (const [key, value] of Object.entries(fields)) out[key] = typeof value === 'string' ? redact(value) : value;
  return out;
}

/**
 * Lines written before their callers passed fields name their job in the text ("ResultFetcher:
 * job 12: …", "started job 12 run 3"): the job field is taken from there, so that every line
 * about one job can be found by it.
 */
const JOB_IN_TEXT = /\bjob (\d+)\b/;

/**
 * The log file, opened for appending. Writes are synchronous: a line is on disk when write()
 * returns, so a kill -9 right after it loses nothing and a reader sees it at once. With
 * `rotation`, it is rotated by size (log-rotation.ts: SonicBoom's reopen() after a rename).
 */
export function logFileDestination(file: string, rotation?: LogRotation): DestinationStream {
  const destination = pinoModule().destination({ dest: file, sync: true, mkdir: true, append: true });
  // A full disk or a removed directory must not stop the supervisor: the line is lost, not the process.
  destination.on('error', () => {});
  return rotation ? new RotatingDestination(file, destination, rotation) : destination;
}

/** Lines for people: `[12:00:01.234] INFO: manager    JobManager: watching Job_Queue`, in colour. */
function prettyStderr(): DestinationStream {
  const pretty = load('pino-pretty') as typeof import('pino-pretty').PinoPretty;
  return pretty({
    destination: 2,
    sync: true,
    colorize: true,
    translateTime: 'SYS:HH:MM:ss.l',
    messageFormat: (line, messageKey) => `${String(line.actor ?? '').padEnd(10)} ${String(line[messageKey])}`,
    ignore: 'actor,job',
    singleLine: true,
  });
}

/** Writes JSON lines to a file, and to stderr when echoing (pretty on a terminal): the supervisor's logger. */
export class FileLogger implements Logger {
  private readonly pino: Pino;
  private readonly fileStream: (DestinationStream & { end(): void }) | null;
  private closed = false;

  constructor(
    file: string | null,
    private readonly threshold: LogLevel,
    private readonly source: string,
    echo: boolean,
    rotation?: LogRotation,
  ) {
    const pino = pinoModule();
    this.fileStream = file ? (logFileDestination(file, rotation) as DestinationStream & { end(): void }) : null;
    const streams = [this.fileStream, echo ? (process.stderr.isTTY ? prettyStderr() : pino.destination({ fd: 2, sync: true })) : null];
    const entries: StreamEntry[] = streams.filter((s) => s !== null).map((stream) => ({ level: threshold, stream }));
    this.closed = entries.length === 0;
    this.pino = pino(
      {
        level: threshold,
        base: null,
        timestamp: pino.stdTimeFunctions.isoTime,
        formatters: { level: (label) => ({ level: label }) },
      },
      pino.multistream(entries),
    );
  }

  /** A line from `actor` (an actor's name, or the supervisor). */
  write(level: LogLevel, actor: string, message: string, fields: LogFields = {}): void {
    if (this.closed || !enabled(level, this.threshold)) return;
    const { actor: _ignored, ...rest } = redactFields(fields);
    const entry: LogFields = { actor, ...rest };
    if (entry.job === undefined) {
      const named = JOB_IN_TEXT.exec(message);
      if (named) entry.job = named[1];
    }
    this.pino[level](entry, redact(message));
  }

  debug(m: string, fields?: LogFields): void { this.write('debug', this.source, m, fields); }
  info(m: string, fields?: LogFields): void { this.write('info', this.source, m, fields); }
  warn(m: string, fields?: LogFields): void { this.write('warn', this.source, m, fields); }
  error(m: string, fields?: LogFields): void { this.write('error', this.source, m, fields); }

  /** Closes the log file (its lines are already written: writes are synchronous); later lines are dropped. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.fileStream?.end();
  }
}

/** An actor's logger: redacts, then hands the line and its fields to `emit` (a message to the supervisor). */
export class CallbackLogger implements Logger {
  constructor(
    private readonly threshold: LogLevel,
    private readonly emit: (level: LogLevel, message: string, fields?: LogFields) => void,
  ) {}
  private write(level: LogLevel, message: string, fields?: LogFields): void {
    if (enabled(level, this.threshold)) this.emit(level, redact(message), fields && redactFields(fields));
  }
  debug(m: string, fields?: LogFields): void { this.write('debug', m, fields); }
  info(m: string, fields?: LogFields): void { this.write('info', m, fields); }
  warn(m: string, fields?: LogFields): void { this.write('warn', m, fields); }
  error(m: string, fields?: LogFields): void { this.write('error', m, fields); }
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };
