/* tools/bench/bench_vtower.c — speed of the V4.1 vision tower (src/vision/tower.c; docs/vision.md "Speed").
 *
 *   bench_vtower [-g LIST] [-t LIST] [-b BLOCKS] [--kernel PATH] [--dir DIR]
 *
 * Real V4.1-Flash widths (1024 wide, 16 heads of 64, MLP 2816, patch 14, 3x3 unshuffle, aligner 9216 -> 5120) with
 * random BF16 weights written once to DIR/model.safetensors (default /tmp/dsv4-vtower-bench; BLOCKS blocks, default
 * 2), random BF16 patches; for every grid HxW of -g (default 39x39,93x93) and thread count of -t (default 1,2):
 * one dsv4_vtower_forward, timed per block and for the final norm + aligner, in wall time and in process CPU time
 * (all threads; the machine may be shared, so CPU time is the steadier figure). Prints a 64-bit FNV-1a hash of all
 * tower states and the aligner rows: equal hashes across kernel paths, thread counts and builds mean bit-identical
 * results. Per-part CPU times (norms, weight products, RoPE and packing, attention, SiLU; on avx512 the attention's
 * scores, softmax and P.V): build the library with CPPFLAGS=-DVT_PROFILE (its own BUILD directory), run 1 thread. */
#include "dsv4.h"
#include "io/safetensors.h"
#include "vision/tower.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "bench_util.h"

enum { D = 1024, H = 16, I = 2816, PS = 14, R = 3, L = 5120 };

typedef struct { char name[96]; int64_t r, c; float scale, base; } tdesc;

static int write_ckpt(const char *path, int nb) {
    tdesc *t = calloc(16 + 8 * (size_t)nb, sizeof *t);
    int n = 0;
#define ADD(nm, rr, cc, sc, bs) do { snprintf(t[n].name, sizeof t[n].name, "%s", nm); t[n].r = rr; t[n].c = cc; \
    t[n].scale = sc; t[n].base = bs; n++; } while (0)
    ADD("vision.patch_embed.proj.weight", D, 3 * PS * PS, 1.7f / 24.2f, 0);
    ADD("vision.patch_embed.proj.bias", D, 0, 0.02f, 0);
    ADD("vision.norm.weight", D, 0, 0.1f, 1);
    ADD("aligner.w1.weight", L, D * R * R, 1.7f / 96, 0);
    ADD("aligner.w1.bias", L, 0, 0.02f, 0);
    ADD("aligner.w2.weight", L, L, 1.7f / 71.5f, 0);
    ADD("aligner.w2.bias", L, 0, 0.02f, 0);
    for (int b = 0; b < nb; b++) {
        char nm[96];
#define ADDB(suf, rr, cc, sc, bs) do { snprintf(nm, sizeof nm, "vision.blocks.%d.%s", b, suf); ADD(nm, rr, cc, sc, bs); } while (0)
        ADDB("norm1.weight", D, 0, 0.1f, 1);
        ADDB("attn.wqkv.weight", 3 * D, D, 1.7f / 32, 0);
        ADDB("attn.wqkv.bias", 3 * D, 0, 0.02f, 0);
        ADDB("attn.wo.weight", D, D, 1.7f / 32, 0);
        ADDB("attn.wo.bias", D, 0, 0.02f, 0);
        ADDB("norm2.weight", D, 0, 0.1f, 1);
        ADDB("mlp.w1.weight", 2 * I, D, 1.7f / 32, 0);
        ADDB("mlp.w2.weight", D, I, 1.7f / 53, 0);
    }
    size_t hcap = 1 << 20, hl = 0, off = 0;
    char *hdr = malloc(hcap);
    hl += (size_t)snprintf(hdr + hl, hcap - hl, "{");
    for (int i = 0; i < n; i++) {
        size_t bytes = (size_t)t[i].r * (t[i].c ? (size_t)t[i].c : 1) * 2;
        if (t[i].c)
            hl += (size_t)snprintf(hdr + hl, hcap - hl, "%s\"%s\":{\"dtype\":\"BF16\",\"shape\":[%lld,%lld],\"data_offsets\":[%zu,%zu]}",
                                   i ? "," : "", t[i].name, (long long)t[i].r, (long long)t[i].c, off, off + bytes);
        else
            hl += (size_t)snprintf(hdr + hl, hcap - hl, "%s\"%s\":{\"dtype\":\"BF16\",\"shape\":[%lld],\"data_offsets\":[%zu,%zu]}",
                                   i ? "," : "", t[i].name, (long long)t[i].r, off, off + bytes);
        off += bytes;
    }
    hl += (size_t)snprintf(hdr + hl, hcap - hl, "}");
    while (hl % 8) hdr[hl++] = ' ';
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); return -1; }
    uint64_t h64 = hl;
    fwrite(&h64, 8, 1, f);
    fwrite(hdr, 1, hl, f);
    for (int i = 0; i < n; i++) {
        size_t cnt = (size_t)t[i].r * (t[i].c ? (size_t)t[i].c : 1);
        uint16_t *buf = malloc(cnt * 2);
        for (size_t k = 0; k < cnt; k++) buf[k] = bf16_of(t[i].base + t[i].scale * unif());
        fwrite(buf, 2, cnt, f);
        free(buf);
    }
    free(hdr); free(t);
    return fclose(f);
}

