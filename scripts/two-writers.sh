#!/bin/bash
# Usage: scripts/two-writers.sh BINARY [TRIALS]   (run from the repository's root)
# Two writers on one output directory at once, TRIALS times each (default 20):
#  1. two `mortal train` runs of different configurations into one --out;
#  2. two identical `mortal run scenarios/quickstart.toml --smoke` into one --out;
#  3. two different scenarios (quickstart, noise_sweep, --smoke) into one --out.
# Each trial must end with exactly one success and one refusal (exit 2 naming the
# directory) or, for identical scenarios, both successful with every run done once; the
# directory must then verify (mortal eval of the train run; mortal run of the scenario
# says everything is done; results.csv holds one scenario's rows only).
B=$1; N=${2:-20}
if [ -z "$B" ] || [ ! -x "$B" ]; then echo "usage: $0 BINARY [TRIALS]" >&2; exit 2; fi
W=$(mktemp -d)
export RAYON_NUM_THREADS=1
bad=0
for i in $(seq 1 $N); do
  d=$W/train-$i
  $B -q train --seed 1 --epochs 1 --train-limit 1000 --out $d > $d.a.log 2>&1 & a=$!
  $B -q train --seed 2 --lr 0.002 --epochs 1 --train-limit 1000 --out $d > $d.b.log 2>&1 & b=$!
  wait $a; ra=$?; wait $b; rb=$?
  codes="$ra $rb"
  if { [ "$codes" = "0 2" ] || [ "$codes" = "2 0" ]; } && $B -q eval --checkpoint $d --out $W/eval-$i > /dev/null 2>&1; then :; else
    bad=$((bad+1)); echo "train trial $i: exits $codes; $(cat $d.a.log $d.b.log | head -c 300)"; fi
done
echo "1. two train runs into one directory: $((N-bad))/$N with one run and one refusal, the run loadable"
bad2=0
for i in $(seq 1 $N); do
  d=$W/scen-$i
  $B -q run scenarios/quickstart.toml --smoke --no-plot --out $d > $d.a.log 2>&1 & a=$!
  $B -q run scenarios/quickstart.toml --smoke --no-plot --out $d > $d.b.log 2>&1 & b=$!
  wait $a; ra=$?; wait $b; rb=$?
  again=$($B run scenarios/quickstart.toml --smoke --no-plot --out $d 2>&1 | head -c 400)
  if { [ "$ra" = 0 ] || [ "$ra" = 2 ]; } && { [ "$rb" = 0 ] || [ "$rb" = 2 ]; } && [ "$ra$rb" != "22" ] && ! echo "$again" | grep -q "runs finished"; then :; else
    bad2=$((bad2+1)); echo "scenario trial $i: exits $ra $rb; again: $again"; fi
done
echo "2. two identical scenarios into one directory: $((N-bad2))/$N complete, nothing redone afterwards"
bad3=0
for i in $(seq 1 $N); do
  d=$W/mixed-$i
  $B -q run scenarios/quickstart.toml --smoke --no-plot --out $d > $d.a.log 2>&1 & a=$!
  $B -q run scenarios/noise_sweep.toml --smoke --no-plot --out $d > $d.b.log 2>&1 & b=$!
  wait $a; ra=$?; wait $b; rb=$?
  if { [ "$ra $rb" = "0 2" ] || [ "$ra $rb" = "2 0" ]; }; then :; else
    bad3=$((bad3+1)); echo "mixed trial $i: exits $ra $rb"; fi
done
echo "3. two different scenarios into one directory: $((N-bad3))/$N with one complete and one refused"
rm -rf "$W"
