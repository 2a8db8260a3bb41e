/* vision/prompt.h — INTERNAL entry points of vision/prompt.c for tests and tools (the public API is the "images in the
 * language model" section of include/dsv4_vision.h). */
#ifndef DSV4_VISION_PROMPT_H
#define DSV4_VISION_PROMPT_H
#include <stdint.h>
#include "dsv4_vision.h"

/* The aligner rows of an encoded image: *n_rows (= n_llm_h * n_llm_w) rows of *dim floats (BF16 values), row-major
 * in reading order, owned by the embed. NULL for NULL. */
const float *dsv4_image_embed_rows(const dsv4_image_embed *e, int *n_rows, int *dim);

/* An embed made from given aligner rows instead of running the tower (tests feed a reference's rows this way, so that
 * the language model is compared on its own): plan->n_llm_h * plan->n_llm_w rows of the model's hidden_size floats
 * (copied; each rounded to BF16 as the official code's .to(h.dtype) does), plan->n_tokens must equal
 * dsv4_image_span_positions(model's parameters, n_llm_h, n_llm_w) (V4.1: n_llm_h * (n_llm_w + 1) + 2). Errors: NULL arguments, a model without vision, an inconsistent plan, out of memory. */
int dsv4_image_embed_from_rows(const struct dsv4_model *m, const dsv4_image_plan *plan, const float *rows,
                               dsv4_image_embed **out, char *err, size_t errlen);
/* Positions of an image span of n_llm_h x n_llm_w aligner rows under parameters p (vision/preprocess.c): V4.1
 * n_llm_h * (n_llm_w + 1) + 2; Vision-Exp the N-layout count without the leading pads (dsv4_image_plan.n_tokens). */
int dsv4_image_span_positions(const dsv4_vision_params *p, int n_llm_h, int n_llm_w);
#endif
