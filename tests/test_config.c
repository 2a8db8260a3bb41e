/* tests/test_config.c — src/io/config.c and src/io/info.c: the real DeepSeek-V4-Flash config.json
 * (vendor/v4-flash-metadata/config.json) loads with the right values; the weights-free summary and
 * the expected tensor list match docs/architecture.md §2.1/§2.2; bad configs give errors naming the key.
 * Prints one line per failed check and ends with "N passed, N failed".
 */
#include "dsv4.h"
#include "io/tensor_list.h"
#include "io/config.h"
#include "base/util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "testlib.h"

#define FLASH_DIR "vendor/v4-flash-metadata"
#define FLASH_CFG FLASH_DIR "/config.json"

static char tmpdir[64];
static char cfgpath[128];

static void write_cfg(const char *text) {
    FILE *f = fopen(cfgpath, "wb");
    fputs(text, f);
    fclose(f);
}


static const dsv4_tensor_spec *find_spec(const dsv4_tensor_spec *t, int n, const char *name) {
    for (int i = 0; i < n; i++) if (strcmp(t[i].name, name) == 0) return &t[i];
    return NULL;
}

static int spec_is(const dsv4_tensor_spec *t, st_dtype dt, int ndim, int64_t d0, int64_t d1) {
    return t && t->dtype == dt && t->ndim == ndim && t->shape[0] == d0 && (ndim < 2 || t->shape[1] == d1);
}

/* Sum of a list's params / bytes (the definition dsv4_tensor_summary must equal) and the summary's own. */
static void expect_summary_matches_list(const char *what, const dsv4_config *c, int fp8) {
    char err[512] = "";
    dsv4_tensor_spec *t = NULL;
    int n = 0;
    dsv4_model_info in;
    int64_t nt = -1;
    int rc = dsv4_tensor_list(c, fp8, &t, &n, err, sizeof err);
    int rc2 = dsv4_tensor_summary(c, fp8, &in, &nt, err, sizeof err);
    CHECK(rc == 0 && rc2 == 0, "%s: list %d summary %d: %s", what, rc, rc2, err);
    if (rc || rc2) { dsv4_tensor_list_free(t); return; }
    double params = 0, bytes = 0, fp4 = 0;
    for (int i = 0; i < n; i++) {
        double ne = (double)dsv4_tensor_spec_numel(&t[i]);
        if (!(t[i].flags & DSV4_TS_SCALE)) params += ne * ((t[i].flags & DSV4_TS_FP4) ? 2 : 1);
        bytes += ne * (double)st_dtype_size(t[i].dtype);
        if (t[i].flags & DSV4_TS_FP4) fp4 += ne;
    }
    CHECK(nt == n && in.n_params == params && in.bytes_total == bytes && in.bytes_by_dtype[DSV4_INFO_FP4] == fp4,
          "%s: summary (%lld tensors, %.0f params, %.0f bytes) vs list (%d, %.0f, %.0f)", what, (long long)nt,
          in.n_params, in.bytes_total, n, params, bytes);
    dsv4_tensor_list_free(t);
}

