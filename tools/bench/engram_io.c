/* tools/bench/engram_io.c — Engram row-reader benchmark (src/model/engram.h) on a real-size table file.
 *
 * Creates a sparse file of ROWS x 264-byte packed rows (default 384,006,168 = V4.1-Flash layer 1: 101 GB
 * logical), writes NW rows at random places (so those pages really exist on disk), flushes it and drops it from
 * the page cache (fsync + POSIX_FADV_DONTNEED), then fetches those rows in batches of 48 (one decoded token of
 * V4.1-Flash: 2 Engram layers x 24 hash columns) and reports rows/s and ms per token:
 *   cold   first pass after the drop (device reads; the batch's reads are issued ahead with WILLNEED)
 *   warm   second pass (page cache)
 *   cache  third pass through a dsv4 row cache holding every row (no syscalls)
 * Build: make BUILD=build/rel build/rel/libdsv4.a && cc -O2 -Iinclude -Isrc tools/bench/engram_io.c
 *        build/rel/libdsv4.a -lcjson -lpcre2-8 -lutf8proc -lm -lpthread -o build/rel/engram_io
 * Usage: engram_io [DIR [NW [ROWS]]]   (DIR default /tmp; the file is removed at the end)
 */
#include "model/engram.h"
#include "base/util.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "/tmp";
    int nw = argc > 2 ? atoi(argv[2]) : 20000;
    int64_t rows = argc > 3 ? atoll(argv[3]) : 384006168;
    const int rb = 264, batch = 48;
    char path[512];
    snprintf(path, sizeof path, "%s/dsv4_engram_bench_%d.bin", dir, (int)getpid());
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || ftruncate(fd, (off_t)(rows * rb)) != 0) { perror(path); return 1; }
    int64_t *where = malloc(sizeof *where * (size_t)nw);
    uint8_t rec[264];
    uint64_t s = 7;
    for (int i = 0; i < nw; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        where[i] = (int64_t)((s >> 11) % (uint64_t)rows);
        memset(rec, (int)(where[i] & 0x7F), sizeof rec);
        if (pwrite(fd, rec, rb, (off_t)(where[i] * rb)) != rb) { perror("pwrite"); return 1; }
    }
    fsync(fd);
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    struct stat st;
    fstat(fd, &st);
    close(fd);
    printf("table %s: %lld rows x %d B = %.1f GB logical, %.1f MB on disk, %d rows written\n", path,
           (long long)rows, rb, (double)rows * rb / 1e9, (double)st.st_blocks * 512 / 1e6, nw);
    char err[512];
    uint8_t *out = malloc((size_t)batch * rb);
    const char *names[3] = {"cold", "warm", "cache"};
    dsv4_engram_table *t = NULL, *tc = NULL;
    if (dsv4_engram_table_open(&t, path, rows, 256, 0, rb, NULL, 256, rb, 0, err, sizeof err) ||
        dsv4_engram_table_open(&tc, path, rows, 256, 0, rb, NULL, 256, rb, (int64_t)nw * 4, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    /* fill the row cache (not timed) */
    for (int i0 = 0; i0 + batch <= nw; i0 += batch) dsv4_engram_table_fetch(tc, where + i0, batch, out, err, sizeof err);
    for (int pass = 0; pass < 3; pass++) {
        dsv4_engram_table *u = pass == 2 ? tc : t;
        double t0 = dsv4_now();
        int n = 0;
        for (int i0 = 0; i0 + batch <= nw; i0 += batch, n += batch)
            if (dsv4_engram_table_fetch(u, where + i0, batch, out, err, sizeof err)) { fprintf(stderr, "%s\n", err); return 1; }
        double dt = dsv4_now() - t0;
        printf("%-5s %9.0f rows/s  %7.3f ms per token (48 rows)\n", names[pass], n / dt, 1e3 * dt / (n / batch));
    }
    int64_t req, hits;
    dsv4_engram_table_stats(tc, &req, &hits);
    printf("row cache: %lld of %lld requests hit\n", (long long)hits, (long long)req);
    dsv4_engram_table_close(t);
    dsv4_engram_table_close(tc);
    unlink(path);
    free(out);
    free(where);
    return 0;
}
