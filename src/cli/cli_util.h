/* cli/cli_util.h — helpers shared by the `dsv4` subcommands (the src/cli files): whole-file reading with error
 * reporting, strict UTF-8 checking, JSON string output with U+FFFD replacement, human-readable counts.
 * CLI layer only: these print to stderr (the library never does). */
#ifndef DSV4_CLI_UTIL_H
#define DSV4_CLI_UTIL_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <signal.h>
#include "dsv4.h"
#include "dsv4_chat.h"

/* Read the whole file `path` ("-" = stdin) into a malloc'd buffer with a NUL byte appended (not counted in
 * *len; the content may itself contain NUL bytes — use *len). On failure prints one line
 * "dsv4 WHO: cannot open PATH: REASON" / "dsv4 WHO: cannot read PATH: REASON" (e.g. "Is a directory") or
 * "... out of memory" to stderr and returns NULL; nothing is leaked. */
char *cli_read_file(const char *who, const char *path, size_t *len);

/* Same for an already open stream; `name` is used in the messages (e.g. "stdin"). Does not close f. */
char *cli_read_stream(const char *who, FILE *f, const char *name, size_t *len);

/* Length of the UTF-8 unit starting at s[0] (n >= 1 bytes available): the byte count of a valid strict
 * UTF-8 character (no overlongs, no surrogates, <= U+10FFFF; *valid = 1), or the length of the maximal
 * invalid subpart to be replaced by ONE U+FFFD (Unicode §3.9 "best practice"; >= 1; *valid = 0). */
size_t cli_utf8_unit(const unsigned char *s, size_t n, int *valid);

/* Byte offset of the first invalid byte of s[0..n), or -1 when all of it is valid strict UTF-8 (NUL is valid). */
long cli_utf8_invalid_at(const char *s, size_t n);

/* Write s[0..n) to f as a JSON string literal (with the quotes): `"` `\` and control characters (NUL
 * included, as \u0000) escaped, other valid UTF-8 raw (as json.dumps(ensure_ascii=False)); every invalid
 * sequence becomes U+FFFD and is counted into *n_replaced (may be NULL). */
void cli_json_str(FILE *f, const char *s, size_t n, size_t *n_replaced);

/* Human-readable count: "284.33B", "3.80M", "12.30K" or "512" (decimal units). Returns buf (>= 32 bytes). */
const char *cli_count(double x, char *buf);

/* Human-readable byte size: "148.65 GiB", "3.64 MiB", "1.50 KiB" or "512 B". Returns buf (>= 32 bytes). */
const char *cli_bytes(double x, char *buf);

/* 1 if `o` is "-h" or "--help". */
int cli_is_help(const char *o);

/* ------------------------------------------------------------------ the one option parser
 * Every command describes its options with a table of cli_opt (ended by an entry with names == NULL) and calls
 * cli_parse. The options users type everywhere are defined once below (CLI_O_*), with one range and one message
 * each, so that e.g. `--top-k 2.5` gets the same answer from generate and chat. Besides the table, cli_parse
 * accepts in every command: -h/--help (usage on stdout), --version, -v/--verbose (cli_verbose = 1),
 * -t/--threads N (0..1024; dsv4_set_threads) and --kernel PATH (dsv4_set_kernel_path), unless the table names
 * them itself (bench takes lists). `--name=value` is the same as `--name value`. A value is always the next
 * argument, even when it starts with '-' (so `--temp -1` is refused as out of range, not as an unknown option).
 * Messages (stderr, one line, no usage dump):
 *   dsv4 CMD: unknown option 'X' (dsv4 CMD -h lists the options)
 *   dsv4 CMD: option X needs a value
 *   dsv4 CMD: option X: 'V' is not an integer in [LO, HI]       (digits only: 2.5, 1e3, +3, " 3" are refused)
 *   dsv4 CMD: option X: 'V' is not a number in [LO, HI]  /  (LO, HI]
 *   dsv4 CMD: option X: 'V' is not one of a|b|c
 *   dsv4 CMD: option X takes no value
 *   dsv4 CMD: unexpected argument 'V' (options start with -; dsv4 CMD -h lists them) */
