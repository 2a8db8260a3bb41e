/* tests/fuzz/fuzz_safetensors.c — libFuzzer harness: one safetensors file (src/io/safetensors.c, st_open_file).
 *
 * Input: the whole file (8-byte header length, JSON header, data). Properties beyond "no crash, no leak, no UB":
 * when the file opens, every tensor has 1..8 dimensions whose product is its numel and numel x dtype size is
 * its nbytes without overflowing 64 bits; its bytes lie inside the file (st_locate) and equal the file's bytes
 * there; st_find finds it by name; st_expect accepts its own dtype and shape. When it does not open, the error
 * message is non-empty and names the file.
 */
#include <stdint.h>
#include <string.h>
#include "io/safetensors.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write("t.safetensors", data, size);
    st_set *s = NULL;
    char err[512] = "";
    if (st_open_file(&s, path, err, sizeof err) != 0) {
        FUZZ_CHECK(s == NULL, "failed open left a set");
        FUZZ_CHECK(err[0] && strstr(err, "t.safetensors"), "error does not name the file: '%s'", err);
        return 0;
    }
    for (size_t i = 0; i < st_count(s); i++) {
        const st_tensor *t = st_at(s, i);
        FUZZ_CHECK(t && t->name, "tensor %zu missing", i);
        FUZZ_CHECK(t->ndim >= 0 && t->ndim <= ST_MAX_DIMS, "'%s': ndim %d", t->name, t->ndim);
        uint64_t n = 1;
        int ovf = 0;
        for (int d = 0; d < t->ndim; d++) {
            FUZZ_CHECK(t->shape[d] >= 0, "'%s': negative dim", t->name);
            ovf |= __builtin_mul_overflow(n, (uint64_t)t->shape[d], &n);
        }
        if (n == 0) ovf = 0;
        FUZZ_CHECK(!ovf && (int64_t)n == t->numel, "'%s': numel %lld is not the product of its shape", t->name,
                   (long long)t->numel);
        uint64_t bytes;
        FUZZ_CHECK(!__builtin_mul_overflow(n, (uint64_t)st_dtype_size(t->dtype), &bytes) && bytes == t->nbytes,
                   "'%s': %s numel %llu x %zu bytes != nbytes %zu (or overflows)", t->name, st_dtype_name(t->dtype),
                   (unsigned long long)n, st_dtype_size(t->dtype), t->nbytes);
        FUZZ_CHECK(t->nbytes <= size, "'%s': %zu bytes in a %zu-byte file", t->name, t->nbytes, size);
        if (t->nbytes) {
            const char *f = NULL;
            uint64_t off = 0;
            FUZZ_CHECK(st_locate(s, t->data, &f, &off) == 0, "'%s': data outside every mapping", t->name);
            FUZZ_CHECK(off >= 8 && off <= size && t->nbytes <= size - off, "'%s': bytes [%llu, +%zu) outside the file",
                       t->name, (unsigned long long)off, t->nbytes);
            FUZZ_CHECK(memcmp(t->data, data + off, t->nbytes) == 0, "'%s': view differs from the file", t->name);
        }
        FUZZ_CHECK(st_find(s, t->name) == t, "'%s': st_find does not find it", t->name);
        char e2[512];
        FUZZ_CHECK(st_expect(s, t->name, t->dtype, t->ndim, t->shape, e2, sizeof e2) == t, "'%s': st_expect: %s",
                   t->name, e2);
    }
    st_close(s);
    return 0;
}
