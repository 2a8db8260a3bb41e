/* model/checkpoint.c — session state checkpoints for prefix reuse (include/dsv4.h, dsv4_checkpoint_*).
 *
 * A checkpoint copies the part of a session's state that is overwritten as the sequence advances: per block
 * the window ring and its slot positions, the compressor and indexer-compressor partial states (docs/architecture.md §4.4,
 * §5.1), plus the MTP history (hist_x, hist_tok), last_x and the position. Compressed entries and indexer
 * keys are NOT copied: they are append-only (entry k is written once, when the block of positions
 * [kR, (k+1)R) is complete, and only entries below pos/R are ever read), so the entries a session holds for
 * positions below the checkpoint stay valid as long as it has not evaluated different tokens there since.
 * The region list mirrors layout() in session.c (same sizes).
 */
#include <stdlib.h>
#include <string.h>
#include "model/model.h"
#include "base/util.h"

struct dsv4_checkpoint {
    const dsv4_session *owner;
    int pos, have_last;
    size_t bytes;
    unsigned char *data;
};

/* Visit every region (pointer, bytes) of the rolling state of s, in a fixed order. */
typedef void (*region_fn)(void *user, void *p, size_t n);
static void regions(dsv4_session *s, region_fn fn, void *user) {
    const dsv4_model *m = s->m;
    const dsv4_config *c = &m->cfg;
    size_t hd = (size_t)c->head_dim, ihd = (size_t)c->index_head_dim, Wn = (size_t)s->wring;
    size_t row = (size_t)c->hc_mult * (size_t)c->dim;
    for (int l = 0; l < m->n_blocks; l++) {
        dsv4_block_state *b = &s->bs[l];
        fn(user, b->win, Wn * hd * sizeof(uint16_t));
        fn(user, b->slot_pos, Wn * sizeof(int64_t));
        size_t R = (size_t)c->compress_ratios[l];
        if (R > 0) {
            size_t cc = R == 4 ? 2 : 1, n = cc * R * cc * hd * sizeof(float);
            fn(user, b->cs.kv, n);
            fn(user, b->cs.sc, n);
        }
        if (R == 4) {
            fn(user, b->ics.kv, 8 * 2 * ihd * sizeof(float));
            fn(user, b->ics.sc, 8 * 2 * ihd * sizeof(float));
        }
    }
    fn(user, s->last_x, row * sizeof(float));
    fn(user, s->hist_x, Wn * row * sizeof(float));
    fn(user, s->hist_tok, Wn * sizeof(int32_t));
}

static void count_fn(void *user, void *p, size_t n) { (void)p; *(size_t *)user += n; }
typedef struct { unsigned char *cur; int save; } copy_ctx;
static void copy_fn(void *user, void *p, size_t n) {
    copy_ctx *cx = user;
    if (cx->save) memcpy(cx->cur, p, n); else memcpy(p, cx->cur, n);
    cx->cur += n;
}

static int v41_refuse(const dsv4_session *s, const char *fn, char *err, size_t errlen) {
    return dsv4_fail(err, errlen, "%s: model %s is DeepSeek-V4.1: session checkpoints and state export are not "
                     "implemented for V4.1 yet", fn, s->m->dir);
}

size_t dsv4_checkpoint_state_bytes(const dsv4_session *s) {
    if (!s || s->v41) return 0;
    size_t n = 0;
    regions((dsv4_session *)s, count_fn, &n);
    return n;
}

