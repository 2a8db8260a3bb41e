// tools/tokenizer/bench.mjs — encode throughput of @huggingface/tokenizers (JavaScript) on a corpus, measured like
// `dsv4 bench-tokenizer`: one warm-up encode of the whole corpus as a single input, then passes until at least
// --min-time seconds (default 2) and 3 passes; best and median MB/s (10^6 corpus bytes per second). With --lines a
// pass encodes every "\n"-separated line as its own input instead (as `dsv4 bench-tokenizer --lines`).
// Usage: node bench.mjs --tokenizer FILE --corpus FILE [--config tokenizer_config.json] [--min-time S] [--lines]
//        node bench.mjs --write-corpus GOLDEN.jsonl OUT.txt   (the bench corpus: every golden input, joined by "\n")
import { Tokenizer } from "@huggingface/tokenizers";
import fs from "node:fs";
import path from "node:path";

const arg = (k, d) => { const i = process.argv.indexOf(k); return i > 0 ? process.argv[i + 1] : d; };
if (process.argv.includes("--write-corpus")) {
    const i = process.argv.indexOf("--write-corpus");
    const rows = fs.readFileSync(process.argv[i + 1], "utf8").trim().split("\n").map((l) => JSON.parse(l)).filter((r) => "text" in r);
    fs.writeFileSync(process.argv[i + 2], rows.map((r) => r.text).join("\n"));
    console.log(`wrote ${process.argv[i + 2]}: ${rows.length} inputs`);
    process.exit(0);
}
const tokfile = arg("--tokenizer"), corpus = arg("--corpus"), minTime = Number(arg("--min-time", "2"));
if (!tokfile || !corpus) { console.error("usage: node bench.mjs --tokenizer FILE --corpus FILE [--config FILE] [--min-time S]"); process.exit(2); }
const cfgfile = arg("--config", path.join(path.dirname(tokfile), "tokenizer_config.json"));
const cfg = fs.existsSync(cfgfile) ? JSON.parse(fs.readFileSync(cfgfile, "utf8")) : {};
let t0 = performance.now();
const tok = new Tokenizer(JSON.parse(fs.readFileSync(tokfile, "utf8")), cfg);
const loadS = (performance.now() - t0) / 1000;
const buf = fs.readFileSync(corpus), text = buf.toString("utf8"), bytes = buf.length;
const lines = process.argv.includes("--lines"), parts = lines ? text.split("\n") : [text];
const pass = () => { let k = 0; for (const p of parts) k += tok.encode(p, { add_special_tokens: false }).ids.length; return k; };
const n = pass();   // warm-up (JIT), and the count
const times = [];
const start = performance.now();
while (times.length < 3 || performance.now() - start < minTime * 1000) {
    const a = performance.now();
    const k = pass();
    times.push((performance.now() - a) / 1000);
    if (k !== n) { console.error(`pass ${times.length}: ${k} tokens, not ${n}`); process.exit(1); }
}
times.sort((x, y) => x - y);
const best = bytes / times[0] / 1e6, median = bytes / times[times.length >> 1] / 1e6;
console.log(`tokenizer ${tokfile} (loaded in ${loadS.toFixed(2)} s), corpus ${corpus}: ${bytes} bytes -> ${n} tokens`);
console.log(`encode (${lines ? "each line separately" : "whole corpus as one input"}): best ${best.toFixed(2)} MB/s, median ${median.toFixed(2)} MB/s over ${times.length} passes (node ${process.version})`);
console.log(`RESULT impl=js mode=${lines ? "lines" : "whole"} bytes=${bytes} tokens=${n} best_mbps=${best.toFixed(3)} median_mbps=${median.toFixed(3)} passes=${times.length}`);
