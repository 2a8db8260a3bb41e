/* tests/fuzz/fuzz_image.h — the body of the image-decoder harnesses (fuzz_image_png.c, fuzz_image_jpeg.c): the
 * decoder (dsv4_image_from_bytes, src/vision/image.c) and, on what it accepts, the pre-processing plan and Pillow's
 * resampler (src/vision/preprocess.c, resample.c). The including file defines FORMAT ("png" / "jpeg") and
 * PREFIX (the bytes the harness puts in front of the input: the format's signature, so no mutation is wasted on it).
 *
 * Decoded with dsv4_image_from_bytes_max at FUZZ_MAX_PIXELS.
 * Properties besides sanitizers: exactly one of image / error; an error is one non-empty line that starts with
 * the name given ("fuzz.FORMAT: "); an accepted image is of FORMAT, 1..FUZZ_MAX_PIXELS pixels, and every pixel
 * byte can be read; its resize plan keeps the token cap and the 14-pixel grid or refuses with a message; images
 * of at most 4096 pixels are also resized (BICUBIC) to a third of their size, and about one in 1024 of them
 * (by a hash of the input) is also padded per the plan when that is at most 2^20 pixels. (Resizing larger ones,
 * or padding more often — a pad writes ~300,000 pixels — made the comparison tracing of the pixel loops dominate:
 * the JPEG harness, whose mutants mostly still decode, ran at 50 executions/s.)
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "dsv4_vision.h"
#include "fuzz_util.h"

/* FNV-1a 32: picks one input in about 1024 for the expensive pad, independently of how inputs end */
static uint32_t fnv1a(const uint8_t *p, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 16777619u;
    return h;
}

/* 2^22 pixels: a corrupt input of a few hundred bytes can make libjpeg decode 10^8 pixels (0.5 s plain, beyond the
 * 10 s per input of run.sh under ASan and coverage tracing); the limit path itself is tested in test_vision */
#define FUZZ_MAX_PIXELS (1 << 22)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *buf = malloc(size + sizeof PREFIX);
    if (!buf) return 0;
    memcpy(buf, PREFIX, sizeof PREFIX);
    if (size) memcpy(buf + sizeof PREFIX, data, size);
    dsv4_image *im = (dsv4_image *)1;
    char err[512];
    err[0] = 0;
    int rc = dsv4_image_from_bytes_max(&im, buf, size + sizeof PREFIX, "fuzz." FORMAT, FUZZ_MAX_PIXELS, err,
                                       sizeof err);
    free(buf);
    if (rc) {
        FUZZ_CHECK(rc == -1 && im == NULL, "failure returns -1 and no image");
        FUZZ_CHECK(strncmp(err, "fuzz." FORMAT ": ", strlen(FORMAT) + 7) == 0 && err[strlen(FORMAT) + 7] && !strchr(err, '\n'),
                   "error names the input on one line: '%s'", err);
        return 0;
    }
    FUZZ_CHECK(im != NULL && strcmp(dsv4_image_format(im), FORMAT) == 0, "an image of format " FORMAT);
    int w = dsv4_image_width(im), h = dsv4_image_height(im);
    FUZZ_CHECK(w >= 1 && h >= 1 && (long long)w * h <= FUZZ_MAX_PIXELS, "size %d x %d in range", w, h);
    const uint8_t *px = dsv4_image_pixels(im);
    unsigned sum = 0;
    for (size_t i = 0; i < (size_t)w * h * 3; i++) sum += px[i];
    (void)sum;
    dsv4_vision_params p = dsv4_vision_params_v41();
    dsv4_image_plan pl;
    if (dsv4_image_plan_grid(w, h, &p, &pl, err, sizeof err) == 0) {
        FUZZ_CHECK(pl.n_tokens <= 1024 && pl.width % 14 == 0 && pl.height % 14 == 0 && pl.resized_w >= 1 &&
                       pl.resized_h >= 1 && pl.resized_w <= pl.width && pl.resized_h <= pl.height,
                   "plan of %d x %d: box %d x %d, resized %d x %d, %d tokens", w, h, pl.width, pl.height,
                   pl.resized_w, pl.resized_h, pl.n_tokens);
        if ((long long)w * h <= 4096) {
            int dw = w / 3 + 1, dh = h / 3 + 1;
            uint8_t *out = malloc((size_t)dw * dh * 3);
            FUZZ_CHECK(out && dsv4_image_resize_bicubic(px, w, h, out, dw, dh, err, sizeof err) == 0, "resize: %s",
                       err);
            free(out);
            if (fnv1a(data, size) % 1024 == 0 && (long long)pl.width * pl.height <= (1 << 20)) {
                out = malloc((size_t)pl.width * pl.height * 3);
                FUZZ_CHECK(out && dsv4_image_pad(im, &pl, out, err, sizeof err) == 0, "pad: %s", err);
                free(out);
            }
        }
    } else {
        FUZZ_CHECK(err[0] && !strchr(err, '\n'), "plan error on one line: '%s'", err);
    }
    dsv4_image_free(im);
    return 0;
}
