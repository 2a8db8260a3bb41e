#!/usr/bin/env bash
# tests/run.sh — runs every test binary given on the command line, then the CLI end-to-end and bad-input
# checks, and prints the totals as the final line "N passed, N failed". Run from the repository root
# (`make test` does this). Env: DSV4_BIN = the dsv4 binary; DSV4_RUN = a command that runs the built binaries
# (cross builds: e.g. "qemu-aarch64 -L /", `make cross-aarch64`, .ci/cross.sh); the dsv4 binary and the tools
# are then called through small wrapper scripts, so every check below runs them the same way. DSV4_TEST_JOBS = how
# many test binaries run at a time (default 1); DSV4_TEST_QEMU=1 = the reduced sizes of the heaviest tests under
# emulation (tests/testlib.h test_reduced, tests/server/server.sh; each reduction is printed), set by .ci/cross.sh.
set -u
BIN=${DSV4_BIN:-build/rel/dsv4}
RUN=${DSV4_RUN:-}
pass=0; fail=0
tmp=$(mktemp -d /tmp/dsv4-test.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
# wrap PROGRAM: prints the path of a script that runs PROGRAM under $RUN (PROGRAM itself when RUN is empty)
wrap() {
    if [ -z "$RUN" ]; then echo "$1"; return; fi
    local w="$tmp/run-$(basename "$1")"
    printf '#!/bin/sh\nexec %s %s "$@"\n' "$RUN" "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")" > "$w"
    chmod +x "$w"; echo "$w"
}
BIN=$(wrap "$BIN")

