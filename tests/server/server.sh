# tests/server/server.sh — `dsv4 serve` end to end with curl (sourced by tests/run.sh: uses check, BIN, tmp, pass,
# fail). Every server is started on 127.0.0.1 with --port 0 (the port it got is read from its log), every wait is
# bounded, and every server is killed at the end (also when run.sh exits early). The model is $DSV4_SERVER_MODEL
# (default models/nano: a plain-text tokenizer, so chat prompts are plain text and thinking is disabled below).
SRV_MODEL=${DSV4_SERVER_MODEL:-models/nano}
SRV_PIDS=""
trap 'for p in $SRV_PIDS; do kill "$p" 2>/dev/null; done; rm -rf "$tmp"' EXIT

# srv_start NAME ARGS...: start a server, set SRV_PORT and SRV_PID; returns 1 when it is not up within 20 s
srv_start() {
    local name=$1; shift
    "$BIN" serve -m "$SRV_MODEL" --port 0 -c 2048 "$@" > "$tmp/srv-$name.log" 2>&1 &
    SRV_PID=$!
    SRV_NAME=$name
    SRV_PIDS="$SRV_PIDS $SRV_PID"
    SRV_PORT=""
    for _ in $(seq 1 200); do
        SRV_PORT=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$tmp/srv-$name.log" 2>/dev/null)
        [ -n "$SRV_PORT" ] && return 0
        kill -0 "$SRV_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "FAIL server $name did not start:"; tail -n 5 "$tmp/srv-$name.log"; fail=$((fail + 1))
    return 1
}
# srv_stop: SIGTERM, wait at most 10 s, then SIGKILL; the exit status must be 0 and the log free of sanitizer
# reports (under SAN=1 a leak makes the status non-zero)
srv_stop() {
    kill "$SRV_PID" 2>/dev/null
    for _ in $(seq 1 100); do kill -0 "$SRV_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$SRV_PID" 2>/dev/null
    wait "$SRV_PID"
    local st=$?
    check "serve: server '$SRV_NAME' stops on SIGTERM with status 0, no sanitizer report" 0 "^status 0 reports 0$" -- \
        sh -c "echo status $st reports \$(grep -cE 'ERROR: AddressSanitizer|runtime error|LeakSanitizer' '$tmp/srv-$SRV_NAME.log')"
}
U() { echo "http://127.0.0.1:$SRV_PORT$1"; }
# post PATH JSON [curl args]: body, then a line "HTTP <status>"
# Under emulation ($DSV4_TEST_QEMU, .ci/cross.sh aarch64: the server runs under qemu-user, ~76x slower) the long
# prompts are 1000 bytes (~390 tokens), not 3000 (~1140), there are 10 mangled requests, not 120, the load test has 16
# concurrent streams on the 4 slots, not 64, and post waits up to 300 s, not 60 (so do the streamed requests and the
# SDK clients); everything else runs as natively
SRV_LONG=3000; NMUT_QEMU=10; SRV_WAIT=60; SRV_LOAD=64
case "${DSV4_TEST_QEMU:-0}" in 0|"") ;; *)
    SRV_LONG=1000; SRV_WAIT=300; SRV_LOAD=16
    echo "reduced under emulation (DSV4_TEST_QEMU): serve: long prompts of $SRV_LONG bytes, $NMUT_QEMU mangled requests, $SRV_LOAD concurrent streams" ;;
esac
post() { local p=$1 d=$2; shift 2; curl -sS -m $SRV_WAIT -w ' HTTP %{http_code}\n' -H 'Content-Type: application/json' "$@" --data-binary "$d" "$(U "$p")"; }
CHAT='"thinking":{"type":"disabled"},"temperature":0'
check "serve -h prints its usage" 0 "^usage: dsv4 serve -m DIR" -- "$BIN" serve -h
check "serve: --port 70000 refused at parse time" 2 "option --port: '70000' is not an integer in \\[0, 65535\\]" -- "$BIN" serve -m models/nano --port 70000
check "serve: -m is required" 2 "-m DIR is required" -- "$BIN" serve --port 0
check "serve: a bad --host is refused" 2 "--host 'nowhere' is not an IPv4 address" -- "$BIN" serve -m models/nano --host nowhere

