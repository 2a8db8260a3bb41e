/* server/prefix_cache.c — prefix reuse in RAM for one slot: the tokens its session holds and checkpoints of
 * the session state at chosen positions (include/dsv4.h dsv4_checkpoint_*). A new prompt reuses the longest
 * common prefix with the history when that is the whole history (the session simply goes on), otherwise the
 * highest checkpoint at or below the common prefix is restored and only the rest is evaluated. Checkpoints are
 * taken by the engine during prefill (every checkpoint_stride tokens and one token before the end of each
 * prompt, where a thinking-mode follow-up diverges: the next prompt drops the reasoning after
 * "<｜Assistant｜>"). Checkpoints above a restored one are dropped (the session overwrites the compressed
 * entries they rely on). When a slot holds max_cp checkpoints, the one closest to its lower neighbour goes. */
#include <stdlib.h>
#include <string.h>
#include "server/server.h"

int srv_prefix_match(const srv_prefix *p, const int32_t *P, const uint64_t *K, int n, int *restore) {
    *restore = -1;
    int l = 0, lim = p->ntok < n ? p->ntok : n;
    /* keys, not ids: every position of an image span carries the placeholder id */
    while (l < lim && p->keys[l] == (K ? K[l] : (uint64_t)(uint32_t)P[l])) l++;
    if (l > n - 1) l = n - 1;
    if (l < 0) l = 0;
    if (l == p->ntok) return l;                   /* the session goes on from its current position */
    int best = -1;
    for (int i = 0; i < p->ncp; i++)
        if (dsv4_checkpoint_pos(p->cp[i]) <= l) best = i;
    if (best < 0) return 0;
    *restore = best;
    return dsv4_checkpoint_pos(p->cp[best]);
}

static void drop_cp(srv_prefix *p, int i) {
    if (p->spare) dsv4_checkpoint_free(p->cp[i]);
    else p->spare = p->cp[i];
    memmove(p->cp + i, p->cp + i + 1, sizeof p->cp[0] * (size_t)(p->ncp - i - 1));
    p->ncp--;
}

int srv_prefix_apply(srv_prefix *p, dsv4_session *s, int reuse, int restore, char *err, size_t errlen) {
    if (restore >= 0) {
        if (dsv4_checkpoint_restore(s, p->cp[restore], err, errlen)) return -1;
        while (p->ncp > restore + 1) drop_cp(p, p->ncp - 1);
        p->ntok = dsv4_checkpoint_pos(p->cp[restore]);
        return 0;
    }
    if (reuse == 0) {
        dsv4_session_reset(s);
        while (p->ncp > 0) drop_cp(p, p->ncp - 1);
        p->ntok = 0;
    }
    return 0;
}

int srv_prefix_push(srv_prefix *p, const int32_t *t, const uint64_t *K, int n) {
    if (p->ntok + n > p->cap) {
        int cap = p->cap ? p->cap : 1024;
        while (cap < p->ntok + n) cap *= 2;
        int32_t *nt = realloc(p->toks, sizeof(int32_t) * (size_t)cap);
        if (!nt) return -1;
        p->toks = nt;
        uint64_t *nk = realloc(p->keys, sizeof(uint64_t) * (size_t)cap);
        if (!nk) return -1;
        p->keys = nk;
        p->cap = cap;
    }
    memcpy(p->toks + p->ntok, t, sizeof(int32_t) * (size_t)n);
    for (int i = 0; i < n; i++) p->keys[p->ntok + i] = K ? K[i] : (uint64_t)(uint32_t)t[i];
    p->ntok += n;
    return 0;
}

int srv_prefix_checkpoint(srv_prefix *p, const dsv4_session *s, int max_cp, char *err, size_t errlen) {
    int pos = dsv4_session_pos(s);
    if (max_cp > SRV_MAX_CP) max_cp = SRV_MAX_CP;
    if (max_cp < 1) return 0;
    if (p->ncp && dsv4_checkpoint_pos(p->cp[p->ncp - 1]) >= pos) return 0;   /* have it already */
    if (p->ncp >= max_cp) {
        /* thin out: drop the checkpoint with the smallest gap to its predecessor (never the newest) */
        int bi = 0, bg = 0x7fffffff;
        for (int i = 0; i < p->ncp - 1; i++) {
            int g = dsv4_checkpoint_pos(p->cp[i]) - (i ? dsv4_checkpoint_pos(p->cp[i - 1]) : 0);
            if (g < bg) { bg = g; bi = i; }
        }
        drop_cp(p, bi);
    }
    dsv4_checkpoint *c = p->spare;
    p->spare = NULL;
    if (dsv4_checkpoint_save(s, &c, err, errlen)) { dsv4_checkpoint_free(c); return -1; }
    p->cp[p->ncp++] = c;
    return 0;
}

void srv_prefix_free(srv_prefix *p) {
    for (int i = 0; i < p->ncp; i++) dsv4_checkpoint_free(p->cp[i]);
    dsv4_checkpoint_free(p->spare);
    free(p->toks);
    free(p->keys);
    memset(p, 0, sizeof *p);
}

size_t srv_prefix_bytes(const srv_prefix *p) {
    size_t b = (size_t)p->cap * (sizeof(int32_t) + sizeof(uint64_t)) + dsv4_checkpoint_bytes(p->spare);
    for (int i = 0; i < p->ncp; i++) b += dsv4_checkpoint_bytes(p->cp[i]);
    return b;
}
