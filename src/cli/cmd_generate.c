/* cli/cmd_generate.c — `dsv4 generate`: print the prompt, then continue it token by token.
 *
 *   dsv4 generate -m DIR (-p TEXT | -f FILE) [-n N] [--temp T] [--top-p P] [--top-k K] [-s SEED] [--bos] [-c C]
 *                 [--image FILE]...
 *
 * Images (--image, repeatable; a model with a vision tower): each file is decoded before the model is loaded, encoded
 * by the tower, and takes one "<｜deepseek_image｜>" placeholder of the prompt, in order. When the prompt has no
 * placeholder, one per image is put in front of it, each followed by "\n\n" (as the chat encoder joins an image part
 * to the text after it); otherwise the prompt's placeholders must be as many as the images. The prompt is evaluated
 * with its image spans (dsv4_prompt_build, dsv4_eval_prompt: include/dsv4_vision.h).
 *
 * Everything that can be checked is checked before the first byte is written: options, the prompt file, the model,
 * the tokenizer, the prompt's encoding and the session size. stdout gets the prompt and the generated text (each
 * write checked: a write error stops generation and exits 1); stderr gets the load summary and the timings.
 * Ctrl-C stops generation; the timings of what was generated are printed and the exit status is 130. */
#include "cli/cli_util.h"
#include "cli/cli_image.h"
#include "cli/commands.h"
#include "dsv4.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERRLEN 1024

static const char *generate_usage =
    "usage: dsv4 generate -m DIR (-p TEXT | -f FILE) [-n N] [--temp T] [--top-p P] [--top-k K] [-s SEED] [--bos]\n"
    "                     [-c C] [--image FILE]...\n"
    "  -m, --model DIR        model directory (config.json, *.safetensors, tokenizer.json)\n"
    "  -p, --prompt TEXT      prompt, printed then continued\n"
    "  -f, --prompt-file FILE the prompt from a file (- = stdin; every byte counts)\n"
    "  -n, --n-predict N      tokens to generate, 0..16777216 (default 200; stops early at EOS); alias --max-tokens\n"
    "  --temp T               0 = greedy (argmax), else sampling at temperature T; [0, 100] (default 0.8);\n"
    "                         alias --temperature\n"
    "  --top-p P              nucleus sampling mass, (0, 1]; 1 = off (default 0.95)\n"
    "  --top-k K              keep the K most likely tokens, 0..1073741824; 0 = off (default 0)\n"
    "  -s, --seed S           sampler seed, 0..2^64-1 (default: random, printed with -v)\n"
    "  --bos                  prepend the model's BOS token to the prompt\n"
    "  -c, --ctx-size C       session size in tokens, 1..16777216 and at most max_position_embeddings (default:\n"
    "                         prompt tokens + N); an error if smaller than that; alias --ctx\n"
    "  --image FILE           a JPEG or PNG for the model's vision tower (repeatable): each takes one\n"
    "                         <｜deepseek_image｜> of the prompt; without any, they are put before the prompt\n";