if srv_start main --timeout 2 --body-limit 8K; then
    check "serve: GET /health" 0 '"status":"ok".*HTTP 200' -- curl -sS -m 10 -w ' HTTP %{http_code}\n' "$(U /health)"
    check "serve: GET /v1/models names the model" 0 "\"id\":\"$(basename "$SRV_MODEL")\".*\"object\":\"model\"" -- curl -sS -m 10 "$(U /v1/models)"
    check "serve: chat non-stream" 0 '"finish_reason":"length".*"cached_tokens":[0-9]+.*HTTP 200' -- \
        post /v1/chat/completions "{\"messages\":[{\"role\":\"user\",\"content\":\"ROMEO:\"}],\"max_tokens\":8,$CHAT}"
    check "serve: chat stream ends with usage and [DONE]" 0 '"choices":\[\],"usage":\{"prompt_tokens":[0-9]+.*data: \[DONE\]' -- \
        sh -c "curl -sS -N -m $SRV_WAIT --data-binary '{\"messages\":[{\"role\":\"user\",\"content\":\"ROMEO:\"}],\"max_tokens\":8,\"stream\":true,\"stream_options\":{\"include_usage\":true},$CHAT}' '$(U /v1/chat/completions)' | tr -d '\n'"
    check "serve: stream deltas are chat.completion.chunk" 0 '"object":"chat.completion.chunk".*"delta":\{"role":"assistant"' -- \
        post /v1/chat/completions "{\"messages\":[{\"role\":\"user\",\"content\":\"ROMEO:\"}],\"max_tokens\":2,\"stream\":true,$CHAT}"
    # prefix reuse: the same long request twice -> cached tokens and the same greedy output
    LONGC=$(head -c $SRV_LONG vendor/tinyshakespeare/tinyshakespeare.txt | tr -d '"\\' | tr '\n' ' ')
    REQ="{\"messages\":[{\"role\":\"system\",\"content\":\"$LONGC\"},{\"role\":\"user\",\"content\":\"KING:\"}],\"max_tokens\":16,$CHAT}"
    post /v1/chat/completions "$REQ" > "$tmp/r1.json"
    post /v1/chat/completions "$REQ" > "$tmp/r2.json"
    c1=$(sed -n 's/.*"content":"\([^"]*\)".*/\1/p' "$tmp/r1.json"); c2=$(sed -n 's/.*"content":"\([^"]*\)".*/\1/p' "$tmp/r2.json")
    k2=$(sed -n 's/.*"cached_tokens":\([0-9]*\).*/\1/p' "$tmp/r2.json"); p2=$(sed -n 's/.*"prompt_tokens":\([0-9]*\).*/\1/p' "$tmp/r2.json")
    check "serve: prefix reuse: cached_tokens > 0 ($k2 of $p2) and identical output" 0 '^ok$' -- \
        sh -c "[ -n '$c1' ] && [ '$c1' = '$c2' ] && [ '${k2:-0}' -gt 0 ] && echo ok"
    check "serve: stop string ends the content before it (finish_reason stop)" 0 '"content":"[^"\\]*"\},"logprobs":null,"finish_reason":"stop"' -- \
        post /v1/chat/completions "{\"messages\":[{\"role\":\"user\",\"content\":\"ROMEO:\"}],\"max_tokens\":40,\"stop\":[\"\\n\"],$CHAT}"
    check "serve: logprobs with top_logprobs 3" 0 '"logprobs":\{"content":\[\{"token":"[^"]*","logprob":-?[0-9.e-]+,"bytes":\[[0-9,]*\],"top_logprobs":\[(\{"token":"[^"]*","logprob":[^,]*,"bytes":\[[0-9,]*\]\},?){3}\]\}' -- \
        post /v1/chat/completions "{\"messages\":[{\"role\":\"user\",\"content\":\"ROMEO:\"}],\"max_tokens\":2,\"logprobs\":true,\"top_logprobs\":3,$CHAT}"
    check "serve: /v1/completions" 0 '"object":"text_completion".*"text":"[^"]+".*"finish_reason":"length"' -- \
        post /v1/completions '{"prompt":"ROMEO:","max_tokens":6,"temperature":0}'
    # bad input: API-shaped errors
    check "serve: malformed JSON -> 400" 0 'not valid JSON.*"type":"invalid_request_error".*HTTP 400' -- post /v1/chat/completions '{"messages": ['
    check "serve: wrong type -> 400 naming the field" 0 "'temperature' must be a number.*\"param\":\"temperature\".*HTTP 400" -- \
        post /v1/chat/completions '{"messages":[{"role":"user","content":"x"}],"temperature":"hot"}'
    check "serve: unknown role -> 400" 0 "messages\\[0\\].role 'wizard' is not one of.*HTTP 400" -- \
        post /v1/chat/completions '{"messages":[{"role":"wizard","content":"x"}]}'
    check "serve: tool message without a matching call -> 400" 0 "messages\\[1\\].tool_call_id 'call_x' does not match a tool call.*HTTP 400" -- \
        post /v1/chat/completions '{"messages":[{"role":"user","content":"x"},{"role":"tool","tool_call_id":"call_x","content":"1"}]}'
    check "serve: invalid UTF-8 -> 400" 0 "not valid UTF-8 \\(byte 0xff at offset [0-9]+\\).*HTTP 400" -- \
        sh -c "printf '{\"messages\":[{\"role\":\"user\",\"content\":\"a\\377\"}]}' | curl -sS -m 10 -w ' HTTP %{http_code}\n' --data-binary @- '$(U /v1/chat/completions)'"
    check "serve: body over --body-limit -> 413" 0 '"code":"request_too_large".*HTTP 413' -- \
        sh -c "head -c 9000 /dev/zero | tr '\\0' a | curl -sS -m 10 -w ' HTTP %{http_code}\n' --data-binary @- '$(U /v1/chat/completions)'"
    check "serve: prompt longer than the context -> context_length_exceeded" 0 '"code":"context_length_exceeded".*HTTP 400' -- \
        sh -c "{ printf '{\"messages\":[{\"role\":\"user\",\"content\":\"'; for i in \$(seq 1 2600); do printf 'ab '; done; printf '\"}]}'; } > '$tmp/long.json'; curl -sS -m 30 -w ' HTTP %{http_code}\n' --data-binary @'$tmp/long.json' -H 'Expect:' '$(U /v1/chat/completions)'"
    check "serve: n = 2 -> 400" 0 "only n = 1 is supported.*\"param\":\"n\".*HTTP 400" -- \
        post /v1/chat/completions '{"messages":[{"role":"user","content":"x"}],"n":2}'
    check "serve: unknown route -> 404 JSON" 0 '"error":\{"message":"no route for GET /v2/nothing".*HTTP 404' -- \
        curl -sS -m 10 -w ' HTTP %{http_code}\n' "$(U /v2/nothing)"
    # a half-sent request: Content-Length 100, 10 bytes sent, then silence: the server closes it after --timeout 2
    check "serve: a half-sent request is closed after --timeout" 0 '^closed in [2-6] s$' -- bash -c "
        exec 3<>/dev/tcp/127.0.0.1/$SRV_PORT || exit 1
        printf 'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"messages' >&3
        t0=\$(date +%s); timeout 12 cat <&3 >/dev/null; t1=\$(date +%s); echo \"closed in \$((t1 - t0)) s\""
    check "serve: GET / serves the chat page (no external resources)" 0 '^html ok$' -- \
        sh -c "curl -sS -m 10 '$(U /)' > '$tmp/page.html'; grep -q '<title>dsv4 chat</title>' '$tmp/page.html' && grep -q '/v1/chat/completions' '$tmp/page.html' && ! grep -Eq '(src|href)=\"https?:' '$tmp/page.html' && echo html ok"
    # (valid mutants prefill ~700 tokens of tool prompt: fewer of them under the sanitizers)
    NMUT=120; case "${SAN:-}$BIN" in *san*|1*) NMUT=40 ;; esac
    [ "$SRV_LONG" -lt 3000 ] && NMUT=$NMUT_QEMU
    out=$(DSV4_URL="http://127.0.0.1:$SRV_PORT" timeout 300 node tests/server/mutate.mjs $NMUT 2>&1)
    printf '%s\n' "$out" | grep -E '^FAIL' | head -n 5
    check "serve: $NMUT mangled requests: each 200 or a 4xx JSON error, the server healthy" 0 '^1 passed, 0 failed$' -- printf '%s\n' "$out"
    check "serve: /metrics (Prometheus text)" 0 'dsv4_requests_total\{endpoint="chat_completions",status="400"\} [0-9]+' -- curl -sS -m 10 "$(U /metrics)"
    check "serve: still healthy after the bad requests" 0 '"status":"ok"' -- curl -sS -m 10 "$(U /health)"
    srv_stop
