/* test_vision.c — image decoding and pre-processing (include/dsv4_vision.h) against goldens:
 *  - tests/golden/vision/resample.json: Pillow's BICUBIC resize on 320 size pairs (1x1, 1x4000, 4000x1, up
 *    and down, one axis at a time), synthetic images (tools/vision/synth.py = synth_pixel below): bit-exact (sha256
 *    of the pixels; full pixels for the small ones);
 *  - normalize.json: the 256 normalised BF16 values (torch), bit-exact;
 *  - decode.json + the files in decode/: Pillow's Image.open().convert("RGB") of 31 JPEG/PNG files of every
 *    kind, bit-exact;
 *  - preprocess.json: the official image_processor.py load_image() run on CPU (tools/vision/check_official.py):
 *    plan and sha256 of the BF16 patch tensor, bit-exact;
 *  - the resize plan on the spec's examples, and bad input: every prefix of a PNG and a JPEG, corrupt bytes,
 *    zero and 100,000 x 100,000 headers, not an image, missing file — a clear error naming the input, no crash.
 * Tolerance: none anywhere (the reference is integer / exactly rounded arithmetic). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dsv4_vision.h"
#include "sha256.h"
#include "testlib.h"

#define GOLD "tests/golden/vision"

/* tools/vision/synth.py, pixel byte (x, y, c) */
static uint64_t splitmix64(uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint8_t *synth(int w, int h, int kind, int seed) {
    uint8_t *p = malloc((size_t)w * h * 3);
    uint64_t base = (uint64_t)seed * 0x9E3779B97F4A7C15ull;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                uint64_t i = ((uint64_t)y * w + x) * 3 + c, hs = splitmix64(base + i);
                int v;
                if (kind == 0) v = (int)(hs & 255);
                else if (kind == 1) v = c == 0 ? x * 255 / (w > 1 ? w - 1 : 1)
                                      : c == 1 ? y * 255 / (h > 1 ? h - 1 : 1)
                                               : (int)((3 * x + 5 * y + (int)(hs & 31)) & 255);
                else if (kind == 2) {
                    int s = 1 + seed % 5, on = ((x / s) + (y / s)) & 1;
                    v = c == 0 ? 255 * on : c == 1 ? 255 * (1 - on) : (hs & 128) ? 255 : 0;
                } else v = (seed * (c + 1) * 37) & 255;
                p[((size_t)y * w + x) * 3 + c] = (uint8_t)v;
            }
    return p;
}

static cJSON *load_json(const char *path) {
    size_t n;
    char *t = test_read_file(path, &n);
    cJSON *j = t ? cJSON_Parse(t) : NULL;
    free(t);
    CHECK(j != NULL, "%s: missing or invalid JSON", path);
    return j;
}

static int jint(const cJSON *a, int i) { return cJSON_GetArrayItem(a, i)->valueint; }

static void test_resample(void) {
    cJSON *j = load_json(GOLD "/resample.json");
    if (!j) return;
    const cJSON *cases = cJSON_GetObjectItem(j, "cases"), *c;
    int n = 0, bad = 0;
    char err[256];
    cJSON_ArrayForEach(c, cases) {
        const cJSON *src = cJSON_GetObjectItem(c, "src"), *dst = cJSON_GetObjectItem(c, "dst");
        int sw = jint(src, 0), sh = jint(src, 1), dw = jint(dst, 0), dh = jint(dst, 1);
        int kind = cJSON_GetObjectItem(c, "kind")->valueint, seed = cJSON_GetObjectItem(c, "seed")->valueint;
        uint8_t *in = synth(sw, sh, kind, seed), *out = malloc((size_t)dw * dh * 3);
        int rc = dsv4_image_resize_bicubic(in, sw, sh, out, dw, dh, err, sizeof err);
        char hex[65] = "";
        if (rc == 0) sha256_of(out, (size_t)dw * dh * 3, hex);
        const char *want = cJSON_GetObjectItem(c, "sha256")->valuestring;
        int ok = rc == 0 && strcmp(hex, want) == 0;
        const cJSON *px = cJSON_GetObjectItem(c, "pixels");
        if (rc == 0 && px) {
            size_t np = (size_t)dw * dh * 3;
            for (size_t i = 0; i < np; i++) {
                unsigned v;
                sscanf(px->valuestring + 2 * i, "%2x", &v);
                if (v != out[i]) {
                    printf("  %dx%d -> %dx%d: byte %zu (pixel %zu, channel %zu) = %u, Pillow %u\n", sw, sh, dw, dh,
                           i, i / 3, i % 3, out[i], v);
                    ok = 0;
                    break;
                }
            }
        }
        EXPECT(ok, "resample %dx%d (kind %d seed %d) -> %dx%d: %s", sw, sh, kind, seed, dw, dh,
               rc ? err : "pixels differ from Pillow's");
        bad += !ok;
        n++;
        free(in);
        free(out);
    }
    printf("resample: %d cases, %d bit-exact with Pillow\n", n, n - bad);
    cJSON_Delete(j);
}

