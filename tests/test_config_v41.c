/* tests/test_config_v41.c — DeepSeek-V4.1 config.json (src/io/config_v41.c) and its tensor list / summary
 * (src/io/info.c). tests/golden/v41/flash-config.json holds the V4.1-Flash values of docs/v41.md §1
 * (nested HF layout: text_config, vision_config, quantization_config). Checks: every value parsed; the tensor
 * list has the V4.1 names, shapes and dtypes (32x32 tiles, FP4 experts, no ape / hc_head / hash routing,
 * compressors on KV sources only, Engram and DSpark tensors); the summary's backbone / Engram / DSpark split,
 * bytes and per-token bytes against independent arithmetic from the spec; bad configs are refused naming the key;
 * the V4 configs still load as before (tests/test_config.c). */
#include "testlib.h"
#include "io/config.h"
#include "io/tensor_list.h"

#include <math.h>
#include <unistd.h>

#define V41_CFG "tests/golden/v41/flash-config.json"

static void test_values(void) {
    dsv4_config c;
    char err[512];
    int rc = dsv4_config_load(&c, V41_CFG, err, sizeof err);
    CHECK(rc == 0, "load: %s", err);
    if (rc) return;
    const dsv4_config_v41 *x = &c.x;
    CHECK(x->v41 == 1 && c.fp8_block == 32 && c.expert_dtype_given && !c.expert_fp8, "v41 %d block %d expert %d/%d",
          x->v41, c.fp8_block, c.expert_dtype_given, c.expert_fp8);
    CHECK(c.dim == 5120 && c.n_layers == 40 && c.n_mtp_layers == 3 && c.moe_inter_dim == 2304 &&
          c.n_routed_experts == 384 && c.n_activated_experts == 6 && c.q_lora_rank == 1280 && c.index_n_heads == 32 &&
          c.index_head_dim == 128 && c.index_topk == 512 && c.n_hash_layers == 0, "text dims");
    CHECK(c.norm_eps == 1e-20f && c.route_scale == 1.5f && c.swiglu_limit == 10.0f && c.yarn && c.rope_factor == 16 &&
          c.original_seq_len == 65536 && c.compress_rope_theta == 160000.0f, "eps / routing / rope");
    int ok = c.n_ratios == 43;
    for (int i = 0; i < 43 && ok; i++) ok = c.compress_ratios[i] == (i < 2 ? 0 : i < 20 ? 2 : i < 40 ? 1 : 0);
    CHECK(ok, "compress_ratios");
    CHECK(x->n_kv_sources == 4 && x->kv_sources[3] == 20 && x->n_index_sources == 8 && x->index_sources[7] == 36 &&
          x->candidate_source == 20 && x->candidate_topk_blocks == 2048 && x->candidate_block_size == 8, "sharing");
    CHECK(x->n_engram == 2 && x->engram_layer_ids[0] == 1 && x->engram_layer_ids[1] == 14 &&
          x->engram_num_embeddings[0] == 384006168 && x->engram_num_embeddings[1] == 384016682 &&
          x->engram_max_ngram == 4 && x->engram_vocab_size == 16000000 && x->engram_n_heads == 8 &&
          x->engram_head_dim == 256 && x->engram_pad_token_id == 2 && x->engram_compressed_vocab == 99092, "engram");
    CHECK(x->dspark_block_size == 5 && x->dspark_noise_token_id == 128799 && x->n_dspark_targets == 3 &&
          x->dspark_target_layer_ids[0] == 37 && x->dspark_markov_rank == 256 && x->dspark_n_routed_experts == 128 &&
          x->dspark_n_activated_experts == 3, "dspark");
    CHECK(x->image_token_id == 129264 && x->vision_n_layers == 32 && x->vision_dim == 1024 && x->vision_n_heads == 16 &&
          x->vision_inter_dim == 2816 && x->vision_patch_size == 14 && x->vision_downsample_ratio == 3 &&
          x->vision_max_n_token == 1024 && x->vision_min_pixels == 295936, "vision");
    CHECK(c.bos_token_id == 0 && c.eos_token_id == 1, "bos/eos");
}

