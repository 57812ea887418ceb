import cliProgress from 'cli-progress';
import { formatDuration } from '../util/duration.js';

// Progress on stderr while a command waits (`run`, `queue --wait`, `wait`, `stop`), drawn by
// cli-progress. On a terminal: a bar that redraws in place, with the counts by state and an ETA
// that cli-progress estimates from the recent rate of ends. Elsewhere (a pipe, a log file, CI): a
// plain line at most every PLAIN_EVERY_MS, so a long wait leaves a readable trace, not a flood.
// stdout stays for the result, so `run ... > results.txt` holds only the table.

const PLAIN_EVERY_MS = 5000;
/** Updates the ETA is averaged over: a batch of ends must not swing it wildly. */
const ETA_UPDATES = 50;

export interface ProgressOptions {
  /** false: show nothing (--json, or the caller wants quiet). */
  enabled: boolean;
  /** Draw a bar of value/total and an ETA; false: only the text and the time spent. */
  bar: boolean;
  stream?: NodeJS.WriteStream;
}

interface Payload {
  text: string;
}

export class Progress {
  private readonly bar: cliProgress.SingleBar | null;
  private started = false;

  constructor(private readonly options: ProgressOptions) {
    const stream = options.stream ?? process.stderr;
    this.bar = options.enabled
      ? new cliProgress.SingleBar({
          stream: stream.isTTY ? stream : (new ChangedLines(stream) as unknown as NodeJS.WriteStream),
          format: (opts, params, payload: Payload) => this.format(opts, params, payload, Boolean(stream.isTTY)),
          noTTYOutput: true,
          notTTYSchedule: PLAIN_EVERY_MS,
          etaBuffer: ETA_UPDATES,
          etaAsynchronousUpdate: true,
          fps: 5,
          hideCursor: false,
          clearOnComplete: true,
          barsize: 24,
        })
      : null;
  }

  /** `value` of `total` done (ignored without a bar), and what to say about it. */
  update(value: number, total: number, text: string): void {
    if (!this.bar) return;
    if (!this.started) {
      this.started = true;
      this.bar.start(total, value, { text } satisfies Payload);
      return;
    }
    this.bar.setTotal(total);
    this.bar.update(value, { text } satisfies Payload);
  }

  /** Draws the last state (a plain line elsewhere than on a terminal) and stops the timer. */
  done(): void {
    if (this.bar && this.started) this.bar.stop();
    this.started = false;
  }

  private format(opts: cliProgress.Options, params: cliProgress.Params, payload: Payload, tty: boolean): string {
    const elapsed = formatDuration(Date.now() - params.startTime);
    if (!this.options.bar) return `${payload.text} ${elapsed}`;
    const eta = typeof params.eta === 'number' && params.value > 0 ? formatDuration(params.eta * 1000) : '-';
    const counts = `${params.value}/${params.total} done · ${payload.text} · ETA ${params.value >= params.total ? '0s' : eta}`;
    if (!tty) return counts;
    const size = opts.barsize ?? 24;
    const filled = Math.round(Math.min(1, params.progress) * size);
    return `${'█'.repeat(filled)}${'░'.repeat(size - filled)} ${counts}`;
  }
}

/**
 * Off a terminal, cli-progress writes its line every PLAIN_EVERY_MS whether or not it changed (and
 * once more when it stops): this passes on only the lines that differ from the one before.
 */
class ChangedLines {
  readonly isTTY = false;
  private pending = '';
  private last: string | null = null;
  constructor(private readonly stream: NodeJS.WritableStream) {}
  write(text: string): boolean {
    this.pending += text;
    for (let end = this.pending.indexOf('\n'); end >= 0; end = this.pending.indexOf('\n')) {
      const line = this.pending.slice(0, end);
      this.pending = this.pending.slice(end + 1);
      if (line !== this.last) this.stream.write(`${line}\n`);
      this.last = line;
    }
    return true;
  }
}