# The test binaries run DSV4_TEST_JOBS at a time (default 1; .ci/cross.sh runs 2 under qemu), each one's output kept
# in $tmp and reported in the order given, with its wall and CPU time; then test_golden, test_blocks, test_nano_golden
# and test_vision_tower once more on every other kernel path this CPU runs (issue 6; below). A job's status file
# appears when it is done. With more than one job at a time the CLI checks run alongside (their lines come first).
JOBS=${DSV4_TEST_JOBS:-1}
t_bins=$SECONDS; njob=0; nrep=0; running=0
spawn() {   # spawn KERNEL BINARY: run BINARY (with DSV4_KERNEL=KERNEL unless KERNEL is empty) as job $njob
    if [ "$running" -ge "$JOBS" ]; then wait -n; running=$((running - 1)); report_done; fi
    printf '%s %s\n' "${1:--}" "$2" > "$tmp/job$njob.what"
    ( if [ -n "$1" ]; then export DSV4_KERNEL=$1; fi
      t0=$(date +%s); $RUN "$2" > "$tmp/job$njob.out" 2>&1; rc=$?
      times > "$tmp/job$njob.cpu"   # (user and system CPU of this job's children: e.g. "1m2.5s 0m0.1s")
      cpu=$(tail -n 1 "$tmp/job$njob.cpu" | awk '{ split($1, u, "m"); split($2, s, "m"); printf "%.0f", u[1] * 60 + u[2] + s[1] * 60 + s[2] }')
      echo "$rc $(($(date +%s) - t0)) $cpu" > "$tmp/job$njob.st.part" && mv "$tmp/job$njob.st.part" "$tmp/job$njob.st" ) &
    running=$((running + 1)); njob=$((njob + 1))
}
report_done() {   # report the finished jobs, in order, up to the first one still running
    local k t out rc secs cpu line p f
    while [ "$nrep" -lt "$njob" ] && [ -f "$tmp/job$nrep.st" ]; do
        read -r k t < "$tmp/job$nrep.what"; read -r rc secs cpu < "$tmp/job$nrep.st"; out=$(cat "$tmp/job$nrep.out")
        name=$(basename "$t"); nrep=$((nrep + 1))
        line=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -n 1)
        if [ "$k" != - ]; then   # a rerun on another kernel path counts once
            if [ "$rc" -eq 0 ] && [ -n "$line" ] && [ "${line#* passed, }" = "0 failed" ]; then
                pass=$((pass + 1)); echo "ok   $name on path $k: $line (${secs} s, CPU ${cpu} s)"
            else
                fail=$((fail + 1)); printf '%s\n' "$out" | grep -v '^ok ' | tail -n 20; echo "FAIL $name on path $k (exit $rc)"
            fi
            continue
        fi
        if [ -z "$line" ]; then
            printf '%s\n' "$out" | tail -n 20
            echo "FAIL $name: exited $rc without a 'N passed, N failed' line"
            fail=$((fail + 1)); continue
        fi
        p=${line%% passed*}; f=${line#*passed, }; f=${f%% failed*}
        pass=$((pass + p)); fail=$((fail + f))
        if [ "$rc" -ne 0 ] || [ "$f" -ne 0 ]; then
            printf '%s\n' "$out" | grep -v '^ok ' | tail -n 40
            echo "FAIL $name: $line (exit $rc)"
            [ "$f" -eq 0 ] && fail=$((fail + 1))
        else
            echo "ok   $name: $line (${secs} s, CPU ${cpu} s)"
            printf '%s\n' "$out" | grep '^reduced under emulation' | sed 's/^/     /'
        fi
    done
}
run_bins() {   # run_bins TEST...: every test binary, then the reruns on the other kernel paths; adds to pass/fail
    for t in "$@"; do spawn "" "$t"; done
    # every SIMD path this CPU runs (issue 6): the golden and per-block tests again under each forced path other than
    # the default one, which the run above used (the best path: the last usable one in this list, or $DSV4_KERNEL);
    # test_kernels and test_threads already compare the paths bit for bit
    if [ -z "${DSV4_TESTS_ONLY:-}" ]; then
        paths=""
        for path in scalar avx2 avx512 neon; do
            if "$BIN" info -m models/nano --kernel "$path" >/dev/null 2>&1; then paths="$paths $path"
            else echo "skip path $path (this CPU lacks it)"; fi
        done
        default=${DSV4_KERNEL:-${paths##* }}
        for path in $paths; do
            if [ "$path" = "$default" ]; then echo "path $default is the default: the golden and block tests ran on it above"; continue; fi
            for t in "$@"; do
                case "$(basename "$t")" in test_golden|test_blocks|test_nano_golden|test_vision_tower) ;; *) continue ;; esac
                # under emulation the scalar path of test_golden (~170 s of CPU there) is checked by test_threads, which
                # compares whole-model logits of every path bit for bit, instead of a rerun
                if [ "$(basename "$t")" = test_golden ] && [ "$path" = scalar ] && [ "${DSV4_TEST_QEMU:-0}" != 0 ]; then
                    echo "reduced under emulation (DSV4_TEST_QEMU): test_golden is not rerun on the scalar path (test_threads compares it bit for bit with $default)"
                    continue
                fi
                spawn "$path" "$t"
            done
        done
    fi
    wait; report_done
    echo "(the test binaries took $((SECONDS - t_bins)) s, $JOBS at a time)"
}
bins_pid=""
if [ "$JOBS" -gt 1 ] && [ -z "${DSV4_TESTS_ONLY:-}" ]; then   # alongside the CLI checks: counts and lines at the end
    ( run_bins "$@" > "$tmp/bins.log" 2>&1; echo "$pass $fail" > "$tmp/bins.count" ) &
    bins_pid=$!
else
    run_bins "$@"
fi

if [ -n "${DSV4_TESTS_ONLY:-}" ]; then   # only the test binaries (cross-riscv64: no CLI built)
    echo; echo "$pass passed, $fail failed"; [ "$fail" -eq 0 ]; exit
fi

# ---------------------------------------------------------------- CLI checks
t_cli=$SECONDS
# check NAME EXPECT_RC REGEX -- command...   (EXPECT_RC "fail" = exit 1 or 2, never a signal)
check() {
    local name=$1 want=$2 re=$3; shift 4
    local out rc t0=$SECONDS
    out=$("$@" 2>&1); rc=$?
    echo "$((SECONDS - t0)) $name" >> "$tmp/check_times"
    local ok=1
    if [ "$want" = fail ]; then { [ "$rc" -eq 1 ] || [ "$rc" -eq 2 ]; } || ok=0
    else [ "$rc" -eq "$want" ] || ok=0; fi
    printf '%s\n' "$out" | grep -Eq -- "$re" || ok=0
    if [ $ok -eq 1 ]; then pass=$((pass + 1)); echo "ok   cli: $name"
    else fail=$((fail + 1)); echo "FAIL cli: $name (exit $rc, wanted $want and /$re/)"; printf '%s\n' "$out" | tail -n 5; fi
}

