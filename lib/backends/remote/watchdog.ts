import { createHash } from 'node:crypto';
import { shq } from '../../util/shell.js';
import { HOST_CLOCK_SH } from './lease.js';

// The watchdog: one POSIX sh process per host and deployment (per base directory, paths.ts),
// detached like the jobs (its own session, no terminal, HUP ignored), so that neither the SSH
// connection nor the supervisor dying touches it. Each tick (1 s) it compares the lease (lease.ts)
// with the host clock; while the lease has lapsed it stops (SIGSTOP) the process group of every
// run of the base that is still going and not stopped yet, marks it stopped (frozen/<run>) and
// says so in the run log (`Z <run> <pid> <ms>`, the host's wall clock). It never resumes a run:
// only the fetcher does, having checked that the run is still its job's current one
// (reconcile.ts); a run given up on meanwhile is killed there instead.
//
// Files it reads and writes, under the base directory:
//   lease            the lease: a host clock stamp (centiseconds), written by renewals and launches
//   live/<run>       a run's process group id, written by the run as it starts; emptied at its end
//   frozen/<run>     "<pid> <ms>": stopped by the watchdog at that time (until the fetcher decides)
//   watchdog         "<pid> <stamp>": the watchdog's heartbeat, rewritten every tick
//
// Costs: one `sleep 1` a second while the host has runs; every other step is a shell builtin
// (read, echo, kill, globbing). It ends by itself once the host has had no run for a while,
// and whatever starts a run starts it again (ensureWatchdogSh below). A run registers itself
// (live/<run>) before it looks at the heartbeat, and the watchdog takes its heartbeat down
// before its last look at live/: so either the watchdog sees the new run or the run sees no
// watchdog and starts one.
//
// Live files of runs that ended are removed once they have been seen empty twice, a minute
// apart (a run writes its file once, with a pid, so one seen empty that long has ended). A run
// killed outright (no EXIT trap) leaves its pid; the watchdog empties the file once that process
// group is gone, so a pid used again later is not taken for the run.
//
// The EC2 watchdog (an instance that shuts itself down when idle and unleased) can reuse the
// lease half of this: HOST_CLOCK_SH, the lease file and its check.

const WATCHDOG = `# JobManager watchdog (lib/backends/remote/watchdog.ts): stops this host's runs when the lease lapses.
B=$1 L=$2
cd "$B" || exit 1
trap '' HUP
${HOST_CLOCK_SH}
jm_wall() { JM_T=$(date +%s%3N); case $JM_T in *N) JM_T=$(date +%s)000;; esac; }
me=$$ n=0 idle=0 empty=
stop_runs() {
  for f in live/*; do
    [ -s "$f" ] || continue
    r=\${f#live/}
    [ -e "frozen/$r" ] && continue
    p=; read p <"$f"
    case $p in ''|*[!0-9]*) continue;; esac
    kill -0 -"$p" 2>/dev/null || kill -0 "$p" 2>/dev/null || continue
    jm_wall
    echo "$p $JM_T" >"frozen/$r"
    kill -STOP -"$p" 2>/dev/null || kill -STOP "$p" 2>/dev/null
    echo "Z $r $p $JM_T" >>run.log
  done
}
tidy() {
  busy= gone= now_empty=
  for f in live/*; do
    [ -f "$f" ] || continue
    if [ -s "$f" ]; then
      p=; read p <"$f"
      case $p in ''|*[!0-9]*) : >"$f"; continue;; esac
      if kill -0 -"$p" 2>/dev/null || kill -0 "$p" 2>/dev/null; then busy=1; else : >"$f"; fi
    else
      case " $empty " in *" $f "*) gone="$gone $f";; *) now_empty="$now_empty $f";; esac
    fi
  done
  for f in frozen/*; do [ -f "$f" ] && busy=1; done
  [ -n "$gone" ] && rm -f $gone
  empty=$now_empty
}
while :; do
  jm_now
  echo "$me $JM_NOW" >watchdog
  S=0
  [ -f lease ] && read S <lease
  case $S in ''|*[!0-9]*) S=0;; esac
  if [ "$S" -gt "$JM_NOW" ] || [ $((JM_NOW - S)) -gt "$L" ]; then stop_runs; fi
  n=$((n + 1))
  if [ $((n % 60)) = 0 ]; then
    tidy
    if [ -z "$busy" ]; then idle=$((idle + 1)); else idle=0; fi
    if [ "$idle" -ge 5 ]; then
      echo "0 0" >watchdog
      tidy
      [ -z "$busy" ] && exit 0
      idle=0
    fi
  fi
  sleep 1
  p=; t=; read p t <watchdog
  [ "$p" = "$me" ] || [ "$p" = 0 ] || exit 0
done
`;

/** The watchdog's file name on a host: a new version runs beside an old one's file. */
export const WATCHDOG_FILE = `watchdog-${createHash('sha256').update(WATCHDOG).digest('hex').slice(0, 12)}.sh`;

/** The watchdog's file in the base directory `base`, and its text (for spawner.py to write). */
export function watchdogFile(base: string): [string, string] {
  return [`${base}/${WATCHDOG_FILE}`, WATCHDOG];
}

/**
 * sh that writes the watchdog's file into the base directory `baseVar` (which must exist, with
 * live/ and frozen/: WATCHDOG_DIRS) if it is missing: one printf, no process.
 */
export function installWatchdogSh(baseVar: string): string {
  return `[ -f "${baseVar}/${WATCHDOG_FILE}" ] || printf '%s' ${shq(WATCHDOG)} >"${baseVar}/${WATCHDOG_FILE}"`;
}

/** The directories the watchdog and the runs use under a base directory. */
export const WATCHDOG_DIRS = ['live', 'frozen'];

/**
 * sh that starts the watchdog of base `baseVar` (lease `leaseCs` centiseconds) unless its
 * heartbeat is fresh (under three ticks old by the host clock); with `onlyWithRuns`, only if a
 * run there is going. Needs jm_now; costs no process while the watchdog runs.
 */
export function ensureWatchdogSh(baseVar: string, leaseCs: string, onlyWithRuns = false): string {
  const run = `sh "${baseVar}/${WATCHDOG_FILE}" "${baseVar}" ${leaseCs} </dev/null >/dev/null 2>&1 &`;
  const start = `if command -v setsid >/dev/null 2>&1; then ( setsid ${run} ); else ( ${run} ); fi`;
  return [
    `JM_W=; JM_WT=0; [ -f "${baseVar}/watchdog" ] && read JM_W JM_WT <"${baseVar}/watchdog"`,
    'case $JM_WT in \'\'|*[!0-9]*) JM_WT=0;; esac',
    'jm_now',
    'if [ "$JM_WT" -gt "$JM_NOW" ] || [ $((JM_NOW - JM_WT)) -gt 300 ]; then',
    onlyWithRuns ? `  for JM_F in "${baseVar}"/live/*; do [ -s "$JM_F" ] || continue; ${start}; break; done` : `  ${start}`,
    'fi',
  ].join('\n');
}
