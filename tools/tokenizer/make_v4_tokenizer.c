/* tools/tokenizer/make_v4_tokenizer.c — build a DeepSeek-V4-compatible tokenizer.json (docs/encoding.md §1, §2).
 *
 * Usage: make_v4_tokenizer V3_TOKENIZER_JSON V4_ADDED_TOKENS_TSV OUT_JSON
 *   (the Makefile target `make build/v4-tokenizer.json` runs it on vendor/deepseek-v3-tokenizer/tokenizer.json
 *    and tools/tokenizer/v4-added-tokens.tsv)
 *
 * V4 shares DeepSeek-V3's base BPE (vocab ids 0..127999, 127,741 merges), normalizer and pre-tokenizer; it differs
 * only in its added tokens. This tool copies the V3 file and appends every row of the TSV (id, special, normalized,
 * content; '#' lines are comments) to `added_tokens`, in id order. It refuses (exit 1, message on stderr) a TSV id or
 * content that collides with an existing added token, a malformed row, or a result whose added-token ids are not
 * exactly {0,1,2} and 128000..max with no gap. Everything else in the V3 file is written back unchanged
 * (cJSON, unformatted, UTF-8 kept raw).
 * Exit status: 0 success, 1 error, 2 usage.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL; size_t cap = 0, len = 0, got;
    do {
        if (len + 65536 + 1 > cap) {
            cap = (len + 65536 + 1) * 2;
            char *nb = realloc(buf, cap);
            if (!nb) { free(buf); fclose(f); return NULL; }
            buf = nb;
        }
        got = fread(buf + len, 1, cap - len - 1, f);
        len += got;
    } while (got > 0);
    int bad = ferror(f);
    fclose(f);
    if (bad) { free(buf); return NULL; }
    buf[len] = 0;
    *n = len;
    return buf;
}

/* print "make_v4_tokenizer: <fmt with one string and one long>" and free everything; returns exit status 1 */
static int die(cJSON *root, char *a, char *b, const char *fmt, const char *x, long y) {
    fprintf(stderr, "make_v4_tokenizer: ");
    fprintf(stderr, fmt, x, y);
    fprintf(stderr, "\n");
    cJSON_Delete(root); free(a); free(b);
    return 1;
}
#define NOLINE 0L   /* placeholder for messages without a number (printed with %.0ld: nothing) */

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s V3_TOKENIZER_JSON V4_ADDED_TOKENS_TSV OUT_JSON\n", argv[0]);
        return 2;
    }
    size_t n, tn;
    char *js = slurp(argv[1], &n);
    if (!js) { fprintf(stderr, "make_v4_tokenizer: %s: cannot read\n", argv[1]); return 1; }
    cJSON *root = cJSON_ParseWithLength(js, n);
    if (!root) return die(NULL, js, NULL, "%s: not valid JSON%.0ld", argv[1], NOLINE);
    cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (!cJSON_IsArray(added)) return die(root, js, NULL, "%s: no added_tokens array%.0ld", argv[1], NOLINE);

    /* ids and contents already present */
    enum { MAXID = 1 << 20 };
    unsigned char *used = calloc(MAXID, 1);
    if (!used) return die(root, js, NULL, "%sout of memory%.0ld", "", NOLINE);
    const cJSON *e;
    cJSON_ArrayForEach(e, added) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
        if (!cJSON_IsNumber(id) || id->valueint < 0 || id->valueint >= MAXID) {
            free(used); return die(root, js, NULL, "%s: added_tokens entry without a valid id%.0ld", argv[1], NOLINE);
        }
        used[id->valueint] = 1;
    }

    char *tsv = slurp(argv[2], &tn);
    if (!tsv) { free(used); return die(root, js, NULL, "%s: cannot read%.0ld", argv[2], NOLINE); }
    long lineno = 0, nadd = 0;
    for (char *line = tsv, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        lineno++;
        if (line[0] == '#' || line[0] == 0) continue;
        char *f[4]; int nf = 0;
        for (char *p = line; nf < 4; ) {
            f[nf++] = p;
            char *t = strchr(p, '\t');
            if (!t) break;
            *t = 0; p = t + 1;
        }
        char *endp;
        long id = nf == 4 ? strtol(f[0], &endp, 10) : -1;
        if (nf != 4 || *endp || id < 0 || id >= MAXID || (strcmp(f[1], "0") && strcmp(f[1], "1")) ||
            (strcmp(f[2], "0") && strcmp(f[2], "1")) || !f[3][0] || strchr(f[3], '\r')) {
            free(used); return die(root, js, tsv, "%s:%ld: expected id<TAB>special<TAB>normalized<TAB>content", argv[2], lineno);
        }
        if (used[id]) { free(used); return die(root, js, tsv, "%s: id %ld is already an added token", argv[2], id); }
        cJSON_ArrayForEach(e, added) {
            const cJSON *c = cJSON_GetObjectItemCaseSensitive(e, "content");
            if (cJSON_IsString(c) && strcmp(c->valuestring, f[3]) == 0) {
                free(used); return die(root, js, tsv, "%s:%ld: content is already an added token", argv[2], lineno);
            }
        }
        used[id] = 1;
        cJSON *o = cJSON_CreateObject();
        if (!o || !cJSON_AddNumberToObject(o, "id", (double)id) || !cJSON_AddStringToObject(o, "content", f[3]) ||
            !cJSON_AddBoolToObject(o, "single_word", 0) || !cJSON_AddBoolToObject(o, "lstrip", 0) ||
            !cJSON_AddBoolToObject(o, "rstrip", 0) || !cJSON_AddBoolToObject(o, "normalized", f[2][0] == '1') ||
            !cJSON_AddBoolToObject(o, "special", f[1][0] == '1') || !cJSON_AddItemToArray(added, o)) {
            cJSON_Delete(o); free(used); return die(root, js, tsv, "%sout of memory (line %ld)", "", lineno);
        }
        nadd++;
    }
    /* ids 0..2 and 128000..max must all be present, nothing else */
    long maxid = -1;
    for (long i = 0; i < MAXID; i++) if (used[i]) maxid = i;
    for (long i = 0; i <= maxid; i++) {
        int want = i <= 2 || i >= 128000;
        if (used[i] != want) { free(used); return die(root, js, tsv, "%s: added-token ids have a gap or stray id at %ld", argv[2], i); }
    }
    free(used);

    char *out = cJSON_PrintUnformatted(root);
    if (!out) return die(root, js, tsv, "%sout of memory printing JSON%.0ld", "", NOLINE);
    FILE *o = fopen(argv[3], "wb");
    int ok = o && fputs(out, o) >= 0 && fputc('\n', o) != EOF;
    if (o && fclose(o) != 0) ok = 0;
    free(out);
    if (!ok) { remove(argv[3]); return die(root, js, tsv, "%s: cannot write%.0ld", argv[3], NOLINE); }
    fprintf(stderr, "make_v4_tokenizer: wrote %s (%d added tokens, %ld from %s, ids up to %ld)\n", argv[3],
            cJSON_GetArraySize(added), nadd, argv[2], maxid);
    cJSON_Delete(root); free(js); free(tsv);
    return 0;
}
