/* gnn.c: GIN, GCN, GraphSAGE (mean) and GAT layers, forward and backward (see gnn.h).
 * Limits: input and output widths are equal (H); GAT's attention is the additive (GATv1)
 * form without attention dropout. Sums over a node's neighbours run over the target-grouped
 * edge list (forward) or the source-grouped one (backward: a node's gradient collects from the
 * edges leaving it), each node written by one thread; weight gradients go through ops.c's
 * Linear (gemm.c, thread-count independent) or per-column sums in double. */
#include "gnn.h"
#include <math.h>
#include <string.h>

/* parallel only when there is enough work to pay for waking the team (as ops.c) */
#define GNN_PAR_MIN 32768

void gnn_graph_init(gnn_graph *g, int64_t *csr, const int64_t *src, const int64_t *dst, int64_t N, int64_t E) {
    g->N = N; g->E = E; g->src = src; g->dst = dst;
    int64_t *dp = csr, *sp = dp + N + 1, *de = sp + N + 1, *se = de + E;
    scatter_csr(dp, de, dst, E, N);
    scatter_csr(sp, se, src, E, N);
    g->dst_ptr = dp; g->dst_edges = de; g->src_ptr = sp; g->src_edges = se;
}

cm_status gnn_spec_check(const gnn_spec *s, cm_error *err) {
    if (s->conv < GNN_DICE || s->conv > GNN_GAT)
        return cm_error_set(err, CM_ERR_VALUE, "", 0, "unknown conv %d (0 dice, 1 gin, 2 gcn, 3 sage, 4 gat)", s->conv);
    if (s->hidden < 1) return cm_error_set(err, CM_ERR_VALUE, "", 0, "hidden width must be >= 1, got %d", s->hidden);
    if (s->conv == GNN_GAT && s->heads < 1)
        return cm_error_set(err, CM_ERR_VALUE, "", 0, "GAT needs at least 1 head, got %d", s->heads);
    if (s->conv == GNN_GAT && s->concat && s->hidden % s->heads)
        return cm_error_set(err, CM_ERR_VALUE, "", 0, "GAT with concatenated heads needs hidden (%d) divisible by heads (%d)",
                            s->hidden, s->heads);
    return CM_OK;
}

/* GAT head width C and total HC */
static int gat_c(const gnn_spec *s) { return s->concat ? s->hidden / s->heads : s->hidden; }

int gnn_tensors(const gnn_spec *s, const char **names, int64_t *sizes) {
    const int64_t H = s->hidden;
    int n = 0;
#define T(nm, sz) do { names[n] = (nm); sizes[n] = (sz); n++; } while (0)
    switch (s->conv) {
    case GNN_GIN: T("gin.eps", 1); T("gin.wa", H * H); T("gin.ba", H); T("gin.wb", H * H); T("gin.bb", H); break;
    case GNN_GCN: T("gcn.w", H * H); T("gcn.b", H); break;
    case GNN_SAGE: T("sage.w_self", H * H); T("sage.w_neigh", H * H); T("sage.b", H); break;
    case GNN_GAT: {
        const int64_t HC = (int64_t)s->heads * gat_c(s);
        T("gat.w", HC * H); T("gat.att_src", HC); T("gat.att_dst", HC); T("gat.b", H);
        break;
    }
    default: break;
    }
#undef T
    return n;
}

int64_t gnn_act_size(const gnn_spec *s, int64_t N, int64_t E) {
    const int64_t H = s->hidden, K = s->heads;
    switch (s->conv) {
    case GNN_GIN: return 3 * N * H;                    /* comb, GELU' (in place of the pre-activation), GELU out */
    case GNN_GCN: return N * H + N;                    /* xw, deg^-1/2 */
    case GNN_SAGE: return 2 * N * H;                   /* neighbour mean, its product with W_neigh */
    case GNN_GAT: return N * K * gat_c(s) + 3 * N * K + E * K;   /* xw, a_src, a_dst, alpha_self, alpha_edge */
    default: return 0;
    }
}