typedef enum {
    CLI_FLAG,    /* no value; *(int *)dst = set */
    CLI_STR,     /* *(const char **)dst = the argument (not copied) */
    CLI_INT,     /* *(int *)dst, decimal digits only, in [lo, hi] (both within int) */
    CLI_LONG,    /* *(long long *)dst, decimal digits only, in [lo, hi] */
    CLI_U64,     /* *(uint64_t *)dst, decimal digits only, 0 .. 2^64-1 */
    CLI_NUM,     /* *(double *)dst, a finite number in [lo, hi] ((lo, hi] when lo_open) */
    CLI_CHOICE,  /* *(int *)dst = index of the value in choices "a|b|c" */
    CLI_CUSTOM   /* parse(v, dst) == 0, else "'V' is not WHAT" */
} cli_kind;

typedef struct {
    const char *names;     /* '|'-separated spellings, e.g. "-n|--n-predict|--max-tokens"; NULL ends a table */
    cli_kind kind;
    void *dst;             /* see cli_kind */
    double lo, hi;         /* CLI_INT / CLI_LONG / CLI_NUM range */
    int lo_open;           /* CLI_NUM: the range is (lo, hi] */
    int set;               /* CLI_FLAG: the value stored */
    const char *choices;   /* CLI_CHOICE: "none|high|max" */
    const char *what;      /* CLI_CUSTOM: what the value must be, for the message ("a list of thread counts ...") */
    int (*parse)(const char *v, void *dst);   /* CLI_CUSTOM: 0 ok, -1 bad value, -2 one too many (`limit`) */
    const char *limit;     /* CLI_CUSTOM: the limit broken when parse returns -2 ("at most 64 --image options") */
    int *seen;             /* optional: set to 1 when the option is given */
} cli_opt;

/* The shared options (one definition each). */
#define CLI_MAX_N   16777216   /* -n, -c: 2^24 tokens */
#define CLI_O_MODEL(p)       { .names = "-m|--model", .kind = CLI_STR, .dst = (p) }
#define CLI_O_PROMPT(p)      { .names = "-p|--prompt", .kind = CLI_STR, .dst = (p) }
#define CLI_O_PROMPT_FILE(p) { .names = "-f|--prompt-file", .kind = CLI_STR, .dst = (p) }
#define CLI_O_N_PREDICT(p)   { .names = "-n|--n-predict|--max-tokens", .kind = CLI_INT, .dst = (p), .lo = 0, .hi = CLI_MAX_N }
#define CLI_O_CTX(p, s)      { .names = "-c|--ctx-size|--ctx", .kind = CLI_INT, .dst = (p), .lo = 1, .hi = CLI_MAX_N, .seen = (s) }
#define CLI_O_TEMP(p)        { .names = "--temp|--temperature", .kind = CLI_NUM, .dst = (p), .lo = 0, .hi = 100 }
#define CLI_O_TOP_P(p)       { .names = "--top-p", .kind = CLI_NUM, .dst = (p), .lo = 0, .hi = 1, .lo_open = 1 }
#define CLI_O_TOP_K(p)       { .names = "--top-k", .kind = CLI_INT, .dst = (p), .lo = 0, .hi = 1073741824 }
#define CLI_O_SEED(p, s)     { .names = "-s|--seed", .kind = CLI_U64, .dst = (p), .seen = (s) }
#define CLI_O_THINK(p)       { .names = "--think|--thinking", .kind = CLI_FLAG, .dst = (p), .set = 1 }, \
                             { .names = "--nothink|--no-think|--chat", .kind = CLI_FLAG, .dst = (p), .set = 0 }
#define CLI_O_EFFORT(p)      { .names = "--effort", .kind = CLI_CUSTOM, .dst = (p), .parse = cli_parse_effort, \
                               .what = "none, low, high, max or an integer in [1, 100]" }
#define CLI_O_FORMAT(p)      { .names = "--format", .kind = CLI_CHOICE, .dst = (p), .choices = "auto|v4|v41" }
#define CLI_O_TOKENIZER(p)   { .names = "--tokenizer", .kind = CLI_STR, .dst = (p) }
#define CLI_O_END            { .names = NULL }

/* Parse argv[1..argc) (argv[0] = the command name) against `opts`. `usage` is printed (with cli_common_usage)
 * on stdout for -h. Returns 0 (parsed), 2 (usage error, message printed) or -1 (help or version printed: the
 * command returns 0). The message of the last error is also kept in cli_msg (for tests). */
int cli_parse(const char *cmd, const char *usage, const cli_opt *opts, int argc, char **argv);

extern int cli_verbose;       /* -v given */
extern int cli_parse_only;    /* tests: commands return 0 right after their options are checked */
extern char cli_msg[1024];    /* the last message of cli_parse */
extern char cli_trace[8192];  /* with cli_parse_only: "NAME=VALUE " for each option parsed (value as stored) */
/* The version string printed by --version and `dsv4 --version`. */
extern const char *cli_version;