fi

if srv_start key --api-key sekret; then
    check "serve: missing API key -> 401" 0 '"code":"invalid_api_key".*HTTP 401' -- post /v1/chat/completions '{"messages":[]}'
    check "serve: wrong API key -> 401" 0 'HTTP 401' -- curl -sS -m 10 -w ' HTTP %{http_code}\n' -H 'Authorization: Bearer nope' "$(U /v1/models)"
    check "serve: right API key" 0 '"object":"list".*HTTP 200' -- curl -sS -m 10 -w ' HTTP %{http_code}\n' -H 'Authorization: Bearer sekret' "$(U /v1/models)"
    check "serve: x-api-key header (Anthropic clients)" 0 'HTTP 200' -- curl -sS -m 10 -w ' HTTP %{http_code}\n' -H 'x-api-key: sekret' "$(U /v1/models)"
    check "serve: /health needs no key" 0 'HTTP 200' -- curl -sS -m 10 -w ' HTTP %{http_code}\n' "$(U /health)"
    srv_stop
fi

# one slot, a queue of 1: two long streams fill both, a third request gets 503 + Retry-After; killing the clients
# frees the slot at once
if srv_start queue --parallel 1 --queue 1; then
    BIG="{\"messages\":[{\"role\":\"user\",\"content\":\"ROMEO:\"}],\"max_tokens\":1900,\"stream\":true,\"ignore_eos\":true,$CHAT}"
    # wait (polling /health, at most 20 s each) until the first stream holds the slot and the second the queue
    curl -sS -N -m 120 --data-binary "$BIG" "$(U /v1/chat/completions)" > /dev/null 2>&1 & C1=$!
    for i in $(seq 1 200); do case $(curl -sS -m 5 "$(U /health)") in *'"slots_busy":1'*) break;; esac; sleep 0.1; done
    curl -sS -N -m 120 --data-binary "$BIG" "$(U /v1/chat/completions)" > /dev/null 2>&1 & C2=$!
    for i in $(seq 1 200); do case $(curl -sS -m 5 "$(U /health)") in *'"slots_busy":1,"queue":1'*) break;; esac; sleep 0.1; done
    check "serve: full queue -> 503 with Retry-After" 0 'Retry-After: 1.*HTTP 503' -- \
        sh -c "curl -sS -m 10 -i -w ' HTTP %{http_code}\n' --data-binary '{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":1}' '$(U /v1/chat/completions)' | tr -d '\r' | tr '\n' ' '"
    kill $C1 $C2 2>/dev/null; wait $C1 $C2 2>/dev/null
    check "serve: a client that disconnects frees its slot" 0 '"slots_busy":0,"queue":0' -- \
        sh -c "for i in \$(seq 1 50); do r=\$(curl -sS -m 5 '$(U /health)'); case \$r in *'\"slots_busy\":0,\"queue\":0'*) echo \$r; exit 0;; esac; sleep 0.1; done; echo \$r"
    # a non-streaming client that gives up (curl -m 1) frees its slot too
    curl -sS -m 1 --data-binary "{\"messages\":[{\"role\":\"user\",\"content\":\"ROMEO:\"}],\"max_tokens\":1900,\"ignore_eos\":true,$CHAT}" "$(U /v1/chat/completions)" > /dev/null 2>&1
    check "serve: a non-streaming client that disconnects frees its slot (within 1 s; the reply needed more)" 0 '"slots_busy":0,"queue":0' -- \
        sh -c "for i in \$(seq 1 10); do r=\$(curl -sS -m 5 '$(U /health)'); case \$r in *'\"slots_busy\":0,\"queue\":0'*) echo \$r; exit 0;; esac; sleep 0.1; done; echo \$r"
    srv_stop
fi

# Anthropic Messages and OpenAI Responses (shapes; the SDK tests in tests/server/sdk.mjs go further)
if srv_start apis; then
    check "serve: a numeric reasoning_effort on a DeepSeek-V4 model is a 400 (a V4.1 option)" 0 'DeepSeek-V4.1 option.*"param":"reasoning_effort".*HTTP 400' -- \
        post /v1/chat/completions '{"messages":[{"role":"user","content":"x"}],"max_tokens":1,"reasoning_effort":50}'
    check "serve: /v1/messages non-stream" 0 '"type":"message","role":"assistant".*"content":\[\{"type":"text","text":"[^"]+"\}\],"stop_reason":"max_tokens".*"cache_read_input_tokens":[0-9]+' -- \
        post /v1/messages '{"model":"nano","max_tokens":6,"system":"Be brief.","messages":[{"role":"user","content":"ROMEO:"}],"temperature":0}'
    check "serve: /v1/messages stream: the Anthropic event sequence" 0 '^message_start content_block_start (content_block_delta )+content_block_stop message_delta message_stop $' -- \
        sh -c "curl -sS -N -m $SRV_WAIT --data-binary '{\"max_tokens\":4,\"stream\":true,\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":64},\"messages\":[{\"role\":\"user\",\"content\":\"ROMEO:\"}]}' '$(U /v1/messages)' | sed -n 's/^event: //p' | tr '\n' ' '"
    check "serve: /v1/messages tool_use / tool_result history renders" 0 '"type":"message".*HTTP 200' -- \
        post /v1/messages '{"max_tokens":2,"messages":[{"role":"user","content":"add 2 and 3"},{"role":"assistant","content":[{"type":"thinking","thinking":"use add","signature":""},{"type":"tool_use","id":"toolu_1","name":"add","input":{"a":2,"b":3}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"5"}]}],"tools":[{"name":"add","description":"a+b","input_schema":{"type":"object","properties":{"a":{"type":"number"},"b":{"type":"number"}}}}]}'
    check "serve: /v1/messages without max_tokens -> Anthropic error shape" 0 '^\{"type":"error","error":\{"type":"invalid_request_error","message":"max_tokens: Field required"\}\} HTTP 400' -- \
        post /v1/messages '{"messages":[{"role":"user","content":"x"}]}'
    check "serve: /v1/messages tool_result without a tool_use -> 400" 0 "does not match a tool call.*HTTP 400" -- \
        post /v1/messages '{"max_tokens":2,"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"nope","content":"5"}]}]}'
    check "serve: /v1/responses non-stream" 0 '"object":"response","created_at":[0-9]+,"status":"incomplete".*"type":"output_text","text":"[^"]+".*"input_tokens_details":\{"cached_tokens":[0-9]+\}' -- \
        post /v1/responses '{"input":"ROMEO:","instructions":"Be brief.","max_output_tokens":6,"reasoning":{"effort":"none"},"temperature":0}'
    check "serve: /v1/responses stream events" 0 '^response.created response.in_progress response.output_item.added response.content_part.added (response.reasoning_text.delta )+response.reasoning_text.done response.content_part.done response.output_item.done response.incomplete $' -- \
        sh -c "curl -sS -N -m $SRV_WAIT --data-binary '{\"input\":[{\"role\":\"user\",\"content\":\"ROMEO:\"},{\"type\":\"function_call\",\"call_id\":\"c1\",\"name\":\"f\",\"arguments\":\"{}\"},{\"type\":\"function_call_output\",\"call_id\":\"c1\",\"output\":\"42\"}],\"tools\":[{\"type\":\"function\",\"name\":\"f\",\"parameters\":{\"type\":\"object\"}}],\"max_output_tokens\":3,\"stream\":true}' '$(U /v1/responses)' | sed -n 's/^event: //p' | tr '\n' ' '"
    check "serve: /v1/responses previous_response_id refused" 0 "'previous_response_id' is not supported.*HTTP 400" -- \
        post /v1/responses '{"input":"x","previous_response_id":"resp_1"}'
    srv_stop
