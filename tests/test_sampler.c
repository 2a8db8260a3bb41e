/* tests/test_sampler.c — src/sampling/sampler.c: parameter validation, argmax (ties -> lowest id),
 * top-k = 1 == argmax, seed determinism, distribution sanity (chi-square bounds), temperature, top-k and
 * top-p cuts, a full-size vocabulary against a brute-force nucleus. Prints one line per failed check and
 * ends with "N passed, N failed".
 */
#include "dsv4.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "testlib.h"

static uint64_t rng = 0x243F6A8885A308D3ull;
static double urand(void) { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return (double)(rng >> 11) * 0x1.0p-53; }

static dsv4_sampler *mk(int V, float T, float top_p, int top_k, uint64_t seed) {
    dsv4_sampler_params p = {T, top_p, top_k, seed};
    dsv4_sampler *s = NULL;
    char err[256] = "";
    if (dsv4_sampler_new(&s, V, &p, err, sizeof err) != 0) { printf("sampler_new failed: %s\n", err); exit(2); }
    return s;
}

static void test_params(void) {
    char err[256];
    dsv4_sampler *s = (dsv4_sampler *)1;
    dsv4_sampler_params p = {1.0f, 1.0f, 0, 1};
    CHECK(dsv4_sampler_new(&s, 0, &p, err, sizeof err) == -1 && s == NULL && strstr(err, "vocab_size"), "vocab 0: %s", err);
    p.top_p = 0;
    CHECK(dsv4_sampler_new(&s, 10, &p, err, sizeof err) == -1 && strstr(err, "top_p"), "top_p 0: %s", err);
    p.top_p = 1.5f;
    CHECK(dsv4_sampler_new(&s, 10, &p, err, sizeof err) == -1 && strstr(err, "top_p"), "top_p 1.5: %s", err);
    p.top_p = NAN;
    CHECK(dsv4_sampler_new(&s, 10, &p, err, sizeof err) == -1 && strstr(err, "top_p"), "top_p NaN: %s", err);
    p.top_p = 1;
    p.temperature = -0.5f;
    CHECK(dsv4_sampler_new(&s, 10, &p, err, sizeof err) == -1 && strstr(err, "temperature"), "T<0: %s", err);
    p.temperature = INFINITY;
    CHECK(dsv4_sampler_new(&s, 10, &p, err, sizeof err) == -1 && strstr(err, "temperature"), "T inf: %s", err);
    p.temperature = 1;
    p.top_k = -1;
    CHECK(dsv4_sampler_new(&s, 10, &p, err, sizeof err) == -1 && strstr(err, "top_k"), "top_k -1: %s", err);
    dsv4_sampler_free(NULL);
}

static void test_argmax(void) {
    float l[6] = {0.5f, 2.0f, -1.0f, 2.0f, NAN, 1.9f};
    dsv4_sampler *s = mk(6, 0.0f, 1.0f, 0, 7);
    CHECK(dsv4_sample(s, l) == 1, "argmax with tie -> lowest id");
    dsv4_sampler_free(s);
    float l2[4] = {NAN, -INFINITY, -3.0f, -3.0f};
    s = mk(4, 0.0f, 1.0f, 0, 7);
    CHECK(dsv4_sample(s, l2) == 2, "argmax skips NaN, tie -> lowest");
    dsv4_sampler_free(s);
    float l3[3] = {-INFINITY, -INFINITY, -INFINITY};
    s = mk(3, 1.0f, 0.9f, 0, 7);
    int32_t t = dsv4_sample(s, l3);
    CHECK(t >= 0 && t < 3, "all -inf gives a valid id (%d)", t);
    dsv4_sampler_free(s);
    /* NaN handling as documented in dsv4.h: all NaN -> id 0 (greedy rule), +inf -> the lowest +inf id */
    float l4[3] = {NAN, NAN, NAN};
    s = mk(3, 0.8f, 0.9f, 2, 7);
    CHECK(dsv4_sample(s, l4) == 0, "all NaN gives id 0");
    float l5[3] = {NAN, INFINITY, INFINITY};
    CHECK(dsv4_sample(s, l5) == 1, "+inf logit drawn deterministically (lowest +inf id)");
    dsv4_sampler_free(s);

    /* temperature > 0 with top_k = 1 is argmax, also on ties */
    enum { V = 1000 };
    static float lg[V], copy[V];
    dsv4_sampler *g = mk(V, 0.0f, 1.0f, 0, 1), *k1 = mk(V, 1.0f, 1.0f, 1, 99), *k1p = mk(V, 5.0f, 0.5f, 1, 3);
    int same = 1, unchanged = 1;
    for (int it = 0; it < 200; it++) {
        for (int i = 0; i < V; i++) lg[i] = (float)(urand() * 10 - 5);
        if (it % 3 == 0) lg[(it * 7) % V] = lg[(it * 13 + 5) % V] = 6.0f; /* a tie at the top */
        memcpy(copy, lg, sizeof lg);
        int32_t a = dsv4_sample(g, lg), b = dsv4_sample(k1, lg), c = dsv4_sample(k1p, lg);
        int32_t ref = 0;
        for (int i = 1; i < V; i++) if (lg[i] > lg[ref]) ref = i;
        if (a != ref || b != ref || c != ref) same = 0;
        if (memcmp(copy, lg, sizeof lg) != 0) unchanged = 0;
    }
    CHECK(same, "greedy and top_k=1 agree with a brute-force argmax");
    CHECK(unchanged, "logits not modified");
    dsv4_sampler_free(g);
    dsv4_sampler_free(k1);
    dsv4_sampler_free(k1p);
}