static void test_normalize(void) {
    cJSON *j = load_json(GOLD "/normalize.json");
    if (!j) return;
    const cJSON *a = cJSON_GetObjectItem(j, "bf16");
    CHECK(cJSON_GetArraySize(a) == 256, "normalize.json: 256 values");
    int bad = 0;
    for (int v = 0; v < 256 && v < cJSON_GetArraySize(a); v++) {
        float f = dsv4_vision_normalize((uint8_t)v);
        uint16_t got = dsv4_f32_to_bf16(f), want = (uint16_t)jint(a, v);
        if (got != want || dsv4_round_bf16(f) != f) {
            printf("  normalize(%d) = %04x, torch %04x\n", v, got, want);
            bad++;
        }
    }
    CHECK(bad == 0, "normalize: %d of 256 byte values differ from torch", bad);
    CHECK(dsv4_vision_normalize(127) == -0.003936767578125f, "the padding value 127 -> -(1 + 1/128) / 256");
    cJSON_Delete(j);
}

static void test_decode(void) {
    cJSON *j = load_json(GOLD "/decode.json");
    if (!j) return;
    const cJSON *c;
    char err[512], path[512], hex[65];
    int n = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(j, "cases")) {
        const char *f = cJSON_GetObjectItem(c, "file")->valuestring;
        snprintf(path, sizeof path, GOLD "/decode/%s", f);
        dsv4_image *im;
        int rc = dsv4_image_from_file(&im, path, err, sizeof err);
        EXPECT(rc == 0, "decode %s: %s", f, err);
        if (rc) continue;
        int w = dsv4_image_width(im), h = dsv4_image_height(im);
        sha256_of(dsv4_image_pixels(im), (size_t)w * h * 3, hex);
        EXPECT(w == cJSON_GetObjectItem(c, "width")->valueint && h == cJSON_GetObjectItem(c, "height")->valueint &&
                   strcmp(hex, cJSON_GetObjectItem(c, "sha256")->valuestring) == 0,
               "decode %s (Pillow mode %s): %dx%d, pixels differ from Pillow's convert('RGB')", f,
               cJSON_GetObjectItem(c, "mode")->valuestring, w, h);
        EXPECT(strcmp(dsv4_image_format(im), strstr(f, ".png") ? "png" : "jpeg") == 0, "decode %s: format %s", f,
               dsv4_image_format(im));
        dsv4_image_free(im);
        n++;
    }
    printf("decode: %d files equal to Pillow\n", n);
    cJSON_Delete(j);
}

