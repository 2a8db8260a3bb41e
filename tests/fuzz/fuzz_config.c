/* tests/fuzz/fuzz_config.c — libFuzzer harness: config.json (src/io/config.c) and the weights-free summary /
 * tensor list it implies (src/io/info.c).
 *
 * Input: the config.json bytes. Properties: no crash, leak or UB, bounded time and memory (the runner's
 * -rss_limit_mb and -timeout); a refused config has a non-empty error naming config.json; an accepted one has
 * a summary (both expert formats, or a clear refusal for FP4 with dims not multiples of 32) whose tensor count
 * is exact, which dsv4_config_info reproduces; where the list is affordable (<= 200,000 specs) it is built and
 * its length, parameter and byte sums equal the summary's, and the visitor walks the same names in the same
 * order.
 */
#include <stdint.h>
#include <string.h>
#include "dsv4.h"
#include "io/config.h"
#include "io/tensor_list.h"
#include "fuzz_util.h"

typedef struct { const dsv4_tensor_spec *v; int n, i; } walk;

static int visit(const dsv4_tensor_spec *t, void *arg) {
    walk *w = arg;
    FUZZ_CHECK(w->i < w->n && strcmp(w->v[w->i].name, t->name) == 0, "visitor spec %d '%s' differs from the list",
               w->i, t->name);
    w->i++;
    return 0;
}

static void check_format(const dsv4_config *c, int fp8) {
    dsv4_model_info in;
    int64_t n = -1;
    char err[512] = "";
    if (dsv4_tensor_summary(c, fp8, &in, &n, err, sizeof err) != 0) {
        FUZZ_CHECK(err[0], "summary refused without a message");
        return;
    }
    FUZZ_CHECK(n > 0 && in.n_params > 0 && in.bytes_total > 0, "empty summary");
    if (n > 200000) return;
    dsv4_tensor_spec *ts = NULL;
    int nl = 0;
    FUZZ_CHECK(dsv4_tensor_list(c, fp8, &ts, &nl, err, sizeof err) == 0, "list refused what the summary took: %s",
               err);
    double params = 0, bytes = 0;
    for (int i = 0; i < nl; i++) {
        double ne = (double)dsv4_tensor_spec_numel(&ts[i]);
        FUZZ_CHECK(ne >= 0, "negative numel");
        if (!(ts[i].flags & DSV4_TS_SCALE)) params += ne * ((ts[i].flags & DSV4_TS_FP4) ? 2 : 1);
        bytes += ne * (double)st_dtype_size(ts[i].dtype);
    }
    /* sums of integers below 2^53 are exact in either order only below 2^53; compare relatively */
    FUZZ_CHECK(nl == n, "list has %d specs, summary counted %lld", nl, (long long)n);
    FUZZ_CHECK(params == in.n_params || (params - in.n_params) / params < 1e-12, "params %.17g vs %.17g", params,
               in.n_params);
    FUZZ_CHECK(bytes == in.bytes_total || (bytes - in.bytes_total) / bytes < 1e-12, "bytes %.17g vs %.17g", bytes,
               in.bytes_total);
    walk w = {ts, nl, 0};
    FUZZ_CHECK(dsv4_tensor_list_each(c, fp8, visit, &w, err, sizeof err) == 0 && w.i == nl, "visitor walked %d of %d",
               w.i, nl);
    dsv4_tensor_list_free(ts);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write("config.json", data, size);
    dsv4_config c;
    char err[512] = "";
    if (dsv4_config_load(&c, path, err, sizeof err) != 0) {
        FUZZ_CHECK(strstr(err, "config.json"), "error does not name the file: '%s'", err);
        return 0;
    }
    FUZZ_CHECK(c.n_layers >= 1 && c.n_layers + c.n_mtp_layers <= DSV4_MAX_LAYERS && c.n_ratios == c.n_layers +
               c.n_mtp_layers, "layers %d + %d, ratios %d", c.n_layers, c.n_mtp_layers, c.n_ratios);
    check_format(&c, 0);
    check_format(&c, 1);
    dsv4_model_info in, in2;
    int64_t n = 0;
    int rs = dsv4_tensor_summary(&c, c.expert_fp8, &in, &n, err, sizeof err);
    int ri = dsv4_config_info(path, &in2, err, sizeof err);
    FUZZ_CHECK(rs == ri, "summary %d, config_info %d (%s)", rs, ri, err);
    FUZZ_CHECK(rs != 0 || memcmp(&in, &in2, sizeof in) == 0, "config_info differs from the summary");
    return 0;
}