int64_t gnn_scratch_size(const gnn_spec *s, int64_t N, int64_t E) {
    const int64_t H = s->hidden, K = s->heads;
    switch (s->conv) {
    case GNN_GIN: return 2 * N * H;                    /* dGELU-out / dcomb, dpre */
    case GNN_GCN: return N * H;                        /* dxw */
    case GNN_SAGE: return N * H;                       /* dmean */
    case GNN_GAT: return N * K * gat_c(s) + 3 * N * K + E * K;   /* dxw, dlogit_self, da_src, da_dst, dlogit_edge */
    default: return 0;
    }
}

/* dst[c] += sum_n a[n, c] over N rows of width C, per column in double, rows in order */
static void colsum_add(real *dst, const real *a, int64_t N, int C) {
#pragma omp parallel for schedule(static) if (N * C >= GNN_PAR_MIN)
    for (int c = 0; c < C; c++) {
        double acc = 0;
        for (int64_t n = 0; n < N; n++) acc += a[n * C + c];
        dst[c] += (real)acc;
    }
}

/* ---- GIN ------------------------------------------------------------------------------ */
void gin_forward(real *out, real *act, const real *inp, real *const *p, const gnn_graph *g, const gnn_spec *s) {
    const int H = s->hidden;
    const int64_t N = g->N;
    real *comb = act, *d = act + N * H, *gl = act + 2 * N * H;   /* [N,H] each */
    const real k = 1 + p[GIN_EPS][0];
    /* comb_i = (1 + eps) h_i + sum_{j->i} h_j */
#pragma omp parallel for schedule(dynamic, 64) if (N * H >= GNN_PAR_MIN)
    for (int64_t i = 0; i < N; i++) {
        real *o = comb + i * H;
        const real *hi = inp + i * H;
        for (int c = 0; c < H; c++) o[c] = k * hi[c];
        for (int64_t q = g->dst_ptr[i]; q < g->dst_ptr[i + 1]; q++) {
            const real *hj = inp + g->src[g->dst_edges[q]] * H;
            for (int c = 0; c < H; c++) o[c] += hj[c];
        }
    }
    linear_forward(d, comb, p[GIN_WA], p[GIN_BA], N, H, H);
    gelu_dropout_forward(gl, d, NULL, d, N * H, 0, 0);   /* d <- GELU'(pre-activation) */
    linear_forward(out, gl, p[GIN_WB], p[GIN_BB], N, H, H);
}

void gin_backward(real *dinp, real *const *dp, const real *dout, const real *inp, real *const *p, const real *act,
                  const gnn_graph *g, const gnn_spec *s, real *scratch) {
    const int H = s->hidden;
    const int64_t N = g->N;
    const real *comb = act, *d = act + N * H, *gl = act + 2 * N * H;
    real *dg = scratch, *dpre = scratch + N * H, *dcomb = scratch;   /* dcomb reuses dg once it is spent */
    linear_backward_set(dg, dp[GIN_WB], dp[GIN_BB], dout, gl, p[GIN_WB], N, H, H);
    gelu_dropout_backward(dpre, dg, d, N * H);
    linear_backward_set(dcomb, dp[GIN_WA], dp[GIN_BA], dpre, comb, p[GIN_WA], N, H, H);
    /* comb_i = (1 + eps) h_i + sum_{j->i} h_j: deps = sum dcomb . h; dh_j += dcomb of every target */
    double de = 0;
    for (int64_t i = 0; i < N * H; i++) de += (double)dcomb[i] * inp[i];
    dp[GIN_EPS][0] += (real)de;
    const real k = 1 + p[GIN_EPS][0];
#pragma omp parallel for schedule(dynamic, 64) if (N * H >= GNN_PAR_MIN)
    for (int64_t j = 0; j < N; j++) {
        real *o = dinp + j * H;
        const real *dc = dcomb + j * H;
        for (int c = 0; c < H; c++) o[c] += k * dc[c];
        for (int64_t q = g->src_ptr[j]; q < g->src_ptr[j + 1]; q++) {
            const real *di = dcomb + g->dst[g->src_edges[q]] * H;
            for (int c = 0; c < H; c++) o[c] += di[c];
        }
    }
}