int dsv4_checkpoint_save(const dsv4_session *s, dsv4_checkpoint **cp, char *err, size_t errlen) {
    if (!s || !cp) return dsv4_fail(err, errlen, "dsv4_checkpoint_save: session or checkpoint pointer is NULL");
    if (s->v41) return v41_refuse(s, "dsv4_checkpoint_save", err, errlen);
    size_t n = dsv4_checkpoint_state_bytes(s);
    dsv4_checkpoint *c = *cp;
    if (c && c->bytes != n) return dsv4_fail(err, errlen, "dsv4_checkpoint_save: checkpoint of %zu bytes reused for a "
                                             "session of another layout (%zu bytes)", c->bytes, n);
    if (!c) {
        c = calloc(1, sizeof *c);
        if (!c || !(c->data = malloc(n ? n : 1))) {
            free(c);
            return dsv4_fail(err, errlen, "dsv4_checkpoint_save: out of memory (%zu bytes)", n);
        }
        c->bytes = n;
        *cp = c;
    }
    c->owner = s;
    c->pos = s->pos;
    c->have_last = s->have_last;
    copy_ctx cx = { c->data, 1 };
    regions((dsv4_session *)s, copy_fn, &cx);
    return 0;
}

int dsv4_checkpoint_restore(dsv4_session *s, const dsv4_checkpoint *c, char *err, size_t errlen) {
    if (!s || !c) return dsv4_fail(err, errlen, "dsv4_checkpoint_restore: session or checkpoint is NULL");
    if (s->v41) return v41_refuse(s, "dsv4_checkpoint_restore", err, errlen);
    if (c->owner != s) return dsv4_fail(err, errlen, "dsv4_checkpoint_restore: the checkpoint was saved from another session");
    if (c->bytes != dsv4_checkpoint_state_bytes(s))
        return dsv4_fail(err, errlen, "dsv4_checkpoint_restore: checkpoint size does not match the session");
    copy_ctx cx = { c->data, 0 };
    regions(s, copy_fn, &cx);
    s->pos = c->pos;
    s->have_last = c->have_last;
    return 0;
}

int dsv4_checkpoint_pos(const dsv4_checkpoint *c) { return c ? c->pos : -1; }
size_t dsv4_checkpoint_bytes(const dsv4_checkpoint *c) { return c ? c->bytes + sizeof *c : 0; }
void dsv4_checkpoint_free(dsv4_checkpoint *c) {
    if (!c) return;
    free(c->data);
    free(c);
}

/* ------------------------------------------------------------------ whole-state export (disk cache) */
/* Layout of an export: [u32 magic "DSVS"][u32 version 1][i32 pos][i32 have_last][i32 max_ctx][i32 n_blocks]
 * [u64 config fingerprint] then the rolling regions (as a checkpoint) then, per block with ratio R > 0, the first
 * min(pos/R + 1, capacity) compressed-entry records and, for R == 4, as many indexer-key records. */
#define EXP_MAGIC 0x53565344u   /* "DSVS" little-endian */
#define EXP_HDR 32

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) { h ^= b[i]; h *= 0x100000001b3ull; }
    return h;
}

uint64_t dsv4_model_fingerprint(const dsv4_model *m) {
    if (!m) return 0;
    const dsv4_config *c = &m->cfg;
    uint64_t h = 0xcbf29ce484222325ull;
    int v[] = { c->vocab_size, c->dim, c->n_layers, c->n_heads, c->head_dim, c->window_size, c->hc_mult,
                c->index_head_dim, c->n_mtp_layers, m->n_blocks };
    h = fnv(h, v, sizeof v);
    for (int l = 0; l < m->n_blocks; l++) h = fnv(h, &c->compress_ratios[l], sizeof c->compress_ratios[l]);
    h = fnv(h, &m->file_bytes, sizeof m->file_bytes);
    return h;
}

static size_t n_records(const dsv4_session *s, int R) {
    size_t cap = (size_t)s->max_ctx / (size_t)R + 1, n = (size_t)s->pos / (size_t)R + 1;
    return n < cap ? n : cap;
}

size_t dsv4_session_export_bytes(const dsv4_session *s) {
    if (!s || s->v41) return 0;
    size_t n = EXP_HDR + dsv4_checkpoint_state_bytes(s);
    const dsv4_config *c = &s->m->cfg;
    for (int l = 0; l < s->m->n_blocks; l++) {
        int R = c->compress_ratios[l];
        if (R > 0) n += n_records(s, R) * (size_t)s->ent_bytes;
        if (R == 4) n += n_records(s, 4) * (size_t)s->ikey_bytes;
    }
    return n;
}

