/* dsv4_vision.h — images for the DeepSeek vision tower: decoding (JPEG, PNG) and the pre-processing of
 * DeepSeek-V4.1's `image_processor.py` (resize plan, Pillow's ImageOps.pad with BICUBIC, [-1, 1] normalisation
 * rounded to BF16, 3 x 14 x 14 patches), bit for bit; then (section "images in the language model" below) the
 * tower and aligner of a loaded model, prompts with image spans and their evaluation, for DeepSeek-V4.1 and
 * DeepSeek-V4-Flash-Vision-Exp (docs/vision.md, docs/vision-exp.md).
 *
 * Spec: docs/v41.md §3.3 and docs/vision.md (what the official code does at each step, including the points the
 * spec left open: EXIF, colour conversions, the pad placement, Pillow's fixed-point resampler). Tested against
 * Debian's Pillow 9.4 (tests/golden/vision, tools/vision/make_goldens.py) and against the official
 * `image_processor.py` run on CPU (tools/vision/check_official.py).
 *
 * Pixels are 8-bit RGB, row-major, 3 bytes per pixel (R, G, B), no row padding: byte (y * width + x) * 3 + c.
 *
 * Errors: functions that can fail return 0, or -1 after writing a one-line message into `err` (errlen bytes,
 * may be NULL) that starts with the image's name (the file path, or the name given to dsv4_image_from_bytes),
 * e.g. "photo.jpg: truncated JPEG (the data ends inside the image)". The library never prints or exits.
 */
#ifndef DSV4_VISION_H
#define DSV4_VISION_H
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The largest image accepted, in pixels (width x height): Pillow's decompression-bomb limit
 * (2 * Image.MAX_IMAGE_PIXELS = 178,956,970), above which the reference's Image.open refuses the image too.
 * Checked from the header, before any pixel memory is allocated. */
#define DSV4_IMAGE_MAX_PIXELS 178956970LL

/* A decoded image: 8-bit RGB pixels. Immutable once built; free with dsv4_image_free. */
typedef struct dsv4_image dsv4_image;

/* Decode a JPEG or PNG image held in memory (`len` bytes at `data`; the bytes are not kept). `name` is used in
 * error messages (e.g. the file name, "image 2", "messages[1].content[0]"); NULL means "image".
 * The result is what the reference's `Image.open(...).convert("RGB")` gives (docs/vision.md "Decoding"):
 *  - JPEG (libjpeg-turbo, default islow IDCT and fancy upsampling, as Pillow): 8-bit grayscale, YCbCr/RGB and
 *    CMYK/YCCK (inverted Adobe polarity, then Pillow's CMYK -> RGB formula); EXIF orientation is ignored (the
 *    reference does not apply it: pixels as stored);
 *  - PNG (libpng): every bit depth and colour type; alpha is dropped (not composited), palette entries are
 *    looked up (an index past the palette gives grey (i, i, i), as Pillow), 1/2/4-bit grey scaled to 0..255,
 *    16-bit samples keep their high byte except 16-bit grey without alpha, which is clamped to 255 (Pillow
 *    reads it as 32-bit mode "I" and converts with a clamp); gamma, colour profiles and tRNS are ignored.
 * Errors (*out = NULL): not a JPEG or PNG (the first bytes are named), zero width or height, more than
 * DSV4_IMAGE_MAX_PIXELS pixels (refused before allocating), truncated data, corrupt data (the decoder's
 * message), out of memory. */
int dsv4_image_from_bytes(dsv4_image **out, const void *data, size_t len, const char *name, char *err,
                          size_t errlen);

/* dsv4_image_from_bytes with a lower size limit: images of more than `max_pixels` pixels (width x height) are
 * refused from the header, before any pixel memory is allocated or any data decoded ("... more than the N-pixel
 * limit"). max_pixels <= 0 or above DSV4_IMAGE_MAX_PIXELS means DSV4_IMAGE_MAX_PIXELS. For callers that bound the
 * memory and time per image (a server; the fuzz harnesses): a corrupt 540-byte JPEG can declare 15616 x 9472
 * pixels, which libjpeg decodes in full (half a second) before its trailing markers show the file is broken. */
