/* strtab.h: string interning. Each distinct string gets a dense id (0, 1, 2, ...);
 * lookups are one hash probe sequence. Used for net names, device names, models and
 * parameter names. Strings are stored NUL-terminated in one growing buffer. */
#ifndef CIRCML_STRTAB_H
#define CIRCML_STRTAB_H
#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *buf;          /* all strings, NUL-terminated, back to back */
    size_t len, cap;
    int64_t *offs;      /* [n] offset of string id in buf */
    int32_t *lens;      /* [n] length of string id */
    uint32_t *hashes;   /* [n] */
    int32_t n, ncap;
    int32_t *slots;     /* [nslots] id + 1, 0 = empty; open addressing, linear probing */
    uint32_t nslots;    /* power of two */
} cm_strtab;

int cm_strtab_init(cm_strtab *t, int32_t expected);
void cm_strtab_free(cm_strtab *t);
/* Id of the string s[0:len], inserting it when absent; -1 when out of memory.
 * *inserted (may be NULL) tells whether it was new. */
int32_t cm_strtab_intern(cm_strtab *t, const char *s, size_t len, int *inserted);
/* Id of s[0:len] or -1 when absent. */
int32_t cm_strtab_find(const cm_strtab *t, const char *s, size_t len);
static inline const char *cm_strtab_get(const cm_strtab *t, int32_t id) {
    return t->buf + t->offs[id];
}
uint32_t cm_hash_bytes(const char *s, size_t len);

#endif
