/* strtab.c: open-addressing string interning (see strtab.h). */
#include "strtab.h"
#include <stdlib.h>
#include <string.h>

uint32_t cm_hash_bytes(const char *s, size_t len) {
    /* FNV-1a, then a final mix so linear probing spreads similar names (n1, n2, ...). */
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    h ^= h >> 16; h *= 0x7feb352dU; h ^= h >> 15; h *= 0x846ca68bU; h ^= h >> 16;
    return h;
}

int cm_strtab_init(cm_strtab *t, int32_t expected) {
    memset(t, 0, sizeof *t);
    if (expected < 16) expected = 16;
    t->ncap = expected;
    t->cap = (size_t)expected * 8;
    uint32_t ns = 32;
    while (ns < (uint32_t)expected * 2u) ns <<= 1;
    t->nslots = ns;
    t->buf = malloc(t->cap);
    t->offs = malloc(sizeof *t->offs * (size_t)t->ncap);
    t->lens = malloc(sizeof *t->lens * (size_t)t->ncap);
    t->hashes = malloc(sizeof *t->hashes * (size_t)t->ncap);
    t->slots = calloc(ns, sizeof *t->slots);
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

static int32_t probe(const cm_strtab *t, const char *s, size_t len, uint32_t h, uint32_t *slot_out) {
    uint32_t mask = t->nslots - 1, i = h & mask;
    for (;;) {
        int32_t v = t->slots[i];
        if (v == 0) { *slot_out = i; return -1; }
        int32_t id = v - 1;
        if (t->hashes[id] == h && (size_t)t->lens[id] == len && memcmp(t->buf + t->offs[id], s, len) == 0) {
            *slot_out = i;
            return id;
        }
        i = (i + 1) & mask;
    }
}

static int grow_slots(cm_strtab *t) {
    uint32_t ns = t->nslots * 2;
    int32_t *slots = calloc(ns, sizeof *slots);
    if (!slots) return -1;
    for (int32_t id = 0; id < t->n; id++) {
        uint32_t i = t->hashes[id] & (ns - 1);
        while (slots[i]) i = (i + 1) & (ns - 1);
        slots[i] = id + 1;
    }
    free(t->slots);
    t->slots = slots;
    t->nslots = ns;
    return 0;
}

int32_t cm_strtab_find(const cm_strtab *t, const char *s, size_t len) {
    uint32_t slot;
    return probe(t, s, len, cm_hash_bytes(s, len), &slot);
}

int32_t cm_strtab_intern(cm_strtab *t, const char *s, size_t len, int *inserted) {
    uint32_t h = cm_hash_bytes(s, len), slot;
    int32_t id = probe(t, s, len, h, &slot);
    if (inserted) *inserted = 0;
    if (id >= 0) return id;
    if (len > 0x7fffffff) return -1;
    if (t->n == t->ncap) {
        int32_t nc = t->ncap * 2;
        int64_t *o = realloc(t->offs, sizeof *o * (size_t)nc);
        if (!o) return -1;
        t->offs = o;
        int32_t *l = realloc(t->lens, sizeof *l * (size_t)nc);
        if (!l) return -1;
        t->lens = l;
        uint32_t *hh = realloc(t->hashes, sizeof *hh * (size_t)nc);
        if (!hh) return -1;
        t->hashes = hh;
        t->ncap = nc;
    }
    if (t->len + len + 1 > t->cap) {
        size_t nc = t->cap * 2;
        while (nc < t->len + len + 1) nc *= 2;
        char *b = realloc(t->buf, nc);
        if (!b) return -1;
        t->buf = b;
        t->cap = nc;
    }
    id = t->n++;
    t->offs[id] = (int64_t)t->len;
    t->lens[id] = (int32_t)len;
    t->hashes[id] = h;
    memcpy(t->buf + t->len, s, len);
    t->buf[t->len + len] = '\0';
    t->len += len + 1;
    t->slots[slot] = id + 1;
    if (inserted) *inserted = 1;
    if ((uint64_t)t->n * 2 > t->nslots) {
        if (grow_slots(t)) return -1;
    }
    return id;
}
