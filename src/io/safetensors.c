/* io/safetensors.c — see safetensors.h.
 *
 * File layout (https://github.com/huggingface/safetensors): 8-byte little-endian header length N, then N
 * bytes of JSON (an object: tensor name -> {"dtype", "shape", "data_offsets": [begin, end]}, plus an
 * optional "__metadata__" object that is ignored), then the data section; offsets are relative to the
 * start of the data section. Every shard is mmap'd read-only; tensors are views into the mapping.
 */
#include "io/safetensors.h"
#include "base/util.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    char *path;
    void *map;       /* NULL when size == 0 (never mapped) */
    size_t size;
} st_shard;

struct st_set {
    char *where;     /* directory or file the set was opened from (for error messages) */
    st_shard *shards;
    int nshards;
    st_tensor *t;    /* sorted by name after open */
    size_t n, cap;
};

static const struct { const char *name; size_t size; } DT[ST_DTYPE_COUNT] = {
    [ST_BF16] = {"BF16", 2},        [ST_F16] = {"F16", 2},         [ST_F32] = {"F32", 4},
    [ST_F64] = {"F64", 8},          [ST_F8_E4M3] = {"F8_E4M3", 1}, [ST_F8_E8M0] = {"F8_E8M0", 1},
    [ST_I8] = {"I8", 1},            [ST_U8] = {"U8", 1},           [ST_I16] = {"I16", 2},
    [ST_I32] = {"I32", 4},          [ST_I64] = {"I64", 8},         [ST_BOOL] = {"BOOL", 1},
};

size_t st_dtype_size(st_dtype t) { return (unsigned)t < ST_DTYPE_COUNT ? DT[t].size : 0; }
const char *st_dtype_name(st_dtype t) { return (unsigned)t < ST_DTYPE_COUNT ? DT[t].name : "?"; }

static int dtype_parse(const char *s, st_dtype *out) {
    for (int i = 0; i < ST_DTYPE_COUNT; i++)
        if (strcmp(s, DT[i].name) == 0) { *out = (st_dtype)i; return 0; }
    return -1;
}

static char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static int cmp_tensor_name(const void *a, const void *b) {
    return strcmp(((const st_tensor *)a)->name, ((const st_tensor *)b)->name);
}

void st_advise_hugepage(st_set *s) {
    if (!s) return;
#ifdef MADV_HUGEPAGE
    for (int i = 0; i < s->nshards; i++) (void)madvise(s->shards[i].map, s->shards[i].size, MADV_HUGEPAGE);
#endif
}

void st_close(st_set *s) {
    if (!s) return;
    for (size_t i = 0; i < s->n; i++) free((char *)s->t[i].name);
    free(s->t);
    for (int i = 0; i < s->nshards; i++) {
        if (s->shards[i].map) munmap(s->shards[i].map, s->shards[i].size);
        free(s->shards[i].path);
    }
    free(s->shards);
    free(s->where);
    free(s);
}

int st_locate(const st_set *s, const void *p, const char **path, uint64_t *off) {
    if (!s || !p) return -1;
    uintptr_t a = (uintptr_t)p;
    for (int i = 0; i < s->nshards; i++) {
        uintptr_t b = (uintptr_t)s->shards[i].map;
        if (b && a >= b && a - b < s->shards[i].size) {
            *path = s->shards[i].path;
            *off = (uint64_t)(a - b);
            return 0;
        }
    }
    return -1;
}

static st_set *set_new(const char *where) {
    st_set *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->where = xstrdup(where);
    if (!s->where) { free(s); return NULL; }
    return s;
}

/* A JSON number that is a non-negative integer < 2^53 (exactly representable in a double, which is how
 * cJSON reads numbers). Returns 0; -1 if not a non-negative integer; -2 if an integer >= 2^53 (too large
 * to be read exactly, so the caller says that precisely). */
