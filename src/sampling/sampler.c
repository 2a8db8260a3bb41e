/* sampling/sampler.c — temperature / top-k / top-p sampling (dsv4.h).
 *
 * Semantics (the usual HF order): temperature 0 -> argmax (ties -> lowest id). Otherwise
 * p_i ∝ exp((l_i - max l) / T); top-k keeps the k largest logits (ties broken by lower id); top-p then
 * keeps the smallest prefix of the remaining tokens, in descending order, whose renormalized probability
 * mass reaches top_p (at least one token); one token is drawn from what is left. NaN logits are treated
 * as -inf (never drawn while any logit is finite; all NaN/-inf -> id 0 by the argmax rule); a +inf logit
 * makes the draw degenerate: the lowest id holding +inf (tested in tests/test_sampler.c). The PRNG is splitmix64 seeded with params.seed, one 53-bit uniform per call, so a given seed
 * and logits sequence always yields the same tokens. All buffers are allocated by dsv4_sampler_new;
 * dsv4_sample does not allocate. Ordering uses an in-place binary max-heap over token ids, so top-k costs
 * O(V + k log V) and top-p O(V + m log V) for a nucleus of m tokens.
 */
#include "dsv4.h"
#include "base/util.h"

#include <math.h>
#include <stdlib.h>

struct dsv4_sampler {
    int vocab;
    dsv4_sampler_params p;
    uint64_t state;
    int32_t *heap; /* [vocab] token ids */
    float *w;      /* [vocab] unnormalized probabilities exp((l - max)/T) */
};

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

/* Uniform double in [0, 1). */
static double uniform(dsv4_sampler *s) { return (double)(splitmix64(&s->state) >> 11) * 0x1.0p-53; }

int dsv4_sampler_new(dsv4_sampler **out, int vocab_size, const dsv4_sampler_params *p, char *err, size_t errlen) {
    *out = NULL;
    if (vocab_size <= 0) return dsv4_fail(err, errlen, "sampler: vocab_size must be positive, got %d", vocab_size);
    if (!p) return dsv4_fail(err, errlen, "sampler: params is NULL");
    if (!(p->temperature >= 0) || !isfinite(p->temperature))
        return dsv4_fail(err, errlen, "sampler: temperature must be a finite number >= 0, got %g",
                         (double)p->temperature);
    if (!(p->top_p > 0 && p->top_p <= 1))
        return dsv4_fail(err, errlen, "sampler: top_p must be in (0, 1], got %g", (double)p->top_p);
    if (p->top_k < 0) return dsv4_fail(err, errlen, "sampler: top_k must be >= 0 (0 = off), got %d", p->top_k);
    dsv4_sampler *s = calloc(1, sizeof *s);
    if (!s) return dsv4_fail(err, errlen, "sampler: out of memory");
    s->vocab = vocab_size;
    s->p = *p;
    s->state = p->seed;
    s->heap = malloc((size_t)vocab_size * sizeof *s->heap);
    s->w = malloc((size_t)vocab_size * sizeof *s->w);
    if (!s->heap || !s->w) {
        dsv4_sampler_free(s);
        return dsv4_fail(err, errlen, "sampler: out of memory for vocab_size %d", vocab_size);
    }
    *out = s;
    return 0;
}

void dsv4_sampler_free(dsv4_sampler *s) {
    if (!s) return;
    free(s->heap);
    free(s->w);
    free(s);
}

static inline float key(const float *l, int32_t i) { return isnan(l[i]) ? -INFINITY : l[i]; }

/* a ranks before b: larger logit, then lower id. */
static inline int before(const float *l, int32_t a, int32_t b) {
    float ka = key(l, a), kb = key(l, b);
    return ka > kb || (ka == kb && a < b);
}

static void sift_down(int32_t *h, int n, int i, const float *l) {
    int32_t x = h[i];
    for (;;) {
        int c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && before(l, h[c + 1], h[c])) c++;
        if (!before(l, h[c], x)) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = x;
}

/* Pop the best id of the heap h[0..*n): it moves to h[*n - 1] (just past the shrunk heap) and is returned. */
static int32_t heap_pop(int32_t *h, int *n, const float *l) {
    int32_t t = h[0];
    h[0] = h[--*n];
    h[*n] = t;
    sift_down(h, *n, 0, l);
    return t;
}

static int32_t argmax(const float *l, int n) {
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (before(l, i, best)) best = i;
    return best;
}

int32_t dsv4_sample(dsv4_sampler *s, const float *logits) {
    const int V = s->vocab;
    if (s->p.temperature <= 0) return argmax(logits, V);
    int32_t am = argmax(logits, V);
    float mx = key(logits, am);
    if (!isfinite(mx)) return am; /* all -inf/NaN, or a +inf logit: degenerate -> the top token */

    const double invT = 1.0 / (double)s->p.temperature;
    double Z = 0;
    for (int i = 0; i < V; i++) {
        float k = key(logits, i);
        s->w[i] = (float)exp(((double)k - (double)mx) * invT);
        Z += s->w[i];
    }
    const int k = s->p.top_k > 0 && s->p.top_k < V ? s->p.top_k : V;
    const double top_p = s->p.top_p;
    const double u = uniform(s);

    if (k == V && top_p >= 1) { /* plain temperature sampling over the whole vocabulary, id order */
        double target = u * Z, cum = 0;
        int32_t last = am;
        for (int32_t i = 0; i < V; i++) {
            if (s->w[i] <= 0) continue;
            cum += s->w[i];
            last = i;
            if (cum > target) return i;
        }
        return last;
    }

    /* Heap-order the ids; pop the best ones into h[V-1], h[V-2], ... */
    int32_t *h = s->heap;
    for (int32_t i = 0; i < V; i++) h[i] = i;
    for (int i = V / 2 - 1; i >= 0; i--) sift_down(h, V, i, logits);
    int n = V, m = 0; /* m = number popped */
    double mass = 0;
    if (k < V) {
        /* top-k first; the nucleus is then taken relative to the top-k mass */
        while (m < k) {
            int32_t t = heap_pop(h, &n, logits);
            m++;
            mass += s->w[t];
        }
        if (top_p < 1) {
            double need = top_p * mass, cum = 0;
            int keep = 0;
            while (keep < m) {
                cum += s->w[h[V - 1 - keep]];
                keep++;
                if (cum >= need) break;
            }
            m = keep;
            mass = cum;
        }
    } else {
        double need = top_p * Z;
        while (n > 0) {
            int32_t t = heap_pop(h, &n, logits);
            m++;
            mass += s->w[t];
            if (mass >= need || s->w[t] <= 0) break;
        }
    }
    /* draw among h[V-1] .. h[V-m] (descending order) */
    double target = u * mass, cum = 0;
    int32_t last = h[V - 1];
    for (int j = 0; j < m; j++) {
        int32_t t = h[V - 1 - j];
        if (s->w[t] <= 0) break;
        cum += s->w[t];
        last = t;
        if (cum > target) return t;
    }
    return last;
}
