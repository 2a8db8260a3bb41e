/* tests/test_engram.c — DeepSeek-V4.1 Engram parts (src/model/engram.h; docs/v41.md §2):
 * hash layout (primes, offsets, sums of the released config), multipliers (the released values and NumPy's
 * default_rng for other seeds / vocabulary sizes, printed by /usr/bin/python3 with NumPy 1.24), the docs/v41.md §2.3 hash
 * test vectors (DEAD latching included), the compressed token map of the V4 tokenizer, the gate / injection
 * against an independent evaluation, and the disk row reader on a real-size sparse table
 * (384,006,168 rows x 264 bytes; a few thousand known rows written; lookups through the cache and without). */
#include "testlib.h"
#include "model/engram.h"
#include "kernels/kernels.h"
#include "kernels/quant_v41.h"
#include "io/safetensors.h"
#include "io/readat.h"
#include <errno.h>

#include <fcntl.h>
#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

static const int64_t FLASH_ROWS[2] = {384006168, 384016682};
static const int FLASH_LAYERS[2] = {1, 14};

static void test_layout(void) {
    dsv4_engram_layout lo;
    char err[256];
    int rc = dsv4_engram_layout_init(&lo, 2, FLASH_LAYERS, FLASH_ROWS, 4, 8, 16000000, 99092, 2, err, sizeof err);
    CHECK(rc == 0, "layout of the released config: %s", err);
    if (rc) return;
    static const int64_t p1[24] = {16000057, 16000079, 16000081, 16000097, 16000121, 16000129, 16000133, 16000183,
                                   16000189, 16000207, 16000211, 16000253, 16000277, 16000289, 16000307, 16000321,
                                   16000339, 16000381, 16000393, 16000399, 16000403, 16000409, 16000447, 16000463};
    static const int64_t p14[24] = {16000477, 16000487, 16000499, 16000507, 16000511, 16000573, 16000609, 16000627,
                                    16000667, 16000669, 16000693, 16000697, 16000711, 16000729, 16000759, 16000769,
                                    16000781, 16000799, 16000813, 16000819, 16000841, 16000877, 16000879, 16000889};
    static const int64_t o1[24] = {0, 16000057, 32000136, 48000217, 64000314, 80000435, 96000564, 112000697,
                                   128000880, 144001069, 160001276, 176001487, 192001740, 208002017, 224002306,
                                   240002613, 256002934, 272003273, 288003654, 304004047, 320004446, 336004849,
                                   352005258, 368005705};
    static const int64_t o14[24] = {0, 16000477, 32000964, 48001463, 64001970, 80002481, 96003054, 112003663,
                                    128004290, 144004957, 160005626, 176006319, 192007016, 208007727, 224008456,
                                    240009215, 256009984, 272010765, 288011564, 304012377, 320013196, 336014037,
                                    352014914, 368015793};
    int bad = 0;
    for (int c = 0; c < 24; c++)
        bad += lo.prime[0][c] != p1[c] || lo.prime[1][c] != p14[c] || lo.offset[0][c] != o1[c] ||
               lo.offset[1][c] != o14[c];
    CHECK(bad == 0, "primes / offsets differ from docs/v41.md §2.3 in %d columns", bad);
    CHECK(lo.rows[0] == 384006168 && lo.rows[1] == 384016682, "row sums %lld %lld", (long long)lo.rows[0],
          (long long)lo.rows[1]);
    CHECK(lo.n_cols == 24, "n_cols %d", lo.n_cols);
    static const int64_t m1[4] = {76632096046245, 4839876093313, 35959672319349, 73987337458391};
    static const int64_t m14[4] = {67716810739261, 51510806800915, 30921347202721, 82619226485591};
    CHECK(memcmp(lo.mult[0], m1, sizeof m1) == 0, "layer 1 multipliers %lld %lld %lld %lld", (long long)lo.mult[0][0],
          (long long)lo.mult[0][1], (long long)lo.mult[0][2], (long long)lo.mult[0][3]);
    CHECK(memcmp(lo.mult[1], m14, sizeof m14) == 0, "layer 14 multipliers differ");

    /* NumPy default_rng for other seeds and a small compressed vocabulary (values from NumPy 1.24) */
    static const struct { int layer; int64_t cv; int64_t m[4]; } NP[] = {
        {1, 500, {15187255322829265, 959186003677247, 7126631698937927, 14663106486854049}},
        {2, 500, {15162556381065573, 7352191438554229, 4488349457964797, 14155203401804861}},
        {2, 99092, {76507469730479, 37097805264573, 22647385550623, 71424551940645}},
        {14, 500, {13420388419549773, 10208617735032735, 6128116274024149, 16373808781820707}},
    };
    for (size_t i = 0; i < sizeof NP / sizeof NP[0]; i++) {
        int64_t m[4];
        dsv4_engram_multipliers(NP[i].layer, 4, NP[i].cv, m);
        EXPECT(memcmp(m, NP[i].m, sizeof m) == 0, "multipliers of layer %d, vocab %lld differ from NumPy",
               NP[i].layer, (long long)NP[i].cv);
    }

    /* a wrong engram_num_embeddings is an error naming the key */
    int64_t wrong[2] = {FLASH_ROWS[0], FLASH_ROWS[1] - 1};
    rc = dsv4_engram_layout_init(&lo, 2, FLASH_LAYERS, wrong, 4, 8, 16000000, 99092, 2, err, sizeof err);
    CHECK(rc != 0 && strstr(err, "engram_num_embeddings[1]") && strstr(err, "384016682"), "wrong rows: %s", err);
    rc = dsv4_engram_layout_init(&lo, 2, FLASH_LAYERS, FLASH_ROWS, 4, 8, 16000000, 99092, 99092, err, sizeof err);
    CHECK(rc != 0 && strstr(err, "pad id"), "pad outside the compressed vocabulary: %s", err);
}