static void test_flash_config(void) {
    dsv4_config c;
    char err[512] = "";
    int rc = dsv4_config_load(&c, FLASH_CFG, err, sizeof err);
    CHECK(rc == 0, "load %s: %s", FLASH_CFG, err);
    if (rc) return;
    CHECK(c.vocab_size == 129280 && c.dim == 4096 && c.n_layers == 43 && c.n_mtp_layers == 1, "sizes");
    CHECK(c.n_heads == 64 && c.head_dim == 512 && c.rope_dim == 64 && c.q_lora_rank == 1024, "attention dims");
    CHECK(c.o_groups == 8 && c.o_lora_rank == 1024, "o_groups/o_lora_rank");
    CHECK(c.moe_inter_dim == 2048 && c.n_routed_experts == 256 && c.n_shared_experts == 1 &&
          c.n_activated_experts == 6 && c.n_hash_layers == 3, "moe");
    CHECK(c.window_size == 128 && c.index_n_heads == 64 && c.index_head_dim == 128 && c.index_topk == 512, "window/index");
    CHECK(c.hc_mult == 4 && c.hc_sinkhorn_iters == 20 && c.hc_eps == 1e-6f && c.norm_eps == 1e-6f, "hc/eps");
    CHECK(c.route_scale == 1.5f && c.swiglu_limit == 10.0f, "route_scale %g swiglu %g", (double)c.route_scale,
          (double)c.swiglu_limit);
    CHECK(c.rope_theta == 10000.0f && c.compress_rope_theta == 160000.0f, "rope thetas");
    CHECK(c.yarn == 1 && c.rope_factor == 16.0f && c.original_seq_len == 65536 && c.beta_fast == 32.0f &&
          c.beta_slow == 1.0f, "yarn");
    CHECK(c.max_position_embeddings == 1048576 && c.bos_token_id == 0 && c.eos_token_id == 1, "max_pos/bos/eos");
    CHECK(c.expert_fp8 == 0, "expert_fp8 default (fp4)");
    CHECK(c.n_ratios == 44, "n_ratios %d", c.n_ratios);
    CHECK(c.compress_ratios[0] == 0 && c.compress_ratios[1] == 0 && c.compress_ratios[2] == 4 &&
          c.compress_ratios[3] == 128, "ratios 0..3");
    CHECK(c.compress_ratios[42] == 4, "ratio[42] == 4 (layer 42 is CSA), got %d", c.compress_ratios[42]);
    CHECK(c.compress_ratios[43] == 0, "ratio[43] == 0 (MTP), got %d", c.compress_ratios[43]);
    int csa = 0, hca = 0;
    for (int i = 0; i < 43; i++) csa += c.compress_ratios[i] == 4, hca += c.compress_ratios[i] == 128;
    CHECK(csa == 21 && hca == 20, "21 CSA / 20 HCA trunk layers, got %d / %d", csa, hca);

    /* expected tensor list vs docs/architecture.md §2.2 (Flash column) */
    dsv4_tensor_spec *t = NULL;
    int n = 0;
    rc = dsv4_tensor_list(&c, 0, &t, &n, err, sizeof err);
    CHECK(rc == 0, "tensor list: %s", err);
    if (rc) return;
    /* count: 6 global; per layer 8 (norms, hc) + 13 attn + 2 gate + 256*6 experts + 6 shared = 1565;
     * CSA +4 compressor +7 indexer; HCA +4; MTP 1565 + 10.  6 + 43*1565 + 21*11 + 20*4 + 1575 = 69187 */
    CHECK(n == 69187, "tensor count %d", n);
    CHECK(spec_is(find_spec(t, n, "embed.weight"), ST_BF16, 2, 129280, 4096), "embed");
    CHECK(spec_is(find_spec(t, n, "head.weight"), ST_BF16, 2, 129280, 4096), "head");
    CHECK(spec_is(find_spec(t, n, "hc_head_fn"), ST_F32, 2, 4, 16384), "hc_head_fn");
    CHECK(spec_is(find_spec(t, n, "hc_head_scale"), ST_F32, 1, 1, 0), "hc_head_scale");
    CHECK(spec_is(find_spec(t, n, "layers.5.attn.wq_a.weight"), ST_F8_E4M3, 2, 1024, 4096) &&
          spec_is(find_spec(t, n, "layers.5.attn.wq_a.scale"), ST_F8_E8M0, 2, 8, 32), "wq_a");
    CHECK(spec_is(find_spec(t, n, "layers.5.attn.wq_b.weight"), ST_F8_E4M3, 2, 32768, 1024) &&
          spec_is(find_spec(t, n, "layers.5.attn.wq_b.scale"), ST_F8_E8M0, 2, 256, 8), "wq_b");
    CHECK(spec_is(find_spec(t, n, "layers.5.attn.wkv.weight"), ST_F8_E4M3, 2, 512, 4096) &&
          spec_is(find_spec(t, n, "layers.5.attn.wkv.scale"), ST_F8_E8M0, 2, 4, 32), "wkv");
    CHECK(spec_is(find_spec(t, n, "layers.5.attn.wo_a.weight"), ST_F8_E4M3, 2, 8192, 4096) &&
          spec_is(find_spec(t, n, "layers.5.attn.wo_a.scale"), ST_F8_E8M0, 2, 64, 32), "wo_a");
    CHECK(spec_is(find_spec(t, n, "layers.5.attn.wo_b.weight"), ST_F8_E4M3, 2, 4096, 8192) &&
          spec_is(find_spec(t, n, "layers.5.attn.wo_b.scale"), ST_F8_E8M0, 2, 32, 64), "wo_b");
    CHECK(spec_is(find_spec(t, n, "layers.42.attn.indexer.wq_b.weight"), ST_F8_E4M3, 2, 8192, 1024) &&
          spec_is(find_spec(t, n, "layers.42.attn.indexer.wq_b.scale"), ST_F8_E8M0, 2, 64, 8), "indexer wq_b");
    CHECK(spec_is(find_spec(t, n, "layers.7.ffn.shared_experts.w1.weight"), ST_F8_E4M3, 2, 2048, 4096) &&
          spec_is(find_spec(t, n, "layers.7.ffn.shared_experts.w1.scale"), ST_F8_E8M0, 2, 16, 32) &&
          spec_is(find_spec(t, n, "layers.7.ffn.shared_experts.w2.weight"), ST_F8_E4M3, 2, 4096, 2048) &&
          spec_is(find_spec(t, n, "layers.7.ffn.shared_experts.w2.scale"), ST_F8_E8M0, 2, 32, 16), "shared");
    CHECK(spec_is(find_spec(t, n, "layers.7.ffn.experts.255.w1.weight"), ST_I8, 2, 2048, 2048) &&
          spec_is(find_spec(t, n, "layers.7.ffn.experts.255.w1.scale"), ST_F8_E8M0, 2, 2048, 128) &&
          spec_is(find_spec(t, n, "layers.7.ffn.experts.255.w3.weight"), ST_I8, 2, 2048, 2048) &&
          spec_is(find_spec(t, n, "layers.7.ffn.experts.0.w2.weight"), ST_I8, 2, 4096, 1024) &&
          spec_is(find_spec(t, n, "layers.7.ffn.experts.0.w2.scale"), ST_F8_E8M0, 2, 4096, 64), "routed experts");
    CHECK(find_spec(t, n, "layers.7.ffn.experts.256.w1.weight") == NULL, "no expert 256");
    CHECK(spec_is(find_spec(t, n, "layers.7.hc_attn_fn"), ST_F32, 2, 24, 16384) &&
          spec_is(find_spec(t, n, "layers.7.hc_ffn_base"), ST_F32, 1, 24, 0) &&
          spec_is(find_spec(t, n, "layers.7.hc_ffn_scale"), ST_F32, 1, 3, 0), "hc");
    CHECK(spec_is(find_spec(t, n, "mtp.0.e_proj.weight"), ST_F8_E4M3, 2, 4096, 4096) &&
          spec_is(find_spec(t, n, "mtp.0.e_proj.scale"), ST_F8_E8M0, 2, 32, 32) &&
          spec_is(find_spec(t, n, "mtp.0.h_proj.scale"), ST_F8_E8M0, 2, 32, 32), "mtp e_proj/h_proj");
    CHECK(find_spec(t, n, "mtp.0.enorm.weight") && find_spec(t, n, "mtp.0.hnorm.weight") &&
          find_spec(t, n, "mtp.0.norm.weight") && find_spec(t, n, "mtp.0.hc_head_fn") &&
          find_spec(t, n, "mtp.0.ffn.gate.bias") && !find_spec(t, n, "mtp.0.ffn.gate.tid2eid") &&
          !find_spec(t, n, "mtp.0.attn.compressor.ape"), "mtp block tensors");
    /* CSA layer 2: compressor [1024, D], ape [4, 1024]; HCA layer 3: [512, D], ape [128, 512]; window layer 1: none */
    CHECK(spec_is(find_spec(t, n, "layers.2.attn.compressor.wkv.weight"), ST_BF16, 2, 1024, 4096) &&
          spec_is(find_spec(t, n, "layers.2.attn.compressor.ape"), ST_F32, 2, 4, 1024) &&
          spec_is(find_spec(t, n, "layers.2.attn.compressor.norm.weight"), ST_BF16, 1, 512, 0), "CSA compressor");
    CHECK(spec_is(find_spec(t, n, "layers.2.attn.indexer.compressor.wgate.weight"), ST_BF16, 2, 256, 4096) &&
          spec_is(find_spec(t, n, "layers.2.attn.indexer.compressor.ape"), ST_F32, 2, 4, 256) &&
          spec_is(find_spec(t, n, "layers.2.attn.indexer.compressor.norm.weight"), ST_BF16, 1, 128, 0) &&
          spec_is(find_spec(t, n, "layers.2.attn.indexer.weights_proj.weight"), ST_BF16, 2, 64, 4096), "indexer");
    CHECK(spec_is(find_spec(t, n, "layers.3.attn.compressor.wgate.weight"), ST_BF16, 2, 512, 4096) &&
          spec_is(find_spec(t, n, "layers.3.attn.compressor.ape"), ST_F32, 2, 128, 512) &&
          !find_spec(t, n, "layers.3.attn.indexer.wq_b.weight"), "HCA compressor, no indexer");
    CHECK(!find_spec(t, n, "layers.1.attn.compressor.wkv.weight"), "window layer has no compressor");
    CHECK(spec_is(find_spec(t, n, "layers.2.ffn.gate.tid2eid"), ST_I64, 2, 129280, 6) &&
          !find_spec(t, n, "layers.2.ffn.gate.bias") && !find_spec(t, n, "layers.3.ffn.gate.tid2eid") &&
          spec_is(find_spec(t, n, "layers.3.ffn.gate.bias"), ST_F32, 1, 256, 0), "hash vs bias");
    int dup = 0;
    for (int i = 0; i < n && !dup; i++)
        for (int j = i + 1; j < n && j < i + 40; j++) if (strcmp(t[i].name, t[j].name) == 0) dup = 1;
    CHECK(!dup, "no nearby duplicate names");

    /* trunk-only params (the model card's "284B" excludes the MTP block) */
    double trunk = 0;
    for (int i = 0; i < n; i++)
        if (t[i].layer < c.n_layers && !(t[i].flags & DSV4_TS_SCALE))
            trunk += (double)dsv4_tensor_spec_numel(&t[i]) * ((t[i].flags & DSV4_TS_FP4) ? 2 : 1);
    /* Independent arithmetic (D = 4096, V = 129280):
     *  per-layer common = norms 2D + hc 2*24*4D + 2*24 + 2*3 + sink 64 + wq_a 1024D + q_norm 1024
     *    + wq_b 32768*1024 + wkv 512D + kv_norm 512 + wo_a 8192*4096 + wo_b 4096*8192 + gate 256D
     *    + shared 3*2048D                                                   = 135,034,630
     *  routed experts 256 * 3 * 2048 * D                                    = 6,442,450,944
     *  CSA extra: compressor 2*1024D + 4*1024 + 512 = 8,393,216; indexer 8192*1024 + 64D + 2*256D + 4*256 + 128
     *    = 10,749,056                                                         -> 19,142,272
     *  HCA extra: 2*512D + 128*512 + 512                                    = 4,260,352
     *  global: 2VD + D + 4*4D + 4 + 1                                       = 1,059,131,397
     *  trunk = global + 43*(common + experts) + 3*6V (tid2eid) + 40*256 (bias) + 21*CSA + 20*HCA
     *        = 284,334,567,511
     *  MTP = common + experts + 256 + 2D^2 + 3D + 4*4D + 5                    = 6,610,048,891
     *  total = 290,944,616,402
     *  active = (global - VD + D) + 43*(common + 6*3*2048D) + 3*6 + 40*256 + 21*CSA + 20*HCA = 13,270,105,705 */
    CHECK(trunk == 284334567511.0, "trunk params %.0f", trunk);
    dsv4_tensor_list_free(t);

    expect_summary_matches_list("V4-Flash", &c, 0);
    /* FP8-expert variant of the same list: same parameter count, no FP4 tensors */
    rc = dsv4_tensor_list(&c, 1, &t, &n, err, sizeof err);
    CHECK(rc == 0 && spec_is(find_spec(t, n, "layers.7.ffn.experts.3.w2.weight"), ST_F8_E4M3, 2, 4096, 2048) &&
          spec_is(find_spec(t, n, "layers.7.ffn.experts.3.w2.scale"), ST_F8_E8M0, 2, 32, 16), "fp8 experts");
    dsv4_tensor_list_free(t);
}

