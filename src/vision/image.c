/* vision/image.c — decoding JPEG (libjpeg-turbo) and PNG (libpng) into 8-bit RGB, as the reference's
 * `Image.open(...).convert("RGB")` (Pillow 9.4) gives it. The conversions and what was checked against Pillow are in
 * docs/vision.md "Decoding"; the contract is in include/dsv4_vision.h. */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

#include "base/util.h"
#include "dsv4_vision.h"

struct dsv4_image {
    int width, height;
    uint8_t *rgb;        /* width * height * 3 bytes */
    const char *format;  /* "jpeg", "png", "rgb" */
};

int dsv4_image_width(const dsv4_image *im) { return im->width; }
int dsv4_image_height(const dsv4_image *im) { return im->height; }
const uint8_t *dsv4_image_pixels(const dsv4_image *im) { return im->rgb; }
const char *dsv4_image_format(const dsv4_image *im) { return im->format; }

void dsv4_image_free(dsv4_image *im) {
    if (!im) return;
    free(im->rgb);
    free(im);
}

/* A new image of w x h with uninitialised pixels, after the size checks every path shares. */
static dsv4_image *image_new(int64_t w, int64_t h, int64_t max_px, const char *name, const char *what, char *err,
                             size_t errlen) {
    if (w <= 0 || h <= 0) {
        dsv4_fail(err, errlen, "%s: %s has zero width or height (%lld x %lld)", name, what, (long long)w, (long long)h);
        return NULL;
    }
    if (w > max_px || h > max_px || w * h > max_px) {
        dsv4_fail(err, errlen,
                  "%s: %s is %lld x %lld pixels, more than the %lld-pixel limit (refused before decoding%s)", name, what, (long long)w, (long long)h, (long long)max_px,
                  max_px == DSV4_IMAGE_MAX_PIXELS ? "; the reference's Pillow refuses it too" : "");
        return NULL;
    }
    dsv4_image *im = calloc(1, sizeof *im);
    if (im) im->rgb = malloc((size_t)w * (size_t)h * 3);
    if (!im || !im->rgb) {
        free(im);
        dsv4_fail(err, errlen, "%s: out of memory for a %lld x %lld image", name, (long long)w, (long long)h);
        return NULL;
    }
    im->width = (int)w;
    im->height = (int)h;
    return im;
}

int dsv4_image_from_rgb(dsv4_image **out, int width, int height, const uint8_t *rgb, char *err, size_t errlen) {
    *out = NULL;
    dsv4_image *im = image_new(width, height, DSV4_IMAGE_MAX_PIXELS, "image", "the pixel array", err, errlen);
    if (!im) return -1;
    memcpy(im->rgb, rgb, (size_t)width * (size_t)height * 3);
    im->format = "rgb";
    *out = im;
    return 0;
}

/* ---------------------------------------------------------------- JPEG */

struct jpeg_err {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    int truncated;
    int rows_done; /* every scanline has been read: only jpeg_finish_decompress is left */
    char msg[JMSG_LENGTH_MAX];
};

static void jpeg_on_error(j_common_ptr c) {
    struct jpeg_err *e = (struct jpeg_err *)c->err;
    c->err->format_message(c, e->msg);
    longjmp(e->jb, 1);
}

/* Warnings are ignored as Pillow ignores them (its libjpeg output_message does nothing), except the end of the
 * data. Before the last scanline: Pillow reports "image file is truncated" (jpeg_mem_src would go on with a fake
 * EOI and grey rows), so do we. After it: Pillow's suspending jpeg_finish_decompress stops there and the image is
 * kept, even inside a marker segment that would be an error if complete; so we stop reading and keep it too (going
 * on with jpeg_mem_src's fake EOI could turn such a cut segment into an error). */
static void jpeg_on_message(j_common_ptr c, int level) {
    struct jpeg_err *e = (struct jpeg_err *)c->err;
    if (level < 0 && c->err->msg_code == JWRN_JPEG_EOF) {
        if (e->rows_done) longjmp(e->jb, 2); /* Pillow's finish suspends here and keeps the image */
        e->truncated = 1;
        longjmp(e->jb, 1);
    }
}

