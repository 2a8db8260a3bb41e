/* io/readat.c — see readat.h. */
#include "io/readat.h"
#include "base/util.h"
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

static _Atomic(dsv4_pread_fn) hook;

void dsv4_readat_set_hook(dsv4_pread_fn fn) { atomic_store(&hook, fn); }

int dsv4_readat(int fd, const char *path, void *buf, size_t n, uint64_t off, char *err, size_t errlen) {
    dsv4_pread_fn f = atomic_load(&hook);
    size_t done = 0;
    while (done < n) {
        ssize_t r = f ? f(fd, (char *)buf + done, n - done, (off_t)(off + done))
                      : pread(fd, (char *)buf + done, n - done, (off_t)(off + done));
        if (r < 0) {
            if (errno == EINTR) continue;
            return dsv4_fail(err, errlen, "%s: read of %zu bytes at offset %llu failed: %s", path, n,
                             (unsigned long long)off, strerror(errno));
        }
        if (r == 0)
            return dsv4_fail(err, errlen, "%s: read of %zu bytes at offset %llu: end of file after %zu bytes (file "
                             "truncated or replaced while the model is loaded?)", path, n, (unsigned long long)off, done);
        done += (size_t)r;
    }
    return 0;
}

void dsv4_readat_drop(int fd, uint64_t off, uint64_t n) {
#ifdef POSIX_FADV_DONTNEED
    (void)posix_fadvise(fd, (off_t)off, (off_t)n, POSIX_FADV_DONTNEED);
#else
    (void)fd; (void)off; (void)n;
#endif
}