/* The pipeline against the official image_processor.py (preprocess.json). */
static void test_preprocess(void) {
    cJSON *j = load_json(GOLD "/preprocess.json");
    if (!j) return;
    const cJSON *c;
    char err[512], hex[65], path[512];
    dsv4_vision_params p = dsv4_vision_params_v41();
    int n = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(j, "cases")) {
        const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
        const cJSON *sy = cJSON_GetObjectItem(c, "synth"), *file = cJSON_GetObjectItem(c, "file");
        dsv4_image *im = NULL;
        if (sy) {
            int w = jint(sy, 0), h = jint(sy, 1);
            uint8_t *px = synth(w, h, jint(sy, 2), jint(sy, 3));
            dsv4_image_from_rgb(&im, w, h, px, err, sizeof err);
            free(px);
        } else {
            snprintf(path, sizeof path, GOLD "/%s", file->valuestring);
            dsv4_image_from_file(&im, path, err, sizeof err);
        }
        EXPECT(im != NULL, "preprocess %s: %s", name, err);
        if (!im) continue;
        dsv4_image_plan pl;
        const cJSON *e = cJSON_GetObjectItem(c, "error");
        if (e) {
            int rc = dsv4_image_preprocess(im, &p, &pl, NULL, 0, err, sizeof err);
            EXPECT(rc == -1 && strstr(err, "too elongated"), "preprocess %s: the reference fails (%s); we: %s",
                   name, e->valuestring, rc ? err : "accepted");
            dsv4_image_free(im);
            continue;
        }
        int rc = dsv4_image_preprocess(im, &p, &pl, NULL, 0, err, sizeof err);
        EXPECT(rc == 0, "preprocess %s: plan: %s", name, err);
        if (rc) { dsv4_image_free(im); continue; }
        const cJSON *g = cJSON_GetObjectItem(c, "grid"); /* n_vit_h, n_vit_w, n_llm_h, n_llm_w */
        EXPECT(pl.n_vit_h == jint(g, 0) && pl.n_vit_w == jint(g, 1) && pl.n_llm_h == jint(g, 2) &&
                   pl.n_llm_w == jint(g, 3) && pl.n_tokens == cJSON_GetObjectItem(c, "n_tokens")->valueint,
               "preprocess %s: grid %d %d %d %d, reference %d %d %d %d", name, pl.n_vit_h, pl.n_vit_w, pl.n_llm_h,
               pl.n_llm_w, jint(g, 0), jint(g, 1), jint(g, 2), jint(g, 3));
        size_t nf = (size_t)pl.n_vit_h * pl.n_vit_w * 3 * 14 * 14;
        float *pt = malloc(nf * sizeof *pt);
        uint16_t *bf = malloc(nf * 2);
        rc = dsv4_image_preprocess(im, &p, &pl, pt, nf, err, sizeof err);
        EXPECT(rc == 0, "preprocess %s: %s", name, err);
        if (rc == 0) {
            for (size_t i = 0; i < nf; i++) {
                uint16_t b = dsv4_f32_to_bf16(pt[i]);
                memcpy((uint8_t *)bf + 2 * i, &b, 2); /* little-endian hosts: torch's byte order */
            }
            sha256_of(bf, nf * 2, hex);
            EXPECT(strcmp(hex, cJSON_GetObjectItem(c, "sha256")->valuestring) == 0,
                   "preprocess %s: the patch tensor differs from the official image_processor.py's", name);
            n++;
        }
        free(pt);
        free(bf);
        dsv4_image_free(im);
    }
    printf("preprocess: %d images equal to the official image_processor.py\n", n);
    cJSON_Delete(j);
}

