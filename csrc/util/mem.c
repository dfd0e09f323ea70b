/* mem.c: huge-page hints for large buffers (see mem.h). */
#include "mem.h"
#include <stdint.h>
#include <stdlib.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#define HUGE_MIN ((size_t)4 << 20)   /* below this the hint is not worth a system call */
#define HUGE_PAGE ((uintptr_t)2 << 20)

void cm_mem_advise_huge(void *p, size_t n) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (!p || n < HUGE_MIN) return;
    uintptr_t a = ((uintptr_t)p + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1), e = ((uintptr_t)p + n) & ~(HUGE_PAGE - 1);
    if (e > a) (void)madvise((void *)a, (size_t)(e - a), MADV_HUGEPAGE);
#else
    (void)p; (void)n;
#endif
}

void *cm_mem_alloc(size_t n) {
    void *p = malloc(n ? n : 1);
    cm_mem_advise_huge(p, n);
    return p;
}

void *cm_mem_realloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    cm_mem_advise_huge(q, n);
    return q;
}
