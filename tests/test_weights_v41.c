/* tests/test_weights_v41.c — binding a DeepSeek-V4.1 checkpoint (src/model/weights_v41.c) on the tiny V4.1 golden
 * checkpoint tests/golden/v41/tiny (tools/reference/make_v41_goldens.py: the official HF layout at toy size).
 *
 * Checked: every tensor is bound (the whole set matches dsv4_tensor_list), the CSA2 roles of each layer follow the
 * config, FP8 32x32-tile weights become the exact BF16 of E4M3 x UE8M0 (decoded here independently), the ratio-2
 * compressor is F32 of the stored BF16, the Engram table locations read back the stored rows with pread, DSpark
 * stages have their own expert count; dsv4_model_load binds it the same way (same summary; the public API on it:
 * tests/test_api_v41.c). Bad input (each in a
 * copy of the checkpoint with one change): a missing tensor, a mis-shaped one, a wrong dtype, an unexpected one, a
 * NaN FP8 code, a truncated shard, a V4 directory — each a clear error naming the tensor or file.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/stat.h>
#include "testlib.h"
#include "model/model_v41.h"
#include "io/safetensors.h"
#include "kernels/kernels.h"

#define TINY "tests/golden/v41/tiny"

static char tmpdir[64];

/* ---- a safetensors file as header JSON + data section, rewritten with changes ---- */
typedef struct { cJSON *hdr; unsigned char *data; size_t ndata; } stfile;

static int st_read(stfile *f, const char *path) {
    size_t len = 0;
    char *b = test_read_file(path, &len);
    if (!b || len < 8) { free(b); return -1; }
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | (unsigned char)b[i];
    char *j = malloc(n + 1);
    memcpy(j, b + 8, n);
    j[n] = 0;
    f->hdr = cJSON_Parse(j);
    free(j);
    f->ndata = len - 8 - n;
    f->data = malloc(f->ndata + 1);
    memcpy(f->data, b + 8 + n, f->ndata);
    free(b);
    return f->hdr ? 0 : -1;
}

static void st_write(const stfile *f, const char *path, const void *extra, size_t nextra) {
    char *j = cJSON_PrintUnformatted(f->hdr);
    size_t n = strlen(j);
    FILE *o = fopen(path, "wb");
    unsigned char le[8];
    for (int i = 0; i < 8; i++) le[i] = (unsigned char)((uint64_t)n >> (8 * i));
    fwrite(le, 1, 8, o);
    fwrite(j, 1, n, o);
    fwrite(f->data, 1, f->ndata, o);
    if (nextra) fwrite(extra, 1, nextra, o);
    fclose(o);
    free(j);
}

static void st_free(stfile *f) { cJSON_Delete(f->hdr); free(f->data); }

static void copy_file(const char *from, const char *to) {
    size_t n = 0;
    char *b = test_read_file(from, &n);
    FILE *o = fopen(to, "wb");
    if (b && o) fwrite(b, 1, n, o);
    if (o) fclose(o);
    free(b);
}

/* A copy of the tiny checkpoint in tmpdir/<name> whose model.safetensors went through edit(f); returns the dir. */
static const char *variant(const char *name, void (*edit)(stfile *f, void **extra, size_t *nextra)) {
    static char dir[128];
    char p[192];
    snprintf(dir, sizeof dir, "%s/%s", tmpdir, name);
    if (mkdir(dir, 0700) && access(dir, F_OK)) return NULL;
    snprintf(p, sizeof p, "%s/config.json", dir);
    copy_file(TINY "/config.json", p);
    stfile f;
    if (st_read(&f, TINY "/model.safetensors")) return NULL;
    void *extra = NULL;
    size_t nextra = 0;
    edit(&f, &extra, &nextra);
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    st_write(&f, p, extra, nextra);
    free(extra);
    st_free(&f);
    return dir;
}