int dsv4_image_from_bytes_max(dsv4_image **out, const void *data, size_t len, const char *name, int64_t max_pixels,
                              char *err, size_t errlen);

/* The largest image file dsv4_image_from_file reads: 1 GiB, far above any JPEG or PNG within the pixel limit. */
#define DSV4_IMAGE_MAX_FILE_BYTES ((size_t)1 << 30)
/* dsv4_image_from_bytes on the contents of the file at `path` (the name in messages is the path).
 * Errors as above, plus "<path>: cannot open: <reason>" and "<path>: larger than 1024 MiB, ..." for a file above
 * DSV4_IMAGE_MAX_FILE_BYTES (a regular file by its size, before reading; a device or pipe such as /dev/zero after
 * reading at most that many bytes + 1). */
int dsv4_image_from_file(dsv4_image **out, const char *path, char *err, size_t errlen);

/* An image from raw pixels: width x height RGB8 (copied). width, height in [1, 2^31) with
 * width * height <= DSV4_IMAGE_MAX_PIXELS. Errors: sizes out of range, out of memory. */
int dsv4_image_from_rgb(dsv4_image **out, int width, int height, const uint8_t *rgb, char *err, size_t errlen);

/* Free an image (NULL is fine). */
void dsv4_image_free(dsv4_image *im);

/* Width and height in pixels; the pixels (width * height * 3 bytes, owned by the image); the source format
 * ("jpeg", "png" or "rgb"). */
int dsv4_image_width(const dsv4_image *im);
int dsv4_image_height(const dsv4_image *im);
const uint8_t *dsv4_image_pixels(const dsv4_image *im);
const char *dsv4_image_format(const dsv4_image *im);

/* ---------------------------------------------------------------- pre-processing */

/* The vision pre-processing parameters (config.json `vision_config` / the reference's flat `vision_*` keys).
 * V4.1-Flash: patch_size 14, downsample_ratio 3, max_image_tokens 1024, min_pixels 295936 (= 544^2);
 * `max_wh_ratio` is null in every released config and not supported. */
typedef struct {
    int patch_size;        /* `vision_patch_size`, pixels per patch side (14) */
    int downsample_ratio;  /* `vision_downsample_ratio`, patches per aligner cell side (3) */
    int max_image_tokens;  /* `vision_max_n_token`, cap on the tokens of one image span (1024) */
    int64_t min_pixels;    /* `vision_min_pixels`, images of smaller area are scaled up to about it (295936) */
    int max_wh_ratio;      /* DeepSeek-V4-Flash-Vision-Exp's `vision_max_wh_ratio` (8); 0 = none (V4.1) */
    int vision_exp;        /* 1: plan as DeepSeek-V4-Flash-Vision-Exp (docs/vision-exp.md §3): the aspect clamp to
                            * max_wh_ratio, the N-layout token count, a budget of max_image_tokens - 3 walked down,
                            * and for an image with width >= max_wh_ratio x height a plain resize (no padding) */
} dsv4_vision_params;

/* The V4.1-Flash values above (max_wh_ratio 0, vision_exp 0). */
dsv4_vision_params dsv4_vision_params_v41(void);

/* The resize plan of one image (the reference's `plan_image_grid`). */
typedef struct {
    int width, height;     /* the padded image fed to the tower, pixels: multiples of patch_size */
    int n_vit_h, n_vit_w;  /* patch grid: height / patch_size, width / patch_size */
    int n_llm_h, n_llm_w;  /* aligner output grid: ceil(n_vit / downsample_ratio) */
    int n_tokens;          /* prompt positions of the image span: n_llm_h * (n_llm_w + 1) + 2 (<= max_image_tokens);
                            * Vision-Exp: START, the rows padded to an even count of n_llm_w + 1 each, 2 pads when
                            * (rows / 2)(n_llm_w + 1) is odd, END (<= max_image_tokens - 3), without the 0..3 leading
                            * pads, which depend on where the span starts (dsv4_prompt_build) */
    int resized_w, resized_h; /* the aspect-kept size the picture is resized to inside the box (ImageOps.contain) */
    int offset_x, offset_y;   /* where it is pasted on the (127, 127, 127) canvas (ImageOps.pad, centring 0.5);
                               * Vision-Exp's resize branch: resized = the whole box, offsets 0 (no canvas) */
} dsv4_image_plan;