/* ---- GCN ------------------------------------------------------------------------------ */
void gcn_forward(real *out, real *act, const real *inp, real *const *p, const gnn_graph *g, const gnn_spec *s) {
    const int H = s->hidden;
    const int64_t N = g->N;
    real *xw = act, *dinv = act + N * H;   /* [N,H], [N] */
    for (int64_t i = 0; i < N; i++) dinv[i] = (real)(1.0 / sqrt(1.0 + (double)(g->dst_ptr[i + 1] - g->dst_ptr[i])));
    linear_forward(xw, inp, p[GCN_W], NULL, N, H, H);
    const real *b = p[GCN_B];
#pragma omp parallel for schedule(dynamic, 64) if (N * H >= GNN_PAR_MIN)
    for (int64_t i = 0; i < N; i++) {
        real *o = out + i * H;
        const real *xi = xw + i * H, si = dinv[i] * dinv[i];
        for (int c = 0; c < H; c++) o[c] = b[c] + si * xi[c];
        for (int64_t q = g->dst_ptr[i]; q < g->dst_ptr[i + 1]; q++) {
            const int64_t j = g->src[g->dst_edges[q]];
            const real w = dinv[j] * dinv[i], *xj = xw + j * H;
            for (int c = 0; c < H; c++) o[c] += w * xj[c];
        }
    }
}

void gcn_backward(real *dinp, real *const *dp, const real *dout, const real *inp, real *const *p, const real *act,
                  const gnn_graph *g, const gnn_spec *s, real *scratch) {
    const int H = s->hidden;
    const int64_t N = g->N;
    const real *dinv = act + N * H;
    real *dxw = scratch;   /* [N,H], written */
    colsum_add(dp[GCN_B], dout, N, H);
#pragma omp parallel for schedule(dynamic, 64) if (N * H >= GNN_PAR_MIN)
    for (int64_t j = 0; j < N; j++) {
        real *o = dxw + j * H;
        const real *dj = dout + j * H, sj = dinv[j] * dinv[j];
        for (int c = 0; c < H; c++) o[c] = sj * dj[c];
        for (int64_t q = g->src_ptr[j]; q < g->src_ptr[j + 1]; q++) {
            const int64_t i = g->dst[g->src_edges[q]];
            const real w = dinv[j] * dinv[i], *di = dout + i * H;
            for (int c = 0; c < H; c++) o[c] += w * di[c];
        }
    }
    linear_backward(dinp, dp[GCN_W], NULL, dxw, inp, p[GCN_W], N, H, H);
}

/* ---- GraphSAGE (mean) ------------------------------------------------------------------ */
void sage_forward(real *out, real *act, const real *inp, real *const *p, const gnn_graph *g, const gnn_spec *s) {
    const int H = s->hidden;
    const int64_t N = g->N;
    real *mean = act, *t = act + N * H;   /* [N,H] each */
#pragma omp parallel for schedule(dynamic, 64) if (N * H >= GNN_PAR_MIN)
    for (int64_t i = 0; i < N; i++) {
        real *o = mean + i * H;
        const int64_t a = g->dst_ptr[i], b = g->dst_ptr[i + 1];
        for (int c = 0; c < H; c++) o[c] = 0;
        for (int64_t q = a; q < b; q++) {
            const real *hj = inp + g->src[g->dst_edges[q]] * H;
            for (int c = 0; c < H; c++) o[c] += hj[c];
        }
        if (b > a) {
            const real r = (real)(1.0 / (double)(b - a));
            for (int c = 0; c < H; c++) o[c] *= r;
        }
    }
    linear_forward(out, inp, p[SAGE_W_SELF], p[SAGE_B], N, H, H);
    linear_forward(t, mean, p[SAGE_W_NEIGH], NULL, N, H, H);
    for (int64_t i = 0; i < N * H; i++) out[i] += t[i];
}