/* bind `dir`, expect failure with an error containing every needle */
static void expect_error(const char *what, const char *dir, const char *n1, const char *n2) {
    dsv4_model *m = NULL;
    char err[1024] = "";
    int rc = dsv4_model_bind_v41(&m, dir, err, sizeof err);
    CHECK(rc != 0 && !m, "%s: binding succeeded", what);
    CHECK(strstr(err, n1) != NULL, "%s: error '%s' lacks '%s'", what, err, n1);
    if (n2) CHECK(strstr(err, n2) != NULL, "%s: error '%s' lacks '%s'", what, err, n2);
    printf("  %s: %s\n", what, err);
    if (m) dsv4_model_free(m);
}

static void e_missing(stfile *f, void **x, size_t *n) {
    (void)x; (void)n;
    cJSON *t = cJSON_DetachItemFromObjectCaseSensitive(f->hdr, "layers.4.engram.embed.scale");
    cJSON_AddItemToObject(f->hdr, "layers.4.engram.embed.scale_renamed", t);
}
static void e_shape(stfile *f, void **x, size_t *n) {   /* same bytes, [64, 64] -> [32, 128] */
    (void)x; (void)n;
    cJSON *t = cJSON_GetObjectItemCaseSensitive(f->hdr, "layers.2.attn.compressor.wgate.weight");
    cJSON *s = cJSON_GetObjectItemCaseSensitive(t, "shape");
    cJSON_ReplaceItemInArray(s, 0, cJSON_CreateNumber(32));
    cJSON_ReplaceItemInArray(s, 1, cJSON_CreateNumber(128));
}
static void e_dtype(stfile *f, void **x, size_t *n) {   /* a scale stored as U8 */
    (void)x; (void)n;
    cJSON *t = cJSON_GetObjectItemCaseSensitive(f->hdr, "layers.5.attn.wo_b.scale");
    cJSON_ReplaceItemInObjectCaseSensitive(t, "dtype", cJSON_CreateString("U8"));
}
static void e_unexpected(stfile *f, void **x, size_t *n) {   /* layer 3 is not a KV source: no compressor */
    *n = 64 * 64 * 2;
    *x = calloc(1, *n);
    cJSON *t = cJSON_CreateObject();
    cJSON_AddStringToObject(t, "dtype", "BF16");
    int sh[2] = {64, 64};
    cJSON_AddItemToObject(t, "shape", cJSON_CreateIntArray(sh, 2));
    double off[2] = {(double)f->ndata, (double)(f->ndata + *n)};
    cJSON_AddItemToObject(t, "data_offsets", cJSON_CreateDoubleArray(off, 2));
    cJSON_AddItemToObject(f->hdr, "layers.3.attn.compressor.wkv.weight", t);
}
static void e_nan(stfile *f, void **x, size_t *n) {   /* an E4M3 NaN code inside a 32-tile weight */
    (void)x; (void)n;
    cJSON *t = cJSON_GetObjectItemCaseSensitive(f->hdr, "layers.0.attn.wq_a.weight");
    size_t off = (size_t)cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(t, "data_offsets"), 0)->valuedouble;
    f->data[off + 5] = 0x7F;
}
static void e_truncate(stfile *f, void **x, size_t *n) {
    (void)x; (void)n;
    f->ndata -= 100;
}

