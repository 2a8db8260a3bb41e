/* model/query.c — small read-only questions about a loaded model that the public API answers
 * (include/dsv4.h: dsv4_session_bytes, dsv4_model_max_positions). Going back to an earlier state of a session is
 * model/checkpoint.c (dsv4_checkpoint_save / dsv4_checkpoint_restore). */
#include "dsv4.h"
#include "model/model.h"
#include "base/util.h"
#include <string.h>

size_t dsv4_session_bytes(const dsv4_model *m, int max_ctx) {
    return m ? dsv4_session_state_bytes(&m->cfg, max_ctx) : 0;
}

int dsv4_model_max_positions(const dsv4_model *m) { return m ? m->cfg.max_position_embeddings : 0; }
