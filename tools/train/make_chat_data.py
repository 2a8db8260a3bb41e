#!/usr/bin/python3
"""make_chat_data.py -- training data and tokenizer of the built-in chat model models/nano-chat.

    /usr/bin/python3 tools/train/make_chat_data.py [--data vendor/tinyshakespeare/tinyshakespeare.txt] [--dsv4 ./dsv4]
    /usr/bin/python3 tools/train/make_chat_data.py --mix copy ...   # the continued-training mix (build_split_copy)
                                                                    # with the committed tokenizer; cache/nano-chat-copy

Steps (all deterministic, seed 7):
  1. Conversations (OpenAI-style requests, the input of `dsv4 render`), train and held-out:
     * Shakespeare dialogue: consecutive speeches of tinyshakespeare (train = the first n*9//10 bytes, held-out
       = the rest, as for models/nano) alternate as user / assistant turns; chat mode, or thinking mode with a
       one-sentence reasoning naming the next speaker ("<SPEAKER> answers <SPEAKER>.").
     * Tool use (system prompt with two tools, thinking or chat mode): `calculator` {operation, a, b}
       (numbers, string="false") and `lookup_character` {name} (string="true"): user question -> [reasoning]
       -> DSML tool call -> tool result -> [reasoning] -> answer. A fixed list of CORE prompts (written to
       the eval file) is repeated CORE_REPEAT times; further prompts are drawn at random.
     * Greetings / thanks in thinking and chat mode.
  2. Every conversation is rendered with the C prompt encoder (`dsv4 render`, byte-exact with DeepSeek's
     encoder), so the training text is exactly what the engine sends to the model.
  3. Byte-level BPE (train_bpe.train, DeepSeek-V3 pre-tokenizer copied from models/nano/tokenizer.json) on
     the Shakespeare train split plus the rendered train conversations with the special tokens cut out.
     Ids: 0 BOS, 1 EOS, 2..257 bytes, merges, then the named DeepSeek-V4 special tokens (V3-era named tokens
     + every non-placeholder entry of tools/tokenizer/v4-added-tokens.tsv), vocab VOCAB in all.
  4. Token ids from the C tokenizer (`dsv4 tokenize --tokenizer`); loss mask = the tokens the assistant
     generates: after `<｜Assistant｜>` and its `<think>` / `</think>` transition token, up to and including
     EOS.  Output: cache/nano-chat/{train,val}.u16 (ids), .mask (uint8), .off (uint32 conversation starts),
     meta.json; tests/golden/nano_chat/cases.json (the prompts of the accuracy check, see tests/test_nano_chat.sh).
"""
import argparse
import json
import os
import random
import subprocess
import sys
import time
from array import array

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
from train_bpe import BYTE2U, BPE, PreTokenizer, train, to_bytelevel, added_token  # noqa: E402

BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"
USER = "<｜User｜>"
ASSISTANT = "<｜Assistant｜>"
THINK, END_THINK = "<think>", "</think>"
# V3-era named special tokens the V4 tokenizer keeps (docs/encoding.md §1); the rest come from the TSV.
V3_NAMED = ["<｜▁pad▁｜>", "<｜fim▁hole｜>", "<｜fim▁begin｜>", "<｜fim▁end｜>", USER, ASSISTANT, "<|EOT|>",
            "<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>", "<｜tool▁call▁begin｜>", "<｜tool▁call▁end｜>",
            "<｜tool▁outputs▁begin｜>", "<｜tool▁outputs▁end｜>", "<｜tool▁output▁begin｜>", "<｜tool▁output▁end｜>",
            "<｜tool▁sep｜>"]
V3_SPECIAL = {"<｜▁pad▁｜>", "<|EOT|>"}

VOCAB = 1536
SEED = 7
CORE_REPEAT = 6
SYSTEM = "You are a helpful assistant."

TOOLS = [
    {"type": "function", "function": {
        "name": "calculator",
        "description": "Apply an arithmetic operation to two numbers.",
        "parameters": {"type": "object", "properties": {
            "operation": {"type": "string", "enum": ["add", "subtract", "multiply", "divide"]},
            "a": {"type": "number"}, "b": {"type": "number"}},
            "required": ["operation", "a", "b"]}}},
    {"type": "function", "function": {
        "name": "lookup_character",
        "description": "Look up a character of a Shakespeare play.",
        "parameters": {"type": "object", "properties": {"name": {"type": "string"}},
                       "required": ["name"]}}},
]

