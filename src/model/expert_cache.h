/* model/expert_cache.h — the routed-expert cache of a model loaded under a memory budget (issue 9;
 * docs/memory-budget.md). INTERNAL (include/dsv4.h has the public options and statistics).
 *
 * An entry is one routed expert of one block: its w1, w2, w3 weights and their scales, read from the checkpoint
 * with pread (io/readat.h) into a fixed-size slot of memory the cache owns (one anonymous mapping of
 * slots x entry bytes; a slot's pages become resident when first filled). Lookups pin an entry while the forward
 * pass multiplies with it; eviction picks an unpinned entry by the policy (LRU or aged LFU), preferring entries
 * not announced as needed soon. Read-ahead threads fill entries announced by dsv4_xc_route. Thread-safe: any
 * number of sessions may use one model's cache; each holds at most one pin at a time, so the cache (>= K slots)
 * never deadlocks. Bytes are copied verbatim, so logits are bit-identical to the mmap path.
 */
#ifndef DSV4_MODEL_EXPERT_CACHE_H
#define DSV4_MODEL_EXPERT_CACHE_H
#include "dsv4.h"
#include "kernels/kernels.h"

typedef struct dsv4_xcache dsv4_xcache;

/* A pinned entry: views of the three weights (same formats and shapes as the model's views) and its slot. */
typedef struct { dsv4_wview w1, w2, w3; int slot; } dsv4_xc_ref;

/* Create the cache for the bound model m under options o (o->mem_bytes > 0). *out = NULL (and 0 returned) when
 * the whole checkpoint fits in the budget; *st receives the configuration figures in every case. Errors: budget
 * below the minimum (names it), bad options, out of memory, a shard that cannot be opened, threads. */
int dsv4_xc_create(dsv4_xcache **out, const dsv4_model *m, const dsv4_load_options *o, dsv4_expert_stats *st,
                   char *err, size_t errlen);
/* Stop the read threads, close the files, free everything. NULL is a no-op. */
void dsv4_xc_free(dsv4_xcache *c);

/* Pin expert e of block `layer`, reading it when absent (blocking). Returns 0 with *r filled, or -1 with err
 * naming the file, offset and cause of the failed read. Allocates nothing. */
int dsv4_xc_acquire(dsv4_xcache *c, int layer, int e, dsv4_xc_ref *r, char *err, size_t errlen);
/* Unpin. */
void dsv4_xc_release(dsv4_xcache *c, const dsv4_xc_ref *r);

/* Announce block `layer`'s routing: rid[0..nr) expert ids (repeats allowed) of the n tokens tokens[0..n)
 * (rows of K ids, the last row being the latest token). Queues the read-ahead of these experts and of the
 * next trunk layer's (hash-routed: from the token ids; score-routed with DSV4_PREFETCH_GUESS: the latest
 * token's choices there last time). Allocates nothing; never fails. */
void dsv4_xc_route(dsv4_xcache *c, int layer, const int *rid, int nr, const int32_t *tokens, int n);

/* Statistics snapshot / reset of the counters. */
void dsv4_xc_stats(dsv4_xcache *c, dsv4_expert_stats *out);
void dsv4_xc_stats_reset(dsv4_xcache *c);

#endif