static void test_determinism(void) {
    enum { V = 5000, N = 500 };
    static float lg[V];
    for (int i = 0; i < V; i++) lg[i] = (float)(urand() * 4);
    const float Ts[3] = {1.0f, 0.7f, 1.3f};
    const float Ps[3] = {1.0f, 0.9f, 1.0f};
    const int Ks[3] = {0, 0, 50};
    for (int cfg = 0; cfg < 3; cfg++) {
        dsv4_sampler *a = mk(V, Ts[cfg], Ps[cfg], Ks[cfg], 42), *b = mk(V, Ts[cfg], Ps[cfg], Ks[cfg], 42),
                     *c = mk(V, Ts[cfg], Ps[cfg], Ks[cfg], 43);
        int eq = 1, diff = 0;
        for (int i = 0; i < N; i++) {
            int32_t x = dsv4_sample(a, lg), y = dsv4_sample(b, lg), z = dsv4_sample(c, lg);
            eq &= x == y;
            diff += x != z;
        }
        CHECK(eq, "cfg %d: same seed -> same sequence", cfg);
        CHECK(diff > N / 2, "cfg %d: different seed -> different sequence (%d/%d differ)", cfg, diff, N);
        dsv4_sampler_free(a);
        dsv4_sampler_free(b);
        dsv4_sampler_free(c);
    }
}

/* Draw n samples from logits l (size V) and return the chi-square statistic against probabilities q
 * (q[i] == 0 must never be drawn: counted in *forbidden). */
static double chi2(dsv4_sampler *s, const float *l, int V, const double *q, int n, int *forbidden) {
    int cnt[64] = {0};
    *forbidden = 0;
    for (int i = 0; i < n; i++) {
        int32_t t = dsv4_sample(s, l);
        if (t < 0 || t >= V || q[t] == 0) (*forbidden)++;
        else cnt[t]++;
    }
    double x = 0;
    for (int i = 0; i < V; i++)
        if (q[i] > 0) x += (cnt[i] - n * q[i]) * (cnt[i] - n * q[i]) / (n * q[i]);
    return x;
}

