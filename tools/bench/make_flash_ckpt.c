/* tools/bench/make_flash_ckpt.c — official-layout checkpoints with the REAL DeepSeek-V4-Flash shapes and random
 * weights, for the benchmark (`dsv4 bench`, `make bench-flash`; method in docs/performance.md).
 *
 *   make_flash_ckpt -o DIR [--config FILE] [--layers LIST] [--mtp] [--twin-vocab N] [--seed S] [--tiny] [--no-check]
 *
 * Reads the real config.json (default vendor/v4-flash-metadata/config.json), keeps every shape and
 * hyper-parameter and keeps only the trunk layers named by --layers (indices of the real model, default 0,3,4:
 * layer 0 = window-only and hash-routed, layer 3 = HCA (ratio 128), layer 4 = CSA (ratio 4)); the written
 * config.json gets num_hidden_layers = their count, compress_ratios = their ratios (+ the real MTP entry with
 * --mtp, else num_nextn_predict_layers 0) and num_hash_layers = how many of them are hash-routed in the real
 * model (they must come first, as hash layers do). The tensor set is dsv4_tensor_list's (src/io/tensor_list.h,
 * the one source of truth); the values are random with scales chosen so that activations stay O(1):
 *   FP8 E4M3 weights  codes of N(0, 4^2) rounded to E4M3 (never the NaN codes 0x7f / 0xff), E8M0 block scales
 *                     2^round(log2(1 / (4 sqrt(in)))) (2^-7 .. 2^-9 for V4-Flash) with a +-1 jitter, so W x
 *                     has unit variance for a unit-RMS x;
 *   FP4 experts       uniform random E2M1 nibbles (RMS 2.93), E8M0 scales 2^round(log2(1 / (2.93 sqrt(in))));
 *   BF16              norms 1 +- 0.1; embed U(-sqrt3, sqrt3) (std 1); other matrices std 1/sqrt(in);
 *   F32               hc_*_fn std 0.5/sqrt(in), hc bases +-0.1, hc scales 0.5..1, attn_sink +-0.5, ape +-0.1,
 *                     gate.bias +-0.01;  I64 tid2eid: K distinct random expert ids per row.
 * Layout: DIR/full/ holds config.json, model-00001-of-00002.safetensors (the vocabulary-sized tensors: embed,
 * head, norm, hc_head_* and the hash layers' tid2eid), model-00002-of-00002.safetensors (every other layer
 * tensor, about 3.6 GB per V4-Flash layer) and model.safetensors.index.json. DIR/twin/ is the small-vocabulary
 * twin (vocab_size --twin-vocab, default 1024): its own small first shard (the first rows of the full model's
 * embed / head / tid2eid: same PRNG streams) and the SAME second shard as a hard link (a symbolic link when the
 * file system refuses hard links). So the twin's logits equal the full model's first twin-vocab logits, and
 * decode(full) - decode(twin) is the time of the output head. DIR/complete.txt is written last (the Makefile
 * regenerates only when it is missing). Unless --no-check, both directories are loaded with dsv4_model_load and
 * evaluated (4-token prefill + 1 decode step): logits must be finite, not all ~0, and the twin's must equal
 * the full model's first rows bit for bit.
 * --tiny scales every width down (hidden 256, 4 heads x 128, 16 experts x 128, vocab 2048, ...) for the test
 * suite: a few MB, well under a second. Exit status: 0 ok, 1 failure, 2 usage error.
 */
#include "dsv4.h"
#include "io/config.h"
#include "io/safetensors.h"
#include "io/tensor_list.h"
#include "kernels/kernels.h"
#include "base/util.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define ERRLEN 1024
#define BUFSZ ((size_t)8 << 20)
#define SHARD_VOCAB "model-00001-of-00002.safetensors"
#define SHARD_LAYERS "model-00002-of-00002.safetensors"

static const char *usage =
    "usage: make_flash_ckpt -o DIR [--config FILE] [--layers LIST] [--mtp] [--twin-vocab N] [--seed S] [--tiny]\n"
    "                       [--no-check]\n"
    "  -o DIR          output directory: DIR/full, DIR/twin, DIR/complete.txt (about 3.6 GB per V4-Flash layer\n"
    "                  plus 2.1 GB of embed/head)\n"
    "  --config FILE   the real config.json (default vendor/v4-flash-metadata/config.json)\n"
    "  --layers LIST   trunk layers of the real model to keep, comma-separated, hash-routed ones first\n"
    "                  (default 0,3,4: window-only + hash, HCA, CSA)\n"
    "  --mtp           keep the MTP block (default: num_nextn_predict_layers 0)\n"
    "  --twin-vocab N  vocab_size of the small-vocabulary twin (default 1024; 256 with --tiny)\n"
    "  --seed S        PRNG seed (default 1)\n"
    "  --tiny          scale every width down (test suite: a few MB)\n"
    "  --no-check      skip loading and evaluating the result\n";

