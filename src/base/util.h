/* base/util.h — errors, BF16 helpers and small utilities shared by every layer.
 *
 * Contract: the library never prints and never exits. Functions that can fail return 0 on success
 * and -1 on failure after writing a one-line message into a caller-provided buffer `err` of `errlen`
 * bytes (may be NULL/0). Messages name the file, tensor, key or argument at fault.
 */
#ifndef DSV4_BASE_UTIL_H
#define DSV4_BASE_UTIL_H
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* printf-style: writes the message into err (if non-NULL) and returns -1. */
int dsv4_fail(char *err, size_t errlen, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* BF16 <-> F32. bf16 is the upper 16 bits of an IEEE f32; rounding is round-to-nearest-even,
 * NaN stays NaN (quiet). This is exactly torch's float32 -> bfloat16 cast. */
static inline float dsv4_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16; float f; memcpy(&f, &u, 4); return f;
}
static inline uint16_t dsv4_f32_to_bf16(float f) {
    uint32_t u; memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}
/* Round an f32 value to the nearest BF16 value, returned as f32 (the reference's `.bfloat16().float()`). */
static inline float dsv4_round_bf16(float f) { return dsv4_bf16_to_f32(dsv4_f32_to_bf16(f)); }

/* Read the whole file at `path` (binary) into a malloc'd buffer *buf holding *len bytes plus a terminating NUL
 * byte (so text files can be used as C strings; *len excludes the NUL). The caller frees *buf.
 * Returns 0, or -1 with err "<path>: cannot open: <strerror>", "<path>: is a directory, not a file",
 * "<path>: read error" or "<path>: out of memory" (then *buf and *len are untouched). Never sizes the file with
 * ftell (a directory or a pipe gives no usable size): it reads in growing chunks. */
int dsv4_read_file(const char *path, char **buf, size_t *len, char *err, size_t errlen);
/* dsv4_read_file for a file of at most `max` bytes: a larger regular file is refused before reading (its size from
 * fstat), any other file (a device, a pipe: /dev/zero) after at most max + 1 bytes. Returns 0; -2 when the file is
 * larger, err "<path>: N bytes, more than MAX" or "<path>: more than MAX bytes"; -1 for the errors above. */
int dsv4_read_file_max(const char *path, size_t max, char **buf, size_t *len, char *err, size_t errlen);

/* Zeroed memory for large, long-lived buffers (a session's arena: caches and scratch), `bytes` > 0.
 * At 2 MiB and above it is an anonymous mapping advised MADV_HUGEPAGE, so that where the kernel's transparent
 * huge pages are in "madvise" mode (a common default) the caches that attention and the indexer scan at long
 * context are mapped with 2 MiB pages instead of 4 KiB ones (fewer TLB misses); smaller sizes use calloc. The
 * advice is only a hint: its failure is ignored. Its pages become resident 2 MiB at a time as they are first
 * touched, so a session's resident size grows in 2 MiB steps per cache region (never past its
 * dsv4_session_state_bytes) where it grew in 4 KiB ones. The mapping is rounded up to a multiple of 2 MiB (placed
 * 2 MiB-aligned by the kernel). Under AddressSanitizer every size uses calloc (its redzones).
 * Returns NULL when out of memory. Free with dsv4_huge_free and the same `bytes`. */
void *dsv4_huge_alloc(size_t bytes);
void dsv4_huge_free(void *p, size_t bytes);

/* Monotonic wall clock in seconds. */
double dsv4_now(void);
/* CPU time of the whole process (all threads) in seconds (benchmarks on a shared machine). */
double dsv4_cpu_now(void);

#endif
