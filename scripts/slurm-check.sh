#!/usr/bin/env bash
# A real single-node Slurm, end to end, private to this script: it submits the README's
# job-array recipe (scripts/mortal-array.sbatch) for the quickstart scenario (4 runs,
# synthetic data, 30 epochs) as 4 tasks, cancels one task mid-run and resubmits it, merges
# the shards and checks the merged results.csv equals a single-process run of the same
# scenario (timing columns aside).
#
# The Slurm it runs is its own, beside anything else on the machine:
#  - everything lives in a temporary directory $WORK (/tmp/mortal-slurm.XXXXXX): slurm.conf
#    (used through `-f` and SLURM_CONF), state, spool, pid files, logs, and a munged with its
#    own key, socket, pid, seed and log files (slurm.conf points at that socket: AuthInfo);
#  - slurmctld and slurmd listen on free high ports picked at run time;
#  - it cancels only the jobs it submitted and ends only the daemons it started, by the pids
#    it started them with (never by name); a trap does this, and removes $WORK, on any exit;
#  - it writes nothing under /etc: it checksums /etc (every entry's path, type, mode and
#    owner, every file's content) before and after, prints both and fails if they differ.
# It needs root (slurmd runs the jobs) and installs slurm-wlm and munge with apt-get only if
# their programs are missing; that install is the package manager's and writes under /etc
# like any install, so the /etc checksum the check is held to is taken after it.
#
# It prints `SKIP slurm check: <reason>` and exits 0 where it does not run: not root;
# Slurm/munge missing with no apt-get; or a Slurm or munge already configured or running
# here (a slurm.conf in /etc/slurm, /etc/slurm-llnl, /usr/local/etc or /opt/slurm/etc,
# SLURM_CONF set, or a slurmctld, slurmd, slurmdbd, slurmstepd or munged process), since
# this may be a real site's machine. MORTAL_SLURM_CHECK_FORCE_PRIVATE=1 runs the private
# instance beside those anyway (it still touches none of them).
# MORTAL_BIN: the mortal binary (default target/release/mortal, built if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
START=$SECONDS
FORCE="${MORTAL_SLURM_CHECK_FORCE_PRIVATE:-0}"
skip() { echo "SKIP slurm check: $*"; exit 0; }

# What of a Slurm or munge is already here (one line each; nothing if none).
existing_slurm() {
  local f d pids
  for f in /etc/slurm/slurm.conf /etc/slurm-llnl/slurm.conf /usr/local/etc/slurm.conf \
    /opt/slurm/etc/slurm.conf; do
    if [ -e "$f" ]; then echo "$f exists"; fi
  done
  if [ -n "${SLURM_CONF:-}" ]; then echo "SLURM_CONF is set ($SLURM_CONF)"; fi
  for d in slurmctld slurmd slurmdbd slurmstepd munged; do
    pids="$(pgrep -x "$d" | tr '\n' ' ' || true)"
    if [ -n "$pids" ]; then echo "$d is running (pid ${pids% })"; fi
  done
}
refuse_if_existing() {
  local found
  found="$(existing_slurm)"
  [ -n "$found" ] || return 0
  if [ "$FORCE" = 1 ]; then
    echo "note: $(echo "$found" | paste -sd ';' | sed 's/;/; /g'); MORTAL_SLURM_CHECK_FORCE_PRIVATE=1: running a private instance beside it"
    return 0
  fi
  skip "a Slurm or munge is already configured or running here ($(echo "$found" | paste -sd ';' | sed 's/;/; /g')$1); set MORTAL_SLURM_CHECK_FORCE_PRIVATE=1 to run a private instance beside it"
}

# A checksum of /etc: every entry's type, mode, owner, group, path (and link target), then
# every regular file's content (unreadable files left out).
etc_sum() {
  {
    find /etc -xdev -printf '%y %m %u %g %p -> %l\n' 2>/dev/null | LC_ALL=C sort
    find /etc -xdev -type f -readable -print0 2>/dev/null | LC_ALL=C sort -z \
      | xargs -0r sha256sum 2>/dev/null
  } | sha256sum | cut -d' ' -f1 || true
}

if [ "$(id -u)" != 0 ]; then skip "needs root to run slurmd (and to install Slurm if missing)"; fi
refuse_if_existing ""
ETC_PRE_INSTALL="$(etc_sum)"
INSTALLED=0
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
  || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
  if ! command -v apt-get >/dev/null; then skip "Slurm or munge is missing and there is no apt-get to install them"; fi
  echo "installing slurm-wlm and munge with apt-get (the packages' own files go under /etc)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
  INSTALLED=1
  # An installer may start the packages' services: those are not this script's either.
  refuse_if_existing " after installing the packages"
fi

