/* cli/cli_util.h — helpers shared by the `dsv4` subcommands (the src/cli files): whole-file reading with error
 * reporting, strict UTF-8 checking, JSON string output with U+FFFD replacement, human-readable counts.
 * CLI layer only: these print to stderr (the library never does). */
#ifndef DSV4_CLI_UTIL_H
#define DSV4_CLI_UTIL_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "dsv4.h"

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

/* The options every command takes: `-t/--threads N` (0..1024, digits only; 0 = one per physical core) and
 * `--kernel PATH` (scalar, avx2, avx512). When argv[*i] is one of them, consume it and its value (advancing
 * *i), apply it (dsv4_set_threads / dsv4_set_kernel_path) and return 1; return 0 when it is not one of them.
 * A missing or bad value prints "dsv4 CMD: ..." and exits 2. Each command calls it where it would otherwise
 * report an unknown option, so a value that happens to read "-t" is never taken for the option. */
int cli_common_option(const char *cmd, int argc, char **argv, int *i);
/* The help lines of those options (appended to every command's -h). */
extern const char *cli_common_usage;

/* Tokenize `len` bytes of `text` with automatic buffer growth. Returns malloc'd ids (count in *n_out), or NULL
 * with err (errlen bytes) filled: invalid UTF-8 (byte offset), text too long for int ids, out of memory. */
int32_t *cli_tokenize_all(const dsv4_tokenizer *t, const char *text, size_t len, int *n_out, char *err, size_t errlen);

#endif
