#!/usr/bin/env bash
# tools/mutate.sh — mutation testing of the golden tests (tests/MUTATIONS.md holds the last results).
#
# Applies each known structural bug (a perl patch of src/) to a SEPARATE git worktree, rebuilds, runs
# test_golden, test_blocks, test_nano_golden, test_ops, test_kernels, test_engram and test_quant_v41 there and
# records which of them turn red. Never touches the main working tree.
#
#   tools/mutate.sh --list                      # mutation names
#   tools/mutate.sh [-w DIR] [-c|-t] [-k DIR] [NAME ...]   # run (default: all mutations) in worktree DIR
#
#   -w DIR   worktree to use (default /tmp/mutwt); created with `git worktree add --detach DIR HEAD` if
#            missing, else moved (checkout --force --detach) to the main tree's HEAD commit. It is scratch:
#            its local edits are discarded; the mutated files are restored after each mutation.
#   -c       copy the main tree's uncommitted changes of src/ tests/ tools/ into the worktree first
#            (tracked modified files and untracked files under those directories).
#   -t       the same for tests/ and tools/ only: new goldens and tests against the committed engine.
#   -k DIR   keep every test's full output per mutation in DIR/<mutation>.<test>.txt (margins per block / row).
# Output: one line per mutation "NAME | tests that failed" and a markdown table on stdout; exit 1 if any
# mutation turns no test red (a "SURVIVED" row), 2 if a patch did not apply.
# Each mutation costs a rebuild of the library (~20 s) plus the five tests (~10 s).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WT=/tmp/mutwt
COPY=0
KEEP=
# name|file|perl substitution (applied with perl -0pi -e, so it may span lines; write a literal | as \x7c)|description
MUTATIONS=(
'hc_post_orientation|src/model/forward.c|s/Mt\[j \* hc \+ k\] \* old/Mt[k * hc + j] * old/|mHC post mixing uses M transposed'
'no_attn_sink|src/model/forward.c|s/Z \+= expf\((?:a->)?L->attn_sink\[h\] - mx\);/(void)0;/|attention sink left out of the softmax denominator'
'no_inverse_rope|src/model/forward.c|s/dsv4_rope\(\w+ \+ hd - rd, rd, (?:a->)?L->rope_f, (?:a->)?t, 1\);/(void)rd;/|inverse RoPE on the attention output skipped'
'window_excl_current|src/model/forward.c|s/for \(int64_t j = w0; j <= p; j\+\+\)/for (int64_t j = w0; j < p; j++)/|window excludes the current token'
'comp_rope_pos_last|src/model/forward.c|s/L->rope_f, w \* cw->R, 0\)/L->rope_f, w * cw->R + cw->R - 1, 0)/|compressed entry w rotated at position wR+R-1 instead of wR'
'csa_visibility_le|src/model/forward.c|s/int nvis = \(int\)\(\(p \+ 1\) \/ R\);/int nvis = (int)((p + 1) \/ R) + 1;/|compressed entry visible when w <= (t+1)/R (future entry)'
'no_indexer_relu|src/model/forward.c|s/sc \+= wh\[h\] \* \((d(?:\[h\])?) > 0 \? \1 : 0\);/sc += wh[h] * $1;/|indexer score without ReLU'
'no_kv_fp8|src/model/forward.c|s/(dsv4_rope\(k \+ nope, rd, L->rope_f, pos0 \+ t, 0\);\n\s*)dsv4_fp8_sim\(k, nope, 64\);/$1(void)0;/|FP8 simulation of the raw window KV skipped'
'no_act_fp8|src/kernels/linear.c|s/if \(flags & DSV4_ACT_FP8\) \{/if (0 \&\& (flags \& DSV4_ACT_FP8)) {/|FP8 activation quantization before linears skipped'
'route_weight_after_w2|src/model/forward.c|s/if \(wt\) h \*= wt\[t\];/(void)0;/; s/(dsv4_linear\(ye, w2, g, cnt, DSV4_ACT_FP8 \x7c DSV4_OUT_BF16, s->w.act\);)/$1\n    if (wt) for (int t = 0; t < cnt; t++) for (int d = 0; d < w2->rows; d++) ye[(size_t)t * w2->rows + d] = bf(ye[(size_t)t * w2->rows + d] * wt[t]);/|router weight applied to the expert output (after w2) instead of before w2'
'no_shared_clamp|src/model/forward.c|s/if \(lim > 0\) \{/if (lim > 0 \&\& wt) {/|shared expert SwiGLU without the clamp'
'gate_clamp_both|src/model/forward.c|s/if \(gg > lim\) gg = lim;/if (gg > lim) gg = lim;\n                if (gg < -lim) gg = -lim;/|SwiGLU gate clamped on both sides'
'yarn_on_window|src/model/weights.c|s/cf->rope_theta, 0, 1, cf->original_seq_len/cf->rope_theta, cf->yarn, cf->rope_factor, cf->original_seq_len/|YaRN applied to the window-only layers rope table'
'sinkhorn_19|src/model/forward.c|s/dsv4_sinkhorn\(Mt, hc, c->hc_sinkhorn_iters, c->hc_eps\);/dsv4_sinkhorn(Mt, hc, c->hc_sinkhorn_iters - 1, c->hc_eps);/|Sinkhorn 19 iterations instead of 20'
'hash_as_score|src/model/forward.c|s/if \(L->tid2eid\) \{/if (0 \&\& L->tid2eid) {/; s/float v = l\[e\] \+ L->gate_bias\[e\];/float v = l[e] + (L->gate_bias ? L->gate_bias[e] : 0.0f);/|hash layers route by score top-k instead of tid2eid'
'bias_in_weights|src/model/forward.c|s/sum \+= l\[id\[k\]\];/sum += l[id[k]] + (L->gate_bias ? L->gate_bias[id[k]] : 0.0f);/; s/rw\[t \* K \+ k\] = l\[id\[k\]\] \/ sum/rw[t * K + k] = (l[id[k]] + (L->gate_bias ? L->gate_bias[id[k]] : 0.0f)) \/ sum/|selection bias included in the routing weights'
'no_mtp_hnorm|src/model/forward.c|s/dsv4_rmsnorm\(hn \+ \(size_t\)r \* D, X \+ \(size_t\)r \* D, L->hnorm, D, c->norm_eps, 1\);/memcpy(hn + (size_t)r * D, X + (size_t)r * D, (size_t)D * sizeof(float));/|MTP hnorm skipped'
'sinkhorn_cap10|src/model/forward.c|s/dsv4_sinkhorn\(Mt, hc, c->hc_sinkhorn_iters, c->hc_eps\);/dsv4_sinkhorn(Mt, hc, c->hc_sinkhorn_iters < 10 ? c->hc_sinkhorn_iters : 10, c->hc_eps);/|Sinkhorn iterations capped at 10 (config: 20)'
'kv_fp8_block128|src/model/forward.c|s/dsv4_fp8_sim\(k, nope, 64\);/dsv4_fp8_sim(k, nope, 128);/|FP8 simulation of the raw KV nope dims in blocks of 128 instead of 64'
'indexer_queries_no_fp4|src/model/forward.c|s/dsv4_fp4_sim\(qh, ihd, 32\);/(void)0;/|FP4 simulation of the indexer queries skipped (the keys can no longer skip it: they are stored as E2M1 records)'
'expert_sum_bf16|src/model/forward.c|s/for \(int d = 0; d < D; d\+\+\) a\[d\] \+= ye\[d\];/for (int d = 0; d < D; d++) a[d] = bf(a[d] + ye[d]);/|routed-expert outputs summed in BF16 (rounded after each expert)'
'engram_no_latch|src/model/engram.c|s/blocked = blocked \x7c\x7c p - s < 0/blocked = p - s < 0/|Engram lookback not latched after a DEAD position or the sequence start (V4.1)'
'engram_cols_reversed|src/model/engram.c|s/et \+ \(size_t\)c \* p->head_dim\);/et + (size_t)(p->n_cols - 1 - c) * p->head_dim);/|Engram rows concatenated in reverse column order (V4.1)'
'engram_gate_no_sqrt|src/model/engram.c|s/dsv4_sigmoid\(copysignf\(sqrtf\(mag\), dt\)\)/dsv4_sigmoid(dt)/|Engram gate without the signed square root (V4.1)'
'engram_gate_unmasked|src/model/engram.c|s/float g = masked \? 0\.0f : /float g = /; s/if \(masked\) continue;/(void)0;/|Engram gate not zeroed on masked (image-span) tokens (V4.1)'
'engram_mult_vocab|src/model/engram.c|s/\(INT64_MAX \/ cvocab\) \/ 2/(INT64_MAX \/ (cvocab + 1)) \/ 2/|Engram multipliers drawn against compressed vocab + 1 (V4.1)'
'token_map_keeps_marks|src/model/engram.c|s/if \(cat == UTF8PROC_CATEGORY_MN \x7c\x7c cat == UTF8PROC_CATEGORY_MC \x7c\x7c cat == UTF8PROC_CATEGORY_ME\) continue;/(void)cat;/|Engram token map without StripAccents (V4.1)'
'fp4_e4m3_ties_up|src/kernels/quant_v41.c|s/tie_up\[7\] = \{0, 1, 0, 1, 0, 1, 0\}/tie_up[7] = {1, 1, 1, 1, 1, 1, 1}/|E2M1 ties of the FP4/E4M3 KV format rounded up instead of to the even code (V4.1)'
'fp4_e4m3_floor|src/kernels/quant_v41.c|s/6\.0f \* 0x1p-9f/6.0f * 0x1p-126f/|FP4/E4M3 KV format: amax floor 6*2^-126 instead of 6*2^-9 (V4.1)'
'v41_no_slot_quirk|src/model/forward_v41.c|s/const uint8_t \*Krec = s->published >= 0 \? s->ikeys\[s->published\] : NULL;/int pm_ = s->published; for (int l_ = L; l_ >= 0; l_--) if (s->ikeys[l_] && s->m->v41->layers[l_].ratio == ratio) { pm_ = l_; break; } s->published = pm_; const uint8_t *Krec = s->published >= 0 ? s->ikeys[s->published] : NULL;/|V4.1 index sources score against the latest owner of their ratio (no index-key slot quirk)'
'v41_no_candidates|src/model/forward_v41.c|s/else if \(B->uses_candidates\)/else if (0 && B->uses_candidates)/|V4.1 candidate-block mask not applied to later index sources'
'v41_latent_rope_last|src/model/forward_v41.c|s/dsv4_rope\(l \+ hd - rd, rd, fr, \(g0 \+ i\) \* ratio, 0\)/dsv4_rope(l + hd - rd, rd, fr, (g0 + i) * ratio + ratio - 1, 0)/|V4.1 compressed latent rotated at the last position of its group instead of the first'
'v41_no_yarn|src/model/forward_v41.c|s/c->original_seq_len > 0, c->rope_factor,/0, c->rope_factor,/|V4.1 compressed layers without YaRN'
'v41_no_sink|src/model/forward_v41.c|s/Z \+= expf\(B->attn_sink\[h\] - mx\);/(void)0;/|V4.1 attention sink left out of the softmax denominator'
'v41_comp_kv_block32|src/model/forward_v41.c|s/(dsv4_fp4_e4m3_[a-z]+\([^;]*?), 16,/$1, 32,/g|V4.1 compressed KV with E4M3 scales per 32 values instead of 16'
'v41_route_weight_dropped|src/model/forward_v41.c|s/if \(has_wt\) h = wt \* h;/(void)0;/|V4.1 routing weight not applied to the expert output'
'xr_bf16_shared|src/kernels/linear.c|s/(    if \(j->has_xr )/    if (j->w->fmt == DSV4_W_BF16) { j->has_xr = 1; return; }\n$1/|a BF16 op marks its never computed activation range as known, so a folding op sharing its input in dsv4_linear_multi folds scales unguarded'
'gemm_later_block_short|src/kernels/gemm_avx512.c|s/const int nt = jb->n_tok - t0 < GTB \? jb->n_tok - t0 : GTB;/const int nt = t0 > 0 ? 1 : (jb->n_tok - t0 < GTB ? jb->n_tok - t0 : GTB);/|AVX-512 multi-token driver: token blocks after the first compute one token, leaving the other outputs unwritten'
'fp4_scale255_shift|src/kernels/linear_avx512.c|s/if \(_mm512_cmpeq_epi8_mask\(c, _mm512_setzero_si512\(\)\)/if (0 \&\& _mm512_cmpeq_epi8_mask(c, _mm512_setzero_si512())/|one-token AVX-512 FP4: 64 E8M0 scale codes converted by a shift without the check for 0 and 255 (255 becomes +Inf instead of NaN)'
'gemm_init_every_tile|src/kernels/gemm_avx512.c|s/K\[gn\]\(w\[q\], x, nch, Lr, sc\[q\], c0 == 0\)/K[gn](w[q], x, nch, Lr, sc[q], 1)/|multi-token AVX-512 driver: the micro-kernels restart their lanes at 0 on every 1,024-column tile (the earlier tiles of a row are dropped)'
'gemm_init_never|src/kernels/gemm_avx512.c|s/K\[gn\]\(w\[q\], x, nch, Lr, sc\[q\], c0 == 0\)/K[gn](w[q], x, nch, Lr, sc[q], 0)/|multi-token AVX-512 driver: a row block starts from the lanes the previous row block left (never restarted at 0)'
)
TESTS="test_golden test_blocks test_nano_golden test_ops test_kernels test_engram test_quant_v41 test_forward_v41"