fi

# the official SDKs (tests/server/sdk.mjs; node_modules from `npm ci` in tests/server, done by .ci/run), on the test
# model and, when it is there, on models/nano-chat with a real tool-call round trip (DSV4_TOOL_MODEL=1)
run_sdk() {   # run_sdk NAME MODEL_DIR TOOL_MODEL
    local save=$SRV_MODEL
    SRV_MODEL=$2
    if srv_start "$1"; then
        out=$(DSV4_URL="http://127.0.0.1:$SRV_PORT" DSV4_MODEL_NAME="$(basename "$SRV_MODEL")" DSV4_TOOL_MODEL="$3" \
              DSV4_SDK_TIMEOUT_MS=$((SRV_WAIT * 1000)) timeout $((SRV_WAIT * 5)) node tests/server/sdk.mjs 2>&1); rc=$?
        printf '%s\n' "$out" | grep -Ev '^ok |^[0-9]+ passed, [0-9]+ failed'
        line=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -n 1)
        if [ -z "$line" ]; then
            echo "FAIL sdk.mjs ($2): exited $rc without a result line"; fail=$((fail + 1))
        else
            p=${line%% passed*}; f=${line#*passed, }; f=${f%% failed*}
            pass=$((pass + p)); fail=$((fail + f))
            if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then echo "FAIL sdk.mjs ($2): exited $rc"; fail=$((fail + 1)); else echo "ok   sdk.mjs ($2): $line"; fi
        fi
        srv_stop
    fi
    SRV_MODEL=$save
}
if [ ! -d tests/server/node_modules/openai ] || [ ! -d tests/server/node_modules/@anthropic-ai/sdk ]; then
    echo "FAIL sdk: tests/server/node_modules is missing (run: (cd tests/server && npm ci))"; fail=$((fail + 1))
else
    run_sdk sdk "$SRV_MODEL" "${DSV4_TOOL_MODEL:-0}"
    if [ -f models/nano-chat/model.safetensors ] && [ "$SRV_MODEL" != models/nano-chat ]; then
        run_sdk sdk-chat models/nano-chat 1
    fi
fi

# thinking-mode agent turn with the V4 special tokens (nano weights + a tokenizer with the specials as added tokens on
# ids 1017..1023): the next turn drops the reasoning after "<｜Assistant｜>", so everything up to it is reused (the
# checkpoint one token before the end of the first prompt)
if [ -f models/nano/model.safetensors ]; then
    mkdir -p "$tmp/srv-v4m"; ln -sf "$PWD/models/nano/config.json" "$PWD/models/nano/model.safetensors" "$tmp/srv-v4m/"
    A='"single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":true}'
    sed "s/\"added_tokens\":\[/\"added_tokens\":[{\"id\":1017,\"content\":\"<｜begin▁of▁sentence｜>\",$A,{\"id\":1018,\"content\":\"<｜end▁of▁sentence｜>\",$A,{\"id\":1019,\"content\":\"<｜User｜>\",$A,{\"id\":1020,\"content\":\"<｜Assistant｜>\",$A,{\"id\":1021,\"content\":\"<think>\",$A,{\"id\":1022,\"content\":\"<\/think>\",$A,{\"id\":1023,\"content\":\"｜DSML｜\",$A,/" \
        models/nano/tokenizer.json > "$tmp/srv-v4m/tokenizer.json"
    SAVE_MODEL=$SRV_MODEL; SRV_MODEL=$tmp/srv-v4m
    if srv_start think; then
        T1='{"messages":[{"role":"system","content":"You are a player."},{"role":"user","content":"ROMEO: who is there?"}],"max_tokens":8,"temperature":0}'
        post /v1/chat/completions "$T1" > "$tmp/t1.json"
        p1=$(sed -n 's/.*"prompt_tokens":\([0-9]*\).*/\1/p' "$tmp/t1.json")
        T2='{"messages":[{"role":"system","content":"You are a player."},{"role":"user","content":"ROMEO: who is there?"},{"role":"assistant","content":"A friend.","reasoning_content":"hm"},{"role":"user","content":"JULIET: and now?"}],"max_tokens":4,"temperature":0}'
        check "serve: thinking mode, next turn reuses all but the dropped reasoning (first prompt ${p1:-?} tokens)" 0 "\"cached_tokens\":$(( ${p1:-1} - 1 ))[,}]" -- post /v1/chat/completions "$T2"
        check "serve: thinking mode: reasoning_content in the reply" 0 '"reasoning_content":"[^"]' -- cat "$tmp/t1.json"
        srv_stop
    fi
    SRV_MODEL=$SAVE_MODEL
fi