static void test_distributions(void) {
    /* p = [0.4, 0.25, 0.15, 0.1, 0.05, 0.03, 0.015, 0.005]; logits = ln p (+ a constant) */
    const double p[8] = {0.4, 0.25, 0.15, 0.1, 0.05, 0.03, 0.015, 0.005};
    float l[8];
    for (int i = 0; i < 8; i++) l[i] = (float)log(p[i]) + 3.0f;
    const int N = 200000;
    double q[8];
    int forb;
    /* chi-square, 7 dof: P(X > 30) ~ 1e-4; counts hold up to float rounding of the logits (~1e-7 rel). */
    dsv4_sampler *s = mk(8, 1.0f, 1.0f, 0, 1234);
    double x = chi2(s, l, 8, p, N, &forb);
    CHECK(x < 30 && forb == 0, "T=1 chi2 %.2f (7 dof), forbidden %d", x, forb);
    dsv4_sampler_free(s);

    /* temperature 2: q ∝ p^(1/2) */
    double z = 0;
    for (int i = 0; i < 8; i++) z += q[i] = sqrt(p[i]);
    for (int i = 0; i < 8; i++) q[i] /= z;
    s = mk(8, 2.0f, 1.0f, 0, 99);
    x = chi2(s, l, 8, q, N, &forb);
    CHECK(x < 30 && forb == 0, "T=2 chi2 %.2f", x);
    dsv4_sampler_free(s);

    /* temperature 0.5: q ∝ p^2 */
    z = 0;
    for (int i = 0; i < 8; i++) z += q[i] = p[i] * p[i];
    for (int i = 0; i < 8; i++) q[i] /= z;
    s = mk(8, 0.5f, 1.0f, 0, 5);
    x = chi2(s, l, 8, q, N, &forb);
    CHECK(x < 30 && forb == 0, "T=0.5 chi2 %.2f", x);
    dsv4_sampler_free(s);

    /* top-k 3: renormalized over the 3 largest (0.8 mass) */
    for (int i = 0; i < 8; i++) q[i] = i < 3 ? p[i] / 0.8 : 0;
    s = mk(8, 1.0f, 1.0f, 3, 7);
    x = chi2(s, l, 8, q, N, &forb);
    CHECK(x < 20 && forb == 0, "top_k=3 chi2 %.2f (2 dof), forbidden %d", x, forb);
    dsv4_sampler_free(s);

    /* top-p 0.6: 0.4 < 0.6 <= 0.65 -> keep {0, 1} */
    for (int i = 0; i < 8; i++) q[i] = i < 2 ? p[i] / 0.65 : 0;
    s = mk(8, 1.0f, 0.6f, 0, 8);
    x = chi2(s, l, 8, q, N, &forb);
    CHECK(x < 15 && forb == 0, "top_p=0.6 chi2 %.2f (1 dof), forbidden %d", x, forb);
    dsv4_sampler_free(s);

    /* top-p 0.85: 0.8 < 0.85 <= 0.9 -> keep {0, 1, 2, 3} */
    for (int i = 0; i < 8; i++) q[i] = i < 4 ? p[i] / 0.9 : 0;
    s = mk(8, 1.0f, 0.85f, 0, 9);
    x = chi2(s, l, 8, q, N, &forb);
    CHECK(x < 20 && forb == 0, "top_p=0.85 chi2 %.2f, forbidden %d", x, forb);
    dsv4_sampler_free(s);

    /* top-p 0.1 keeps just the top token */
    s = mk(8, 1.0f, 0.1f, 0, 10);
    int only0 = 1;
    for (int i = 0; i < 1000; i++) only0 &= dsv4_sample(s, l) == 0;
    CHECK(only0, "top_p=0.1 -> always the top token");
    dsv4_sampler_free(s);

    /* top-k 5 then top-p 0.9 of the renormalized top-5 mass (0.95): need 0.855 -> {0,1,2,3} (0.9) */
    for (int i = 0; i < 8; i++) q[i] = i < 4 ? p[i] / 0.9 : 0;
    s = mk(8, 1.0f, 0.9f, 5, 11);
    x = chi2(s, l, 8, q, N, &forb);
    CHECK(x < 20 && forb == 0, "top_k=5 + top_p=0.9 chi2 %.2f, forbidden %d", x, forb);
    dsv4_sampler_free(s);

    /* ties under top-k: equal logits, k = 3 -> only ids 0, 1, 2, uniformly */
    float eq[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    for (int i = 0; i < 8; i++) q[i] = i < 3 ? 1.0 / 3 : 0;
    s = mk(8, 1.0f, 1.0f, 3, 12);
    x = chi2(s, eq, 8, q, 30000, &forb);
    CHECK(x < 20 && forb == 0, "tied top_k=3 chi2 %.2f, forbidden %d", x, forb);
    dsv4_sampler_free(s);

    /* -inf logits are never drawn */
    float mi[4] = {0.0f, -INFINITY, 0.0f, NAN};
    double qm[4] = {0.5, 0, 0.5, 0};
    s = mk(4, 1.0f, 1.0f, 0, 13);
    x = chi2(s, mi, 4, qm, 20000, &forb);
    CHECK(x < 15 && forb == 0, "-inf/NaN never drawn: chi2 %.2f forbidden %d", x, forb);
    dsv4_sampler_free(s);
}

static int cmp_desc(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

static void test_full_vocab(void) {
    enum { V = 129280 };
    float *l = malloc(V * sizeof *l);
    double *pr = malloc(V * sizeof *pr), *sorted = malloc(V * sizeof *sorted);
    for (int i = 0; i < V; i++) l[i] = (float)(urand() * 12 - 6);
    const float T = 0.8f, P = 0.9f;
    double mx = -1e30, Z = 0;
    for (int i = 0; i < V; i++) if (l[i] > mx) mx = l[i];
    for (int i = 0; i < V; i++) Z += pr[i] = exp((l[i] - mx) / T);
    for (int i = 0; i < V; i++) sorted[i] = pr[i] /= Z;
    qsort(sorted, V, sizeof *sorted, cmp_desc);
    double cum = 0, thr = 0;
    for (int i = 0; i < V; i++) { cum += sorted[i]; if (cum >= P) { thr = sorted[i]; break; } }
    dsv4_sampler *s = mk(V, T, P, 0, 2024);
    int inside = 1;
    for (int i = 0; i < 100; i++) {
        int32_t t = dsv4_sample(s, l);
        /* the nucleus is every token with probability >= thr (up to float rounding at the boundary) */
        if (t < 0 || t >= V || pr[t] < thr * (1 - 1e-4)) inside = 0;
    }
    CHECK(inside, "full vocab top_p=0.9: every draw is in the brute-force nucleus");
    dsv4_sampler_free(s);
    s = mk(V, T, 1.0f, 40, 2025);
    double kth = sorted[39];
    inside = 1;
    for (int i = 0; i < 100; i++) {
        int32_t t = dsv4_sample(s, l);
        if (t < 0 || t >= V || pr[t] < kth) inside = 0;
    }
    CHECK(inside, "full vocab top_k=40: every draw is among the 40 largest");
    dsv4_sampler_free(s);
    free(l);
    free(pr);
    free(sorted);
}

int main(void) {
    test_params();
    test_argmax();
    test_determinism();
    test_distributions();
    test_full_vocab();
    return test_done();
}
