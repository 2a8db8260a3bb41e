/* chat/encode_json.c — see encode_json.h. */
#include "chat/encode_json.h"
#include "base/util.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- arena */
struct pj_block { struct pj_block *next; size_t used, cap; _Alignas(16) unsigned char data[]; };

void *pj_alloc(pj_arena *a, size_t n) {
    n = (n + 15) & ~(size_t)15;
    struct pj_block *b = a->head;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        b = malloc(sizeof *b + cap);
        if (!b) return NULL;
        b->used = 0; b->cap = cap; b->next = a->head; a->head = b;
    }
    void *p = b->data + b->used;
    b->used += n;
    memset(p, 0, n);
    return p;
}

void pj_arena_free(pj_arena *a) {
    struct pj_block *b = a->head;
    while (b) { struct pj_block *nx = b->next; free(b); b = nx; }
    a->head = NULL;
}

/* ---------------------------------------------------------------- buffer */
void pj_buf_put(pj_buf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (b->n + n + 1 > cap) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) { b->oom = 1; return; }
        b->p = p; b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}
void pj_buf_puts(pj_buf *b, const char *s) { pj_buf_put(b, s, strlen(s)); }
void pj_buf_free(pj_buf *b) { free(b->p); b->p = NULL; b->n = b->cap = 0; b->oom = 0; }
static void buf_putc(pj_buf *b, char c) { pj_buf_put(b, &c, 1); }

/* ---------------------------------------------------------------- UTF-8 */
/* Decode one code point at s[0..n). wtf8 allows encoded surrogates. Returns byte length, 0 if invalid. */
static int utf8_next(const unsigned char *s, size_t n, int wtf8, unsigned *cp) {
    unsigned c = s[0];
    if (c < 0x80) { *cp = c; return 1; }
    int len; unsigned v, min;
    if (c >= 0xc2 && c <= 0xdf) { len = 2; v = c & 0x1f; min = 0x80; }
    else if (c >= 0xe0 && c <= 0xef) { len = 3; v = c & 0x0f; min = 0x800; }
    else if (c >= 0xf0 && c <= 0xf4) { len = 4; v = c & 0x07; min = 0x10000; }
    else return 0;
    if ((size_t)len > n) return 0;
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff) return 0;
    if (v >= 0xd800 && v <= 0xdfff && !wtf8) return 0;
    *cp = v;
    return len;
}

