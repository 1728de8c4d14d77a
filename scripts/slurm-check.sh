#!/usr/bin/env bash
# A real single-node Slurm, end to end: installs slurmctld, slurmd and munge from the
# distribution's packages if they are missing (root only), starts them on this machine,
# submits the README's job-array recipe (scripts/mortal-array.sbatch) for the quickstart
# scenario (4 runs, synthetic data, 30 epochs) with 4 tasks, cancels one task mid-run and resubmits it, merges
# the shards and checks the merged results.csv equals a single-process run of the same
# scenario (timing columns aside). Prints SKIP and exits 0 where it cannot run (not root,
# no package manager): the reason is on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
MORTAL="$ROOT/target/release/mortal"
[ -x "$MORTAL" ] || cargo build --release --locked -q

if [ "$(id -u)" != 0 ]; then echo "SKIP slurm check: needs root to install and start Slurm"; exit 0; fi
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  if ! command -v apt-get >/dev/null; then echo "SKIP slurm check: no apt-get to install Slurm"; exit 0; fi
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
fi

WORK="$(mktemp -d /tmp/mortal-slurm.XXXXXX)"
HOST="$(hostname -s)"
CPUS="$(nproc)"
cleanup() {
  scancel --user=root >/dev/null 2>&1 || true
  pkill -x slurmctld >/dev/null 2>&1 || true
  pkill -x slurmd >/dev/null 2>&1 || true
}
trap cleanup EXIT

# munge: one key for this machine.
mkdir -p /etc/munge /var/lib/munge /var/log/munge /run/munge
[ -s /etc/munge/munge.key ] || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
chown -R munge:munge /etc/munge /var/lib/munge /var/log/munge /run/munge 2>/dev/null || true
chmod 0400 /etc/munge/munge.key
pgrep -x munged >/dev/null || su -s /bin/sh munge -c munged 2>/dev/null || munged --force

# Slurm: one node, one partition, this machine's CPUs.
mkdir -p /etc/slurm "$WORK/spool/ctld" "$WORK/spool/d"
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=mortal
SlurmctldHost=$HOST
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$WORK/spool/ctld
SlurmdSpoolDir=$WORK/spool/d
SlurmctldPidFile=$WORK/slurmctld.pid
SlurmdPidFile=$WORK/slurmd.pid
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MpiDefault=none
SlurmctldLogFile=$WORK/slurmctld.log
SlurmdLogFile=$WORK/slurmd.log
NodeName=$HOST CPUs=$CPUS State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
slurmctld -i
slurmd
for _ in $(seq 60); do sinfo -h -o %T 2>/dev/null | grep -qE 'idle|mixed' && break; sleep 1; done
sinfo

cd "$WORK"
# 30 epochs: each run lasts long enough to be cancelled in the middle.
export SCENARIO="$ROOT/scenarios/quickstart.toml" SHARDS=4 OUT="$WORK/q" MORTAL
export MORTAL_ARGS="--set train.epochs=30"
JOB=$(sbatch --parsable --array=0-3 --output="$WORK/task-%a.out" --export=ALL "$ROOT/scripts/mortal-array.sbatch")
echo "submitted array job $JOB (4 tasks)"
# The kill-and-resubmit case: cancel task 2 as soon as it runs, then submit it again.
for _ in $(seq 240); do squeue -h -j "${JOB}_2" -o %T 2>/dev/null | grep -q RUNNING && break; sleep 0.25; done
sleep 2
scancel "${JOB}_2" && echo "cancelled task 2 after 2 s of running"
wait_done() { for _ in $(seq 600); do [ -z "$(squeue -h -u root)" ] && return 0; sleep 1; done; echo "timed out"; return 1; }
wait_done
ROWS=0
[ -f "$WORK/q-shard-2/results.csv" ] && ROWS=$(($(wc -l < "$WORK/q-shard-2/results.csv") - 1))
echo "task 2 before resubmitting: $ROWS finished run(s)"
AGAIN=$(sbatch --parsable --array=2 --output="$WORK/task-%a-again.out" --export=ALL "$ROOT/scripts/mortal-array.sbatch")
echo "resubmitted task 2 as job $AGAIN"
wait_done
sacct >/dev/null 2>&1 || true

"$MORTAL" merge "$WORK/merged" "$WORK"/q-shard-* --no-plot
"$MORTAL" run "$SCENARIO" $MORTAL_ARGS --out "$WORK/single" --no-plot -q
strip() { python3 - "$1" <<'PY'
import csv, sys
volatile = {"train_seconds", "eval_seconds", "peak_rss_mib"}
rows = list(csv.DictReader(open(sys.argv[1])))
for r in sorted(rows, key=lambda r: r["run_id"]):
    print(",".join(v for k, v in r.items() if k not in volatile))
PY
}
if diff <(strip "$WORK/merged/results.csv") <(strip "$WORK/single/results.csv"); then
  echo "OK slurm check: $(($(wc -l < "$WORK/merged/results.csv") - 1)) runs from 4 array tasks (task 2 cancelled and resubmitted) equal the single-process run"
else
  echo "FAIL slurm check: merged results differ from the single-process run"; exit 1
fi