void sage_backward(real *dinp, real *const *dp, const real *dout, const real *inp, real *const *p, const real *act,
                   const gnn_graph *g, const gnn_spec *s, real *scratch) {
    const int H = s->hidden;
    const int64_t N = g->N;
    const real *mean = act;
    real *dmean = scratch;   /* [N,H], written */
    linear_backward(dinp, dp[SAGE_W_SELF], dp[SAGE_B], dout, inp, p[SAGE_W_SELF], N, H, H);
    linear_backward_set(dmean, dp[SAGE_W_NEIGH], NULL, dout, mean, p[SAGE_W_NEIGH], N, H, H);
#pragma omp parallel for schedule(dynamic, 64) if (N * H >= GNN_PAR_MIN)
    for (int64_t j = 0; j < N; j++) {
        real *o = dinp + j * H;
        for (int64_t q = g->src_ptr[j]; q < g->src_ptr[j + 1]; q++) {
            const int64_t i = g->dst[g->src_edges[q]];
            const real r = (real)(1.0 / (double)(g->dst_ptr[i + 1] - g->dst_ptr[i])), *di = dmean + i * H;
            for (int c = 0; c < H; c++) o[c] += r * di[c];
        }
    }
}

/* ---- GAT ------------------------------------------------------------------------------- */
static inline real leaky(real x) { return x > 0 ? x : (real)0.2 * x; }
static inline real leaky_slope(real x) { return x > 0 ? (real)1 : (real)0.2; }

void gat_forward(real *out, real *act, const real *inp, real *const *p, const gnn_graph *g, const gnn_spec *s) {
    const int H = s->hidden, K = s->heads, C = gat_c(s), HC = K * C;
    const int64_t N = g->N, E = g->E;
    real *xw = act, *as = xw + N * HC, *ad = as + N * K, *al_self = ad + N * K, *al_e = al_self + N * K;
    (void)E;
    linear_forward(xw, inp, p[GAT_W], NULL, N, H, HC);
    const real *att_s = p[GAT_ATT_SRC], *att_d = p[GAT_ATT_DST], *b = p[GAT_B];
#pragma omp parallel for schedule(static) if (N * HC >= GNN_PAR_MIN)
    for (int64_t n = 0; n < N; n++)
        for (int k = 0; k < K; k++) {
            const real *x = xw + n * HC + k * C;
            real s1 = 0, s2 = 0;
            for (int c = 0; c < C; c++) { s1 += x[c] * att_s[k * C + c]; s2 += x[c] * att_d[k * C + c]; }
            as[n * K + k] = s1;
            ad[n * K + k] = s2;
        }
#pragma omp parallel for schedule(dynamic, 64) if (N * HC >= GNN_PAR_MIN)
    for (int64_t i = 0; i < N; i++) {
        real *o = out + i * H;
        const int64_t a = g->dst_ptr[i], e1 = g->dst_ptr[i + 1];
        if (s->concat) for (int c = 0; c < H; c++) o[c] = b[c];
        else for (int c = 0; c < H; c++) o[c] = 0;
        for (int k = 0; k < K; k++) {
            /* softmax over {i} + {j->i} of LeakyReLU(a_src_j + a_dst_i), max-shifted */
            const real adi = ad[i * K + k];
            real mx = leaky(as[i * K + k] + adi);
            for (int64_t q = a; q < e1; q++) {
                const real l = leaky(as[g->src[g->dst_edges[q]] * K + k] + adi);
                if (l > mx) mx = l;
            }
            double sum = exp((double)(leaky(as[i * K + k] + adi) - mx));
            for (int64_t q = a; q < e1; q++) sum += exp((double)(leaky(as[g->src[g->dst_edges[q]] * K + k] + adi) - mx));
            const double inv = 1.0 / sum;
            real *ok = s->concat ? o + k * C : o;
            const real scale = s->concat ? (real)1 : (real)(1.0 / K);
            const real w0 = (real)(exp((double)(leaky(as[i * K + k] + adi) - mx)) * inv);
            al_self[i * K + k] = w0;
            const real *xi = xw + i * HC + k * C;
            for (int c = 0; c < C; c++) ok[c] += scale * w0 * xi[c];
            for (int64_t q = a; q < e1; q++) {
                const int64_t e = g->dst_edges[q], j = g->src[e];
                const real w = (real)(exp((double)(leaky(as[j * K + k] + adi) - mx)) * inv);
                al_e[e * K + k] = w;
                const real *xj = xw + j * HC + k * C;
                for (int c = 0; c < C; c++) ok[c] += scale * w * xj[c];
            }
        }
        if (!s->concat) for (int c = 0; c < H; c++) o[c] += b[c];
    }
}