META=vendor/v4-flash-metadata
check "info on the real V4-Flash config" 0 "parameters: +2[0-9]{11} \(28[0-9]\.[0-9]+B\)" -- "$BIN" info -m "$META"
check "info on the V4.1-Flash config (docs/v41.md): backbone, Engram and DSpark apart" 0 "backbone 551566180464 \\(551\\.57B\\); Engram 196928504320 \\(196\\.93B\\); DSpark 14225362530" -- "$BIN" info -m tests/golden/v41/flash-config.json
check "info on a missing directory" fail "nonexistent" -- "$BIN" info -m "$tmp/nonexistent"
echo '{"hidden_size": 4096,' > "$tmp/config.json"
check "info on a config that is not JSON" fail "config.json" -- "$BIN" info -m "$tmp"
check "unknown command" fail "unknown command" -- "$BIN" frobnicate
check "bad numeric option" fail "not an integer" -- "$BIN" generate -m models/nano -p x -n abc

# chat encoding / parsing front ends (issue: prompt encoding); the library tests cover the details
ENC=vendor/v4-encoding
check "render: official golden 4 (chat mode) byte-exact" 0 "^same$" -- sh -c "'$BIN' render --messages $ENC/test_input_4.json | cmp -s - $ENC/test_output_4.txt && echo same"
check "render: official golden 1 (thinking) byte-exact" 0 "^same$" -- sh -c "'$BIN' render --thinking --messages $ENC/test_input_1.json | cmp -s - $ENC/test_output_1.txt && echo same"
check "render: malformed JSON names the problem" fail "JSON|json" -- sh -c "echo '[{\"role\": ' | '$BIN' render --messages -"
check "parse: DSML tool call" 0 '"arguments":[[:space:]]*"\{\\"location\\": \\"Beijing\\"\}"' -- sh -c "printf 'ok</think>\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"get_weather\">\n<｜DSML｜parameter name=\"location\" string=\"true\">Beijing</｜DSML｜parameter>\n</｜DSML｜invoke>\n</｜DSML｜tool_calls><｜end▁of▁sentence｜>' | '$BIN' parse --thinking"
check "render: README example 3 (--tokens)" 0 "^--- [0-9]+ tokens$" -- "$BIN" render --tokenizer build/v4-tokenizer.json --messages $ENC/test_input_1.json --tokens
echo 5 > "$tmp/ctx_bad.json"
check "render: a bad --context names the context file" 1 "ctx_bad.json: context: not a JSON array" -- "$BIN" render --messages $ENC/test_input_4.json --context "$tmp/ctx_bad.json"
check "render: --messages a directory" 1 "cannot read $tmp: Is a directory" -- "$BIN" render --messages "$tmp"
check "parse: invalid UTF-8 becomes U+FFFD in the JSON" 0 '"content": "a�b"' -- sh -c "printf 'a\\377b' | '$BIN' parse 2>/dev/null"
check "parse: invalid UTF-8 warns" 0 "warning: the output is not valid UTF-8: 1 invalid sequence written as U\\+FFFD" -- sh -c "printf 'a\\377b' | '$BIN' parse"
check "parse: invalid UTF-8 with --strict" 1 "not valid UTF-8" -- sh -c "printf 'a\\377b' | '$BIN' parse --strict"
check "parse: a NUL byte is kept as \\u0000" 0 '"content": "a\\u0000b"' -- sh -c "printf 'a\\000b' | '$BIN' parse"
for c in generate logits info ppl tokenize detokenize bench bench-tokenizer render parse chat; do
    check "$c -h prints its usage" 0 "^usage: dsv4 $c " -- "$BIN" $c -h
done
check "chat: --top-p 0 refused at parse time (no model load)" 2 "option --top-p: '0' is not a number in \\(0, 1\\]" -- "$BIN" chat -m "$tmp/nonexistent" --top-p 0
check "generate --help prints its usage" 0 "^usage: dsv4 generate " -- "$BIN" generate --help
check "chat: a tokenizer without the V4 special tokens is refused" fail "lacks 5 DeepSeek-V4 special tokens" -- sh -c "echo hi | '$BIN' chat -m models/nano"