static void test_hash_vectors(void) {
    dsv4_engram_layout lo;
    char err[256];
    if (dsv4_engram_layout_init(&lo, 2, FLASH_LAYERS, FLASH_ROWS, 4, 8, 16000000, 99092, 2, err, sizeof err)) {
        test_fail("layout: %s", err);
        return;
    }
    const int32_t c[6] = {0, 1000, 2000, 3000, DSV4_ENGRAM_DEAD, 4000};
    static const struct { int l, p; int64_t v[24]; } V[] = {
        {0, 3, {4092044, 20393289, 39371370, 63444490, 68384304, 80919072, 103228105, 120424123, 128488902, 157441082,
                162181995, 189825057, 204863422, 220799491, 237224388, 248653676, 266189895, 272204575, 290548540,
                307824909, 330048013, 347440154, 352533897, 379091709}},
        {0, 0, {5702652, 24393184, 39183301, 61503783, 78984481, 90144770, 103724983, 121476532, 131476717, 152385926,
                164143652, 191599181, 198145581, 217419202, 238329687, 247482304, 257520185, 283540304, 288689443,
                315264704, 322314652, 348890037, 367865216, 380066193}},
        {0, 5, {5166492, 25187706, 44519926, 55521821, 65174119, 95364964, 102517802, 115160562, 129748150, 150786857,
                173345533, 188522583, 199092263, 220894772, 230244842, 248720540, 271186983, 279275640, 289220427,
                318322824, 321771955, 351018154, 362243018, 378110070}},
        {1, 3, {3263753, 22058944, 35291461, 60282478, 64828385, 83605959, 98747902, 115344818, 139029325, 149373749,
                162173386, 183094614, 192587206, 223698108, 239763597, 245549030, 262375991, 280196920, 292761684,
                309704819, 335157043, 344141215, 355389337, 379757279}},
    };
    for (size_t i = 0; i < sizeof V / sizeof V[0]; i++) {
        int32_t back[4];
        for (int s = 0; s < 4; s++) back[s] = V[i].p - s >= 0 ? c[V[i].p - s] : 12345; /* unused before p = 0 */
        int64_t idx[24];
        dsv4_engram_hash(&lo, V[i].l, V[i].p, back, idx);
        int bad = 0;
        for (int k = 0; k < 24; k++) bad += idx[k] != V[i].v[k];
        EXPECT(bad == 0, "hash vector layer %d position %d: %d of 24 columns differ (col 0: %lld)",
               FLASH_LAYERS[V[i].l], V[i].p, bad, (long long)idx[0]);
    }
    /* the current token DEAD: every value is pad, the same as position 0 with all-pad lookback */
    int32_t dead[4] = {DSV4_ENGRAM_DEAD, 5, 6, 7}, pads[4] = {2, 2, 2, 2};
    int64_t a[24], b[24];
    dsv4_engram_hash(&lo, 0, 9, dead, a);
    dsv4_engram_hash(&lo, 0, 9, pads, b);
    CHECK(memcmp(a, b, sizeof a) == 0, "DEAD current token must hash as all pad");
}

