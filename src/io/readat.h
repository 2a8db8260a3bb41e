/* io/readat.h — explicit reads of checkpoint byte ranges into engine-owned memory (the expert cache's I/O layer,
 * issue 9; meant to be shared by any later streamed table).
 *
 * dsv4_readat reads exactly n bytes at offset off of an open file with pread (looping over short reads and
 * EINTR). A read error or end of file before n bytes is reported naming the file, the offset and the cause
 * ("<path>: read of 4456448 bytes at offset 123456 failed: Input/output error", "...: end of file after 1024
 * bytes (file truncated or replaced?)"). dsv4_readat_drop asks the kernel to drop the range from the page
 * cache (posix_fadvise POSIX_FADV_DONTNEED), so that under a memory budget the page cache does not hold a
 * second copy of what the expert cache holds (the budget's point is that RAM is short).
 *
 * Testing hook: dsv4_readat_set_hook replaces pread for every following read (NULL restores pread); tests use
 * it to inject read errors and short reads (tests/test_budget.c). It is process-global; set it only while no
 * evaluation runs.
 */
#ifndef DSV4_IO_READAT_H
#define DSV4_IO_READAT_H
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef ssize_t (*dsv4_pread_fn)(int fd, void *buf, size_t n, off_t off);
void dsv4_readat_set_hook(dsv4_pread_fn fn);

/* Read n bytes at off of fd (path names it in errors) into buf. Returns 0, or -1 with err filled. */
int dsv4_readat(int fd, const char *path, void *buf, size_t n, uint64_t off, char *err, size_t errlen);
/* Drop [off, off + n) of fd from the page cache (best effort; never fails). */
void dsv4_readat_drop(int fd, uint64_t off, uint64_t n);

#endif
