/* tests/test_io.c — src/io/safetensors.c: builds tiny safetensors files in a mkdtemp() directory under /tmp
 * and checks good loads (single file, 2-shard directory with index, glob directory) and every bad input
 * the reader must reject with a message naming the file/tensor. Prints one line per failed check and ends
 * with "N passed, N failed".
 */
#include "io/safetensors.h"
#include "base/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "testlib.h"

static char tmpdir[64];
static char made[128][256]; /* files and dirs to remove at exit, in creation order */
static int nmade;

static const char *P(const char *rel) {
    static char buf[8][256];
    static int k;
    char *b = buf[k++ & 7];
    snprintf(b, 256, "%s/%s", tmpdir, rel);
    return b;
}

static void remember(const char *path) {
    for (int i = 0; i < nmade; i++) if (strcmp(made[i], path) == 0) return;
    if (nmade < 128) snprintf(made[nmade++], 256, "%s", path);
}

static void mkdir_rel(const char *rel) {
    const char *p = P(rel);
    mkdir(p, 0700);
    remember(p);
}

/* Raw file: 8-byte LE header length `hlen_field`, then `hdr` (strlen bytes), then `data` (dlen bytes). */
static void write_raw(const char *rel, uint64_t hlen_field, const char *hdr, const void *data, size_t dlen) {
    const char *p = P(rel);
    FILE *f = fopen(p, "wb");
    if (!f) { printf("cannot write %s\n", p); exit(2); }
    unsigned char h8[8];
    for (int i = 0; i < 8; i++) h8[i] = (unsigned char)(hlen_field >> (8 * i));
    fwrite(h8, 1, 8, f);
    fwrite(hdr, 1, strlen(hdr), f);
    if (dlen) fwrite(data, 1, dlen, f);
    fclose(f);
    remember(p);
}

/* Well-formed file: header length = strlen(hdr). */
static void write_st(const char *rel, const char *hdr, const void *data, size_t dlen) {
    write_raw(rel, strlen(hdr), hdr, data, dlen);
}

static void write_text(const char *rel, const char *text) {
    const char *p = P(rel);
    FILE *f = fopen(p, "wb");
    fputs(text, f);
    fclose(f);
    remember(p);
}

static unsigned char DATA[256];

/* Open `rel` (file or dir) expecting failure; returns the error text (static). */
static const char *open_err(const char *rel, int dir) {
    static char err[512];
    err[0] = 0;
    st_set *s = NULL;
    int rc = dir ? st_open_dir(&s, P(rel), err, sizeof err) : st_open_file(&s, P(rel), err, sizeof err);
    if (rc == 0) { st_close(s); snprintf(err, sizeof err, "(opened successfully)"); }
    else if (s) snprintf(err, sizeof err, "(out set non-NULL on failure)");
    return err;
}

#define EXPECT_ERR(rel, dir, ...)                                                              \
    do {                                                                                       \
        const char *e_ = open_err(rel, dir);                                                   \
        const char *subs_[] = {__VA_ARGS__, NULL};                                             \
        int ok_ = 1;                                                                           \
        for (int i_ = 0; subs_[i_]; i_++) if (!strstr(e_, subs_[i_])) ok_ = 0;                 \
        CHECK(ok_, "%s: error \"%s\" lacks an expected part", rel, e_);                        \
    } while (0)

static void test_dtypes(void) {
    CHECK(st_dtype_size(ST_BF16) == 2 && st_dtype_size(ST_F32) == 4 && st_dtype_size(ST_F8_E4M3) == 1 &&
          st_dtype_size(ST_F8_E8M0) == 1 && st_dtype_size(ST_I64) == 8 && st_dtype_size(ST_F64) == 8 &&
          st_dtype_size(ST_I8) == 1 && st_dtype_size(ST_BOOL) == 1, "dtype sizes");
    CHECK(strcmp(st_dtype_name(ST_F8_E4M3), "F8_E4M3") == 0 && strcmp(st_dtype_name(ST_F8_E8M0), "F8_E8M0") == 0 &&
          strcmp(st_dtype_name(ST_BF16), "BF16") == 0 && strcmp(st_dtype_name(ST_I64), "I64") == 0, "dtype names");
}

