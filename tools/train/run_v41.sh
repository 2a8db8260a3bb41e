#!/bin/sh
# Reproduce the built-in V4.1 model models/nano-v41 end to end (run from anywhere; ~25 min of training on one core).
#   tools/train/run_v41.sh        token cache -> train -> export -> held-out ppl (reference, C, Engram off) -> tok/s
# Needs /usr/bin/python3 with torch 1.13 and sympy, and the dsv4 binary (tokenizes the corpus with
# models/nano/tokenizer.json; built here with `make`). BLAS: as tools/train/run.sh (serial OpenBLAS when available).
set -e
cd "$(dirname "$0")/../.."
OPENBLAS_DIR=${OPENBLAS_DIR:-/usr/lib/x86_64-linux-gnu/openblas-serial}
if [ -f "$OPENBLAS_DIR/libblas.so.3" ]; then
    export LD_LIBRARY_PATH="$OPENBLAS_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
PY="nice /usr/bin/python3"
make -j2 build/rel/dsv4
$PY tools/train/train_nano_v41.py data --dsv4 build/rel/dsv4
$PY tools/train/train_nano_v41.py train
$PY tools/train/train_nano_v41.py export
tail -c 111540 vendor/tinyshakespeare/tinyshakespeare.txt > tools/train/cache/nano-v41/heldout.txt
# the reference on the first 40 windows (~6 s a window), then the same windows with every Engram gate at 0
$PY tools/train/train_nano_v41.py eval --max-windows 40
$PY tools/train/train_nano_v41.py eval --max-windows 40 --engram-off
build/rel/dsv4 ppl -m models/nano-v41 -f tools/train/cache/nano-v41/heldout.txt --window 256 --max-tokens 10240
build/rel/dsv4 ppl -m models/nano-v41 -f tools/train/cache/nano-v41/heldout.txt --window 256
build/rel/dsv4 generate -m models/nano-v41 -p ROMEO: -n 200 --temp 0
$PY tools/train/train_nano_v41.py dspark --max-windows 2