static void test_plan(void) {
    dsv4_vision_params p = dsv4_vision_params_v41();
    dsv4_image_plan pl;
    char err[256];
    CHECK(dsv4_image_plan_grid(544, 544, &p, &pl, err, sizeof err) == 0 && pl.width == 546 && pl.height == 546 &&
              pl.n_vit_h == 39 && pl.n_llm_w == 13 && pl.n_tokens == 184,
          "544x544 -> 546x546, 39x39 patches, 13x13 cells, 184 tokens (got %dx%d, %d tokens)", pl.width, pl.height,
          pl.n_tokens);
    CHECK(dsv4_image_plan_grid(4000, 4000, &p, &pl, err, sizeof err) == 0 && pl.width == 1302 &&
              pl.n_vit_w == 93 && pl.n_llm_h == 31 && pl.n_tokens == 994,
          "4000x4000 -> 1302 px, 93x93, 31x31, 994 tokens (got %d, %d tokens)", pl.width, pl.n_tokens);
    CHECK(dsv4_image_plan_grid(1, 4000, &p, &pl, err, sizeof err) == 0 && pl.width == 42 && pl.height == 21462 &&
              pl.resized_w == 5 && pl.offset_x == 18 && pl.n_tokens <= 1024,
          "1x4000 -> 42x21462, resized 5 wide at x = round(18.5) = 18 (got %dx%d, %d at %d)", pl.width, pl.height,
          pl.resized_w, pl.offset_x);
    CHECK(dsv4_image_plan_grid(4000, 1, &p, &pl, err, sizeof err) == 0 && pl.width == 34412 && pl.height == 14 &&
              pl.resized_h == 9 && pl.offset_y == 2 && pl.n_tokens == 823,
          "4000x1 -> 34412x14, resized 9 high at y = round(2.5) = 2, 823 tokens (got %dx%d, %d at %d, %d)", pl.width,
          pl.height, pl.resized_h, pl.offset_y, pl.n_tokens);
    CHECK(dsv4_image_plan_grid(100000, 1, &p, &pl, err, sizeof err) == -1 && strstr(err, "100000 x 1") &&
              strstr(err, "too elongated"),
          "100000x1: the short side rounds to 0: %s", err);
    /* every token count of a sweep stays within the cap and the grids agree with the box */
    int bad = 0;
    for (int w = 1; w <= 3000; w += 37)
        for (int h = 1; h <= 3000; h += 53) {
            if (dsv4_image_plan_grid(w, h, &p, &pl, err, sizeof err)) continue;
            if (pl.n_tokens > 1024 || pl.width % 14 || pl.height % 14 || pl.n_vit_w * 14 != pl.width ||
                pl.resized_w > pl.width || pl.resized_h > pl.height ||
                (pl.resized_w != pl.width && pl.resized_h != pl.height))
                bad++;
        }
    CHECK(bad == 0, "plan sweep: %d plans break an invariant", bad);
    dsv4_vision_params q = p;
    q.patch_size = 0;
    CHECK(dsv4_image_plan_grid(10, 10, &q, &pl, err, sizeof err) == -1 && strstr(err, "patch_size 0"),
          "patch_size 0 refused: %s", err);
}

/* ---------------------------------------------------------------- bad input */

static uint32_t crc32_(const uint8_t *p, size_t n) {
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
    }
    return ~c;
}

static void put32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

/* decoding `len` bytes must fail with a message that starts with the name and contains `want` (if non-NULL) */
static int refuses(const uint8_t *d, size_t len, const char *name, const char *want, char *err, size_t errlen) {
    dsv4_image *im;
    int rc = dsv4_image_from_bytes(&im, d, len, name, err, errlen);
    if (rc == 0) { dsv4_image_free(im); snprintf(err, errlen, "accepted"); return 0; }
    return im == NULL && strncmp(err, name, strlen(name)) == 0 && !strchr(err, '\n') && (!want || strstr(err, want));
}

