/* cli/cmd_logits.c — `dsv4 logits -m DIR --tokens ID,ID,... [--prefill N] --out FILE|-`: raw logits rows.
 * The first --prefill tokens (default all) are evaluated in one call, then one token per call; each call writes
 * the vocab_size little-endian float32 logits of its last position (the golden `.f32` layout). `--out -` writes
 * to stdout. Every id is checked against the vocabulary before anything is written; a failed write removes the
 * partial file (a file, not stdout) and exits 1.
 * --image FILE (repeatable; a model with a vision tower): each takes the next image placeholder id (config.json
 * image_token_id) of --tokens, whose span is expanded (dsv4_prompt_build); --prefill and the rows then count the
 * expanded positions, evaluated with dsv4_eval_prompt (include/dsv4_vision.h). DeepSeek-V4-Flash-Vision-Exp evaluates
 * an image span (START..END) inside one call: a one-token call that reaches a span evaluates the whole span
 * (dsv4_prompt_call_end; one row), and a --prefill that ends inside a span is refused naming the image file. */
#include "cli/cli_util.h"
#include "cli/cli_image.h"
#include "cli/commands.h"
#include "dsv4.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERRLEN 1024

static const char *logits_usage =
    "usage: dsv4 logits -m DIR --tokens ID,ID,... [--prefill N] [--image FILE]... --out FILE|-\n"
    "  -m, --model DIR  model directory\n"
    "  --tokens IDS     token ids separated by commas or spaces\n"
    "  --prefill N      evaluate the first N tokens in one call, 1..16777216 (default: all), then one per call\n"
    "  --out FILE|-     one row of vocab_size little-endian float32 logits per call (last position of the call);\n"
    "                   - = stdout\n"
    "  --image FILE     a JPEG or PNG for the next image placeholder id of --tokens (repeatable); --prefill then\n"
    "                   counts the positions with the image spans expanded; on DeepSeek-V4-Flash-Vision-Exp a\n"
    "                   call after the prefill that reaches an image span evaluates the whole span (one row for\n"
    "                   it), and --prefill may not end inside a span\n";

