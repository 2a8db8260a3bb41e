#!/bin/sh
# Reproduce the built-in chat model models/nano-chat end to end (run from anywhere; ~30 min on one core).
#   tools/train/run_chat.sh      data + tokenizer -> train -> export -> held-out eval -> C accuracy table
# Needs /usr/bin/python3 with torch 1.13 and python3-regex, and the dsv4 binary (renders the V4 prompts and
# tokenizes them; built here with `make`). BLAS: as tools/train/run.sh (serial OpenBLAS when available).
set -e
cd "$(dirname "$0")/../.."
OPENBLAS_DIR=${OPENBLAS_DIR:-/usr/lib/x86_64-linux-gnu/openblas-serial}
if [ -f "$OPENBLAS_DIR/libblas.so.3" ]; then
    export LD_LIBRARY_PATH="$OPENBLAS_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
PY="nice /usr/bin/python3"
make -j2 build/rel/dsv4 build/rel/tests/test_nano_chat
$PY tools/train/make_chat_data.py --dsv4 build/rel/dsv4
# The released model: 200 steps under a 750-step cosine schedule, then steps 200..400 under the 520-step
# schedule (the run was cut twice to stay inside a ~35 min budget on a loaded shared machine; resuming is
# bit-exact, so these two commands reproduce it). See tools/train/README.md "nano-chat".
$PY tools/train/train_nano_chat.py train --set STEPS=750 --steps 200
$PY tools/train/train_nano_chat.py train --steps 400
$PY tools/train/train_nano_chat.py export
$PY tools/train/train_nano_chat.py eval
build/rel/tests/test_nano_chat --all
