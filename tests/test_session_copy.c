/* tests/test_session_copy.c — dsv4_session_copy (include/dsv4.h): a session restored from a snapshot continues
 * exactly as the session it was copied from. On the nano model: s evaluates prefix A and is copied to snap; s then
 * evaluates a different continuation C; snap is copied back into s, which evaluates B. A fresh session evaluating
 * A then B (the same call schedule) must give bit-identical logits (same kernels, same order: tolerance 0).
 * Also: copying between sessions of different max_ctx is refused; the copied position is the source's. */
#include "testlib.h"

int main(void) {
    char err[1024];
    dsv4_model *m = NULL;
    if (dsv4_model_load(&m, "models/nano", err, sizeof err)) { test_fail("load models/nano: %s", err); return test_done(); }
    dsv4_model_info info;
    dsv4_model_get_info(m, &info);
    int V = info.vocab_size;
    dsv4_session *s = NULL, *snap = NULL, *fresh = NULL, *other = NULL;
    CHECK(dsv4_session_open(&s, m, 300, err, sizeof err) == 0, "open: %s", err);
    CHECK(dsv4_session_open(&snap, m, 300, err, sizeof err) == 0, "open: %s", err);
    CHECK(dsv4_session_open(&fresh, m, 300, err, sizeof err) == 0, "open: %s", err);
    CHECK(dsv4_session_open(&other, m, 299, err, sizeof err) == 0, "open: %s", err);
    if (!s || !snap || !fresh || !other) return test_done();
    /* long enough to wrap the 128-slot window ring and fill compressed entries */
    enum { NA = 150, NB = 40, NC = 90 };
    int32_t A[NA], B[NB], C[NC];
    for (int i = 0; i < NA; i++) A[i] = (int32_t)((i * 37 + 11) % V);
    for (int i = 0; i < NB; i++) B[i] = (int32_t)((i * 53 + 5) % V);
    for (int i = 0; i < NC; i++) C[i] = (int32_t)((i * 71 + 3) % V);
    float *l1 = malloc(sizeof(float) * (size_t)V), *l2 = malloc(sizeof(float) * (size_t)V);
    CHECK(dsv4_eval(s, A, NA, NULL, err, sizeof err) == 0, "eval A: %s", err);
    CHECK(dsv4_session_copy(snap, s, err, sizeof err) == 0, "copy: %s", err);
    CHECK(dsv4_session_pos(snap) == NA, "snapshot position %d, wanted %d", dsv4_session_pos(snap), NA);
    CHECK(dsv4_eval(s, C, NC, NULL, err, sizeof err) == 0, "eval C: %s", err);
    for (int i = 0; i < 8; i++) CHECK(dsv4_eval(s, &C[i], 1, NULL, err, sizeof err) == 0, "decode C: %s", err);
    CHECK(dsv4_session_copy(s, snap, err, sizeof err) == 0, "restore: %s", err);
    CHECK(dsv4_session_pos(s) == NA, "restored position %d, wanted %d", dsv4_session_pos(s), NA);
    CHECK(dsv4_eval(s, B, NB, l1, err, sizeof err) == 0, "eval B: %s", err);
    CHECK(dsv4_eval(fresh, A, NA, NULL, err, sizeof err) == 0, "fresh A: %s", err);
    CHECK(dsv4_eval(fresh, B, NB, l2, err, sizeof err) == 0, "fresh B: %s", err);
    int same = 1;
    for (int i = 0; i < V; i++) same &= memcmp(&l1[i], &l2[i], sizeof(float)) == 0;
    CHECK(same, "logits after restoring the snapshot differ from a fresh session's");
    /* decode steps after the restore too */
    for (int i = 0; i < 5 && same; i++) {
        int32_t t = (int32_t)((i * 13 + 1) % V);
        dsv4_eval(s, &t, 1, l1, err, sizeof err);
        dsv4_eval(fresh, &t, 1, l2, err, sizeof err);
        same = memcmp(l1, l2, sizeof(float) * (size_t)V) == 0;
    }
    CHECK(same, "decode after the restore differs from a fresh session's");
    CHECK(dsv4_session_copy(other, s, err, sizeof err) != 0 && strstr(err, "max_ctx"), "copy to a different max_ctx: '%s'", err);
    CHECK(dsv4_session_copy(NULL, s, err, sizeof err) != 0, "copy to NULL refused");
    free(l1); free(l2);
    dsv4_session_free(s); dsv4_session_free(snap); dsv4_session_free(fresh); dsv4_session_free(other);
    dsv4_model_free(m);
    return test_done();
}