static void test_good_file(void) {
    /* a: F32 [2,3] = 24 bytes @0; b: BF16 [4] = 8 bytes @24; c: F8_E8M0 scalar [] = 1 byte @32; e: empty [0,5] */
    const char *hdr =
        "{\"__metadata__\":{\"format\":\"pt\"},"
        "\"b\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[24,32]},"
        "\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
        "\"c\":{\"dtype\":\"F8_E8M0\",\"shape\":[],\"data_offsets\":[32,33]},"
        "\"e\":{\"dtype\":\"I64\",\"shape\":[0,5],\"data_offsets\":[33,33]}}      "; /* trailing space padding */
    write_st("good.safetensors", hdr, DATA, 40);
    char err[512] = "";
    st_set *s = NULL;
    int rc = st_open_file(&s, P("good.safetensors"), err, sizeof err);
    CHECK(rc == 0 && s, "open good file: %s", err);
    if (rc) return;
    CHECK(st_count(s) == 4, "count %zu", st_count(s));
    CHECK(st_at(s, 0) && strcmp(st_at(s, 0)->name, "a") == 0 && strcmp(st_at(s, 3)->name, "e") == 0 &&
          st_at(s, 4) == NULL, "sorted iteration");
    const st_tensor *a = st_find(s, "a"), *b = st_find(s, "b"), *c = st_find(s, "c"), *e = st_find(s, "e");
    CHECK(a && a->dtype == ST_F32 && a->ndim == 2 && a->shape[0] == 2 && a->shape[1] == 3 && a->numel == 6 &&
          a->nbytes == 24, "tensor a fields");
    CHECK(b && b->dtype == ST_BF16 && b->numel == 4 && b->nbytes == 8, "tensor b fields");
    CHECK(c && c->ndim == 0 && c->numel == 1 && c->nbytes == 1, "scalar c fields");
    CHECK(e && e->numel == 0 && e->nbytes == 0, "empty e fields");
    CHECK(a && memcmp(a->data, DATA, 24) == 0, "a data is the bytes at offset 0");
    CHECK(b && memcmp(b->data, DATA + 24, 8) == 0, "b data at offset 24");
    CHECK(c && *(const unsigned char *)c->data == DATA[32], "c data at offset 32");
    CHECK(a && strcmp(a->file, P("good.safetensors")) == 0, "file field '%s'", a ? a->file : "");
    CHECK(st_find(s, "__metadata__") == NULL && st_find(s, "z") == NULL && st_find(s, "") == NULL, "absent lookups");

    int64_t sh23[2] = {2, 3}, sh32[2] = {3, 2}, sh4[1] = {4};
    err[0] = 0;
    CHECK(st_expect(s, "a", ST_F32, 2, sh23, err, sizeof err) == a, "st_expect ok: %s", err);
    CHECK(st_expect(s, "a", ST_F32, 2, sh32, err, sizeof err) == NULL && strstr(err, "'a'") &&
          strstr(err, "expected F32 [3, 2], found F32 [2, 3]") && strstr(err, "good.safetensors"),
          "st_expect wrong shape: %s", err);
    CHECK(st_expect(s, "b", ST_F32, 1, sh4, err, sizeof err) == NULL && strstr(err, "'b'") &&
          strstr(err, "expected F32 [4], found BF16 [4]"), "st_expect wrong dtype: %s", err);
    CHECK(st_expect(s, "a", ST_F32, 1, sh4, err, sizeof err) == NULL && strstr(err, "'a'"),
          "st_expect wrong ndim: %s", err);
    CHECK(st_expect(s, "layers.0.attn.wq_a.weight", ST_F32, 1, sh4, err, sizeof err) == NULL &&
          strstr(err, "missing tensor 'layers.0.attn.wq_a.weight'") && strstr(err, "good.safetensors"),
          "st_expect missing: %s", err);
    st_close(s);
    st_close(NULL);
}

