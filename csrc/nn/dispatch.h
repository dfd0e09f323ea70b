/* dispatch.h: one elementwise body, compiled three times and picked by the CPU.
 * Kernels are written as plain loops over an always-inline body (CM_INLINE) and instantiated
 * with CM_DISPATCH for AVX-512 and AVX2 (both with FMA, and allowed to contract a * b + c into
 * one FMA, which halves the polynomials' cost) and for the build's baseline (ISO C: no
 * contraction). The path follows gemm_get_isa(), so gemm_set_isa moves every kernel at once.
 * Any one path gives the same bits for any thread count; the paths agree to float rounding.
 * Include after gemm.h in a .c file (the definitions are static). */
#ifndef CIRCML_NN_DISPATCH_H
#define CIRCML_NN_DISPATCH_H
#include "gemm.h"

#if defined(CM_REAL_IS_FLOAT) && defined(__GNUC__) && defined(__x86_64__)
#define CM_INLINE static inline __attribute__((always_inline))
#define CM_DISPATCH(name, body, params, args)                                                                 \
    __attribute__((target("avx512f,avx512dq,avx512vl,avx512bw,fma"), optimize("fp-contract=fast"))) static void  \
        name##_avx512 params { body args; }                                                                  \
    __attribute__((target("avx2,fma"), optimize("fp-contract=fast"))) static void name##_avx2 params { body args; } \
    static void name##_base params { body args; }                                                            \
    static void name params {                                                                                \
        gemm_isa isa = gemm_get_isa();                                                                       \
        if (isa == GEMM_ISA_AVX512) name##_avx512 args;                                                      \
        else if (isa == GEMM_ISA_AVX2) name##_avx2 args;                                                     \
        else name##_base args;                                                                               \
    }
#else
#define CM_INLINE static inline
#define CM_DISPATCH(name, body, params, args) \
    static void name params { body args; }
#endif

#endif