void gat_backward(real *dinp, real *const *dp, const real *dout, const real *inp, real *const *p, const real *act,
                  const gnn_graph *g, const gnn_spec *s, real *scratch) {
    const int H = s->hidden, K = s->heads, C = gat_c(s), HC = K * C;
    const int64_t N = g->N, E = g->E;
    const real *xw = act, *as = xw + N * HC, *ad = as + N * K, *al_self = ad + N * K, *al_e = al_self + N * K;
    real *dxw = scratch, *dl_self = dxw + N * HC, *das = dl_self + N * K, *dad = das + N * K, *dl_e = dad + N * K;
    (void)E;
    const real *att_s = p[GAT_ATT_SRC], *att_d = p[GAT_ATT_DST];
    const real scale = s->concat ? (real)1 : (real)(1.0 / K);
    /* gradient of head k's output at node i: dout_i[k*C..] (concat) or dout_i / K (mean) */
#define DO(i, k) (dout + (i) * H + (s->concat ? (k) * C : 0))
    colsum_add(dp[GAT_B], dout, N, H);
    /* pass 1, by target i: dalpha = dO_i . xw_j; softmax' and LeakyReLU' give the logits' gradients */
#pragma omp parallel for schedule(dynamic, 64) if (N * HC >= GNN_PAR_MIN)
    for (int64_t i = 0; i < N; i++) {
        const int64_t a = g->dst_ptr[i], e1 = g->dst_ptr[i + 1];
        for (int k = 0; k < K; k++) {
            const real *d = DO(i, k), adi = ad[i * K + k];
            const real *xi = xw + i * HC + k * C;
            real da0 = 0;
            for (int c = 0; c < C; c++) da0 += d[c] * xi[c];
            da0 *= scale;
            double dot = (double)al_self[i * K + k] * da0;
            for (int64_t q = a; q < e1; q++) {
                const int64_t e = g->dst_edges[q];
                const real *xj = xw + g->src[e] * HC + k * C;
                real dal = 0;
                for (int c = 0; c < C; c++) dal += d[c] * xj[c];
                dal *= scale;
                dl_e[e * K + k] = dal;   /* dalpha for now, the logit's gradient below */
                dot += (double)al_e[e * K + k] * dal;
            }
            real sd = al_self[i * K + k] * (da0 - (real)dot) * leaky_slope(as[i * K + k] + adi);
            dl_self[i * K + k] = sd;
            for (int64_t q = a; q < e1; q++) {
                const int64_t e = g->dst_edges[q];
                const real l = al_e[e * K + k] * (dl_e[e * K + k] - (real)dot) * leaky_slope(as[g->src[e] * K + k] + adi);
                dl_e[e * K + k] = l;
                sd += l;
            }
            dad[i * K + k] = sd;   /* a_dst_i appears in every logit into i */
        }
    }
    /* pass 2, by source j: d a_src_j and dxw_j (messages alpha * xw_j and both attention dots) */
#pragma omp parallel for schedule(dynamic, 64) if (N * HC >= GNN_PAR_MIN)
    for (int64_t j = 0; j < N; j++) {
        const int64_t a = g->src_ptr[j], e1 = g->src_ptr[j + 1];
        for (int k = 0; k < K; k++) {
            real *o = dxw + j * HC + k * C;
            const real w0 = scale * al_self[j * K + k], *d0 = DO(j, k);
            real dsj = dl_self[j * K + k];
            for (int c = 0; c < C; c++) o[c] = w0 * d0[c];
            for (int64_t q = a; q < e1; q++) {
                const int64_t e = g->src_edges[q];
                const real w = scale * al_e[e * K + k], *di = DO(g->dst[e], k);
                for (int c = 0; c < C; c++) o[c] += w * di[c];
                dsj += dl_e[e * K + k];
            }
            das[j * K + k] = dsj;
            const real dd = dad[j * K + k];
            for (int c = 0; c < C; c++) o[c] += dsj * att_s[k * C + c] + dd * att_d[k * C + c];
        }
    }
#undef DO
    /* attention vectors: datt_k,c = sum_n da_n,k xw_n,k,c, per entry in double, nodes in order */
    real *gs = dp[GAT_ATT_SRC], *gd = dp[GAT_ATT_DST];
#pragma omp parallel for schedule(static) if (N * HC >= GNN_PAR_MIN)
    for (int kc = 0; kc < HC; kc++) {
        const int k = kc / C;
        double s1 = 0, s2 = 0;
        for (int64_t n = 0; n < N; n++) {
            const real x = xw[n * HC + kc];
            s1 += (double)das[n * K + k] * x;
            s2 += (double)dad[n * K + k] * x;
        }
        gs[kc] += (real)s1;
        gd[kc] += (real)s2;
    }
    linear_backward(dinp, dp[GAT_W], NULL, dxw, inp, p[GAT_W], N, H, HC);
}