/* ------------------------------------------------------------------ PRNG: xorshift64* */
typedef struct { uint64_t s; } rng_t;
static inline uint64_t rnext(rng_t *r) {
    uint64_t x = r->s;
    x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
    r->s = x;
    return x * 0x2545F4914F6CDD1DULL;
}
/* uniform in [-1, 1) from 24 bits */
static inline float runif(rng_t *r) { return (float)(rnext(r) >> 40) * (2.0f / 16777216.0f) - 1.0f; }
static rng_t rng_for(const char *name, uint64_t seed) {
    uint64_t h = 0xcbf29ce484222325ULL ^ (seed * 0x9E3779B97F4A7C15ULL);
    for (const char *p = name; *p; p++) { h ^= (unsigned char)*p; h *= 0x100000001b3ULL; }
    /* splitmix64 finalizer; never 0 */
    h += 0x9E3779B97F4A7C15ULL;
    h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9ULL;
    h = (h ^ (h >> 27)) * 0x94D049BB133111EBULL;
    h ^= h >> 31;
    rng_t r = { h ? h : 1 };
    return r;
}

/* E4M3 codes of N(0, 4^2): 65536 samples, indexed by 16 random bits */
#define FP8_STD 4.0
#define FP4_RMS 2.9261  /* sqrt(mean of the 16 E2M1 values squared) = sqrt(68.5 / 8) */
static uint8_t fp8_tab[65536];
static void fp8_tab_init(void) {
    rng_t r = { 0x1234567887654321ULL };
    for (int i = 0; i < 65536; i += 2) {
        double u1 = ((double)(rnext(&r) >> 11) + 1.0) / 9007199254740993.0, u2 = (double)(rnext(&r) >> 11) / 9007199254740992.0;
        double rad = sqrt(-2.0 * log(u1)) * FP8_STD;
        fp8_tab[i] = dsv4_f32_to_e4m3((float)(rad * cos(6.283185307179586 * u2)));
        fp8_tab[i + 1] = dsv4_f32_to_e4m3((float)(rad * sin(6.283185307179586 * u2)));
    }
    for (int i = 0; i < 65536; i++)
        if ((fp8_tab[i] & 0x7f) == 0x7f) fp8_tab[i] ^= 1;   /* never NaN (cannot happen: |x| saturates at 448) */
}

/* ------------------------------------------------------------------ output helpers */
typedef struct { FILE *f; const char *path; unsigned char *buf; size_t n; uint64_t written; int bad; } out_t;
static void out_flush(out_t *o) {
    if (o->n && !o->bad && fwrite(o->buf, 1, o->n, o->f) != o->n) o->bad = errno ? errno : EIO;
    o->written += o->n;
    o->n = 0;
}
static inline unsigned char *out_room(out_t *o, size_t need) {
    if (o->n + need > BUFSZ) out_flush(o);
    unsigned char *p = o->buf + o->n;
    o->n += need;
    return p;
}

/* Scale exponent (E8M0 value 2^e) for a weight of `in` columns whose unscaled values have RMS qrms. */
static int scale_exp(double in, double qrms) { return (int)lround(log2(1.0 / (qrms * sqrt(in)))); }