/* Plan an image of src_w x src_h pixels (>= 1 each); with p->vision_exp the Vision-Exp planner (docs/vision-exp.md
 * §3, tools/reference/vision_exp.py `plan`; its resize branch is a plan whose resized size is the box), otherwise:
 * the pixel box and grids exactly as the reference computes
 * them in double precision (min-pixels scale-up with pow(.., 0.5) and truncation, rounding up to the patch
 * grid, the token-cap shrink), then the placement of ImageOps.pad (Python round-half-even). Errors: parameters
 * out of range; an image so elongated that its resized short side rounds to 0 pixels (the reference's Pillow
 * raises "height and width must be > 0" there), e.g. 100000 x 1. */
int dsv4_image_plan_grid(int src_w, int src_h, const dsv4_vision_params *p, dsv4_image_plan *out, char *err,
                         size_t errlen);

/* Pillow's Image.resize(..., BICUBIC) of an RGB8 image (src_w x src_h) to dst_w x dst_h, bit for bit: separable
 * two-pass convolution (horizontal first, on the rows the vertical pass needs), Keys cubic with a = -0.5,
 * support 2 scaled by the reduction factor when shrinking (antialiasing), coefficients normalised in double and
 * rounded to 22-bit fixed point, 8-bit intermediate between the passes. Equal sizes copy. `dst` holds
 * dst_w * dst_h * 3 bytes (must not overlap src). Errors: a size < 1, the filter too long for Pillow's
 * coefficient buffer (Pillow raises MemoryError), out of memory. Allocates temporary buffers. */
int dsv4_image_resize_bicubic(const uint8_t *src, int src_w, int src_h, uint8_t *dst, int dst_w, int dst_h,
                              char *err, size_t errlen);

/* ImageOps.pad(image, (plan->width, plan->height), color=(127, 127, 127)) as the reference calls it: `dst`
 * (plan->width * plan->height * 3 bytes) receives the image resized to resized_w x resized_h (BICUBIC as
 * above) at (offset_x, offset_y) on a (127, 127, 127) canvas. `plan` must come from dsv4_image_plan_grid for
 * this image's size. Errors: plan inconsistent with the image, out of memory. */
int dsv4_image_pad(const dsv4_image *im, const dsv4_image_plan *plan, uint8_t *dst, char *err, size_t errlen);

/* The normalised value of an 8-bit sample: ((float)v / 255 - 0.5) / 0.5 in float32, rounded to BF16 (returned
 * as float) — the reference's `x / 255`, `(x - 0.5) / 0.5`, `.to(torch.bfloat16)`. 127 (the padding) gives
 * -0.003936767578125 = -(1 + 1/128)/256. */
float dsv4_vision_normalize(uint8_t v);

/* The whole pre-processing of `load_image`: plan (written to *plan), pad, normalise, cut patches. `patches`
 * receives n_vit_h * n_vit_w patches of 3 x patch_size x patch_size floats (BF16 values as float32), patch
 * index = row * n_vit_w + col over the patch grid, inside a patch channel-major then row then column — the
 * reference's [n_vit_h * n_vit_w, 3, 14, 14] tensor. `cap` is the number of floats `patches` can hold. With
 * patches = NULL only the plan is computed (the size needed is plan->n_vit_h * plan->n_vit_w * 3 *
 * p->patch_size^2 floats). Errors as dsv4_image_plan_grid and dsv4_image_pad; cap too small. */
int dsv4_image_preprocess(const dsv4_image *im, const dsv4_vision_params *p, dsv4_image_plan *plan,
                          float *patches, size_t cap, char *err, size_t errlen);

