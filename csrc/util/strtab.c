/* strtab.c: open-addressing string interning (see strtab.h). The load factor stays at most
 * 1/2; a probe compares the hashes, and short strings, kept in the slots before any text. */
#include "strtab.h"
#include "mem.h"
#include <stdlib.h>
#include <string.h>

/* s[0:n], 1 <= n <= 8 bytes, as a little-endian word, zero-padded. Two overlapping loads
 * instead of a loop over the bytes (names are mostly 2..8 bytes): the bytes they share are
 * the same in both, so OR-ing them is exact. */
static inline uint64_t load_small(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    if (n >= 4) {
        uint32_t lo, hi;
        memcpy(&lo, s, 4);
        memcpy(&hi, s + n - 4, 4);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        lo = __builtin_bswap32(lo);
        hi = __builtin_bswap32(hi);
#endif
        return (uint64_t)lo | (uint64_t)hi << (8 * (n - 4));
    }
    /* n = 1, 2, 3: first, middle, last byte */
    return (uint64_t)u[0] | (uint64_t)u[n / 2] << (8 * (n / 2)) | (uint64_t)u[n - 1] << (8 * (n - 1));
}

static uint64_t load_tail(const char *s, size_t n) {   /* n < 8 bytes, zero-padded */
    return n ? load_small(s, n) : 0;
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
    /* probes land anywhere in a large table: with 4 KiB pages nearly each one misses the TLB */
    cm_mem_advise_huge(t->slots, sizeof *t->slots * t->nslots);
    return 0;
}

void cm_strtab_free(cm_strtab *t) {
    free(t->buf); free(t->offs); free(t->lens); free(t->hashes); free(t->slots);
    memset(t, 0, sizeof *t);
}

#define SHORT_KEY 0x80000000u

/* s[0:n] as a slot key when it is short: at most 8 bytes, none of them NUL (so zero-padding
 * keeps different strings apart). */
static inline int short_key(const char *s, size_t n, uint64_t *key) {
    if (n > 8) return 0;
    if (n == 0) { *key = 0; return 1; }
    uint64_t k = load_small(s, n);
    *key = k;
    /* a NUL among the n bytes? (the padding bytes are made non-zero first) */
    const uint64_t ones = 0x0101010101010101ull;
    uint64_t pad = n == 8 ? 0 : ones << (8 * n);
    uint64_t v = k | pad;
    return ((v - ones) & ~v & (ones << 7)) == 0;
}

/* a[0:n] == b[0:n], for the short strings interned here (no call into libc) */
static inline int same_bytes(const char *a, const char *b, size_t n) {
    for (; n >= 8; a += 8, b += 8, n -= 8) {
        uint64_t x, y;
        memcpy(&x, a, 8);
        memcpy(&y, b, 8);
        if (x != y) return 0;
    }
    for (; n; n--)
        if (*a++ != *b++) return 0;
    return 1;
}

/* Id of s, or -1 with *slot_out the empty slot where it would go. key, is_short: from short_key. */
static int32_t probe(const cm_strtab *t, const char *s, size_t len, uint32_t h, uint64_t key, uint32_t is_short,
                     uint32_t *slot_out) {
    uint32_t mask = t->nslots - 1, i = h & mask;
    for (;;) {
        const cm_strtab_slot *e = &t->slots[i];
        if (e->id1 == 0) { *slot_out = i; return -1; }
        /* a short string equals only a short one, and then exactly when the keys do */
        if (e->hash == h && (e->id1 & SHORT_KEY) == is_short) {
            int32_t id = (int32_t)(e->id1 & ~SHORT_KEY) - 1;
            if (is_short ? e->key == key
                         : (size_t)t->lens[id] == len && same_bytes(t->buf + t->offs[id], s, len)) {
                *slot_out = i;
                return id;
            }
        }
        i = (i + 1) & mask;
    }
}

static void put_slot(cm_strtab_slot *e, uint32_t h, int32_t id, uint64_t key, uint32_t is_short) {
    e->hash = h;
    e->id1 = (uint32_t)(id + 1) | is_short;
    e->key = key;
}

