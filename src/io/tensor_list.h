/* io/tensor_list.h — the checkpoint tensors a DeepSeek-V4 config implies (weights-free).
 *
 * dsv4_tensor_list() enumerates every tensor of the official HF checkpoint layout (docs/architecture.md
 * §2.1, shapes §2.2) for a parsed config: global tensors, per trunk layer (attention, mHC, compressor when
 * compress_ratios[N] > 0, lightning indexer when compress_ratios[N] == 4, router with tid2eid on hash
 * layers [0, n_hash_layers) and gate.bias elsewhere, routed and shared experts) and per MTP block `mtp.i.`
 * (the same block tensors, never tid2eid, plus e_proj/h_proj/enorm/hnorm/norm/hc_head_*).
 * Dtypes: FP8 linears are F8_E4M3 [out, in] + F8_E8M0 scale [ceil(out/128), ceil(in/128)]; routed experts
 * are packed FP4 (I8 [out, in/2] + F8_E8M0 [out, in/32]) or, with experts_fp8, FP8 like the other linears;
 * attn.wo_a is FP8 as in the unconverted HF checkpoint. Used by dsv4_config_info (io/info.c) and by the
 * weight loader (model/weights.c), which checks the checkpoint's full tensor set against this list: a
 * checkpoint tensor not in it is refused ("unexpected tensor"), and a listed tensor the binder did not use
 * must still match its spec here. This list is the one source of truth for which tensors a config implies.
 */
#ifndef DSV4_IO_TENSOR_LIST_H
#define DSV4_IO_TENSOR_LIST_H
#include <stddef.h>
#include <stdint.h>
#include "dsv4.h"
#include "io/safetensors.h"
#include "io/config.h"

/* flags of dsv4_tensor_spec */
enum {
    DSV4_TS_SCALE  = 1, /* E8M0 block-quantization scale of the preceding weight (not a parameter) */
    DSV4_TS_ROUTED = 2, /* belongs to a routed expert (spec.expert = its index) */
    DSV4_TS_SHARED = 4, /* belongs to the shared expert */
    DSV4_TS_ROW    = 8, /* a lookup table of which one row is read per token (embed.weight, ffn.gate.tid2eid) */
    DSV4_TS_FP4    = 16, /* I8 tensor holding packed FP4 E2M1 pairs (one byte = 2 parameters) */
    DSV4_TS_ENGRAM = 32  /* part of a V4.1 Engram (with ROW: its table, read (max_ngram-1) x n_heads rows a token) */
};

typedef struct {
    char name[128];   /* checkpoint name, e.g. "layers.3.ffn.experts.17.w2.scale" */
    st_dtype dtype;
    int ndim;         /* 1..4 */
    int64_t shape[4];
    int layer;        /* -1 global, 0..n_layers-1 trunk, n_layers+i for MTP block i */
    int expert;       /* routed expert index, or -1 */
    unsigned flags;   /* DSV4_TS_* */
} dsv4_tensor_spec;

/* Build the expected tensor list of config `c`, in a fixed order (globals, then each layer, then each MTP
 * block). experts_fp8: 0 = packed FP4 experts, 1 = FP8 experts (config expert_dtype "fp8").
 * On success *out (malloc'd, free with dsv4_tensor_list_free) holds *n specs; returns 0. Returns -1 with
 * err on an impossible config (e.g. FP4 experts whose input dims are not multiples of 32) or on OOM.
 * Memory: one 176-byte spec per tensor, i.e. up to ~100 M specs (~18 GB) for a config at the io/config.h bounds
 * (255 layers x 65,536 experts x 6 expert tensors); a caller that has not bounded the count by other means
 * (the weight loader compares it with the checkpoint's tensor count first) uses dsv4_tensor_summary or
 * dsv4_tensor_list_each instead, which allocate nothing. */
int dsv4_tensor_list(const dsv4_config *c, int experts_fp8, dsv4_tensor_spec **out, int *n, char *err,
                     size_t errlen);
void dsv4_tensor_list_free(dsv4_tensor_spec *list);

/* The same specs in the same order, each handed to visit(spec, arg) (the spec is valid during the call only);
 * nothing is allocated. Stops at the first nonzero return of visit and returns that value; returns 0 after the
 * last spec, or -1 with err on an impossible config (as dsv4_tensor_list). */
int dsv4_tensor_list_each(const dsv4_config *c, int experts_fp8, int (*visit)(const dsv4_tensor_spec *, void *),
                          void *arg, char *err, size_t errlen);

/* Number of elements of a spec (product of its shape). Exact: the config bounds (io/config.h) keep every
 * product far below 2^63. */
int64_t dsv4_tensor_spec_numel(const dsv4_tensor_spec *t);

/* The dsv4_model_info (include/dsv4.h) of config `c` with the given expert format: header fields from c,
 * parameter / byte counts summed over dsv4_tensor_list's specs, and in *n_tensors (if not NULL) the exact
 * number of specs. Builds no list: the routed experts of a block are counted once with multiplicity
 * n_routed_experts, so the cost is O(layers) at any expert count. Pure computation, no I/O; used by
 * dsv4_config_info (after parsing config.json) and once by dsv4_model_load. Returns 0, or -1 with err on an
 * impossible config (as dsv4_tensor_list). */
int dsv4_tensor_summary(const dsv4_config *c, int experts_fp8, dsv4_model_info *out, int64_t *n_tensors, char *err,
                        size_t errlen);

#endif