while [ $# -gt 0 ]; do
    case "$1" in
    --list) for m in "${MUTATIONS[@]}"; do IFS='|' read -r n f p d <<<"$m"; printf '%-22s %s (%s)\n' "$n" "$d" "$f"; done; exit 0 ;;
    -w) WT=$2; shift 2 ;;
    -c) COPY=1; shift ;;
    -t) COPY=2; shift ;;
    -k) KEEP=$(mkdir -p "$2" && cd "$2" && pwd) || exit 2; shift 2 ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) break ;;
    esac
done
[ "$(cd "$WT" 2>/dev/null && pwd)" = "$ROOT" ] && { echo "refusing to mutate the main tree $ROOT"; exit 2; }
if [ ! -e "$WT/.git" ]; then
    git -C "$ROOT" worktree add --detach "$WT" HEAD >/dev/null || exit 2
elif [ "$(git -C "$WT" rev-parse HEAD)" != "$(git -C "$ROOT" rev-parse HEAD)" ]; then
    # follow the main tree's commit (the worktree is scratch: its local edits are discarded)
    git -C "$WT" checkout -q --force --detach "$(git -C "$ROOT" rev-parse HEAD)" || exit 2
fi
if [ $COPY -ne 0 ]; then
    dirs="src tests tools"; [ $COPY -eq 2 ] && dirs="tests tools"
    (cd "$ROOT" && { git diff --name-only HEAD -- $dirs; git ls-files --others --exclude-standard -- $dirs; } | sort -u) |
    while read -r f; do
        if [ -e "$ROOT/$f" ]; then mkdir -p "$WT/$(dirname "$f")"; cp -p "$ROOT/$f" "$WT/$f"; fi
    done