static void test_bad_files(void) {
    write_raw("short.safetensors", 0, "", NULL, 0);
    {   /* 5 bytes only */
        FILE *f = fopen(P("short.safetensors"), "wb");
        fwrite("\1\0\0\0\0", 1, 5, f);
        fclose(f);
    }
    EXPECT_ERR("short.safetensors", 0, "short.safetensors", "too short");

    write_raw("hlen.safetensors", 1000, "{}", NULL, 0);
    EXPECT_ERR("hlen.safetensors", 0, "hlen.safetensors", "header length 1000 exceeds");

    write_raw("hlen_huge.safetensors", UINT64_C(0xffffffffffffff00), "{}", NULL, 0);
    EXPECT_ERR("hlen_huge.safetensors", 0, "exceeds the file size");

    write_st("notjson.safetensors", "{\"a\": {\"dtype\": ", NULL, 0);
    EXPECT_ERR("notjson.safetensors", 0, "notjson.safetensors", "not valid JSON");

    write_st("garbage.safetensors", "{}xyz", NULL, 0);
    EXPECT_ERR("garbage.safetensors", 0, "garbage.safetensors", "trailing garbage");

    write_st("array.safetensors", "[1,2]", NULL, 0);
    EXPECT_ERR("array.safetensors", 0, "not a JSON object");

    write_st("entry.safetensors", "{\"w\": 5}", NULL, 0);
    EXPECT_ERR("entry.safetensors", 0, "tensor 'w'", "not a JSON object");

    /* truncated file: offsets point past the data present */
    write_st("trunc.safetensors", "{\"embed.weight\":{\"dtype\":\"BF16\",\"shape\":[8,8],\"data_offsets\":[0,128]}}",
             DATA, 64);
    EXPECT_ERR("trunc.safetensors", 0, "trunc.safetensors: tensor 'embed.weight': data_offsets [0, 128] exceed the "
               "file's data section (64 bytes)");

    write_st("past.safetensors", "{\"embed.weight\":{\"dtype\":\"U8\",\"shape\":[99],\"data_offsets\":[0,99]}}",
             DATA, 64);
    EXPECT_ERR("past.safetensors", 0, "past.safetensors: tensor 'embed.weight': data_offsets [0, 99] exceed the "
               "file's data section (64 bytes)");

    write_st("mismatch.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[4,4],\"data_offsets\":[0,32]}}", DATA, 64);
    EXPECT_ERR("mismatch.safetensors", 0, "tensor 'w'", "F32 [4, 4] needs 64 bytes", "span 32");

    write_st("decr.safetensors", "{\"w\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[8,4]}}", DATA, 64);
    EXPECT_ERR("decr.safetensors", 0, "tensor 'w'", "decreasing");

    write_st("dtype.safetensors", "{\"w\":{\"dtype\":\"Q4_K\",\"shape\":[4],\"data_offsets\":[0,4]}}", DATA, 8);
    EXPECT_ERR("dtype.safetensors", 0, "tensor 'w'", "unknown dtype 'Q4_K'");

    write_st("nodtype.safetensors", "{\"w\":{\"shape\":[4],\"data_offsets\":[0,4]}}", DATA, 8);
    EXPECT_ERR("nodtype.safetensors", 0, "tensor 'w'", "dtype");

    write_st("shape.safetensors", "{\"w\":{\"dtype\":\"U8\",\"shape\":[2,-1],\"data_offsets\":[0,4]}}", DATA, 8);
    EXPECT_ERR("shape.safetensors", 0, "tensor 'w'", "shape entry 1");

    write_st("shapef.safetensors", "{\"w\":{\"dtype\":\"U8\",\"shape\":[2.5],\"data_offsets\":[0,4]}}", DATA, 8);
    EXPECT_ERR("shapef.safetensors", 0, "tensor 'w'", "shape entry 0");

    write_st("offs.safetensors", "{\"w\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0]}}", DATA, 8);
    EXPECT_ERR("offs.safetensors", 0, "tensor 'w'", "data_offsets");

    write_st("ovf.safetensors",
             "{\"w\":{\"dtype\":\"F64\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,8]}}", DATA, 8);
    EXPECT_ERR("ovf.safetensors", 0, "tensor 'w'", "shape [4294967296, 4294967296, 16]: element count overflows");

    /* issue 8 fuzzing finding: an element count below the 2^62 cap whose byte count wraps 64 bits (2^61 + 2
     * F64 elements = 2^64 + 16 bytes, i.e. 16 after wrapping) used to open with 16 bytes of data */
    write_st("ovf_bytes.safetensors",
             "{\"w\":{\"dtype\":\"F64\",\"shape\":[2,1048577,1099510579201],\"data_offsets\":[0,16]}}", DATA, 16);
    EXPECT_ERR("ovf_bytes.safetensors", 0, "ovf_bytes.safetensors: tensor 'w'",
               "F64 [2, 1048577, 1099510579201]: byte count overflows (2305843009213693954 elements of 8 bytes each");

    /* a zero dimension makes the count 0 even when the other dimensions alone would overflow */
    write_st("zero_ovf.safetensors",
             "{\"w\":{\"dtype\":\"F64\",\"shape\":[0,4294967296,4294967296],\"data_offsets\":[0,0]}}", DATA, 8);
    {
        st_set *zs = NULL;
        char zerr[512] = "";
        int zrc = st_open_file(&zs, P("zero_ovf.safetensors"), zerr, sizeof zerr);
        CHECK(zrc == 0 && zs && st_find(zs, "w") && st_find(zs, "w")->numel == 0, "zero-sized huge shape: %s", zerr);
        st_close(zs);
    }

    /* integers >= 2^53 are not exact in JSON: said precisely, for offsets and shape entries */
    write_st("off53.safetensors",
             "{\"w\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4611686018427387904,4611686018427387908]}}",
             DATA, 8);
    EXPECT_ERR("off53.safetensors", 0, "tensor 'w'", "data_offsets entry 0 (4611686018427387904) is 2^53 or more");
    write_st("off53b.safetensors",
             "{\"w\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,9007199254740992]}}", DATA, 8);
    EXPECT_ERR("off53b.safetensors", 0, "tensor 'w'", "data_offsets entry 1 (9007199254740992) is 2^53 or more");
    write_st("shape53.safetensors",
             "{\"w\":{\"dtype\":\"U8\",\"shape\":[1,9007199254740992],\"data_offsets\":[0,4]}}", DATA, 8);
    EXPECT_ERR("shape53.safetensors", 0, "tensor 'w'", "shape entry 1 (9007199254740992) is 2^53 or more");

    /* the same tensor twice with the same offsets: a duplicate, not an overlap with itself */
    write_st("dupsame.safetensors",
             "{\"w\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
             "\"w\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}", DATA, 8);
    {
        const char *e = open_err("dupsame.safetensors", 0);
        CHECK(strstr(e, "duplicate tensor 'w'") && !strstr(e, "overlap"), "duplicate reported as such: \"%s\"", e);
    }

    write_st("dup.safetensors",
             "{\"w\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
             "\"w\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4,8]}}", DATA, 8);
    EXPECT_ERR("dup.safetensors", 0, "dup.safetensors", "duplicate tensor 'w'");

    write_st("overlap.safetensors",
             "{\"x\":{\"dtype\":\"U8\",\"shape\":[6],\"data_offsets\":[0,6]},"
             "\"y\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4,8]}}", DATA, 8);
    EXPECT_ERR("overlap.safetensors", 0, "tensor 'y'", "overlap tensor 'x'");

    EXPECT_ERR("does-not-exist.safetensors", 0, "does-not-exist.safetensors", "cannot open");

    /* dsv4_read_file (base/util.h) on a directory: a clear error, never a size from ftell */
    {
        char *b = NULL;
        size_t n = 0;
        char rerr[512] = "";
        int rrc = dsv4_read_file(tmpdir, &b, &n, rerr, sizeof rerr);
        CHECK(rrc == -1 && b == NULL && strstr(rerr, tmpdir) && strstr(rerr, "is a directory"),
              "read_file(dir): rc %d \"%s\"", rrc, rerr);
    }
}

