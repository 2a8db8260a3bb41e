/* cli/cmd_serve.c — `dsv4 serve`: the HTTP server (OpenAI Chat Completions / Completions, Anthropic Messages,
 * OpenAI Responses, /v1/models, /health, /metrics) on one model. Options are parsed here; the server itself
 * lives in src/server/ (docs/server.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "server/server.h"

static const char *serve_usage =
    "usage: dsv4 serve -m DIR [--host 127.0.0.1] [--port 8080] [-c N] [--parallel N] [--queue N] [-t N]\n"
    "                  [--api-key KEY] [--model-name NAME] [--timeout S] [--body-limit BYTES]\n"
    "                  [--checkpoint-stride N] [--max-checkpoints N] [--cache-dir DIR] [--cache-size BYTES]\n"
    "                  [--max-image-pixels N] [-v]\n"
    "  --host ADDR             IPv4 address to listen on (default 127.0.0.1)\n"
    "  --port N                TCP port (default 8080; 0 = any free port, printed at start)\n"
    "  -c, --ctx N             tokens per slot: prompt + reply must fit (default 8192, or the model's\n"
    "                          max_position_embeddings if smaller)\n"
    "  --parallel N            slots = requests generated at the same time (default 1)\n"
    "  --queue N               requests waiting for a slot before 503 + Retry-After (default 64)\n"
    "  --api-key KEY           require 'Authorization: Bearer KEY' or 'x-api-key: KEY' (also $DSV4_API_KEY)\n"
    "  --model-name NAME       the model id reported and accepted (default: the directory's last part)\n"
    "  --timeout S             close a connection idle for S seconds, e.g. a half-sent request (default 60)\n"
    "  --body-limit BYTES      largest request body, larger gets 413 (default 16M)\n"
    "  --checkpoint-stride N   prefix cache: state checkpoint every N prompt tokens (default 512)\n"
    "  --max-checkpoints N     prefix cache: checkpoints kept per slot (default 16)\n"
    "  --max-image-pixels N    a request's image of more pixels (width x height) is refused from its header, 1..178956970\n"
    "                          (default 16777216 = 4096 x 4096)\n"
    "  --cache-dir DIR         save prompt states there (prefixes of 64+ tokens) and reuse them, also after a restart\n"
    "  --cache-size BYTES      bound of the files in --cache-dir, least recently used out (default 1G)\n"
    "  --web DIR               directory of the chat page served at / (default: web/ of the source tree)\n"
    "  -v                      log HTTP errors\n";

int dsv4_cli_serve(int argc, char **argv) {
    srv_config cfg = { .host = "127.0.0.1", .port = 8080, .ctx = 8192, .parallel = 1, .queue = 64, .timeout_s = 60,
                       .body_limit = 16u << 20, .checkpoint_stride = 512, .max_checkpoints = 16 };
    uint64_t body_limit = cfg.body_limit, cache_size = 1ull << 30;
    long long max_px = SRV_MAX_IMAGE_PIXELS;
    int ctx_seen = 0;
    const cli_opt opts[] = {
        CLI_O_MODEL(&cfg.model_dir), CLI_O_CTX(&cfg.ctx, &ctx_seen),
        { .names = "--host", .kind = CLI_STR, .dst = &cfg.host },
        { .names = "--port", .kind = CLI_INT, .dst = &cfg.port, .lo = 0, .hi = 65535 },
        { .names = "-np|--parallel", .kind = CLI_INT, .dst = &cfg.parallel, .lo = 1, .hi = 256 },
        { .names = "--queue", .kind = CLI_INT, .dst = &cfg.queue, .lo = 1, .hi = 65536 },
        { .names = "--api-key", .kind = CLI_STR, .dst = &cfg.api_key },
        { .names = "--model-name|--alias", .kind = CLI_STR, .dst = &cfg.model_name },
        { .names = "--timeout", .kind = CLI_INT, .dst = &cfg.timeout_s, .lo = 1, .hi = 86400 },
        { .names = "--body-limit", .kind = CLI_CUSTOM, .dst = &body_limit, .parse = cli_parse_bytes,
          .what = "a byte count (e.g. 16M)" },
        { .names = "--checkpoint-stride", .kind = CLI_INT, .dst = &cfg.checkpoint_stride, .lo = 0, .hi = 1 << 24 },
        { .names = "--cache-dir", .kind = CLI_STR, .dst = &cfg.cache_dir },
        { .names = "--web", .kind = CLI_STR, .dst = &cfg.web_dir },
        { .names = "--cache-size", .kind = CLI_CUSTOM, .dst = &cache_size, .parse = cli_parse_bytes, .what = "a byte count (e.g. 4G)" },
        { .names = "--max-checkpoints", .kind = CLI_INT, .dst = &cfg.max_checkpoints, .lo = 0, .hi = SRV_MAX_CP },
        { .names = "--max-image-pixels", .kind = CLI_LONG, .dst = &max_px, .lo = 1, .hi = (double)DSV4_IMAGE_MAX_PIXELS },
        CLI_O_END
    };
    int prc = cli_parse("serve", serve_usage, opts, argc, argv);
    if (prc) return prc < 0 ? 0 : prc;
    if (!cfg.model_dir) { fprintf(stderr, "dsv4 serve: -m DIR is required (dsv4 serve -h lists the options)\n"); return 2; }
    if (body_limit < 1024 || body_limit > (1ull << 32)) { fprintf(stderr, "dsv4 serve: --body-limit must be in [1K, 4G]\n"); return 2; }
    cfg.body_limit = (size_t)body_limit;
    cfg.cache_size = (size_t)cache_size;
    cfg.max_image_pixels = max_px;
    cfg.verbose = cli_verbose;
    if (!cfg.api_key) { const char *k = getenv("DSV4_API_KEY"); if (k && *k) cfg.api_key = k; }
    char name[256];
    if (!cfg.model_name) {
        const char *d = cfg.model_dir;
        size_t n = strlen(d);
        while (n > 1 && d[n - 1] == '/') n--;
        size_t b = n;
        while (b > 0 && d[b - 1] != '/') b--;
        snprintf(name, sizeof name, "%.*s", (int)(n - b), d + b);
        cfg.model_name = name;
    }
    if (cli_parse_only) return 0;
    dsv4_model *m = cli_load_model("serve", cfg.model_dir);
    if (!m) return 1;
    cli_default_ctx(m, &cfg.ctx, ctx_seen);
    if (cli_check_ctx("serve", "-c", m, cfg.ctx)) { dsv4_model_free(m); return 2; }
    return srv_run(&cfg, m);
}