fi
cd "$WT" || exit 2
# the files the mutations patch (restored after each one)
FILES=$(for m in "${MUTATIONS[@]}"; do IFS='|' read -r n f p d <<<"$m"; echo "$f"; done | sort -u)
for f in $FILES; do [ -e "$f" ] || { echo "$f (patched by a mutation) does not exist in $WT"; exit 2; }; done
mkdir -p .mut_pristine
# pristine sources: the main tree's (with -c) or the worktree commit's, never the possibly mutated worktree files
for f in $FILES; do
    if [ $COPY -eq 1 ]; then cp "$ROOT/$f" ".mut_pristine/$(echo "$f" | tr / _)"
    else git show "HEAD:$f" >".mut_pristine/$(echo "$f" | tr / _)"; fi
done
# restore: copy back (new mtime, so make rebuilds) only the files that differ
restore() {
    for f in $FILES; do
        local p=".mut_pristine/$(echo "$f" | tr / _)"
        cmp -s "$p" "$f" || cp "$p" "$f"
    done
}

build() { make -s build/rel/libdsv4.a build/v4-tokenizer.json $(for t in $TESTS; do echo build/rel/tests/$t; done) >.mut_build.log 2>&1; }
# what failed, compactly: test_golden -> case/schedule list; test_blocks -> case:block list (+ largest rel_rms
# over tolerance); others -> first FAIL line
summarize() {
    local t=$1 o=$2
    case $t in
    test_golden) printf '%s\n' "$o" | awk '/^FAIL [a-z0-9_]+\/[a-z]+/ {
                     split($2, a, /[\/:]/); k = a[1] "/" a[2]; if (!(k in seen)) { seen[k] = 1; l = l (l ? "," : "") k }
                     if (match($0, /max\|c-r\| = [0-9.e+-]+ > tol [0-9.e+-]+/)) {
                         split(substr($0, RSTART, RLENGTH), b, " "); r = b[3] / b[6]; if (r > worst) worst = r } }
                     END { printf "%s", l; if (worst > 0) printf "; worst max|c-r| = %.1fx tol", worst }' ;;
    test_blocks) printf '%s\n' "$o" | awk '/^FAIL .* block [0-9]+ \(/ {
                     split($0, a, " "); k = a[2] ":b" a[4]; if (!(k in seen)) { seen[k] = 1; l = l (l ? "," : "") k }
                     if (match($0, /rel_rms [0-9.e+-]+ \(tol [0-9.e+-]+\)/)) {
                         split(substr($0, RSTART, RLENGTH), b, /[ ()]+/); r = b[2] / b[4]; if (r > worst) worst = r }
                     if (match($0, /median_tok [0-9.e+-]+ \(tol [0-9.e+-]+\)/)) {
                         split(substr($0, RSTART, RLENGTH), b, /[ ()]+/); r = b[2] / b[4]; if (r > wmed) wmed = r } }
                     END { printf "%s; worst rel_rms = %.1fx tol", l, worst; if (wmed > 0) printf ", median_tok = %.1fx tol", wmed }' ;;
    test_nano_golden) printf '%s\n' "$o" | awk '/^FAIL nano\// {
                     if ($3 == "position") next
                     split($2, a, ":"); k = a[1] " " ($0 ~ /gross bound/ ? "gross (" $3 " rows)" : $3); sub(/^nano\//, "", k)
                     if (match($0, /\([0-9.]+x\)/)) k = k " " substr($0, RSTART + 1, RLENGTH - 2)
                     l = l (l ? ", " : "") k }
                     END { printf "%s", l }' ;;
    *) printf '%s\n' "$o" | grep -m1 '^FAIL' | cut -c1-120 ;;
    esac
}
runtests() {   # prints the failing tests with a summary each ($1: name to keep the outputs under, with -k)
    local out=""
    for t in $TESTS; do
        local o rc
        o=$(timeout 600 ./build/rel/tests/$t 2>&1); rc=$?
        [ -n "$KEEP" ] && printf '%s\n' "$o" >"$KEEP/$1.$t.txt"
        if [ $rc -ne 0 ]; then
            local tot; tot=$(printf '%s\n' "$o" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -1)
            out="$out**$t** (${tot:-rc $rc}: $(summarize "$t" "$o")); "
        fi
    done
    printf '%s' "$out"
}

