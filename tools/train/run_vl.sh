#!/bin/sh
# Reproduce the built-in vision model models/nano-vl end to end (run from anywhere; ~17 min of training on one core).
#   tools/train/run_vl.sh     tokenizer + prompt ids -> tower pretraining -> joint training (LM from models/nano-v41) -> export -> held-out accuracy
#                             (reference, then C: `dsv4 generate --image`) -> the examples/ answers
# Needs /usr/bin/python3 with torch 1.13, sympy and Pillow (python3-pil), and the dsv4 binary (built here with make).
# BLAS: serial OpenBLAS when OPENBLAS_DIR has it (3-8x faster than Debian's default netlib BLAS here; without
# installing it system-wide: `apt-get download libopenblas0-serial && dpkg -x libopenblas0-serial_*.deb DIR`, then
# OPENBLAS_DIR=DIR/usr/lib/x86_64-linux-gnu/openblas-serial).
set -e
cd "$(dirname "$0")/../.."
OPENBLAS_DIR=${OPENBLAS_DIR:-/usr/lib/x86_64-linux-gnu/openblas-serial}
if [ -f "$OPENBLAS_DIR/libblas.so.3" ]; then
    export LD_LIBRARY_PATH="$OPENBLAS_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
PY="nice /usr/bin/python3"
BIN=build/rel/dsv4
make -j2 $BIN
$PY tools/train/train_nano_vl.py tokenizer --dsv4 $BIN
$PY tools/train/train_nano_vl.py pretrain
$PY tools/train/train_nano_vl.py train                   # 600 steps
$PY tools/train/train_nano_vl.py train --set STEPS=1000  # resumed: 400 more (the cosine re-stretched over 1,000)
$PY tools/train/train_nano_vl.py export
$PY tools/train/train_nano_vl.py heldout
$PY tools/train/train_nano_vl.py eval-ref --dsv4 $BIN
$PY tools/train/train_nano_vl.py eval-c --dsv4 $BIN
for f in examples/*.png; do
    for q in "What shape is this?" "What colour is the shape?" "Describe the image."; do
        $BIN generate -m models/nano-vl --image "$f" -p "$q" -n 12 --temp 0 2>/dev/null | tail -n 1
    done
done