/* ------------------------------------------------------------- images in the language model
 *
 * Issue 11 item 3; docs/v41.md §3.4 (and docs/vision.md "Images in the prompt"). An image reaches the model in
 * three steps:
 *   1. dsv4_image_encode: pre-process the image and run the model's vision tower and aligner once
 *      (seconds to minutes per image on a CPU; threads from dsv4_set_threads) -> a dsv4_image_embed;
 *   2. dsv4_prompt_build: the prompt's token ids (the chat encoder writes one "<｜deepseek_image｜>" per image;
 *      tokenized, each is ONE id, the config's image_token_id) with each placeholder replaced by the span of the
 *      next image: START, then n_llm_h rows of n_llm_w IMAGE positions each followed by a NEW_LINE position,
 *      then END -- n_llm_h * (n_llm_w + 1) + 2 positions, every one carrying the placeholder id;
 *   3. dsv4_eval_prompt: evaluate any range of the prompt's positions, in one call or in chunks split anywhere
 *      (also inside an image span): IMAGE positions take the aligner rows in reading order as their embeddings,
 *      START / NEW_LINE / END the learned vectors image_start / image_newline / image_end; every image position
 *      routes its MoE with ffn.gate.bias_vl instead of ffn.gate.bias and is DEAD for Engram (gate 0, no n-gram
 *      crosses it); attention is causal as for text.
 * A prompt without images works on every model (dsv4_eval_prompt then equals dsv4_eval on its ids).
 *
 * DeepSeek-V4-Flash-Vision-Exp (the V4 text model with the same tower; docs/vision-exp.md, whose conventions rest on
 * ports of the official code, none of it public) differs in steps 1-3: its own planner (dsv4_vision_params.vision_exp);
 * each placeholder at prompt position o becomes 3 - o mod 4 IMAGE_PAD positions, START, the rows padded to an even
 * count and taken two at a time column by column ("N-layout"), two IMAGE_PAD when needed for a multiple of 4, END;
 * the ids are vocab_size + the official role (START 0, PAD 1, IMAGE 2, NEW_LINE 3, END 4); PAD positions take
 * image_pad; every image position (pads too) routes with bias_vl, on the hash layers too (instead of tid2eid); the
 * rows of a span (START..END) attend bidirectionally inside it (back to the START or the 128-window, forward to the
 * END), so a call may not cut a span (dsv4_eval_prompt refuses it; the leading pads may end the previous call).
 */

/* The role of a prompt position: V4.1's official `token_types` values; DSV4_TOKEN_IMAGE_PAD (DeepSeek-V4-Flash-Vision-
 * Exp only) is added after them (Vision-Exp's own numbering, START 0, PAD 1, IMAGE 2, NEW_LINE 3, END 4, is used
 * only where its sentinel ids vocab_size + role are formed; docs/vision-exp.md §4). */
enum {
    DSV4_TOKEN_TEXT = -1,
    DSV4_TOKEN_IMAGE_START = 0,
    DSV4_TOKEN_IMAGE = 1,
    DSV4_TOKEN_IMAGE_NEW_LINE = 2,
    DSV4_TOKEN_IMAGE_END = 3,
    DSV4_TOKEN_IMAGE_PAD = 4
};

struct dsv4_model;   /* include/dsv4.h */
struct dsv4_session; /* include/dsv4.h */

/* 1 if model m has a vision tower and the image-span vectors (config.json vision_config, or Vision-Exp's flat vision_*
 * keys, and the vision.*, aligner.*, image_* tensors), else 0 (also for NULL). */
int dsv4_model_has_vision(const struct dsv4_model *m);

/* The image placeholder id of model m (config.json image_token_id: 129264 for V4.1), or -1 when m has no vision. */
int32_t dsv4_model_image_token(const struct dsv4_model *m);

/* The vision pre-processing parameters of model m (its config.json vision_config; an absent max_image_tokens or
 * min_pixels keeps the official default, 1024 / 544^2; Vision-Exp: its vision_* keys, vision_exp = 1, defaults 384,
 * 384^2, max_wh_ratio 8 when given); dsv4_vision_params_v41() for a model without vision. */