static const dsv4_tensor_spec *find(const dsv4_tensor_spec *ts, int n, const char *name) {
    for (int i = 0; i < n; i++) if (!strcmp(ts[i].name, name)) return &ts[i];
    return NULL;
}

static void expect_tensor(const dsv4_tensor_spec *ts, int n, const char *name, st_dtype dt, int64_t d0, int64_t d1) {
    const dsv4_tensor_spec *t = find(ts, n, name);
    EXPECT(t && t->dtype == dt && t->shape[0] == d0 && (t->ndim == 1 ? d1 == 0 : t->shape[1] == d1),
           "tensor %s: %s dtype %d shape [%lld, %lld]", name, t ? "found" : "missing", t ? (int)t->dtype : -1,
           t ? (long long)t->shape[0] : -1LL, t && t->ndim > 1 ? (long long)t->shape[1] : 0LL);
}

static void test_tensors(void) {
    dsv4_config c;
    char err[512];
    if (dsv4_config_load(&c, V41_CFG, err, sizeof err)) { test_fail("%s", err); return; }
    dsv4_tensor_spec *ts;
    int n;
    if (dsv4_tensor_list(&c, 0, &ts, &n, err, sizeof err)) { test_fail("list: %s", err); return; }
    expect_tensor(ts, n, "embed.weight", ST_BF16, 129280, 5120);
    expect_tensor(ts, n, "layers.0.attn.wq_a.weight", ST_F8_E4M3, 1280, 5120);
    expect_tensor(ts, n, "layers.0.attn.wq_a.scale", ST_F8_E8M0, 40, 160);
    expect_tensor(ts, n, "layers.0.attn.wo_a.weight", ST_F8_E4M3, 8192, 4096);
    expect_tensor(ts, n, "layers.0.attn.wo_a.scale", ST_F8_E8M0, 256, 128);
    expect_tensor(ts, n, "layers.2.attn.compressor.wkv.weight", ST_BF16, 512, 5120);
    expect_tensor(ts, n, "layers.2.attn.compressor.wgate.weight", ST_BF16, 512, 5120);
    expect_tensor(ts, n, "layers.2.attn.indexer.wk.weight", ST_BF16, 128, 512);
    expect_tensor(ts, n, "layers.2.attn.indexer.k_norm.weight", ST_BF16, 128, 0);
    expect_tensor(ts, n, "layers.2.attn.indexer.wq_b.weight", ST_F8_E4M3, 4096, 1280);
    expect_tensor(ts, n, "layers.2.attn.indexer.weights_proj.weight", ST_BF16, 32, 5120);
    expect_tensor(ts, n, "layers.20.attn.compressor.wkv.weight", ST_BF16, 512, 5120);
    expect_tensor(ts, n, "layers.24.attn.indexer.wq_b.weight", ST_F8_E4M3, 4096, 1280);
    expect_tensor(ts, n, "layers.5.ffn.experts.383.w2.weight", ST_I8, 5120, 1152);
    expect_tensor(ts, n, "layers.5.ffn.experts.383.w2.scale", ST_F8_E8M0, 5120, 72);
    expect_tensor(ts, n, "layers.5.ffn.shared_experts.w1.scale", ST_F8_E8M0, 72, 160);
    expect_tensor(ts, n, "layers.5.ffn.gate.bias_vl", ST_F32, 384, 0);
    expect_tensor(ts, n, "layers.1.engram.embed.weight", ST_F8_E4M3, 384006168, 256);
    expect_tensor(ts, n, "layers.14.engram.embed.scale", ST_F8_E8M0, 384016682, 8);
    expect_tensor(ts, n, "layers.14.engram.wkv.weight", ST_F8_E4M3, 25600, 6144);
    expect_tensor(ts, n, "layers.14.engram.wkv.scale", ST_F8_E8M0, 800, 192);
    expect_tensor(ts, n, "layers.1.engram.q_weight", ST_BF16, 4, 5120);
    expect_tensor(ts, n, "mtp.0.main_proj.weight", ST_F8_E4M3, 5120, 15360);
    expect_tensor(ts, n, "mtp.0.main_norm.weight", ST_BF16, 5120, 0);
    expect_tensor(ts, n, "mtp.1.ffn.experts.127.w1.weight", ST_I8, 2304, 2560);
    expect_tensor(ts, n, "mtp.2.markov_head.embed.weight", ST_BF16, 129280, 256);
    expect_tensor(ts, n, "mtp.2.confidence_head.proj.weight", ST_BF16, 1, 5376);
    const char *absent[] = {"hc_head_fn", "layers.3.attn.compressor.wkv.weight", "layers.20.attn.compressor.wgate.weight",
                            "layers.3.attn.indexer.wq_b.weight", "layers.24.attn.indexer.wk.weight",
                            "layers.2.attn.compressor.ape", "layers.0.ffn.gate.tid2eid", "mtp.1.ffn.experts.128.w1.weight",
                            "mtp.0.attn.compressor.wkv.weight", "layers.2.engram.wkv.weight", "mtp.0.e_proj.weight",
                            "mtp.0.markov_head.embed.weight"};
    for (size_t i = 0; i < sizeof absent / sizeof absent[0]; i++)
        EXPECT(!find(ts, n, absent[i]), "tensor %s must not be listed for V4.1", absent[i]);

    /* summary against independent arithmetic (docs/v41.md §2.8: tables 196.61 GB of E4M3 + 6.14 GB of E8M0) */
    dsv4_model_info in;
    if (dsv4_tensor_summary(&c, 0, &in, NULL, err, sizeof err)) { test_fail("summary: %s", err); free(ts); return; }
    const double rows = 384006168.0 + 384016682.0;
    const double wkv = 25600.0 * 6144.0, qk = 2 * 4 * 5120.0;
    double engram_params = rows * 256 + 2 * (wkv + qk);
    CHECK(in.v41 == 1 && in.n_engram_layers == 2 && in.n_csa2_layers[0] == 18 && in.n_csa2_layers[1] == 20 &&
          in.n_window_layers == 2, "layer kinds");
    CHECK(in.n_params_engram == engram_params, "engram params %.0f, expected %.0f", in.n_params_engram, engram_params);
    CHECK(in.engram_rows_per_token == 48, "engram rows per token %g", in.engram_rows_per_token);
    /* per token: 48 rows x 264 B, plus both wkv (E4M3 + 32x32 scales) and the q/k weights in BF16 */
    double ebytes = 48 * 264.0 + 2 * (wkv + 800.0 * 192 + qk * 2);
    CHECK(fabs(in.bytes_per_token_engram - ebytes) < 1e-3, "engram bytes per token %.1f, expected %.1f",
          in.bytes_per_token_engram, ebytes);
    /* DSpark: 3 blocks of 128 experts each, main_proj, markov head, confidence head */
    double sum = 0, dsp = 0;
    for (int i = 0; i < n; i++) {
        double p = (ts[i].flags & DSV4_TS_SCALE) ? 0 : (double)dsv4_tensor_spec_numel(&ts[i]) * ((ts[i].flags & DSV4_TS_FP4) ? 2 : 1);
        sum += p;
        if (ts[i].layer >= 40) dsp += p;
    }
    CHECK(in.n_params == sum && in.n_params_mtp == dsp, "params %.0f (list %.0f), dspark %.0f (list %.0f)", in.n_params,
          sum, in.n_params_mtp, dsp);
    double table_bytes = rows * 264;
    CHECK(table_bytes > 202.7e9 && table_bytes < 202.8e9, "tables %.4g B", table_bytes);
    printf("V4.1-Flash: %.1f B params = backbone %.2f B + Engram %.2f B + DSpark %.2f B; %.1f GB in all "
           "(E4M3 %.1f, FP4 %.1f, BF16 %.1f, E8M0 %.2f, F32 %.2f); per decoded token %.2f GB of weights read, of which "
           "Engram %.1f MB (%.0f rows = %.1f KB of table rows + 2 wkv)\n",
           in.n_params / 1e9, (in.n_params - in.n_params_mtp - in.n_params_engram) / 1e9, in.n_params_engram / 1e9,
           in.n_params_mtp / 1e9, in.bytes_total / 1e9, in.bytes_by_dtype[DSV4_INFO_F8_E4M3] / 1e9,
           in.bytes_by_dtype[DSV4_INFO_FP4] / 1e9, in.bytes_by_dtype[DSV4_INFO_BF16] / 1e9,
           in.bytes_by_dtype[DSV4_INFO_F8_E8M0] / 1e9, in.bytes_by_dtype[DSV4_INFO_F32] / 1e9,
           in.bytes_per_token / 1e9, in.bytes_per_token_engram / 1e6, in.engram_rows_per_token,
           in.engram_rows_per_token * 264 / 1e3);
    dsv4_tensor_list_free(ts);
}