# tool_choice is enforced (nano-chat, chat mode, only the calculator offered): for this prompt the model answers in
# prose under "auto"; a named function or "required" (Anthropic "any") forces the DSML tool-call opening where the
# reply begins and forbids the end of sequence until the call block is closed, so the reply is a tool call
if [ -f models/nano-chat/model.safetensors ]; then
    SAVE_MODEL=$SRV_MODEL; SRV_MODEL=models/nano-chat
    if srv_start toolchoice; then
        CALC='{"type":"function","function":{"name":"calculator","description":"Apply an arithmetic operation to two numbers.","parameters":{"type":"object","properties":{"operation":{"type":"string","enum":["add","subtract","multiply","divide"]},"a":{"type":"number"},"b":{"type":"number"}},"required":["operation","a","b"]}}}'
        TCQ='"messages":[{"role":"user","content":"Tell me a story about the king."}],"temperature":0,"max_tokens":120,"thinking":{"type":"disabled"}'
        check "serve: tool_choice auto: this prompt gets prose, no tool call" 0 '"finish_reason":"stop".*HTTP 200' -- post /v1/chat/completions "{$TCQ,\"tools\":[$CALC],\"tool_choice\":\"auto\"}"
        check "serve: tool_choice named: the reply is a call of that function" 0 '"tool_calls":\[\{.*"name":"calculator".*"finish_reason":"tool_calls".*HTTP 200' -- post /v1/chat/completions "{$TCQ,\"tools\":[$CALC],\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"calculator\"}}}"
        check "serve: tool_choice required with no tools is refused" 0 '"param":"tool_choice".*HTTP 400' -- post /v1/chat/completions "{$TCQ,\"tools\":[],\"tool_choice\":\"required\"}"
        AQ='"model":"m","max_tokens":120,"temperature":0,"messages":[{"role":"user","content":"Hello"}],"tools":[{"name":"calculator","description":"Apply an arithmetic operation to two numbers.","input_schema":{"type":"object","properties":{"a":{"type":"number"}}}}]'
        check "serve: Anthropic tool_choice auto: end_turn" 0 '"stop_reason":"end_turn".*HTTP 200' -- post /v1/messages "{$AQ,\"tool_choice\":{\"type\":\"auto\"}}"
        # (nano-chat writes a malformed call here: the forced opening shows, returned as text by the parser's fallback)
        check "serve: Anthropic tool_choice any: the reply opens a tool call" 0 '("type":"tool_use"|DSML｜tool_calls>).*HTTP 200' -- post /v1/messages "{$AQ,\"tool_choice\":{\"type\":\"any\"}}"
        srv_stop
    fi
    SRV_MODEL=$SAVE_MODEL
fi

# load: 64 (under emulation 16) concurrent streaming clients on 4 slots, all complete (under SAN=1 the server's exit also proves no leak)
if srv_start load --parallel 4 -c 512; then
    out=$(DSV4_URL="http://127.0.0.1:$SRV_PORT" timeout 300 node tests/server/load.mjs $SRV_LOAD 16 2>&1)
    printf '%s\n' "$out" | grep -E '^load:|^FAIL' | head -n 5
    check "serve: $SRV_LOAD concurrent streams all complete" 0 "^load: $SRV_LOAD concurrent streams x 16 tokens: $SRV_LOAD complete" -- printf '%s\n' "$out"
    check "serve: slots idle again after the load" 0 '"slots_busy":0,"queue":0' -- curl -sS -m 10 "$(U /health)"
    # batched decode (dsv4_eval_batch over the busy slots) gives each stream the text it gets alone
    B1="{\"messages\":[{\"role\":\"user\",\"content\":\"KING RICHARD:\"}],\"max_tokens\":300,$CHAT}"
    B2="{\"messages\":[{\"role\":\"user\",\"content\":\"QUEEN:\"}],\"max_tokens\":300,$CHAT}"
    post /v1/chat/completions "$B1" > "$tmp/b1.json"; post /v1/chat/completions "$B2" > "$tmp/b2.json"
    post /v1/chat/completions "$B1" > "$tmp/b1c.json" & BP=$!
    post /v1/chat/completions "$B2" > "$tmp/b2c.json"; wait $BP
    x1=$(sed 's/"id":"[^"]*"//; s/"created":[0-9]*//; s/"cached_tokens":[0-9]*//; s/"prompt_cache_[a-z]*_tokens":[0-9]*//g' "$tmp/b1.json" "$tmp/b2.json" | md5sum)
    x2=$(sed 's/"id":"[^"]*"//; s/"created":[0-9]*//; s/"cached_tokens":[0-9]*//; s/"prompt_cache_[a-z]*_tokens":[0-9]*//g' "$tmp/b1c.json" "$tmp/b2c.json" | md5sum)
    check "serve: two concurrent greedy streams (batched decode) give their solo outputs" 0 '^same$' -- sh -c "[ '$x1' = '$x2' ] && grep -q '\"content\":\"[^\"]' '$tmp/b1c.json' && echo same"
    check "serve: decode steps were batched (rows > steps in /metrics)" 0 '^batched$' -- sh -c "curl -sS -m 10 '$(U /metrics)' | awk '/^dsv4_decode_steps_total/{s=\$2} /^dsv4_decode_rows_total/{r=\$2} END{if (r > s) print \"batched\"; else print s, r}'"
    srv_stop
fi

# disk cache (--cache-dir): a restart reuses the saved state with the same output; a corrupt file is detected by its
# checksum, deleted and ignored; a foreign file is left alone; a leftover .tmp from a killed write is deleted;
# --cache-size bounds the directory (least recently used out)
KV="$tmp/kv"
LONGK=$(head -c $SRV_LONG vendor/tinyshakespeare/tinyshakespeare.txt | tr -d '"\\' | tr '\n' ' ')
KREQ="{\"messages\":[{\"role\":\"system\",\"content\":\"$LONGK\"},{\"role\":\"user\",\"content\":\"KING:\"}],\"max_tokens\":12,$CHAT}"
if srv_start disk1 --cache-dir "$KV"; then
    post /v1/chat/completions "$KREQ" > "$tmp/k1.json"
    srv_stop
fi
check "serve --cache-dir: one state file written (no .tmp left)" 0 '^1 0$' -- sh -c "echo \$(ls '$KV' | grep -c '\\.dsv4kv\$') \$(ls '$KV' | grep -c tmp)"
head -c 1000 /dev/urandom > "$KV/0123456789abcdef.dsv4kv"; echo partial > "$KV/aaaa.dsv4kv.tmp.999"
if srv_start disk2 --cache-dir "$KV"; then
    post /v1/chat/completions "$KREQ" > "$tmp/k2.json"
    srv_stop
fi
kc1=$(sed -n 's/.*"content":"\([^"]*\)".*/\1/p' "$tmp/k1.json"); kc2=$(sed -n 's/.*"content":"\([^"]*\)".*/\1/p' "$tmp/k2.json")
kk2=$(sed -n 's/.*"cached_tokens":\([0-9]*\).*/\1/p' "$tmp/k2.json")
check "serve --cache-dir: after a restart the prompt comes from disk (cached $kk2) with the same output" 0 '^ok$' -- \
    sh -c "[ -n '$kc1' ] && [ '$kc1' = '$kc2' ] && [ '${kk2:-0}' -gt $((SRV_LONG / 3)) ] && echo ok"