static int rehash(cm_strtab *t, uint32_t ns) {
    cm_strtab_slot *slots = calloc(ns, sizeof *slots);
    if (!slots) return -1;
    cm_mem_advise_huge(slots, sizeof *slots * ns);
    for (int32_t id = 0; id < t->n; id++) {
        uint32_t h = t->hashes[id], i = h & (ns - 1);
        while (slots[i].id1) i = (i + 1) & (ns - 1);
        uint64_t key = 0;
        uint32_t is_short = short_key(t->buf + t->offs[id], (size_t)t->lens[id], &key) ? SHORT_KEY : 0;
        put_slot(&slots[i], h, id, key, is_short);
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
    int64_t *o = cm_mem_realloc(t->offs, sizeof *o * (size_t)nc);
    if (!o) return -1;
    t->offs = o;
    int32_t *l = cm_mem_realloc(t->lens, sizeof *l * (size_t)nc);
    if (!l) return -1;
    t->lens = l;
    uint32_t *hh = cm_mem_realloc(t->hashes, sizeof *hh * (size_t)nc);
    if (!hh) return -1;
    t->hashes = hh;
    t->ncap = (int32_t)nc;
    return 0;
}

static int grow_buf(cm_strtab *t, size_t need) {
    if (need <= t->cap) return 0;
    size_t nc = t->cap * 2;
    while (nc < need) nc *= 2;
    char *b = cm_mem_realloc(t->buf, nc);
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
    uint64_t key = 0;
    uint32_t is_short = short_key(s, len, &key) ? SHORT_KEY : 0;
    return probe(t, s, len, h, key, is_short, &slot);
}

int32_t cm_strtab_find(const cm_strtab *t, const char *s, size_t len) {
    return cm_strtab_find_h(t, s, len, cm_hash_bytes(s, len));
}

int32_t cm_strtab_intern_h(cm_strtab *t, const char *s, size_t len, uint32_t h, int *inserted) {
    uint32_t slot;
    uint64_t key = 0;
    uint32_t is_short = short_key(s, len, &key) ? SHORT_KEY : 0;
    int32_t id = probe(t, s, len, h, key, is_short, &slot);
    if (inserted) *inserted = 0;
    if (id >= 0) return id;
    if (len > 0x7fffffff) return -1;
    if ((t->n >= t->ncap && grow_ids(t, (int64_t)t->n + 1)) || (t->len + len + 1 > t->cap && grow_buf(t, t->len + len + 1)))
        return -1;
    id = t->n++;
    t->offs[id] = (int64_t)t->len;
    t->lens[id] = (int32_t)len;
    t->hashes[id] = h;
    memcpy(t->buf + t->len, s, len);
    t->buf[t->len + len] = '\0';
    t->len += len + 1;
    put_slot(&t->slots[slot], h, id, key, is_short);
    if (inserted) *inserted = 1;
    if ((uint64_t)t->n * 2 > t->nslots && rehash(t, t->nslots * 2)) return -1;
    return id;
}

int cm_strtab_append_new(cm_strtab *t, int64_t n, cm_strtab_next_fn next, void *arg) {
    if (n <= 0) return 0;
    if (cm_strtab_reserve(t, n, 0)) return -1;
    int32_t id0 = t->n;
    uint32_t bits = 0;
    while ((1u << bits) < t->nslots) bits++;
    uint32_t bb = bits < 10 ? bits : 10, shift = bits - bb, nb = 1u << bb, mask = t->nslots - 1;
    uint32_t *start = calloc((size_t)nb + 1, sizeof *start);        /* [nb + 1] bucket starts */
    cm_strtab_slot *sorted = malloc(sizeof *sorted * (size_t)n);     /* [n] the new slots, by bucket */
    if (!start || !sorted) { free(start); free(sorted); return -1; }
    /* ids, text and hashes in id order; count per bucket of home slots */
    for (int64_t i = 0; i < n; i++) {
        size_t len;
        uint32_t h;
        const char *s = next(arg, &len, &h);
        if (len > 0x7fffffff || (t->len + len + 1 > t->cap && grow_buf(t, t->len + len + 1))) {
            free(start); free(sorted);
            return -1;
        }
        int32_t id = t->n++;
        t->offs[id] = (int64_t)t->len;
        t->lens[id] = (int32_t)len;
        t->hashes[id] = h;
        memcpy(t->buf + t->len, s, len);
        t->buf[t->len + len] = '\0';
        t->len += len + 1;
        start[((h & mask) >> shift) + 1]++;
    }
    for (uint32_t b = 0; b < nb; b++) start[b + 1] += start[b];
    for (int32_t id = id0; id < t->n; id++) {
        uint64_t key = 0;
        uint32_t is_short = short_key(t->buf + t->offs[id], (size_t)t->lens[id], &key) ? SHORT_KEY : 0;
        put_slot(&sorted[start[(t->hashes[id] & mask) >> shift]++], t->hashes[id], id, key, is_short);
    }
    /* slots bucket by bucket: each stretch of the table is visited once, in cache */
    int dup = 0;
    for (int64_t j = 0; j < n && !dup; j++) {
        const cm_strtab_slot *e = &sorted[j];
        for (uint32_t i = e->hash & mask;; i = (i + 1) & mask) {
            cm_strtab_slot *o = &t->slots[i];
            if (o->id1 == 0) { *o = *e; break; }
            if (o->hash != e->hash || (o->id1 & SHORT_KEY) != (e->id1 & SHORT_KEY)) continue;
            int32_t a = (int32_t)(o->id1 & ~SHORT_KEY) - 1, b = (int32_t)(e->id1 & ~SHORT_KEY) - 1;
            if ((e->id1 & SHORT_KEY) ? o->key == e->key
                                     : t->lens[a] == t->lens[b] && same_bytes(t->buf + t->offs[a], t->buf + t->offs[b], (size_t)t->lens[a])) {
                dup = 1;
                break;
            }
        }
    }
    free(start);
    free(sorted);
    return dup;
}

int32_t cm_strtab_intern(cm_strtab *t, const char *s, size_t len, int *inserted) {
    return cm_strtab_intern_h(t, s, len, cm_hash_bytes(s, len), inserted);
}