NANO=models/nano
if [ -f "$NANO/model.safetensors" ]; then
    check "generate from the nano model" 0 "decode [0-9]+ tokens" -- "$BIN" generate -m "$NANO" -p "ROMEO:" -n 24 --seed 1
    check "logits: token id >= vocab" fail "id|vocab" -- "$BIN" logits -m "$NANO" --tokens 1,2,99999999 --out "$tmp/l.f32"
    check "logits: writes rows" 0 "wrote 3 rows" -- "$BIN" logits -m "$NANO" --tokens 5,6,7,8 --prefill 2 --out "$tmp/l.f32"
    check "--mem below the minimum is refused naming it" fail "below the minimum [0-9.]+ MiB \([0-9]+ bytes\)" -- "$BIN" generate -m "$NANO" -p x -n 1 --mem 1M
    check "--mem: generate under a budget (expert cache)" 0 "expert cache .* read from disk as needed" -- "$BIN" generate -m "$NANO" -p "ROMEO:" -n 8 --mem 3M --temp 0
    check "--mem: logits bit-identical to the unbounded run (2-expert cache)" 0 "^same$" -- sh -c "'$BIN' logits -m '$NANO' --tokens 5,6,7,8,9 --prefill 2 --out '$tmp/lm0.f32' >/dev/null && '$BIN' logits -m '$NANO' --tokens 5,6,7,8,9 --prefill 2 --mem 2950000 --out '$tmp/lm1.f32' >/dev/null && cmp -s '$tmp/lm0.f32' '$tmp/lm1.f32' && echo same"
    check "--mem: a malformed size is refused" fail "is not a byte count" -- "$BIN" generate -m "$NANO" -p x --mem 12Q
    check "--mem default: a model that fits stays mapped, shown in the load summary" 0 "memory budget .* \(default: 3/4 of the available RAM\): the whole checkpoint fits" -- "$BIN" generate -m "$NANO" -p x -n 1
    check "--mem default: 3/4 of a small MemAvailable puts experts in the cache, same logits" 0 "budget 3.00 MiB \(default\): .*expert cache.*same$" -- sh -c "DSV4_MEM_AVAILABLE=4M '$BIN' logits -m '$NANO' --tokens 5,6,7,8,9 --prefill 2 --out '$tmp/lm2.f32' -v 2>&1 >/dev/null | tr '\n' ' '; cmp -s '$tmp/lm0.f32' '$tmp/lm2.f32' && echo same"
    check "--mem default below the minimum: mapped with a warning, same logits" 0 "default memory budget .* is too small .*same$" -- sh -c "DSV4_MEM_AVAILABLE=2M '$BIN' logits -m '$NANO' --tokens 5,6,7,8,9 --prefill 2 --out '$tmp/lm3.f32' 2>&1 >/dev/null | tr '\n' ' '; cmp -s '$tmp/lm0.f32' '$tmp/lm3.f32' && echo same"
    mkdir -p "$tmp/trunc"; cp "$NANO/config.json" "$NANO/tokenizer.json" "$tmp/trunc/"
    head -c 100000 "$NANO/model.safetensors" > "$tmp/trunc/model.safetensors"
    check "truncated safetensors" fail "model.safetensors" -- "$BIN" generate -m "$tmp/trunc" -p x -n 1
    mkdir -p "$tmp/badcfg"; cp "$NANO/model.safetensors" "$NANO/tokenizer.json" "$tmp/badcfg/"
    sed 's/"hidden_size"/"hidden_sizeX"/' "$NANO/config.json" > "$tmp/badcfg/config.json"
    check "config lacking a key" fail "hidden_size" -- "$BIN" generate -m "$tmp/badcfg" -p x -n 1
    check "tokenize round trip" 0 "^To be, or not to be$" -- sh -c "'$BIN' tokenize -m '$NANO' --text 'To be, or not to be' | '$BIN' detokenize -m '$NANO'"

    # front-end review findings. Exact exit statuses: under ASan a leak on an error path turns 2 into 1.
    check "logits: empty --tokens (usage error, nothing leaked)" 2 "--tokens is empty" -- "$BIN" logits -m "$NANO" --tokens "" --out "$tmp/l.f32"
    check "logits: --prefill beyond the tokens (nothing leaked)" 2 "--prefill 4 exceeds the 3 tokens" -- "$BIN" logits -m "$NANO" --tokens 1,2,3 --prefill 4 --out "$tmp/l.f32"
    check "logits: a token list that is not numbers" 2 "at item 1 is not a non-negative integer" -- "$BIN" logits -m "$NANO" --tokens 1,x --out "$tmp/l.f32"
    check "detokenize: id outside the vocabulary (nothing leaked)" 1 "id 1024 at item 0 is not in the vocabulary" -- "$BIN" detokenize -m "$NANO" --ids 1024
    check "tokenize: stdin with a NUL byte round-trips byte-exactly" 0 "^610062$" -- sh -c "printf 'a\\000b' | '$BIN' tokenize -m '$NANO' | '$BIN' detokenize -m '$NANO' | od -An -tx1 | tr -d ' \\n'"
    check "tokenize: invalid UTF-8 on stdin" 1 "stdin: .*invalid UTF-8 at byte offset 1" -- sh -c "printf 'a\\377b' | '$BIN' tokenize -m '$NANO'"
    : > "$tmp/empty.txt"; printf 'a' > "$tmp/one.txt"
    check "ppl: empty file" 1 "encodes to 0 tokens; perplexity needs at least 2 tokens" -- "$BIN" ppl -m "$NANO" --file "$tmp/empty.txt"
    check "ppl: one-token file" 1 "encodes to 1 token; perplexity needs at least 2 tokens" -- "$BIN" ppl -m "$NANO" --file "$tmp/one.txt"
    check "ppl: a directory" 1 "cannot read $tmp: Is a directory" -- "$BIN" ppl -m "$NANO" --file "$tmp"
    check "generate: --top-p 0 refused at parse time (no model load)" 2 "option --top-p: '0' is not a number in \\(0, 1\\]" -- "$BIN" generate -m "$tmp/nonexistent" -p x --top-p 0
    check "generate: --temperature -1 refused" 2 "option --temperature: '-1' is not a number in \\[0, 100\\]" -- "$BIN" generate -m "$NANO" -p x --temperature -1
    check "generate: --ctx smaller than prompt + n" 2 "--ctx 5 is smaller than the prompt \\(2 tokens\\) \\+ -n 10" -- "$BIN" generate -m "$NANO" -p "ROMEO:" -n 10 --ctx 5
    check "generate: --ctx exactly prompt + n" 0 "decode 10 tokens" -- "$BIN" generate -m "$NANO" -p "ROMEO:" -n 10 --ctx 12 --seed 3
    check "info: small counts in M/K, not 0.00B" 0 "parameters: +3178501 \\(3\\.18M\\) without MTP; MTP block 651207 \\(651\\.21K\\)" -- "$BIN" info -m "$NANO"
    # chat needs a tokenizer with the V4 special tokens: the nano model with its tokenizer.json plus the five
    # missing specials as added tokens on the last five ids (vocab_size stays 1024; only the refusal of a bad
    # input line is exercised, nothing is generated)
    mkdir -p "$tmp/v4m"; ln -sf "$PWD/$NANO/config.json" "$PWD/$NANO/model.safetensors" "$tmp/v4m/"
    A='"single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":true}'
    sed "s/\"added_tokens\":\[/\"added_tokens\":[{\"id\":1019,\"content\":\"<｜User｜>\",$A,{\"id\":1020,\"content\":\"<｜Assistant｜>\",$A,{\"id\":1021,\"content\":\"<think>\",$A,{\"id\":1022,\"content\":\"<\/think>\",$A,{\"id\":1023,\"content\":\"｜DSML｜\",$A,/" \
        "$NANO/tokenizer.json" > "$tmp/v4m/tokenizer.json"
    check "chat: an input line that is not UTF-8 is refused plainly" 0 "your input line is not valid UTF-8 \\(bad byte 0xff at byte offset 1 of the line\\); it was not sent" -- sh -c "printf 'a\\377b\\n/history\\n/quit\\n' | '$BIN' chat -m '$tmp/v4m'"
    check "chat: an input line with a NUL byte is refused" 0 "your input line contains a NUL byte; it was not sent" -- sh -c "printf 'a\\000b\\n/quit\\n' | '$BIN' chat -m '$tmp/v4m'"