check "serve --cache-dir: a foreign file is left alone, a leftover .tmp deleted" 0 '^foreign kept, tmp gone$' -- \
    sh -c "[ -f '$KV/0123456789abcdef.dsv4kv' ] && [ ! -f '$KV/aaaa.dsv4kv.tmp.999' ] && echo 'foreign kept, tmp gone'"
f=$(ls "$KV"/*.dsv4kv | grep -v 0123456789abcdef | head -n 1)
printf '\377' | dd of="$f" bs=1 seek=5000 conv=notrunc 2>/dev/null
if srv_start disk3 --cache-dir "$KV"; then
    post /v1/chat/completions "$KREQ" > "$tmp/k3.json"
    check "serve --cache-dir: a corrupt file is ignored (cached 0) and deleted, the output unchanged" 0 '^ok$' -- \
        sh -c "grep -q '\"cached_tokens\":0' '$tmp/k3.json' && grep -q 'checksum mismatch' '$tmp/srv-disk3.log' && grep -qF '\"content\":\"$kc1\"' '$tmp/k3.json' && echo ok"
    srv_stop
fi
rm -f "$KV"/*
if srv_start disk4 --cache-dir "$KV" --cache-size 1M; then
    post /v1/chat/completions "$KREQ" > /dev/null
    post /v1/chat/completions "${KREQ/KING:/QUEEN MARGARET:}" > /dev/null
    post /v1/chat/completions "${KREQ/KING:/GLOUCESTER:}" > /dev/null
    check "serve --cache-size 1M: the directory stays within the bound" 0 '^ok$' -- \
        sh -c "t=\$(cat '$KV'/*.dsv4kv | wc -c); [ \$t -gt 0 ] && [ \$t -le 1048576 ] && echo ok || echo \$t"
    srv_stop
fi

# the chat page in headless Chromium (tests/server/browser.mjs over the DevTools protocol; .ci/run installs chromium)
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$CHROMIUM" ]; then
    echo "FAIL browser: chromium is missing (.ci/run installs it)"; fail=$((fail + 1))
elif srv_start page; then
    out=$(DSV4_URL="http://127.0.0.1:$SRV_PORT" CHROMIUM="$CHROMIUM" timeout 120 node tests/server/browser.mjs 2>&1); rc=$?
    printf '%s\n' "$out" | grep -Ev '^ok |^[0-9]+ passed, [0-9]+ failed'
    check "serve: the chat page streams a reply in headless Chromium" 0 '^3 passed, 0 failed$' -- sh -c "printf '%s\n' '$(printf '%s' "$out" | tail -n 1)'; exit $rc"
    srv_stop
fi

# a DeepSeek-V4.1 model (tests/golden/v41/tiny-tok): no batched decode or saved states for V4.1 in the library yet, so
# two slots decode one after the other and no prefix checkpoints are taken (no warnings); --cache-dir is refused
SRV_MODEL_V4=$SRV_MODEL
SRV_MODEL=tests/golden/v41/tiny-tok
if srv_start v41 --parallel 2; then
    V41REQ='{"prompt":"ROMEO: good morrow","max_tokens":12,"temperature":0}'
    v41pids=""
    for i in 1 2 3; do post /v1/completions "$V41REQ" > "$tmp/v41-$i.json" & v41pids="$v41pids $!"; done
    wait $v41pids   # (not a bare wait: the server is a child of this shell too)
    check "serve V4.1 --parallel 2: three concurrent completions, each 12 tokens, the same text, no checkpoint warning" 0 '^ok$' -- \
        sh -c "for i in 1 2 3; do grep -q '\"completion_tokens\":12' '$tmp/v41-'\$i.json && grep -q 'HTTP 200' '$tmp/v41-'\$i.json || exit 1; done; \
               a=\$(sed 's/\"id\":\"[^\"]*\"//; s/\"created\":[0-9]*//' '$tmp/v41-1.json'); for i in 2 3; do [ \"\$a\" = \"\$(sed 's/\"id\":\"[^\"]*\"//; s/\"created\":[0-9]*//' '$tmp/v41-'\$i.json)\" ] || exit 1; done; \
               ! grep -q checkpoint '$tmp/srv-v41.log' && echo ok"
    srv_stop
fi
check "serve V4.1 --cache-dir: refused (no saved states for V4.1 yet)" 1 'not implemented for DeepSeek-V4.1' -- \
    "$BIN" serve -m "$SRV_MODEL" --port 0 -c 256 --cache-dir "$tmp/kv41"
SRV_MODEL=$SRV_MODEL_V4

# images (issue 11 item 5): OpenAI image_url data: URLs and Anthropic base64 image blocks; every bad input is a 400
# naming the part, decoded before the model is asked (so models/nano, which has no vision tower, shows each); a
# pixel limit of 1000 (shapes.png is 40 x 30 = 1200 pixels, rgb16.png 37 x 23 = 851)
VLD=tests/golden/v41/tiny-vl
PNG_OK=$(base64 -w0 tests/golden/vision/decode/rgb16.png); PNG_BIG=$(base64 -w0 $VLD/shapes.png)
imgreq() { printf '{"messages":[{"role":"user","content":[{"type":"text","text":"what is it?"},{"type":"image_url","image_url":{"url":"%s"}}]}],"max_tokens":4,%s}' "$1" "$CHAT"; }
if srv_start img --max-image-pixels 1000; then
    check "serve image: a model without a vision tower, named with the part" 0 'messages\[0\]\.content\[1\]: this model has no vision tower.*HTTP 400' -- \
        post /v1/chat/completions "$(imgreq "data:image/png;base64,$PNG_OK")"
    check "serve image: a remote URL is refused (the server does not fetch)" 0 "messages\\[0\\]\\.content\\[1\\]: a 'https:' URL: this server does not fetch images.*HTTP 400" -- \
        post /v1/chat/completions "$(imgreq "https://example.org/cat.png")"
    check "serve image: malformed base64" 0 'messages\[0\]\.content\[1\]: malformed base64: byte 0x2a at offset 4.*HTTP 400' -- \
        post /v1/chat/completions "$(imgreq "data:image/png;base64,iVBO*ABC")"
    check "serve image: a data: URL of a non-image" 0 'messages\[0\]\.content\[1\]: not a JPEG or PNG image.*HTTP 400' -- \
        post /v1/chat/completions "$(imgreq "data:image/png;base64,$(printf 'hello, world' | base64 -w0)")"
    check "serve image: an image above --max-image-pixels is refused from its header" 0 'messages\[0\]\.content\[1\]: .*40 x 30 pixels, more than the 1000-pixel limit.*HTTP 400' -- \
        post /v1/chat/completions "$(imgreq "data:image/png;base64,$PNG_BIG")"
    check "serve image: an image in a system message" 0 "messages\\[0\\]\\.content\\[0\\]: image content parts are allowed only in user and tool messages, not in a system message.*HTTP 400" -- \
        post /v1/chat/completions "{\"messages\":[{\"role\":\"system\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,$PNG_OK\"}}]},{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":4,$CHAT}"
    check "serve image: Anthropic base64 block on a model without vision, named as the client sent it" 0 'messages\[0\]\.content\[1\]: this model has no vision tower.*HTTP 400' -- \
        post /v1/messages "{\"max_tokens\":4,\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"what?\"},{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":\"image/png\",\"data\":\"$PNG_OK\"}}]}]}"
    check "serve image: Anthropic image in a tool_result, named as the client sent it" 0 'messages\[2\]\.content\[0\]\.content\[1\]: malformed base64.*HTTP 400' -- \
        post /v1/messages "{\"max_tokens\":4,\"messages\":[{\"role\":\"user\",\"content\":\"look\"},{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"t1\",\"name\":\"shot\",\"input\":{}}]},{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"t1\",\"content\":[{\"type\":\"text\",\"text\":\"here\"},{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":\"image/png\",\"data\":\"%%%%\"}}]}]}]}"
    check "serve image: Anthropic url source refused" 0 "messages\\[0\\]\\.content\\[0\\]: an image 'url' source: this server does not fetch images.*HTTP 400" -- \
        post /v1/messages "{\"max_tokens\":4,\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image\",\"source\":{\"type\":\"url\",\"url\":\"https://example.org/a.png\"}}]}]}"
    check "serve image: Anthropic image in the system prompt" 0 'system: image blocks are allowed only in user messages and tool results.*HTTP 400' -- \
        post /v1/messages "{\"max_tokens\":4,\"system\":[{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":\"image/png\",\"data\":\"$PNG_OK\"}}],\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"
    many=$(for _ in $(seq 1 65); do printf ',{"type":"image_url","image_url":{"url":"data:image/png;base64,%s"}}' "$PNG_OK"; done)
    printf '{"messages":[{"role":"user","content":[{"type":"text","text":"hi"}%s]}],"max_tokens":4,%s}' "$many" "$CHAT" > "$tmp/many.json"
    check "serve image: more than 64 image parts in one request, refused before any decode" 0 'messages: 65 image parts; at most 64 are supported in one request.*HTTP 400' -- \
        post /v1/chat/completions "@$tmp/many.json"
    check "serve image: Anthropic media_type other than image/png or image/jpeg" 0 "messages\\[0\\]\\.content\\[0\\]\\.source\\.media_type: 'image/gif' is not supported: this server takes image/png or image/jpeg.*HTTP 400" -- \
        post /v1/messages "{\"max_tokens\":4,\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":\"image/gif\",\"data\":\"$PNG_OK\"}}]}]}"
    check "serve image: Anthropic media_type missing" 0 "messages\\[0\\]\\.content\\[0\\]\\.source\\.media_type: missing: this server takes image/png or image/jpeg.*HTTP 400" -- \
        post /v1/messages "{\"max_tokens\":4,\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"data\":\"$PNG_OK\"}}]}]}"
    check "serve image: Responses image in a developer item after instructions, named as the client sent it" 0 '"message":"input\[1\]\.content\[0\]: image content parts are allowed only in user and tool messages, not in a developer message".*"param":"input\[1\]\.content\[0\]".*HTTP 400' -- \
        post /v1/responses "{\"max_output_tokens\":2,\"instructions\":\"be brief\",\"input\":[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"developer\",\"content\":[{\"type\":\"input_image\",\"image_url\":\"data:image/png;base64,$PNG_OK\"}]}]}"
    check "serve image: chat image in a developer message names the role sent" 0 "messages\\[0\\]\\.content\\[0\\]: image content parts are allowed only in user and tool messages, not in a developer message.*HTTP 400" -- \
        post /v1/chat/completions "{\"messages\":[{\"role\":\"developer\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,$PNG_OK\"}}]},{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":4,$CHAT}"
    check "serve image: the server still answers text after the refusals" 0 '"finish_reason":"length".*HTTP 200' -- \
        post /v1/chat/completions "{\"messages\":[{\"role\":\"user\",\"content\":\"ROMEO:\"}],\"max_tokens\":4,$CHAT}"
    srv_stop
