/* mem.h: hints for large buffers. Fresh memory costs a page fault per 4 KiB page on first
 * touch, which dominates the reading of a large netlist; on Linux, buffers of several MiB
 * are marked for transparent huge pages (2 MiB per fault), and large files are mapped rather
 * than copied. Elsewhere these do nothing (or report that they cannot). */
#ifndef CIRCML_MEM_H
#define CIRCML_MEM_H
#include <stddef.h>

/* Ask for huge pages over the 2 MiB-aligned interior of p[0:n] (n bytes). A hint only. */
void cm_mem_advise_huge(void *p, size_t n);
/* malloc / realloc that also give the hint for large sizes. */
void *cm_mem_alloc(size_t n);
void *cm_mem_realloc(void *p, size_t n);
/* Map a regular file of at least `min_size` bytes read-only (POSIX), pages read ahead, instead
 * of copying it: *p, *n on success (0). -1 when the file is smaller, not regular, or cannot be
 * mapped here: the caller reads it instead. Release with cm_mem_unmap_file. */
int cm_mem_map_file(const char *path, size_t min_size, const char **p, size_t *n);
void cm_mem_unmap_file(const char *p, size_t n);

/* Make room for element n of the growable array ptr (capacity cap, doubled; `init` the first
 * capacity); returns CM_ERR_NOMEM from the calling function when realloc fails. */
#define CM_GROW(ptr, n, cap, init)                                                       \
    do {                                                                                 \
        if ((n) >= (cap)) {                                                              \
            size_t nc_ = (cap) ? (size_t)(cap) * 2 : (size_t)(init);                     \
            void *np_ = realloc((ptr), nc_ * sizeof *(ptr));                             \
            if (!np_) return CM_ERR_NOMEM;                                               \
            (ptr) = np_;                                                                 \
            (cap) = nc_;                                                                 \
        }                                                                                \
    } while (0)

#endif
