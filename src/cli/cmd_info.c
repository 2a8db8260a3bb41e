/* cli/cmd_info.c — `dsv4 info -m DIR`: configuration summary, parameter counts, bytes per dtype and bytes read per
 * decoded token, from config.json alone (dsv4_config_info; no weights needed). A write error exits 1. */
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "dsv4.h"
#include <stdio.h>

static const char *info_usage =
    "usage: dsv4 info -m DIR\n"
    "  configuration summary, parameter counts, bytes per dtype and bytes read per decoded token,\n"
    "  computed from config.json alone (no weights needed)\n"
    "  -m, --model DIR  model directory (or its config.json)\n";

int dsv4_cli_info(int argc, char **argv) {
    const char *dir = NULL;
    const cli_opt opts[] = { CLI_O_MODEL(&dir), CLI_O_END };
    int prc = cli_parse("info", info_usage, opts, argc, argv);
    if (prc) return prc < 0 ? 0 : prc;
    if (!dir) { fprintf(stderr, "dsv4 info: -m DIR is required (dsv4 info -h lists the options)\n"); return 2; }
    if (cli_parse_only) return 0;
    char err[1024];
    dsv4_model_info in;
    if (dsv4_config_info(dir, &in, err, sizeof err) != 0) return cli_fail("info", "%s", err);
    static const char *names[DSV4_INFO_NDTYPE] = { "BF16", "F32", "F8_E4M3", "F8_E8M0", "FP4 (I8 packed)", "I64", "other" };
    char b1[32], b2[32];
    printf("model:              %s\n", dir);
    printf("vocab_size:         %d\n", in.vocab_size);
    printf("hidden_size:        %d\n", in.dim);
    if (in.v41) /* DeepSeek-V4.1 (docs/v41.md): CSA2 ratios 2 / 1, DSpark stages, Engram */
        printf("layers:             %d trunk (%d window-only, %d CSA2 ratio 2, %d CSA2 ratio 1, %d with Engram) + %d "
               "DSpark\n", in.n_layers, in.n_window_layers, in.n_csa2_layers[0], in.n_csa2_layers[1],
               in.n_engram_layers, in.n_mtp_layers);
    else
        printf("layers:             %d trunk (%d window-only, %d CSA, %d HCA) + %d MTP\n", in.n_layers,
               in.n_window_layers, in.n_csa_layers, in.n_hca_layers, in.n_mtp_layers);
    printf("attention:          %d heads x %d\n", in.n_heads, in.head_dim);
    printf("experts:            %d routed, top-%d, %d hash-routed layers\n", in.n_routed_experts,
           in.n_activated_experts, in.n_hash_layers);
    if (in.v41) {
        char b3[32];
        double bb = in.n_params - in.n_params_mtp - in.n_params_engram;
        printf("parameters:         backbone %.0f (%s); Engram %.0f (%s); DSpark %.0f (%s); total %.0f\n", bb,
               cli_count(bb, b1), in.n_params_engram, cli_count(in.n_params_engram, b2), in.n_params_mtp,
               cli_count(in.n_params_mtp, b3), in.n_params);
    } else
        printf("parameters:         %.0f (%s) without MTP; MTP block %.0f (%s); total %.0f\n",
               in.n_params - in.n_params_mtp, cli_count(in.n_params - in.n_params_mtp, b1), in.n_params_mtp,
               cli_count(in.n_params_mtp, b2), in.n_params);
    printf("active per token:   %.0f (%s)\n", in.n_params_active, cli_count(in.n_params_active, b1));
    printf("weight bytes:       %.0f (%s)\n", in.bytes_total, cli_bytes(in.bytes_total, b1));
    for (int i = 0; i < DSV4_INFO_NDTYPE; i++)
        if (in.bytes_by_dtype[i] > 0)
            printf("  %-16s  %.0f bytes (%s)\n", names[i], in.bytes_by_dtype[i], cli_bytes(in.bytes_by_dtype[i], b1));
    printf("bytes read per decoded token: %.0f (%s)\n", in.bytes_per_token, cli_bytes(in.bytes_per_token, b1));
    if (in.n_engram_layers)
        printf("  of which Engram:  %.0f (%s): %.0f table rows (as rows, not tables) + the wkv / q / k weights\n",
               in.bytes_per_token_engram, cli_bytes(in.bytes_per_token_engram, b1), in.engram_rows_per_token);
    return cli_stdout_close("info");
}