/* The seed to use: `s` when given (seen), else a random one (from /dev/urandom, else time and pid). With -v the
 * seed is printed to stderr ("dsv4 CMD: seed N") so that a run can be repeated. */
uint64_t cli_seed(const char *cmd, uint64_t s, int seen);

/* "dsv4 CMD: message" on stderr (also kept in cli_msg); returns 1 (the failure exit status). A library function
 * name heading a message ("dsv4_session_open: out of memory") is left out: users get the reason. */
int cli_fail(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* The help lines of the options every command takes (appended to every command's -h). */
extern const char *cli_common_usage;
/* --mem BYTES (a common option): the memory budget cli_load_model passes to dsv4_model_load_opts; 0 = none.
 * cli_mem_given: 1 once --mem was parsed; without it cli_load_model uses cli_default_mem(). */
extern uint64_t cli_mem_bytes;
extern int cli_mem_given;
/* --engram-cache N (every command): dsv4_load_options.engram_cache_rows of the models the CLI loads. */
extern int cli_engram_cache_rows;
/* --chunk N (every command): dsv4_load_options.chunk_tokens of the models the CLI loads (0: cli_default_chunk). */
extern int cli_chunk_tokens;
/* The CLI's chunk without --chunk: CLI_CHUNK (512) for the one-session commands, where `dsv4 bench --prefill-chunk`
 * on the real V4-Flash shapes measured prefill 1.1-1.5x faster than at 128 for about 410 MiB more session memory
 * (docs/performance.md, "Prefill chunk"); the library default DSV4_DEFAULT_CHUNK (128) for serve, whose every slot
 * is a session. */
#define CLI_CHUNK 512
int cli_default_chunk(const char *cmd);
/* The default budget: 3/4 of /proc/meminfo's MemAvailable (0 = none when unreadable); $DSV4_MEM_AVAILABLE (a byte
 * count as --mem takes) replaces MemAvailable (tests). A model that fits keeps the mmap path; one below the minimum
 * makes cli_load_model fall back to the mmap path with a warning. */
uint64_t cli_default_mem(void);
/* Parse a byte count "N[K|M|G|T][i][B]" (binary units) into *(uint64_t *)dst; 0, or -1 when malformed / > 2^64-1. */
int cli_parse_bytes(const char *v, void *dst);

/* 1 if the open stream f is a regular file, else 0 (a device, pipe or socket, or fstat failed). A command that
 * removes its partial output after a write error removes it only when this was 1 at open time: `--out /dev/full`
 * must not delete the device. */
int cli_is_regular_file(FILE *f);

/* Monotonic seconds. */
double cli_now(void);

/* Progress bar on stderr, for long loads, ppl and bench (callers draw it only when stderr is a terminal):
 * "\r<label> [#########...........]  45% <extra>" redrawn in place, at most every 0.1 s unless done >= total;
 * cli_progress_clear() erases the line (before printing anything else). total <= 0 draws an empty bar. */
void cli_progress(const char *label, double done, double total, const char *extra);
void cli_progress_clear(void);

/* Parse "1,2,3" or "1 2 3" (s[0..len), separators: comma, space, tab, CR, LF) into ids, each a decimal integer
 * in [0, 2^31-1] (the range vs a vocabulary is the caller's). Returns malloc'd ids (possibly none; *n_out set),
 * or NULL with err (errlen bytes): "token list: 'x' at item 1 is not a non-negative integer id", "unexpected byte
 * 0x.. after item N", out of memory. Item numbers count from 0. */
int32_t *cli_parse_ids(const char *s, size_t len, int *n_out, char *err, size_t errlen);

/* Load the model directory `dir` for command `cmd`; prints the reason ("dsv4 CMD: ...") and returns NULL on
 * failure. Before the library is asked: a regular file gets "-m takes the model directory ..."; a directory with
 * config.json but no *.safetensors gets where DeepSeek publishes the weights. When stderr is a terminal a
 * "loading ..." line is shown (and erased) while the weights are mapped and checked. */
dsv4_model *cli_load_model(const char *cmd, const char *dir);

/* The tokenizer of --tokenizer FILE, or DIR/tokenizer.json; prints the reason and returns NULL on failure. */
dsv4_tokenizer *cli_open_tokenizer(const char *cmd, const char *dir, const char *file);

/* The DeepSeek-V4 special tokens the chat prompt format uses (docs: the encoding); a tokenizer without them would
 * tokenize a rendered conversation as plain text. Prints "dsv4 CMD: the tokenizer of WHERE lacks N DeepSeek-V4
 * special tokens used by the chat prompt format: ..." and returns 1 when any is missing; else 0. */
int cli_require_v4_tokens(const char *cmd, const dsv4_tokenizer *t, const char *where);
/* The same for the prompt format `fmt`: DeepSeek-V4.1 also needs "<｜System｜>" (docs/encoding.md §10). */
int cli_require_chat_tokens(const char *cmd, const dsv4_tokenizer *t, const char *where, dsv4_chat_format fmt);

/* --effort (docs/encoding.md §3.3, §10.2): a named level or, for DeepSeek-V4.1, a number. */
typedef struct {
    int named;   /* 0 none (not given), 1 high, 2 max, 3 low */
    int level;   /* 1..100 when a number was given, else 0 */
} cli_effort;
/* CLI_CUSTOM parser of --effort into a cli_effort: "none", "low", "high", "max" or digits 1..100. */
int cli_parse_effort(const char *v, void *dst);
/* Set o->effort / o->effort_level from e for o->format. V4: none / high / max (low and numbers are refused: the V4
 * encoder has no such level); V4.1: a number as is, low 50, high 75, max 100, none = the default 75
 * (dsv4_v41_effort_of_name). Returns 0, or prints "dsv4 CMD: --effort ..." and returns 1. */
int cli_effort_apply(const char *cmd, const cli_effort *e, dsv4_render_opts *o);
/* The prompt format of the model in `dir` (config.json's model_type, through dsv4_config_info: V4.1 ->
 * DSV4_FORMAT_V41), or `choice` when not 0 (1 = v4, 2 = v41: the --format option). dir NULL or without a
 * config.json: DSV4_FORMAT_V4. Returns the format, or -1 after printing the config error. */
int cli_chat_format(const char *cmd, const char *dir, int choice);

/* Refuse a session size above the model's max_position_embeddings: prints
 * "dsv4 CMD: OPT N is above the model's max_position_embeddings M (config.json)" (OPT: the option that set the
 * size, "-c" or "--window") and returns 2; else 0. */
int cli_check_ctx(const char *cmd, const char *opt, const dsv4_model *m, long ctx);
/* A default session size that the user did not set (seen == 0) lowered to the model's max_position_embeddings
 * (8192 on a 4096-position model is 4096); a size the user gave is kept (cli_check_ctx refuses it if too large). */
void cli_default_ctx(const dsv4_model *m, int *ctx, int seen);

/* The one-line load summary on stderr:
 * "dsv4 CMD: DIR: 284.33B parameters (13.27B active), 148.65 GiB of weights mapped (1.20 GiB resident),
 *  ctx 8192, state 412.0 MiB, 16 threads, kernel avx512, loaded in 0.41 s". resident = the process's resident
 * memory (/proc/self/statm; left out where that is not available). */
void cli_load_summary(const char *cmd, const char *dir, const dsv4_model *m, int ctx, double load_s);

/* Write n bytes to stdout; 0, or -1 after a write error (the message is printed once by cli_stdout_close). */
int cli_out(const void *p, size_t n);
/* Flush stdout (after each streamed piece); 0, or -1 after a write error. */
int cli_flush(void);
/* Flush stdout; returns 0, or prints "dsv4 CMD: write error on stdout: REASON" and returns 1 (the caller's exit
 * status must then be 1). Checks every earlier write too (ferror), so a command calls it once before it returns. */
int cli_stdout_close(const char *cmd);

/* Ctrl-C. cli_sigint_begin installs a SIGINT handler (without SA_RESTART: a blocking read returns EINTR) that sets
 * cli_interrupted; the long loops (generate, ppl, bench, chat replies) poll it and stop, keeping what was
 * measured. cli_sigint_end restores the default action (a second Ctrl-C then kills as usual). */
extern volatile sig_atomic_t cli_interrupted;
void cli_sigint_begin(void);
void cli_sigint_end(void);

/* Tokenize `len` bytes of `text` with automatic buffer growth. Returns malloc'd ids (count in *n_out), or NULL
 * with err (errlen bytes) filled: invalid UTF-8 (byte offset), text too long for int ids, out of memory. */
int32_t *cli_tokenize_all(const dsv4_tokenizer *t, const char *text, size_t len, int *n_out, char *err, size_t errlen);

#endif