dsv4_vision_params dsv4_model_vision_params(const struct dsv4_model *m);

/* The vision parameters and image placeholder id of the model in directory `dir` (its config.json, or `dir` itself
 * when it ends in ".json"), read by the library's config reader without loading any weights: what dsv4_model_vision_params
 * and dsv4_model_image_token give once the model is loaded (V4.1 nested vision_config, or Vision-Exp flat vision_* keys).
 * Errors: the config's own errors (file, key); "DIR: this model has no vision tower" when it has no vision keys. */
int dsv4_config_vision(const char *dir, dsv4_vision_params *p, int32_t *image_token, char *err, size_t errlen);

/* Positions of a prompt of n ids once each placeholder (image_token) is expanded with the span of plans[k] (the k-th
 * placeholder): plans[k].n_tokens each, plus on Vision-Exp (p->vision_exp) the 0-3 leading IMAGE_PADs that depend on
 * the position. What dsv4_prompt_len gives for the built prompt, without a model or the tower (dsv4 render). -1 when
 * the placeholder count differs from n_plans or for invalid arguments. */
int dsv4_prompt_expanded_len(const dsv4_vision_params *p, const int32_t *ids, int n, int32_t image_token,
                             const dsv4_image_plan *plans, int n_plans);

/* An image encoded by one model's tower: its plan and its n_llm_h * n_llm_w aligner rows (hidden_size floats
 * each, BF16 values). Immutable and reference-counted: a prompt keeps its own reference, so the caller may free
 * its handle as soon as the prompt is built. Bound to the model that encoded it (which must outlive it). */
typedef struct dsv4_image_embed dsv4_image_embed;

/* Pre-process `im` with m's parameters and run m's tower and aligner. Errors (*out = NULL): NULL arguments; the
 * model has no vision ("<model dir>: this model has no vision tower"); the image cannot be planned (too
 * elongated: the message names the image); out of memory. Allocates; not for the decode loop. */
int dsv4_image_encode(const struct dsv4_model *m, const dsv4_image *im, dsv4_image_embed **out, char *err,
                      size_t errlen);
/* Drop the caller's reference (NULL is fine). */
void dsv4_image_embed_free(dsv4_image_embed *e);
/* Prompt positions of the image's span: n_llm_h * (n_llm_w + 1) + 2 (Vision-Exp: plan.n_tokens, without the 0..3
 * leading pads, which depend on the position); 0 for NULL. */
int dsv4_image_embed_positions(const dsv4_image_embed *e);
/* The plan the image was encoded with (owned by the embed); NULL for NULL. */
const dsv4_image_plan *dsv4_image_embed_plan(const dsv4_image_embed *e);
/* A 64-bit digest of the aligner rows: equal for the same image on the same model, different (with probability
 * 1 - 2^-64) otherwise. Used to tell two prompts' image spans apart when reusing an evaluated prefix. */
uint64_t dsv4_image_embed_digest(const dsv4_image_embed *e);

/* A prompt: token ids with every image placeholder expanded to its image's span. Immutable; free with
 * dsv4_prompt_free. */
typedef struct dsv4_prompt dsv4_prompt;

/* Build a prompt from `n` >= 1 token ids (copied) and `n_images` >= 0 encoded images (each placeholder id, in
 * order, takes the next image; the prompt keeps a reference to each). Images must come from model m. Errors
 * (*out = NULL): NULL arguments; a token id out of range (names its index); the number of placeholders differs
 * from n_images ("the prompt has 2 image placeholders but 1 image was given"); images for a model without vision;
 * an image encoded by another model; the expanded prompt longer than INT_MAX/2 positions; Vision-Exp: a span longer
 * than vision_max_n_token (an embed from dsv4_image_encode never is). On a model without vision the placeholder id is
 * an ordinary token (n_images must then be 0). Spans are expanded in order (Vision-Exp's pads depend on the position).
 * Allocates (4 + 1 + 8 + 8 bytes per position: id, role, embedding row pointer, key; Vision-Exp 4 more). */