/* ---- dispatch and the encoder block ------------------------------------------------------ */
int64_t gnn_block_act_size(const gnn_spec *s, int64_t N, int64_t E) { return gnn_act_size(s, N, E) + N * s->hidden; }
int64_t gnn_block_scratch_size(const gnn_spec *s, int64_t N, int64_t E) {
    return gnn_scratch_size(s, N, E) + N * s->hidden;
}

void gnn_block_forward(real *out, real *act, const real *inp, real *const *p, const gnn_graph *g, const gnn_spec *s,
                       int training, real dropout, uint64_t seed) {
    const int64_t NH = g->N * s->hidden;
    real *pre = act + gnn_act_size(s, g->N, g->E);   /* conv output; GELU' * dropout mask after a training forward */
    switch (s->conv) {
    case GNN_GIN: gin_forward(pre, act, inp, p, g, s); break;
    case GNN_GCN: gcn_forward(pre, act, inp, p, g, s); break;
    case GNN_SAGE: sage_forward(pre, act, inp, p, g, s); break;
    case GNN_GAT: gat_forward(pre, act, inp, p, g, s); break;
    default: return;
    }
    if (training) gelu_dropout_forward(out, pre, NULL, pre, NH, dropout, seed);
    else gelu_forward(out, pre, NH);
}

void gnn_block_backward(real *dinp, real *const *dp, const real *dout, const real *inp, real *const *p,
                        const real *act, const gnn_graph *g, const gnn_spec *s, real *scratch) {
    const int64_t NH = g->N * s->hidden;
    const real *deriv = act + gnn_act_size(s, g->N, g->E);
    real *dpre = scratch + gnn_scratch_size(s, g->N, g->E);
    gelu_dropout_backward(dpre, dout, deriv, NH);   /* written */
    switch (s->conv) {
    case GNN_GIN: gin_backward(dinp, dp, dpre, inp, p, act, g, s, scratch); break;
    case GNN_GCN: gcn_backward(dinp, dp, dpre, inp, p, act, g, s, scratch); break;
    case GNN_SAGE: sage_backward(dinp, dp, dpre, inp, p, act, g, s, scratch); break;
    case GNN_GAT: gat_backward(dinp, dp, dpre, inp, p, act, g, s, scratch); break;
    default: break;
    }
}
