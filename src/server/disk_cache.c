/* server/disk_cache.c — prefix states saved on disk (--cache-dir, bounded by --cache-size), reused across slots
 * and across restarts.
 *
 * One file per saved prefix, named by the FNV-1a hash of its tokens, "<hash>.dsv4kv":
 *   [8] magic "DSV4KV01"  [8] model fingerprint (dsv4_model_fingerprint)  [4] ntok  [4] 0
 *   [8] state bytes       [8] FNV-1a 64 checksum of everything after the header
 *   [ntok x 4] token ids  [state] dsv4_session_export bytes at position ntok
 * A file is written to "<name>.tmp.<pid>", fsync'ed, renamed and the directory fsync'ed, so a killed server leaves
 * either the old state or the new one, never a torn file; leftover .tmp files are deleted at start. At start the
 * directory is scanned (headers and token lists only): files of another model or not ours are ignored and left
 * alone. The checksum is verified when a file is loaded; a corrupt file is deleted and ignored. When the files
 * exceed --cache-size, the least recently used go (a load or save counts as use; at start the file times order
 * them). Matching: the longest saved prefix of the prompt (all of its tokens equal), at most n - 1 tokens. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "server/server.h"

#define MAGIC "DSV4KV01"
#define HDR 40

typedef struct {
    char *path;
    int32_t *toks; int ntok;
    size_t bytes;
    uint64_t used;
} entry_t;

struct srv_disk {
    char *dir;
    size_t limit, total;
    uint64_t fp, tick;
    entry_t *e; int n, cap;
    pthread_mutex_t mu;
};

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) { h ^= b[i]; h *= 0x100000001b3ull; }
    return h;
}

static void drop(srv_disk *d, int i, int unlink_file) {
    if (unlink_file) unlink(d->e[i].path);
    d->total -= d->e[i].bytes;
    free(d->e[i].path); free(d->e[i].toks);
    d->e[i] = d->e[--d->n];
}

static int add_entry(srv_disk *d, char *path, int32_t *toks, int ntok, size_t bytes, uint64_t used) {
    if (d->n == d->cap) {
        int cap = d->cap ? 2 * d->cap : 16;
        entry_t *ne = realloc(d->e, sizeof *ne * (size_t)cap);
        if (!ne) return -1;
        d->e = ne; d->cap = cap;
    }
    d->e[d->n++] = (entry_t){ path, toks, ntok, bytes, used };
    d->total += bytes;
    return 0;
}

/* Delete least recently used files until the total fits the limit (keep at least `keep` if it alone fits). */
static void evict(srv_disk *d) {
    while (d->n > 0 && d->total > d->limit) {
        int lru = 0;
        for (int i = 1; i < d->n; i++) if (d->e[i].used < d->e[lru].used) lru = i;
        drop(d, lru, 1);
    }
}

static char *join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (p) { memcpy(p, dir, a); p[a] = '/'; memcpy(p + a + 1, name, b + 1); }
    return p;
}

