/* mem.c: huge-page hints for large buffers (see mem.h). */
#include "mem.h"
#include <stdint.h>
#include <stdlib.h>
#if defined(__unix__) || defined(__APPLE__)
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#define CM_HAVE_MMAP 1
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

int cm_mem_map_file(const char *path, size_t min_size, const char **p, size_t *n) {
#ifdef CM_HAVE_MMAP
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size <= 0 || (uint64_t)sb.st_size < min_size ||
        (uint64_t)sb.st_size > (uint64_t)SIZE_MAX) {
        close(fd);
        return -1;
    }
    int flags = MAP_PRIVATE;
#ifdef MAP_POPULATE
    flags |= MAP_POPULATE;
#endif
    void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ, flags, fd, 0);
    close(fd);
    if (m == MAP_FAILED) return -1;
    *p = m;
    *n = (size_t)sb.st_size;
    return 0;
#else
    (void)path; (void)min_size; (void)p; (void)n;
    return -1;
#endif
}

void cm_mem_unmap_file(const char *p, size_t n) {
#ifdef CM_HAVE_MMAP
    if (p) munmap((void *)p, n);
#else
    (void)p; (void)n;
#endif
}