typedef struct {
    double *wall, *cpu;
    uint64_t h;
} hctx;

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++) { h ^= c[i]; h *= 0x100000001b3ull; }
    return h;
}

static void hook(void *vctx, int s, float *x, int n, int dim) {
    hctx *c = vctx;
    c->wall[s] = now(); c->cpu[s] = cpu_now();
    c->h = fnv(c->h, x, (size_t)n * dim * sizeof(float));
}

int main(int argc, char **argv) {
    const char *grids = "39x39,93x93", *threads = "1,2", *dir = "/tmp/dsv4-vtower-bench", *kernel = NULL;
    int nb = 2;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-g") && i + 1 < argc) grids = argv[++i];
        else if (!strcmp(argv[i], "-t") && i + 1 < argc) threads = argv[++i];
        else if (!strcmp(argv[i], "-b") && i + 1 < argc) nb = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--kernel") && i + 1 < argc) kernel = argv[++i];
        else if (!strcmp(argv[i], "--dir") && i + 1 < argc) dir = argv[++i];
        else { fprintf(stderr, "usage: bench_vtower [-g HxW,...] [-t N,...] [-b BLOCKS] [--kernel PATH] [--dir DIR]\n"); return 2; }
    }
    char err[256], path[512], done[512];
    if (kernel && dsv4_set_kernel_path(kernel, err, sizeof err)) { fprintf(stderr, "%s\n", err); return 1; }
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/model-%d.safetensors", dir, nb);
    snprintf(done, sizeof done, "%s/complete-%d.txt", dir, nb);
    struct stat sb;
    if (stat(done, &sb)) {
        fprintf(stderr, "writing %s ...\n", path);
        if (write_ckpt(path, nb)) return 1;
        FILE *f = fopen(done, "w");
        if (f) fclose(f);
    }
    st_set *s = NULL;
    dsv4_vtower *t = NULL;
    dsv4_vtower_config vc = {nb, D, H, I, PS, R, L, 10000.0f};
    if (st_open_file(&s, path, err, sizeof err) || dsv4_vtower_load(&t, s, &vc, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    printf("kernel %s, %d blocks timed (per block: mean), real widths, random weights\n", dsv4_get_kernel_path(), nb);
    printf("%-8s %3s %12s %12s %14s %14s  %s\n", "grid", "thr", "block wall s", "block cpu s", "aligner wall s",
           "aligner cpu s", "hash");
    for (const char *g = grids; *g;) {
        int gh = 0, gw = 0;
        if (sscanf(g, "%dx%d", &gh, &gw) != 2 || gh < 1 || gw < 1) { fprintf(stderr, "bad grid '%s'\n", g); return 2; }
        int n = gh * gw, P = 3 * PS * PS, nr = dsv4_vtower_n_rows(&vc, gh, gw);
        float *patches = malloc((size_t)n * P * sizeof(float)), *rows = malloc((size_t)nr * L * sizeof(float));
        rs = 0x1234567ull;
        for (size_t k = 0; k < (size_t)n * P; k++) patches[k] = bf16_val(bf16_of(unif()));
        for (const char *th = threads; *th;) {
            int nt = atoi(th);
            if (dsv4_set_threads(nt, err, sizeof err)) { fprintf(stderr, "%s\n", err); return 1; }
            double wall[1100], cpu[1100];
            hctx c = {wall, cpu, 0xcbf29ce484222325ull};
            if (dsv4_vtower_forward(t, patches, gh, gw, rows, hook, &c, err, sizeof err)) { fprintf(stderr, "%s\n", err); return 1; }
            double w1 = now(), c1 = cpu_now();
            c.h = fnv(c.h, rows, (size_t)nr * L * sizeof(float));
            printf("%3dx%-4d %3d %12.3f %12.3f %14.3f %14.3f  %016llx\n", gh, gw, nt, (wall[nb] - wall[0]) / nb,
                   (cpu[nb] - cpu[0]) / nb, w1 - wall[nb], c1 - cpu[nb], (unsigned long long)c.h);
            fflush(stdout);
            th = strchr(th, ',');
            th = th ? th + 1 : "";
        }
        free(patches); free(rows);
        g = strchr(g, ',');
        g = g ? g + 1 : "";
    }
    dsv4_vtower_free(t);
    st_close(s);
    return 0;
}