static void test_flash_info(void) {
    dsv4_model_info in;
    char err[512] = "";
    int rc = dsv4_config_info(FLASH_DIR, &in, err, sizeof err);
    CHECK(rc == 0, "config_info: %s", err);
    if (rc) return;
    CHECK(in.vocab_size == 129280 && in.dim == 4096 && in.n_layers == 43 && in.n_mtp_layers == 1 &&
          in.n_heads == 64 && in.head_dim == 512 && in.n_routed_experts == 256 && in.n_activated_experts == 6 &&
          in.n_hash_layers == 3 && in.bos_token_id == 0 && in.eos_token_id == 1, "info header fields");
    CHECK(in.n_window_layers == 2 && in.n_csa_layers == 21 && in.n_hca_layers == 20, "layer kinds %d/%d/%d",
          in.n_window_layers, in.n_csa_layers, in.n_hca_layers);
    CHECK(in.n_params == 290944616402.0, "n_params %.0f (incl. MTP)", in.n_params);
    CHECK(in.n_params - in.n_params_mtp == 284334567511.0, "n_params without MTP %.0f (model card: 284B)", in.n_params - in.n_params_mtp);
    CHECK(in.n_params_active == 13270105705.0, "n_params_active %.0f", in.n_params_active);
    /* bytes: BF16 = 2*(2VD + D) + norms..., checked as a sum and per dtype */
    CHECK(in.bytes_by_dtype[DSV4_INFO_BF16] == 2830518528.0, "BF16 bytes %.0f", in.bytes_by_dtype[DSV4_INFO_BF16]);
    CHECK(in.bytes_by_dtype[DSV4_INFO_F32] == 144672072.0, "F32 bytes %.0f", in.bytes_by_dtype[DSV4_INFO_F32]);
    CHECK(in.bytes_by_dtype[DSV4_INFO_F8_E4M3] == 6023020544.0, "E4M3 bytes %.0f",
          in.bytes_by_dtype[DSV4_INFO_F8_E4M3]);
    CHECK(in.bytes_by_dtype[DSV4_INFO_F8_E8M0] == 8858737664.0, "E8M0 bytes %.0f",
          in.bytes_by_dtype[DSV4_INFO_F8_E8M0]);
    /* FP4: 44 blocks * 256 experts * 3 * 2048*4096/2 bytes */
    CHECK(in.bytes_by_dtype[DSV4_INFO_FP4] == 44.0 * 256 * 3 * 2048 * 2048, "FP4 bytes %.0f",
          in.bytes_by_dtype[DSV4_INFO_FP4]);
    CHECK(in.bytes_by_dtype[DSV4_INFO_I64] == 3.0 * 129280 * 6 * 8, "I64 bytes %.0f", in.bytes_by_dtype[DSV4_INFO_I64]);
    CHECK(in.bytes_by_dtype[DSV4_INFO_OTHER] == 0, "OTHER bytes");
    double sum = 0;
    for (int i = 0; i < DSV4_INFO_NDTYPE; i++) sum += in.bytes_by_dtype[i];
    CHECK(sum == in.bytes_total && in.bytes_total == 159609485896.0, "bytes_total %.0f (sum %.0f)", in.bytes_total, sum);
    CHECK(in.bytes_per_token == 11217580396.0, "bytes_per_token %.0f", in.bytes_per_token);
    CHECK(in.bytes_per_token < in.bytes_total / 10, "per-token bytes well below total");

    /* also accepts the config path itself */
    dsv4_model_info in2;
    rc = dsv4_config_info(FLASH_CFG, &in2, err, sizeof err);
    CHECK(rc == 0 && in2.n_params == in.n_params, "config_info on a .json path: %s", rc ? err : "");

    /* expert_dtype "fp8": same params, experts now E4M3 */
    char *base = test_read_file(FLASH_CFG, NULL);
    char *e = test_replace_first(base, "\"compress_rope_theta\"", "\"expert_dtype\": \"fp8\", \"compress_rope_theta\"");
    write_cfg(e);
    rc = dsv4_config_info(tmpdir, &in2, err, sizeof err);
    CHECK(rc == 0 && in2.n_params == in.n_params && in2.bytes_by_dtype[DSV4_INFO_FP4] == 0 &&
          in2.bytes_by_dtype[DSV4_INFO_F8_E4M3] == in.bytes_by_dtype[DSV4_INFO_F8_E4M3] +
          2 * in.bytes_by_dtype[DSV4_INFO_FP4], "expert_dtype fp8 info: %s", rc ? err : "");
    dsv4_config ce;
    rc = dsv4_config_load(&ce, cfgpath, err, sizeof err);
    CHECK(rc == 0 && ce.expert_dtype_given == 1 && ce.expert_fp8 == 1, "expert_dtype fp8: given %d fp8 %d %s",
          ce.expert_dtype_given, ce.expert_fp8, rc ? err : "");
    free(e);
    /* expert_dtype "fp4" given explicitly: same info as the key's absence (the published V4-Flash config, which
     * dsv4_config_info takes as FP4: the key was added in the current revision) */
    e = test_replace_first(base, "\"compress_rope_theta\"", "\"expert_dtype\": \"fp4\", \"compress_rope_theta\"");
    write_cfg(e);
    rc = dsv4_config_load(&ce, cfgpath, err, sizeof err);
    CHECK(rc == 0 && ce.expert_dtype_given == 1 && ce.expert_fp8 == 0, "expert_dtype fp4: given %d fp8 %d %s",
          ce.expert_dtype_given, ce.expert_fp8, rc ? err : "");
    rc = dsv4_config_info(tmpdir, &in2, err, sizeof err);
    CHECK(rc == 0 && in2.bytes_by_dtype[DSV4_INFO_FP4] == in.bytes_by_dtype[DSV4_INFO_FP4] &&
          in2.bytes_total == in.bytes_total, "expert_dtype fp4 info equals the absent key's: %s", rc ? err : "");
    rc = dsv4_config_load(&ce, FLASH_CFG, err, sizeof err);
    CHECK(rc == 0 && ce.expert_dtype_given == 0 && ce.expert_fp8 == 0, "V4-Flash config has no expert_dtype: given %d",
          ce.expert_dtype_given);
    free(e);
    free(base);

    rc = dsv4_config_info("no/such/dir", &in2, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "no/such/dir/config.json"), "missing dir: %s", err);
}