else
    echo "FAIL cli: models/nano/model.safetensors is missing"; fail=$((fail + 1))
fi

# the built-in chat model (issue 7, tools/train/README.md "nano-chat"): a trained tool prompt rendered by
# `dsv4 render`, continued greedily by `dsv4 generate` (the prompt is echoed first and a newline ends the
# output: both cut off), read back by `dsv4 parse --think --strict`: reasoning, then one calculator call whose
# arguments have the schema's keys and types (library-level checks incl. the answer turn: test_nano_chat)
NC=models/nano-chat
if [ -f "$NC/model.safetensors" ]; then
    "$BIN" render --think --messages tests/golden/nano_chat/tool_request.json > "$tmp/nc_prompt.txt"
    "$BIN" generate -m "$NC" -p "$(cat "$tmp/nc_prompt.txt")" -n 160 --temperature 0 2>/dev/null \
        | tail -c +$(($(wc -c < "$tmp/nc_prompt.txt") + 1)) | head -c -1 > "$tmp/nc_gen.txt"
    check "nano-chat: render | generate | parse gives a calculator call" 0 '"arguments": "\{\\"operation\\": \\"(add|subtract|multiply|divide)\\", \\"a\\": [0-9]+, \\"b\\": [0-9]+\}"' -- sh -c "'$BIN' parse --think --strict < '$tmp/nc_gen.txt'"
    check "nano-chat: the call is named calculator" 0 '"name": "calculator"' -- sh -c "'$BIN' parse --think --strict < '$tmp/nc_gen.txt'"
    check "nano-chat: reasoning before the call" 0 '"reasoning_content": "The user wants [^"]+"' -- sh -c "'$BIN' parse --think --strict < '$tmp/nc_gen.txt'"
    check "chat -m models/nano-chat answers (thinking mode)" 0 "^thinking> ." -- sh -c "printf 'Hello!\\n/quit\\n' | '$BIN' chat -m $NC --temperature 0 --max-tokens 60"