srv_disk *srv_disk_open(const char *dir, size_t limit, uint64_t fp, char *err, size_t errlen) {
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) { snprintf(err, errlen, "--cache-dir %s: %s", dir, strerror(errno)); return NULL; }
    DIR *dh = opendir(dir);
    if (!dh) { snprintf(err, errlen, "--cache-dir %s: %s", dir, strerror(errno)); return NULL; }
    srv_disk *d = calloc(1, sizeof *d);
    if (!d || !(d->dir = strdup(dir))) { free(d); closedir(dh); snprintf(err, errlen, "out of memory"); return NULL; }
    d->limit = limit; d->fp = fp;
    pthread_mutex_init(&d->mu, NULL);
    struct dirent *de;
    while ((de = readdir(dh))) {
        const char *nm = de->d_name;
        size_t l = strlen(nm);
        char *path = join(dir, nm);
        if (!path) continue;
        if (strstr(nm, ".dsv4kv.tmp.")) { unlink(path); free(path); continue; }   /* a write cut short */
        if (l < 8 || strcmp(nm + l - 7, ".dsv4kv")) { free(path); continue; }
        struct stat stt;
        FILE *f = fopen(path, "rb");
        unsigned char h[HDR];
        int32_t *toks = NULL;
        int ok = f && fstat(fileno(f), &stt) == 0 && fread(h, 1, HDR, f) == HDR && !memcmp(h, MAGIC, 8);
        uint64_t ffp = 0, sb = 0;
        uint32_t ntok = 0;
        if (ok) { memcpy(&ffp, h + 8, 8); memcpy(&ntok, h + 16, 4); memcpy(&sb, h + 24, 8); }
        ok = ok && ffp == fp && ntok > 0 && ntok < (1u << 26) && (uint64_t)stt.st_size == HDR + 4ull * ntok + sb;
        if (ok && (toks = malloc(4ull * ntok)) && fread(toks, 4, ntok, f) == ntok &&
            add_entry(d, path, toks, (int)ntok, (size_t)stt.st_size, (uint64_t)stt.st_mtime) == 0) {
            path = NULL; toks = NULL;
        }
        free(toks); free(path);
        if (f) fclose(f);
    }
    closedir(dh);
    /* order by file time: use counters that keep it */
    for (int i = 0; i < d->n; i++) if (d->e[i].used > d->tick) d->tick = d->e[i].used;
    evict(d);
    return d;
}

void srv_disk_close(srv_disk *d) {
    if (!d) return;
    for (int i = 0; i < d->n; i++) { free(d->e[i].path); free(d->e[i].toks); }
    free(d->e);
    free(d->dir);
    pthread_mutex_destroy(&d->mu);
    free(d);
}

int srv_disk_match(srv_disk *d, const int32_t *P, int n, int *entry) {
    *entry = -1;
    if (!d) return 0;
    int best = 0;
    pthread_mutex_lock(&d->mu);
    for (int i = 0; i < d->n; i++) {
        int k = d->e[i].ntok;
        if (k > n - 1 || k <= best) continue;
        if (!memcmp(d->e[i].toks, P, 4 * (size_t)k)) { best = k; *entry = i; }
    }
    pthread_mutex_unlock(&d->mu);
    return best;
}

int srv_disk_load(srv_disk *d, int i, dsv4_session *s, int32_t **toks_out, int *ntok_out, char *err, size_t errlen) {
    pthread_mutex_lock(&d->mu);
    if (i < 0 || i >= d->n) { pthread_mutex_unlock(&d->mu); snprintf(err, errlen, "no such disk entry"); return -1; }
    entry_t *e = &d->e[i];
    FILE *f = fopen(e->path, "rb");
    unsigned char *buf = malloc(e->bytes);
    int rc = -1;
    if (!f || !buf || fread(buf, 1, e->bytes, f) != e->bytes) snprintf(err, errlen, "%s: cannot read", e->path);
    else {
        uint64_t sum, sb;
        memcpy(&sum, buf + 32, 8); memcpy(&sb, buf + 24, 8);
        if (fnv(0xcbf29ce484222325ull, buf + HDR, e->bytes - HDR) != sum || memcmp(buf + HDR, e->toks, 4 * (size_t)e->ntok))
            snprintf(err, errlen, "%s: checksum mismatch (corrupt file, deleted)", e->path);
        else if (dsv4_session_import(s, buf + HDR + 4 * (size_t)e->ntok, (size_t)sb, err, errlen) == 0) rc = 0;
    }
    if (f) fclose(f);
    free(buf);
    if (rc == 0) {
        e->used = ++d->tick;
        *ntok_out = e->ntok;
        *toks_out = malloc(4 * (size_t)e->ntok);
        if (*toks_out) memcpy(*toks_out, e->toks, 4 * (size_t)e->ntok);
        else rc = -1;
    } else drop(d, i, 1);
    pthread_mutex_unlock(&d->mu);
    return rc;
}