/* Write the Flash config with one text_config edit (a JSON fragment replacing `from`) and expect an error. */
static void bad(const char *dir, const char *from, const char *to, const char *want) {
    char *txt = test_read_file(V41_CFG, NULL);
    if (!txt) { test_fail("read %s", V41_CFG); return; }
    char *at = strstr(txt, from);
    if (!at) { test_fail("fragment %s not in the config", from); free(txt); return; }
    char path[512];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    fwrite(txt, 1, (size_t)(at - txt), f);
    fputs(to, f);
    fputs(at + strlen(from), f);
    fclose(f);
    free(txt);
    dsv4_config c;
    char err[512];
    int rc = dsv4_config_load(&c, path, err, sizeof err);
    EXPECT(rc == -1 && strstr(err, want) && strstr(err, "config.json"), "%s -> %s: expected an error with '%s', got %s",
           from, to, want, rc ? err : "success");
}

static void test_bad(void) {
    char dir[] = "/tmp/dsv4_v41cfg_XXXXXX";
    if (!mkdtemp(dir)) { test_fail("mkdtemp"); return; }
    bad(dir, "\"model_type\": \"deepseek_v41\"", "\"model_type\": \"deepseek_v4\"", "model_type");
    bad(dir, "\"hidden_size\": 5120,\n    \"num_hidden_layers\"", "\"num_hidden_layers\"", "text_config.hidden_size");
    bad(dir, "\"kv_source_layer_ids\": [\n      2,\n      8,", "\"kv_source_layer_ids\": [\n      3,\n      8,",
        "layer 2 (compress ratio 2) has no KV source");
    bad(dir, "\"index_source_layer_ids\": [\n      2,", "\"index_source_layer_ids\": [\n      3,", "index_source");
    bad(dir, "\"candidate_source_layer_id\": 20", "\"candidate_source_layer_id\": 21", "candidate_source_layer_id");
    bad(dir, "\"engram_num_embeddings\": [\n      384006168,\n", "\"engram_num_embeddings\": [\n",
        "engram_num_embeddings' has 1 entries");
    bad(dir, "\"engram_head_dim\": 256", "\"engram_head_dim\": 100", "engram_head_dim");
    bad(dir, "\"weight_block_size\": [\n      32,\n      32\n    ]", "\"weight_block_size\": [32, 64]",
        "weight_block_size");
    bad(dir, "\"dspark_target_layer_ids\": [\n      37,", "\"dspark_target_layer_ids\": [\n      40,",
        "dspark_target_layer_ids");
    bad(dir, "\"compress_ratios\": [\n      0,\n      0,\n      2", "\"compress_ratios\": [\n      0,\n      0,\n      4",
        "compress_ratios' entry 2 is 4");
    bad(dir, "\"text_config\": {", "\"text_config\": 5, \"x\": {", "text_config");
    /* a V4.1 config.json without its checkpoint: the config is accepted, then the missing shards are named */
    char path[512];
    snprintf(path, sizeof path, "%s/config.json", dir);
    char *txt = test_read_file(V41_CFG, NULL);
    FILE *f = fopen(path, "w");
    if (f && txt) fputs(txt, f);
    if (f) fclose(f);
    free(txt);
    dsv4_model *m = NULL;
    char err[512];
    int rc = dsv4_model_load(&m, dir, err, sizeof err);
    CHECK(rc != 0 && !m && strstr(err, dir) && strstr(err, "safetensors"), "V4.1 load without weights: %s", err);
    unlink(path);
    rmdir(dir);
}

int main(void) {
    test_values();
    test_tensors();
    test_bad();
    return test_done();
}
