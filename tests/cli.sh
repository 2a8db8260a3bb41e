# tests/cli.sh — end-to-end checks of the command-line front end (issue 8: output discipline, errors, feedback,
# signals, the chat REPL). Sourced by tests/run.sh, which defines check(), $BIN, $tmp, pass and fail.
NANO=models/nano
ENC=vendor/v4-encoding

# ---- output discipline: a write error on stdout is exit 1 with a message, for every command that writes
for args in "generate -m $NANO -p ROMEO: -n 4" "info -m $NANO" "tokenize -m $NANO --text hi" "detokenize -m $NANO --ids 5,6" \
            "render --messages $ENC/test_input_4.json" "ppl -m $NANO -f $NANO/config.json --max-tokens 12 --window 6" \
            "logits -m $NANO --tokens 5,6 --out -" "info -h" "--version" "help generate"; do
    check "write error on stdout: dsv4 $args > /dev/full" 1 "write error on stdout: No space left on device" -- sh -c "'$BIN' $args > /dev/full"
done
check "write error on stdout: dsv4 parse > /dev/full" 1 "write error on stdout" -- sh -c "echo hi | '$BIN' parse > /dev/full"
check "logits --out - writes the rows to stdout (2 rows x 1024 float32)" 0 "^8192$" -- sh -c "'$BIN' logits -m $NANO --tokens 5,6,7 --prefill 2 --out - 2>/dev/null | wc -c"
check "logits: an id outside the vocabulary writes nothing" 0 "^0 is not below vocab_size 1024$" -- sh -c "'$BIN' logits -m $NANO --tokens 5,1024 --out - 2>&1 >/dev/null | grep -o 'item 1 is not below vocab_size 1024' | sed 's/item 1/0/'; '$BIN' logits -m $NANO --tokens 5,1024 --out - 2>/dev/null | wc -c | grep -q '^0$' || echo wrote"
check "detokenize: a bad id late in the list writes nothing" 0 "^0$" -- sh -c "'$BIN' detokenize -m $NANO --ids '5 6 99999' 2>/dev/null | wc -c"
check "render --tokens: a missing tokenizer is found before anything is printed" 0 "^0$" -- sh -c "'$BIN' render --messages $ENC/test_input_4.json --tokenizer '$tmp/none.json' --tokens 2>/dev/null | wc -c"
check "render -m: a tokenizer without the V4 special tokens is refused as chat does" 1 "lacks 5 DeepSeek-V4 special tokens" -- "$BIN" render -m $NANO --messages $ENC/test_input_4.json
check "generate -f FILE gives what -p gives" 0 "^same$" -- sh -c "printf 'ROMEO:' > '$tmp/p.txt'; a=\$('$BIN' generate -m $NANO -f '$tmp/p.txt' -n 8 --temp 0 2>/dev/null); b=\$('$BIN' generate -m $NANO -p ROMEO: -n 8 --temp 0 2>/dev/null); [ \"\$a\" = \"\$b\" ] && echo same"
check "generate -s: the same seed gives the same text" 0 "^same$" -- sh -c "a=\$('$BIN' generate -m $NANO -p ROMEO: -n 16 -s 7 2>/dev/null); b=\$('$BIN' generate -m $NANO -p ROMEO: -n 16 --seed 7 2>/dev/null); [ \"\$a\" = \"\$b\" ] && echo same"
check "generate -v prints the random seed" 0 "dsv4 generate: seed [0-9]+ \\(random; -s to repeat\\)" -- "$BIN" generate -m $NANO -p ROMEO: -n 2 -v

# ---- errors that help
check "-m given a file" 1 "-m takes the model directory .* and $NANO/config.json is a file; try -m $NANO" -- "$BIN" generate -m $NANO/config.json -p x
check "-m given a missing directory" 1 "-m $tmp/nowhere: No such file or directory" -- "$BIN" generate -m "$tmp/nowhere" -p x
mkdir -p "$tmp/cfgonly"; cp $NANO/config.json "$tmp/cfgonly/"
check "a config without weights says where DeepSeek publishes them" 1 "no weights \\(\\*.safetensors\\). DeepSeek publishes them on Hugging Face, e.g. .hf download deepseek-ai/DeepSeek-V4-Flash" -- "$BIN" generate -m "$tmp/cfgonly" -p x
sed 's/"max_position_embeddings": 1048576/"max_position_embeddings": 64/' $NANO/config.json > "$tmp/cfgonly/config.json"
mkdir -p "$tmp/short"; ln -sf "$PWD/$NANO/model.safetensors" "$PWD/$NANO/tokenizer.json" "$tmp/short/"; cp "$tmp/cfgonly/config.json" "$tmp/short/"
check "-c above max_position_embeddings is refused" 2 "-c 65 is above the model's max_position_embeddings 64 \\(config.json\\)" -- "$BIN" generate -m "$tmp/short" -p ROMEO: -n 4 -c 65

# ---- feedback
check "one-line load summary" 0 "dsv4 generate: $NANO: 3.18M parameters \\(1.87M active\\), 3.75 MiB of weights mapped( \\([0-9.]+ [KMG]iB resident\\))?, ctx 6, state [0-9.]+ MiB, 1 thread, kernel [a-z0-9]+, loaded in [0-9.]+ s" -- "$BIN" generate -m $NANO -p ROMEO: -n 4 -t 1
check "ppl prints running values per window" 0 "^window 2/2: [0-9]+ predictions, ppl [0-9.]+; running: [0-9]+ predictions, ppl [0-9.]+$" -- "$BIN" ppl -m $NANO -f $NANO/config.json --max-tokens 16 --window 8
check "dsv4 help COMMAND = dsv4 COMMAND -h" 0 "^usage: dsv4 ppl " -- "$BIN" help ppl
check "dsv4 --version" 0 "^dsv4 [0-9]+\\.[0-9]+" -- "$BIN" --version