int srv_disk_has(srv_disk *d, const int32_t *toks, int n) {
    if (!d) return 1;
    pthread_mutex_lock(&d->mu);
    int found = 0;
    for (int i = 0; i < d->n && !found; i++)
        found = d->e[i].ntok == n && !memcmp(d->e[i].toks, toks, 4 * (size_t)n);
    pthread_mutex_unlock(&d->mu);
    return found;
}

int srv_disk_save(srv_disk *d, const dsv4_session *s, const int32_t *toks, int n, char *err, size_t errlen) {
    if (!d || n <= 0 || dsv4_session_pos(s) != n) return 0;
    if (srv_disk_has(d, toks, n)) return 0;
    size_t sb = dsv4_session_export_bytes(s), total = HDR + 4 * (size_t)n + sb;
    if (total > d->limit) return 0;   /* would evict everything and still not fit */
    unsigned char *buf = malloc(total);
    if (!buf) { snprintf(err, errlen, "out of memory (%zu bytes)", total); return -1; }
    memcpy(buf, MAGIC, 8);
    memcpy(buf + 8, &d->fp, 8);
    uint32_t nt = (uint32_t)n, z = 0;
    memcpy(buf + 16, &nt, 4); memcpy(buf + 20, &z, 4);
    uint64_t sb64 = sb;
    memcpy(buf + 24, &sb64, 8);
    memcpy(buf + HDR, toks, 4 * (size_t)n);
    if (dsv4_session_export(s, buf + HDR + 4 * (size_t)n, sb, err, errlen)) { free(buf); return -1; }
    uint64_t sum = fnv(0xcbf29ce484222325ull, buf + HDR, total - HDR);
    memcpy(buf + 32, &sum, 8);
    char name[64], tmpn[96];
    snprintf(name, sizeof name, "%016llx.dsv4kv", (unsigned long long)fnv(0xcbf29ce484222325ull, toks, 4 * (size_t)n));
    snprintf(tmpn, sizeof tmpn, "%s.tmp.%ld", name, (long)getpid());
    char *path = join(d->dir, name), *tpath = join(d->dir, tmpn);
    int rc = -1, fd = -1;
    if (!path || !tpath) snprintf(err, errlen, "out of memory");
    else if ((fd = open(tpath, O_WRONLY | O_CREAT | O_TRUNC, 0644)) < 0) snprintf(err, errlen, "%s: %s", tpath, strerror(errno));
    else {
        size_t w = 0;
        while (w < total) {
            ssize_t k = write(fd, buf + w, total - w);
            if (k <= 0) { if (k < 0 && errno == EINTR) continue; break; }
            w += (size_t)k;
        }
        if (w != total || fsync(fd) != 0) snprintf(err, errlen, "%s: write failed: %s", tpath, strerror(errno));
        else if (close(fd) != 0) { fd = -1; snprintf(err, errlen, "%s: %s", tpath, strerror(errno)); }
        else {
            fd = -1;
            if (rename(tpath, path) != 0) snprintf(err, errlen, "rename %s: %s", tpath, strerror(errno));
            else {
                int dfd = open(d->dir, O_RDONLY);
                if (dfd >= 0) { fsync(dfd); close(dfd); }
                rc = 0;
            }
        }
        if (fd >= 0) close(fd);
        if (rc) unlink(tpath);
    }
    free(buf); free(tpath);
    if (rc == 0) {
        int32_t *t = malloc(4 * (size_t)n);
        pthread_mutex_lock(&d->mu);
        for (int i = 0; i < d->n; i++) if (!strcmp(d->e[i].path, path)) { drop(d, i, 0); break; }   /* same name: replaced */
        if (t) {
            memcpy(t, toks, 4 * (size_t)n);
            if (add_entry(d, path, t, n, total, ++d->tick)) { free(t); free(path); }
            else path = NULL;
        }
        evict(d);
        pthread_mutex_unlock(&d->mu);
    }
    free(path);
    return rc;
}

size_t srv_disk_total(srv_disk *d, int *files) {
    if (!d) { *files = 0; return 0; }
    pthread_mutex_lock(&d->mu);
    size_t t = d->total;
    *files = d->n;
    pthread_mutex_unlock(&d->mu);
    return t;
}