/* Write `text` as config.json and expect dsv4_config_load to fail with all of the given substrings. */
static void expect_bad(const char *what, const char *text, const char *s1, const char *s2) {
    write_cfg(text);
    dsv4_config c;
    char err[512] = "";
    int rc = dsv4_config_load(&c, cfgpath, err, sizeof err);
    CHECK(rc == -1 && strstr(err, s1) && (!s2 || strstr(err, s2)) && strstr(err, "config.json"),
          "%s: rc %d, error \"%s\"", what, rc, err);
    /* and through dsv4_config_info */
    dsv4_model_info in;
    char err2[512] = "";
    rc = dsv4_config_info(tmpdir, &in, err2, sizeof err2);
    CHECK(rc == -1 && strstr(err2, s1), "%s via config_info: \"%s\"", what, err2);
}

static void test_bad_configs(void) {
    char *base = test_read_file(FLASH_CFG, NULL);
    if (!base) { CHECK(0, "cannot read %s", FLASH_CFG); return; }
    char *e;

    /* not JSON: a missing comma on line 3 */
    expect_bad("not JSON", "{\n  \"vocab_size\": 10\n  \"hidden_size\": 4\n}\n", "not valid JSON", "(line 3?)");
    expect_bad("empty", "", "not valid JSON", NULL);
    expect_bad("array", "[1, 2]", "not a JSON object", NULL);
    expect_bad("missing hidden_size", (e = test_replace_first(base, "\"hidden_size\"", "\"hidden_sizeX\"")), "missing key 'hidden_size'",
               NULL), free(e);
    expect_bad("missing compress_ratios", (e = test_replace_first(base, "\"compress_ratios\"", "\"compress_ratiosX\"")),
               "missing key 'compress_ratios'", NULL), free(e);
    expect_bad("string hidden_size", (e = test_replace_first(base, "\"hidden_size\": 4096", "\"hidden_size\": \"4096\"")),
               "key 'hidden_size' must be an integer, found a string", NULL), free(e);
    expect_bad("fractional layers", (e = test_replace_first(base, "\"num_hidden_layers\": 43", "\"num_hidden_layers\": 43.5")),
               "key 'num_hidden_layers' must be an integer", NULL), free(e);
    expect_bad("string rope_theta", (e = test_replace_first(base, "\"rope_theta\": 10000", "\"rope_theta\": [10000]")),
               "key 'rope_theta' must be a number, found an array", NULL), free(e);
    expect_bad("ratios not array", (e = test_replace_first(base, "\"compress_ratios\": [", "\"compress_ratios\": 4, \"x\": [")),
               "key 'compress_ratios' must be an array", NULL), free(e);
    expect_bad("43 ratios", (e = test_replace_first(base, "[0, 0, 4, 128,", "[0, 4, 128,")),
               "key 'compress_ratios' has 43 entries, expected 44 (num_hidden_layers + num_nextn_predict_layers)",
               NULL), free(e);
    expect_bad("negative ratio", (e = test_replace_first(base, "[0, 0, 4, 128,", "[0, -4, 4, 128,")),
               "key 'compress_ratios' entry 1", NULL), free(e);
    expect_bad("string ratio", (e = test_replace_first(base, "[0, 0, 4, 128,", "[0, \"0\", 4, 128,")),
               "key 'compress_ratios' entry 1", "a string"), free(e);
    expect_bad("zero hidden", (e = test_replace_first(base, "\"hidden_size\": 4096", "\"hidden_size\": 0")),
               "key 'hidden_size' must be positive", NULL), free(e);
    expect_bad("negative heads", (e = test_replace_first(base, "\"num_attention_heads\": 64", "\"num_attention_heads\": -64")),
               "key 'num_attention_heads' must be positive", NULL), free(e);
    expect_bad("head_dim <= rope", (e = test_replace_first(base, "\"head_dim\": 512", "\"head_dim\": 64")),
               "key 'head_dim' (64) must exceed 'qk_rope_head_dim' (64)", NULL), free(e);
    expect_bad("o_groups", (e = test_replace_first(base, "\"o_groups\": 8", "\"o_groups\": 7")), "key 'o_groups'", NULL), free(e);
    expect_bad("topk > experts", (e = test_replace_first(base, "\"num_experts_per_tok\": 6", "\"num_experts_per_tok\": 300")),
               "key 'num_experts_per_tok'", NULL), free(e);
    expect_bad("hash layers", (e = test_replace_first(base, "\"num_hash_layers\": 3", "\"num_hash_layers\": 44")),
               "key 'num_hash_layers'", NULL), free(e);
    expect_bad("missing index_topk with CSA", (e = test_replace_first(base, "\"index_topk\"", "\"index_topkX\"")),
               "missing key 'index_topk'", NULL), free(e);
    expect_bad("rope_scaling type", (e = test_replace_first(base, "\"type\": \"yarn\"", "\"type\": \"linear\"")),
               "rope_scaling.type", NULL), free(e);
    expect_bad("rope_scaling factor", (e = test_replace_first(base, "\"factor\": 16", "\"factorX\": 16")),
               "missing key 'rope_scaling.factor'", NULL), free(e);
    expect_bad("expert_dtype", (e = test_replace_first(base, "\"compress_rope_theta\"", "\"expert_dtype\": \"int4\", \"compress_rope_theta\"")),
               "key 'expert_dtype'", NULL), free(e);
    expect_bad("eos out of range", (e = test_replace_first(base, "\"eos_token_id\": 1", "\"eos_token_id\": 129280")),
               "key 'eos_token_id'", NULL), free(e);
    expect_bad("shared experts 2", (e = test_replace_first(base, "\"n_shared_experts\": 1", "\"n_shared_experts\": 2")),
               "key 'n_shared_experts'", NULL), free(e);

    /* upper bounds (io/config.h): sizes whose products would overflow int arithmetic are refused by name */
    expect_bad("hc_mult 65", (e = test_replace_first(base, "\"hc_mult\": 4", "\"hc_mult\": 65")),
               "key 'hc_mult' is 65, above the supported maximum 16", NULL), free(e);
    expect_bad("hc_mult 2^24", (e = test_replace_first(base, "\"hc_mult\": 4", "\"hc_mult\": 16777216")), "key 'hc_mult'",
               "maximum"), free(e);
    expect_bad("head_dim 2^30", (e = test_replace_first(base, "\"head_dim\": 512", "\"head_dim\": 1073741824")), "key 'head_dim'",
               "maximum 1048576"), free(e);
    expect_bad("o_lora_rank 2^30", (e = test_replace_first(base, "\"o_lora_rank\": 1024", "\"o_lora_rank\": 1073741824")),
               "key 'o_lora_rank'", "maximum"), free(e);
    expect_bad("index_head_dim 2^30", (e = test_replace_first(base, "\"index_head_dim\": 128", "\"index_head_dim\": 1073741824")),
               "key 'index_head_dim'", "maximum"), free(e);
    expect_bad("moe 2^30", (e = test_replace_first(base, "\"moe_intermediate_size\": 2048", "\"moe_intermediate_size\": 1073741824")),
               "key 'moe_intermediate_size'", "maximum"), free(e);
    expect_bad("q_lora 2^30", (e = test_replace_first(base, "\"q_lora_rank\": 1024", "\"q_lora_rank\": 1073741824")),
               "key 'q_lora_rank'", "maximum"), free(e);
    expect_bad("vocab 2^30", (e = test_replace_first(base, "\"vocab_size\": 129280", "\"vocab_size\": 1073741824")),
               "key 'vocab_size'", "maximum 16777216"), free(e);
    expect_bad("window 2^31-1", (e = test_replace_first(base, "\"sliding_window\": 128", "\"sliding_window\": 2147483647")),
               "key 'sliding_window'", "maximum"), free(e);
    expect_bad("sinkhorn 1001", (e = test_replace_first(base, "\"hc_sinkhorn_iters\": 20", "\"hc_sinkhorn_iters\": 1001")),
               "key 'hc_sinkhorn_iters'", "maximum 1000"), free(e);
    expect_bad("experts 65537", (e = test_replace_first(base, "\"n_routed_experts\": 256", "\"n_routed_experts\": 65537")),
               "key 'n_routed_experts'", "maximum 65536"), free(e);
    expect_bad("index_topk 2^21", (e = test_replace_first(base, "\"index_topk\": 512", "\"index_topk\": 2097152")),
               "key 'index_topk'", "maximum"), free(e);
    expect_bad("ratio 2^21", (e = test_replace_first(base, "[0, 0, 4, 128,", "[0, 0, 4, 2097152,")),
               "key 'compress_ratios' entry 3 is 2097152, above the supported maximum", NULL), free(e);
    {
        char *e1 = test_replace_first(base, "\"num_attention_heads\": 64", "\"num_attention_heads\": 65536");
        expect_bad("heads x head_dim", (e = test_replace_first(e1, "\"head_dim\": 512", "\"head_dim\": 65536")),
                   "keys 'num_attention_heads' x 'head_dim' = 65536 x 65536 = 4294967296 exceeds", NULL), free(e);
        free(e1);
    }
    expect_bad("layers 256 + 1 MTP", (e = test_replace_first(base, "\"num_hidden_layers\": 43", "\"num_hidden_layers\": 256")),
               "key 'num_hidden_layers' is 256, above the supported maximum 255", NULL), free(e);
    /* a key given twice (Python's json keeps the last, cJSON the first): refused, at any depth */
    expect_bad("duplicate key", (e = test_replace_first(base, "\"hidden_size\": 4096", "\"hidden_size\": 4096, \"hidden_size\": 2048")),
               "key 'hidden_size' appears more than once", NULL), free(e);
    expect_bad("duplicate nested key", (e = test_replace_first(base, "\"factor\": 16", "\"factor\": 16, \"factor\": 4")),
               "key 'rope_scaling.factor' appears more than once", NULL), free(e);

    /* V4-Pro's values (docs/architecture.md §1.1) are inside every bound */
    {
        char *p1 = test_replace_first(base, "\"hidden_size\": 4096", "\"hidden_size\": 7168");
        char *p2 = test_replace_first(p1, "\"num_attention_heads\": 64", "\"num_attention_heads\": 128");
        char *p3 = test_replace_first(p2, "\"q_lora_rank\": 1024", "\"q_lora_rank\": 1536");
        char *p4 = test_replace_first(p3, "\"o_groups\": 8", "\"o_groups\": 16");
        char *p5 = test_replace_first(p4, "\"moe_intermediate_size\": 2048", "\"moe_intermediate_size\": 3072");
        char *p6 = test_replace_first(p5, "\"n_routed_experts\": 256", "\"n_routed_experts\": 384");
        char *p7 = test_replace_first(p6, "\"index_topk\": 512", "\"index_topk\": 1024");
        write_cfg(p7);
        dsv4_config pc;
        char perr[512] = "";
        int prc = dsv4_config_load(&pc, cfgpath, perr, sizeof perr);
        CHECK(prc == 0 && pc.dim == 7168 && pc.n_heads == 128 && pc.n_routed_experts == 384, "Pro-sized config: %s",
              perr);
        free(p1); free(p2); free(p3); free(p4); free(p5); free(p6); free(p7);
    }

    /* optional keys: defaults; a config with no CSA layer needs no index_* keys */
    const char *mini =
        "{\"vocab_size\": 300, \"hidden_size\": 64, \"num_hidden_layers\": 2, \"num_attention_heads\": 2,"
        " \"head_dim\": 32, \"qk_rope_head_dim\": 8, \"q_lora_rank\": 32, \"o_groups\": 1, \"o_lora_rank\": 16,"
        " \"moe_intermediate_size\": 32, \"n_routed_experts\": 4, \"n_shared_experts\": 0, \"num_experts_per_tok\": 2,"
        " \"sliding_window\": 8, \"rope_theta\": 10000, \"max_position_embeddings\": 512,"
        " \"compress_ratios\": [0, 16]}";
    write_cfg(mini);
    dsv4_config c;
    char err[512] = "";
    int rc = dsv4_config_load(&c, cfgpath, err, sizeof err);
    CHECK(rc == 0, "mini config: %s", err);
    if (rc == 0) {
        CHECK(c.n_mtp_layers == 0 && c.n_hash_layers == 0 && c.hc_mult == 4 && c.hc_sinkhorn_iters == 20 &&
              c.hc_eps == 1e-6f && c.norm_eps == 1e-6f && c.swiglu_limit == 0 && c.route_scale == 1 &&
              c.yarn == 0 && c.compress_rope_theta == 10000.0f && c.bos_token_id == 0 && c.eos_token_id == 1 &&
              c.index_n_heads == 0 && c.index_topk == 0 && c.expert_fp8 == 0 && c.n_ratios == 2 &&
              c.compress_ratios[1] == 16, "mini defaults");
        dsv4_model_info in;
        rc = dsv4_config_info(tmpdir, &in, err, sizeof err);
        /* global 2*300*64 + 64 + 4*256 + 5 = 39493; per layer: norms 128 + hc 2*24*256+48+6 = 12342 + sink 2
         * + wq_a 2048 + q_norm 32 + wq_b 2048 + wkv 2048 + kv_norm 32 + wo_a 16*64 + wo_b 64*16 + gate 256
         * + bias 4 + experts 4*3*32*64 = 24576  -> 45564; layer 1 HCA (R=16): 2*32*64 + 16*32 + 32 = 4640 */
        CHECK(rc == 0 && in.n_params == 39493.0 + 2 * 45564 + 4640 && in.n_window_layers == 1 &&
              in.n_hca_layers == 1 && in.n_csa_layers == 0, "mini info: %s n_params %.0f", rc ? err : "", in.n_params);
    }
    free(base);

    dsv4_config c2;
    rc = dsv4_config_load(&c2, "no/such/config.json", err, sizeof err);
    CHECK(rc == -1 && strstr(err, "no/such/config.json") && strstr(err, "cannot open"), "missing file: %s", err);
}

