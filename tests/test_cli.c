/* tests/test_cli.c — the one option parser (src/cli/cli_util.c cli_parse) as every command uses it: each command's
 * real entry point (dsv4_cli_*) is run in parse-only mode (cli_parse_only: the command returns right after its
 * options are checked, nothing is loaded) over a table of good and bad values of the shared options. A good value
 * must give exit status 0 and be stored as written (cli_trace "NAME=VALUE"); a bad one exit status 2 and the one
 * message of that option, word for word the same in every command that takes it. An option a command does not take
 * must be refused as unknown. Also the other parser paths: --name=value, a missing value, a flag given a value, an
 * unexpected argument, -h / --version (exit 0). */
#include "testlib.h"
#include "cli/cli_util.h"
#include "cli/commands.h"
#include <unistd.h>

typedef int (*cmd_fn)(int, char **);
typedef struct {
    const char *name;
    cmd_fn fn;
    const char *base;   /* the required options, space-separated */
    unsigned takes;     /* option families (below) */
    unsigned own;       /* families whose spelling this command uses with its own meaning (bench: lists) */
} command;

enum { F_MODEL = 1, F_SAMPLING = 2, F_NPRED = 4, F_CTX = 8, F_THINK = 16, F_THREADS = 32, F_BENCH = 64, F_IMAGE = 128,
       F_EFFORT = 256, F_FORMAT = 512 };

static const command commands[] = {
    { "generate", dsv4_cli_generate, "-m M -p x", F_MODEL | F_SAMPLING | F_NPRED | F_CTX | F_THREADS | F_IMAGE, 0 },
    { "chat", dsv4_cli_chat, "-m M", F_MODEL | F_SAMPLING | F_NPRED | F_CTX | F_THINK | F_THREADS | F_IMAGE | F_EFFORT, 0 },
    { "logits", dsv4_cli_logits, "-m M --tokens 1,2 --out o", F_MODEL | F_THREADS | F_IMAGE, 0 },
    { "info", dsv4_cli_info, "-m M", F_MODEL | F_THREADS, 0 },
    { "ppl", dsv4_cli_ppl, "-m M -f t", F_MODEL | F_THREADS, F_NPRED },
    { "tokenize", dsv4_cli_tokenize, "-m M", F_MODEL | F_THREADS, 0 },
    { "detokenize", dsv4_cli_detokenize, "-m M", F_MODEL | F_THREADS, 0 },
    { "render", dsv4_cli_render, "--messages x", F_MODEL | F_THINK | F_THREADS | F_IMAGE | F_EFFORT | F_FORMAT, 0 },
    { "parse", dsv4_cli_parse, "", F_THINK | F_THREADS | F_FORMAT, 0 },
    { "bench", dsv4_cli_bench, "-m M", F_MODEL | F_BENCH, F_NPRED | F_CTX | F_THREADS },
    { "bench-tokenizer", dsv4_cli_tokbench, "--tokenizer t --corpus c", F_THREADS, 0 },
};

/* One option value: the family it belongs to, the arguments, and either the trace entry (good) or the message
 * after "dsv4 CMD: " (bad). */
typedef struct { unsigned family; const char *args; int good; const char *want; } vcase;