if [ -n "${MORTAL_BIN:-}" ]; then
  MORTAL="$MORTAL_BIN"
  [ -x "$MORTAL" ] || { echo "FAIL slurm check: MORTAL_BIN=$MORTAL is not an executable"; exit 1; }
else
  MORTAL="$ROOT/target/release/mortal"
  [ -x "$MORTAL" ] || cargo build --release --locked -q
fi

ETC_BEFORE="$(etc_sum)"
if [ "$INSTALLED" = 1 ]; then echo "/etc checksum before installing packages: $ETC_PRE_INSTALL"; fi
echo "/etc checksum before: $ETC_BEFORE"
ETC_DONE=0
# Pids of what this script holds: daemons it started, jobs it submitted.
MUNGED_PID="" CTLD_PID="" SLURMD_PID="" JOBS=""

WORK="$(mktemp -d /tmp/mortal-slurm.XXXXXX)"
# Traversable (not listable) so munged accepts its socket's directory; the key is 0400.
chmod 0711 "$WORK"
mkdir -m 0711 "$WORK/munge"
mkdir -m 0700 "$WORK/state" "$WORK/spool"

# Ends one of our daemons: the pid we started, only while it is still that program.
stop_pid() {
  local name="$1" pid="$2" i
  [ -n "$pid" ] || return 0
  if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ]; then
    kill "$pid" 2>/dev/null || true
    for i in $(seq 100); do
      [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ] || break
      [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ] || break
      sleep 0.1
    done
    if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ] \
      && [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]; then
      echo "$name (pid $pid) still running 10 s after SIGTERM: SIGKILL"
      kill -9 "$pid" 2>/dev/null || true
    fi
  fi
  wait "$pid" 2>/dev/null || true
}
our_jobs_left() { [ -n "$JOBS" ] && [ -n "$(squeue -h -j "$JOBS" -o %i 2>/dev/null)" ]; }
CLEANED=0
cleanup() {
  [ "$CLEANED" = 0 ] || return 0
  CLEANED=1
  local i
  if [ -n "$JOBS" ] && [ -n "$CTLD_PID" ] && our_jobs_left; then
    # shellcheck disable=SC2086
    scancel ${JOBS//,/ } 2>/dev/null || true
    for i in $(seq 60); do our_jobs_left || break; sleep 0.5; done
  fi
  stop_pid slurmd "$SLURMD_PID"
  stop_pid slurmctld "$CTLD_PID"
  stop_pid munged "$MUNGED_PID"
  SLURMD_PID="" CTLD_PID="" MUNGED_PID=""
}
on_exit() {
  local rc=$?
  set +e
  cleanup
  if [ "$rc" != 0 ]; then
    for f in munged slurmctld slurmd; do
      for g in "$WORK/$f.log" "$WORK/$f.out"; do
        if [ -s "$g" ]; then echo "--- $g (last lines)"; tail -n 15 "$g"; break; fi
      done
    done
  fi
  rm -rf "$WORK"
  if [ "$ETC_DONE" = 0 ]; then
    local after
    after="$(etc_sum)"
    echo "/etc checksum after:  $after"
    if [ "$after" != "$ETC_BEFORE" ]; then echo "FAIL slurm check: /etc changed"; rc=1; fi
  fi
  exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Two free TCP ports in 20000-29999 (below the usual ephemeral range).
read -r CTLD_PORT SLURMD_PORT < <(python3 - <<'PY'
import random, socket
ports = []
while len(ports) < 2:
    p = random.randint(20000, 29999)
    if p in ports:
        continue
    s = socket.socket()
    try:
        s.bind(("", p))
        ports.append(p)
    except OSError:
        pass
    finally:
        s.close()
print(*ports)
PY
)

# munge: this run's own key, socket, pid, seed and log files.
MUNGE_SOCK="$WORK/munge/munge.socket"
dd if=/dev/urandom of="$WORK/munge/munge.key" bs=1024 count=1 status=none
chmod 0400 "$WORK/munge/munge.key"
munged --foreground --socket="$MUNGE_SOCK" --key-file="$WORK/munge/munge.key" \
  --pid-file="$WORK/munge/munged.pid" --log-file="$WORK/munged.log" \
  --seed-file="$WORK/munge/munged.seed" >"$WORK/munged.out" 2>&1 &
MUNGED_PID=$!
for _ in $(seq 50); do [ -S "$MUNGE_SOCK" ] && break; sleep 0.1; done
[ -S "$MUNGE_SOCK" ] || { echo "FAIL slurm check: munged did not create $MUNGE_SOCK"; exit 1; }
munge --socket="$MUNGE_SOCK" -n | unmunge --socket="$MUNGE_SOCK" >/dev/null

# Slurm: one node (this machine, through 127.0.0.1), one partition, this machine's CPUs.
HOST="$(hostname -s)"
CPUS="$(nproc)"
export SLURM_CONF="$WORK/slurm.conf"
cat > "$SLURM_CONF" <<CONF
ClusterName=mortalcheck
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCK
CredType=cred/munge
StateSaveLocation=$WORK/state
SlurmdSpoolDir=$WORK/spool
SlurmctldPidFile=$WORK/slurmctld.pid
SlurmdPidFile=$WORK/slurmd.pid
SlurmctldLogFile=$WORK/slurmctld.log
SlurmdLogFile=$WORK/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MpiDefault=none
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
slurmctld -D -i -f "$SLURM_CONF" >"$WORK/slurmctld.out" 2>&1 &
CTLD_PID=$!
slurmd -D -f "$SLURM_CONF" >"$WORK/slurmd.out" 2>&1 &
SLURMD_PID=$!
for _ in $(seq 60); do sinfo -h -o %T 2>/dev/null | grep -qE 'idle|mixed' && break; sleep 1; done
sinfo
echo "private Slurm: slurmctld pid $CTLD_PID port $CTLD_PORT, slurmd pid $SLURMD_PID port $SLURMD_PORT, munged pid $MUNGED_PID, SLURM_CONF=$SLURM_CONF"

cd "$WORK"
# 30 epochs: each run lasts long enough to be cancelled in the middle; a resumable state
# after every epoch, so the resubmitted task continues its unfinished run mid-way.
export SCENARIO="$ROOT/scenarios/quickstart.toml" SHARDS=4 OUT="$WORK/q" MORTAL
export MORTAL_ARGS="--set train.epochs=30 --checkpoint-every 1"
JOB=$(sbatch --parsable --array=0-3 --output="$WORK/task-%a.out" --export=ALL "$ROOT/scripts/mortal-array.sbatch")
JOBS="$JOB"
echo "submitted array job $JOB (4 tasks)"
# The kill-and-resubmit case: cancel task 2 as soon as it runs, then submit it again.
for _ in $(seq 240); do squeue -h -j "${JOB}_2" -o %T 2>/dev/null | grep -q RUNNING && break; sleep 0.25; done
sleep 2
scancel "${JOB}_2" && echo "cancelled task 2 after 2 s of running"
wait_done() { for _ in $(seq 600); do our_jobs_left || return 0; sleep 1; done; echo "timed out"; return 1; }
wait_done
ROWS=0
[ -f "$WORK/q-shard-2/results.csv" ] && ROWS=$(($(wc -l < "$WORK/q-shard-2/results.csv") - 1))
STATES=$(find "$WORK/q-shard-2" -path '*/resume/latest' 2>/dev/null | wc -l)
echo "task 2 before resubmitting: $ROWS finished run(s), $STATES unfinished run(s) with a resumable state"
AGAIN=$(sbatch --parsable --array=2 --output="$WORK/task-%a-again.out" --export=ALL "$ROOT/scripts/mortal-array.sbatch")
JOBS="$JOB,$AGAIN"
echo "resubmitted task 2 as job $AGAIN"
wait_done

"$MORTAL" merge "$WORK/merged" "$WORK"/q-shard-* --no-plot
cleanup
"$MORTAL" run "$SCENARIO" $MORTAL_ARGS --out "$WORK/single" --no-plot -q
strip() { python3 - "$1" <<'PY'
import csv, sys
volatile = {"train_seconds", "eval_seconds", "peak_rss_mib"}
rows = list(csv.DictReader(open(sys.argv[1])))
for r in sorted(rows, key=lambda r: r["run_id"]):
    print(",".join(v for k, v in r.items() if k not in volatile))
PY
}
SAME=0
diff <(strip "$WORK/merged/results.csv") <(strip "$WORK/single/results.csv") && SAME=1
N=$(($(wc -l < "$WORK/merged/results.csv") - 1))

# Nothing of ours may be left running, and (unless told to run beside one) no Slurm or munge.
LEFT=""
if [ "$FORCE" != 1 ]; then LEFT="$(existing_slurm | grep running || true)"; fi
ETC_AFTER="$(etc_sum)"
ETC_DONE=1
echo "/etc checksum after:  $ETC_AFTER"
if [ "$ETC_AFTER" != "$ETC_BEFORE" ]; then echo "FAIL slurm check: /etc changed"; exit 1; fi
if [ -n "$LEFT" ]; then echo "FAIL slurm check: left running: $LEFT"; exit 1; fi
if [ "$SAME" != 1 ]; then echo "FAIL slurm check: merged results differ from the single-process run"; exit 1; fi
echo "OK slurm check: $N runs from 4 array tasks (task 2 cancelled and resubmitted) equal the single-process run; /etc unchanged, private daemons stopped ($((SECONDS - START)) s)"