static void test_good(void) {
    dsv4_model *m = NULL;
    char err[1024] = "";
    int rc = dsv4_model_bind_v41(&m, TINY, err, sizeof err);
    CHECK(rc == 0 && m, "bind %s: %s", TINY, err);
    if (rc) return;
    const dsv4_config *c = &m->cfg;
    const struct dsv4_v41_weights *v = m->v41;
    CHECK(v && v->n_blocks == c->n_layers + c->n_mtp_layers && v->n_blocks == 10, "10 blocks");
    /* CSA2 roles: KV sources 2, 5; index sources 2, 4, 5, 7; candidate source 5 */
    static const int ratio[10] = {0, 0, 2, 2, 2, 1, 1, 1, 0, 0}, kv[10] = {0, 0, 1, 0, 0, 1, 0, 0, 0, 0},
                     ix[10] = {0, 0, 1, 0, 1, 1, 0, 1, 0, 0}, cand[10] = {0, 0, 0, 0, 0, 1, 0, 0, 0, 0},
                     usec[10] = {0, 0, 0, 0, 0, 0, 0, 1, 0, 0}, eng[10] = {0, 1, 0, 0, 1, 0, 0, 0, 0, 0};
    for (int L = 0; L < 10; L++) {
        const dsv4_layer41 *B = &v->layers[L];
        CHECK(B->ratio == ratio[L] && B->kv_source == kv[L] && B->index_source == ix[L] &&
              B->candidate_source == cand[L] && B->uses_candidates == usec[L] && (B->engram != NULL) == eng[L],
              "layer %d roles", L);
        CHECK((B->idx_wk.rows > 0) == (kv[L] && ix[L]), "layer %d: index keys made by owners only", L);
        /* 32x32-tile FP8 read in place (no BF16 copy; o_lora_rank 32 allows wo_a's group sub-views) */
        CHECK(B->wq_a.fmt == DSV4_W_FP8_32 && B->wo_a.fmt == DSV4_W_FP8_32 && B->w1[0].fmt == DSV4_W_FP4,
              "layer %d formats", L);
    }
    CHECK(v->layers[2].comp_wkv.fmt == DSV4_W_F32 && v->layers[2].comp_wgate.fmt == DSV4_W_F32 &&
          v->layers[5].comp_wkv.fmt == DSV4_W_BF16 && v->layers[5].comp_wgate.rows == 0,
          "compressor: ratio 2 F32 wkv/wgate, ratio 1 BF16 wkv only");
    CHECK(v->layers[3].n_experts == 4 && v->layers[3].n_active == 2 && v->layers[8].n_experts == 3 &&
          v->layers[9].n_active == 2, "expert counts (DSpark 3 top 2)");
    CHECK(v->layers[8].main_proj.rows == 64 && v->layers[8].main_proj.cols == 192 && v->layers[9].dspark_norm &&
          v->layers[9].markov_embed.rows == 96 && v->layers[9].confidence_proj.cols == 64 + 32 &&
          !v->layers[8].dspark_norm && v->layers[9].main_proj.rows == 0, "DSpark stage tensors");
    /* 32x32-tile FP8 -> BF16: compare with an independent decode of the stored bytes */
    const char *names[3] = {"layers.0.attn.wq_a", "layers.7.attn.wo_a", "layers.4.engram.wkv"};
    const dsv4_wview *views[3] = {&v->layers[0].wq_a, &v->layers[7].wo_a, &v->layers[4].engram->wkv};
    for (int k = 0; k < 3; k++) {
        char wn[96], sn[96];
        snprintf(wn, sizeof wn, "%s.weight", names[k]);
        snprintf(sn, sizeof sn, "%s.scale", names[k]);
        const st_tensor *w = st_find(m->st, wn), *s = st_find(m->st, sn);
        const dsv4_wview *x = views[k];
        long bad = 0, nz = 0;
        int cols = (int)w->shape[1], scols = (int)s->shape[1];
        float *row = malloc((size_t)cols * sizeof(float));
        for (int r = 0; r < x->rows; r++) {
            dsv4_wview_row(x, r, row);
            for (int i = 0; i < cols; i++) {
                const uint8_t *wb = w->data, *sb = s->data;
                float want = dsv4_e4m3_to_f32(wb[(size_t)r * cols + i]) *
                             dsv4_e8m0_to_f32(sb[(size_t)(r / 32) * scols + i / 32]);
                bad += row[i] != want;
                nz += want != 0;
            }
        }
        free(row);
        CHECK(bad == 0 && nz > 0 && w->shape[0] == x->rows, "%s: %ld of %d x %d values differ", names[k], bad,
              x->rows, cols);
    }
    /* ratio-2 compressor: F32 copy of the stored BF16 */
    {
        const st_tensor *t = st_find(m->st, "layers.2.attn.compressor.wgate.weight");
        const uint16_t *h = t->data;
        const float *f = v->layers[2].comp_wgate.data;
        long bad = 0;
        for (int i = 0; i < 64 * 64; i++) bad += f[i] != dsv4_bf16_to_f32(h[i]);
        CHECK(bad == 0, "compressor wgate F32 copy: %ld differ", bad);
    }
    /* Engram table locations: pread rows and compare with the stored tensors */
    for (int L = 1; L <= 4; L += 3) {
        const dsv4_engram41_w *e = v->layers[L].engram;
        char wn[64];
        snprintf(wn, sizeof wn, "layers.%d.engram.embed.weight", L);
        const st_tensor *t = st_find(m->st, wn);
        CHECK(e->rows == c->x.engram_num_embeddings[e->index] && e->rows == t->shape[0], "layer %d rows", L);
        int fd = open(e->path, O_RDONLY);
        int fds = open(e->scale_path, O_RDONLY);
        long bad = 0;
        for (int64_t r = 0; r < e->rows; r += 7) {
            uint8_t row[32], sc[1];
            bad += pread(fd, row, 32, (off_t)(e->w_off + (uint64_t)r * 32)) != 32 ||
                   memcmp(row, (const uint8_t *)t->data + r * 32, 32) != 0;
            bad += pread(fds, sc, 1, (off_t)(e->s_off + (uint64_t)r)) != 1 || sc[0] < 100 || sc[0] > 130;
        }
        close(fd);
        close(fds);
        CHECK(bad == 0, "layer %d: %ld table rows / scales read back wrong", L, bad);
        float wq = e->q_weight[70], wk = e->k_weight[70];
        CHECK(e->w[70] == wq * wk && wq != 0, "layer %d: q_weight * k_weight", L);
    }
    dsv4_model_info in;
    dsv4_model_get_info(m, &in);
    CHECK(in.n_params == 1249334.0 && in.n_params_engram == 100416.0 && in.n_params_mtp == 191702.0,
          "info: %.0f params (Engram %.0f, DSpark %.0f)", in.n_params, in.n_params_engram, in.n_params_mtp);
    dsv4_model_free(m);
    /* the public loader binds it the same way: the same summary, identity Engram token map (no tokenizer) */
    m = NULL;
    rc = dsv4_model_load(&m, TINY, err, sizeof err);
    CHECK(rc == 0 && m, "dsv4_model_load on V4.1: %s", err);
    if (m) {
        dsv4_model_info i2;
        dsv4_model_get_info(m, &i2);
        CHECK(i2.n_params == in.n_params && i2.bytes_total == in.bytes_total && i2.v41 && i2.engram_token_map == 0,
              "dsv4_model_load info: %.0f params, %.0f bytes, token map %d", i2.n_params, i2.bytes_total,
              i2.engram_token_map);
        dsv4_model_free(m);
    }
}

