/* strtab.h: string interning. Each distinct string gets a dense id (0, 1, 2, ...) in order of
 * first insertion; lookups are one hash probe sequence. Used for net names, device names,
 * models and parameter names. Strings are stored NUL-terminated in one growing buffer.
 *
 * A slot holds the string's 32-bit hash and id, and short strings (up to 8 bytes, no NUL)
 * themselves: a probe rejects other strings, and matches most names, within one cache line.
 * Ids depend only on the order of insertion; where a string sits in the slot array (and the
 * hash function) is internal. */
#ifndef CIRCML_STRTAB_H
#define CIRCML_STRTAB_H
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t hash;
    uint32_t id1;       /* id + 1, 0 = empty; top bit: `key` is the whole string */
    uint64_t key;       /* a short string's bytes, zero-padded */
} cm_strtab_slot;

typedef struct {
    char *buf;          /* all strings, NUL-terminated, back to back */
    size_t len, cap;
    int64_t *offs;      /* [n] offset of string id in buf */
    int32_t *lens;      /* [n] length of string id */
    uint32_t *hashes;   /* [n] */
    int32_t n, ncap;
    cm_strtab_slot *slots;   /* [nslots] open addressing, linear probing */
    uint32_t nslots;    /* power of two, at least 2 n */
} cm_strtab;

int cm_strtab_init(cm_strtab *t, int32_t expected);
void cm_strtab_free(cm_strtab *t);
/* Id of the string s[0:len], inserting it when absent; -1 when out of memory.
 * *inserted (may be NULL) tells whether it was new. */
int32_t cm_strtab_intern(cm_strtab *t, const char *s, size_t len, int *inserted);
/* The same with h == cm_hash_bytes(s, len) computed by the caller (ahead of time, in parallel). */
int32_t cm_strtab_intern_h(cm_strtab *t, const char *s, size_t len, uint32_t h, int *inserted);
/* Id of s[0:len] or -1 when absent. Read-only: safe from several threads at once. */
int32_t cm_strtab_find(const cm_strtab *t, const char *s, size_t len);
int32_t cm_strtab_find_h(const cm_strtab *t, const char *s, size_t len, uint32_t h);
/* Room for n more strings of `bytes` characters in all, so that interning them neither
 * reallocates nor rehashes. 0, or -1 when out of memory. */
int cm_strtab_reserve(cm_strtab *t, int64_t n, size_t bytes);
/* Append n new strings as the next n ids, in order: string i comes from next(arg, &len, &hash)
 * (called n times, i = 0, 1, ...; hash == cm_hash_bytes). Much faster than n interns for large
 * n: the slots are filled bucket by bucket of the table, not in id order. 0; -1 when out of
 * memory; 1 when a string was already in the table or repeats: the table is then left
 * inconsistent and must be freed. */
typedef const char *(*cm_strtab_next_fn)(void *arg, size_t *len, uint32_t *hash);
int cm_strtab_append_new(cm_strtab *t, int64_t n, cm_strtab_next_fn next, void *arg);
/* Hint that a string of hash h will be looked up soon (pulls its home slot into cache). */
static inline void cm_strtab_prefetch(const cm_strtab *t, uint32_t h) {
#if defined(__GNUC__)
    __builtin_prefetch(t->slots + (h & (t->nslots - 1)));
#else
    (void)t; (void)h;
#endif
}
static inline const char *cm_strtab_get(const cm_strtab *t, int32_t id) {
    return t->buf + t->offs[id];
}
uint32_t cm_hash_bytes(const char *s, size_t len);

#endif
