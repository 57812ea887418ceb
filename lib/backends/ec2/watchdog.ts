import { createHash } from 'node:crypto';
import { shq } from '../../util/shell.js';

// The instance's own guard (issue 9: no instance outlives its use, even when the supervisor dies).
// One POSIX sh process on each instance, started over SSH when the instance is readied and again
// whenever the provisioner finds it gone, detached from the SSH session (its own session, HUP
// ignored), so neither a dropped connection nor a dead supervisor stops it.
//
//   provisioner (every renewal: tendScript)          instance: ~/.jobmanager/<deployment>/instance-<id>/
//   ──────────────────────────────────────           ─────────────────────────────────────────────
//   writes a new value into lease ──────────────▶    watchdog, every second:
//   starts the watchdog if its pid is gone            lease changed, or a job of the instance alive?
//   reads instance-action (a spot notice) ◀──┐          -> active now
//                                            │        inactive for IdleLimit -> ShutdownCommand
//                                            └──────  spot: IMDSv2 spot/instance-action, when it
//                                                     answers, into instance-action
//
// "A job alive": a run the host's run logs (~/.jobmanager/<deployment>/*/ec2-<id>/run.log) show
// started (F <run> <pid>) and not ended (X, K), whose process still exists. The lease is compared
// for change only, by the instance's own clock (kernel uptime): no two clocks are compared.
// The instance was launched with InstanceInitiatedShutdownBehavior terminate, so its shutdown
// ends it for good. A shutdown command that fails (no sudo rights, say) is tried again a minute
// later. A newer watchdog (another version, or a race between two starts) takes over by
// writing its pid: the older one sees it and leaves.
//
// Files: watchdog-<hash>.sh (this script), watchdog.pid, lease, shutdown-command,
// instance-action (the spot notice, as IMDS gave it), watchdog.log.

const WATCHDOG = `# JobManager instance watchdog (lib/backends/ec2/watchdog.ts)
D=$1 LIMIT=$2 ID=$3 SPOT=$4 IMDS=$5 RUNLOGS=$6
cd "$D" || exit 1
trap '' HUP
echo $$ >watchdog.pid
now() { if [ -r /proc/uptime ]; then read NOW REST </proc/uptime; NOW=\${NOW%.*}; else NOW=$(date +%s); fi; }
runs() {
  for f in $RUNLOGS; do
    [ -f "$f" ] || continue
    for p in $(awk '$1=="F"{p[$2]=$3} $1=="X"||$1=="K"{delete p[$2]} END{for(r in p) print p[r]}' "$f"); do
      case $p in ''|*[!0-9]*) continue;; esac
      kill -0 "$p" 2>/dev/null && echo "$p"
    done
  done
}
imds() {
  if command -v curl >/dev/null 2>&1; then
    T=$(curl -sf -m 2 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 300' "$IMDS/latest/api/token") || return 1
    curl -sf -m 2 -H "X-aws-ec2-metadata-token: $T" "$IMDS/latest/meta-data/$1"
  else
    T=$(wget -q -T 2 -O - --method=PUT --header='X-aws-ec2-metadata-token-ttl-seconds: 300' "$IMDS/latest/api/token") || return 1
    wget -q -T 2 -O - --header="X-aws-ec2-metadata-token: $T" "$IMDS/latest/meta-data/$1"
  fi
}
now; last=$NOW seen= n=0
while :; do
  now
  L=; [ -f lease ] && read L <lease
  [ "$L" = "$seen" ] || { seen=$L; last=$NOW; }
  [ -n "$(runs)" ] && last=$NOW
  if [ "$SPOT" = 1 ] && [ ! -s instance-action ] && [ $((n % 2)) = 0 ]; then
    A=$(imds spot/instance-action) && [ -n "$A" ] && printf '%s\\n' "$A" >instance-action.tmp && mv instance-action.tmp instance-action
  fi
  if [ $((NOW - last)) -ge "$LIMIT" ]; then
    echo "$(date) no job and no lease renewal for $((NOW - last))s: shutting down" >>watchdog.log
    JM_INSTANCE_ID=$ID sh ./shutdown-command >>watchdog.log 2>&1
    last=$((NOW - LIMIT + 60))
  fi
  n=$((n + 1))
  sleep 1
  p=; read p <watchdog.pid
  [ "$p" = "$$" ] || exit 0
done
`;

const WATCHDOG_FILE = `watchdog-${createHash('sha256').update(WATCHDOG).digest('hex').slice(0, 12)}.sh`;

export interface WatchdogSettings {
  deployment: string;
  instanceId: string;
  /** No job and no renewal this long: the instance shuts itself down. */
  idleLimitMs: number;
  spot: boolean;
  /** The metadata service as the instance reaches it. */
  metadataEndpoint: string;
  shutdownCommand: string;
}

/**
 * The directory of the watchdog's files (sh, under the login's home), named by the instance: homes
 * shared between machines (NFS, or the loopback instances of the specs) keep them apart.
 */
function instanceDir(deployment: string, instanceId: string): string {
  return `"$HOME"/.jobmanager/${shq(deployment)}/instance-${shq(instanceId)}`;
}

/**
 * One renewal, as a single exec: a new lease value, the watchdog started if it is not running,
 * and the spot notice read back. Prints `STARTED` when it started the watchdog and
 * `NOTICE <json>` when a notice is there.
 */
export function tendScript(settings: WatchdogSettings, leaseValue: string): string {
  const runLogs = `$HOME/.jobmanager/${settings.deployment}/*/ec2-${settings.instanceId}/run.log`;
  const args = [
    '"$D"', String(Math.ceil(settings.idleLimitMs / 1000)), shq(settings.instanceId), settings.spot ? '1' : '0',
    shq(settings.metadataEndpoint), `"$HOME"/${shq(runLogs.slice('$HOME/'.length))}`,
  ].join(' ');
  const start = `sh ${WATCHDOG_FILE} ${args} </dev/null >/dev/null 2>&1 &`;
  return [
    `D=${instanceDir(settings.deployment, settings.instanceId)}`,
    'mkdir -p "$D" && cd "$D" || exit 1',
    `[ -f ${WATCHDOG_FILE} ] || printf '%s' ${shq(WATCHDOG)} >${WATCHDOG_FILE}`,
    `echo ${shq(leaseValue)} >lease`,
    'p=; [ -f watchdog.pid ] && read p <watchdog.pid',
    'if [ -z "$p" ] || ! kill -0 "$p" 2>/dev/null; then',
    `  printf '%s\\n' ${shq(settings.shutdownCommand)} >shutdown-command`,
    `  if command -v setsid >/dev/null 2>&1; then ( setsid ${start} ); else ( trap '' HUP; ${start} ); fi`,
    '  echo STARTED',
    'fi',
    '[ -s instance-action ] && { printf "NOTICE "; cat instance-action; }',
    'exit 0',
  ].join('\n');
}

/** Kills every run of the instance still going (its process group, else the process): sh. */
export function killRunsScript(deployment: string, instanceId: string): string {
  return [
    `for f in "$HOME"/.jobmanager/${shq(deployment)}/*/ec2-${shq(instanceId)}/run.log; do`,
    '  [ -f "$f" ] || continue',
    `  for p in $(awk '$1=="F"{p[$2]=$3} $1=="X"||$1=="K"{delete p[$2]} END{for(r in p) print p[r]}' "$f"); do`,
    '    case $p in \'\'|*[!0-9]*) continue;; esac',
    '    kill -KILL -"$p" 2>/dev/null || kill -KILL "$p" 2>/dev/null',
    '  done',
    'done',
    'exit 0',
  ].join('\n');
}