static const vcase cases[] = {
    { F_MODEL, "--model D", 1, "--model=D" },
    { F_MODEL, "-m", 0, "option -m needs a value" },
    { F_SAMPLING, "--temp 0.7", 1, "--temp=0.7" },
    { F_SAMPLING, "--temperature 0", 1, "--temperature=0" },
    { F_SAMPLING, "--temp=100", 1, "--temp=100" },
    { F_SAMPLING, "--temp -1", 0, "option --temp: '-1' is not a number in [0, 100]" },
    { F_SAMPLING, "--temperature 100.5", 0, "option --temperature: '100.5' is not a number in [0, 100]" },
    { F_SAMPLING, "--temp nan", 0, "option --temp: 'nan' is not a number in [0, 100]" },
    { F_SAMPLING, "--temp 1x", 0, "option --temp: '1x' is not a number in [0, 100]" },
    { F_SAMPLING, "--top-p 1", 1, "--top-p=1" },
    { F_SAMPLING, "--top-p 0.5", 1, "--top-p=0.5" },
    { F_SAMPLING, "--top-p 0", 0, "option --top-p: '0' is not a number in (0, 1]" },
    { F_SAMPLING, "--top-p 1.01", 0, "option --top-p: '1.01' is not a number in (0, 1]" },
    { F_SAMPLING, "--top-k 0", 1, "--top-k=0" },
    { F_SAMPLING, "--top-k=40", 1, "--top-k=40" },
    { F_SAMPLING, "--top-k 1073741824", 1, "--top-k=1073741824" },
    { F_SAMPLING, "--top-k 2.5", 0, "option --top-k: '2.5' is not an integer in [0, 1073741824]" },
    { F_SAMPLING, "--top-k -1", 0, "option --top-k: '-1' is not an integer in [0, 1073741824]" },
    { F_SAMPLING, "--top-k 1e3", 0, "option --top-k: '1e3' is not an integer in [0, 1073741824]" },
    { F_SAMPLING, "--top-k +3", 0, "option --top-k: '+3' is not an integer in [0, 1073741824]" },
    { F_SAMPLING, "--top-k 1073741825", 0, "option --top-k: '1073741825' is not an integer in [0, 1073741824]" },
    { F_SAMPLING, "-s 0", 1, "-s=0" },
    { F_SAMPLING, "--seed 18446744073709551615", 1, "--seed=18446744073709551615" },
    { F_SAMPLING, "--seed 18446744073709551616", 0, "option --seed: '18446744073709551616' is not an integer in [0, 18446744073709551615]" },
    { F_SAMPLING, "-s 2.5", 0, "option -s: '2.5' is not an integer in [0, 18446744073709551615]" },
    { F_SAMPLING, "-s -1", 0, "option -s: '-1' is not an integer in [0, 18446744073709551615]" },
    { F_NPRED, "-n 0", 1, "-n=0" },
    { F_NPRED, "--n-predict 16777216", 1, "--n-predict=16777216" },
    { F_NPRED, "--max-tokens 5", 1, "--max-tokens=5" },
    { F_NPRED, "-n 16777217", 0, "option -n: '16777217' is not an integer in [0, 16777216]" },
    { F_NPRED, "--max-tokens 2.5", 0, "option --max-tokens: '2.5' is not an integer in [0, 16777216]" },
    { F_NPRED, "-n abc", 0, "option -n: 'abc' is not an integer in [0, 16777216]" },
    { F_CTX, "-c 1", 1, "-c=1" },
    { F_CTX, "--ctx-size 4096", 1, "--ctx-size=4096" },
    { F_CTX, "--ctx 16777216", 1, "--ctx=16777216" },
    { F_CTX, "-c 0", 0, "option -c: '0' is not an integer in [1, 16777216]" },
    { F_CTX, "--ctx 2.5", 0, "option --ctx: '2.5' is not an integer in [1, 16777216]" },
    { F_THINK, "--think", 1, "--think=1" },
    { F_THINK, "--nothink", 1, "--nothink=0" },
    { F_THINK, "--no-think", 1, "--no-think=0" },
    { F_THINK, "--think=1", 0, "option --think takes no value" },
    { F_THREADS, "-t 0", 1, "-t=0" },
    { F_THREADS, "--threads 1024", 1, "--threads=1024" },
    { F_THREADS, "-t 1025", 0, "option -t: '1025' is not an integer in [0, 1024]" },
    { F_THREADS, "-t 2.5", 0, "option -t: '2.5' is not an integer in [0, 1024]" },
    { F_THREADS, "--threads -1", 0, "option --threads: '-1' is not an integer in [0, 1024]" },
    /* --effort: V4 names, V4.1 names and numbers 1..100 (which the model's format accepts is checked after loading) */
    { F_EFFORT, "--effort none", 1, "--effort=none" },
    { F_EFFORT, "--effort max", 1, "--effort=max" },
    { F_EFFORT, "--effort=low", 1, "--effort=low" },
    { F_EFFORT, "--effort 1", 1, "--effort=1" },
    { F_EFFORT, "--effort 100", 1, "--effort=100" },
    { F_EFFORT, "--effort 0", 0, "option --effort: '0' is not none, low, high, max or an integer in [1, 100]" },
    { F_EFFORT, "--effort 101", 0, "option --effort: '101' is not none, low, high, max or an integer in [1, 100]" },
    { F_EFFORT, "--effort 50.5", 0, "option --effort: '50.5' is not none, low, high, max or an integer in [1, 100]" },
    { F_EFFORT, "--effort xhigh", 0, "option --effort: 'xhigh' is not none, low, high, max or an integer in [1, 100]" },
    { F_EFFORT, "--effort", 0, "option --effort needs a value" },
    /* --format: the prompt / DSML format (auto = from the model) */
    { F_FORMAT, "--format v41", 1, "--format=v41" },
    { F_FORMAT, "--format=auto", 1, "--format=auto" },
    { F_FORMAT, "--format v5", 0, "option --format: 'v5' is not one of auto|v4|v41" },
    /* --image FILE: repeatable, kept in order */
    { F_IMAGE, "--image a.png", 1, "--image=a.png" },
    { F_IMAGE, "--image a.png --image=b.jpg", 1, "--image=a.png --image=b.jpg" },
    { F_IMAGE, "--image", 0, "option --image needs a value" },
    { F_IMAGE, "--image=", 0, "option --image: '' is not an image file (a JPEG or PNG)" },
    /* bench: -t and -c take lists, -n counts timed steps */
    { F_BENCH, "-t 1,2", 1, "-t=1,2" },
    { F_BENCH, "-t 0", 0, "option -t: '0' is not a list of thread counts in [1, 1024]" },
    { F_BENCH, "-t none", 0, "option -t: 'none' is not a list of thread counts in [1, 1024]" },
    { F_BENCH, "--threads 1,", 0, "option --threads: '1,' is not a list of thread counts in [1, 1024]" },
    { F_BENCH, "-c none", 1, "-c=none" },
    { F_BENCH, "--ctx 4096,65536", 1, "--ctx=4096,65536" },
    { F_BENCH, "--ctx 2.5", 0, "option --ctx: '2.5' is not a list of positions in [1, 16777216] (or none)" },
    { F_BENCH, "-n 8", 1, "-n=8" },
    { F_BENCH, "-n 0", 0, "option -n: '0' is not an integer in [1, 1048576]" },
    { F_BENCH, "--kernel scalar", 1, "--kernel=scalar" },
    { F_BENCH, "--batch 1,4,16", 1, "--batch=1,4,16" },
    { F_BENCH, "--batch 129", 0, "option --batch: '129' is not a list of session counts in [1, 128] (or none)" },
    { F_BENCH, "--repeat 3", 1, "--repeat=3" },
    { F_BENCH, "--repeat 0", 0, "option --repeat: '0' is not an integer in [1, 100]" },
};

