/* cli/commands.h — subcommands of the `dsv4` binary that live in their own src/cli/ file.
 * Each takes the argument vector starting at the subcommand name (argv[0] = the subcommand), parses its options with
 * cli_parse (cli/cli_util.h), prints its own usage / errors (usage on stdout with -h / --help, exit 0), frees everything it allocated on every path, and returns
 * the process exit status (0 ok, 1 failure, 2 usage error). Shared helpers: cli/cli_util.h. */
#ifndef DSV4_CLI_COMMANDS_H
#define DSV4_CLI_COMMANDS_H

/* `dsv4 generate -m DIR (-p TEXT | -f FILE) [-n N] [--temp T] ...`: continue a prompt (cmd_generate.c). */
int dsv4_cli_generate(int argc, char **argv);
/* `dsv4 logits -m DIR --tokens IDS [--prefill N] --out FILE|-`: float32 logits rows (cmd_logits.c). */
int dsv4_cli_logits(int argc, char **argv);
/* `dsv4 info -m DIR`: weights-free configuration summary (cmd_info.c). */
int dsv4_cli_info(int argc, char **argv);
/* `dsv4 ppl -m DIR -f TEXT [--window W] [--max-tokens N]`: perplexity (cmd_ppl.c). */
int dsv4_cli_ppl(int argc, char **argv);
/* `dsv4 tokenize` / `dsv4 detokenize` (-m DIR | --tokenizer FILE): text <-> ids (cmd_tokenize.c). */
int dsv4_cli_tokenize(int argc, char **argv);
int dsv4_cli_detokenize(int argc, char **argv);

/* `dsv4 bench -m DIR [--twin DIR] [-t LIST] [--ctx LIST] [--prefill LIST] [-n N] [--csv FILE] ...`: decode, head,
 * prefill and long-context decode speed per thread count vs the read bandwidth and kernel peak measured in the same
 * run (cmd_bench.c; method in docs/performance.md). */
int dsv4_cli_bench(int argc, char **argv);

/* `dsv4 bench-tokenizer --tokenizer FILE --corpus FILE [--min-time S] [--lines]`: encode throughput (cmd_tokbench.c). */
int dsv4_cli_tokbench(int argc, char **argv);

/* `dsv4 parse [--thinking] [--strict]`: model output on stdin -> OpenAI-style message JSON (cmd_parse.c). */
int dsv4_cli_parse(int argc, char **argv);

/* `dsv4 chat -m DIR [--think|--no-think] ...`: interactive multi-turn chat REPL on stdin/stdout (cmd_chat.c). */
int dsv4_cli_chat(int argc, char **argv);

/* `dsv4 render [-m DIR | --tokenizer FILE] --messages FILE.json [--thinking] [--effort none|high|max] [--tokens] ...`:
 * print the exact DeepSeek-V4 prompt for a chat request (cmd_render.c). */
int dsv4_cli_render(int argc, char **argv);

/* `dsv4 serve -m DIR [--host H] [--port P] [-c N] [--parallel N] ...`: the HTTP API server (cmd_serve.c, src/server/). */
int dsv4_cli_serve(int argc, char **argv);

#endif
