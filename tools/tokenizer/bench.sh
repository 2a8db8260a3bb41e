#!/usr/bin/env bash
# tools/tokenizer/bench.sh — encode throughput of our C tokenizer (`dsv4 bench-tokenizer`) and of the JavaScript
# @huggingface/tokenizers, on the same mixed corpus, in the same run; prints both and the ratio.
# Run from the repository root after `make` and `npm ci --prefix tools/tokenizer`.
# Env: DSV4_BIN (default build/rel/dsv4), TOKENIZER (default the real DeepSeek-V3 tokenizer.json),
#      GOLDEN (default tests/golden/tokenizer/v3.jsonl: every input of it, joined by "\n", is the corpus),
#      MIN_TIME (seconds per measurement, default 3).
set -euo pipefail
BIN=${DSV4_BIN:-build/rel/dsv4}
TOK=${TOKENIZER:-vendor/deepseek-v3-tokenizer/tokenizer.json}
GOLDEN=${GOLDEN:-tests/golden/tokenizer/v3.jsonl}
MIN_TIME=${MIN_TIME:-3}
CORPUS=build/tokenizer-bench-corpus.txt
HERE=$(dirname "$0")
[ -x "$BIN" ] || { echo "bench.sh: $BIN missing: run make" >&2; exit 1; }
[ -d "$HERE/node_modules/@huggingface/tokenizers" ] || { echo "bench.sh: run npm ci --prefix $HERE" >&2; exit 1; }
mkdir -p build
node "$HERE/bench.mjs" --write-corpus "$GOLDEN" "$CORPUS"
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }
for mode in whole lines; do
    flag=; [ "$mode" = lines ] && flag=--lines
    echo "== mode: $mode"
    c=$("$BIN" bench-tokenizer --tokenizer "$TOK" --corpus "$CORPUS" --min-time "$MIN_TIME" $flag); echo "$c"
    j=$(node "$HERE/bench.mjs" --tokenizer "$TOK" --corpus "$CORPUS" --min-time "$MIN_TIME" $flag); echo "$j"
    cr=$(grep '^RESULT' <<<"$c"); jr=$(grep '^RESULT' <<<"$j")
    ct=$(field tokens "$cr"); jt=$(field tokens "$jr")
    [ "$ct" = "$jt" ] || echo "WARNING: token counts differ (C $ct, JS $jt)"
    cb=$(field best_mbps "$cr"); jb=$(field best_mbps "$jr"); cm=$(field median_mbps "$cr"); jm=$(field median_mbps "$jr")
    awk -v cb="$cb" -v jb="$jb" -v cm="$cm" -v jm="$jm" -v m="$mode" -v t="$ct" 'BEGIN {
        printf "SUMMARY %-5s tokens %s | C best %.2f MB/s median %.2f | JS best %.2f MB/s median %.2f | C/JS %.1fx (best) %.1fx (median)\n",
               m, t, cb, cm, jb, jm, cb / jb, cm / jm }'
done