static void test_token_map(void) {
    dsv4_tokenizer *t = NULL;
    char err[512];
    const char *path = "build/v4-tokenizer.json";
    if (dsv4_tokenizer_load(&t, path, err, sizeof err)) { test_fail("%s", err); return; }
    int32_t *map = NULL;
    int n = 0, nd = 0;
    int rc = dsv4_engram_token_map(t, &map, &n, &nd, err, sizeof err);
    CHECK(rc == 0, "token map: %s", err);
    if (!rc) {
        printf("engram token map of %s: %d ids -> %d compressed ids (V4.1 release: 99092); pad map[2] = %d\n", path, n,
               nd, map[2]);
        CHECK(n == 129280, "ids %d", n);
        /* the V4 tokenizer (V3 vocabulary + V4 added tokens) gives exactly the V4.1 release's count: the contract
         * the reference asserts (engram_compressed_vocab_size) */
        CHECK(nd == 99092, "compressed ids of the V4 tokenizer: %d, the release asserts 99092", nd);
        CHECK(map[0] == 0 && map[1] == 1 && map[2] == 2, "the first special tokens map to themselves in first-seen "
              "order: %d %d %d", map[0], map[1], map[2]);
        /* "The", " the", "THE" collapse; "the" and "The" too */
        int32_t a = dsv4_token_id(t, "The"), b = dsv4_token_id(t, "\xC4\xA0the"), c = dsv4_token_id(t, "the");
        CHECK(a >= 0 && b >= 0 && c >= 0 && map[a] == map[b] && map[b] == map[c], "The / Ġthe / the: %d %d %d",
              a >= 0 ? map[a] : -1, b >= 0 ? map[b] : -1, c >= 0 ? map[c] : -1);
        /* a lone space stays a space (sentinel rule); a partial UTF-8 byte token keys by its raw form */
        char key[256];
        int32_t sp = dsv4_token_id(t, "\xC4\xA0");
        CHECK(sp >= 0 && dsv4_engram_token_key(t, sp, key, sizeof key) == 1 && key[0] == ' ', "key of 'Ġ'");
        int32_t nl = dsv4_token_id(t, "\xC4\x8A"); /* "\n" */
        CHECK(nl >= 0 && sp >= 0 && map[nl] == map[sp], "\\n and ' ' share one key");
        int32_t part = dsv4_token_id(t, "\xC3\xA3"); /* byte 0xE3 alone: not valid UTF-8 */
        CHECK(part >= 0 && dsv4_engram_token_key(t, part, key, sizeof key) == 2 && !strcmp(key, "\xC3\xA3"),
              "raw-form key of a partial byte token");
        /* accents stripped, compatibility forms folded: "É" and "e" (when both are tokens) */
        int32_t e1 = dsv4_token_id(t, "\xC3\x83\xC2\x89"), e2 = dsv4_token_id(t, "e");
        if (e1 >= 0 && e2 >= 0) CHECK(map[e1] == map[e2], "É and e");
    }
    free(map);
    dsv4_tokenizer_free(t);
}

