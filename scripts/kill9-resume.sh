#!/bin/bash
# Usage: scripts/kill9-resume.sh BINARY [WORKDIR]   (e.g. target/release/mortal)
# kill -9 at random points of a 4-epoch run with --checkpoint-every 1 (after its first
# resumable state: epoch e in 1..3 written, then a random further delay), then --resume;
# compare the final checkpoint's MD5 with an uninterrupted run. 10 trials per substrate.
B=$1; W=${2:-$(mktemp -d)}
if [ -z "$B" ] || [ ! -x "$B" ]; then echo "usage: $0 BINARY [WORKDIR]" >&2; exit 2; fi
if [ -n "$(ls -A "$W" 2>/dev/null)" ]; then echo "$W is not empty" >&2; exit 2; fi
mkdir -p "$W"
export RAYON_NUM_THREADS=1
for sub in digital harsh; do
  if [ $sub = digital ]; then C=""; else C="--chip harsh"; fi
  A="train --epochs 4 --seed 1 --checkpoint-every 1 --train-limit 3000 -q $C"
  $B $A --out $W/ref-$sub > /dev/null 2>&1
  ref=$(md5sum $W/ref-$sub/checkpoint.safetensors | cut -c1-32)
  ok=0
  for i in $(seq 1 10); do
    d=$W/$sub-$i
    e=$(( (i % 3) + 1 ))
    delay=$(python3 -c "import random; random.seed($i*7+${#sub}); print(round(random.uniform(0, 1.5),2))")
    $B $A --out $d > /dev/null 2>&1 & pid=$!
    while [ ! -f $d/resume/state-e$e.json ] && kill -0 $pid 2>/dev/null; do sleep 0.05; done
    sleep $delay; kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
    if [ -f $d/checkpoint.safetensors ] && [ -f $d/manifest.json ]; then state=finished; else state=killed; fi
    if [ $state = killed ]; then $B train --resume $d -q > $d.resume.log 2>&1; fi
    got=$(md5sum $d/checkpoint.safetensors 2>/dev/null | cut -c1-32)
    [ "$got" = "$ref" ] && ok=$((ok+1))
    echo "$sub trial $i: killed ${delay}s after the epoch-$e state ($state) -> $( [ "$got" = "$ref" ] && echo equal || echo DIFFERENT $got ) $(head -c 150 $d.resume.log 2>/dev/null)"
  done
  echo "$sub: $ok/10 equal to the uninterrupted run"
done