int dsv4_cli_logits(int argc, char **argv) {
    const char *dir = NULL, *tokens = NULL, *outp = NULL;
    int prefill = -1, prefill_seen = 0;
    cli_image_list imgs = { .n = 0 };
    const cli_opt opts[] = {
        CLI_O_IMAGE(&imgs),
        CLI_O_MODEL(&dir),
        { .names = "--tokens", .kind = CLI_STR, .dst = &tokens },
        { .names = "--prefill", .kind = CLI_INT, .dst = &prefill, .lo = 1, .hi = CLI_MAX_N,
          .seen = &prefill_seen },
        { .names = "--out|-o", .kind = CLI_STR, .dst = &outp },
        CLI_O_END
    };
    int prc = cli_parse("logits", logits_usage, opts, argc, argv);
    if (prc) return prc < 0 ? 0 : prc;
    if (!dir || !tokens || !outp) {
        fprintf(stderr, "dsv4 logits: -m, --tokens and --out are required (dsv4 logits -h lists the options)\n");
        return 2;
    }
    char err[ERRLEN];
    int n = 0;
    int32_t *ids = cli_parse_ids(tokens, strlen(tokens), &n, err, sizeof err);
    if (!ids) { fprintf(stderr, "dsv4 logits: --tokens: %s\n", err); return 2; }
    if (n == 0) { free(ids); fprintf(stderr, "dsv4 logits: --tokens is empty\n"); return 2; }
    if (!prefill_seen) prefill = n;
    if (prefill > n && !imgs.n) {
        free(ids);
        fprintf(stderr, "dsv4 logits: --prefill %d exceeds the %d tokens given\n", prefill, n);
        return 2;
    }
    if (cli_parse_only) { free(ids); return 0; }
    int to_stdout = !strcmp(outp, "-");
    int rc = 1;
    dsv4_session *s = NULL;
    float *logits = NULL;
    FILE *f = NULL;
    int out_reg = 0;
    dsv4_image *im[CLI_MAX_IMAGES] = { 0 };
    dsv4_image_embed *emb[CLI_MAX_IMAGES] = { 0 };
    dsv4_prompt *pr = NULL;
    if (cli_images_decode("logits", &imgs, im)) { free(ids); return 1; }
    double t0 = cli_now();
    dsv4_model *m = cli_load_model("logits", dir);
    if (!m) { free(ids); cli_images_free(im, imgs.n); return 1; }
    dsv4_model_info info;
    dsv4_model_get_info(m, &info);
    for (int i = 0; i < n; i++)
        if (ids[i] >= info.vocab_size) {
            cli_fail("logits", "--tokens: id %d at item %d is not below vocab_size %d", ids[i], i, info.vocab_size);
            goto done;
        }
    if (imgs.n) {
        if (cli_require_vision("logits", m, dir)) goto done;
        int k = cli_count_token(ids, n, dsv4_model_image_token(m));
        if (k != imgs.n) {
            cli_fail("logits", "--tokens has %d image placeholder%s (id %d) but %d --image %s given", k, k == 1 ? "" : "s",
                     (int)dsv4_model_image_token(m), imgs.n, imgs.n == 1 ? "was" : "were");
            goto done;
        }
        if (cli_images_encode("logits", m, im, imgs.path, imgs.n, emb)) goto done;
        if (dsv4_prompt_build(&pr, m, ids, n, emb, imgs.n, err, sizeof err)) { cli_fail("logits", "%s", err); goto done; }
        int tokens_n = n;
        n = dsv4_prompt_len(pr);
        if (!prefill_seen) prefill = n;   /* the default: all */
        if (prefill > n) {
            cli_fail("logits", "--prefill %d exceeds the %d positions of the expanded prompt", prefill, n);
            rc = 2;
            goto done;
        }
        if (dsv4_prompt_call_end(pr, 0, prefill) != prefill) {   /* Vision-Exp: ends inside an image span */
            int s0 = dsv4_prompt_boundary(pr, prefill), e1 = dsv4_prompt_call_end(pr, s0, prefill), k = 0;
            for (int i = 0; i < s0; i++) k += dsv4_prompt_role(pr, i) == DSV4_TOKEN_IMAGE_START;
            char alt[32] = "";
            if (s0 > 0) snprintf(alt, sizeof alt, "%d or ", s0);
            cli_fail("logits", "--prefill %d ends inside the span of --image %s (positions %d..%d, START to END), which "
                     "DeepSeek-V4-Flash-Vision-Exp evaluates in one call: use --prefill %s%d", prefill,
                     k < imgs.n ? imgs.path[k] : "?", s0, e1 - 1, alt, e1);
            rc = 2;
            goto done;
        }
        if (cli_verbose) fprintf(stderr, "dsv4 logits: %d ids, %d positions with the image spans expanded\n", tokens_n, n);
    }
    if (dsv4_session_open(&s, m, n, err, sizeof err) != 0) { cli_fail("logits", "cannot open session: %s", err); goto done; }
    logits = malloc(sizeof(float) * (size_t)info.vocab_size);
    if (!logits) { cli_fail("logits", "out of memory"); goto done; }
    if (cli_verbose) cli_load_summary("logits", dir, m, n, cli_now() - t0);
    f = to_stdout ? stdout : fopen(outp, "wb");
    if (!f) { cli_fail("logits", "cannot write %s: %s", outp, strerror(errno)); goto done; }
    out_reg = !to_stdout && cli_is_regular_file(f);   /* only a regular file's partial rows are removed */
    int rows = 0;
    for (int pos = 0; pos < n; rows++) {
        int len = pos == 0 ? prefill : dsv4_prompt_call_end(pr, pos, pos + 1) - pos;   /* a Vision-Exp span: whole */
        if ((pr ? dsv4_eval_prompt(s, pr, pos, len, logits, 0, err, sizeof err)
                : dsv4_eval(s, ids + pos, len, logits, err, sizeof err)) != 0) {
            cli_fail("logits", "eval: %s", err);
            goto done;
        }
        if (fwrite(logits, sizeof(float), (size_t)info.vocab_size, f) != (size_t)info.vocab_size) {
            cli_fail("logits", "write error on %s: %s", to_stdout ? "stdout" : outp, strerror(errno));
            goto done;
        }
        pos += len;
    }
    if (to_stdout) {
        f = NULL;
        if (cli_stdout_close("logits")) goto done;
    } else {
        int cerr = fclose(f);
        f = NULL;
        if (cerr != 0) { cli_fail("logits", "write error on %s: %s", outp, strerror(errno)); if (out_reg) remove(outp); goto done; }
    }
    fprintf(stderr, "wrote %d rows of %d logits to %s\n", rows, info.vocab_size, to_stdout ? "stdout" : outp);
    rc = 0;
done:
    if (f && !to_stdout) { fclose(f); if (out_reg) remove(outp); }
    free(logits); free(ids);
    dsv4_prompt_free(pr);
    cli_embeds_free(emb, imgs.n);
    cli_images_free(im, imgs.n);
    dsv4_session_free(s);
    dsv4_model_free(m);
    return rc;
}
