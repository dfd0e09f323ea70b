/* strtab.c: open-addressing string interning (see strtab.h). The load factor stays at most
 * 1/2; a probe compares the 32-bit hashes kept in the slots before any text. */
#include "strtab.h"
#include <stdlib.h>
#include <string.h>

static uint64_t load_tail(const char *s, size_t n) {   /* n < 8 bytes, zero-padded */
    uint64_t w = 0;
    for (size_t i = 0; i < n; i++) w |= (uint64_t)(unsigned char)s[i] << (8 * i);
    return w;
}

uint32_t cm_hash_bytes(const char *s, size_t len) {
    /* Eight bytes a step, then splitmix64's finaliser, so that similar names (n1, n2, ...)
     * spread over the slots. */
    uint64_t h = 0x9e3779b97f4a7c15ull ^ (uint64_t)len;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
        h ^= h >> 29;
    }
    if (i < len) {
        h = (h ^ load_tail(s + i, len - i)) * 0xbf58476d1ce4e5b9ull;
        h ^= h >> 29;
    }
    h ^= h >> 30; h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27; h *= 0x94d049bb133111ebull;
    h ^= h >> 31;
    return (uint32_t)h;
}

static uint32_t slots_for(int64_t n) {
    uint32_t ns = 32;
    while ((int64_t)ns < n * 2) ns <<= 1;
    return ns;
}

int cm_strtab_init(cm_strtab *t, int32_t expected) {
    memset(t, 0, sizeof *t);
    if (expected < 16) expected = 16;
    t->ncap = expected;
    t->cap = (size_t)expected * 8;
    t->nslots = slots_for(expected);
    t->buf = malloc(t->cap);
    t->offs = malloc(sizeof *t->offs * (size_t)t->ncap);
    t->lens = malloc(sizeof *t->lens * (size_t)t->ncap);
    t->hashes = malloc(sizeof *t->hashes * (size_t)t->ncap);
    t->slots = calloc(t->nslots, sizeof *t->slots);
    if (!t->buf || !t->offs || !t->lens || !t->hashes || !t->slots) {
        cm_strtab_free(t);
        return -1;
    }
    return 0;
}

void cm_strtab_free(cm_strtab *t) {
    free(t->buf); free(t->offs); free(t->lens); free(t->hashes); free(t->slots);
    memset(t, 0, sizeof *t);
}

/* Id of s, or -1 with *slot_out the empty slot where it would go. */
static int32_t probe(const cm_strtab *t, const char *s, size_t len, uint32_t h, uint32_t *slot_out) {
    uint32_t mask = t->nslots - 1, i = h & mask;
    for (;;) {
        uint64_t v = t->slots[i];
        if (v == 0) { *slot_out = i; return -1; }
        if ((uint32_t)(v >> 32) == h) {
            int32_t id = (int32_t)(uint32_t)v - 1;
            if ((size_t)t->lens[id] == len && memcmp(t->buf + t->offs[id], s, len) == 0) {
                *slot_out = i;
                return id;
            }
        }
        i = (i + 1) & mask;
    }
}

static int rehash(cm_strtab *t, uint32_t ns) {
    uint64_t *slots = calloc(ns, sizeof *slots);
    if (!slots) return -1;
    for (int32_t id = 0; id < t->n; id++) {
        uint32_t h = t->hashes[id], i = h & (ns - 1);
        while (slots[i]) i = (i + 1) & (ns - 1);
        slots[i] = (uint64_t)h << 32 | (uint32_t)(id + 1);
    }
    free(t->slots);
    t->slots = slots;
    t->nslots = ns;
    return 0;
}

static int grow_ids(cm_strtab *t, int64_t need) {
    if (need <= t->ncap) return 0;
    if (need > INT32_MAX) return -1;
    int64_t nc = (int64_t)t->ncap * 2;
    if (nc < need) nc = need;
    if (nc > INT32_MAX) nc = INT32_MAX;
    int64_t *o = realloc(t->offs, sizeof *o * (size_t)nc);
    if (!o) return -1;
    t->offs = o;
    int32_t *l = realloc(t->lens, sizeof *l * (size_t)nc);
    if (!l) return -1;
    t->lens = l;
    uint32_t *hh = realloc(t->hashes, sizeof *hh * (size_t)nc);
    if (!hh) return -1;
    t->hashes = hh;
    t->ncap = (int32_t)nc;
    return 0;
}

static int grow_buf(cm_strtab *t, size_t need) {
    if (need <= t->cap) return 0;
    size_t nc = t->cap * 2;
    while (nc < need) nc *= 2;
    char *b = realloc(t->buf, nc);
    if (!b) return -1;
    t->buf = b;
    t->cap = nc;
    return 0;
}

int cm_strtab_reserve(cm_strtab *t, int64_t n, size_t bytes) {
    if (n < 0) return -1;
    int64_t total = (int64_t)t->n + n;
    if (grow_ids(t, total) || grow_buf(t, t->len + bytes + (size_t)n)) return -1;
    uint32_t ns = slots_for(total);
    if (ns > t->nslots && rehash(t, ns)) return -1;
    return 0;
}

int32_t cm_strtab_find_h(const cm_strtab *t, const char *s, size_t len, uint32_t h) {
    uint32_t slot;
    return probe(t, s, len, h, &slot);
}

int32_t cm_strtab_find(const cm_strtab *t, const char *s, size_t len) {
    return cm_strtab_find_h(t, s, len, cm_hash_bytes(s, len));
}

int32_t cm_strtab_intern_h(cm_strtab *t, const char *s, size_t len, uint32_t h, int *inserted) {
    uint32_t slot;
    int32_t id = probe(t, s, len, h, &slot);
    if (inserted) *inserted = 0;
    if (id >= 0) return id;
    if (len > 0x7fffffff) return -1;
    if (grow_ids(t, (int64_t)t->n + 1) || grow_buf(t, t->len + len + 1)) return -1;
    id = t->n++;
    t->offs[id] = (int64_t)t->len;
    t->lens[id] = (int32_t)len;
    t->hashes[id] = h;
    memcpy(t->buf + t->len, s, len);
    t->buf[t->len + len] = '\0';
    t->len += len + 1;
    t->slots[slot] = (uint64_t)h << 32 | (uint32_t)(id + 1);
    if (inserted) *inserted = 1;
    if ((uint64_t)t->n * 2 > t->nslots && rehash(t, t->nslots * 2)) return -1;
    return id;
}

int32_t cm_strtab_intern(cm_strtab *t, const char *s, size_t len, int *inserted) {
    return cm_strtab_intern_h(t, s, len, cm_hash_bytes(s, len), inserted);
}
