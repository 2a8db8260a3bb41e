/* model/query.c — small read-only questions about a loaded model that the public API answers
 * (include/dsv4.h: dsv4_session_bytes, dsv4_model_max_positions). Going back to an earlier state of a session is
 * model/checkpoint.c (dsv4_checkpoint_save / dsv4_checkpoint_restore). */
#include "dsv4.h"
#include "model/model.h"
#include "model/model_v41.h"
#include "base/util.h"
#include <string.h>

size_t dsv4_session_bytes(const dsv4_model *m, int max_ctx) {
    if (m && m->v41) {   /* DeepSeek-V4.1: measured by opening a state (allocates it once; 0 when that fails) */
        if (max_ctx < 1) return 0;
        int ch = dsv4_session_chunk(&m->cfg, m->chunk, max_ctx);
        dsv4_v41_state *st = NULL;
        if (dsv4_v41_state_open(m, max_ctx, ch, &st, NULL, 0)) return 0;
        size_t n = dsv4_v41_state_bytes(st);
        dsv4_v41_state_free(st);
        return n;
    }
    return m ? dsv4_session_state_bytes(&m->cfg, m->chunk, max_ctx) : 0;
}

int dsv4_model_max_positions(const dsv4_model *m) { return m ? m->cfg.max_position_embeddings : 0; }

int dsv4_model_chunk_tokens(const dsv4_model *m) { return m ? m->chunk : 0; }
