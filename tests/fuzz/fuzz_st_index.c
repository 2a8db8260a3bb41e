/* tests/fuzz/fuzz_st_index.c — libFuzzer harness: a sharded checkpoint directory (st_open_dir with
 * model.safetensors.index.json, src/io/safetensors.c).
 *
 * The directory holds two fixed valid shards, a.safetensors (tensors "x" F32 [2], "y" U8 [3]) and
 * b.safetensors ("z" BF16 [2, 2]). Input: the index JSON, optionally followed by a NUL byte and the bytes of a
 * third shard c.safetensors (absent when there is no NUL). Properties: no crash, leak or UB; when the directory
 * opens, every entry of the index's weight_map is a tensor of the set found in the shard it names, and the set
 * holds nothing else from a.safetensors/b.safetensors than their fixed tensors with their fixed data; on
 * failure the error is non-empty.
 */
#include <stdint.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "io/safetensors.h"
#include "fuzz_util.h"

static const char *dir;

/* an 8-byte length, the header, then the data */
static void write_shard(const char *name, const char *hdr, const void *d, size_t n) {
    size_t h = strlen(hdr);
    unsigned char buf[512];
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)h >> (8 * i));
    memcpy(buf + 8, hdr, h);
    memcpy(buf + 8 + h, d, n);
    fuzz_write(name, buf, 8 + h + n);
}

static const unsigned char A_DATA[11] = {0, 0, 128, 63, 0, 0, 0, 64, 7, 8, 9}; /* x = {1, 2}, y = {7, 8, 9} */
static const unsigned char B_DATA[8] = {128, 63, 0, 64, 64, 64, 128, 64};      /* z = {1, 2, 3, 4} (BF16) */

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    dir = fuzz_tmpdir();
    write_shard("a.safetensors",
                "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                "\"y\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[8,11]}}", A_DATA, sizeof A_DATA);
    write_shard("b.safetensors", "{\"z\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[0,8]}}", B_DATA,
                sizeof B_DATA);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nul = memchr(data, 0, size);
    size_t ilen = nul ? (size_t)(nul - data) : size;
    fuzz_write("model.safetensors.index.json", data, ilen);
    if (nul) fuzz_write("c.safetensors", nul + 1, size - ilen - 1);
    else fuzz_remove("c.safetensors");

    st_set *s = NULL;
    char err[512] = "";
    int rc = st_open_dir(&s, dir, err, sizeof err);
    if (rc != 0) {
        FUZZ_CHECK(s == NULL && err[0], "failed open: set %p, error '%s'", (void *)s, err);
        return 0;
    }
    /* every weight_map entry is in the set, in the shard it names */
    cJSON *root = cJSON_ParseWithLength((const char *)data, ilen);
    FUZZ_CHECK(root, "the directory opened with an index that is not JSON");
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    FUZZ_CHECK(cJSON_IsObject(wm), "opened without a weight_map object");
    for (const cJSON *e = wm->child; e; e = e->next) {
        const st_tensor *t = st_find(s, e->string);
        FUZZ_CHECK(t && cJSON_IsString(e), "weight_map entry '%s' not in the set", e->string);
        const char *base = strrchr(t->file, '/');
        FUZZ_CHECK(base && strcmp(base + 1, e->valuestring) == 0, "'%s' found in %s, index says %s", e->string,
                   t->file, e->valuestring);
    }
    /* the fixed shards' tensors are what they are */
    for (size_t i = 0; i < st_count(s); i++) {
        const st_tensor *t = st_at(s, i);
        const char *base = strrchr(t->file, '/') + 1;
        if (strcmp(base, "a.safetensors") == 0) {
            FUZZ_CHECK((strcmp(t->name, "x") == 0 && t->nbytes == 8 && memcmp(t->data, A_DATA, 8) == 0) ||
                       (strcmp(t->name, "y") == 0 && t->nbytes == 3 && memcmp(t->data, A_DATA + 8, 3) == 0),
                       "a.safetensors: unexpected tensor '%s'", t->name);
        } else if (strcmp(base, "b.safetensors") == 0) {
            FUZZ_CHECK(strcmp(t->name, "z") == 0 && t->nbytes == 8 && memcmp(t->data, B_DATA, 8) == 0,
                       "b.safetensors: unexpected tensor '%s'", t->name);
        }
        FUZZ_CHECK(st_find(s, t->name) == t, "'%s' not found by name", t->name);
    }
    cJSON_Delete(root);
    st_close(s);
    return 0;
}
