/* gemm.h: the dense matrix product behind every Linear layer (ops.c linear_*).
 *
 *     C[M,N] = op(A)[M,K] @ op(B)[K,N] (+ bias[N])        (accumulate = 0)
 *     C[M,N] += op(A)[M,K] @ op(B)[K,N]                   (accumulate = 1)
 *
 * op(A)(m,k) is A[m*a_rs + k*a_cs] and op(B)(k,n) is B[k*b_rs + n*b_cs], so a transposed
 * operand is just a different pair of strides: the three products of a Linear layer are
 *     out  = inp @ W^T   (A = inp,    B(k,n) = W[n,k])
 *     dinp += dout @ W   (A = dout,   B = W)
 *     dW  += dout^T @ inp (A(m,k) = dout[k,m], B = inp)
 * C is row-major with row stride ldc. Sizes: M rows, N columns, K the summed dimension.
 *
 * How it is fast (BLIS's structure, llm.c's plainness): K is cut into KC-long blocks and N
 * into NC-wide blocks; each block of op(B) is packed into NR-wide column panels; a
 * register-tiled micro-kernel computes an MR x NR tile of C from an MR-row panel of op(A)
 * (read in place when its rows are contiguous in k, else packed) and a packed panel of op(B).
 * OpenMP threads split C into disjoint blocks of whole NR columns (or MR rows when there are
 * too few column panels to share), each packing what it needs itself, so there is no barrier
 * inside a product. The micro-kernel is picked at run time from the CPU: AVX-512F (12 x 32
 * tile), AVX2+FMA (6 x 16), or portable C (4 x 8, what a build with real = double uses).
 *
 * Determinism: every element of C is summed over k in the same order (KC blocks in order,
 * k ascending within a block, one accumulator) whichever thread computes it and wherever its
 * tile falls, so results are bitwise identical for ANY thread count and any scheduling. They
 * differ between micro-kernels (the SIMD ones fuse multiply-add, the portable one does not),
 * i.e. between machines with different instruction sets or after gemm_set_isa.
 *
 * Memory: packing buffers come from a workspace owned by the calling thread, allocated on its
 * first call and grown only when a call needs more (its size is bounded by the block sizes,
 * not by M, N or K); never inside the loops. gemm_release frees it. Should an allocation
 * fail, gemm computes the product with the plain reference loops instead. */
#ifndef CIRCML_NN_GEMM_H
#define CIRCML_NN_GEMM_H
#include <stdint.h>
#include "ops.h"

typedef enum { GEMM_ISA_AUTO = 0, GEMM_ISA_PORTABLE = 1, GEMM_ISA_AVX2 = 2, GEMM_ISA_AVX512 = 3 } gemm_isa;

void gemm(real *C, int64_t ldc, const real *A, int64_t a_rs, int64_t a_cs, const real *B, int64_t b_rs, int64_t b_cs,
          const real *bias, int64_t M, int64_t N, int64_t K, int accumulate);
/* The same product by three plain loops (the reference the tests compare gemm with). */
void gemm_ref(real *C, int64_t ldc, const real *A, int64_t a_rs, int64_t a_cs, const real *B, int64_t b_rs,
              int64_t b_cs, const real *bias, int64_t M, int64_t N, int64_t K, int accumulate);

/* The micro-kernel in use; gemm_set_isa forces one (AUTO: the best the CPU has). Forcing an
 * ISA the CPU or the build lacks falls back to the best available one; returns the one set. */
gemm_isa gemm_get_isa(void);
gemm_isa gemm_set_isa(gemm_isa isa);
const char *gemm_isa_name(gemm_isa isa);
/* Free the calling thread's packing workspace (gemm allocates it again when needed). */
void gemm_release(void);

/* ---------------------------------------------------------------- opt-in profiling
 * Time and flops spent inside the matrix products, per kind, summed over every thread that
 * runs one. Off by default: each product then reads one global flag and does nothing else.
 * On, each product reads the monotonic clock and the calling thread's CPU clock before and after
 * (two clock reads each, ~0.1-0.5 us per product: well under 1 % of the shortest products of a
 * sampling run) and adds, atomically:
 *   calls, flops (2 per multiply-add of the product itself),
 *   wall_ns   the calling thread's wall time inside the product,
 *   thread_ns wall time x the threads the product ran on (1 inside a parallel sampling chunk),
 *   cpu_ns    the calling thread's CPU time inside the product (wall_ns minus descheduling).
 * So flops / thread_ns is the rate per core while in the product, to compare with one core's
 * peak. Kinds: */
typedef enum {
    GEMM_PROF_GEMM = 0,         /* gemm(): ops.c's Linear forward and backward (training, evaluation) */
    GEMM_PROF_LINEAR_FP32,      /* prepacked fp32 Linear (gemm_bf16.h; the sampling path) */
    GEMM_PROF_LINEAR_BF16,      /* prepacked bf16 Linear (precision bf16) */
    GEMM_PROF_ATTENTION,        /* attention forward: q k^T, softmax and att v in one fused kernel;
                                   flops count the two products only */
    GEMM_PROF_N
} gemm_prof_kind;
typedef struct { int64_t calls, flops, wall_ns, thread_ns, cpu_ns; } gemm_prof_entry;
typedef struct { int64_t wall_ns, cpu_ns; } gemm_prof_mark;

extern int gemm_prof_flag;
static inline int gemm_profile_on(void) { return __atomic_load_n(&gemm_prof_flag, __ATOMIC_RELAXED); }
/* Turn profiling on (1) or off (0); returns the previous setting. */
int gemm_profile_enable(int on);
/* Copy the totals into out[GEMM_PROF_N]; reset: zero them afterwards. */
void gemm_profile_read(gemm_prof_entry out[GEMM_PROF_N], int reset);
const char *gemm_profile_name(int kind);
/* A product brackets itself with these when gemm_profile_on() was 1 at its start. */
void gemm_profile_start(gemm_prof_mark *m);
void gemm_profile_stop(int kind, double flops, int threads, const gemm_prof_mark *m);
#endif