else
    echo "FAIL cli: $NC/model.safetensors is missing"; fail=$((fail + 1))
fi

# real-shapes benchmark tools (docs/performance.md): the checkpoint writer at tiny widths (a few MB), then the
# benchmark on it (head split via the twin, prefill, synthetic long-context fill)
FLASH=$(wrap "${BUILD:-build/rel}/tools/make_flash_ckpt")
check "make_flash_ckpt -h prints its usage" 0 "^usage: make_flash_ckpt " -- "$FLASH" -h
check "make_flash_ckpt: a hash-routed layer after another is refused" 2 "hash-routed layer 0 must come before the others" -- "$FLASH" -o "$tmp/fc" --layers 3,0
check "make_flash_ckpt --tiny: loads; the twin's logits equal the full model's" 0 "the twin's 256 logits equal the full model's first 256 bit for bit" -- "$FLASH" --tiny -o "$tmp/fc"
check "bench on the tiny checkpoint (twin, prefill, context 4 Ki)" 0 "decode at context 4 Ki \\(ms/token\\) +[0-9.]+" -- "$BIN" bench -m "$tmp/fc/full" --twin "$tmp/fc/twin" -t 1 -n 2 --prefill 40 --ctx 4096 --bw-mib 64 --no-warm
# decode with more o_groups than one dsv4_linear_multi call takes (forward.c: wo_a's group products in calls of at
# most DSV4_LINEAR_MULTI_MAX = 32 groups): nano's config with 64 heads in 64 groups, random weights; the last row of
# a token-by-token run must equal a whole-prompt prefill's bit for bit
sed -e 's/"num_attention_heads": 4/"num_attention_heads": 64/' -e 's/"o_groups": 2/"o_groups": 64/' models/nano/config.json > "$tmp/g64.json"
check "make_flash_ckpt: nano with 64 heads in 64 output groups" 0 "" -- "$FLASH" -o "$tmp/g64" --config "$tmp/g64.json" --layers 0,1 --no-check
G64T=5,17,42,99,3,77,150,8,200,31
check "64 output groups: decode's last logits equal the prefill's" 0 "^identical$" -- sh -c "'$BIN' logits -m '$tmp/g64/full' --tokens $G64T --prefill 1 --out '$tmp/g64d.bin' -t 2 && '$BIN' logits -m '$tmp/g64/full' --tokens $G64T --out '$tmp/g64p.bin' -t 2 && tail -c \$(wc -c < '$tmp/g64p.bin') '$tmp/g64d.bin' | cmp -s - '$tmp/g64p.bin' && echo identical"
# every expert of every token (16 routed, top 16: a one-token step then takes moe()'s per-expert loop, since a one-
# token multi call holds at most 15 routed experts and the session chunk may be 1): a prefill in chunks of 1 token
# and one in chunks of 8 give the same logits bit for bit (the chunk-8 MoE gathers its rows in the router-logit
# buffer, which a chunk of 1 could not hold)
sed -e 's/"n_routed_experts": 8/"n_routed_experts": 16/' -e 's/"num_experts_per_tok": 2/"num_experts_per_tok": 16/' models/nano/config.json > "$tmp/e16.json"
check "make_flash_ckpt: nano with 16 routed experts, top 16" 0 "" -- "$FLASH" -o "$tmp/e16" --config "$tmp/e16.json" --layers 0,1 --no-check
check "16 of 16 experts: chunk 1 and chunk 8 give the same logits" 0 "^identical$" -- sh -c "'$BIN' logits -m '$tmp/e16/full' --tokens $G64T --chunk 1 --out '$tmp/e16a.bin' -t 2 && '$BIN' logits -m '$tmp/e16/full' --tokens $G64T --chunk 8 --out '$tmp/e16b.bin' -t 2 && cmp -s '$tmp/e16a.bin' '$tmp/e16b.bin' && echo identical"
check "bench: -t 0 refused at parse time" 2 "option -t: '0' is not a list of thread counts" -- "$BIN" bench -m "$tmp/nonexistent" -t 0