static void test_inject(void) {
    enum { HC = 4, D = 64 };
    float X[HC * D], X0[HC * D], key[HC * D], val[D], w[HC * D], g[HC];
    uint64_t s = 12345;
    for (int i = 0; i < HC * D; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        X[i] = dsv4_round_bf16((float)((int)(s >> 40) % 2001 - 1000) / 500.0f);
        key[i] = dsv4_round_bf16((float)((int)(s >> 20) % 2001 - 1000) / 300.0f);
        w[i] = 0.5f + (float)(i % 7) / 7.0f;
    }
    for (int d = 0; d < D; d++) val[d] = dsv4_round_bf16((float)(d % 11) - 5.0f);
    memcpy(X0, X, sizeof X);
    dsv4_engram_inject(X, key, val, w, HC, D, 1e-20f, 0, g);
    int bad = 0;
    for (int c = 0; c < HC; c++) {
        /* independent: normalize x and key first, then the weighted dot, in long double */
        long double sx = 0, sk = 0, dot = 0;
        for (int d = 0; d < D; d++) { sx += (long double)X0[c * D + d] * X0[c * D + d]; sk += (long double)key[c * D + d] * key[c * D + d]; }
        long double nx = sqrtl(sx / D + 1e-20L), nk = sqrtl(sk / D + 1e-20L);
        for (int d = 0; d < D; d++) dot += (X0[c * D + d] / nx) * w[c * D + d] * (key[c * D + d] / nk);
        dot /= sqrtl((long double)D);
        long double mag = fabsl(dot) > 1e-6L ? fabsl(dot) : 1e-6L;
        long double ge = 1.0L / (1.0L + expl(-(dot < 0 ? -sqrtl(mag) : sqrtl(mag))));
        if (fabsl(ge - g[c]) > 1e-6L) bad++;
        for (int d = 0; d < D; d++) {
            float want = dsv4_round_bf16(X0[c * D + d] + g[c] * val[d]);
            if (X[c * D + d] != want) bad++;
        }
    }
    CHECK(bad == 0, "gate / injection: %d mismatches (gates %g %g %g %g)", bad, g[0], g[1], g[2], g[3]);
    memcpy(X, X0, sizeof X);
    dsv4_engram_inject(X, key, val, w, HC, D, 1e-20f, 1, g);
    CHECK(memcmp(X, X0, sizeof X) == 0 && g[0] == 0, "masked token passes through bit-identical");
    /* dot == 0 (key zero): gate sigmoid(sqrt(1e-6)) */
    float kz[HC * D] = {0};
    memcpy(X, X0, sizeof X);
    dsv4_engram_inject(X, kz, val, w, HC, D, 1e-20f, 0, g);
    CHECK(fabsf(g[0] - 1.0f / (1.0f + expf(-0.001f))) < 1e-7f, "zero dot gate %.9g", g[0]);
}

static ssize_t failing_pread(int fd, void *buf, size_t n, off_t off) {
    (void)fd; (void)buf; (void)n; (void)off;
    errno = EIO;
    return -1;
}