static int has_suffix(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

/* Write the data of tensor t (prev = the spec before it, the weight of a scale) to o. */
static int gen_tensor(out_t *o, const dsv4_tensor_spec *t, const dsv4_tensor_spec *prev, uint64_t seed,
                      int n_experts, char *err) {
    rng_t r = rng_for(t->name, seed);
    int64_t numel = dsv4_tensor_spec_numel(t);
    size_t esz = st_dtype_size(t->dtype);
    int64_t cols = t->ndim >= 2 ? t->shape[t->ndim - 1] : numel;
    const int64_t CH = 1 << 20;   /* elements per chunk */
    if (t->dtype == ST_F8_E4M3) {
        for (int64_t i = 0; i < numel; i += CH) {
            int64_t n = numel - i < CH ? numel - i : CH;
            unsigned char *p = out_room(o, (size_t)n);
            int64_t k = 0;
            for (; k + 4 <= n; k += 4) {
                uint64_t x = rnext(&r);
                p[k] = fp8_tab[x & 0xffff]; p[k + 1] = fp8_tab[(x >> 16) & 0xffff];
                p[k + 2] = fp8_tab[(x >> 32) & 0xffff]; p[k + 3] = fp8_tab[x >> 48];
            }
            for (; k < n; k++) p[k] = fp8_tab[rnext(&r) & 0xffff];
        }
        return 0;
    }
    if (t->dtype == ST_I8 && (t->flags & DSV4_TS_FP4)) {   /* packed E2M1 pairs: every byte is valid */
        for (int64_t i = 0; i < numel; i += CH) {
            int64_t n = numel - i < CH ? numel - i : CH;
            unsigned char *p = out_room(o, (size_t)n);
            int64_t k = 0;
            for (; k + 8 <= n; k += 8) { uint64_t x = rnext(&r); memcpy(p + k, &x, 8); }
            for (; k < n; k++) p[k] = (unsigned char)(rnext(&r) >> 56);
        }
        return 0;
    }
    if (t->dtype == ST_F8_E8M0) {
        if (!prev || !(t->flags & DSV4_TS_SCALE) || prev->ndim != 2) {
            snprintf(err, ERRLEN, "tensor %s: an E8M0 scale that does not follow its weight", t->name);
            return -1;
        }
        int fp4 = (prev->flags & DSV4_TS_FP4) != 0;
        double in = (double)prev->shape[1] * (fp4 ? 2 : 1);
        int e = scale_exp(in, fp4 ? FP4_RMS : FP8_STD);
        for (int64_t i = 0; i < numel; i += CH) {
            int64_t n = numel - i < CH ? numel - i : CH;
            unsigned char *p = out_room(o, (size_t)n);
            for (int64_t k = 0; k < n; k++) {
                int j = (int)(rnext(&r) >> 62);        /* 0..3 -> jitter -1, 0, 0, +1 */
                p[k] = (unsigned char)(127 + e + (j == 0 ? -1 : j == 3 ? 1 : 0));
            }
        }
        return 0;
    }
    if (t->dtype == ST_I64) {   /* ffn.gate.tid2eid [V, K]: K distinct ids per row */
        if (t->ndim != 2 || t->shape[1] > n_experts) {
            snprintf(err, ERRLEN, "tensor %s: unexpected shape for a tid2eid table", t->name);
            return -1;
        }
        int K = (int)t->shape[1];
        for (int64_t row = 0; row < t->shape[0]; row++) {
            int64_t ids[64];
            unsigned char *p = out_room(o, (size_t)K * 8);
            for (int k = 0; k < K; k++) {
                int64_t v;
                int dup;
                do {
                    v = (int64_t)(rnext(&r) % (uint64_t)n_experts);
                    dup = 0;
                    for (int j = 0; j < k && j < 64; j++) dup |= ids[j] == v;
                } while (dup);
                if (k < 64) ids[k] = v;
                memcpy(p + 8 * k, &v, 8);   /* little-endian host */
            }
        }
        return 0;
    }
    if (t->dtype == ST_BF16 || t->dtype == ST_F32) {
        float center = 0, a;
        const char *nm = t->name;
        if (t->ndim == 1 && has_suffix(nm, ".weight")) { center = 1.0f; a = 0.1f; }   /* norms */
        else if (!strcmp(nm, "embed.weight")) a = sqrtf(3.0f);
        else if (has_suffix(nm, "attn_sink")) a = 0.5f;
        else if (has_suffix(nm, "_fn")) a = sqrtf(3.0f) * 0.5f / sqrtf((float)cols);
        else if (has_suffix(nm, "_base")) a = 0.1f;
        else if (has_suffix(nm, "_scale")) { center = 0.75f; a = 0.25f; }
        else if (has_suffix(nm, "compressor.ape")) a = 0.1f;
        else if (has_suffix(nm, "gate.bias")) a = 0.01f;
        else if (t->ndim == 2) a = sqrtf(3.0f) / sqrtf((float)cols);           /* BF16 matrices */
        else a = 0.01f;
        for (int64_t i = 0; i < numel; i += CH) {
            int64_t n = numel - i < CH ? numel - i : CH;
            unsigned char *p = out_room(o, (size_t)n * esz);
            for (int64_t k = 0; k < n; k++) {
                float v = center + a * runif(&r);
                if (esz == 2) { uint16_t h = dsv4_f32_to_bf16(v); memcpy(p + 2 * k, &h, 2); }
                else memcpy(p + 4 * k, &v, 4);
            }
        }
        return 0;
    }
    snprintf(err, ERRLEN, "tensor %s: no generator for dtype %s", t->name, st_dtype_name(t->dtype));
    return -1;
}

/* vocabulary-sized tensors live in the first shard (so the twin can share the second) */
static int in_vocab_shard(const dsv4_tensor_spec *t) {
    return t->layer < 0 || has_suffix(t->name, "ffn.gate.tid2eid");
}

static char *pjoin(const char *a, const char *b) {
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", a, b);
    return p;
}

/* Write the tensors of ts[0..n) that belong to shard `which` (0 vocab, 1 layers) as one safetensors file. */
static int write_shard(const char *path, const dsv4_tensor_spec *ts, int n, int which, uint64_t seed, int n_experts,
                       double *bytes_out, char *err) {
    cJSON *root = cJSON_CreateObject();
    cJSON *meta = cJSON_AddObjectToObject(root, "__metadata__");
    cJSON_AddStringToObject(meta, "format", "pt");
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        const dsv4_tensor_spec *t = &ts[i];
        if (in_vocab_shard(t) != (which == 0)) continue;
        uint64_t nb = (uint64_t)dsv4_tensor_spec_numel(t) * st_dtype_size(t->dtype);
        cJSON *e = cJSON_AddObjectToObject(root, t->name);
        cJSON_AddStringToObject(e, "dtype", st_dtype_name(t->dtype));
        cJSON *sh = cJSON_AddArrayToObject(e, "shape");
        for (int k = 0; k < t->ndim; k++) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t->shape[k]));
        cJSON *of = cJSON_AddArrayToObject(e, "data_offsets");
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)(off + nb)));
        off += nb;
    }
    char *h = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!h) { snprintf(err, ERRLEN, "%s: out of memory", path); return -1; }
    size_t hl = strlen(h), pad = (8 - hl % 8) % 8;
    out_t o = { fopen(path, "wb"), path, malloc(BUFSZ), 0, 0, 0 };
    if (!o.f || !o.buf) {
        snprintf(err, ERRLEN, "cannot write %s: %s", path, o.f ? "out of memory" : strerror(errno));
        if (o.f) fclose(o.f);
        free(o.buf); free(h);
        return -1;
    }
    uint64_t hn = hl + pad;
    unsigned char *p = out_room(&o, 8);
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(hn >> (8 * i));
    memcpy(out_room(&o, hl), h, hl);
    memset(out_room(&o, pad), ' ', pad);
    free(h);
    int rc = 0;
    double t0 = dsv4_now(), next_report = 1e9;
    for (int i = 0; i < n && rc == 0; i++) {
        const dsv4_tensor_spec *t = &ts[i];
        if (in_vocab_shard(t) != (which == 0)) continue;
        rc = gen_tensor(&o, t, i > 0 ? &ts[i - 1] : NULL, seed, n_experts, err);
        if ((double)(o.written + o.n) >= next_report) {
            fprintf(stderr, "  %s: %.1f of %.1f GB\r", path, (double)(o.written + o.n) / 1e9, (double)(off + 8 + hn) / 1e9);
            next_report += 1e9;
        }
    }
    out_flush(&o);
    if (rc == 0 && o.bad) rc = -1, snprintf(err, ERRLEN, "write error on %s: %s", path, strerror(o.bad));
    if (fclose(o.f) != 0 && rc == 0) rc = -1, snprintf(err, ERRLEN, "write error on %s: %s", path, strerror(errno));
    free(o.buf);
    if (rc == 0) {
        double dt = dsv4_now() - t0;
        fprintf(stderr, "  %s: %.2f GB in %.1f s (%.2f GB/s)      \n", path, (double)o.written / 1e9, dt,
                (double)o.written / 1e9 / (dt > 0 ? dt : 1e-9));
        *bytes_out = (double)o.written;
    }
    return rc;
}

