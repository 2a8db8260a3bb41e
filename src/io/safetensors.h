/* io/safetensors.h — memory-mapped, zero-copy reader for HF safetensors checkpoints.
 *
 * A model directory holds either one `model.safetensors`, or several `*.safetensors` shards with a
 * `model.safetensors.index.json` (its "weight_map" names the shard of every tensor). Every shard is
 * mmap'd read-only; a tensor is a view (pointer into the mapping) that lives until st_close().
 * Validation at open: 8-byte little-endian header length within the file, header is a JSON object,
 * every entry has a known dtype, a shape whose element count × dtype size (neither may overflow 64 bits) equals
 * data_offsets[1]-data_offsets[0], and offsets inside the file's data section; duplicate names across
 * shards and index entries that point to a missing shard/tensor are errors. Errors name the file and
 * tensor. Source: https://github.com/huggingface/safetensors (format), docs/architecture.md §2.
 */
#ifndef DSV4_IO_SAFETENSORS_H
#define DSV4_IO_SAFETENSORS_H
#include <stddef.h>
#include <stdint.h>

typedef enum {
    ST_BF16, ST_F16, ST_F32, ST_F64,
    ST_F8_E4M3,  /* "F8_E4M3": FP8 e4m3fn (bias 7, max 448, no inf) */
    ST_F8_E8M0,  /* "F8_E8M0": UE8M0 power-of-two scale, value 2^(b-127) */
    ST_I8, ST_U8, ST_I16, ST_I32, ST_I64, ST_BOOL,
    ST_DTYPE_COUNT
} st_dtype;

/* Element size in bytes and the safetensors spelling ("BF16", "F8_E4M3", ...). */
size_t st_dtype_size(st_dtype t);
const char *st_dtype_name(st_dtype t);

#define ST_MAX_DIMS 8
typedef struct {
    const char *name;      /* tensor name as in the header, e.g. "layers.0.attn.wq_a.weight" */
    const char *file;      /* shard path it came from */
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    int64_t numel;
    const void *data;      /* points into the read-only mapping */
    size_t nbytes;
} st_tensor;

typedef struct st_set st_set;

/* Open every shard of the model directory `dir` (see above). Returns 0, or -1 with err filled. */
int st_open_dir(st_set **out, const char *dir, char *err, size_t errlen);
/* Open one file (used by tests and tools). */
int st_open_file(st_set **out, const char *path, char *err, size_t errlen);
/* Lookup by exact name; NULL if absent. O(log n). */
const st_tensor *st_find(const st_set *s, const char *name);
/* Iteration over all tensors (sorted by name). */
size_t st_count(const st_set *s);
const st_tensor *st_at(const st_set *s, size_t i);
/* Advise every shard mapping MADV_HUGEPAGE (a hint, failures ignored; NULL is fine): the kernel may then map the
 * files' page cache with 2 MiB pages, fewer TLB misses while decode streams the weights (docs/performance.md,
 * "Huge pages"). Kernels whose page cache holds large folios (XFS since Linux 5.18, ext4 since 6.16) do so without
 * it once a file is read in large folios; on older ones it lets khugepaged collapse read-only file pages
 * (CONFIG_READ_ONLY_THP_FOR_FS), and faults read ahead 2 MiB. Not for a model whose weights are partly read with
 * pread (a memory budget's experts, V4.1's Engram tables): 2 MiB faults and collapses would bring their bytes into
 * memory through the mapping. */
void st_advise_hugepage(st_set *s);
/* Unmap everything. NULL is fine. */
void st_close(st_set *s);

/* Where the byte at `p` (a pointer into one of the set's mappings, e.g. a tensor's data) lives on disk: the
 * shard's path in *path and the byte offset in that file in *off. Used by the expert cache to read experts with
 * pread instead of touching the mapping (src/model/expert_cache.c). Returns 0, or -1 when p is in no mapping. */
int st_locate(const st_set *s, const void *p, const char **path, uint64_t *off);

/* Write a shape as "[4096, 128]" into buf (cap bytes, always NUL-terminated when cap > 0; truncated if short). */
void st_format_shape(char *buf, size_t cap, int ndim, const int64_t *shape);

/* Convenience check: tensor `name` exists with dtype `dt` and shape `shape[0..ndim)`.
 * Returns the tensor, or NULL with err = "<file>: tensor '<name>': expected BF16 [4096], found F32 [4096]"
 * or "<dir>: missing tensor '<name>'". */
const st_tensor *st_expect(const st_set *s, const char *name, st_dtype dt, int ndim, const int64_t *shape,
                           char *err, size_t errlen);

#endif