/* Real-size sparse table: 384,006,168 rows of 264 bytes (packed records), rows written at known places. */
static void test_table_io(void) {
    const int64_t rows = 384006168;
    const int rb = 264;
    char path[256];
    snprintf(path, sizeof path, "/tmp/dsv4_engram_test_%d.bin", (int)getpid());
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) { test_fail("cannot create %s", path); return; }
    int ok = ftruncate(fd, (off_t)(rows * rb)) == 0;
    CHECK(ok, "ftruncate %s to %lld bytes", path, (long long)(rows * rb));
    enum { NW = 4000 };
    int64_t *where = malloc(sizeof *where * NW);
    uint8_t rec[264];
    uint64_t s = 99;
    for (int i = 0; ok && i < NW; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        where[i] = i < 2 ? (i == 0 ? 0 : rows - 1) : (int64_t)((s >> 11) % (uint64_t)rows);
        for (int j = 0; j < rb; j++) rec[j] = (uint8_t)((where[i] * 31 + j * 7) & 0x7E); /* no NaN codes */
        for (int j = 256; j < 264; j++) rec[j] = (uint8_t)(120 + (where[i] + j) % 10);
        if (pwrite(fd, rec, rb, (off_t)(where[i] * rb)) != rb) { ok = 0; test_fail("pwrite"); }
    }
    struct stat st;
    fstat(fd, &st);
    printf("sparse table: %lld bytes logical, %lld bytes on disk\n", (long long)st.st_size,
           (long long)st.st_blocks * 512);
    close(fd);
    char err[512];
    for (int cached = 0; ok && cached < 2; cached++) {
        dsv4_engram_table *t = NULL;
        int rc = dsv4_engram_table_open(&t, path, rows, 256, 0, rb, NULL, 256, rb, cached ? 1024 : 0, err, sizeof err);
        CHECK(rc == 0, "open: %s", err);
        if (rc) break;
        uint8_t *out = malloc((size_t)NW * rb);
        int bad = 0;
        for (int pass = 0; pass < 2; pass++) {
            for (int i0 = 0; i0 < NW; i0 += 48) {
                int n = NW - i0 < 48 ? NW - i0 : 48;
                if (dsv4_engram_table_fetch(t, where + i0, n, out + (size_t)i0 * rb, err, sizeof err)) {
                    test_fail("fetch: %s", err);
                    bad++;
                    break;
                }
            }
            for (int i = 0; i < NW; i++) {
                /* a row's content is a function of its index, so a row written twice holds the same bytes */
                const uint8_t *o = out + (size_t)i * rb;
                for (int j = 0; j < 256; j++) bad += o[j] != (uint8_t)((where[i] * 31 + j * 7) & 0x7E);
                for (int j = 256; j < 264; j++) bad += o[j] != (uint8_t)(120 + (where[i] + j) % 10);
            }
        }
        CHECK(bad == 0, "%s reader: %d wrong bytes", cached ? "cached" : "uncached", bad);
        /* unwritten rows read zeros (a hole); decode of a written row */
        int64_t hole = 1;
        CHECK(dsv4_engram_table_fetch(t, &hole, 1, out, err, sizeof err) == 0 && out[0] == 0 && out[263] == 0,
              "hole row");
        float v[256];
        dsv4_engram_table_fetch(t, &where[5], 1, out, err, sizeof err);
        dsv4_engram_row_decode(out, 256, v);
        int dbad = 0;
        for (int j = 0; j < 256; j++)
            dbad += v[j] != dsv4_e4m3_to_f32(out[j]) * ldexpf(1.0f, out[256 + j / 32] - 127);
        CHECK(dbad == 0, "row decode: %d", dbad);
        int64_t req, hits;
        dsv4_engram_table_stats(t, &req, &hits);
        if (cached) CHECK(hits > 0 && hits < req, "cache hits %lld of %lld", (long long)hits, (long long)req);
        else CHECK(hits == 0, "no cache, %lld hits", (long long)hits);
        /* a device read error names the file (io/readat.h test hook) */
        int64_t fresh = 7;
        dsv4_readat_set_hook(failing_pread);
        int frc = dsv4_engram_table_fetch(t, &fresh, 1, out, err, sizeof err);
        dsv4_readat_set_hook(NULL);
        CHECK(frc != 0 && strstr(err, path) && strstr(err, "Input/output error"), "read error: %s", err);
        int64_t past = rows;
        CHECK(dsv4_engram_table_fetch(t, &past, 1, out, err, sizeof err) != 0 && strstr(err, "outside"),
              "row past the end: %s", err);
        free(out);
        dsv4_engram_table_close(t);
    }
    /* a table shorter than its prime sum */
    dsv4_engram_table *t = NULL;
    int rc = dsv4_engram_table_open(&t, path, rows + 1, 256, 0, rb, NULL, 256, rb, 0, err, sizeof err);
    CHECK(rc != 0 && strstr(err, path) && strstr(err, "shorter"), "short table: %s", err);
    rc = dsv4_engram_table_open(&t, "/nonexistent/engram.bin", 10, 256, 0, rb, NULL, 256, rb, 0, err, sizeof err);
    CHECK(rc != 0 && strstr(err, "/nonexistent/engram.bin"), "missing table: %s", err);
    free(where);
    unlink(path);
}

/* The Engram golden case (tools/reference/make_engram_goldens.py, float64 reference): two layers in the official
 * tensor layout, tables read from the safetensors file with pread at st_locate's offsets, hash, rows, wkv (FP8
 * 32x32 tiles, dequantized to BF16 exactly), gate and injection; three call splits must agree bit for bit. */
