/* mem.h: hints for large buffers. Fresh memory costs a page fault per 4 KiB page on first
 * touch, which dominates the reading of a large netlist; on Linux, buffers of several MiB
 * are marked for transparent huge pages (2 MiB per fault). Elsewhere these do nothing. */
#ifndef CIRCML_MEM_H
#define CIRCML_MEM_H
#include <stddef.h>

/* Ask for huge pages over the 2 MiB-aligned interior of p[0:n] (n bytes). A hint only. */
void cm_mem_advise_huge(void *p, size_t n);
/* malloc / realloc that also give the hint for large sizes. */
void *cm_mem_alloc(size_t n);
void *cm_mem_realloc(void *p, size_t n);

#endif