int dsv4_cli_generate(int argc, char **argv) {
    const char *dir = NULL, *prompt = NULL, *pfile = NULL;
    int n_gen = 200, ctx = 0, bos = 0, top_k = 0, seed_seen = 0;
    double temp = 0.8, top_p = 0.95;
    uint64_t seed = 0;
    cli_image_list imgs = { .n = 0 };
    const cli_opt opts[] = {
        CLI_O_IMAGE(&imgs),
        CLI_O_MODEL(&dir), CLI_O_PROMPT(&prompt), CLI_O_PROMPT_FILE(&pfile), CLI_O_N_PREDICT(&n_gen),
        CLI_O_CTX(&ctx, NULL), CLI_O_TEMP(&temp), CLI_O_TOP_P(&top_p), CLI_O_TOP_K(&top_k), CLI_O_SEED(&seed, &seed_seen),
        { .names = "--bos", .kind = CLI_FLAG, .dst = &bos, .set = 1 },
        CLI_O_END
    };
    int prc = cli_parse("generate", generate_usage, opts, argc, argv);
    if (prc) return prc < 0 ? 0 : prc;
    if (!dir) { fprintf(stderr, "dsv4 generate: -m DIR is required (dsv4 generate -h lists the options)\n"); return 2; }
    if (!prompt == !pfile) {
        fprintf(stderr, "dsv4 generate: %s\n", prompt ? "give -p TEXT or -f FILE, not both" : "-p TEXT or -f FILE is required");
        return 2;
    }
    if (cli_parse_only) return 0;

    size_t plen = prompt ? strlen(prompt) : 0;
    char *pbuf = NULL;
    if (pfile && !(pbuf = cli_read_file("generate", pfile, &plen))) return 1;
    if (pfile) prompt = pbuf;

    char err[ERRLEN];
    int rc = 1;
    dsv4_image *im[CLI_MAX_IMAGES] = { 0 };
    dsv4_image_embed *emb[CLI_MAX_IMAGES] = { 0 };
    dsv4_prompt *pr = NULL;
    char *ptext = NULL;
    if (cli_images_decode("generate", &imgs, im)) { free(pbuf); return 1; }
    dsv4_model *m = NULL;
    dsv4_session *s = NULL;
    dsv4_sampler *smp = NULL;
    float *logits = NULL;
    int32_t *ids = NULL;
    double t0 = cli_now();
    m = cli_load_model("generate", dir);
    if (!m) goto done;
    double t_load = cli_now() - t0;
    const dsv4_tokenizer *tok = dsv4_model_tokenizer(m);
    if (!tok) { cli_fail("generate", "%s has no tokenizer.json (needed to encode the prompt)", dir); goto done; }
    dsv4_model_info info;
    dsv4_model_get_info(m, &info);
    int32_t img_tok = dsv4_model_image_token(m);
    if (imgs.n) {
        if (cli_require_vision("generate", m, dir)) goto done;
        /* no placeholder in the prompt: one per image in front of it, each followed by "\n\n" */
        int n_ph = 0;
        int32_t *probe = cli_tokenize_all(tok, prompt, plen, &n_ph, err, ERRLEN);
        if (!probe) { cli_fail("generate", "%s: %s", pfile ? pfile : "prompt", err); goto done; }
        int k = cli_count_token(probe, n_ph, img_tok);
        free(probe);
        if (k == 0) {
            static const char ph[] = "<｜deepseek_image｜>\n\n";
            size_t tl = (size_t)imgs.n * (sizeof ph - 1) + plen;
            ptext = malloc(tl + 1);
            if (!ptext) { cli_fail("generate", "out of memory"); goto done; }
            for (int i = 0; i < imgs.n; i++) memcpy(ptext + (size_t)i * (sizeof ph - 1), ph, sizeof ph - 1);
            memcpy(ptext + (size_t)imgs.n * (sizeof ph - 1), prompt, plen);
            ptext[tl] = 0;
            prompt = ptext;
            plen = tl;
        } else if (k != imgs.n) {
            cli_fail("generate", "the prompt has %d image placeholder%s but %d --image %s given", k, k == 1 ? "" : "s",
                     imgs.n, imgs.n == 1 ? "was" : "were");
            goto done;
        }
        if (cli_images_encode("generate", m, im, imgs.path, imgs.n, emb)) goto done;
    }

    int n_prompt = 0;
    int32_t *pids = cli_tokenize_all(tok, prompt, plen, &n_prompt, err, ERRLEN);
    if (!pids) { cli_fail("generate", "%s: %s", pfile ? pfile : "prompt", err); goto done; }
    ids = malloc(sizeof(int32_t) * (size_t)(n_prompt + 1));
    if (!ids) { free(pids); cli_fail("generate", "out of memory"); goto done; }
    int n = 0;
    if (bos) ids[n++] = info.bos_token_id;
    memcpy(ids + n, pids, sizeof(int32_t) * (size_t)n_prompt);
    n += n_prompt;
    free(pids);
    if (n == 0) { cli_fail("generate", "the prompt encodes to no tokens (pass --bos or a non-empty prompt)"); goto done; }
    int k_ph = cli_count_token(ids, n, img_tok);
    if (k_ph != imgs.n) {
        /* placeholders in the prompt of a vision model without --image */
        cli_fail("generate", "the prompt has %d image placeholder%s but %d --image %s given", k_ph, k_ph == 1 ? "" : "s",
                 imgs.n, imgs.n == 1 ? "was" : "were");
        goto done;
    }
    if (imgs.n) {
        if (dsv4_prompt_build(&pr, m, ids, n, emb, imgs.n, err, sizeof err)) { cli_fail("generate", "%s", err); goto done; }
        n = dsv4_prompt_len(pr);
    }
    if (ctx == 0) ctx = n + n_gen;
    else if (ctx < n + n_gen) {
        fprintf(stderr, "dsv4 generate: --ctx %d is smaller than the prompt (%d tokens) + -n %d = %d; raise --ctx or "
                "lower -n\n", ctx, n, n_gen, n + n_gen);
        rc = 2;
        goto done;
    }
    if ((rc = cli_check_ctx("generate", "-c", m, ctx)) != 0) goto done;
    rc = 1;

    dsv4_sampler_params sp = { .temperature = (float)temp, .top_p = (float)top_p, .top_k = top_k,
                               .seed = cli_seed("generate", seed, seed_seen) };
    if (dsv4_session_open(&s, m, ctx, err, sizeof err) != 0) { cli_fail("generate", "cannot open session: %s", err); goto done; }
    if (dsv4_sampler_new(&smp, info.vocab_size, &sp, err, sizeof err) != 0) { cli_fail("generate", "%s", err); goto done; }
    logits = malloc(sizeof(float) * (size_t)info.vocab_size);
    if (!logits) { cli_fail("generate", "out of memory"); goto done; }
    cli_load_summary("generate", dir, m, ctx, t_load);

    cli_sigint_begin();
    int werr = cli_out(prompt, plen) || cli_flush();
    double t1 = cli_now();
    if (!werr && (pr ? dsv4_eval_prompt(s, pr, 0, n, logits, 0, err, sizeof err)
                     : dsv4_eval(s, ids, n, logits, err, sizeof err)) != 0) {
        cli_fail("generate", "prefill: %s", err);
        goto done;
    }
    double t_prefill = cli_now() - t1;

    dsv4_detok_stream st = {0};
    char out[1024];
    int produced = 0;
    double t2 = cli_now();
    for (int i = 0; i < n_gen && !werr && !cli_interrupted; i++) {
        int32_t next = dsv4_sample(smp, logits);
        if (next == info.eos_token_id) break;
        int k = dsv4_detok_next(tok, &st, next, out, sizeof out);
        if (k > 0) werr = cli_out(out, (size_t)k) || cli_flush();
        produced++;
        if (i + 1 < n_gen && !werr && dsv4_eval(s, &next, 1, logits, err, sizeof err) != 0) {
            cli_out("\n", 1);
            cli_fail("generate", "decode: %s", err);
            goto done;
        }
    }
    double t_decode = cli_now() - t2;
    if (!werr) {
        int k = dsv4_detok_flush(&st, out, sizeof out);
        if (k > 0) cli_out(out, (size_t)k);
        cli_out("\n", 1);
    }
    if (cli_stdout_close("generate")) goto done;
    fprintf(stderr, "%sprefill %d tokens %.3f s (%.1f tok/s) | decode %d tokens %.3f s (%.1f tok/s)\n",
            cli_interrupted ? "interrupted | " : "", n, t_prefill, n / (t_prefill > 0 ? t_prefill : 1e-9), produced,
            t_decode, produced / (t_decode > 0 ? t_decode : 1e-9));
    rc = cli_interrupted ? 130 : 0;
done:
    cli_sigint_end();
    free(logits); free(ids); free(pbuf); free(ptext);
    dsv4_prompt_free(pr);
    cli_embeds_free(emb, imgs.n);
    cli_images_free(im, imgs.n);
    dsv4_sampler_free(smp);
    dsv4_session_free(s);
    dsv4_model_free(m);
    return rc;
}