static int json_u53(const cJSON *v, int64_t *out) {
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (d >= 9007199254740992.0 && d == floor(d)) return -2;
    if (!(d >= 0 && d < 9007199254740992.0) || d != (double)(int64_t)d) return -1;
    *out = (int64_t)d;
    return 0;
}

typedef struct { size_t idx; uint64_t b, e; } span;
static int cmp_span(const void *a, const void *b) {
    const span *x = a, *y = b;
    if (x->b != y->b) return x->b < y->b ? -1 : 1;
    if (x->e != y->e) return x->e < y->e ? -1 : 1;
    return 0;
}

/* Map `path` and append its tensors to s. */
static int add_shard(st_set *s, const char *path, char *err, size_t errlen) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return dsv4_fail(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno; close(fd);
        return dsv4_fail(err, errlen, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) { close(fd); return dsv4_fail(err, errlen, "%s: not a regular file", path); }
    size_t size = (size_t)sb.st_size;
    if (size < 8) {
        close(fd);
        return dsv4_fail(err, errlen, "%s: file too short for a safetensors header (%zu bytes, need at least 8)",
                         path, size);
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int me = errno;
    close(fd);
    if (map == MAP_FAILED) return dsv4_fail(err, errlen, "%s: mmap failed: %s", path, strerror(me));

    st_shard *ns = realloc(s->shards, (size_t)(s->nshards + 1) * sizeof *ns);
    if (!ns) { munmap(map, size); return dsv4_fail(err, errlen, "%s: out of memory", path); }
    s->shards = ns;
    st_shard *sh = &s->shards[s->nshards];
    sh->path = xstrdup(path);
    if (!sh->path) { munmap(map, size); return dsv4_fail(err, errlen, "%s: out of memory", path); }
    sh->map = map;
    sh->size = size;
    s->nshards++;
    const char *file = sh->path;

    const unsigned char *p = map;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | p[i];
    if (hlen > size - 8)
        return dsv4_fail(err, errlen, "%s: header length %llu exceeds the file size (%zu bytes)", file,
                         (unsigned long long)hlen, size);
    const char *hdr = (const char *)p + 8;
    size_t data_size = size - 8 - (size_t)hlen;
    const unsigned char *data = p + 8 + hlen;

    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, (size_t)hlen, &end, 0);
    if (!root) {
        size_t off = end && end >= hdr ? (size_t)(end - hdr) : 0;
        return dsv4_fail(err, errlen, "%s: header is not valid JSON (error near byte %zu of %llu)", file, off,
                         (unsigned long long)hlen);
    }
    /* Only trailing padding (spaces, NULs) may follow the JSON object. */
    for (const char *q = end ? end : hdr + hlen; q < hdr + hlen; q++) {
        if (*q != ' ' && *q != '\t' && *q != '\n' && *q != '\r' && *q != '\0') {
            cJSON_Delete(root);
            return dsv4_fail(err, errlen, "%s: trailing garbage after the JSON header (byte %zu)", file,
                             (size_t)(q - hdr));
        }
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return dsv4_fail(err, errlen, "%s: header is not a JSON object", file);
    }

    size_t first = s->n;
    int rc = 0;
    for (const cJSON *e = root->child; e; e = e->next) {
        const char *name = e->string ? e->string : "";
        if (strcmp(name, "__metadata__") == 0) continue;
        if (!cJSON_IsObject(e)) {
            rc = dsv4_fail(err, errlen, "%s: tensor '%s': entry is not a JSON object", file, name);
            break;
        }
        const cJSON *jd = cJSON_GetObjectItemCaseSensitive(e, "dtype");
        const cJSON *js = cJSON_GetObjectItemCaseSensitive(e, "shape");
        const cJSON *jo = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
        st_tensor t;
        memset(&t, 0, sizeof t);
        if (!cJSON_IsString(jd)) {
            rc = dsv4_fail(err, errlen, "%s: tensor '%s': missing or non-string \"dtype\"", file, name);
            break;
        }
        if (dtype_parse(jd->valuestring, &t.dtype) != 0) {
            rc = dsv4_fail(err, errlen, "%s: tensor '%s': unknown dtype '%s'", file, name, jd->valuestring);
            break;
        }
        if (!cJSON_IsArray(js)) {
            rc = dsv4_fail(err, errlen, "%s: tensor '%s': missing or non-array \"shape\"", file, name);
            break;
        }
        int nd = cJSON_GetArraySize(js);
        if (nd > ST_MAX_DIMS) {
            rc = dsv4_fail(err, errlen, "%s: tensor '%s': %d dimensions (at most %d supported)", file, name, nd,
                           ST_MAX_DIMS);
            break;
        }
        t.ndim = nd;
        /* numel with overflow guard: every factor < 2^53, stop when the product passes 2^62. */
        uint64_t numel = 1;
        int bad = 0, k = 0, overflow = 0, zero = 0;
        for (const cJSON *d = js->child; d; d = d->next, k++) {
            int64_t v;
            if ((bad = json_u53(d, &v)) != 0) break;
            t.shape[k] = v;
            if (v == 0) zero = 1;
            else if (numel > (UINT64_C(1) << 62) / (uint64_t)v) overflow = 1;
            else numel *= (uint64_t)v;
        }
        if (zero) { overflow = 0; numel = 0; }
        if (bad) {
            if (bad == -2)
                rc = dsv4_fail(err, errlen, "%s: tensor '%s': shape entry %d (%.0f) is 2^53 or more (too large to be "
                               "exact in JSON)", file, name, k, cJSON_GetArrayItem(js, k)->valuedouble);
            else
                rc = dsv4_fail(err, errlen, "%s: tensor '%s': shape entry %d is not a non-negative integer", file, name,
                               k);
            break;
        }
        if (!cJSON_IsArray(jo) || cJSON_GetArraySize(jo) != 2) {
            rc = dsv4_fail(err, errlen, "%s: tensor '%s': \"data_offsets\" must be an array of 2 integers", file, name);
            break;
        }
        int64_t b0 = 0, b1 = 0;
        int r0 = json_u53(jo->child, &b0), r1 = r0 ? 0 : json_u53(jo->child->next, &b1);
        if (r0 == -2 || r1 == -2) {
            rc = dsv4_fail(err, errlen, "%s: tensor '%s': data_offsets entry %d (%.0f) is 2^53 or more (too large "
                           "to be exact in JSON, and beyond any file)", file, name, r0 ? 0 : 1,
                           (r0 ? jo->child : jo->child->next)->valuedouble);
            break;
        }
        if (r0 || r1) {
            rc = dsv4_fail(err, errlen, "%s: tensor '%s': \"data_offsets\" must be non-negative integers", file, name);
            break;
        }
        if (b1 < b0) {
            rc = dsv4_fail(err, errlen, "%s: tensor '%s': data_offsets [%lld, %lld] are decreasing", file, name,
                           (long long)b0, (long long)b1);
            break;
        }
        if ((uint64_t)b1 > data_size) {
            rc = dsv4_fail(err, errlen, "%s: tensor '%s': data_offsets [%lld, %lld] exceed the file's data section "
                           "(%zu bytes)", file, name, (long long)b0, (long long)b1, data_size);
            break;
        }
        /* the byte count must not wrap either: 2^62 elements of an 8-byte dtype are 2^65 bytes */
        int bytes_overflow = !overflow && numel > UINT64_MAX / DT[t.dtype].size;
        uint64_t want = overflow || bytes_overflow ? 0 : numel * DT[t.dtype].size;
        if (overflow || bytes_overflow || want != (uint64_t)(b1 - b0)) {
            char sh[160];
            int o = 0;
            sh[0] = 0;
            for (int i = 0; i < nd && o < (int)sizeof sh - 24; i++)
                o += snprintf(sh + o, sizeof sh - (size_t)o, "%s%lld", i ? ", " : "", (long long)t.shape[i]);
            if (overflow)
                rc = dsv4_fail(err, errlen, "%s: tensor '%s': shape [%s]: element count overflows (more than 2^62 "
                               "elements)", file, name, sh);
            else if (bytes_overflow)
                rc = dsv4_fail(err, errlen, "%s: tensor '%s': %s [%s]: byte count overflows (%llu elements of %zu "
                               "bytes each is more than 2^64 bytes)", file, name, DT[t.dtype].name, sh,
                               (unsigned long long)numel, DT[t.dtype].size);
            else
                rc = dsv4_fail(err, errlen, "%s: tensor '%s': %s [%s] needs %llu bytes but data_offsets [%lld, %lld] "
                           "span %lld", file, name, DT[t.dtype].name, sh, (unsigned long long)want,
                           (long long)b0, (long long)b1, (long long)(b1 - b0));
            break;
        }
        t.numel = (int64_t)numel;
        t.nbytes = (size_t)(b1 - b0);
        t.data = data + b0;
        t.file = file;
        t.name = xstrdup(name);
        if (!t.name) { rc = dsv4_fail(err, errlen, "%s: out of memory", file); break; }
        if (s->n == s->cap) {
            size_t nc = s->cap ? 2 * s->cap : 256;
            st_tensor *nt = realloc(s->t, nc * sizeof *nt);
            if (!nt) { free((char *)t.name); rc = dsv4_fail(err, errlen, "%s: out of memory", file); break; }
            s->t = nt;
            s->cap = nc;
        }
        s->t[s->n++] = t;
    }
    cJSON_Delete(root);
    if (rc) return rc;

    /* Duplicate names first (cJSON keeps both keys; a duplicate would otherwise be reported as overlapping
     * itself), then: no two non-empty tensors of this shard may share bytes. */
    size_t cnt = s->n - first;
    if (cnt > 1) {
        qsort(s->t + first, cnt, sizeof *s->t, cmp_tensor_name);
        for (size_t i = first + 1; i < s->n; i++)
            if (strcmp(s->t[i].name, s->t[i - 1].name) == 0)
                return dsv4_fail(err, errlen, "%s: duplicate tensor '%s' (the header names it twice)", file,
                                 s->t[i].name);
    }
    if (cnt > 1) {
        span *sp = malloc(cnt * sizeof *sp);
        if (!sp) return dsv4_fail(err, errlen, "%s: out of memory", file);
        size_t m = 0;
        for (size_t i = first; i < s->n; i++) {
            if (!s->t[i].nbytes) continue;
            uint64_t b = (uint64_t)((const unsigned char *)s->t[i].data - data);
            sp[m++] = (span){i, b, b + s->t[i].nbytes};
        }
        qsort(sp, m, sizeof *sp, cmp_span);
        for (size_t i = 1; i < m; i++) {
            if (sp[i].b < sp[i - 1].e) {
                rc = dsv4_fail(err, errlen, "%s: tensor '%s': data_offsets [%llu, %llu] overlap tensor '%s' "
                               "[%llu, %llu]", file, s->t[sp[i].idx].name, (unsigned long long)sp[i].b,
                               (unsigned long long)sp[i].e, s->t[sp[i - 1].idx].name,
                               (unsigned long long)sp[i - 1].b, (unsigned long long)sp[i - 1].e);
                break;
            }
        }
        free(sp);
    }
    return rc;
}