restore
touch $FILES   # objects of an interrupted run may be stale
echo "baseline: building $WT"
build || { tail -20 .mut_build.log; echo "baseline build failed"; exit 2; }
base=$(runtests baseline)
[ -n "$base" ] && { echo "baseline already red: $base"; exit 2; }
echo "baseline: all of $TESTS green"

want=("$@")
rows=(); status=0
for m in "${MUTATIONS[@]}"; do
    IFS='|' read -r name file pat desc <<<"$m"
    if [ ${#want[@]} -gt 0 ] && ! printf '%s\n' "${want[@]}" | grep -qx "$name"; then continue; fi
    restore
    perl -0pi -e "$pat" "$file"
    if cmp -s "$file" ".mut_pristine/$(echo "$file" | tr / _)"; then
        echo "$name | PATCH DID NOT APPLY"; rows+=("| $name | $desc | PATCH DID NOT APPLY |"); status=2; continue
    fi
    if ! build; then
        echo "$name | BUILD FAILED"; tail -5 .mut_build.log; rows+=("| $name | $desc | build failed |"); status=2; continue
    fi
    res=$(runtests "$name")
    if [ -z "$res" ]; then res="SURVIVED"; [ $status -eq 0 ] && status=1; fi
    echo "$name | $res"
    rows+=("| \`$name\` | $desc | $res |")
done
restore
build >/dev/null 2>&1
echo
echo "| mutation | what | failing tests |"
echo "|---|---|---|"
for r in "${rows[@]}"; do echo "$r"; done
exit $status