OPS = {  # operation -> (phrasings of the question, word in the answer, function)
    "add": (["What is {a} plus {b}?", "Add {a} and {b}.", "What is {a} + {b}?"], "plus", lambda a, b: a + b),
    "subtract": (["What is {a} minus {b}?", "Subtract {b} from {a}.", "What is {a} - {b}?"], "minus",
                 lambda a, b: a - b),
    "multiply": (["What is {a} times {b}?", "Multiply {a} by {b}.", "What is {a} * {b}?"], "times",
                 lambda a, b: a * b),
    "divide": (["What is {a} divided by {b}?", "Divide {a} by {b}.", "What is {a} / {b}?"], "divided by",
               lambda a, b: a // b),
}

# name -> (play, one-line description); facts about the plays of tinyshakespeare
CHARACTERS = {
    "ROMEO": ("Romeo and Juliet", "a young Montague who loves Juliet"),
    "JULIET": ("Romeo and Juliet", "a young Capulet who loves Romeo"),
    "MERCUTIO": ("Romeo and Juliet", "a witty friend of Romeo"),
    "TYBALT": ("Romeo and Juliet", "a fiery cousin of Juliet"),
    "CORIOLANUS": ("Coriolanus", "a proud Roman general"),
    "MENENIUS": ("Coriolanus", "an old friend of Coriolanus"),
    "VOLUMNIA": ("Coriolanus", "the mother of Coriolanus"),
    "KING RICHARD III": ("Richard III", "a scheming king of England"),
    "GLOUCESTER": ("Richard III", "the duke who becomes Richard III"),
    "BUCKINGHAM": ("Richard III", "an ally of Richard"),
    "KING RICHARD II": ("Richard II", "a king who loses his crown"),
    "BOLINGBROKE": ("Richard II", "the duke who becomes Henry IV"),
    "JOHN OF GAUNT": ("Richard II", "the old Duke of Lancaster"),
    "PETRUCHIO": ("The Taming of the Shrew", "a suitor who weds Katharina"),
    "KATHARINA": ("The Taming of the Shrew", "a sharp-tongued daughter of Baptista"),
    "LEONTES": ("The Winter's Tale", "a jealous king of Sicilia"),
    "HERMIONE": ("The Winter's Tale", "the wronged queen of Sicilia"),
    "PROSPERO": ("The Tempest", "a magician on an island"),
    "MIRANDA": ("The Tempest", "the daughter of Prospero"),
    "ISABELLA": ("Measure for Measure", "a novice who pleads for her brother"),
    "ANGELO": ("Measure for Measure", "a strict deputy of Vienna"),
    "WARWICK": ("Henry VI", "the kingmaker earl"),
}
LOOKUP_Q = ["Who is {n}?", "Tell me about {n}.", "Look up {n}.", "Which play is {n} from?"]
GREET = [("Hello!", "Good morrow to thee! How may I help thee?"),
         ("Hi", "Good morrow! What wouldst thou know?"),
         ("Thank you.", "Thou art most welcome."),
         ("Thanks!", "It was my pleasure to serve thee."),
         ("Who are you?", "I am nano-chat, a tiny model that speaks like Shakespeare and can use tools."),
         ("Goodbye.", "Farewell, and good night!")]


def speeches(text):
    """[(speaker, full speech text incl. the 'NAME:' line)] of a tinyshakespeare span."""
    out = []
    for block in text.split("\n\n"):
        block = block.strip("\n")
        lines = block.split("\n")
        if len(lines) >= 2 and lines[0].endswith(":") and len(lines[0]) < 40:
            out.append((lines[0][:-1], block))
    return out


def calc_case(rng, a=None, b=None, op=None, q=None):
    op = op or rng.choice(sorted(OPS))
    qs, word, fn = OPS[op]
    if a is None:
        a, b = rng.randint(1, 99), rng.randint(1, 99)
        if op == "divide":
            b = rng.randint(1, 12)
            a = b * rng.randint(1, 12)
    q = q if q is not None else rng.randrange(len(qs))
    return {"kind": "calculator", "user": qs[q].format(a=a, b=b), "name": "calculator",
            "arguments": {"operation": op, "a": a, "b": b}, "result": str(fn(a, b)),
            "answer": "%d %s %d is %d." % (a, word, b, fn(a, b)),
            "think1": "The user wants %d %s %d. I will call the calculator." % (a, word, b),
            "think2": "The calculator returned %d." % fn(a, b)}


def lookup_case(rng, n=None, q=None):
    n = n or rng.choice(sorted(CHARACTERS))
    q = q if q is not None else rng.randrange(len(LOOKUP_Q))
    play, desc = CHARACTERS[n]
    return {"kind": "lookup", "user": LOOKUP_Q[q].format(n=n), "name": "lookup_character",
            "arguments": {"name": n},
            "result": json.dumps({"play": play, "description": desc}, ensure_ascii=False),
            "answer": "%s is %s in %s." % (n, desc, play),
            "think1": "The user asks about %s. I will look up the character." % n,
            "think2": "The lookup says %s is from %s." % (n, play)}


def tool_request(case, thinking, upto):
    """Request for a tool case. upto: 'call' = up to the user question (generation prompt for the call),
    'answer' = up to the tool result (prompt for the answer), 'full' = whole conversation."""
    msgs = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": case["user"]}]
    if upto != "call":
        call = {"role": "assistant", "content": "", "tool_calls": [{
            "id": "call_0", "type": "function",
            "function": {"name": case["name"], "arguments": json.dumps(case["arguments"], ensure_ascii=False)}}]}
        if thinking:
            call["reasoning_content"] = case["think1"]
        msgs.append(call)
        msgs.append({"role": "tool", "tool_call_id": "call_0", "content": case["result"]})
    if upto == "full":
        ans = {"role": "assistant", "content": case["answer"]}
        if thinking:
            ans["reasoning_content"] = case["think2"]
        msgs.append(ans)
    return {"messages": msgs, "tools": TOOLS}


def core_cases():
    """The fixed prompts repeated in training and checked by the accuracy test."""
    rng = random.Random(12345)
    cases = []
    for i, op in enumerate(sorted(OPS)):
        for j in range(6):
            cases.append(calc_case(rng, op=op, q=j % 3))
    for i, n in enumerate(sorted(CHARACTERS)[:12]):
        cases.append(lookup_case(rng, n=n, q=i % len(LOOKUP_Q)))
    return cases


def shakespeare_convs(sp, rng, max_chars):
    """Split a list of speeches into multi-turn conversations (user, assistant alternating)."""
    convs = []
    i = 0
    while i + 1 < len(sp):
        k = rng.choice([2, 2, 4, 4, 6])
        turns = []
        size = 0
        while len(turns) < k and i < len(sp) and size + len(sp[i][1]) < max_chars:
            turns.append(sp[i])
            size += len(sp[i][1])
            i += 1
        if len(turns) < 2:
            i += 1                          # a single over-long speech: skip it
            continue
        if len(turns) % 2:
            turns = turns[:-1]
            i -= 1
        convs.append(turns)
    return convs


def shakespeare_request(turns, thinking, rng):
    msgs = []
    if rng.random() < 0.3:
        msgs.append({"role": "system", "content": "Answer in the voice of the next speaker."})
    for t in range(0, len(turns), 2):
        msgs.append({"role": "user", "content": turns[t][1]})
        a = {"role": "assistant", "content": turns[t + 1][1]}
        if thinking:
            a["reasoning_content"] = "%s answers %s." % (turns[t + 1][0], turns[t][0])
        msgs.append(a)
    return {"messages": msgs}


def greet_request(rng, thinking):
    q, a = rng.choice(GREET)
    m = {"role": "assistant", "content": a}
    if thinking:
        m["reasoning_content"] = "The user says \"%s\". I answer kindly." % q
    return {"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": q}, m]}