fi
# end to end on tests/golden/cli-vl (a tiny V4.1 with a tower and a tokenizer; its outputs mean nothing): both images
# give 17-position spans, so two prompts that differ only in the image have the same ids everywhere. Continuing a
# conversation reuses the slot's session (V4.1: no checkpoints, only a live extension) -- unless the image differs:
# then the keys (dsv4_prompt_key) differ inside the span and nothing is reused, where comparing ids would reuse all.
SRV_MODEL_V4=$SRV_MODEL
SRV_MODEL=tests/golden/cli-vl
JPG_OK=$(base64 -w0 $VLD/stripes.jpg)
vlmsg() { printf '{"role":"user","content":[{"type":"text","text":"ROMEO: what is it?"},{"type":"image_url","image_url":{"url":"data:%s;base64,%s"}}]}' "$1" "$2"; }
vlreq() { printf '{"messages":[%s],"max_tokens":1,"temperature":0,"thinking":{"type":"disabled"},"logprobs":true}' "$(vlmsg "$1" "$2")"; }
vlnext() { printf '{"messages":[%s,{"role":"assistant","content":"x"},{"role":"user","content":"and then?"}],"max_tokens":1,"temperature":0,"thinking":{"type":"disabled"}}' "$(vlmsg "$1" "$2")"; }
if srv_start vl; then
    # the V4.1 prompt format (docs/encoding.md §10): thinking mode writes "<｜System｜>" + "Reasoning Effort: N (...)";
    # "x" is 50 tokens with a one-digit effort, 51 with two digits (the default 75, low 50), 52 with 100
    V41E() { printf '{"messages":[{"role":"user","content":"x"}],"max_tokens":1,"temperature":0,"reasoning_effort":%s}' "$1"; }
    check "serve V4.1: reasoning_effort 7 (an integer: one digit in the effort line, 50 tokens)" 0 '"prompt_tokens":50,.*HTTP 200' -- post /v1/chat/completions "$(V41E 7)"
    check "serve V4.1: reasoning_effort max = 100 (52 tokens)" 0 '"prompt_tokens":52,.*HTTP 200' -- post /v1/chat/completions "$(V41E '"max"')"
    check "serve V4.1: reasoning_effort 101 is a 400" 0 '"param":"reasoning_effort".*HTTP 400' -- post /v1/chat/completions "$(V41E 101)"
    check "serve V4.1: tool_choice required forces the V4.1 DSML opening" 0 'DSML｜ calls>.*HTTP 200' -- \
        post /v1/chat/completions '{"messages":[{"role":"user","content":"x"}],"max_tokens":12,"temperature":0,"thinking":{"type":"disabled"},"tools":[{"type":"function","function":{"name":"calculator","description":"d","parameters":{"type":"object","properties":{"a":{"type":"number"}}}}}],"tool_choice":"required"}'
    post /v1/chat/completions "$(vlreq image/png "$PNG_BIG")" > "$tmp/vl1.json"
    check "serve image on a model with a tower: 200, the prompt counts the expanded span (27 positions)" 0 '"prompt_tokens":27,.*HTTP 200' -- cat "$tmp/vl1.json"
    check "serve image: the conversation continued with the same image reuses the session (27 positions)" 0 '"cached_tokens":27[,}].*HTTP 200' -- \
        post /v1/chat/completions "$(vlnext image/png "$PNG_BIG")"
    post /v1/chat/completions "$(vlreq image/jpeg "$JPG_OK")" > "$tmp/vl3.json"
    check "serve image: another image gives other logprobs" 0 '^differ$' -- sh -c "a=\$(grep -o '\"logprob\":[-0-9.e]*' '$tmp/vl1.json'); b=\$(grep -o '\"logprob\":[-0-9.e]*' '$tmp/vl3.json'); [ -n \"\$a\" ] && [ \"\$a\" != \"\$b\" ] && echo differ"
    check "serve image: the session holds the other image: same ids, other keys, nothing reused" 0 '"cached_tokens":0[,}].*HTTP 200' -- \
        post /v1/chat/completions "$(vlnext image/png "$PNG_BIG")"
    check "serve image: placeholder text typed into a message without an image" 0 'messages: the prompt has 1 image placeholder \(the text <｜deepseek_image｜>, id 1023\) but 0 images were given.*HTTP 400' -- \
        post /v1/chat/completions "{\"messages\":[{\"role\":\"user\",\"content\":\"see <｜deepseek_image｜>\"}],\"max_tokens\":1,$CHAT}"
    check "serve image: one image part, but the text adds a placeholder" 0 'the prompt has 2 image placeholders .*but 1 image was given.*HTTP 400' -- \
        post /v1/chat/completions "{\"messages\":[{\"role\":\"user\",\"content\":\"see <｜deepseek_image｜>\"},{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/jpeg;base64,$JPG_OK\"}}]}],\"max_tokens\":1,$CHAT}"
    check "serve image: Responses placeholder text, named as the client's input" 0 '"message":"input: the prompt has 1 image placeholder.*"param":"input".*HTTP 400' -- \
        post /v1/responses '{"max_output_tokens":1,"input":"see <｜deepseek_image｜>"}'
    # three 1400 x 1400 images: about 1000 positions each, more than the 2048 of this server: refused from their plans
    # (pass 1), before any tower run (dsv4_images_encoded_total unchanged; the earlier image requests counted)
    GRAY=$(base64 -w0 tests/server/gray1400.png)
    imgenc() { curl -sS -m 10 "$(U /metrics)" | sed -n 's/^dsv4_images_encoded_total //p'; }
    enc0=$(imgenc)
    gp="{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,$GRAY\"}}"
    post /v1/chat/completions "{\"messages\":[{\"role\":\"user\",\"content\":[$gp,$gp,$gp]}],\"max_tokens\":1,\"thinking\":{\"type\":\"disabled\"}}" > "$tmp/vlctx.json"
    enc1=$(imgenc)
    check "serve image: images that overflow the context -> context_length_exceeded" 0 '"message":"the prompt is [0-9]{4} tokens; this server.s context holds 2048.*"code":"context_length_exceeded".*HTTP 400' -- cat "$tmp/vlctx.json"
    check "serve image: ... refused before any tower run (dsv4_images_encoded_total $enc0 -> $enc1)" 0 '^none$' -- \
        sh -c "[ -n '$enc0' ] && [ '$enc0' -ge 1 ] && [ '$enc0' = '$enc1' ] && echo none"
    check "serve image: a raw completion prompt with the placeholder" 0 'prompt: the prompt has 1 image placeholder.*HTTP 400' -- \
        post /v1/completions '{"prompt":"ROMEO: <｜deepseek_image｜>","max_tokens":1}'
    # (Responses: thinking by default, so the V4.1 prompt has "<｜System｜>" + the effort line: 46 more tokens here)
    check "serve image: Responses input_image on a model with a tower (70 positions: the 17-position span + 7 + the V4.1 effort line's 46)" 0 '"input_tokens":70,.*HTTP 200' -- \
        post /v1/responses "{\"max_output_tokens\":2,\"input\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_text\",\"text\":\"what?\"},{\"type\":\"input_image\",\"image_url\":\"data:image/jpeg;base64,$JPG_OK\"}]}]}"
    check "serve image: Responses input_image with a remote URL, named as the client sent it" 0 "input\\[0\\]\\.content\\[1\\]: a 'https:' URL: this server does not fetch images.*HTTP 400" -- \
        post /v1/responses '{"max_output_tokens":2,"input":[{"role":"user","content":[{"type":"input_text","text":"what?"},{"type":"input_image","image_url":"https://example.org/a.png"}]}]}'
    check "serve image: Anthropic base64 block on a model with a tower" 0 '"stop_reason":"max_tokens".*"input_tokens":[0-9]+.*HTTP 200' -- \
        post /v1/messages "{\"max_tokens\":3,\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"what?\"},{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":\"image/jpeg\",\"data\":\"$JPG_OK\"}}]}]}"
    srv_stop
fi
SRV_MODEL=$SRV_MODEL_V4
check "serve: --max-image-pixels 0 refused at parse time" 2 "option --max-image-pixels: '0' is not an integer in \\[1, 178956970\\]" -- "$BIN" serve -m models/nano --max-image-pixels 0
