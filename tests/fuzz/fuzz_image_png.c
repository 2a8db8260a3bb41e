/* tests/fuzz/fuzz_image_png.c — libFuzzer harness: the PNG decoder and pre-processing (tests/fuzz/fuzz_image.h).
 * Input: the file after the 8-byte PNG signature. */
#include <stdint.h>
#define FORMAT "png"
static const uint8_t PREFIX[8] = {0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a};
#include "fuzz_image.h"