/* Pillow's MULDIV255(a, b): a * b / 255 rounded, in integers. */
static inline int muldiv255(int a, int b) {
    int t = a * b + 128;
    return ((t >> 8) + t) >> 8;
}

static int decode_jpeg(dsv4_image **out, const uint8_t *data, size_t len, int64_t max_px, const char *name,
                       char *err, size_t errlen) {
    struct jpeg_decompress_struct ci;
    struct jpeg_err je;
    dsv4_image *volatile im = NULL;
    JSAMPLE *volatile row = NULL;
    memset(&je, 0, sizeof je);
    ci.err = jpeg_std_error(&je.pub);
    je.pub.error_exit = jpeg_on_error;
    je.pub.emit_message = jpeg_on_message;
    int jr = setjmp(je.jb);
    if (jr == 2) { /* the data ended after the last scanline: done */
        jpeg_destroy_decompress(&ci);
        free(row);
        *out = im;
        return 0;
    }
    if (jr) {
        if (je.truncated)
            dsv4_fail(err, errlen, "%s: truncated JPEG (the data ends before the image is complete)", name);
        else
            dsv4_fail(err, errlen, "%s: corrupt or unsupported JPEG (libjpeg: %s)", name, je.msg);
        jpeg_destroy_decompress(&ci);
        free(row);
        dsv4_image_free(im);
        return -1;
    }
    jpeg_create_decompress(&ci);
    jpeg_mem_src(&ci, data, (unsigned long)len);
    jpeg_read_header(&ci, TRUE);
    if (ci.data_precision != 8) {
        jpeg_destroy_decompress(&ci);
        return dsv4_fail(err, errlen, "%s: %d-bit JPEG samples are not supported (only 8-bit, as Pillow)", name,
                         ci.data_precision);
    }
    int nc = ci.num_components;
    if (nc != 1 && nc != 3 && nc != 4) {
        jpeg_destroy_decompress(&ci);
        return dsv4_fail(err, errlen, "%s: JPEG with %d components is not supported (1, 3 or 4, as Pillow)", name,
                         nc);
    }
    im = image_new(ci.image_width, ci.image_height, max_px, name, "JPEG image", err, errlen);
    if (!im) {
        jpeg_destroy_decompress(&ci);
        return -1;
    }
    im->format = "jpeg";
    /* Pillow: 1 component -> "L", 3 -> "RGB" (libjpeg converts YCbCr), 4 -> "CMYK;I" (Adobe polarity). Default
     * islow IDCT and fancy upsampling, as Pillow outside draft mode. */
    ci.out_color_space = nc == 1 ? JCS_GRAYSCALE : nc == 3 ? JCS_RGB : JCS_CMYK;
    jpeg_start_decompress(&ci);
    if ((int)ci.output_width != im->width || (int)ci.output_height != im->height ||
        ci.output_components != (nc == 1 ? 1 : nc)) {
        longjmp(je.jb, 1); /* cannot happen with libjpeg; keeps the loop below in bounds */
    }
    row = malloc((size_t)im->width * (size_t)nc);
    if (!row) {
        snprintf(je.msg, sizeof je.msg, "out of memory");
        longjmp(je.jb, 1);
    }
    while (ci.output_scanline < ci.output_height) {
        size_t y = ci.output_scanline;
        JSAMPROW rp = row;
        if (jpeg_read_scanlines(&ci, &rp, 1) != 1) {
            snprintf(je.msg, sizeof je.msg, "no scanline returned");
            longjmp(je.jb, 1);
        }
        uint8_t *o = im->rgb + y * (size_t)im->width * 3;
        if (nc == 1) {
            for (int x = 0; x < im->width; x++) o[3 * x] = o[3 * x + 1] = o[3 * x + 2] = row[x];
        } else if (nc == 3) {
            memcpy(o, row, (size_t)im->width * 3);
        } else {
            for (int x = 0; x < im->width; x++) {
                const JSAMPLE *p = row + 4 * x;
                int nk = 255 - (255 - p[3]);
                for (int c = 0; c < 3; c++) {
                    int v = nk - muldiv255(255 - p[c], nk);
                    o[3 * x + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
                }
            }
        }
    }
    /* All rows are in. Pillow then calls jpeg_finish_decompress, which reads the markers up to EOI: a bad marker
     * there is an error (its "broken data stream"), the end of the data is not (see jpeg_on_message). */
    je.rows_done = 1;
    jpeg_finish_decompress(&ci);
    jpeg_destroy_decompress(&ci);
    free(row);
    *out = im;
    return 0;
}

/* ---------------------------------------------------------------- PNG */

struct png_ctx {
    const uint8_t *data;
    size_t len, pos;
    int truncated;
    char msg[200];
};

static void png_on_error(png_structp png, png_const_charp msg) {
    struct png_ctx *c = png_get_error_ptr(png);
    snprintf(c->msg, sizeof c->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg; /* ancillary-chunk problems: the chunk is skipped, the pixels are unaffected */
}

static void png_read_mem(png_structp png, png_bytep dst, size_t n) {
    struct png_ctx *c = png_get_io_ptr(png);
    if (n > c->len - c->pos) {
        c->truncated = 1;
        png_error(png, "truncated");
    }
    memcpy(dst, c->data + c->pos, n);
    c->pos += n;
}

/* One decoded PNG row (after the transforms set up below: 8-bit samples, or 16-bit grey) into RGB. */
static void png_row_to_rgb(uint8_t *o, const uint8_t *r, int w, int channels, int gray16, int palette,
                           const png_color *pal, int npal) {
    if (gray16) {
        for (int x = 0; x < w; x++) {
            unsigned v = ((unsigned)r[2 * x] << 8) | r[2 * x + 1];
            o[3 * x] = o[3 * x + 1] = o[3 * x + 2] = (uint8_t)(v > 255 ? 255 : v);
        }
    } else if (palette) {
        for (int x = 0; x < w; x++) {
            int i = r[x];
            if (i < npal) {
                o[3 * x] = pal[i].red;
                o[3 * x + 1] = pal[i].green;
                o[3 * x + 2] = pal[i].blue;
            } else {
                o[3 * x] = o[3 * x + 1] = o[3 * x + 2] = (uint8_t)i;
            }
        }
    } else if (channels <= 2) {
        for (int x = 0; x < w; x++) o[3 * x] = o[3 * x + 1] = o[3 * x + 2] = r[channels * x];
    } else {
        for (int x = 0; x < w; x++) {
            o[3 * x] = r[channels * x];
            o[3 * x + 1] = r[channels * x + 1];
            o[3 * x + 2] = r[channels * x + 2];
        }
    }
}

/* Pillow checks the CRC of every chunk it reads while opening a PNG, i.e. those before the first IDAT, and of no
 * chunk after that (IDAT included). Returns 0, or -1 naming the first chunk before IDAT whose CRC is wrong or that
 * does not fit in the data (truncated: Pillow refuses it too). */
static int png_check_header_crcs(const uint8_t *d, size_t len, const char *name, char *err, size_t errlen) {
    uint32_t tab[256];
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
        tab[i] = c;
    }
    size_t pos = 8;
    while (pos + 8 <= len) {
        size_t n = (size_t)d[pos] << 24 | (size_t)d[pos + 1] << 16 | (size_t)d[pos + 2] << 8 | d[pos + 3];
        const uint8_t *type = d + pos + 4;
        if (memcmp(type, "IDAT", 4) == 0) break;
        if (n > len - pos - 8 || len - pos - 8 - n < 4) {
            /* refused here: libpng would first allocate the declared length (up to 2^31 bytes; fuzz finding) */
            char t[5];
            for (int i = 0; i < 4; i++) t[i] = type[i] >= 0x20 && type[i] < 0x7f ? (char)type[i] : '?';
            t[4] = 0;
            return dsv4_fail(err, errlen, "%s: truncated PNG (the %s chunk at byte %zu declares %zu bytes, %zu remain)",
                             name, t, pos, n, len - pos - 8);
        }
        uint32_t c = 0xffffffffu;
        for (size_t i = 0; i < n + 4; i++) c = tab[(c ^ type[i]) & 255] ^ (c >> 8);
        c = ~c;
        const uint8_t *q = type + 4 + n;
        uint32_t want = (uint32_t)q[0] << 24 | (uint32_t)q[1] << 16 | (uint32_t)q[2] << 8 | q[3];
        if (c != want) {
            char t[5];
            for (int i = 0; i < 4; i++) t[i] = type[i] >= 0x20 && type[i] < 0x7f ? (char)type[i] : '?';
            t[4] = 0;
            return dsv4_fail(err, errlen, "%s: corrupt PNG (bad CRC in the %s chunk at byte %zu)", name, t, pos);
        }
        pos += n + 12;
    }
    return 0;
}

static int decode_png(dsv4_image **out, const uint8_t *data, size_t len, int64_t max_px, const char *name,
                      char *err, size_t errlen) {
    if (png_check_header_crcs(data, len, name, err, errlen)) return -1;
    struct png_ctx ctx = {data, len, 0, 0, {0}};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx, png_on_error, png_on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_read_struct(&png, &info, NULL);
        return dsv4_fail(err, errlen, "%s: out of memory", name);
    }
    dsv4_image *volatile im = NULL;
    uint8_t *volatile buf = NULL;
    if (setjmp(png_jmpbuf(png))) {
        if (ctx.truncated)
            dsv4_fail(err, errlen, "%s: truncated PNG (the data ends before the image is complete)", name);
        else
            dsv4_fail(err, errlen, "%s: corrupt or unsupported PNG (libpng: %s)", name, ctx.msg);
        png_destroy_read_struct(&png, &info, NULL);
        free(buf);
        dsv4_image_free(im);
        return -1;
    }
    png_set_read_fn(png, &ctx, png_read_mem);
    /* CRCs: the chunks before IDAT were checked above, as Pillow does; like Pillow, the image data's own CRCs are
     * not checked (Pillow decodes a PNG whose IDAT CRC is wrong). zlib's Adler-32 is checked (Pillow's inflate
     * reports a wrong one as "broken data stream"). */
    png_set_crc_action(png, PNG_CRC_QUIET_USE, PNG_CRC_QUIET_USE);
    /* ancillary chunks are skipped anyway; bound what libpng may allocate for one (decompressed text, profiles) */
    png_set_chunk_malloc_max(png, 8u << 20);
    /* Pillow has no per-side limit (only the pixel count, checked below); libpng's default is 10^6 per side. */
    png_set_user_limits(png, PNG_UINT_31_MAX, PNG_UINT_31_MAX);
    png_read_info(png, info);
    png_uint_32 w32, h32;
    int depth, ctype, interlace;
    png_get_IHDR(png, info, &w32, &h32, &depth, &ctype, &interlace, NULL, NULL);
    im = image_new(w32, h32, max_px, name, "PNG image", err, errlen);
    if (!im) {
        png_destroy_read_struct(&png, &info, NULL);
        return -1;
    }
    im->format = "png";
    int palette = ctype == PNG_COLOR_TYPE_PALETTE;
    int gray16 = ctype == PNG_COLOR_TYPE_GRAY && depth == 16;
    png_colorp pal = NULL;
    int npal = 0;
    if (palette) {
        if (!png_get_PLTE(png, info, &pal, &npal)) png_error(png, "palette image without a PLTE chunk");
        png_set_packing(png); /* 1/2/4-bit indices -> one byte each, unscaled */
    } else if (ctype == PNG_COLOR_TYPE_GRAY && depth < 8) {
        png_set_expand_gray_1_2_4_to_8(png); /* x255, x85, x17 as Pillow's "1", "L;2", "L;4" */
    }
    if (depth == 16 && !gray16) png_set_strip_16(png); /* the high byte, as Pillow's "RGB;16B" etc. */
    int passes = png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int channels = png_get_channels(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    size_t need = (size_t)im->width * (size_t)channels * (gray16 ? 2 : 1);
    if (rowbytes < need) png_error(png, "unexpected row size");
    size_t rows = passes > 1 ? (size_t)im->height : 1;
    buf = malloc(rowbytes * rows);
    if (!buf) png_error(png, "out of memory");
    if (passes > 1) {
        for (int p = 0; p < passes; p++)
            for (int y = 0; y < im->height; y++) png_read_row(png, buf + (size_t)y * rowbytes, NULL);
        for (int y = 0; y < im->height; y++)
            png_row_to_rgb(im->rgb + (size_t)y * im->width * 3, buf + (size_t)y * rowbytes, im->width, channels,
                           gray16, palette, pal, npal);
    } else {
        for (int y = 0; y < im->height; y++) {
            png_read_row(png, buf, NULL);
            png_row_to_rgb(im->rgb + (size_t)y * im->width * 3, buf, im->width, channels, gray16, palette, pal,
                           npal);
        }
    }
    png_destroy_read_struct(&png, &info, NULL);
    free(buf);
    *out = im;
    return 0;
}

/* ---------------------------------------------------------------- entry points */

int dsv4_image_from_bytes(dsv4_image **out, const void *data, size_t len, const char *name, char *err,
                          size_t errlen) {
    return dsv4_image_from_bytes_max(out, data, len, name, 0, err, errlen);
}

int dsv4_image_from_bytes_max(dsv4_image **out, const void *data, size_t len, const char *name, int64_t max_pixels,
                              char *err, size_t errlen) {
    *out = NULL;
    if (!name) name = "image";
    int64_t max_px = max_pixels <= 0 || max_pixels > DSV4_IMAGE_MAX_PIXELS ? DSV4_IMAGE_MAX_PIXELS : max_pixels;
    const uint8_t *d = data;
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (len >= 3 && d[0] == 0xff && d[1] == 0xd8 && d[2] == 0xff)
        return decode_jpeg(out, d, len, max_px, name, err, errlen);
    if (len >= 8 && memcmp(d, png_sig, 8) == 0) {
        /* IHDR sizes checked here, so that a zero or huge size gets this message rather than libpng's */
        if (len >= 24 && memcmp(d + 12, "IHDR", 4) == 0) {
            int64_t w = (int64_t)d[16] << 24 | d[17] << 16 | d[18] << 8 | d[19];
            int64_t h = (int64_t)d[20] << 24 | d[21] << 16 | d[22] << 8 | d[23];
            dsv4_image *probe = NULL;
            if (w == 0 || h == 0 || w > max_px || h > max_px ||
                w * h > max_px) { /* each side first: the product of two 32-bit sides can overflow */
                probe = image_new(w, h, max_px, name, "PNG image", err, errlen);
                dsv4_image_free(probe);
                if (!probe) return -1;
            }
        }
        return decode_png(out, d, len, max_px, name, err, errlen);
    }
    if (len == 0) return dsv4_fail(err, errlen, "%s: empty (0 bytes), not an image", name);
    char hex[3 * 8 + 1] = {0};
    size_t k = len < 8 ? len : 8, o = 0;
    for (size_t i = 0; i < k; i++) o += (size_t)snprintf(hex + o, sizeof hex - o, "%s%02x", i ? " " : "", d[i]);
    return dsv4_fail(err, errlen, "%s: not a JPEG or PNG image (it starts with bytes %s; other formats: convert "
                     "to PNG first)", name, hex);
}

int dsv4_image_from_file(dsv4_image **out, const char *path, char *err, size_t errlen) {
    *out = NULL;
    char *buf;
    size_t len;
    int r = dsv4_read_file_max(path, DSV4_IMAGE_MAX_FILE_BYTES, &buf, &len, err, errlen);
    if (r == -2)
        return dsv4_fail(err, errlen, "%s: larger than %d MiB, the limit for an image file (a JPEG or PNG within "
                         "the pixel limit is far smaller)", path, (int)(DSV4_IMAGE_MAX_FILE_BYTES >> 20));
    if (r) return -1;
    int rc = dsv4_image_from_bytes(out, buf, len, path, err, errlen);
    free(buf);
    return rc;
}