static void test_bad_png(void) {
    size_t n;
    char err[512];
    uint8_t *png = (uint8_t *)test_read_file(GOLD "/decode/rgba8.png", &n);
    if (!png) { CHECK(0, "rgba8.png missing"); return; }
    /* every prefix: accepted exactly when only (part of) the 12-byte IEND chunk is missing; a cut in the last
     * IDAT's Adler-32 or CRC is refused (Pillow accepts those: docs/vision.md) */
    int bad = 0, ok_tail = 0;
    for (size_t k = 0; k < n; k++) {
        dsv4_image *im;
        int rc = dsv4_image_from_bytes(&im, png, k, "cut.png", err, sizeof err);
        if (rc == 0) dsv4_image_free(im);
        if (k >= n - 12) {
            ok_tail += rc == 0;
            continue;
        }
        if (rc == 0 || strncmp(err, "cut.png: ", 9) != 0 ||
            !(strstr(err, "truncated") || strstr(err, "not a JPEG or PNG") || strstr(err, "empty"))) {
            if (bad++ < 3) printf("  prefix %zu of %zu: %s\n", k, n, rc ? err : "accepted");
        }
    }
    CHECK(bad == 0, "PNG: %d of %zu prefixes not refused as truncated", bad, n - 12);
    CHECK(ok_tail == 12, "PNG without (part of) IEND accepted: %d of 12", ok_tail);
    CHECK(refuses(png, 20, "p.png", "truncated PNG", err, sizeof err), "PNG cut in IHDR: %s", err);
    /* CRCs as Pillow: a wrong CRC before IDAT is refused, a wrong IDAT CRC is not (same pixels) */
    uint8_t *c = malloc(n);
    memcpy(c, png, n);
    c[29] ^= 0x55; /* IHDR's CRC */
    CHECK(refuses(c, n, "bad.png", "corrupt PNG (bad CRC in the IHDR chunk at byte 8)", err, sizeof err),
          "PNG bad IHDR CRC: %s", err);
    memcpy(c, png, n);
    c[n - 13] ^= 0x55; /* the last IDAT's CRC, just before IEND */
    {
        dsv4_image *a = NULL, *b = NULL;
        CHECK(dsv4_image_from_bytes(&a, c, n, "idatcrc.png", err, sizeof err) == 0 &&
                  dsv4_image_from_bytes(&b, png, n, "ok.png", err, sizeof err) == 0 &&
                  memcmp(dsv4_image_pixels(a), dsv4_image_pixels(b), 37 * 23 * 3) == 0,
              "PNG with a wrong IDAT CRC decoded as Pillow does: %s", err);
        dsv4_image_free(a);
        dsv4_image_free(b);
    }
    /* random corruption anywhere after the signature: never a crash; errors name the input */
    uint64_t s = 1;
    int crashes_none = 1;
    for (int t = 0; t < 300; t++) {
        memcpy(c, png, n);
        for (int k = 0; k < 4; k++) { s = splitmix64(s); c[8 + s % (n - 8)] ^= (uint8_t)(s >> 32); }
        dsv4_image *im;
        if (dsv4_image_from_bytes(&im, c, n, "fuzz.png", err, sizeof err) == 0) dsv4_image_free(im);
        else if (strncmp(err, "fuzz.png: ", 10)) crashes_none = 0;
    }
    CHECK(crashes_none, "PNG random corruption: every error names the input");
    /* IHDR with width 0, and 100,000 x 100,000 (valid CRC): refused from the header */
    memcpy(c, png, n);
    put32(c + 16, 0);
    put32(c + 29, crc32_(c + 12, 17));
    CHECK(refuses(c, n, "zero.png", "zero width or height", err, sizeof err), "PNG width 0: %s", err);
    memcpy(c, png, n);
    put32(c + 16, 100000);
    put32(c + 20, 100000);
    put32(c + 29, crc32_(c + 12, 17));
    CHECK(refuses(c, n, "huge.png", "100000 x 100000 pixels, more than the 178956970-pixel limit", err, sizeof err),
          "PNG 100000x100000: %s", err);
    /* fuzz_image_png finding: two sides near 2^32 overflowed the int64 product in the header check (UBSan) */
    memcpy(c, png, n);
    put32(c + 16, 0xf8ff9f91u);
    put32(c + 20, 0x89811900u);
    put32(c + 29, crc32_(c + 12, 17));
    CHECK(refuses(c, n, "ovf.png", "4177502097 x 2306939136 pixels, more than the", err, sizeof err),
          "PNG 4177502097 x 2306939136: %s", err);
    memcpy(c, png, n);
    put32(c + 16, 0x7fffffffu);
    put32(c + 20, 1);
    put32(c + 29, crc32_(c + 12, 17));
    CHECK(refuses(c, n, "wide.png", "pixel limit", err, sizeof err), "PNG 2^31-1 x 1: %s", err);
    /* fuzz_image_png finding: an iTXt chunk declaring ~1.88e9 bytes in a 99-byte file made libpng allocate
     * them (1.9 GB) before finding the data missing; now refused from the chunk length */
    memcpy(c, png, 33);
    memcpy(c + 33, "\x70\x48\x2d\x73iTXt", 8);
    CHECK(refuses(c, 33 + 8 + 40, "itxt.png", "truncated PNG (the iTXt chunk at byte 33 declares 1883778419 bytes, 40 "
                  "remain)", err, sizeof err), "PNG iTXt of 1.9 GB declared: %s", err);
    /* a caller's lower limit (dsv4_image_from_bytes_max): the 37 x 23 image passes 851 pixels, not 850 */
    dsv4_image *im;
    CHECK(dsv4_image_from_bytes_max(&im, png, n, "lim.png", 851, err, sizeof err) == 0, "851-pixel limit: %s", err);
    dsv4_image_free(im);
    CHECK(dsv4_image_from_bytes_max(&im, png, n, "lim.png", 850, err, sizeof err) == -1 && im == NULL &&
              strstr(err, "lim.png: PNG image is 37 x 23 pixels, more than the 850-pixel limit"), "850-pixel limit: %s",
          err);
    free(c);
    free(png);
}