static int visit_until_routed(const dsv4_tensor_spec *t, void *arg) {
    ++*(int *)arg;
    return (t->flags & DSV4_TS_ROUTED) && strcmp(t->name, "layers.0.ffn.experts.0.w1.weight") == 0 ? 7 : 0;
}

/* Issue 8 fuzzing finding: a config inside the documented ranges (255 layers, 65,536 routed experts) implies
 * 100 M tensors; dsv4_config_info used to build all of them as a list (~18 GB) before failing. The summary is
 * now counted per layer: exact, fast, and nothing the size of the tensor count is allocated. */
static void test_huge_config(void) {
    static char text[8192];
    int o = snprintf(text, sizeof text,
        "{\"vocab_size\": 300, \"hidden_size\": 64, \"num_hidden_layers\": 255, \"num_attention_heads\": 2,"
        " \"head_dim\": 32, \"qk_rope_head_dim\": 8, \"q_lora_rank\": 32, \"o_groups\": 1, \"o_lora_rank\": 16,"
        " \"moe_intermediate_size\": 32, \"n_routed_experts\": 65536, \"n_shared_experts\": 0,"
        " \"num_experts_per_tok\": 2, \"sliding_window\": 8, \"rope_theta\": 10000, \"max_position_embeddings\": 512,"
        " \"compress_ratios\": [0");
    for (int i = 1; i < 255; i++) o += snprintf(text + o, sizeof text - (size_t)o, ", 0");
    snprintf(text + o, sizeof text - (size_t)o, "]}");
    write_cfg(text);
    dsv4_model_info in;
    char err[512] = "";
    int rc = dsv4_config_info(tmpdir, &in, err, sizeof err);
    /* per layer as the mini config of test_bad_configs (20728 non-expert params) plus, per expert, gate row 64
     * + bias 1 + w1/w2/w3 3*32*64: 20728 + 65536*6209; global 39493 */
    const double want = 39493.0 + 255.0 * (20728.0 + 65536.0 * 6209.0);
    CHECK(rc == 0 && in.n_params == want && in.n_routed_experts == 65536 && in.n_layers == 255,
          "255 layers x 65536 experts: info %s, n_params %.0f (want %.0f)", rc ? err : "ok", in.n_params, want);
    /* FP4 expert bytes: 255 layers * 65536 experts * 3 * 32*64/2 */
    CHECK(rc == 0 && in.bytes_by_dtype[DSV4_INFO_FP4] == 255.0 * 65536 * 3 * 1024, "FP4 bytes %.0f",
          in.bytes_by_dtype[DSV4_INFO_FP4]);
    dsv4_config c;
    rc = dsv4_config_load(&c, cfgpath, err, sizeof err);
    CHECK(rc == 0, "huge config loads: %s", err);
    if (rc) return;
    int64_t nt = 0;
    dsv4_model_info in2;
    rc = dsv4_tensor_summary(&c, 0, &in2, &nt, err, sizeof err);
    /* 6 global; per layer 23 non-expert tensors (8 norm/hc, sink, 5 FP8 linears x 2, q/kv norms, gate, bias) */
    CHECK(rc == 0 && nt == 6 + 255 * (23 + 6 * (int64_t)65536), "tensor count %lld", (long long)nt);
    /* the visitor walks the same specs without storing them: it stops at the first routed expert (the 30th spec:
     * 6 global + layer 0's 23 come first) and returns the visitor's value */
    int seen = 0;
    rc = dsv4_tensor_list_each(&c, 0, visit_until_routed, &seen, err, sizeof err);
    CHECK(rc == 7 && seen == 30, "list_each stops at the first routed expert: rc %d after %d specs", rc, seen);
    /* and the summary equals the list's sums where a list is affordable (same config, 4 experts, 3 layers) */
    c.n_routed_experts = 4;
    c.n_layers = 3;
    c.n_ratios = 3;
    expect_summary_matches_list("3 layers x 4 experts fp4", &c, 0);
    expect_summary_matches_list("3 layers x 4 experts fp8", &c, 1);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/dsv4-test-config.XXXXXX");
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 2; }
    snprintf(cfgpath, sizeof cfgpath, "%s/config.json", tmpdir);
    if (access(FLASH_CFG, R_OK) != 0) {
        printf("FAIL: %s not readable (run from the repository root)\n", FLASH_CFG);
        n_fail++;
    } else {
        test_flash_config();
        test_flash_info();
    }
    test_bad_configs();
    test_huge_config();
    remove(cfgpath);
    rmdir(tmpdir);
    return test_done();
}