static int write_text(const char *path, const char *text, char *err) {
    FILE *f = fopen(path, "w");
    if (!f) { snprintf(err, ERRLEN, "cannot write %s: %s", path, strerror(errno)); return -1; }
    int bad = fputs(text, f) < 0;
    bad |= fclose(f) != 0;
    if (bad) { snprintf(err, ERRLEN, "write error on %s", path); return -1; }
    return 0;
}

static int write_index(const char *dir, const dsv4_tensor_spec *ts, int n, double total, char *err) {
    cJSON *root = cJSON_CreateObject();
    cJSON *meta = cJSON_AddObjectToObject(root, "metadata");
    cJSON_AddNumberToObject(meta, "total_size", total);
    cJSON *wm = cJSON_AddObjectToObject(root, "weight_map");
    for (int i = 0; i < n; i++) cJSON_AddStringToObject(wm, ts[i].name, in_vocab_shard(&ts[i]) ? SHARD_VOCAB : SHARD_LAYERS);
    char *s = cJSON_Print(root);
    cJSON_Delete(root);
    char *p = pjoin(dir, "model.safetensors.index.json");
    int rc = s && p ? write_text(p, s, err) : (snprintf(err, ERRLEN, "out of memory"), -1);
    free(s); free(p);
    return rc;
}