static size_t find_sof(const uint8_t *d, size_t n) {
    for (size_t i = 2; i + 9 < n; i++)
        if (d[i] == 0xff && (d[i + 1] == 0xc0 || d[i + 1] == 0xc2)) return i;
    return 0;
}

static void test_bad_jpeg(void) {
    size_t n;
    char err[512];
    /* every prefix of a baseline and a progressive JPEG is refused, even the one that only lacks the EOI marker
     * (Pillow: "image file is truncated" for each: libjpeg reads ahead of the last rows) */
    int bad = 0;
    size_t total = 0;
    for (int f = 0; f < 2; f++) {
        uint8_t *d = (uint8_t *)test_read_file(f ? GOLD "/decode/progressive.jpg" : GOLD "/decode/rgb420.jpg", &n);
        if (!d) { CHECK(0, "JPEG golden missing"); return; }
        for (size_t k = 0; k < n; k++, total++) {
            dsv4_image *im;
            int rc = dsv4_image_from_bytes(&im, d, k, "cut.jpg", err, sizeof err);
            if (rc == 0) dsv4_image_free(im);
            if (rc == 0 || strncmp(err, "cut.jpg: ", 9) != 0 || (k >= 3 && !strstr(err, "truncated JPEG") &&
                                                                 !strstr(err, "corrupt or unsupported JPEG"))) {
                if (bad++ < 3) printf("  prefix %zu of %zu: %s\n", k, n, rc ? err : "accepted");
            }
        }
        free(d);
    }
    CHECK(bad == 0, "JPEG: %d of %zu prefixes not refused", bad, total);
    uint8_t *jpg = (uint8_t *)test_read_file(GOLD "/decode/rgb420.jpg", &n);
    if (!jpg) return;
    CHECK(refuses(jpg, n / 2, "half.jpg", "truncated JPEG", err, sizeof err), "JPEG cut in the scan: %s", err);
    uint8_t *c = malloc(n);
    size_t sof = find_sof(jpg, n);
    CHECK(sof > 0, "SOF marker found");
    memcpy(c, jpg, n);
    c[sof + 5] = c[sof + 6] = 0; /* height 0 */
    CHECK(refuses(c, n, "zero.jpg", NULL, err, sizeof err), "JPEG height 0: %s", err);
    memcpy(c, jpg, n);
    c[sof + 5] = c[sof + 7] = 0xea; /* 60000 x 60000 */
    c[sof + 6] = c[sof + 8] = 0x60;
    CHECK(refuses(c, n, "huge.jpg", "60000 x 60000 pixels, more than the", err, sizeof err), "JPEG 60000^2: %s", err);
    c[sof + 5] = c[sof + 6] = c[sof + 7] = c[sof + 8] = 0xff; /* 65535 x 65535: libjpeg's own limit first */
    CHECK(refuses(c, n, "huge.jpg", "65500", err, sizeof err), "JPEG 65535^2: %s", err);
    /* fuzz_image_jpeg finding: a 540-byte JPEG declaring 15616 x 9472 pixels decoded "successfully" (grey rows
     * after a premature marker) because the trailing markers were never read; Pillow calls
     * jpeg_finish_decompress and refuses it. Same here, shown on a second SOF after the scan (Pillow: "broken data
     * stream"), while a comment after the scan stays harmless. */
    {
        size_t sl = (size_t)(jpg[sof + 2] << 8 | jpg[sof + 3]) + 2;
        uint8_t *x = malloc(n + sl + 7);
        memcpy(x, jpg, n - 2);
        memcpy(x + n - 2, jpg + sof, sl);
        x[n - 2 + sl] = 0xff;
        x[n - 1 + sl] = 0xd9;
        CHECK(refuses(x, n + sl, "sof2.jpg", "two SOF markers", err, sizeof err), "second SOF after the scan: %s", err);
        memcpy(x + n - 2, "\xff\xfe\x00\x05" "abc\xff\xd9", 9);
        dsv4_image *a, *b;
        CHECK(dsv4_image_from_bytes(&a, x, n + 7, "com.jpg", err, sizeof err) == 0, "comment after the scan: %s", err);
        CHECK(dsv4_image_from_bytes(&b, jpg, n, "plain.jpg", err, sizeof err) == 0, "plain: %s", err);
        CHECK(a && b && memcmp(dsv4_image_pixels(a), dsv4_image_pixels(b), 61 * 45 * 3) == 0,
              "comment after the scan: same pixels");
        dsv4_image_free(a);
        dsv4_image_free(b);
        free(x);
    }
    {
        dsv4_image *im;
        CHECK(dsv4_image_from_bytes_max(&im, jpg, n, "lim.jpg", 61 * 45 - 1, err, sizeof err) == -1 &&
                  strstr(err, "61 x 45 pixels, more than the 2744-pixel limit"), "JPEG lower limit: %s", err);
    }
    uint64_t s = 7;
    int named = 1;
    for (int t = 0; t < 300; t++) {
        memcpy(c, jpg, n);
        for (int k = 0; k < 4; k++) { s = splitmix64(s); c[3 + s % (n - 3)] ^= (uint8_t)(s >> 32); }
        dsv4_image *im;
        if (dsv4_image_from_bytes(&im, c, n, "fuzz.jpg", err, sizeof err) == 0) dsv4_image_free(im);
        else if (strncmp(err, "fuzz.jpg: ", 10)) named = 0;
    }
    CHECK(named, "JPEG random corruption: every error names the input");
    free(c);
    free(jpg);
}