int dsv4_session_export(const dsv4_session *s, void *buf, size_t n, char *err, size_t errlen) {
    if (!s || !buf) return dsv4_fail(err, errlen, "dsv4_session_export: session or buffer is NULL");
    if (s->v41) return v41_refuse(s, "dsv4_session_export", err, errlen);
    if (n != dsv4_session_export_bytes(s))
        return dsv4_fail(err, errlen, "dsv4_session_export: buffer of %zu bytes, the state needs %zu", n, dsv4_session_export_bytes(s));
    unsigned char *p = buf;
    uint32_t hdr32[2] = { EXP_MAGIC, 1 };
    int32_t hi[4] = { s->pos, s->have_last, s->max_ctx, s->m->n_blocks };
    uint64_t fp = dsv4_model_fingerprint(s->m);
    memcpy(p, hdr32, 8); memcpy(p + 8, hi, 16); memcpy(p + 24, &fp, 8);
    copy_ctx cx = { p + EXP_HDR, 1 };
    regions((dsv4_session *)s, copy_fn, &cx);
    const dsv4_config *c = &s->m->cfg;
    for (int l = 0; l < s->m->n_blocks; l++) {
        int R = c->compress_ratios[l];
        if (R > 0) { size_t k = n_records(s, R) * (size_t)s->ent_bytes; memcpy(cx.cur, s->bs[l].entries, k); cx.cur += k; }
        if (R == 4) { size_t k = n_records(s, 4) * (size_t)s->ikey_bytes; memcpy(cx.cur, s->bs[l].ikeys, k); cx.cur += k; }
    }
    return 0;
}

int dsv4_session_import(dsv4_session *s, const void *buf, size_t n, char *err, size_t errlen) {
    if (!s || !buf) return dsv4_fail(err, errlen, "state import: session or buffer is NULL");
    if (s->v41) return v41_refuse(s, "state import", err, errlen);
    const unsigned char *p = buf;
    if (n < EXP_HDR) return dsv4_fail(err, errlen, "state import: %zu bytes is shorter than the header", n);
    uint32_t hdr32[2];
    int32_t hi[4];
    uint64_t fp;
    memcpy(hdr32, p, 8); memcpy(hi, p + 8, 16); memcpy(&fp, p + 24, 8);
    if (hdr32[0] != EXP_MAGIC || hdr32[1] != 1) return dsv4_fail(err, errlen, "state import: not a dsv4 session state (magic/version)");
    if (fp != dsv4_model_fingerprint(s->m) || hi[3] != s->m->n_blocks)
        return dsv4_fail(err, errlen, "state import: the state was saved from another model");
    if (hi[0] < 0 || hi[0] > s->max_ctx)
        return dsv4_fail(err, errlen, "state import: position %d does not fit this session (max_ctx %d)", hi[0], s->max_ctx);
    int pos0 = s->pos;
    s->pos = hi[0];   /* sizes below depend on pos */
    size_t need = dsv4_session_export_bytes(s);
    if (need != n) { s->pos = pos0; return dsv4_fail(err, errlen, "state import: %zu bytes, expected %zu for position %d", n, need, hi[0]); }
    copy_ctx cx = { (unsigned char *)p + EXP_HDR, 0 };
    regions(s, copy_fn, &cx);
    const dsv4_config *c = &s->m->cfg;
    for (int l = 0; l < s->m->n_blocks; l++) {
        int R = c->compress_ratios[l];
        if (R > 0) { size_t k = n_records(s, R) * (size_t)s->ent_bytes; memcpy(s->bs[l].entries, cx.cur, k); cx.cur += k; }
        if (R == 4) { size_t k = n_records(s, 4) * (size_t)s->ikey_bytes; memcpy(s->bs[l].ikeys, cx.cur, k); cx.cur += k; }
    }
    s->have_last = hi[1];
    return 0;
}