#define EG "tests/golden/v41/engram"
static void test_engram_golden(void) {
    char err[512];
    char *js = test_read_file(EG "/golden.json", NULL);
    cJSON *g = js ? cJSON_Parse(js) : NULL;
    free(js);
    if (!g) { test_fail("cannot read " EG "/golden.json"); return; }
    const cJSON *cfg = cJSON_GetObjectItem(g, "config");
#define CI(k) (cJSON_GetObjectItem(cfg, k)->valueint)
    const int hc = CI("hc"), D = CI("dim"), hd = CI("head_dim"), mng = CI("max_ngram"), nh = CI("n_heads");
    const int n = cJSON_GetObjectItem(g, "n_tokens")->valueint, cols = (mng - 1) * nh, rb = hd + hd / 32;
    int32_t cids[64];
    uint8_t mask[64];
    int k = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(g, "cids")) { cids[k] = e->valueint; mask[k] = e->valueint == DSV4_ENGRAM_DEAD; k++; }
    const cJSON *layers = cJSON_GetObjectItem(g, "layers");
    int lids[2];
    int64_t rows[2];
    for (int l = 0; l < 2; l++) {
        const cJSON *ly = cJSON_GetArrayItem(layers, l);
        lids[l] = cJSON_GetObjectItem(ly, "layer")->valueint;
        rows[l] = (int64_t)cJSON_GetObjectItem(ly, "rows")->valuedouble;
    }
    dsv4_engram_layout lo;
    if (dsv4_engram_layout_init(&lo, 2, lids, rows, mng, nh, CI("vocab_size"), CI("compressed_vocab"), CI("pad_id"),
                                err, sizeof err)) { test_fail("layout: %s", err); cJSON_Delete(g); return; }
    st_set *st = NULL;
    if (st_open_file(&st, EG "/model.safetensors", err, sizeof err)) { test_fail("%s", err); cJSON_Delete(g); return; }
    float *x_in = test_read_bf16(EG "/x_in.bf16", (size_t)n * hc * D);
    float *X = malloc(sizeof(float) * (size_t)n * hc * D), *X2 = malloc(sizeof(float) * (size_t)n * hc * D);
    uint8_t *rowbuf = malloc((size_t)n * cols * rb);
    for (int l = 0; l < 2 && x_in; l++) {
        const cJSON *ly = cJSON_GetArrayItem(layers, l);
        int bad = 0, c = 0;
        cJSON_ArrayForEach(e, cJSON_GetObjectItem(ly, "multipliers"))
            bad += strtoll(e->valuestring, NULL, 10) != lo.mult[l][c++];
        c = 0;
        cJSON_ArrayForEach(e, cJSON_GetObjectItem(ly, "primes")) bad += (int64_t)e->valuedouble != lo.prime[l][c++];
        EXPECT(bad == 0, "engram golden layer %d: multipliers / primes differ from NumPy / sympy", lids[l]);
        /* hash of every position from the absolute history */
        int64_t *idx = malloc(sizeof *idx * (size_t)n * cols);
        bad = 0;
        for (int p = 0; p < n; p++) {
            int32_t back[DSV4_ENGRAM_MAX_NGRAM];
            for (int s2 = 0; s2 < mng; s2++) back[s2] = p - s2 >= 0 ? cids[p - s2] : 0;
            dsv4_engram_hash(&lo, l, p, back, idx + (size_t)p * cols);
            const cJSON *want = cJSON_GetArrayItem(cJSON_GetObjectItem(ly, "idx"), p);
            for (int j = 0; j < cols; j++) bad += idx[(size_t)p * cols + j] != (int64_t)cJSON_GetArrayItem(want, j)->valuedouble;
        }
        EXPECT(bad == 0, "engram golden layer %d: %d hash indices differ", lids[l], bad);
        /* tables: two tensors of the safetensors file, read with pread at their file offsets */
        char name[96];
        snprintf(name, sizeof name, "layers.%d.engram.embed.weight", lids[l]);
        const st_tensor *tw = st_find(st, name);
        snprintf(name, sizeof name, "layers.%d.engram.embed.scale", lids[l]);
        const st_tensor *ts = st_find(st, name);
        const char *pw = NULL, *ps = NULL;
        uint64_t ow = 0, os = 0;
        dsv4_engram_table *tab = NULL;
        if (!tw || !ts || st_locate(st, tw->data, &pw, &ow) || st_locate(st, ts->data, &ps, &os) ||
            dsv4_engram_table_open(&tab, pw, rows[l], hd, (int64_t)ow, hd, ps, (int64_t)os, hd / 32, 0, err, sizeof err)) {
            test_fail("engram golden layer %d: table: %s", lids[l], err);
            free(idx);
            continue;
        }
        CHECK(dsv4_engram_table_fetch(tab, idx, n * cols, rowbuf, err, sizeof err) == 0, "fetch: %s", err);
        dsv4_engram_table_close(tab);
        /* projection weights */
        snprintf(name, sizeof name, "layers.%d.engram.wkv.weight", lids[l]);
        const st_tensor *wk = st_find(st, name);
        snprintf(name, sizeof name, "layers.%d.engram.wkv.scale", lids[l]);
        const st_tensor *wks = st_find(st, name);
        snprintf(name, sizeof name, "layers.%d.engram.q_weight", lids[l]);
        const st_tensor *qw = st_find(st, name);
        snprintf(name, sizeof name, "layers.%d.engram.k_weight", lids[l]);
        const st_tensor *kw = st_find(st, name);
        if (!wk || !wks || !qw || !kw) { test_fail("engram golden: missing tensors"); free(idx); continue; }
        const int O = (hc + 1) * D, K = cols * hd;
        uint16_t *wb = malloc(sizeof *wb * (size_t)O * K);
        long inexact = dsv4_fp8_tiles_to_bf16(wk->data, wks->data, O, K, 32, wb);
        CHECK(inexact == 0, "wkv dequantization inexact in %ld values", inexact);
        float *w = malloc(sizeof(float) * (size_t)hc * D);
        for (int i = 0; i < hc * D; i++)
            w[i] = dsv4_bf16_to_f32(((const uint16_t *)qw->data)[i]) * dsv4_bf16_to_f32(((const uint16_t *)kw->data)[i]);
        dsv4_engram_proj pj = {hc, D, cols, hd, {DSV4_W_BF16, O, K, wb, NULL}, w, 1e-20f};
        float *scr = malloc(sizeof(float) * dsv4_engram_scratch_floats(&pj, n));
        float gates[64 * 4];
        memcpy(X, x_in, sizeof(float) * (size_t)n * hc * D);
        dsv4_engram_apply(&pj, X, rowbuf, n, mask, gates, scr);
        snprintf(name, sizeof name, EG "/out_%d.bf16", lids[l]);
        float *want = test_read_bf16(name, (size_t)n * hc * D);
        long same = 0, over = 0;
        double worst = 0;
        for (size_t i = 0; want && i < (size_t)n * hc * D; i++) {
            double d = fabs((double)X[i] - want[i]);
            int ex;
            frexp(fmax(fabs(want[i]), 0x1p-126), &ex);
            double ulps = d / ldexp(1.0, ex - 8);
            same += d == 0;
            over += ulps > 1;
            if (ulps > worst) worst = ulps;
        }
        double gerr = 0;
        for (int t = 0; t < n; t++)
            for (int c2 = 0; c2 < hc; c2++)
                gerr = fmax(gerr, fabs(gates[t * hc + c2] -
                                       cJSON_GetArrayItem(cJSON_GetArrayItem(cJSON_GetObjectItem(ly, "gates"), t), c2)->valuedouble));
        printf("engram golden layer %d: %ld of %d values identical, worst %.2f BF16 ulps, gate error %.2e\n", lids[l],
               same, n * hc * D, worst, gerr);
        CHECK(want && over == 0 && same >= 0.99 * n * hc * D, "engram golden layer %d: %ld values beyond 1 ulp, %ld "
              "identical", lids[l], over, same);
        CHECK(gerr < 1e-5, "engram golden layer %d: gate error %g", lids[l], gerr);
        for (int t = 0; t < n; t++)
            if (mask[t]) CHECK(memcmp(X + (size_t)t * hc * D, x_in + (size_t)t * hc * D, sizeof(float) * hc * D) == 0,
                               "masked token %d changed", t);
        /* other call splits: 1 token at a time, and 5 + 1 + rest */
        memcpy(X2, x_in, sizeof(float) * (size_t)n * hc * D);
        for (int t = 0; t < n; t++)
            dsv4_engram_apply(&pj, X2 + (size_t)t * hc * D, rowbuf + (size_t)t * cols * rb, 1, mask + t, NULL, scr);
        CHECK(memcmp(X, X2, sizeof(float) * (size_t)n * hc * D) == 0, "one-token calls differ from one call");
        memcpy(X2, x_in, sizeof(float) * (size_t)n * hc * D);
        int splits[3] = {5, 1, n - 6}, t0 = 0;
        for (int q = 0; q < 3; t0 += splits[q++])
            dsv4_engram_apply(&pj, X2 + (size_t)t0 * hc * D, rowbuf + (size_t)t0 * cols * rb, splits[q], mask + t0, NULL, scr);
        CHECK(memcmp(X, X2, sizeof(float) * (size_t)n * hc * D) == 0, "5+1+rest calls differ from one call");
        free(want); free(scr); free(w); free(wb); free(idx);
    }
    free(x_in); free(X); free(X2); free(rowbuf);
    st_close(st);
    cJSON_Delete(g);