/* Sort by name and reject duplicates (within a shard cJSON keeps both keys; across shards too). */
static int finish(st_set *s, char *err, size_t errlen) {
    if (s->n > 1) qsort(s->t, s->n, sizeof *s->t, cmp_tensor_name);
    for (size_t i = 1; i < s->n; i++) {
        if (strcmp(s->t[i].name, s->t[i - 1].name) == 0) {
            if (strcmp(s->t[i].file, s->t[i - 1].file) == 0)
                return dsv4_fail(err, errlen, "%s: duplicate tensor '%s'", s->t[i].file, s->t[i].name);
            return dsv4_fail(err, errlen, "%s: duplicate tensor '%s' (in %s and %s)", s->where, s->t[i].name,
                             s->t[i - 1].file, s->t[i].file);
        }
    }
    return 0;
}

int st_open_file(st_set **out, const char *path, char *err, size_t errlen) {
    *out = NULL;
    st_set *s = set_new(path);
    if (!s) return dsv4_fail(err, errlen, "%s: out of memory", path);
    if (add_shard(s, path, err, errlen) != 0 || finish(s, err, errlen) != 0) { st_close(s); return -1; }
    *out = s;
    return 0;
}

static char *path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    size_t o = a;
    if (a && dir[a - 1] != '/') p[o++] = '/';
    memcpy(p + o, name, b + 1);
    return p;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Directory with model.safetensors.index.json. */