check "--kernel with an unknown path is a usage error" 2 "unknown kernel path 'neon9'" -- "$BIN" info -m models/nano --kernel neon9
check "-t above 1024 is a usage error" 2 "option -t: '1025' is not an integer in \\[0, 1024\\]" -- "$BIN" generate -m models/nano -p x -n 1 -t 1025
check "-t -1 is a usage error" 2 "option -t: '-1' is not an integer in \\[0, 1024\\]" -- "$BIN" generate -m models/nano -p x -n 1 -t -1
check "-t 3 --kernel scalar generates the same text as the default" 0 "^same$" -- sh -c "a=\$('$BIN' generate -m models/nano -p ROMEO: -n 24 --temperature 0 -t 3 --kernel scalar) && b=\$('$BIN' generate -m models/nano -p ROMEO: -n 24 --temperature 0) && [ \"\$a\" = \"\$b\" ] && echo same"

# the command-line front end (issue 8)
. tests/cli.sh
# the HTTP server (issue 7)
. tests/server/server.sh

# the repository stands on its own (issue 8): no tracked file points outside it; and the check can fail
check "no tracked file refers to a path outside the repository" 0 "^ok$" -- tests/check_paths.sh
mkdir -p "$tmp/paths/a" && printf 'see ../%s/data/x.txt\nok: /tmp/x /usr/share/y https://example.org/home/z\n' shared > "$tmp/paths/a/doc.md"
check "check_paths finds a planted reference to the shared folder next to the repository" 1 "a/doc.md:1:see" -- tests/check_paths.sh "$tmp/paths"
check "check_paths flags nothing else (/tmp, /usr, URLs)" 1 "^check_paths: 1 reference" -- tests/check_paths.sh "$tmp/paths"
printf 'x = "/%s/someone/data"\n' home > "$tmp/paths/a/doc.md"
check "check_paths finds a planted home directory path" 1 "a/doc.md:1:x" -- tests/check_paths.sh "$tmp/paths"
printf '/* see %s \302\2474.2 */\n' spec > "$tmp/paths/a/doc.md"
check "check_paths finds a planted citation of the spec files" 1 "a/doc.md:1:/\\* see" -- tests/check_paths.sh "$tmp/paths"

echo "(the CLI and server checks took $((SECONDS - t_cli)) s; the slowest:"
sort -rn "$tmp/check_times" 2>/dev/null | head -n 8 | sed 's/^\([0-9]*\) /  \1 s  /'
echo ")"
if [ -n "$bins_pid" ]; then
    wait "$bins_pid"; cat "$tmp/bins.log"
    if read -r p f < "$tmp/bins.count"; then pass=$((pass + p)); fail=$((fail + f))
    else echo "FAIL the test binaries' run ended without its counts"; fail=$((fail + 1)); fi
fi
echo
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