/* Split s into argv after argv[0] = cmd (tokens separated by single spaces); returns argc. */
static int split(const char *cmd, const char *s, char *buf, size_t bufsz, char **argv) {
    int argc = 0;
    argv[argc++] = (char *)cmd;
    snprintf(buf, bufsz, "%s", s);
    for (char *p = strtok(buf, " "); p; p = strtok(NULL, " ")) argv[argc++] = p;
    argv[argc] = NULL;
    return argc;
}

/* Run cmd with its base options followed by `extra`; returns the exit status. */
static int run(const command *c, const char *extra) {
    char line[512], buf[512], *argv[64];
    snprintf(line, sizeof line, "%s %s", c->base, extra);
    int argc = split(c->name, line, buf, sizeof buf, argv);
    cli_msg[0] = 0;
    return c->fn(argc, argv);
}

int main(void) {
    cli_parse_only = 1;
    fflush(stderr);
    if (!freopen("/dev/null", "w", stderr)) return 1;   /* the messages are checked through cli_msg */
    char want[512];
    for (size_t ci = 0; ci < sizeof commands / sizeof *commands; ci++) {
        const command *c = &commands[ci];
        int rc = run(c, "");
        EXPECT(rc == 0, "%s %s: exit %d, wanted 0 (%s)", c->name, c->base, rc, cli_msg);
        for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
            const vcase *v = &cases[k];
            rc = run(c, v->args);
            if (c->own & v->family) continue;
            if (!(c->takes & v->family)) {   /* not an option of this command: unknown */
                if (v->family == F_MODEL || v->family == F_BENCH) continue;
                char name[64];
                snprintf(name, sizeof name, "%s", v->args);
                char *sp = strpbrk(name, " =");
                if (sp) *sp = 0;
                snprintf(want, sizeof want, "dsv4 %s: unknown option '%s' (dsv4 %s -h lists the options)", c->name, name, c->name);
                EXPECT(rc == 2 && !strcmp(cli_msg, want), "%s %s: exit %d '%s', wanted 2 '%s'", c->name, v->args, rc, cli_msg, want);
            } else if (v->good) {
                char tw[128];
                snprintf(tw, sizeof tw, "%s ", v->want);
                EXPECT(rc == 0 && strstr(cli_trace, tw), "%s %s: exit %d (%s), trace '%s', wanted 0 and '%s'", c->name,
                       v->args, rc, cli_msg, cli_trace, v->want);
            } else {
                snprintf(want, sizeof want, "dsv4 %s: %s", c->name, v->want);
                EXPECT(rc == 2 && !strcmp(cli_msg, want), "%s %s: exit %d '%s', wanted 2 '%s'", c->name, v->args, rc, cli_msg, want);
            }
        }
        /* paths of the parser itself */
        rc = run(c, "--bogus");
        snprintf(want, sizeof want, "dsv4 %s: unknown option '--bogus' (dsv4 %s -h lists the options)", c->name, c->name);
        EXPECT(rc == 2 && !strcmp(cli_msg, want), "%s --bogus: exit %d '%s'", c->name, rc, cli_msg);
        rc = run(c, "stray");
        snprintf(want, sizeof want, "dsv4 %s: unexpected argument 'stray' (options start with -; dsv4 %s -h lists them)", c->name, c->name);
        EXPECT(rc == 2 && !strcmp(cli_msg, want), "%s stray: exit %d '%s'", c->name, rc, cli_msg);
        rc = run(c, "-v");
        EXPECT(rc == 0 && strstr(cli_trace, "-v=1 "), "%s -v: exit %d trace '%s'", c->name, rc, cli_trace);
        fflush(stdout);
        int saved = dup(1);
        if (!freopen("/dev/null", "w", stdout)) return 1;
        int rh = run(c, "-h"), rv = run(c, "--version");
        fflush(stdout);
        dup2(saved, 1);
        close(saved);
        EXPECT(rh == 0 && rv == 0, "%s: -h exit %d, --version exit %d, wanted 0", c->name, rh, rv);
    }
    /* a missing required option is a usage error */
    char *a1[] = { (char *)"generate", (char *)"-p", (char *)"x", NULL };
    EXPECT(dsv4_cli_generate(3, a1) == 2, "generate without -m: exit 2");
    char *a2[] = { (char *)"generate", (char *)"-m", (char *)"M", (char *)"-p", (char *)"x", (char *)"-f", (char *)"y", NULL };
    EXPECT(dsv4_cli_generate(7, a2) == 2, "generate with -p and -f: exit 2");
    /* the value is always the next argument, even when it looks like an option */
    char *a3[] = { (char *)"generate", (char *)"-m", (char *)"M", (char *)"-p", (char *)"-n", NULL };
    EXPECT(dsv4_cli_generate(5, a3) == 0 && strstr(cli_trace, "-p=-n "), "generate -p -n: the prompt is '-n' (trace '%s')", cli_trace);
    /* messages name no internal function */
    cli_fail("generate", "cannot open session: %s", "dsv4_session_open: out of memory (9.0 MiB of state for max_ctx 9)");
    EXPECT(!strcmp(cli_msg, "dsv4 generate: cannot open session: out of memory (9.0 MiB of state for max_ctx 9)"),
           "cli_fail keeps a library function name: '%s'", cli_msg);
    cli_fail("x", "tensor dsv4_thing is bad: dsv4_a: b");
    EXPECT(!strcmp(cli_msg, "dsv4 x: tensor dsv4_thing is bad: b"), "cli_fail: '%s'", cli_msg);
    return test_done();
}