static void test_bad(void) {
    struct { const char *name; void (*edit)(stfile *, void **, size_t *); const char *n1, *n2; } cases[] = {
        {"missing", e_missing, "missing tensor 'layers.4.engram.embed.scale'", NULL},
        {"shape", e_shape, "layers.2.attn.compressor.wgate.weight", "[32, 128]"},
        {"dtype", e_dtype, "layers.5.attn.wo_b.scale", "U8"},
        {"unexpected", e_unexpected, "unexpected tensor 'layers.3.attn.compressor.wkv.weight'", "kv_source_layer_ids"},
        {"nan", e_nan, "layers.0.attn.wq_a.weight", "not finite"},
        {"truncated", e_truncate, "model.safetensors", "exceed"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *d = variant(cases[i].name, cases[i].edit);
        if (!d) { test_fail("cannot write variant %s", cases[i].name); continue; }
        expect_error(cases[i].name, d, cases[i].n1, cases[i].n2);
        test_variant_remove(d);
    }
    expect_error("V4 directory", "tests/golden/flash", "not a DeepSeek-V4.1 config", NULL);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/dsv4-test-w41.XXXXXX");
    if (!mkdtemp(tmpdir)) { test_fail("mkdtemp"); return test_done(); }
    test_good();
    test_bad();
    rmdir(tmpdir);
    return test_done();
}