static void put_utf8(pj_buf *b, unsigned cp) {
    char t[4]; size_t n;
    if (cp < 0x80) { t[0] = (char)cp; n = 1; }
    else if (cp < 0x800) { t[0] = (char)(0xc0 | (cp >> 6)); t[1] = (char)(0x80 | (cp & 0x3f)); n = 2; }
    else if (cp < 0x10000) {
        t[0] = (char)(0xe0 | (cp >> 12)); t[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        t[2] = (char)(0x80 | (cp & 0x3f)); n = 3;
    } else {
        t[0] = (char)(0xf0 | (cp >> 18)); t[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        t[2] = (char)(0x80 | ((cp >> 6) & 0x3f)); t[3] = (char)(0x80 | (cp & 0x3f)); n = 4;
    }
    pj_buf_put(b, t, n);
}

/* ---------------------------------------------------------------- parser */
typedef struct {
    pj_arena *a;
    const char *s;
    size_t n, i;
    int wtf8, depth;
    char *err; size_t errlen;
    int failed;
    pj_buf tmp;
} parser;

static pj_value *perr(parser *p, const char *what) {
    if (!p->failed) dsv4_fail(p->err, p->errlen, "invalid JSON: %s at byte %zu", what, p->i);
    p->failed = 1;
    return NULL;
}

static void skip_ws(parser *p) {
    while (p->i < p->n) {
        char c = p->s[p->i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') p->i++;
        else break;
    }
}

static char *arena_strdup(pj_arena *a, const char *s, size_t n) {
    char *d = pj_alloc(a, n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

static pj_value *new_value(parser *p, pj_type t, size_t off) {
    pj_value *v = pj_alloc(p->a, sizeof *v);
    if (!v) return perr(p, "out of memory");
    v->type = t; v->off = off;
    return v;
}

static int hex4(const char *s, unsigned *out) {
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        char c = s[k]; unsigned d;
        if (c >= '0' && c <= '9') d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') d = (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') d = (unsigned)(c - 'A' + 10);
        else return -1;
        v = v * 16 + d;
    }
    *out = v;
    return 0;
}

static pj_value *parse_string(parser *p) {
    size_t off = p->i;
    p->i++; /* opening quote */
    p->tmp.n = 0;
    int lone = 0;
    for (;;) {
        if (p->i >= p->n) return perr(p, "unterminated string");
        unsigned char c = (unsigned char)p->s[p->i];
        if (c == '"') { p->i++; break; }
        if (c < 0x20) return perr(p, "control character in string");
        if (c == '\\') {
            if (p->i + 1 >= p->n) return perr(p, "unterminated string");
            char e = p->s[p->i + 1];
            p->i += 2;
            switch (e) {
            case '"': buf_putc(&p->tmp, '"'); break;
            case '\\': buf_putc(&p->tmp, '\\'); break;
            case '/': buf_putc(&p->tmp, '/'); break;
            case 'b': buf_putc(&p->tmp, '\b'); break;
            case 'f': buf_putc(&p->tmp, '\f'); break;
            case 'n': buf_putc(&p->tmp, '\n'); break;
            case 'r': buf_putc(&p->tmp, '\r'); break;
            case 't': buf_putc(&p->tmp, '\t'); break;
            case 'u': {
                unsigned u;
                if (p->i + 4 > p->n || hex4(p->s + p->i, &u)) return perr(p, "invalid \\u escape");
                p->i += 4;
                if (u >= 0xd800 && u <= 0xdbff && p->i + 6 <= p->n && p->s[p->i] == '\\' && p->s[p->i + 1] == 'u') {
                    unsigned u2;
                    if (hex4(p->s + p->i + 2, &u2)) { p->i += 2; return perr(p, "invalid \\u escape"); }
                    if (u2 >= 0xdc00 && u2 <= 0xdfff) {
                        u = 0x10000 + ((u - 0xd800) << 10) + (u2 - 0xdc00);
                        p->i += 6;
                    }
                }
                if (u >= 0xd800 && u <= 0xdfff) lone = 1;
                put_utf8(&p->tmp, u);
                break;
            }
            default: p->i -= 1; return perr(p, "invalid escape");
            }
            continue;
        }
        if (c < 0x80) { buf_putc(&p->tmp, (char)c); p->i++; continue; }
        unsigned cp;
        int k = utf8_next((const unsigned char *)p->s + p->i, p->n - p->i, p->wtf8, &cp);
        if (!k) return perr(p, "invalid UTF-8");
        if (cp >= 0xd800 && cp <= 0xdfff) lone = 1;
        pj_buf_put(&p->tmp, p->s + p->i, (size_t)k);
        p->i += (size_t)k;
    }
    if (p->tmp.oom) return perr(p, "out of memory");
    pj_value *v = new_value(p, PJ_STRING, off);
    if (!v) return NULL;
    v->s = arena_strdup(p->a, p->tmp.p ? p->tmp.p : "", p->tmp.n);
    if (!v->s) return perr(p, "out of memory");
    v->len = p->tmp.n;
    v->lone_surrogate = lone;
    v->end = p->i;
    return v;
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }

static pj_value *parse_number(parser *p) {
    size_t off = p->i, i = p->i;
    const char *s = p->s;
    int neg = 0;
    if (i < p->n && s[i] == '-') { neg = 1; i++; }
    if (i >= p->n || !is_digit(s[i])) {
        if (neg && p->n - i >= 8 && !memcmp(s + i, "Infinity", 8)) {
            pj_value *v = new_value(p, PJ_FLOAT, off);
            if (!v) return NULL;
            v->num = -INFINITY; p->i = i + 8; v->end = p->i;
            return v;
        }
        return perr(p, "unexpected character");
    }
    size_t int_start = i;
    if (s[i] == '0') i++;
    else while (i < p->n && is_digit(s[i])) i++;
    size_t int_end = i;
    int is_float = 0;
    if (i + 1 < p->n && s[i] == '.' && is_digit(s[i + 1])) {
        is_float = 1; i++;
        while (i < p->n && is_digit(s[i])) i++;
    }
    if (i < p->n && (s[i] == 'e' || s[i] == 'E')) {
        size_t j = i + 1;
        if (j < p->n && (s[j] == '+' || s[j] == '-')) j++;
        if (j < p->n && is_digit(s[j])) {
            is_float = 1;
            while (j < p->n && is_digit(s[j])) j++;
            i = j;
        }
    }
    pj_value *v = new_value(p, is_float ? PJ_FLOAT : PJ_INT, off);
    if (!v) return NULL;
    char *txt = arena_strdup(p->a, s + off, i - off);
    if (!txt) return perr(p, "out of memory");
    v->num = strtod(txt, NULL);
    if (!is_float) {
        size_t ndig = int_end - int_start;
        if (ndig > PJ_MAX_INT_DIGITS) return perr(p, "integer with more than 4300 digits (Python int limit)");
        if (neg && ndig == 1 && s[int_start] == '0') { txt = "0"; v->num = 0; }
        v->s = txt; v->len = strlen(txt);
    }
    p->i = i;
    v->end = i;
    return v;
}

static pj_value *parse_value(parser *p);

static int grow(parser *p, pj_value ***arr, size_t n, size_t *cap) {
    if (n < *cap) return 0;
    size_t nc = *cap ? *cap * 2 : 8;
    pj_value **na = pj_alloc(p->a, nc * sizeof *na);
    if (!na) return -1;
    if (n) memcpy(na, *arr, n * sizeof *na);
    *arr = na; *cap = nc;
    return 0;
}

static pj_value *parse_array(parser *p) {
    pj_value *v = new_value(p, PJ_ARRAY, p->i);
    if (!v) return NULL;
    p->i++;
    size_t cap = 0;
    skip_ws(p);
    if (p->i < p->n && p->s[p->i] == ']') { p->i++; v->end = p->i; return v; }
    for (;;) {
        skip_ws(p);
        pj_value *it = parse_value(p);
        if (!it) return NULL;
        if (grow(p, &v->items, v->n, &cap)) return perr(p, "out of memory");
        v->items[v->n++] = it;
        skip_ws(p);
        if (p->i >= p->n) return perr(p, "unterminated array");
        if (p->s[p->i] == ',') { p->i++; continue; }
        if (p->s[p->i] == ']') { p->i++; break; }
        return perr(p, "expected ',' or ']'");
    }
    v->end = p->i;
    return v;
}

static pj_value *parse_object(parser *p) {
    pj_value *v = new_value(p, PJ_OBJECT, p->i);
    if (!v) return NULL;
    p->i++;
    size_t cap = 0, kcap = 0;
    skip_ws(p);
    if (p->i < p->n && p->s[p->i] == '}') { p->i++; v->end = p->i; return v; }
    for (;;) {
        skip_ws(p);
        if (p->i >= p->n || p->s[p->i] != '"') return perr(p, "expected a string key");
        pj_value *k = parse_string(p);
        if (!k) return NULL;
        skip_ws(p);
        if (p->i >= p->n || p->s[p->i] != ':') return perr(p, "expected ':'");
        p->i++;
        skip_ws(p);
        pj_value *it = parse_value(p);
        if (!it) return NULL;
        size_t j;
        for (j = 0; j < v->n; j++)
            if (v->keys[j]->len == k->len && !memcmp(v->keys[j]->s, k->s, k->len)) break;
        if (j < v->n) v->items[j] = it; /* Python dict: first position, last value */
        else {
            if (grow(p, &v->items, v->n, &cap) || grow(p, &v->keys, v->n, &kcap)) return perr(p, "out of memory");
            v->keys[v->n] = k;
            v->items[v->n++] = it;
        }
        skip_ws(p);
        if (p->i >= p->n) return perr(p, "unterminated object");
        if (p->s[p->i] == ',') { p->i++; continue; }
        if (p->s[p->i] == '}') { p->i++; break; }
        return perr(p, "expected ',' or '}'");
    }
    v->end = p->i;
    return v;
}

static pj_value *parse_literal(parser *p, const char *lit, pj_type t, int b, double num) {
    size_t l = strlen(lit);
    if (p->n - p->i < l || memcmp(p->s + p->i, lit, l)) return perr(p, "unexpected character");
    pj_value *v = new_value(p, t, p->i);
    if (!v) return NULL;
    v->boolean = b; v->num = num;
    p->i += l; v->end = p->i;
    return v;
}

static pj_value *parse_value(parser *p) {
    if (p->i >= p->n) return perr(p, "unexpected end of input");
    if (++p->depth > PJ_MAX_DEPTH) return perr(p, "nesting too deep");
    pj_value *v;
    switch (p->s[p->i]) {
    case '"': v = parse_string(p); break;
    case '{': v = parse_object(p); break;
    case '[': v = parse_array(p); break;
    case 'n': v = parse_literal(p, "null", PJ_NULL, 0, 0); break;
    case 't': v = parse_literal(p, "true", PJ_BOOL, 1, 1); break;
    case 'f': v = parse_literal(p, "false", PJ_BOOL, 0, 0); break;
    case 'N': v = parse_literal(p, "NaN", PJ_FLOAT, 0, NAN); break;
    case 'I': v = parse_literal(p, "Infinity", PJ_FLOAT, 0, INFINITY); break;
    default: v = parse_number(p); break;
    }
    p->depth--;
    return v;
}

pj_value *pj_parse(pj_arena *a, const char *src, size_t len, int wtf8, char *err, size_t errlen) {
    parser p = { .a = a, .s = src, .n = len, .wtf8 = wtf8, .err = err, .errlen = errlen };
    skip_ws(&p);
    pj_value *v = parse_value(&p);
    if (v) {
        skip_ws(&p);
        if (p.i != p.n) v = perr(&p, "extra data after the value");
    }
    pj_buf_free(&p.tmp);
    return v;
}

/* ---------------------------------------------------------------- access */
const pj_value *pj_get(const pj_value *obj, const char *key) {
    if (!obj || obj->type != PJ_OBJECT) return NULL;
    size_t l = strlen(key);
    for (size_t i = 0; i < obj->n; i++)
        if (obj->keys[i]->len == l && !memcmp(obj->keys[i]->s, key, l)) return obj->items[i];
    return NULL;
}

int pj_truthy(const pj_value *v) {
    if (!v) return 0;
    switch (v->type) {
    case PJ_NULL: return 0;
    case PJ_BOOL: return v->boolean;
    case PJ_INT: return !(v->len == 1 && v->s[0] == '0');
    case PJ_FLOAT: return v->num != 0.0 || isnan(v->num);
    case PJ_STRING: return v->len > 0;
    default: return v->n > 0;
    }
}

int pj_is_str(const pj_value *v, const char *s) {
    return v && v->type == PJ_STRING && v->len == strlen(s) && !memcmp(v->s, s, v->len);
}

int pj_py_equal(const pj_value *a, const pj_value *b) {
    int an = !a || a->type == PJ_NULL, bn = !b || b->type == PJ_NULL;
    if (an || bn) return an && bn;
    if (a->type == PJ_STRING || b->type == PJ_STRING)
        return a->type == b->type && a->len == b->len && !memcmp(a->s, b->s, a->len);
    int anum = a->type == PJ_BOOL || a->type == PJ_INT || a->type == PJ_FLOAT;
    int bnum = b->type == PJ_BOOL || b->type == PJ_INT || b->type == PJ_FLOAT;
    if (!anum || !bnum) return a == b;
    if (a->type == PJ_INT && b->type == PJ_INT) return a->len == b->len && !memcmp(a->s, b->s, a->len);
    double x = a->type == PJ_BOOL ? a->boolean : a->num, y = b->type == PJ_BOOL ? b->boolean : b->num;
    return x == y;
}

/* ---------------------------------------------------------------- writers */
/* Parse "[-]d[.ddd]e[+-]XX" into digits and exponent of the first digit. */
static int sci_split(const char *t, char *dig, int *e10) {
    int nd = 0;
    if (*t == '-') t++;
    while (*t && *t != 'e') { if (*t != '.') dig[nd++] = *t; t++; }
    *e10 = atoi(t + 1);
    return nd;
}

/* Does the decimal dig[0..nd) x 10^(e10-nd+1) (sign of x) read back as x? */
static int sci_roundtrips(const char *dig, int nd, int e10, double x) {
    char t[64]; int k = 0;
    if (x < 0) t[k++] = '-';
    t[k++] = dig[0];
    if (nd > 1) { t[k++] = '.'; memcpy(t + k, dig + 1, (size_t)nd - 1); k += nd - 1; }
    snprintf(t + k, sizeof t - (size_t)k, "e%d", e10);
    return strtod(t, NULL) == x;
}

/* Shortest digit string that reads back as x, nearest to x among those (David Gay's mode 0, as
 * CPython's repr): for each length the correctly rounded candidate, else its neighbour on the other
 * side of x (needed where the rounding interval is asymmetric, at powers of two). */
static int shortest_digits(double x, char *dig, int *e10) {
    char t[64];
    for (int prec = 0; prec < 17; prec++) {
        snprintf(t, sizeof t, "%.*e", prec, x);
        int nd = sci_split(t, dig, e10);
        if (strtod(t, NULL) == x) return nd;
        double c = strtod(t, NULL);
        int up = (x < 0) ? (c > x) : (c < x); /* |candidate| < |x|: try the next larger magnitude */
        char d2[32]; int e2 = *e10, n2 = nd;
        memcpy(d2, dig, (size_t)nd);
        if (up) {
            int i = n2 - 1;
            while (i >= 0 && d2[i] == '9') d2[i--] = '0';
            if (i >= 0) d2[i]++;
            else { d2[0] = '1'; e2++; }
        } else {
            int i = n2 - 1;
            while (i >= 0 && d2[i] == '0') d2[i--] = '9';
            if (i < 0) continue; /* cannot happen: the leading digit is non-zero */
            d2[i]--;
            if (d2[0] == '0') {
                if (n2 < 2) continue;
                memmove(d2, d2 + 1, (size_t)(n2 - 1)); n2--; e2--;
            }
        }
        if (sci_roundtrips(d2, n2, e2, x)) { memcpy(dig, d2, (size_t)n2); *e10 = e2; return n2; }
    }
    snprintf(t, sizeof t, "%.16e", x);
    return sci_split(t, dig, e10);
}

void pj_float_repr(pj_buf *b, double x, int json) {
    if (isnan(x)) { pj_buf_puts(b, json ? "NaN" : "nan"); return; }
    if (isinf(x)) { pj_buf_puts(b, x > 0 ? (json ? "Infinity" : "inf") : (json ? "-Infinity" : "-inf")); return; }
    if (x == 0) { pj_buf_puts(b, signbit(x) ? "-0.0" : "0.0"); return; }
    char dig[32];
    int e10;
    int nd = shortest_digits(x, dig, &e10);
    int neg = x < 0;
    while (nd > 1 && dig[nd - 1] == '0') nd--;
    int decpt = e10 + 1;
    if (neg) buf_putc(b, '-');
    if (decpt > -4 && decpt <= 16) {
        if (decpt <= 0) {
            pj_buf_puts(b, "0.");
            for (int k = 0; k < -decpt; k++) buf_putc(b, '0');
            pj_buf_put(b, dig, (size_t)nd);
        } else if (decpt >= nd) {
            pj_buf_put(b, dig, (size_t)nd);
            for (int k = nd; k < decpt; k++) buf_putc(b, '0');
            pj_buf_puts(b, ".0");
        } else {
            pj_buf_put(b, dig, (size_t)decpt);
            buf_putc(b, '.');
            pj_buf_put(b, dig + decpt, (size_t)(nd - decpt));
        }
    } else {
        buf_putc(b, dig[0]);
        if (nd > 1) { buf_putc(b, '.'); pj_buf_put(b, dig + 1, (size_t)(nd - 1)); }
        char e[16];
        int ex = decpt - 1;
        snprintf(e, sizeof e, "e%c%02d", ex < 0 ? '-' : '+', ex < 0 ? -ex : ex);
        pj_buf_puts(b, e);
    }
}

static int surrogate_err(char *err, size_t errlen) {
    return dsv4_fail(err, errlen, "string with a lone UTF-16 surrogate (\\ud800-\\udfff) cannot be rendered as UTF-8");
}

static void json_string(pj_buf *b, const pj_value *v) {
    static const char hex[] = "0123456789abcdef";
    buf_putc(b, '"');
    size_t run = 0;
    for (size_t i = 0; i < v->len; i++) {
        unsigned char c = (unsigned char)v->s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        pj_buf_put(b, v->s + run, i - run);
        run = i + 1;
        switch (c) {
        case '"': pj_buf_puts(b, "\\\""); break;
        case '\\': pj_buf_puts(b, "\\\\"); break;
        case '\n': pj_buf_puts(b, "\\n"); break;
        case '\r': pj_buf_puts(b, "\\r"); break;
        case '\t': pj_buf_puts(b, "\\t"); break;
        case '\b': pj_buf_puts(b, "\\b"); break;
        case '\f': pj_buf_puts(b, "\\f"); break;
        default: { char e[7] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15], 0 }; pj_buf_puts(b, e); }
        }
    }
    pj_buf_put(b, v->s + run, v->len - run);
    buf_putc(b, '"');
}

/* Python unicode_repr. */
static void repr_string(pj_buf *b, const pj_value *v) {
    static const char hex[] = "0123456789abcdef";
    int has_sq = memchr(v->s, '\'', v->len) != NULL, has_dq = memchr(v->s, '"', v->len) != NULL;
    char quote = (has_sq && !has_dq) ? '"' : '\'';
    buf_putc(b, quote);
    const unsigned char *s = (const unsigned char *)v->s;
    size_t i = 0;
    while (i < v->len) {
        unsigned cp;
        int k = utf8_next(s + i, v->len - i, 1, &cp);
        if (!k) { cp = s[i]; k = 1; } /* cannot happen: strings are validated on parse */
        if (cp == (unsigned)quote || cp == '\\') { buf_putc(b, '\\'); buf_putc(b, (char)cp); }
        else if (cp == '\t') pj_buf_puts(b, "\\t");
        else if (cp == '\n') pj_buf_puts(b, "\\n");
        else if (cp == '\r') pj_buf_puts(b, "\\r");
        else if (cp < 0x20 || cp == 0x7f) {
            char e[5] = { '\\', 'x', hex[cp >> 4], hex[cp & 15], 0 }; pj_buf_puts(b, e);
        } else if (cp < 0x7f) buf_putc(b, (char)cp);
        else if (pj_unicode_printable(cp)) pj_buf_put(b, (const char *)s + i, (size_t)k);
        else {
            char e[12];
            if (cp <= 0xff) snprintf(e, sizeof e, "\\x%02x", cp);
            else if (cp <= 0xffff) snprintf(e, sizeof e, "\\u%04x", cp);
            else snprintf(e, sizeof e, "\\U%08x", cp);
            pj_buf_puts(b, e);
        }
        i += (size_t)k;
    }
    buf_putc(b, quote);
}

/* json.dumps(v, ensure_ascii=False) (repr = 0) or Python repr(v) (repr = 1): the same walk, spelled
 * differently for null/booleans, floats and strings. See pj_dump_json / pj_dump_repr. */
static int dump(pj_buf *b, const pj_value *v, int repr, char *err, size_t errlen) {
    if (!v) { pj_buf_puts(b, repr ? "None" : "null"); return 0; }
    switch (v->type) {
    case PJ_NULL: pj_buf_puts(b, repr ? "None" : "null"); return 0;
    case PJ_BOOL: pj_buf_puts(b, v->boolean ? (repr ? "True" : "true") : (repr ? "False" : "false")); return 0;
    case PJ_INT: pj_buf_put(b, v->s, v->len); return 0;
    case PJ_FLOAT: pj_float_repr(b, v->num, !repr); return 0;
    case PJ_STRING:
        if (repr) repr_string(b, v);   /* repr escapes surrogates (\udXXX), so this is representable */
        else if (v->lone_surrogate) return surrogate_err(err, errlen);
        else json_string(b, v);
        return 0;
    case PJ_ARRAY:
        buf_putc(b, '[');
        for (size_t i = 0; i < v->n; i++) {
            if (i) pj_buf_puts(b, ", ");
            if (dump(b, v->items[i], repr, err, errlen)) return -1;
        }
        buf_putc(b, ']');
        return 0;
    case PJ_OBJECT:
        buf_putc(b, '{');
        for (size_t i = 0; i < v->n; i++) {
            if (i) pj_buf_puts(b, ", ");
            if (dump(b, v->keys[i], repr, err, errlen)) return -1;
            pj_buf_puts(b, ": ");
            if (dump(b, v->items[i], repr, err, errlen)) return -1;
        }
        buf_putc(b, '}');
        return 0;
    }
    return 0;
}

int pj_dump_json(pj_buf *b, const pj_value *v, char *err, size_t errlen) { return dump(b, v, 0, err, errlen); }

int pj_dump_repr(pj_buf *b, const pj_value *v, char *err, size_t errlen) { return dump(b, v, 1, err, errlen); }

int pj_dump_str(pj_buf *b, const pj_value *v, char *err, size_t errlen) {
    if (v && v->type == PJ_STRING) {
        if (v->lone_surrogate) return surrogate_err(err, errlen);
        pj_buf_put(b, v->s, v->len);
        return 0;
    }
    return pj_dump_repr(b, v, err, errlen);
}