static void test_not_image(void) {
    char err[512];
    const char *txt = "hello, this is text\n";
    CHECK(refuses((const uint8_t *)txt, strlen(txt), "notes.txt",
                  "not a JPEG or PNG image (it starts with bytes 68 65 6c", err, sizeof err), "text: %s", err);
    CHECK(refuses((const uint8_t *)"", 0, "empty.png", "empty", err, sizeof err), "empty: %s", err);
    const uint8_t gif[] = "GIF89a\x01\x00\x01\x00";
    CHECK(refuses(gif, 10, "a.gif", "not a JPEG or PNG", err, sizeof err), "GIF: %s", err);
    dsv4_image *im;
    CHECK(dsv4_image_from_file(&im, GOLD "/no-such-file.png", err, sizeof err) == -1 &&
              strstr(err, "no-such-file.png") && strstr(err, "cannot open"), "missing file: %s", err);
    CHECK(dsv4_image_from_file(&im, GOLD, err, sizeof err) == -1 && strstr(err, "directory"), "directory: %s", err);
    CHECK(dsv4_image_from_file(&im, "tests/test_vision.c", err, sizeof err) == -1 &&
              strstr(err, "tests/test_vision.c: not a JPEG or PNG"), "source file: %s", err);
    uint8_t px[3] = {1, 2, 3};
    CHECK(dsv4_image_from_rgb(&im, 0, 5, px, err, sizeof err) == -1 && strstr(err, "zero"), "rgb 0x5: %s", err);
    CHECK(dsv4_image_from_rgb(&im, 100000, 100000, px, err, sizeof err) == -1 && strstr(err, "limit"),
          "rgb 100000^2 refused before reading: %s", err);
    CHECK(dsv4_image_resize_bicubic(px, 1, 1, px, 0, 1, err, sizeof err) == -1 && strstr(err, "> 0"),
          "resize to width 0: %s", err);
    /* a patch buffer too small */
    CHECK(dsv4_image_from_rgb(&im, 1, 1, px, err, sizeof err) == 0, "1x1 image");
    dsv4_vision_params p = dsv4_vision_params_v41();
    dsv4_image_plan pl;
    float f[4];
    CHECK(dsv4_image_preprocess(im, &p, &pl, f, 4, err, sizeof err) == -1 && strstr(err, "needed"),
          "small patch buffer: %s", err);
    dsv4_image_free(im);
}

int main(void) {
    test_resample();
    test_normalize();
    test_decode();
    test_plan();
    test_preprocess();
    test_bad_png();
    test_bad_jpeg();
    test_not_image();
    return test_done();
}
