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

size_t dsv4_checkpoint_state_bytes(const dsv4_session *s) {
    if (!s) return 0;
    size_t n = 0;
    regions((dsv4_session *)s, count_fn, &n);
    return n;
}

int dsv4_checkpoint_save(const dsv4_session *s, dsv4_checkpoint **cp, char *err, size_t errlen) {
    if (!s || !cp) return dsv4_fail(err, errlen, "dsv4_checkpoint_save: session or checkpoint pointer is NULL");
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
