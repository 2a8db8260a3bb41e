/* cli/cli_image.h — images for the `dsv4` commands (src/cli/cli_image.c). Each function prints its error as
 * "dsv4 CMD: ..." (cli_fail) and returns 1; 0 on success. */
#ifndef DSV4_CLI_IMAGE_H
#define DSV4_CLI_IMAGE_H
#include <stdint.h>
#include "dsv4.h"
#include "dsv4_chat.h"
#include "dsv4_vision.h"

#define CLI_MAX_IMAGES 64
/* The paths of the --image options, in order (not copied: argv). */
typedef struct { const char *path[CLI_MAX_IMAGES]; int n; } cli_image_list;
/* The repeatable --image FILE option (CLI_CUSTOM: cli_image_add appends; -1 for an empty name, -2 for a 65th). */
int cli_image_add(const char *v, void *dst);
#define CLI_O_IMAGE(p) { .names = "--image", .kind = CLI_CUSTOM, .dst = (p), .parse = cli_image_add, \
                         .what = "an image file (a JPEG or PNG)", \
                         .limit = "at most 64 --image options are accepted" }

/* Decode every file of l into out[0..l->n) (before the model is loaded: a missing, truncated or non-image file is
 * reported by name without waiting for the weights). */
int cli_images_decode(const char *cmd, const cli_image_list *l, dsv4_image **out);
/* "dsv4 CMD: DIR: this model has no vision tower (...)" unless m has one. */
int cli_require_vision(const char *cmd, const dsv4_model *m, const char *dir);
/* dsv4_image_encode each image (names[i] heads its errors; -v prints the plan and the time). */
int cli_images_encode(const char *cmd, const dsv4_model *m, dsv4_image *const *im, const char *const *names, int n,
                      dsv4_image_embed **out);
void cli_images_free(dsv4_image **im, int n);
void cli_embeds_free(dsv4_image_embed **e, int n);
/* Occurrences of `id` in ids[0..n) (0 when id < 0). */
int cli_count_token(const int32_t *ids, int n, int32_t id);
/* The image of a chat request's image part: a data: URL (decoded, at most max_pixels; 0 = the library's limit), a
 * file:// URL or a local path; other URL schemes are refused (nothing is fetched). */
int cli_image_from_part(const char *cmd, const dsv4_chat_image *ci, int64_t max_pixels, dsv4_image **out);
/* The same without printing: -1 with the message in err. */
int cli_image_from_part_err(const dsv4_chat_image *ci, int64_t max_pixels, dsv4_image **out, char *err,
                            size_t errlen);
#endif