static void test_dirs(void) {
    /* --- 2-shard directory with index */
    mkdir_rel("m2");
    write_st("m2/model-00001-of-00002.safetensors",
             "{\"embed.weight\":{\"dtype\":\"BF16\",\"shape\":[2,4],\"data_offsets\":[0,16]},"
             "\"norm.weight\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[16,32]}}", DATA, 32);
    write_st("m2/model-00002-of-00002.safetensors",
             "{\"head.weight\":{\"dtype\":\"BF16\",\"shape\":[2,4],\"data_offsets\":[0,16]}}", DATA + 100, 16);
    write_text("m2/model.safetensors.index.json",
               "{\"metadata\":{\"total_size\":48},\"weight_map\":{"
               "\"embed.weight\":\"model-00001-of-00002.safetensors\","
               "\"norm.weight\":\"model-00001-of-00002.safetensors\","
               "\"head.weight\":\"model-00002-of-00002.safetensors\"}}");
    char err[512] = "";
    st_set *s = NULL;
    int rc = st_open_dir(&s, P("m2"), err, sizeof err);
    CHECK(rc == 0, "open 2-shard dir: %s", err);
    if (rc == 0) {
        CHECK(st_count(s) == 3, "2-shard count %zu", st_count(s));
        const st_tensor *h = st_find(s, "head.weight"), *e = st_find(s, "embed.weight");
        CHECK(h && strstr(h->file, "model-00002-of-00002.safetensors") && memcmp(h->data, DATA + 100, 16) == 0,
              "head.weight from shard 2");
        CHECK(e && strstr(e->file, "model-00001-of-00002.safetensors") && memcmp(e->data, DATA, 16) == 0,
              "embed.weight from shard 1");
        CHECK(st_at(s, 0) && strcmp(st_at(s, 0)->name, "embed.weight") == 0 &&
              strcmp(st_at(s, 1)->name, "head.weight") == 0, "sorted across shards");
        st_close(s);
    }

    /* --- same shards without index (glob mode) */
    mkdir_rel("g2");
    write_st("g2/b.safetensors", "{\"y\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}", DATA, 2);
    write_st("g2/a.safetensors", "{\"x\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}", DATA, 2);
    write_text("g2/readme.txt", "not a shard");
    rc = st_open_dir(&s, P("g2"), err, sizeof err);
    CHECK(rc == 0 && st_count(s) == 2, "glob dir: %s", rc ? err : "");
    if (rc == 0) {
        CHECK(st_find(s, "x") && strstr(st_find(s, "x")->file, "a.safetensors"), "glob: x from a");
        st_close(s);
    }

    /* --- duplicate across shards (glob) */
    mkdir_rel("dup2");
    write_st("dup2/a.safetensors", "{\"w\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}", DATA, 2);
    write_st("dup2/b.safetensors", "{\"w\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}", DATA, 2);
    EXPECT_ERR("dup2", 1, "duplicate tensor 'w'", "a.safetensors", "b.safetensors");

    /* --- index names a missing shard */
    mkdir_rel("miss_shard");
    write_st("miss_shard/s1.safetensors", "{\"w\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}", DATA, 2);
    write_text("miss_shard/model.safetensors.index.json",
               "{\"weight_map\":{\"w\":\"s1.safetensors\",\"v\":\"s2.safetensors\"}}");
    EXPECT_ERR("miss_shard", 1, "model.safetensors.index.json", "shard 's2.safetensors'", "tensor 'v'",
               "does not exist");

    /* --- index names a tensor its shard lacks */
    mkdir_rel("miss_tensor");
    write_st("miss_tensor/s1.safetensors", "{\"w\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}", DATA, 2);
    write_text("miss_tensor/model.safetensors.index.json",
               "{\"weight_map\":{\"w\":\"s1.safetensors\",\"layers.0.ffn.gate.bias\":\"s1.safetensors\"}}");
    EXPECT_ERR("miss_tensor", 1, "tensor 'layers.0.ffn.gate.bias'", "s1.safetensors", "not in it");

    /* --- index maps a tensor to the wrong shard */
    mkdir_rel("wrong_shard");
    write_st("wrong_shard/s1.safetensors", "{\"w\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}", DATA, 2);
    write_st("wrong_shard/s2.safetensors", "{\"v\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}", DATA, 2);
    write_text("wrong_shard/model.safetensors.index.json",
               "{\"weight_map\":{\"w\":\"s2.safetensors\",\"v\":\"s1.safetensors\"}}");
    EXPECT_ERR("wrong_shard", 1, "tensor 'w'", "listed for shard 's2.safetensors' but found in", "s1.safetensors");

    /* --- bad index JSON, bad shard inside an indexed dir, empty dir */
    mkdir_rel("bad_index");
    write_text("bad_index/model.safetensors.index.json", "{\"weight_map\": [");
    EXPECT_ERR("bad_index", 1, "model.safetensors.index.json", "not valid JSON");
    mkdir_rel("bad_shard");
    write_st("bad_shard/s1.safetensors", "{\"w\":{\"dtype\":\"U8\",\"shape\":[9],\"data_offsets\":[0,9]}}", DATA, 2);
    write_text("bad_shard/model.safetensors.index.json", "{\"weight_map\":{\"w\":\"s1.safetensors\"}}");
    EXPECT_ERR("bad_shard", 1, "s1.safetensors: tensor 'w'", "exceed");
    mkdir_rel("evil_index");
    write_text("evil_index/model.safetensors.index.json", "{\"weight_map\":{\"w\":\"../good.safetensors\"}}");
    EXPECT_ERR("evil_index", 1, "tensor 'w'", "invalid shard file name");
    mkdir_rel("empty");
    EXPECT_ERR("empty", 1, "no *.safetensors");
    EXPECT_ERR("no-such-dir", 1, "no-such-dir");
}