#undef CI
}

/* Whole-chunk hashing under three call splits equals per-position hashing; the prefetch thread returns the rows a
 * direct fetch returns (golden tables). */
static void test_chunk_pipeline(void) {
    char err[512];
    dsv4_engram_layout lo;
    const int lids[2] = {1, 3};
    const int64_t rows[2] = {240, 306};
    if (dsv4_engram_layout_init(&lo, 2, lids, rows, 3, 2, 50, 40, 2, err, sizeof err)) { test_fail("%s", err); return; }
    const int32_t cids[14] = {5, 17, 5, 17, 33, 0, DSV4_ENGRAM_DEAD, 9, 9, 9, 21, 38, 5, 17};
    const int n = 14, cols = lo.n_cols;
    int64_t direct[14][2][4], chunked[14][2][4];
    for (int p = 0; p < n; p++)
        for (int l = 0; l < 2; l++) {
            int32_t back[3];
            for (int s2 = 0; s2 < 3; s2++) back[s2] = p - s2 >= 0 ? cids[p - s2] : 0;
            dsv4_engram_hash(&lo, l, p, back, direct[p][l]);
        }
    static const int splits[3][15] = {{14}, {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, {5, 1, 1, 7}};
    for (int sc = 0; sc < 3; sc++) {
        dsv4_engram_history h;
        dsv4_engram_history_reset(&h);
        for (int i = 0, t0 = 0; t0 < n; t0 += splits[sc][i++])
            dsv4_engram_hash_chunk(&lo, &h, cids + t0, splits[sc][i], &chunked[t0][0][0]);
        EXPECT(memcmp(direct, chunked, sizeof direct) == 0 && h.pos == n, "chunk hashing, split %d", sc);
    }
    st_set *st = NULL;
    if (st_open_file(&st, EG "/model.safetensors", err, sizeof err)) { test_fail("%s", err); return; }
    dsv4_engram_table *tabs[2] = {NULL, NULL};
    for (int l = 0; l < 2; l++) {
        char nw[64], ns[64];
        snprintf(nw, sizeof nw, "layers.%d.engram.embed.weight", lids[l]);
        snprintf(ns, sizeof ns, "layers.%d.engram.embed.scale", lids[l]);
        const st_tensor *tw = st_find(st, nw), *ts = st_find(st, ns);
        const char *pw, *ps;
        uint64_t ow, os;
        if (!tw || !ts || st_locate(st, tw->data, &pw, &ow) || st_locate(st, ts->data, &ps, &os) ||
            dsv4_engram_table_open(&tabs[l], pw, rows[l], 32, (int64_t)ow, 32, ps, (int64_t)os, 1, 64, err, sizeof err))
            test_fail("table %d: %s", l, err);
    }
    dsv4_engram_prefetch *pf = NULL;
    if (tabs[0] && tabs[1] && dsv4_engram_prefetch_new(&pf, 16, 2, cols, 33, err, sizeof err) == 0) {
        uint8_t want[14 * 4 * 33];
        for (int rep = 0; rep < 3; rep++) {   /* repeated starts reuse the thread and the buffers */
            dsv4_engram_prefetch_start(pf, tabs, &direct[0][0][0], n);
            const uint8_t *rb = NULL;
            int rc = dsv4_engram_prefetch_wait(pf, &rb, err, sizeof err);
            CHECK(rc == 0, "prefetch: %s", err);
            for (int l = 0; l < 2 && rc == 0; l++) {
                int64_t li[14 * 4];
                for (int t = 0; t < n; t++) memcpy(li + t * cols, direct[t][l], sizeof(int64_t) * cols);
                dsv4_engram_table_fetch(tabs[l], li, n * cols, want, err, sizeof err);
                EXPECT(memcmp(dsv4_engram_prefetch_rows(pf, rb, l), want, sizeof want) == 0,
                       "prefetched rows of layer %d (round %d)", lids[l], rep);
            }
        }
        /* a bad row index surfaces as the wait's error */
        int64_t badidx[2][4] = {{0, 1, 2, 9999}, {0, 0, 0, 0}};
        dsv4_engram_prefetch_start(pf, tabs, &badidx[0][0], 1);
        CHECK(dsv4_engram_prefetch_wait(pf, NULL, err, sizeof err) != 0 && strstr(err, "9999"), "prefetch error: %s", err);
        dsv4_engram_prefetch_free(pf);
    } else test_fail("prefetch: %s", err);
    dsv4_engram_table_close(tabs[0]);
    dsv4_engram_table_close(tabs[1]);
    st_close(st);
}

int main(void) {
    test_layout();
    test_hash_vectors();
    test_token_map();
    test_inject();
    test_table_io();
    test_engram_golden();
    test_chunk_pipeline();
    return test_done();
}