static int open_indexed(st_set *s, const char *dir, const char *ipath, char *err, size_t errlen) {
    char *buf = NULL;
    size_t len = 0;
    if (dsv4_read_file(ipath, &buf, &len, err, errlen) != 0) return -1;
    cJSON *root = cJSON_ParseWithLength(buf, len);
    free(buf);
    if (!root) return dsv4_fail(err, errlen, "%s: not valid JSON", ipath);
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    int rc = 0;
    char **names = NULL;
    size_t nn = 0;
    if (!cJSON_IsObject(wm)) {
        rc = dsv4_fail(err, errlen, "%s: missing object \"weight_map\"", ipath);
        goto done;
    }
    size_t cnt = (size_t)cJSON_GetArraySize(wm);
    names = calloc(cnt ? cnt : 1, sizeof *names);
    if (!names) { rc = dsv4_fail(err, errlen, "%s: out of memory", ipath); goto done; }
    for (const cJSON *e = wm->child; e; e = e->next) {
        if (!cJSON_IsString(e)) {
            rc = dsv4_fail(err, errlen, "%s: weight_map entry for tensor '%s' is not a string", ipath, e->string);
            goto done;
        }
        const char *f = e->valuestring;
        if (!*f || strchr(f, '/') || strcmp(f, ".") == 0 || strcmp(f, "..") == 0) {
            rc = dsv4_fail(err, errlen, "%s: tensor '%s': invalid shard file name '%s'", ipath, e->string, f);
            goto done;
        }
        names[nn++] = e->valuestring;
    }
    if (nn == 0) { rc = dsv4_fail(err, errlen, "%s: empty \"weight_map\"", ipath); goto done; }
    qsort(names, nn, sizeof *names, cmp_str);
    for (size_t i = 0; i < nn; i++) {
        if (i && strcmp(names[i], names[i - 1]) == 0) continue;
        char *p = path_join(dir, names[i]);
        if (!p) { rc = dsv4_fail(err, errlen, "%s: out of memory", ipath); goto done; }
        if (access(p, F_OK) != 0) {
            const char *who = "";
            for (const cJSON *e = wm->child; e; e = e->next)
                if (strcmp(e->valuestring, names[i]) == 0) { who = e->string; break; }
            rc = dsv4_fail(err, errlen, "%s: shard '%s' (named for tensor '%s') does not exist", ipath, names[i], who);
            free(p);
            goto done;
        }
        rc = add_shard(s, p, err, errlen);
        free(p);
        if (rc) goto done;
    }
    if ((rc = finish(s, err, errlen)) != 0) goto done;
    for (const cJSON *e = wm->child; e; e = e->next) {
        const st_tensor *t = st_find(s, e->string);
        if (!t) {
            rc = dsv4_fail(err, errlen, "%s: tensor '%s' is listed for shard '%s' but is not in it", ipath, e->string,
                           e->valuestring);
            goto done;
        }
        const char *base = strrchr(t->file, '/');
        base = base ? base + 1 : t->file;
        if (strcmp(base, e->valuestring) != 0) {
            rc = dsv4_fail(err, errlen, "%s: tensor '%s' is listed for shard '%s' but found in %s", ipath, e->string,
                           e->valuestring, t->file);
            goto done;
        }
    }
done:
    free(names);
    cJSON_Delete(root);
    return rc;
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

/* Directory without an index: every *.safetensors file, sorted by name. */
static int open_glob(st_set *s, const char *dir, char *err, size_t errlen) {
    DIR *d = opendir(dir);
    if (!d) return dsv4_fail(err, errlen, "%s: cannot open directory: %s", dir, strerror(errno));
    char **names = NULL;
    size_t nn = 0, cap = 0;
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' || !ends_with(de->d_name, ".safetensors")) continue;
        if (nn == cap) {
            cap = cap ? 2 * cap : 16;
            char **nb = realloc(names, cap * sizeof *nb);
            if (!nb) { rc = dsv4_fail(err, errlen, "%s: out of memory", dir); break; }
            names = nb;
        }
        if (!(names[nn] = xstrdup(de->d_name))) { rc = dsv4_fail(err, errlen, "%s: out of memory", dir); break; }
        nn++;
    }
    closedir(d);
    if (!rc && nn == 0)
        rc = dsv4_fail(err, errlen, "%s: no *.safetensors file and no model.safetensors.index.json", dir);
    if (!rc) {
        qsort(names, nn, sizeof *names, cmp_str);
        for (size_t i = 0; i < nn && !rc; i++) {
            char *p = path_join(dir, names[i]);
            if (!p) { rc = dsv4_fail(err, errlen, "%s: out of memory", dir); break; }
            rc = add_shard(s, p, err, errlen);
            free(p);
        }
    }
    if (!rc) rc = finish(s, err, errlen);
    for (size_t i = 0; i < nn; i++) free(names[i]);
    free(names);
    return rc;
}

