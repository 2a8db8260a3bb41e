/* model/weights_bind.h — the tensor binder of model/weights.c, shared with the DeepSeek-V4.1 binder
 * (model/weights_v41.c). INTERNAL (not part of include/).
 *
 * A binder context belongs to one dsv4_model being loaded (m->cfg and m->st set). Every function checks the named
 * tensor's dtype and shape against what the config implies (st_expect: the error names the tensor, its file, the
 * expected and the found dtype/shape) and marks it used; allocations are owned by the model (freed by
 * dsv4_weights_free). After the binder ran, model/weights.c checks the checkpoint's whole tensor set against
 * dsv4_tensor_list (io/tensor_list.h): an unexpected tensor, or a listed one that is missing, is an error naming
 * it.
 */
#ifndef DSV4_MODEL_WEIGHTS_BIND_H
#define DSV4_MODEL_WEIGHTS_BIND_H
#include <stddef.h>
#include <stdint.h>
#include "model/model.h"

typedef struct {
    dsv4_model *m; char *err; size_t errlen;
    unsigned char *used;   /* [st_count] 1 for each checkpoint tensor the binder took */
    int efmt;              /* routed-expert format: -1 not yet known, 0 packed FP4, 1 FP8 */
    char efirst[512];      /* with no expert_dtype key: the routed expert tensor that decided efmt */
} dsv4_wbind;

/* Kinds of dsv4_wb_lin. FP8: F8_E4M3 [rows, cols] + F8_E8M0 scale [ceil(rows/b), ceil(cols/b)], b = the config's
 * fp8_block (128 for V4: a DSV4_W_FP8 view; 32 for V4.1: a DSV4_W_FP8_32 view of the 32x32 tiles, read in place,
 * except a wo_a whose o_lora_rank is not a multiple of 32, dequantized to an owned BF16 copy, exactly); BF16: BF16 (or F32) [rows, cols]; F32: F32 [rows, cols], name without
 * ".weight"; EXPERT: a routed expert (packed FP4 or FP8, one format for all); WOA: attn.wo_a, FP8 or BF16. */
enum { DSV4_WB_FP8, DSV4_WB_BF16, DSV4_WB_F32, DSV4_WB_EXPERT, DSV4_WB_WOA };

/* The tensor `name` with dtype dt and shape [d0] (ndim 1) or [d0, d1]; NULL with err when absent or different. */
const st_tensor *dsv4_wb_expect(dsv4_wbind *c, const char *name, st_dtype dt, int ndim, int64_t d0, int64_t d1);
/* Owned F32 copy of an n0 (n1 == 0) or n0 x n1 tensor stored F32, or BF16 when allow_bf16; NULL with err. */
float *dsv4_wb_vec(dsv4_wbind *c, const char *name, int64_t n0, int64_t n1, int allow_bf16);
/* Bind `<prefix>.weight` (+ `.scale`) as a [rows, cols] view of the given kind (above). Returns 0 or -1 with err. */
int dsv4_wb_lin(dsv4_wbind *c, dsv4_wview *w, const char *prefix, int rows, int cols, int kind);
/* A BF16 view converted to an owned F32 copy (F32 linears stored BF16: the V4.1 ratio-2 compressor). 0 / -1. */
int dsv4_wb_to_f32(dsv4_wbind *c, dsv4_wview *w, const char *name);
/* Zeroed model-owned memory, or NULL with an out-of-memory err naming `what`. */
void *dsv4_wb_alloc(dsv4_wbind *c, size_t bytes, const char *what);

/* model/weights_v41.c: bind every tensor of a DeepSeek-V4.1 checkpoint (m->cfg.x.v41) into m->v41. */
int dsv4_weights_v41_bind(dsv4_wbind *c);

#endif
