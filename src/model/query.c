/* model/query.c — small read-only questions about a loaded model that the public API answers
 * (include/dsv4.h: dsv4_session_bytes, dsv4_model_max_positions), and copying a session's state (dsv4_session_copy). */
#include "dsv4.h"
#include "model/model.h"
#include "base/util.h"
#include <string.h>

size_t dsv4_session_bytes(const dsv4_model *m, int max_ctx) {
    return m ? dsv4_session_state_bytes(&m->cfg, max_ctx) : 0;
}

int dsv4_model_max_positions(const dsv4_model *m) { return m ? m->cfg.max_position_embeddings : 0; }

/* The whole sequence state lives in the session's arena (pointers in bs[] and w point into it at the same offsets
 * for every session of one model and max_ctx, model/session.c layout()); besides it only pos and have_last. */
int dsv4_session_copy(dsv4_session *dst, const dsv4_session *src, char *err, size_t errlen) {
    if (!dst || !src) return dsv4_fail(err, errlen, "session copy: NULL session");
    if (dst->m != src->m || dst->max_ctx != src->max_ctx || dst->arena_bytes != src->arena_bytes)
        return dsv4_fail(err, errlen, "session copy: the sessions differ (model or max_ctx %d vs %d)", dst->max_ctx,
                         src->max_ctx);
    if (dst != src) memcpy(dst->arena, src->arena, src->arena_bytes);
    dst->pos = src->pos;
    dst->have_last = src->have_last;
    return 0;
}
