/* tests/fuzz/fuzz_image_jpeg.c — libFuzzer harness: the JPEG decoder and pre-processing (tests/fuzz/fuzz_image.h).
 * Input: the file after the SOI marker FF D8. */
#include <stdint.h>
#define FORMAT "jpeg"
static const uint8_t PREFIX[2] = {0xff, 0xd8};
#include "fuzz_image.h"
