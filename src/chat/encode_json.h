/* chat/encode_json.h — a JSON reader and writers with CPython semantics, for the V4 prompt encoder.
 *
 * The official encoder (encoding_dsv4.py, docs/encoding.md §3, §4, §9) works on Python objects made by
 * json.loads and writes them back with json.dumps(ensure_ascii=False), str() and repr(). Byte-exact
 * output needs the same model of values, which cJSON does not give (it turns every number into a double
 * and cannot hold U+0000 in strings). This reader keeps:
 *  - object key order; a repeated key keeps its first position and takes the last value (Python dict);
 *  - integers as exact decimal text (Python int: any size; "-0" becomes "0"); more than 4300 digits is
 *    an error as in CPython >= 3.11 (int max_str_digits);
 *  - floats as double (Python float: correctly rounded; 1e400 -> inf);
 *  - NaN, Infinity, -Infinity literals (Python json accepts them);
 *  - strings as decoded bytes with a length (may contain U+0000). A lone UTF-16 surrogate from a \u
 *    escape is stored as its 3-byte WTF-8 form and flagged; writers refuse to emit it (the prompt could
 *    not be UTF-8).
 * Grammar is exactly Python json.loads(strict=True): whitespace is space/tab/CR/LF only, raw control
 * characters in strings are errors, no trailing commas, a number is -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?,
 * and nothing but whitespace may follow the value. Nesting deeper than PJ_MAX_DEPTH is an error.
 *
 * All memory comes from an arena (pj_arena) released at once with pj_arena_free.
 * Internal to src/chat; the public API is include/dsv4_chat.h.
 */
#ifndef DSV4_CHAT_ENCODE_JSON_H
#define DSV4_CHAT_ENCODE_JSON_H
#include <stddef.h>

#define PJ_MAX_DEPTH 900
#define PJ_MAX_INT_DIGITS 4300

/* Bump allocator; zero-initialise before use. */
typedef struct pj_arena { struct pj_block *head; } pj_arena;
/* `n` bytes, 16-byte aligned, zeroed; NULL on out of memory. Freed only by pj_arena_free. */
void *pj_alloc(pj_arena *a, size_t n);
/* Release every allocation of the arena; the arena may be reused afterwards. */
void pj_arena_free(pj_arena *a);

typedef enum { PJ_NULL, PJ_BOOL, PJ_INT, PJ_FLOAT, PJ_STRING, PJ_ARRAY, PJ_OBJECT } pj_type;

typedef struct pj_value {
    pj_type type;
    int boolean;              /* PJ_BOOL: 0 or 1 */
    int lone_surrogate;       /* PJ_STRING: contains at least one lone surrogate (WTF-8) */
    double num;               /* PJ_FLOAT: the value; PJ_INT: nearest double (for == comparisons only) */
    const char *s;            /* PJ_STRING: decoded bytes; PJ_INT: canonical decimal text. NUL-terminated */
    size_t len;               /* byte length of s */
    size_t n;                 /* PJ_ARRAY / PJ_OBJECT: number of items (distinct keys for objects) */
    struct pj_value **items;  /* PJ_ARRAY / PJ_OBJECT: the values, in order */
    struct pj_value **keys;   /* PJ_OBJECT: key strings (PJ_STRING), parallel to items */
    size_t off, end;          /* byte span [off, end) of the value in the parsed text */
} pj_value;

/* Parse `len` bytes of `src` (one JSON value surrounded by optional whitespace). `wtf8` = 0: the text
 * must be strict UTF-8 (a request read from a file or socket); `wtf8` = 1: raw surrogate code points
 * (3-byte WTF-8, as produced by this reader for lone \u escapes) are accepted as characters, which is
 * what Python json.loads does on a str. Returns the root or NULL with err "... at byte N". */
pj_value *pj_parse(pj_arena *a, const char *src, size_t len, int wtf8, char *err, size_t errlen);

/* Object member `key` (NUL-terminated, compared bytewise) or NULL; NULL if `obj` is not an object. */
const pj_value *pj_get(const pj_value *obj, const char *key);
/* Python truthiness: null, false, 0, 0.0, "", [] and {} are false; NULL (missing) is false. */
int pj_truthy(const pj_value *v);
/* 1 if v is a string equal to the NUL-terminated `s`. */
int pj_is_str(const pj_value *v, const char *s);
/* Python == on hashable scalars (None, bool, int, float, str): 1 equal, 0 not. NULL means None.
 * Numbers and bools compare by value (True == 1 == 1.0). */
int pj_py_equal(const pj_value *a, const pj_value *b);

/* Growable byte buffer (malloc). `oom` is set once an allocation failed; later appends are no-ops. */
typedef struct { char *p; size_t n, cap; int oom; } pj_buf;
void pj_buf_put(pj_buf *b, const char *s, size_t n);
void pj_buf_puts(pj_buf *b, const char *s);
void pj_buf_free(pj_buf *b);

/* Append json.dumps(v, ensure_ascii=False) (separators ", " and ": ", key order kept, floats by repr,
 * NaN/Infinity literals). Returns 0, or -1 with err if v holds a lone surrogate. */
int pj_dump_json(pj_buf *b, const pj_value *v, char *err, size_t errlen);
/* Append Python repr(v) of the equivalent Python object (dict/list/str/int/float/True/False/None). */
int pj_dump_repr(pj_buf *b, const pj_value *v, char *err, size_t errlen);
/* Append Python str(v) (= format(v, "")): strings raw, everything else as repr. NULL (missing) -> "None". */
int pj_dump_str(pj_buf *b, const pj_value *v, char *err, size_t errlen);
/* Append repr(float(x)) — shortest round-trip digits, fixed notation for 1e-4 <= |x| < 1e16 with ".0"
 * for integral values, else d.ddde[+-]XX (at least two exponent digits). json = 1 writes NaN/Infinity/
 * -Infinity for non-finite values (json.dumps), json = 0 writes nan/inf/-inf (repr). */
void pj_float_repr(pj_buf *b, double x, int json);

/* Python str.isprintable() for one code point >= 0x80 (Unicode 14 tables of CPython 3.11);
 * generated by tools/chat/gen_printable.py into encode_printable.c. */
int pj_unicode_printable(unsigned cp);

#endif