/* dsv4_huge_alloc (base/util.h): zeroed and writable on both sides of its 2 MiB switch (calloc below, an advised
 * anonymous mapping above; calloc for every size under AddressSanitizer), freed with its size. */
static void test_huge_alloc(void) {
    const size_t sizes[] = {1, 4096, ((size_t)2 << 20) - 1, (size_t)2 << 20, ((size_t)5 << 20) + 123};
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        const size_t n = sizes[k];
        unsigned char *p = dsv4_huge_alloc(n);
        CHECK(p != NULL, "dsv4_huge_alloc(%zu) failed", n);
        if (!p) continue;
        size_t nz = 0;
        for (size_t i = 0; i < n; i++) nz += p[i] != 0;
        CHECK(nz == 0, "dsv4_huge_alloc(%zu): %zu nonzero bytes", n, nz);
        memset(p, 0xa5, n);
        CHECK(p[0] == 0xa5 && p[n - 1] == 0xa5, "dsv4_huge_alloc(%zu): not writable end to end", n);
        dsv4_huge_free(p, n);
    }
    dsv4_huge_free(NULL, 0);
    dsv4_huge_free(NULL, (size_t)4 << 20);
}

int main(void) {
    for (int i = 0; i < 256; i++) DATA[i] = (unsigned char)(i * 7 + 3);
    test_huge_alloc();
    snprintf(tmpdir, sizeof tmpdir, "/tmp/dsv4-test-io.XXXXXX");
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 2; }
    test_dtypes();
    test_good_file();
    test_bad_files();
    test_dirs();
    for (int i = nmade - 1; i >= 0; i--) remove(made[i]); /* files before their directories */
    rmdir(tmpdir);
    return test_done();
}
