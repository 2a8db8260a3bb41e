/* model/vision_exp.c — DeepSeek-V4-Flash-Vision-Exp's image-span visibility (docs/vision-exp.md §6; [port]: the rule
 * of the official model.py get_image_visible / get_window_topk_idxs_visible as transcribed by the ports the note
 * ranks B and C; tools/reference/vision_exp.py `visible` / `window_keys`). Used by model/forward.c per chunk. */
#include "model/model.h"
#include "dsv4_vision.h"

void dsv4_vx_visible(const int8_t *roles, int n, int cap, int *left, int *right) {
    int opened = 0, closed = 0, last_start = 0;
    for (int i = 0; i < n; i++) {
        if (roles[i] == DSV4_TOKEN_IMAGE_START) { opened++; last_start = i; }
        if (roles[i] == DSV4_TOKEN_IMAGE_END) closed++;
        int inside = opened > closed || roles[i] == DSV4_TOKEN_IMAGE_END;
        left[i] = inside ? (i - last_start < cap - 1 ? i - last_start : cap - 1) : 0;
        right[i] = inside;   /* marks the rows inside; the distance is filled below */
    }
    int next_end = n;
    for (int i = n - 1; i >= 0; i--) {
        if (roles[i] == DSV4_TOKEN_IMAGE_END) next_end = i;
        right[i] = right[i] ? (next_end - i < cap ? next_end - i : cap) : 0;
    }
}

void dsv4_vx_window(int64_t p, int left, int right, int W, int cap, int64_t *lo, int64_t *hi) {
    int64_t l = p - (W - 1) - (left - (W - 1) > 0 ? left - (W - 1) : 0);
    *lo = l < 0 ? 0 : l;
    *hi = p + right < *lo + W + cap - 1 ? p + right : *lo + W + cap - 1;
}