int st_open_dir(st_set **out, const char *dir, char *err, size_t errlen) {
    *out = NULL;
    st_set *s = set_new(dir);
    if (!s) return dsv4_fail(err, errlen, "%s: out of memory", dir);
    char *ipath = path_join(dir, "model.safetensors.index.json");
    if (!ipath) { st_close(s); return dsv4_fail(err, errlen, "%s: out of memory", dir); }
    int rc = access(ipath, F_OK) == 0 ? open_indexed(s, dir, ipath, err, errlen) : open_glob(s, dir, err, errlen);
    free(ipath);
    if (rc) { st_close(s); return -1; }
    *out = s;
    return 0;
}

const st_tensor *st_find(const st_set *s, const char *name) {
    if (!s || !name || !s->n) return NULL;
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(s->t[mid].name, name);
        if (c == 0) return &s->t[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

size_t st_count(const st_set *s) { return s ? s->n : 0; }
const st_tensor *st_at(const st_set *s, size_t i) { return s && i < s->n ? &s->t[i] : NULL; }

void st_format_shape(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t o = 0;
    o += (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (o < cap) snprintf(buf + o, cap - o, "]");
}

const st_tensor *st_expect(const st_set *s, const char *name, st_dtype dt, int ndim, const int64_t *shape,
                           char *err, size_t errlen) {
    const st_tensor *t = st_find(s, name);
    if (!t) {
        dsv4_fail(err, errlen, "%s: missing tensor '%s'", s ? s->where : "(no weights)", name);
        return NULL;
    }
    int ok = t->dtype == dt && t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = t->shape[i] == shape[i];
    if (ok) return t;
    char want[200], got[200];
    st_format_shape(want, sizeof want, ndim, shape);
    st_format_shape(got, sizeof got, t->ndim, t->shape);
    dsv4_fail(err, errlen, "%s: tensor '%s': expected %s %s, found %s %s", t->file, name, st_dtype_name(dt), want,
              st_dtype_name(t->dtype), got);
    return NULL;
}
