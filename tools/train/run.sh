#!/bin/sh
# Reproduce the built-in nano model end to end (run from anywhere; ~30 min on one core).
#   tools/train/run.sh            BPE -> train -> export -> eval -> sample
# Needs /usr/bin/python3 with torch 1.13 and python3-regex. For speed, torch is pointed at the serial
# OpenBLAS when it is available (Debian's torch otherwise uses the reference netlib BLAS, ~8x slower):
#   apt-get install libopenblas0-serial    (or extract the .deb and set OPENBLAS_DIR)
set -e
cd "$(dirname "$0")/../.."
OPENBLAS_DIR=${OPENBLAS_DIR:-/usr/lib/x86_64-linux-gnu/openblas-serial}
if [ -f "$OPENBLAS_DIR/libblas.so.3" ]; then
    export LD_LIBRARY_PATH="$OPENBLAS_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
PY="nice /usr/bin/python3"
$PY tools/train/train_bpe.py
$PY tools/train/train_nano.py train
$PY tools/train/train_nano.py export
$PY tools/train/train_nano.py eval
$PY tools/train/train_nano.py sample
