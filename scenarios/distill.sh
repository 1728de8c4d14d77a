#!/bin/sh
# Distillation between chips (issue 6), MNIST: a Forward-Forward teacher trained in situ on
# harsh chip #1, moved to harsh chips #2, #3, #4 by (a) copying its conductances,
# (b) training FF from scratch on the transfer images' labels, (c) distillation (FF in situ
# on the student chip, supervised only by the teacher's probabilities: no labels), with
# transfer sets of the first 1,000 / 5,000 / 50,000 training images.
#
# The scenario runner (`mortal run`) describes single training runs, so this sweep is a
# script around `mortal distill`'s sweep mode instead. About 50 min on 2 shared cores
# (teacher 13 min; students 1k/5k ~1.5 min each, 50k ~6 min each).
#
#   MORTAL_DATA=/path/to/data scenarios/distill.sh [OUT_DIR]      # default runs/distill
#
# Writes OUT_DIR/teacher/ (a normal train run), OUT_DIR/students/t<N>-s<seed>/ (one
# distill run per student), OUT_DIR/students/results.csv and plots/distill-error.png,
# plots/distill-agreement.png. Re-running reuses finished students.
set -eu
OUT=${1:-runs/distill}
MORTAL=${MORTAL:-mortal}
[ -f "$OUT/teacher/checkpoint.json" ] || $MORTAL train --algo ff --dataset mnist \
    --layers 500,500 --epochs 10 --chip harsh --chip-seed 1 --out "$OUT/teacher"
# Each student sees at least 50,000 samples: 50 epochs of 1k, 10 of 5k, 5 of 50k.
$MORTAL distill --teacher "$OUT/teacher" --student-chip harsh --student-seed 2,3,4 \
    --transfer 1000,5000,50000 --unlabelled --epochs 5 --min-samples 50000 \
    --out "$OUT/students" --plot plots/distill \
    --title "MNIST, FF 2×500, harsh teacher #1 → harsh students"