def build_split(text, rng, n_tool, core, max_chars):
    items = []     # (request, thinking)
    sp = speeches(text)
    for turns in shakespeare_convs(sp, rng, max_chars):
        items.append((shakespeare_request(turns, rng.random() < 0.5, rng), None))
    for c in core:
        for r in range(CORE_REPEAT):
            items.append((tool_request(c, r % 2 == 0, "full"), r % 2 == 0))
    for i in range(n_tool):
        c = calc_case(rng) if rng.random() < 0.6 else lookup_case(rng)
        th = rng.random() < 0.6
        items.append((tool_request(c, th, "full"), th))
    for i in range(n_tool // 8):
        th = rng.random() < 0.5
        items.append((greet_request(rng, th), th))
    out = []
    for req, th in items:
        if th is None:
            th = "reasoning_content" in req["messages"][-1]
        out.append((req, th))
    rng.shuffle(out)
    return out


def multi_tool_request(cases, thinking):
    """One conversation with the tools and several questions in a row, each: question -> [reasoning] -> call
    -> tool result -> [reasoning] -> answer (the turns of tool_request(..., 'full') concatenated)."""
    msgs = [{"role": "system", "content": SYSTEM}]
    for c in cases:
        msgs += tool_request(c, thinking, "full")["messages"][1:]
    return {"messages": msgs, "tools": TOOLS}


def drill_request(case, thinking):
    """A short copy drill (no system prompt, no tools, ~30 tokens): the question, then (thinking mode) the
    call's reasoning line without its last sentence, and a reply that repeats the operands / the name."""
    if case["kind"] == "calculator":
        a = case["arguments"]
        said = "%s %s %s" % (a["a"], OPS[a["operation"]][1], a["b"])
        reply = "You asked for %s." % said
    else:
        reply = "You asked about %s." % case["arguments"]["name"]
    m = {"role": "assistant", "content": reply}
    if thinking:
        m["reasoning_content"] = case["think1"].rsplit(" I will", 1)[0]
    return {"messages": [{"role": "user", "content": case["user"]}, m]}


def build_split_copy(text, rng, n_conv, core, max_chars, n_shakespeare, n_drill):
    """The "copy" mix of the continued training (see tools/train/README.md "nano-chat"): tool conversations
    of 1-5 questions (SEQ 1024 holds the tools' system prompt + 5 question turns), i.e. ~4x the copy events
    (numbers / names written again in the reasoning, the arguments and the answer) per trained token;
    every CORE prompt CORE_REPEAT times as the first question (where the accuracy check asks it), followed by
    0-4 random ones; a few Shakespeare dialogues and greetings so the rest is not forgotten."""
    items = []
    sp = speeches(text)
    sh = shakespeare_convs(sp, rng, max_chars)
    rng.shuffle(sh)
    for turns in sh[:n_shakespeare]:
        items.append((shakespeare_request(turns, rng.random() < 0.5, rng), None))

    def rand_case():
        return calc_case(rng) if rng.random() < 0.6 else lookup_case(rng)
    for c in core:
        for r in range(CORE_REPEAT):
            extra = [rand_case() for _ in range(rng.randrange(5))]
            items.append((multi_tool_request([c] + extra, r % 2 == 0), r % 2 == 0))
    for i in range(n_conv):
        k = rng.choice([1, 2, 3, 4, 5, 5])
        th = rng.random() < 0.5
        items.append((multi_tool_request([rand_case() for _ in range(k)], th), th))
    for i in range(n_conv // 16):
        th = rng.random() < 0.5
        items.append((greet_request(rng, th), th))
    for i in range(n_drill):
        th = rng.random() < 0.5
        items.append((drill_request(rand_case(), th), th))
    out = []
    for req, th in items:
        if th is None:
            th = "reasoning_content" in req["messages"][-1]
        out.append((req, th))
    rng.shuffle(out)
    return out


def render(dsv4, req, thinking, tmpdir):
    p = os.path.join(tmpdir, "req.json")
    with open(p, "w", encoding="utf-8") as f:
        json.dump(req, f, ensure_ascii=False)
    cmd = [dsv4, "render", "--messages", p] + (["--thinking"] if thinking else [])
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    if r.returncode != 0:
        sys.exit("dsv4 render failed: %s" % r.stderr.decode())
    return r.stdout.decode("utf-8")


def tokenize_c(dsv4, tokfile, text, tmpdir):
    p = os.path.join(tmpdir, "text.txt")
    with open(p, "w", encoding="utf-8") as f:
        f.write(text)
    with open(p, "rb") as f:
        r = subprocess.run([dsv4, "tokenize", "--tokenizer", tokfile], stdin=f, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, check=False)
    if r.returncode != 0:
        sys.exit("dsv4 tokenize failed: %s" % r.stderr.decode())
    return [int(x) for x in r.stdout.split()]


def special_tokens():
    toks = [(t, t in V3_SPECIAL) for t in V3_NAMED]
    with open(os.path.join(ROOT, "tools", "tokenizer", "v4-added-tokens.tsv"), encoding="utf-8") as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            _id, special, _norm, content = line.rstrip("\n").split("\t")
            if "place_holder" in content:
                continue
            toks.append((content, special == "1"))
    return toks


def split_specials(text, specials):
    """Cut the special-token texts out of `text` (for BPE training): list of plain spans."""
    import re
    pat = re.compile("|".join(re.escape(s) for s in sorted(specials, key=len, reverse=True)))
    return [s for s in pat.split(text) if s]


def write_ids(args, rendered, added, vocab, merges, pretok, spec_text, log):
    """Token ids of the rendered splits (C tokenizer, args.out), loss masks, conversation offsets, meta.json."""
    tmpdir = args.cache
    # ---- token ids (C tokenizer), masks, offsets
    ids_of = {s: i for i, s in enumerate([BOS, EOS])}
    for t in added:
        ids_of[t["content"]] = t["id"]
    bos, eos, asst = ids_of[BOS], ids_of[EOS], ids_of[ASSISTANT]
    trans = {ids_of[THINK], ids_of[END_THINK]}
    meta = {"vocab_size": VOCAB, "tokenizer": os.path.relpath(args.out, ROOT)}
    bpe = BPE(vocab, merges, pretok)
    for name in ("train", "val"):
        ids = tokenize_c(args.dsv4, args.out, "".join(rendered[name]), tmpdir)
        starts = [i for i, t in enumerate(ids) if t == bos]
        assert len(starts) == len(rendered[name]) and starts[0] == 0
        # spot check against the Python BPE (special tokens split out first)
        r0 = rendered[name][0]
        py = []
        import re
        pat = re.compile("(" + "|".join(re.escape(s) for s in sorted(spec_text, key=len, reverse=True)) + ")")
        for s in pat.split(r0):
            if s in ids_of:
                py.append(ids_of[s])
            elif s:
                py.extend(bpe.encode(s))
        end0 = starts[1] if len(starts) > 1 else len(ids)
        assert py == ids[:end0], "C and Python tokenizations differ on the first %s conversation" % name
        mask = bytearray(len(ids))
        on = False
        i = 0
        while i < len(ids):
            t = ids[i]
            if t == asst:
                on = True
                if i + 1 < len(ids) and ids[i + 1] in trans:
                    i += 1
                i += 1
                continue
            if on:
                mask[i] = 1
                if t == eos:
                    on = False
            i += 1
        array("H", ids).tofile(open(os.path.join(args.cache, name + ".u16"), "wb"))
        open(os.path.join(args.cache, name + ".mask"), "wb").write(bytes(mask))
        array("I", starts + [len(ids)]).tofile(open(os.path.join(args.cache, name + ".off"), "wb"))
        lens = [starts[k + 1] - starts[k] if k + 1 < len(starts) else len(ids) - starts[k]
                for k in range(len(starts))]
        meta[name] = {"conversations": len(starts), "tokens": len(ids), "assistant_tokens": sum(mask),
                      "max_len": max(lens), "mean_len": sum(lens) / len(lens),
                      "bytes": sum(len(r.encode("utf-8")) for r in rendered[name])}
        log("%s: %s" % (name, json.dumps(meta[name])))
    with open(os.path.join(args.cache, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)


def tokenize_only(args, rendered, log):
    """The copy mix: ids with the committed tokenizer args.out (its vocab, merges and added tokens reused as
    they are, so the continued training keeps the checkpoint's token ids)."""
    with open(args.out, encoding="utf-8") as f:
        tok = json.load(f)
    pretok = PreTokenizer(tok["pre_tokenizer"])
    added = tok["added_tokens"]
    merges = [tuple(m.split(" ")) for m in tok["model"]["merges"]]
    spec_text = [t["content"] for t in added]
    write_ids(args, rendered, added, tok["model"]["vocab"], merges, pretok, spec_text, log)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(ROOT, "vendor", "tinyshakespeare", "tinyshakespeare.txt"))
    ap.add_argument("--dsv4", default=os.path.join(ROOT, "dsv4"), help="dsv4 binary (render, tokenize)")
    ap.add_argument("--out", default=os.path.join(ROOT, "models", "nano-chat", "tokenizer.json"))
    ap.add_argument("--cache", default=None, help="default cache/nano-chat (base) or cache/nano-chat-copy (copy)")
    ap.add_argument("--cases", default=os.path.join(ROOT, "tests", "golden", "nano_chat", "cases.json"))
    ap.add_argument("--n-tool", type=int, default=1500, help="random tool conversations in the train split")
    ap.add_argument("--mix", choices=["base", "copy"], default="base",
                    help="base: the first training's data, tokenizer and eval cases; copy: the continued "
                         "training's data (multi-question tool conversations) tokenized with the EXISTING "
                         "tokenizer --out (not retrained); the eval cases are not rewritten")
    args = ap.parse_args()
    if args.cache is None:
        args.cache = os.path.join(HERE, "cache", "nano-chat" if args.mix == "base" else "nano-chat-copy")
    t0 = time.time()

    def log(msg):
        print("[chat-data %6.1fs] %s" % (time.time() - t0, msg), flush=True)

    data = open(args.data, "rb").read()
    cut = len(data) * 9 // 10
    train_text, val_text = data[:cut].decode("utf-8"), data[cut:].decode("utf-8")
    core = core_cases()
    rng = random.Random(SEED)
    if args.mix == "copy":
        splits = {"train": build_split_copy(train_text, rng, 1400, core, 700, 300, 12000),
                  "val": build_split_copy(val_text, random.Random(SEED + 1), 60, [], 700, 20, 200)}
    else:
        splits = {"train": build_split(train_text, rng, args.n_tool, core, 700),
                  "val": build_split(val_text, random.Random(SEED + 1), 120, [], 700)}
    os.makedirs(args.cache, exist_ok=True)
    tmpdir = args.cache
    rendered = {}
    for name, items in splits.items():
        rendered[name] = [render(args.dsv4, req, th, tmpdir) for req, th in items]
        log("%s: %d conversations rendered, %d chars" % (name, len(items), sum(map(len, rendered[name]))))

    # ---- tokenizer
    if args.mix == "copy":
        tokenize_only(args, rendered, log)
        return
    with open(os.path.join(ROOT, "models", "nano", "tokenizer.json"), encoding="utf-8") as f:
        base = json.load(f)
    pretok = PreTokenizer(base["pre_tokenizer"])
    specials = special_tokens()
    spec_text = [BOS, EOS] + [s for s, _ in specials]
    counts = {}
    for span in [train_text] + [s for r in rendered["train"] for s in split_specials(r, spec_text)]:
        for p in pretok.pieces(span):
            bl = to_bytelevel(p)
            counts[bl] = counts.get(bl, 0) + 1
    alphabet = sorted(BYTE2U.values())
    n_merges = VOCAB - 2 - len(alphabet) - len(specials)
    merges = train(counts, alphabet, n_merges, log)
    vocab = {BOS: 0, EOS: 1}
    for a in alphabet:
        vocab[a] = len(vocab)
    for a, b in merges:
        if a + b not in vocab:
            vocab[a + b] = len(vocab)
    added = [added_token(0, BOS), added_token(1, EOS)]
    nid = len(vocab)
    for s, special in specials:
        t = added_token(nid, s)
        t["special"] = special
        t["normalized"] = not special
        added.append(t)
        nid += 1
    assert nid == VOCAB, (nid, VOCAB)
    tok = dict(base)
    tok["added_tokens"] = added
    tok["model"] = dict(base["model"])
    tok["model"]["vocab"] = vocab
    tok["model"]["merges"] = ["%s %s" % m for m in merges]
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(tok, f, ensure_ascii=False, indent=None, separators=(",", ":"))
        f.write("\n")
    log("wrote %s: %d merges, %d special tokens, vocab %d, %d bytes" %
        (args.out, len(merges), len(specials) + 2, nid, os.path.getsize(args.out)))

    write_ids(args, rendered, added, vocab, merges, pretok, spec_text, log)

    # ---- eval cases: the CORE prompts (trained on) + held-out random ones
    hrng = random.Random(999)
    held = [calc_case(hrng) for _ in range(12)] + [lookup_case(hrng) for _ in range(4)]
    cases = []
    for tag, lst in (("trained", core), ("heldout", held)):
        for k, c in enumerate(lst):
            for th in (True, False):
                cases.append({"set": tag, "thinking": th, "request": tool_request(c, th, "call"),
                              "name": c["name"], "arguments": c["arguments"],
                              "answer_request": tool_request(c, th, "answer"), "answer": c["answer"]})
    os.makedirs(os.path.dirname(args.cases), exist_ok=True)
    with open(args.cases, "w", encoding="utf-8") as f:       # one case per line
        f.write("[\n" + ",\n".join(json.dumps(c, ensure_ascii=False) for c in cases) + "\n]\n")
    log("wrote %s (%d cases)" % (args.cases, len(cases)))
    # the request of case 0 (a trained calculator prompt) on its own, for the CLI check in tests/run.sh
    with open(os.path.join(os.path.dirname(args.cases), "tool_request.json"), "w", encoding="utf-8") as f:
        json.dump(cases[0]["request"], f, ensure_ascii=False, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