static int mkdir_p(const char *d, char *err) {
    if (mkdir(d, 0755) == 0 || errno == EEXIST) return 0;
    snprintf(err, ERRLEN, "cannot create %s: %s", d, strerror(errno));
    return -1;
}

static void set_num(cJSON *c, const char *key, double v) {
    cJSON *n = cJSON_CreateNumber(v);
    if (cJSON_GetObjectItemCaseSensitive(c, key)) cJSON_ReplaceItemInObjectCaseSensitive(c, key, n);
    else cJSON_AddItemToObject(c, key, n);
}

/* Write DIR/config.json from the real config object (modified in place for vocab). */
static int write_config(cJSON *cfg, const char *dir, int vocab, dsv4_config *parsed, char *err) {
    set_num(cfg, "vocab_size", vocab);
    char *s = cJSON_Print(cfg);
    char *p = pjoin(dir, "config.json");
    int rc = s && p ? write_text(p, s, err) : (snprintf(err, ERRLEN, "out of memory"), -1);
    if (rc == 0) rc = dsv4_config_load(parsed, p, err, ERRLEN);
    free(s); free(p);
    return rc;
}

/* Load dir, evaluate 4 tokens + 1 decode step; logits (vocab floats) of the decode step into out. */
static int check_model(const char *dir, const int32_t *toks, float **out, int *vocab, char *err) {
    dsv4_model *m = NULL;
    dsv4_session *s = NULL;
    char e2[ERRLEN / 2];
    double t0 = dsv4_now();
    if (dsv4_model_load(&m, dir, e2, sizeof e2)) { snprintf(err, ERRLEN, "check: cannot load: %s", e2); return -1; }
    dsv4_model_info info;
    dsv4_model_get_info(m, &info);
    int rc = -1;
    float *lg = malloc(sizeof(float) * (size_t)info.vocab_size);
    if (!lg) { snprintf(err, ERRLEN, "out of memory"); goto done; }
    if (dsv4_session_open(&s, m, 16, e2, sizeof e2) || dsv4_eval(s, toks, 4, lg, e2, sizeof e2) ||
        dsv4_eval(s, toks + 4, 1, lg, e2, sizeof e2)) {
        snprintf(err, ERRLEN, "check %s: %s", dir, e2);
        goto done;
    }
    double sum = 0, sq = 0, mx = 0;
    for (int i = 0; i < info.vocab_size; i++) {
        sum += lg[i]; sq += (double)lg[i] * lg[i];
        if (fabs(lg[i]) > mx) mx = fabs(lg[i]);
    }
    double mean = sum / info.vocab_size, sd = sqrt(fmax(0, sq / info.vocab_size - mean * mean));
    fprintf(stderr, "  check %s: loaded + 5 tokens in %.1f s; logits mean %.3f std %.3f max|.| %.3f\n", dir,
            dsv4_now() - t0, mean, sd, mx);
    if (!(sd > 1e-2)) { snprintf(err, ERRLEN, "check %s: logits are all ~0 (std %g)", dir, sd); goto done; }
    *out = lg; lg = NULL;
    *vocab = info.vocab_size;
    rc = 0;
done:
    free(lg);
    dsv4_session_free(s);
    dsv4_model_free(m);
    return rc;
}