int dsv4_prompt_build(dsv4_prompt **out, const struct dsv4_model *m, const int32_t *ids, int n,
                      dsv4_image_embed *const *images, int n_images, char *err, size_t errlen);
/* Free the prompt and its image references (NULL is fine). */
void dsv4_prompt_free(dsv4_prompt *p);
/* Number of positions (text ids + expanded spans); 0 for NULL. */
int dsv4_prompt_len(const dsv4_prompt *p);
/* The expanded ids, dsv4_prompt_len entries (image positions carry the placeholder id; Vision-Exp: vocab_size + the
 * official role, ids outside the vocabulary that dsv4_eval refuses); owned by the prompt; NULL for NULL. */
const int32_t *dsv4_prompt_ids(const dsv4_prompt *p);
/* The role of position i (DSV4_TOKEN_*); DSV4_TOKEN_TEXT when i is out of range. */
int dsv4_prompt_role(const dsv4_prompt *p, int i);
/* A key for prefix matching: for a text position its id; for an image position a 64-bit mix of the image's
 * digest and the offset inside the span (never equal to a text id). Two prompts evaluate identically up to
 * position i when their keys agree on 0..i. 0 when i is out of range (as the key of text id 0: check the range). */
uint64_t dsv4_prompt_key(const dsv4_prompt *p, int i);

/* Where a call may end: the largest position q <= pos such that dsv4_eval_prompt accepts a call ending at q (and the
 * next one starting there): pos itself, except on DeepSeek-V4-Flash-Vision-Exp when an image span has START < pos <=
 * END, then that START (the span's leading pads may end the previous call). For callers that split a prompt into
 * calls at sizes of their own (a server's prefill chunks, checkpoint strides): end each call at
 * dsv4_prompt_boundary(p, wanted end) when that is past the call's first position, else through the span's END (the
 * first position from there whose dsv4_prompt_role is DSV4_TOKEN_IMAGE_END). pos is
 * clamped to [0, dsv4_prompt_len]; 0 for NULL. */
int dsv4_prompt_boundary(const dsv4_prompt *p, int pos);
/* The end of a call that starts at `first` (a position where a call may start) and would like to end at `end`
 * (first < end <= dsv4_prompt_len): end itself, or, when it falls inside a Vision-Exp image span, that span's START
 * if it is past `first`, else the position after the span's END. The rule of dsv4_prompt_boundary's comment as one
 * call, for callers that cut prefill at sizes of their own (the server's chunks and checkpoint strides). end for
 * NULL; for a V4.1 or text-only prompt end clamped to [0, dsv4_prompt_len]. */
int dsv4_prompt_call_end(const dsv4_prompt *p, int first, int end);

/* Evaluate prompt positions [first, first + n) as the session's next n positions; the session's position must be
 * `first` (the prompt starts at position 0). `logits`: NULL; or vocab_size floats for the last position
 * (all == 0); or n rows of vocab_size floats, one per position (all == 1, as dsv4_eval_all). A prompt may be split
 * into calls anywhere, also inside an image span: the logits are the reference's for that split (as for dsv4_eval,
 * V4.1's official index-key slot makes them depend on the split; docs/v41.md §7 item 8). A prompt without images is exactly dsv4_eval /
 * dsv4_eval_all on its ids (every model). Allocates nothing. Errors (nothing evaluated): NULL session or prompt, a
 * range outside the prompt, the session not at `first`, a prompt built for another model (another dsv4_model, even
 * of the same directory), logits NULL with all == 1, context overflow; Vision-Exp: a call that cuts an image span
 * (starts or ends strictly inside START..END; the message names the image and its positions); then as dsv4_eval.
 * Vision-Exp results do not depend on how the prompt is split into calls (none cuts a span). */
int dsv4_eval_prompt(struct dsv4_session *s, const dsv4_prompt *p, int first, int n, float *logits, int all,
                     char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
