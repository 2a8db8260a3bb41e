/* chat/toolcall_registry.c — process-wide, bounded, thread-safe map tool-call id -> raw DSML invoke bytes.
 * Contract in include/dsv4_parse.h. Linear scan over a fixed array (capacity DSV4_TOOLCALL_CAPACITY);
 * LRU by a use counter. */
#include "dsv4_parse.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *id;
    char *raw;
    size_t len;
    uint64_t used;  /* 0 = free slot */
} tc_entry;

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static tc_entry g_tab[DSV4_TOOLCALL_CAPACITY];
static uint64_t g_tick;
static size_t g_bytes;
static int g_count;

static void drop(tc_entry *e) {
    if (!e->used) return;
    g_bytes -= e->len;
    g_count--;
    free(e->id);
    free(e->raw);
    memset(e, 0, sizeof *e);
}

static tc_entry *find(const char *id) {
    for (int i = 0; i < DSV4_TOOLCALL_CAPACITY; i++)
        if (g_tab[i].used && !strcmp(g_tab[i].id, id)) return &g_tab[i];
    return NULL;
}

static tc_entry *lru(void) {
    tc_entry *best = NULL;
    for (int i = 0; i < DSV4_TOOLCALL_CAPACITY; i++)
        if (g_tab[i].used && (!best || g_tab[i].used < best->used)) best = &g_tab[i];
    return best;
}

int dsv4_toolcall_remember(const char *id, const char *raw, size_t len) {
    if (!id || !*id || !raw || len > DSV4_TOOLCALL_MAX_BYTES) return -1;
    char *idc = strdup(id);
    char *rc = malloc(len + 1);
    if (!idc || !rc) { free(idc); free(rc); return -1; }
    memcpy(rc, raw, len);
    rc[len] = 0;
    pthread_mutex_lock(&g_mu);
    tc_entry *e = find(id);
    if (e) drop(e);
    while (g_count > 0 && (g_count >= DSV4_TOOLCALL_CAPACITY || g_bytes + len > DSV4_TOOLCALL_MAX_BYTES))
        drop(lru());
    for (int i = 0; i < DSV4_TOOLCALL_CAPACITY; i++)
        if (!g_tab[i].used) { e = &g_tab[i]; break; }
    e->id = idc;
    e->raw = rc;
    e->len = len;
    e->used = ++g_tick;
    g_bytes += len;
    g_count++;
    pthread_mutex_unlock(&g_mu);
    return 0;
}

const char *dsv4_toolcall_raw(const char *id, size_t *len) {
    if (!id) return NULL;
    pthread_mutex_lock(&g_mu);
    tc_entry *e = find(id);
    const char *r = NULL;
    if (e) {
        e->used = ++g_tick;
        r = e->raw;
        if (len) *len = e->len;
    }
    pthread_mutex_unlock(&g_mu);
    return r;
}

char *dsv4_toolcall_dup(const char *id, size_t *len) {
    if (!id) return NULL;
    char *out = NULL;
    pthread_mutex_lock(&g_mu);
    tc_entry *e = find(id);
    if (e) {
        e->used = ++g_tick;
        out = malloc(e->len + 1);
        if (out) {
            memcpy(out, e->raw, e->len + 1);
            if (len) *len = e->len;
        }
    }
    pthread_mutex_unlock(&g_mu);
    return out;
}

int dsv4_toolcall_count(void) {
    pthread_mutex_lock(&g_mu);
    int n = g_count;
    pthread_mutex_unlock(&g_mu);
    return n;
}

void dsv4_toolcall_clear(void) {
    pthread_mutex_lock(&g_mu);
    for (int i = 0; i < DSV4_TOOLCALL_CAPACITY; i++) drop(&g_tab[i]);
    g_bytes = 0;
    g_count = 0;
    pthread_mutex_unlock(&g_mu);
}