static int parse_layers(const char *s, int *v, int cap) {
    int n = 0;
    const char *p = s;
    while (*p) {
        char *end; errno = 0;
        long x = strtol(p, &end, 10);
        if (end == p || errno || x < 0 || x >= DSV4_MAX_LAYERS || n == cap) return -1;
        v[n++] = (int)x;
        p = end;
        if (*p == ',') p++;
        else if (*p) return -1;
    }
    return n;
}

int main(int argc, char **argv) {
    const char *out = NULL, *cfgpath = "vendor/v4-flash-metadata/config.json", *layers_s = "0,3,4";
    int mtp = 0, twin_vocab = 0, tiny = 0, check = 1;   /* twin_vocab 0: 1024 (--tiny: 256) */
    uint64_t seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (!strcmp(o, "-h") || !strcmp(o, "--help")) { fputs(usage, stdout); return 0; }
        if (!strcmp(o, "--mtp")) { mtp = 1; continue; }
        if (!strcmp(o, "--tiny")) { tiny = 1; continue; }
        if (!strcmp(o, "--no-check")) { check = 0; continue; }
        if (strcmp(o, "-o") && strcmp(o, "--config") && strcmp(o, "--layers") && strcmp(o, "--twin-vocab") &&
            strcmp(o, "--seed")) {
            fprintf(stderr, "make_flash_ckpt: unknown option '%s'\n%s", o, usage);
            return 2;
        }
        if (i + 1 >= argc) { fprintf(stderr, "make_flash_ckpt: option %s needs a value\n%s", o, usage); return 2; }
        const char *v = argv[++i];
        if (!strcmp(o, "-o")) out = v;
        else if (!strcmp(o, "--config")) cfgpath = v;
        else if (!strcmp(o, "--layers")) layers_s = v;
        else {
            char *end; errno = 0;
            unsigned long long x = strtoull(v, &end, 10);
            int isvocab = !strcmp(o, "--twin-vocab");
            if (errno || *end || end == v || v[0] == '-' || (isvocab && (x < 1 || x > DSV4_MAX_VOCAB))) {
                fprintf(stderr, "make_flash_ckpt: option %s: '%s' is not an integer%s\n", o, v,
                        isvocab ? " in [1, 16777216]" : "");
                return 2;
            }
            if (isvocab) twin_vocab = (int)x; else seed = x;
        }
    }
    if (!out) { fprintf(stderr, "make_flash_ckpt: -o DIR is required\n%s", usage); return 2; }
    int sel[DSV4_MAX_LAYERS];
    int nsel = parse_layers(layers_s, sel, DSV4_MAX_LAYERS - 1);
    if (nsel < 1) { fprintf(stderr, "make_flash_ckpt: --layers '%s' is not a list of layer indices\n", layers_s); return 2; }

    char err[ERRLEN];
    dsv4_config real;
    if (dsv4_config_load(&real, cfgpath, err, sizeof err)) { fprintf(stderr, "make_flash_ckpt: %s\n", err); return 1; }
    int n_hash = 0;
    for (int i = 0; i < nsel; i++) {
        if (sel[i] >= real.n_layers) {
            fprintf(stderr, "make_flash_ckpt: --layers: layer %d does not exist (%s has %d layers)\n", sel[i], cfgpath,
                    real.n_layers);
            return 2;
        }
        int h = sel[i] < real.n_hash_layers;
        if (h && i != n_hash) {
            fprintf(stderr, "make_flash_ckpt: --layers: hash-routed layer %d must come before the others\n", sel[i]);
            return 2;
        }
        n_hash += h;
    }
    char *text = NULL;
    size_t tlen;
    if (dsv4_read_file(cfgpath, &text, &tlen, err, sizeof err)) { fprintf(stderr, "make_flash_ckpt: %s\n", err); return 1; }
    cJSON *cfg = cJSON_Parse(text);
    free(text);
    if (!cJSON_IsObject(cfg)) { fprintf(stderr, "make_flash_ckpt: %s: not a JSON object\n", cfgpath); cJSON_Delete(cfg); return 1; }

    int rc = 1;
    char *dfull = pjoin(out, "full"), *dtwin = pjoin(out, "twin"), *p = NULL, *q = NULL;
    dsv4_tensor_spec *ts = NULL, *tt = NULL;
    float *lf = NULL, *lt = NULL;
    /* the kept layers: their ratios (+ the real MTP entries) */
    cJSON *cr = cJSON_CreateArray();
    for (int i = 0; i < nsel; i++) cJSON_AddItemToArray(cr, cJSON_CreateNumber(real.compress_ratios[sel[i]]));
    int n_mtp = mtp ? real.n_mtp_layers : 0;
    for (int i = 0; i < n_mtp; i++) cJSON_AddItemToArray(cr, cJSON_CreateNumber(real.compress_ratios[real.n_layers + i]));
    cJSON_ReplaceItemInObjectCaseSensitive(cfg, "compress_ratios", cr);
    set_num(cfg, "num_hidden_layers", nsel);
    set_num(cfg, "num_hash_layers", n_hash);
    set_num(cfg, "num_nextn_predict_layers", n_mtp);
    if (tiny) {
        static const struct { const char *k; int v; } T[] = {
            {"hidden_size", 256}, {"num_attention_heads", 4}, {"head_dim", 128}, {"q_lora_rank", 128},
            {"o_groups", 2}, {"o_lora_rank", 128}, {"n_routed_experts", 16}, {"num_experts_per_tok", 2},
            {"moe_intermediate_size", 128}, {"index_n_heads", 4}, {"index_head_dim", 128}, {"index_topk", 8},
            {"vocab_size", 2048}};
        for (size_t i = 0; i < sizeof T / sizeof T[0]; i++) set_num(cfg, T[i].k, T[i].v);
    }
    if (!twin_vocab) twin_vocab = tiny ? 256 : 1024;
    cJSON *vj = cJSON_GetObjectItemCaseSensitive(cfg, "vocab_size");
    int vocab = cJSON_IsNumber(vj) ? (int)vj->valuedouble : 0;
    if (twin_vocab > vocab) {
        fprintf(stderr, "make_flash_ckpt: --twin-vocab %d exceeds the model's vocab_size %d\n", twin_vocab, vocab);
        rc = 2;
        goto done;
    }
    if (!dfull || !dtwin) { fprintf(stderr, "make_flash_ckpt: out of memory\n"); goto done; }
    if (mkdir_p(out, err) || mkdir_p(dfull, err) || mkdir_p(dtwin, err)) { fprintf(stderr, "make_flash_ckpt: %s\n", err); goto done; }
    p = pjoin(out, "complete.txt");   /* an interrupted rewrite must not look complete */
    if (!p || (unlink(p) != 0 && errno != ENOENT)) { fprintf(stderr, "make_flash_ckpt: cannot remove %s/complete.txt\n", out); goto done; }
    free(p); p = NULL;
    fp8_tab_init();

    dsv4_config cf, ct;
    int nf, nt;
    if (write_config(cfg, dfull, vocab, &cf, err) || write_config(cfg, dtwin, twin_vocab, &ct, err) ||
        dsv4_tensor_list(&cf, 0, &ts, &nf, err, sizeof err) || dsv4_tensor_list(&ct, 0, &tt, &nt, err, sizeof err)) {
        fprintf(stderr, "make_flash_ckpt: %s\n", err);
        goto done;
    }
    /* the twin's layer shard must be the full one's, tensor for tensor */
    {
        int a = 0, b = 0;
        for (;;) {
            while (a < nf && in_vocab_shard(&ts[a])) a++;
            while (b < nt && in_vocab_shard(&tt[b])) b++;
            if (a == nf || b == nt) break;
            if (strcmp(ts[a].name, tt[b].name) || ts[a].ndim != tt[b].ndim ||
                memcmp(ts[a].shape, tt[b].shape, sizeof ts[a].shape)) break;
            a++; b++;
        }
        if (a != nf || b != nt) { fprintf(stderr, "make_flash_ckpt: internal: twin layer tensors differ\n"); goto done; }
    }
    double need = 0;
    for (int i = 0; i < nf; i++) need += (double)dsv4_tensor_spec_numel(&ts[i]) * st_dtype_size(ts[i].dtype);
    struct statvfs sv;
    if (statvfs(out, &sv) == 0 && (double)sv.f_bavail * sv.f_frsize < need + 1e9) {
        fprintf(stderr, "make_flash_ckpt: %s has %.1f GB free, the checkpoint needs %.1f GB\n", out,
                (double)sv.f_bavail * sv.f_frsize / 1e9, need / 1e9);
        goto done;
    }
    fprintf(stderr, "make_flash_ckpt: %d layers (real layers %s; compress ratios", nsel, layers_s);
    for (int i = 0; i < cf.n_ratios; i++) fprintf(stderr, " %d", cf.compress_ratios[i]);
    fprintf(stderr, "; %d hash-routed; MTP %d), %d tensors, %.2f GB -> %s\n", n_hash, n_mtp, nf, need / 1e9, out);

    double b0 = 0, b1 = 0, bt = 0;
    p = pjoin(dfull, SHARD_LAYERS);
    q = pjoin(dtwin, SHARD_LAYERS);
    if (!p || !q) { fprintf(stderr, "make_flash_ckpt: out of memory\n"); goto done; }
    if (write_shard(p, ts, nf, 1, seed, cf.n_routed_experts, &b1, err)) { fprintf(stderr, "make_flash_ckpt: %s\n", err); goto done; }
    if (unlink(q) != 0 && errno != ENOENT) { fprintf(stderr, "make_flash_ckpt: cannot replace %s: %s\n", q, strerror(errno)); goto done; }
    if (link(p, q) != 0) {
        char target[64];
        snprintf(target, sizeof target, "../full/%s", SHARD_LAYERS);
        if (symlink(target, q) != 0) {
            fprintf(stderr, "make_flash_ckpt: cannot link %s to %s: %s\n", q, p, strerror(errno));
            goto done;
        }
        fprintf(stderr, "  %s: symbolic link (no hard links here)\n", q);
    } else {
        fprintf(stderr, "  %s: hard link\n", q);
    }
    free(p); free(q); p = q = NULL;
    p = pjoin(dfull, SHARD_VOCAB);
    q = pjoin(dtwin, SHARD_VOCAB);
    if (!p || !q || write_shard(p, ts, nf, 0, seed, cf.n_routed_experts, &b0, err) ||
        write_shard(q, tt, nt, 0, seed, ct.n_routed_experts, &bt, err) || write_index(dfull, ts, nf, b0 + b1, err) ||
        write_index(dtwin, tt, nt, bt + b1, err)) {
        fprintf(stderr, "make_flash_ckpt: %s\n", p && q ? err : "out of memory");
        goto done;
    }
    if (check) {
        int32_t toks[5] = {5, 17, 300, 2, 42};
        int vf = 0, vt = 0;
        for (int i = 0; i < 5; i++) toks[i] %= twin_vocab;
        if (check_model(dfull, toks, &lf, &vf, err) || check_model(dtwin, toks, &lt, &vt, err)) {
            fprintf(stderr, "make_flash_ckpt: %s\n", err);
            goto done;
        }
        if (memcmp(lf, lt, sizeof(float) * (size_t)vt) != 0) {
            fprintf(stderr, "make_flash_ckpt: check: the twin's logits differ from the full model's first %d\n", vt);
            goto done;
        }
        fprintf(stderr, "  check: the twin's %d logits equal the full model's first %d bit for bit\n", vt, vt);
    }
    {
        char summary[1024];
        int k = snprintf(summary, sizeof summary,
                         "make_flash_ckpt --config %s --layers %s%s --twin-vocab %d --seed %llu%s\n"
                         "full: %.0f bytes (layers shard %.0f, vocab shard %.0f); twin vocab shard %.0f\n"
                         "compress_ratios:", cfgpath, layers_s, mtp ? " --mtp" : "", twin_vocab,
                         (unsigned long long)seed, tiny ? " --tiny" : "", b0 + b1, b1, b0, bt);
        for (int i = 0; i < cf.n_ratios && k < (int)sizeof summary - 16; i++)
            k += snprintf(summary + k, sizeof summary - (size_t)k, " %d", cf.compress_ratios[i]);
        snprintf(summary + k, sizeof summary - (size_t)k, "; num_hash_layers %d\n", n_hash);
        free(p);
        p = pjoin(out, "complete.txt");
        if (!p || write_text(p, summary, err)) { fprintf(stderr, "make_flash_ckpt: %s\n", p ? err : "out of memory"); goto done; }
    }
    fprintf(stderr, "make_flash_ckpt: done: %s/full and %s/twin\n", out, out);
    rc = 0;
done:
    free(lf); free(lt);
    dsv4_tensor_list_free(ts);
    dsv4_tensor_list_free(tt);
    free(p); free(q); free(dfull); free(dtwin);
    cJSON_Delete(cfg);
    return rc;
}
