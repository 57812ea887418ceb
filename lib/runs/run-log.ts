import { closeSync, openSync, readSync } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';

// The run log: an append-only file per launcher (StateDir/runs/<epoch>.log) that the launcher
// and the jobs' own scripts write and the fetcher reads, and one per remote host that the jobs
// there write (read through `tail -F` over SSH). Formats: lib/backends/local/launcher-main.ts and
// lib/backends/job-script.ts. A run id is "<job id>.<run number>". Lines written without a time get
// the time the fetcher reads them.

export type RunLogEvent =
  | { kind: 'launcher'; pid: number; at: number }
  | { kind: 'forked'; runId: string; pid: number; at: number | null }
  | { kind: 'notStarted'; runId: string; reason: string }
  | { kind: 'reaped'; runId: string; status: number; at: number }
  | { kind: 'inputClosed'; at: number }
  | { kind: 'quit'; at: number }
  | { kind: 'step'; runId: string; step: number; exitCode: number; at: number | null }
  | { kind: 'exit'; runId: string; exitCode: number; returnsData: boolean }
  /** Remote: its launch reached the host `ageCs` centiseconds after it was sent, too late to start. */
  | { kind: 'refused'; runId: string; ageCs: number }
  /** Remote: the host's watchdog stopped it (SIGSTOP), the lease having lapsed (remote/watchdog.ts). */
  | { kind: 'stopped'; runId: string; pid: number; at: number };

export function runId(jobId: string, run: number): string {
  return `${jobId}.${run}`;
}

export function splitRunId(id: string): { jobId: string; run: number } {
  const dot = id.lastIndexOf('.');
  return { jobId: id.slice(0, dot), run: Number(id.slice(dot + 1)) };
}

/** Exit code and signal from a wait(2) status, as the launcher's R line gives it. */
export function decodeWaitStatus(status: number): { exitCode: number | null; signal: number | null } {
  const signal = status & 0x7f;
  return signal === 0 ? { exitCode: (status >> 8) & 0xff, signal: null } : { exitCode: null, signal };
}

export function parseRunLogLine(line: string): RunLogEvent | null {
  const f = line.split(' ');
  const int = (i: number) => Number.parseInt(f[i], 10);
  const time = (i: number) => (Number.isFinite(int(i)) ? int(i) : null);
  switch (f[0]) {
    case 'P': return { kind: 'launcher', pid: int(1), at: int(2) };
    case 'F': return { kind: 'forked', runId: f[1], pid: int(2), at: time(3) };
    case 'K': return { kind: 'notStarted', runId: f[1], reason: f.slice(2).join(' ') };
    case 'R': return { kind: 'reaped', runId: f[1], status: int(2), at: int(3) };
    case 'E': return { kind: 'inputClosed', at: int(1) };
    case 'Q': return { kind: 'quit', at: int(1) };
    case 'D': return { kind: 'step', runId: f[1], step: int(2), exitCode: int(3), at: time(4) };
    case 'X': return { kind: 'exit', runId: f[1], exitCode: int(2), returnsData: f[3] === 'r' };
    case 'N': return { kind: 'refused', runId: f[1], ageCs: int(2) };
    case 'Z': return { kind: 'stopped', runId: f[1], pid: int(2), at: int(3) };
    default: return null;
  }
}

/** Splits a stream of run log text into events, a complete line at a time. */
export class RunLogParser {
  private partial = '';
  /** Bytes of complete lines consumed so far. */
  consumed = 0;
  push(text: string): RunLogEvent[] {
    const all = this.partial + text;
    const end = all.lastIndexOf('\n');
    if (end < 0) {
      this.partial = all;
      return [];
    }
    this.partial = all.slice(end + 1);
    const complete = all.slice(0, end);
    this.consumed += Buffer.byteLength(complete) + 1;
    const events: RunLogEvent[] = [];
    for (const line of complete.split('\n')) {
      const event = parseRunLogLine(line);
      if (event) events.push(event);
    }
    return events;
  }
}

/** Reads a run log from an offset, a complete line at a time. Keeps the file open. */
export class RunLogReader {
  private readonly parser = new RunLogParser();
  private readonly decoder = new StringDecoder('utf8');
  private readonly buffer = Buffer.alloc(256 * 1024);
  private fd: number | null = null;
  private position: number;

  constructor(
    readonly path: string,
    offset = 0,
  ) {
    this.position = offset;
    this.parser.consumed = offset;
  }

  /** Bytes of complete lines read so far. */
  get offset(): number {
    return this.parser.consumed;
  }

  /** Events appended since the last call (none if the file does not exist yet). */
  readNew(): RunLogEvent[] {
    if (this.fd === null) {
      try {
        this.fd = openSync(this.path, 'r');
      } catch {
        return [];
      }
    }
    const events: RunLogEvent[] = [];
    for (;;) {
      const n = readSync(this.fd, this.buffer, 0, this.buffer.length, this.position);
      if (n <= 0) break;
      this.position += n;
      events.push(...this.parser.push(this.decoder.write(this.buffer.subarray(0, n))));
      if (n < this.buffer.length) break;
    }
    return events;
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}
