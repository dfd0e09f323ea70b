/* model.c: the conditional diffusion transformer (see model.h): parameter table, workspaces,
 * forward, backward, loss, training step and guided DDPM/DDIM sampling.
 * Limits: one condition vector per sample (no per-token masks); the training workspace inside
 * the model serves one forward/backward at a time (sampling uses workspaces of its own). */
#include "model.h"
#include "../nn/gemm_bf16.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define MAX_LAYERS 64
#define GRAD_BLOCK 16384   /* entries of the gradient block per task of the reduction and AdamW */

static uint64_t mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* Streams of the training draws that schedule.c does not already separate. */
#define STREAM_TRAIN_NOISE 0x747261696e6e6f69ull
#define STREAM_BLOCK_DROPOUT 0x626c6b64726f7070ull

/* A batch too small to split over threads runs serially: the layers of transformer.c open a
 * parallel region per op, and for a few rows their fork/join costs more than the work (and, on a
 * shared machine, a descheduled thread stalls the others at every one). The thread count is the
 * calling thread's own setting, restored afterwards. */
static int serial_begin(void) {
#ifdef _OPENMP
    const int n = omp_get_max_threads();
    omp_set_num_threads(1);
    return n;
#else
    return 1;
#endif
}
static void serial_end(int n) {
#ifdef _OPENMP
    omp_set_num_threads(n);
#else
    (void)n;
#endif
}

/* ---------------------------------------------------------------- workspace */

/* Activations of one batch (and, with_grad, the scratch of its backward). Sizes per row
 * capacity `cap`; every pointer is carved from `mem` (reals), `bytes` (masks, drop flags) and
 * `ints` (timesteps). */
typedef struct {
    int64_t cap;
    int with_grad;
    real *mem;
    uint8_t *bytes;
    int64_t *ints;
    /* inputs, copied */
    real *xt;                   /* [B,D]   */
    real *y;                    /* [B,P]   */
    int64_t *t;                 /* [B]     */
    real *tf;                   /* [B]     t as real, for the sinusoid */
    uint8_t *drop;              /* [B]     */
    /* condition path */
    real *tsin, *th, *ta, *temb;/* [B,C] each */
    real *ye;                   /* [B,S*C] */
    real *m0;                   /* [B,S,C] */
    tblock_acts *enc;           /* [Le]    */
    real **enc_out;             /* [Le] x [B,S,C] */
    real *mem_n, *mem_mean, *mem_rstd;   /* [B,S,C] [B*S] [B*S]: the memory the decoder reads */
    /* sizing path */
    real *h0;                   /* [B,D,C] */
    tblock_acts *dec;           /* [Ld]    */
    real **dec_out;             /* [Ld] x [B,D,C] */
    real *hn, *hn_mean, *hn_rstd;        /* [B,D,C] [B*D] [B*D] */
    real *out;                  /* [B,D]   v-prediction */
    /* backward scratch (with_grad only) */
    tblock_acts denc, ddec;
    real *dh_a, *dh_b;          /* [B,D,C] */
    real *dmem, *dm_a, *dm_b;   /* [B,S,C] */
    real *dye;                  /* [B,S*C] */
    real *dtemb, *dta, *dth;    /* [B,C]   */
    real *dout;                 /* [B,D]   the loss's gradient (with_grad only) */
    /* MLP backbone (instead of the transformer's buffers) */
    real *min;                  /* [B,D+C+P] concat(x_t, temb, condition) */
    real *macts;                /* mlp_num_acts */
    uint8_t *mmask;             /* mlp_num_masks */
    real *dmin;                 /* [B,D+C+P] (with_grad only) */
    real *mscratch;             /* mlp_num_scratch (with_grad only) */
    int64_t B;                  /* rows of the last forward */
    int trained;                /* the last forward kept what backward needs */
} workspace;

/* Views of one flat [P] block (the parameters, the gradients, or a chunk's gradients) as the
 * model's tensors. */
typedef struct {
    real *t[DM_N];              /* the tensors outside the blocks (NULL where a backbone has none) */
    tblock_params *enc, *dec;   /* [Le], [Ld] (transformer) */
    real *mlp;                  /* the MLP backbone's block (mlp.h order) */
} tensor_view;

struct cm_diffusion {
    cm_diffusion_config cfg;
    /* parameter table */
    int n_tensors;
    char (*names)[64];
    int64_t *sizes, *offsets, (*dims)[2];
    int *ndims;
    int64_t P;
    real *block;                /* [4P]: params, grads, AdamW m, AdamW v */
    real *params, *grads, *am, *av;
    int step;
    int idx[DM_N], enc_first, dec_first;  /* table indices of the tensors and of the blocks' first */
    real **t;                   /* = pv.t: the parameters outside the blocks */
    tblock_params *enc, *dec;   /* = pv.enc, pv.dec */
    tensor_view pv, gv;         /* parameters, gradients */
    int64_t enc_sizes[TBP_N], dec_sizes[TBP_N];
    int mlp_L, mlp_w[CM_MLP_MAX_LAYERS + 1];   /* MLP backbone: layers and widths */
    int mlp_first;              /* table index of its first tensor */
    double *acp;                /* [T] alphas_cumprod */
    workspace ws;               /* cm_diffusion_forward / _backward on one batch */
    /* data-parallel training: a batch is cut into chunks of chunk_rows rows, each run with a
     * workspace and a gradient block of its own, and the chunks' gradients are summed in chunk
     * order, so the result does not depend on the thread count */
    int chunk_rows;
    int n_slots;                /* chunk workspaces and gradient blocks allocated */
    workspace *cws;             /* [n_slots] */
    tensor_view *cgv;           /* [n_slots] */
    real *cgrads;               /* [n_slots, P] */
    double *closs;              /* [n_slots] */
    /* the batch of a loss: x_t, v, eps [B,D] each; t [B], drop [B] */
    int64_t batch_cap;
    real *beps;                 /* [B,D] */
    int64_t *bt;                /* [B]   */
    uint8_t *bdrop;             /* [B]   */
    double *bpart;              /* [ceil(P / GRAD_BLOCK)] partial sums of squares */
};

static void ws_free(workspace *w) {
    free(w->mem); free(w->bytes); free(w->ints); free(w->enc); free(w->dec); free(w->enc_out); free(w->dec_out);
    memset(w, 0, sizeof *w);
}

/* The MLP backbone's layers: concat(x_t, temb, condition) -> mlp_layers x mlp_hidden -> D. */
static void mlp_widths(const cm_diffusion_config *c, int *L, int *w) {
    *L = c->mlp_layers + 1;
    w[0] = c->x_dim + c->channels + c->y_dim;
    for (int i = 1; i <= c->mlp_layers; i++) w[i] = c->mlp_hidden;
    w[*L] = c->x_dim;
}

/* Carve a workspace for B rows from (mem, bytes, ints); with NULL bases only counts. Returns the
 * number of reals; *nbytes and *nints receive the other two counts. */
static int64_t ws_carve(workspace *w, const cm_diffusion_config *c, int64_t B, int with_grad, real *mem,
                        uint8_t *bytes, int64_t *ints, int64_t *nbytes, int64_t *nints) {
    const int64_t D = c->x_dim, P = c->y_dim, S = c->cond_tokens, C = c->channels;
    int64_t off = 0, boff = 0, ioff = 0;
#define TAKE(p, n) do { if (mem) (p) = mem + off; off += (n); } while (0)
#define TAKEB(p, n) do { if (bytes) (p) = bytes + boff; boff += (n); } while (0)
#define TAKEI(p, n) do { if (ints) (p) = ints + ioff; ioff += (n); } while (0)
    TAKE(w->xt, B * D); TAKE(w->y, B * P); TAKE(w->tf, B); TAKEI(w->t, B); TAKEB(w->drop, B);
    TAKE(w->tsin, B * C); TAKE(w->th, B * C); TAKE(w->ta, B * C); TAKE(w->temb, B * C);
    if (c->backbone == CM_BACKBONE_MLP) {
        int L, wd[CM_MLP_MAX_LAYERS + 1];
        mlp_widths(c, &L, wd);
        TAKE(w->min, B * wd[0]);
        TAKE(w->macts, mlp_num_acts(wd, L, B));
        TAKEB(w->mmask, mlp_num_masks(wd, L, B));
        TAKE(w->out, B * D);
        if (with_grad) {
            TAKE(w->dmin, B * wd[0]);
            TAKE(w->mscratch, mlp_num_scratch(wd, L, B));
            TAKE(w->dtemb, B * C); TAKE(w->dta, B * C); TAKE(w->dth, B * C);
            TAKE(w->dout, B * D);
        }
        *nbytes = boff;
        *nints = ioff;
        return off;
    }
    TAKE(w->ye, B * S * C); TAKE(w->m0, B * S * C);
    int64_t as[TBA_N], mb;
    const int64_t ea = tblock_act_sizes(as, &mb, (int)B, (int)S, (int)S, (int)C, c->heads, c->ff, 0);
    /* A workspace without gradients (inference, sampling) keeps nothing for a backward: all
     * blocks of a stack share one activation block and their outputs alternate between two
     * buffers, so it is ~Le (Ld) times smaller and stays in cache. */
    const int share = !with_grad;
    for (int l = 0; l < c->enc_layers; l++) {
        if (share && l > 0) { if (mem) w->enc[l] = w->enc[0]; }
        else {
            if (mem) tblock_acts_carve(&w->enc[l], mem + off, bytes + boff, as);
            off += ea; boff += mb;
        }
        if (share && l > 1) { if (mem) w->enc_out[l] = w->enc_out[l - 2]; }
        else TAKE(w->enc_out[l], B * S * C);
    }
    TAKE(w->mem_n, B * S * C); TAKE(w->mem_mean, B * S); TAKE(w->mem_rstd, B * S);
    TAKE(w->h0, B * D * C);
    int64_t ds[TBA_N], dmb;
    const int64_t da = tblock_act_sizes(ds, &dmb, (int)B, (int)D, (int)S, (int)C, c->heads, c->ff, 1);
    for (int l = 0; l < c->dec_layers; l++) {
        if (share && l > 0) { if (mem) w->dec[l] = w->dec[0]; }
        else {
            if (mem) tblock_acts_carve(&w->dec[l], mem + off, bytes + boff, ds);
            off += da; boff += dmb;
        }
        if (share && l > 1) { if (mem) w->dec_out[l] = w->dec_out[l - 2]; }
        else TAKE(w->dec_out[l], B * D * C);
    }
    TAKE(w->hn, B * D * C); TAKE(w->hn_mean, B * D); TAKE(w->hn_rstd, B * D);
    TAKE(w->out, B * D);
    if (with_grad) {
        /* backward scratch has the layout of one block's activations (masks unused there) */
        if (mem) tblock_acts_carve(&w->denc, mem + off, bytes + boff, as);
        off += ea; boff += mb;
        if (mem) tblock_acts_carve(&w->ddec, mem + off, bytes + boff, ds);
        off += da; boff += dmb;
        TAKE(w->dh_a, B * D * C); TAKE(w->dh_b, B * D * C);
        TAKE(w->dmem, B * S * C); TAKE(w->dm_a, B * S * C); TAKE(w->dm_b, B * S * C);
        TAKE(w->dye, B * S * C);
        TAKE(w->dtemb, B * C); TAKE(w->dta, B * C); TAKE(w->dth, B * C);
        TAKE(w->dout, B * D);
    }
#undef TAKE
#undef TAKEB
#undef TAKEI
    *nbytes = boff;
    *nints = ioff;
    return off;
}

/* Make w hold at least B rows (grows, never shrinks). */
static cm_status ws_reserve(workspace *w, const cm_diffusion_config *c, int64_t B, int with_grad) {
    if (w->mem && B <= w->cap && (!with_grad || w->with_grad)) return CM_OK;
    if (w->mem && B < w->cap) B = w->cap;
    with_grad = with_grad || w->with_grad;
    ws_free(w);
    const int tf = c->backbone == CM_BACKBONE_TRANSFORMER;
    if (tf) {
        w->enc = calloc((size_t)c->enc_layers, sizeof *w->enc);
        w->dec = calloc((size_t)c->dec_layers, sizeof *w->dec);
        w->enc_out = calloc((size_t)c->enc_layers, sizeof *w->enc_out);
        w->dec_out = calloc((size_t)c->dec_layers, sizeof *w->dec_out);
    }
    int64_t nb, ni, nr = ws_carve(w, c, B, with_grad, NULL, NULL, NULL, &nb, &ni);
    w->mem = malloc(sizeof(real) * (size_t)nr);
    w->bytes = malloc((size_t)(nb > 0 ? nb : 1));
    w->ints = malloc(sizeof(int64_t) * (size_t)ni);
    if ((tf && (!w->enc || !w->dec || !w->enc_out || !w->dec_out)) || !w->mem || !w->bytes || !w->ints) {
        ws_free(w);
        return CM_ERR_NOMEM;
    }
    ws_carve(w, c, B, with_grad, w->mem, w->bytes, w->ints, &nb, &ni);
    w->cap = B;
    w->with_grad = with_grad;
    return CM_OK;
}

/* ---------------------------------------------------------------- parameter table */

static const char *DM_NAMES[DM_N] = {
    "x_embed.weight", "x_embed.bias", "y_embed.weight", "y_embed.bias", "null_cond",
    "t_embed.linear_1.weight", "t_embed.linear_1.bias", "t_embed.linear_2.weight", "t_embed.linear_2.bias",
    "transformer.encoder.norm.weight", "transformer.encoder.norm.bias",
    "transformer.decoder.norm.weight", "transformer.decoder.norm.bias", "out.weight", "out.bias"};

static void tblock_shape(int i, int C, int F, int *nd, int64_t d[2]) {
    *nd = 1;
    d[1] = 0;
    switch (i) {
    case TBP_ATTN_WQKV: case TBP_XATTN_WQKV: *nd = 2; d[0] = 3 * (int64_t)C; d[1] = C; break;
    case TBP_ATTN_BQKV: case TBP_XATTN_BQKV: d[0] = 3 * (int64_t)C; break;
    case TBP_ATTN_WO: case TBP_XATTN_WO: *nd = 2; d[0] = C; d[1] = C; break;
    case TBP_FC_W: *nd = 2; d[0] = F; d[1] = C; break;
    case TBP_FC_B: d[0] = F; break;
    case TBP_PROJ_W: *nd = 2; d[0] = C; d[1] = F; break;
    default: d[0] = C; break;   /* layer norms, biases of width C */
    }
}

static void add_tensor(cm_diffusion *m, const char *name, int nd, int64_t d0, int64_t d1) {
    int i = m->n_tensors++;
    snprintf(m->names[i], sizeof m->names[i], "%s", name);
    m->ndims[i] = nd;
    m->dims[i][0] = d0;
    m->dims[i][1] = nd == 2 ? d1 : 0;
    m->sizes[i] = nd == 2 ? d0 * d1 : d0;
    m->offsets[i] = m->P;
    m->P += m->sizes[i];
}

static void add_blocks(cm_diffusion *m, const char *prefix, int layers, int decoder) {
    const int C = m->cfg.channels, F = m->cfg.ff;
    char name[64];
    for (int l = 0; l < layers; l++)
        for (int i = 0; i < TBP_N; i++) {
            const char *n = tblock_param_name(i, decoder);
            if (!n) continue;
            int nd;
            int64_t d[2];
            tblock_shape(i, C, F, &nd, d);
            snprintf(name, sizeof name, "%s.layers.%d.%s", prefix, l, n);
            add_tensor(m, name, nd, d[0], d[1]);
        }
}

static void view_free(tensor_view *v) {
    free(v->enc);
    free(v->dec);
    v->enc = v->dec = NULL;
}

/* Point v's tensors into base[P] by the table. */
static cm_status view_carve(const cm_diffusion *m, tensor_view *v, real *base) {
    const cm_diffusion_config *c = &m->cfg;
    if (c->backbone == CM_BACKBONE_MLP) {
        for (int i = 0; i < DM_N; i++) v->t[i] = m->idx[i] >= 0 ? base + m->offsets[m->idx[i]] : NULL;
        v->enc = v->dec = NULL;
        v->mlp = base + m->offsets[m->mlp_first];
        return CM_OK;
    }
    v->mlp = NULL;
    v->enc = calloc((size_t)c->enc_layers, sizeof *v->enc);
    v->dec = calloc((size_t)c->dec_layers, sizeof *v->dec);
    if (!v->enc || !v->dec) { view_free(v); return CM_ERR_NOMEM; }
    for (int i = 0; i < DM_N; i++) v->t[i] = base + m->offsets[m->idx[i]];
    int n_enc = 0, n_dec = 0;   /* tensors per block: 12 and 18 */
    for (int i = 0; i < TBP_N; i++) { n_enc += m->enc_sizes[i] > 0; n_dec += m->dec_sizes[i] > 0; }
    for (int l = 0; l < c->enc_layers; l++)
        tblock_params_carve(&v->enc[l], base + m->offsets[m->enc_first + l * n_enc], m->enc_sizes);
    for (int l = 0; l < c->dec_layers; l++)
        tblock_params_carve(&v->dec[l], base + m->offsets[m->dec_first + l * n_dec], m->dec_sizes);
    return CM_OK;
}

static void free_chunks(cm_diffusion *m) {
    for (int k = 0; k < m->n_slots; k++) { ws_free(&m->cws[k]); view_free(&m->cgv[k]); }
    free(m->cws); free(m->cgv); free(m->cgrads); free(m->closs);
    m->cws = NULL; m->cgv = NULL; m->cgrads = NULL; m->closs = NULL;
    m->n_slots = 0;
}

static void uniform_fill(real *w, int64_t n, double bound, uint64_t seed) {
    for (int64_t k = 0; k < n; k++) {
        double u = (double)(mix64(seed ^ mix64((uint64_t)k)) >> 11) * (1.0 / 9007199254740992.0);
        w[k] = (real)((2 * u - 1) * bound);
    }
}

/* The DM-MLP backbone (model.h): the table is null_cond, the timestep MLP, then the MLP's
 * layers; the tensors of the transformer are absent (idx -1). */
static cm_status init_mlp(cm_diffusion **out, const cm_diffusion_config *c, uint64_t seed, cm_error *err) {
    if (c->x_dim < 1 || c->y_dim < 1 || c->channels < 2 || c->mlp_hidden < 1)
        return cm_error_set(err, CM_ERR_VALUE, "", 0,
                            "diffusion model sizes must be positive (x_dim %d, y_dim %d, channels %d >= 2, "
                            "mlp_hidden %d)", c->x_dim, c->y_dim, c->channels, c->mlp_hidden);
    if (c->mlp_layers < 1 || c->mlp_layers >= CM_MLP_MAX_LAYERS)
        return cm_error_set(err, CM_ERR_VALUE, "", 0, "mlp_layers must be in [1, %d] (got %d)", CM_MLP_MAX_LAYERS - 1,
                            c->mlp_layers);
    if (c->timesteps < 2) return cm_error_set(err, CM_ERR_VALUE, "", 0, "timesteps must be >= 2 (got %d)", c->timesteps);
    if (!(c->dropout >= 0 && c->dropout < 1))
        return cm_error_set(err, CM_ERR_VALUE, "", 0, "dropout must be in [0, 1) (got %g)", (double)c->dropout);
    if (c->act != CM_ACT_GELU && c->act != CM_ACT_RELU)
        return cm_error_set(err, CM_ERR_VALUE, "", 0, "unknown activation %d", (int)c->act);
    cm_diffusion *m = calloc(1, sizeof *m);
    if (!m) return cm_error_set(err, CM_ERR_NOMEM, "", 0, "out of memory");
    m->cfg = *c;
    mlp_widths(c, &m->mlp_L, m->mlp_w);
    const int64_t P = c->y_dim, C = c->channels;
    const int max_t = DM_N + 2 * m->mlp_L;
    m->names = calloc((size_t)max_t, sizeof *m->names);
    m->sizes = calloc((size_t)max_t, sizeof *m->sizes);
    m->offsets = calloc((size_t)max_t, sizeof *m->offsets);
    m->dims = calloc((size_t)max_t, sizeof *m->dims);
    m->ndims = calloc((size_t)max_t, sizeof *m->ndims);
    m->acp = malloc(sizeof(double) * (size_t)c->timesteps);
    m->chunk_rows = CM_DIFFUSION_CHUNK_ROWS;
    if (!m->names || !m->sizes || !m->offsets || !m->dims || !m->ndims || !m->acp) {
        cm_diffusion_free(m);
        return cm_error_set(err, CM_ERR_NOMEM, "", 0, "out of memory");
    }
    cm_status st = diffusion_cosine_schedule(NULL, m->acp, c->timesteps, c->zero_terminal_snr, err);
    if (st) { cm_diffusion_free(m); return st; }
    int *idx = m->idx;
    for (int i = 0; i < DM_N; i++) idx[i] = -1;
    idx[DM_NULL] = m->n_tensors; add_tensor(m, DM_NAMES[DM_NULL], 1, P, 0);
    idx[DM_T1_W] = m->n_tensors; add_tensor(m, DM_NAMES[DM_T1_W], 2, C, C);
    idx[DM_T1_B] = m->n_tensors; add_tensor(m, DM_NAMES[DM_T1_B], 1, C, 0);
    idx[DM_T2_W] = m->n_tensors; add_tensor(m, DM_NAMES[DM_T2_W], 2, C, C);
    idx[DM_T2_B] = m->n_tensors; add_tensor(m, DM_NAMES[DM_T2_B], 1, C, 0);
    m->mlp_first = m->n_tensors;
    char name[64];
    for (int i = 0; i < m->mlp_L; i++) {
        snprintf(name, sizeof name, "mlp.%d.weight", i);
        add_tensor(m, name, 2, m->mlp_w[i + 1], m->mlp_w[i]);
        snprintf(name, sizeof name, "mlp.%d.bias", i);
        add_tensor(m, name, 1, m->mlp_w[i + 1], 0);
    }
    m->block = calloc((size_t)(4 * m->P), sizeof(real));
    if (!m->block) { cm_diffusion_free(m); return cm_error_set(err, CM_ERR_NOMEM, "", 0, "out of memory"); }
    m->params = m->block;
    m->grads = m->block + m->P;
    m->am = m->block + 2 * m->P;
    m->av = m->block + 3 * m->P;
    view_carve(m, &m->pv, m->params);
    view_carve(m, &m->gv, m->grads);
    m->t = m->pv.t;
    /* null_cond starts at zero (the "zero condition" of a plain conditional MLP) and is learned */
    for (int i = DM_T1_W; i <= DM_T2_B; i++)
        uniform_fill(m->t[i], m->sizes[idx[i]], 1.0 / sqrt((double)C), mix64(seed ^ mix64(0x1000 + (uint64_t)i)));
    mlp_init_params(m->pv.mlp, m->mlp_w, m->mlp_L, mix64(seed ^ 0x6d6c70));
    *out = m;
    return CM_OK;
}

cm_status cm_diffusion_init(cm_diffusion **out, const cm_diffusion_config *cfg, uint64_t seed, cm_error *err) {
    *out = NULL;
    const cm_diffusion_config *c = cfg;
    if (c->backbone == CM_BACKBONE_MLP) return init_mlp(out, cfg, seed, err);
    if (c->backbone != CM_BACKBONE_TRANSFORMER)
        return cm_error_set(err, CM_ERR_VALUE, "", 0, "unknown backbone %d (0 transformer, 1 MLP)", (int)c->backbone);
    if (c->x_dim < 1 || c->y_dim < 1 || c->cond_tokens < 1 || c->channels < 2 || c->heads < 1 || c->ff < 1)
        return cm_error_set(err, CM_ERR_VALUE, "", 0,
                            "diffusion model sizes must be positive (x_dim %d, y_dim %d, cond_tokens %d, channels %d, "
                            "heads %d, ff %d)", c->x_dim, c->y_dim, c->cond_tokens, c->channels, c->heads, c->ff);
    if (c->channels % c->heads)
        return cm_error_set(err, CM_ERR_VALUE, "", 0, "channels (%d) must be a multiple of heads (%d)", c->channels,
                            c->heads);
    if (c->enc_layers < 1 || c->enc_layers > MAX_LAYERS || c->dec_layers < 1 || c->dec_layers > MAX_LAYERS)
        return cm_error_set(err, CM_ERR_VALUE, "", 0, "encoder and decoder blocks must be in [1, %d] (got %d, %d)",
                            MAX_LAYERS, c->enc_layers, c->dec_layers);
    if (c->timesteps < 2) return cm_error_set(err, CM_ERR_VALUE, "", 0, "timesteps must be >= 2 (got %d)", c->timesteps);
    if (!(c->dropout >= 0 && c->dropout < 1))
        return cm_error_set(err, CM_ERR_VALUE, "", 0, "dropout must be in [0, 1) (got %g)", (double)c->dropout);
    if (c->act != CM_ACT_GELU && c->act != CM_ACT_RELU)
        return cm_error_set(err, CM_ERR_VALUE, "", 0, "unknown activation %d", (int)c->act);
    cm_diffusion *m = calloc(1, sizeof *m);
    if (!m) return cm_error_set(err, CM_ERR_NOMEM, "", 0, "out of memory");
    m->cfg = *cfg;
    const int64_t D = c->x_dim, P = c->y_dim, S = c->cond_tokens, C = c->channels;
    const int max_t = DM_N + (c->enc_layers + c->dec_layers) * TBP_N;
    m->names = calloc((size_t)max_t, sizeof *m->names);
    m->sizes = calloc((size_t)max_t, sizeof *m->sizes);
    m->offsets = calloc((size_t)max_t, sizeof *m->offsets);
    m->dims = calloc((size_t)max_t, sizeof *m->dims);
    m->ndims = calloc((size_t)max_t, sizeof *m->ndims);
    m->acp = malloc(sizeof(double) * (size_t)c->timesteps);
    m->chunk_rows = CM_DIFFUSION_CHUNK_ROWS;
    if (!m->names || !m->sizes || !m->offsets || !m->dims || !m->ndims || !m->acp) {
        cm_diffusion_free(m);
        return cm_error_set(err, CM_ERR_NOMEM, "", 0, "out of memory");
    }
    cm_status st = diffusion_cosine_schedule(NULL, m->acp, c->timesteps, c->zero_terminal_snr, err);
    if (st) { cm_diffusion_free(m); return st; }
    /* the table, in the order of model.h */
    int *idx = m->idx;
    idx[DM_X_W] = m->n_tensors; add_tensor(m, DM_NAMES[DM_X_W], 2, D * C, D);
    idx[DM_X_B] = m->n_tensors; add_tensor(m, DM_NAMES[DM_X_B], 1, D * C, 0);
    idx[DM_Y_W] = m->n_tensors; add_tensor(m, DM_NAMES[DM_Y_W], 2, S * C, P);
    idx[DM_Y_B] = m->n_tensors; add_tensor(m, DM_NAMES[DM_Y_B], 1, S * C, 0);
    idx[DM_NULL] = m->n_tensors; add_tensor(m, DM_NAMES[DM_NULL], 2, S, C);
    idx[DM_T1_W] = m->n_tensors; add_tensor(m, DM_NAMES[DM_T1_W], 2, C, C);
    idx[DM_T1_B] = m->n_tensors; add_tensor(m, DM_NAMES[DM_T1_B], 1, C, 0);
    idx[DM_T2_W] = m->n_tensors; add_tensor(m, DM_NAMES[DM_T2_W], 2, C, C);
    idx[DM_T2_B] = m->n_tensors; add_tensor(m, DM_NAMES[DM_T2_B], 1, C, 0);
    m->enc_first = m->n_tensors;
    add_blocks(m, "transformer.encoder", c->enc_layers, 0);
    idx[DM_ENC_LN_W] = m->n_tensors; add_tensor(m, DM_NAMES[DM_ENC_LN_W], 1, C, 0);
    idx[DM_ENC_LN_B] = m->n_tensors; add_tensor(m, DM_NAMES[DM_ENC_LN_B], 1, C, 0);
    m->dec_first = m->n_tensors;
    add_blocks(m, "transformer.decoder", c->dec_layers, 1);
    idx[DM_DEC_LN_W] = m->n_tensors; add_tensor(m, DM_NAMES[DM_DEC_LN_W], 1, C, 0);
    idx[DM_DEC_LN_B] = m->n_tensors; add_tensor(m, DM_NAMES[DM_DEC_LN_B], 1, C, 0);
    idx[DM_OUT_W] = m->n_tensors; add_tensor(m, DM_NAMES[DM_OUT_W], 2, 1, C);
    idx[DM_OUT_B] = m->n_tensors; add_tensor(m, DM_NAMES[DM_OUT_B], 1, 1, 0);
    m->block = calloc((size_t)(4 * m->P), sizeof(real));
    if (!m->block) { cm_diffusion_free(m); return cm_error_set(err, CM_ERR_NOMEM, "", 0, "out of memory"); }
    m->params = m->block;
    m->grads = m->block + m->P;
    m->am = m->block + 2 * m->P;
    m->av = m->block + 3 * m->P;
    tblock_param_sizes(m->enc_sizes, c->channels, c->ff, 0);
    tblock_param_sizes(m->dec_sizes, c->channels, c->ff, 1);
    if (view_carve(m, &m->pv, m->params) || view_carve(m, &m->gv, m->grads)) {
        cm_diffusion_free(m);
        return cm_error_set(err, CM_ERR_NOMEM, "", 0, "out of memory");
    }
    m->t = m->pv.t;
    m->enc = m->pv.enc;
    m->dec = m->pv.dec;
    /* PyTorch's initialisation: Linear weights and biases U(+-1/sqrt(fan_in)), layer norms
     * (1, 0), the blocks as nn.Transformer*Layer (tblock_params_init). The null condition starts
     * where an embedding of y = 0 would (the y_embed bias's distribution). */
    const double fan[DM_N] = {[DM_X_W] = (double)D, [DM_X_B] = (double)D, [DM_Y_W] = (double)P, [DM_Y_B] = (double)P,
                              [DM_NULL] = (double)P, [DM_T1_W] = (double)C, [DM_T1_B] = (double)C,
                              [DM_T2_W] = (double)C, [DM_T2_B] = (double)C, [DM_OUT_W] = (double)C,
                              [DM_OUT_B] = (double)C};
    for (int i = 0; i < DM_N; i++) {
        const int64_t n = m->sizes[m->idx[i]];
        if (i == DM_ENC_LN_W || i == DM_DEC_LN_W) for (int64_t k = 0; k < n; k++) m->t[i][k] = 1;
        else if (i == DM_ENC_LN_B || i == DM_DEC_LN_B) continue;   /* calloc'ed zeros */
        else uniform_fill(m->t[i], n, 1.0 / sqrt(fan[i]), mix64(seed ^ mix64(0x1000 + (uint64_t)i)));
    }
    for (int l = 0; l < c->enc_layers; l++)
        tblock_params_init(&m->enc[l], m->enc_sizes, c->channels, c->ff, mix64(seed ^ mix64(0x2000 + (uint64_t)l)));
    for (int l = 0; l < c->dec_layers; l++)
        tblock_params_init(&m->dec[l], m->dec_sizes, c->channels, c->ff, mix64(seed ^ mix64(0x3000 + (uint64_t)l)));
    *out = m;
    return CM_OK;
}

void cm_diffusion_free(cm_diffusion *m) {
    if (!m) return;
    ws_free(&m->ws);
    free(m->names); free(m->sizes); free(m->offsets); free(m->dims); free(m->ndims);
    view_free(&m->pv); view_free(&m->gv);
    free_chunks(m);
    free(m->beps); free(m->bt); free(m->bdrop); free(m->bpart);
    free(m->acp); free(m->block);
    free(m);
}

const cm_diffusion_config *cm_diffusion_get_config(const cm_diffusion *m) { return &m->cfg; }
int64_t cm_diffusion_num_params(const cm_diffusion *m) { return m->P; }
real *cm_diffusion_params(cm_diffusion *m) { return m->params; }
real *cm_diffusion_grads(cm_diffusion *m) { return m->grads; }
real *cm_diffusion_moments(cm_diffusion *m) { return m->am; }
int cm_diffusion_adam_step(const cm_diffusion *m) { return m->step; }
void cm_diffusion_set_adam_step(cm_diffusion *m, int step) { m->step = step < 0 ? 0 : step; }
const double *cm_diffusion_alphas_cumprod(const cm_diffusion *m) { return m->acp; }

int64_t cm_diffusion_tensor(const cm_diffusion *m, int i, const char **name, int *ndim, int64_t dims[2]) {
    if (i < 0 || i >= m->n_tensors) return -1;
    if (name) *name = m->names[i];
    if (ndim) *ndim = m->ndims[i];
    if (dims) { dims[0] = m->dims[i][0]; dims[1] = m->dims[i][1]; }
    return m->sizes[i];
}

void cm_diffusion_zero_grad(cm_diffusion *m) { memset(m->grads, 0, sizeof(real) * (size_t)m->P); }

/* Sum of squares over fixed chunks, added in chunk order: the same for any thread count. */
#define NORM_CHUNK 8192
double cm_diffusion_clip_grad(cm_diffusion *m, double max_norm) {
    const int64_t n = m->P, nc = (n + NORM_CHUNK - 1) / NORM_CHUNK;
    double part[4096], total = 0;   /* enough for 33M parameters; beyond that, chunks grow */
    const int64_t chunks = nc <= 4096 ? nc : 4096, per = (n + chunks - 1) / chunks;
#pragma omp parallel for schedule(static)
    for (int64_t k = 0; k < chunks; k++) {
        double s = 0;
        const int64_t hi = (k + 1) * per < n ? (k + 1) * per : n;
        for (int64_t i = k * per; i < hi; i++) s += (double)m->grads[i] * m->grads[i];
        part[k] = s;
    }
    for (int64_t k = 0; k < chunks; k++) total += part[k];
    const double norm = sqrt(total);
    if (max_norm > 0 && norm > max_norm) {
        const real s = (real)(max_norm / (norm + 1e-6));
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; i++) m->grads[i] *= s;
    }
    return norm;
}

void cm_diffusion_adamw(cm_diffusion *m, real lr, real beta1, real beta2, real eps, real weight_decay) {
    m->step++;
    adamw_update(m->params, m->grads, m->am, m->av, m->P, lr, beta1, beta2, eps, weight_decay, m->step);
}

/* ---------------------------------------------------------------- forward */

static void act_forward(cm_activation act, real *out, const real *inp, int64_t n) {
    if (act == CM_ACT_RELU) relu_forward(out, inp, n);
    else gelu_forward(out, inp, n);
}
static void act_backward(cm_activation act, real *dinp, const real *dout, const real *inp, int64_t n) {
    if (act == CM_ACT_RELU) relu_backward(dinp, dout, inp, n);
    else gelu_backward(dinp, dout, inp, n);
}

/* temb[B,C] = Linear2(act(Linear1(sinusoid(t)))) of the timesteps in w */
static void temb_forward(const cm_diffusion *m, workspace *w, int64_t B) {
    const cm_diffusion_config *c = &m->cfg;
    const int C = c->channels;
    real *const *t = m->t;
    for (int64_t b = 0; b < B; b++) w->tf[b] = (real)w->t[b];
    timestep_embedding_forward(w->tsin, w->tf, B, C, 10000.0, 1, 0.0);
    linear_forward(w->th, w->tsin, t[DM_T1_W], t[DM_T1_B], B, C, C);
    act_forward(c->act, w->ta, w->th, B * C);
    linear_forward(w->temb, w->ta, t[DM_T2_W], t[DM_T2_B], B, C, C);
}

/* Backward of temb_forward from w->dtemb, accumulating into g. */
static void temb_backward(const cm_diffusion *m, workspace *w, real *const *g, int64_t B) {
    const cm_diffusion_config *c = &m->cfg;
    const int C = c->channels;
    real *const *t = m->t;
    memset(w->dta, 0, sizeof(real) * (size_t)(B * C));
    linear_backward(w->dta, g[DM_T2_W], g[DM_T2_B], w->dtemb, w->ta, t[DM_T2_W], B, C, C);
    memset(w->dth, 0, sizeof(real) * (size_t)(B * C));
    act_backward(c->act, w->dth, w->dta, w->th, B * C);
    linear_backward(NULL, g[DM_T1_W], g[DM_T1_B], w->dth, w->tsin, t[DM_T1_W], B, C, C);
}

/* The MLP backbone: out[B,D] = MLP(concat(x_t, temb, drop ? null : y)). */
static void mlp_model_forward(const cm_diffusion *m, workspace *w, int64_t B, int training, uint64_t seed) {
    const cm_diffusion_config *c = &m->cfg;
    const int D = c->x_dim, P = c->y_dim, C = c->channels, W0 = m->mlp_w[0];
    temb_forward(m, w, B);
    const real *null = m->t[DM_NULL];
#pragma omp parallel for schedule(static) if (B >= 64)
    for (int64_t b = 0; b < B; b++) {
        real *r = w->min + b * W0;
        memcpy(r, w->xt + b * D, sizeof(real) * (size_t)D);
        memcpy(r + D, w->temb + b * C, sizeof(real) * (size_t)C);
        memcpy(r + D + C, w->drop[b] ? null : w->y + b * P, sizeof(real) * (size_t)P);
    }
    mlp_forward(w->out, w->macts, w->mmask, w->min, m->pv.mlp, m->mlp_w, m->mlp_L, B,
                training ? (real)c->dropout : (real)0, mix64(seed ^ STREAM_BLOCK_DROPOUT));
    w->B = B;
    w->trained = training;
}

static void mlp_model_backward(const cm_diffusion *m, workspace *w, const tensor_view *gv, const real *dout) {
    const cm_diffusion_config *c = &m->cfg;
    const int D = c->x_dim, P = c->y_dim, C = c->channels, W0 = m->mlp_w[0];
    const int64_t B = w->B;
    memset(w->dmin, 0, sizeof(real) * (size_t)(B * W0));
    mlp_backward(w->dmin, gv->mlp, w->mscratch, dout, w->min, m->pv.mlp, w->macts, w->mmask, m->mlp_w, m->mlp_L, B,
                 (real)c->dropout);
    /* the input is concat(x_t, temb, cond): x_t and y are data; temb and null get gradients */
    for (int64_t b = 0; b < B; b++) memcpy(w->dtemb + b * C, w->dmin + b * W0 + D, sizeof(real) * (size_t)C);
    real *gnull = gv->t[DM_NULL];
    for (int64_t b = 0; b < B; b++)   /* rows in order: the same sum for any thread count */
        if (w->drop[b])
            for (int k = 0; k < P; k++) gnull[k] += w->dmin[b * W0 + D + C + k];
    temb_backward(m, w, gv->t, B);
}

/* A Linear forward through the calling thread's packed-weight cache when sampling opened one
 * (gemm_bf16.h), else ops.c's. */
static void packed_linear_forward(real *out, const real *inp, const real *w, const real *b, int64_t B, int C, int OC) {
#ifdef CM_REAL_IS_FLOAT
    if (gemm_bf16_linear_hook(out, inp, w, b, B, C, OC)) return;
#endif
    linear_forward(out, inp, w, b, B, C, OC);
}

/* Forward of the B rows already in w (xt, y, t, drop). The model is only read. */
static void model_forward(const cm_diffusion *m, workspace *w, int64_t B, int training, uint64_t seed) {
    if (m->cfg.backbone == CM_BACKBONE_MLP) { mlp_model_forward(m, w, B, training, seed); return; }
    const cm_diffusion_config *c = &m->cfg;
    const int D = c->x_dim, P = c->y_dim, S = c->cond_tokens, C = c->channels, NH = c->heads, F = c->ff;
    const int64_t SC = (int64_t)S * C;
    const real p = training ? (real)c->dropout : (real)0;
    real *const *t = m->t;
    /* temb[B,C] = Linear2(act(Linear1(sinusoid(t)))) */
    for (int64_t b = 0; b < B; b++) w->tf[b] = (real)w->t[b];
    timestep_embedding_forward(w->tsin, w->tf, B, C, 10000.0, 1, 0.0);
    packed_linear_forward(w->th, w->tsin, t[DM_T1_W], t[DM_T1_B], B, C, C);
    act_forward(c->act, w->ta, w->th, B * C);
    packed_linear_forward(w->temb, w->ta, t[DM_T2_W], t[DM_T2_B], B, C, C);
    /* ye[B,S*C] = Linear(y), or the null embedding where the condition is dropped */
    packed_linear_forward(w->ye, w->y, t[DM_Y_W], t[DM_Y_B], B, P, (int)SC);
    /* m0[b,s,:] = ye[b,s,:] + temb[b,:] */
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < B; b++) {
        const real *e = w->drop[b] ? t[DM_NULL] : w->ye + b * SC, *te = w->temb + b * C;
        real *o = w->m0 + b * SC;
        for (int s = 0; s < S; s++)
            for (int k = 0; k < C; k++) o[s * C + k] = e[s * C + k] + te[k];
    }
    /* Without a backward to follow, every block works in layer 0's activation buffers and the
     * block outputs alternate between two: the same arithmetic, on a working set one block
     * deep instead of all of them (it then stays in cache). */
    const int reuse = !training;
    /* encoder over the S condition tokens, then its final norm: the memory */
    const real *in = w->m0;
    for (int l = 0; l < c->enc_layers; l++) {
        real *o = w->enc_out[reuse ? (l & 1) : l];
        encoder_block_forward(o, &w->enc[reuse ? 0 : l], in, &m->enc[l], (int)B, S, C, NH, F, c->act, p,
                              mix64(seed ^ mix64(STREAM_BLOCK_DROPOUT + (uint64_t)l)));
        in = o;
    }
    layernorm_forward(w->mem_n, w->mem_mean, w->mem_rstd, in, t[DM_ENC_LN_W], t[DM_ENC_LN_B], B * S, C);
    /* h0[B,D,C] = Linear(x_t) reshaped: token d is the d-th C-wide slice */
    packed_linear_forward(w->h0, w->xt, t[DM_X_W], t[DM_X_B], B, D, D * C);
    in = w->h0;
    for (int l = 0; l < c->dec_layers; l++) {
        real *o = w->dec_out[reuse ? (l & 1) : l];
        decoder_block_forward(o, &w->dec[reuse ? 0 : l], in, w->mem_n, &m->dec[l], (int)B, D, S, C, NH, F, c->act, p,
                              mix64(seed ^ mix64(STREAM_BLOCK_DROPOUT + 0x100 + (uint64_t)l)));
        in = o;
    }
    layernorm_forward(w->hn, w->hn_mean, w->hn_rstd, in, t[DM_DEC_LN_W], t[DM_DEC_LN_B], B * D, C);
    /* out[B,D] = Linear(C -> 1) per token */
    packed_linear_forward(w->out, w->hn, t[DM_OUT_W], t[DM_OUT_B], B * D, C, 1);
    w->B = B;
    w->trained = training;
}

static cm_status check_inputs(const cm_diffusion *m, const int64_t *t, int64_t B, cm_error *err) {
    if (B < 1) return cm_error_set(err, CM_ERR_VALUE, "", 0, "the batch is empty");
    for (int64_t b = 0; b < B; b++)
        if (t[b] < 0 || t[b] >= m->cfg.timesteps)
            return cm_error_set(err, CM_ERR_VALUE, "", 0, "timestep t[%lld] = %lld is outside [0, %d)", (long long)b,
                                (long long)t[b], m->cfg.timesteps);
    return CM_OK;
}

static void load_inputs(const cm_diffusion *m, workspace *w, const real *xt, const int64_t *t, const real *y,
                        const uint8_t *drop, int64_t B) {
    const cm_diffusion_config *c = &m->cfg;
    if (w->xt != xt) memcpy(w->xt, xt, sizeof(real) * (size_t)(B * c->x_dim));
    if (w->y != y) memcpy(w->y, y, sizeof(real) * (size_t)(B * c->y_dim));
    if (w->t != t) memcpy(w->t, t, sizeof(int64_t) * (size_t)B);
    if (drop) { if (w->drop != drop) memcpy(w->drop, drop, (size_t)B); }
    else memset(w->drop, 0, (size_t)B);
}

cm_status cm_diffusion_forward(cm_diffusion *m, real *out, const real *xt, const int64_t *t, const real *y,
                               const uint8_t *drop, int64_t B, int training, uint64_t seed, cm_error *err) {
    cm_status st = check_inputs(m, t, B, err);
    if (st) return st;
    if (ws_reserve(&m->ws, &m->cfg, B, training))
        return cm_error_set(err, CM_ERR_NOMEM, "", 0, "out of memory for the activations of %lld rows", (long long)B);
    load_inputs(m, &m->ws, xt, t, y, drop, B);
    model_forward(m, &m->ws, B, training, seed);
    if (out) memcpy(out, m->ws.out, sizeof(real) * (size_t)(B * m->cfg.x_dim));
    return CM_OK;
}

/* ---------------------------------------------------------------- backward */

/* Backward of the training forward held in w, from dout[B,D], accumulating into gv. */
static void model_backward(const cm_diffusion *m, workspace *w, const tensor_view *gv, const real *dout) {
    if (m->cfg.backbone == CM_BACKBONE_MLP) { mlp_model_backward(m, w, gv, dout); return; }
    const cm_diffusion_config *c = &m->cfg;
    const int D = c->x_dim, P = c->y_dim, S = c->cond_tokens, C = c->channels, NH = c->heads, F = c->ff;
    const int64_t B = w->B, SC = (int64_t)S * C, BDC = B * D * C, BSC = B * SC;
    const real p = (real)c->dropout;
    real *const *t = m->t, *const *g = gv->t;
    /* out = Linear(hn) */
    memset(w->dh_a, 0, sizeof(real) * (size_t)BDC);
    linear_backward(w->dh_a, g[DM_OUT_W], g[DM_OUT_B], dout, w->hn, t[DM_OUT_W], B * D, C, 1);
    /* hn = LN_dec(h_Ld) */
    const real *hin = c->dec_layers ? w->dec_out[c->dec_layers - 1] : w->h0;
    memset(w->dh_b, 0, sizeof(real) * (size_t)BDC);
    layernorm_backward(w->dh_b, g[DM_DEC_LN_W], g[DM_DEC_LN_B], w->dh_a, hin, t[DM_DEC_LN_W], w->hn_mean, w->hn_rstd,
                       B * D, C);
    /* decoder blocks, last first; every block adds its share of the memory's gradient */
    memset(w->dmem, 0, sizeof(real) * (size_t)BSC);
    real *dcur = w->dh_b, *dprev = w->dh_a;
    for (int l = c->dec_layers - 1; l >= 0; l--) {
        const real *in = l ? w->dec_out[l - 1] : w->h0;
        memset(dprev, 0, sizeof(real) * (size_t)BDC);
        decoder_block_backward(dprev, w->dmem, &gv->dec[l], &w->ddec, dcur, in, w->mem_n, &m->dec[l], &w->dec[l],
                               (int)B, D, S, C, NH, F, c->act, p);
        real *tmp = dcur; dcur = dprev; dprev = tmp;
    }
    /* h0 = Linear(x_t): x_t is data, only the weights' gradients */
    linear_backward(NULL, g[DM_X_W], g[DM_X_B], dcur, w->xt, t[DM_X_W], B, D, D * C);
    /* mem = LN_enc(e_Le) */
    const real *ein = w->enc_out[c->enc_layers - 1];
    memset(w->dm_b, 0, sizeof(real) * (size_t)BSC);
    layernorm_backward(w->dm_b, g[DM_ENC_LN_W], g[DM_ENC_LN_B], w->dmem, ein, t[DM_ENC_LN_W], w->mem_mean,
                       w->mem_rstd, B * S, C);
    real *ecur = w->dm_b, *eprev = w->dm_a;
    for (int l = c->enc_layers - 1; l >= 0; l--) {
        const real *in = l ? w->enc_out[l - 1] : w->m0;
        memset(eprev, 0, sizeof(real) * (size_t)BSC);
        encoder_block_backward(eprev, &gv->enc[l], &w->denc, ecur, in, &m->enc[l], &w->enc[l], (int)B, S, C, NH, F,
                               c->act, p);
        real *tmp = ecur; ecur = eprev; eprev = tmp;
    }
    /* m0[b,s,:] = (drop[b] ? null : ye[b,s,:]) + temb[b,:]
     * dye = dm0 on kept rows (0 on dropped ones); dtemb[b] = sum_s dm0[b,s]   one writer per row */
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < B; b++) {
        const real *d = ecur + b * SC;
        real *dy = w->dye + b * SC, *dt = w->dtemb + b * C;
        for (int k = 0; k < C; k++) dt[k] = 0;
        for (int s = 0; s < S; s++)
            for (int k = 0; k < C; k++) {
                dy[s * C + k] = w->drop[b] ? (real)0 : d[s * C + k];
                dt[k] += d[s * C + k];
            }
    }
    /* dnull[j] += sum over dropped rows of dm0[b,j]                           one writer per entry */
#pragma omp parallel for schedule(static)
    for (int64_t j = 0; j < SC; j++) {
        real s = 0;
        for (int64_t b = 0; b < B; b++)
            if (w->drop[b]) s += ecur[b * SC + j];
        g[DM_NULL][j] += s;
    }
    linear_backward(NULL, g[DM_Y_W], g[DM_Y_B], w->dye, w->y, t[DM_Y_W], B, P, (int)SC);
    /* temb = Linear2(act(Linear1(tsin))) */
    memset(w->dta, 0, sizeof(real) * (size_t)(B * C));
    linear_backward(w->dta, g[DM_T2_W], g[DM_T2_B], w->dtemb, w->ta, t[DM_T2_W], B, C, C);
    memset(w->dth, 0, sizeof(real) * (size_t)(B * C));
    act_backward(c->act, w->dth, w->dta, w->th, B * C);
    linear_backward(NULL, g[DM_T1_W], g[DM_T1_B], w->dth, w->tsin, t[DM_T1_W], B, C, C);
}

cm_status cm_diffusion_backward(cm_diffusion *m, const real *dout, cm_error *err) {
    if (!m->ws.mem || !m->ws.trained || !m->ws.with_grad)
        return cm_error_set(err, CM_ERR_VALUE, "", 0, "backward needs a preceding forward in training mode");
    model_backward(m, &m->ws, &m->gv, dout);
    return CM_OK;
}

/* ---------------------------------------------------------------- loss, training step */

/* Chunk workspaces, gradient blocks and batch buffers for B rows (grown, never shrunk). */
static cm_status reserve_chunks(cm_diffusion *m, int64_t B) {
    const int D = m->cfg.x_dim;
    if (B > m->batch_cap) {
        free(m->beps); free(m->bt); free(m->bdrop);
        m->beps = malloc(sizeof(real) * (size_t)(B * D));
        m->bt = malloc(sizeof(int64_t) * (size_t)B);
        m->bdrop = malloc((size_t)B);
        if (!m->beps || !m->bt || !m->bdrop) {
            free(m->beps); free(m->bt); free(m->bdrop);
            m->beps = NULL; m->bt = NULL; m->bdrop = NULL; m->batch_cap = 0;
            return CM_ERR_NOMEM;
        }
        m->batch_cap = B;
    }
    if (!m->bpart) {
        m->bpart = malloc(sizeof(double) * (size_t)((m->P + GRAD_BLOCK - 1) / GRAD_BLOCK));
        if (!m->bpart) return CM_ERR_NOMEM;
    }
    const int64_t need = (B + m->chunk_rows - 1) / m->chunk_rows;
    if (need <= m->n_slots) return CM_OK;
    free_chunks(m);   /* growing is rare: rebuild all slots */
    m->cws = calloc((size_t)need, sizeof *m->cws);
    m->cgv = calloc((size_t)need, sizeof *m->cgv);
    m->closs = calloc((size_t)need, sizeof *m->closs);
    m->cgrads = malloc(sizeof(real) * (size_t)(need * m->P));
    m->n_slots = (int)need;
    if (!m->cws || !m->cgv || !m->closs || !m->cgrads) { free_chunks(m); return CM_ERR_NOMEM; }
    for (int64_t k = 0; k < need; k++)
        if (view_carve(m, &m->cgv[k], m->cgrads + k * m->P) || ws_reserve(&m->cws[k], &m->cfg, m->chunk_rows, 1)) {
            free_chunks(m);
            return CM_ERR_NOMEM;
        }
    return CM_OK;
}

/* What a chunk of a loss needs from the whole batch. With draw set, the chunk draws its rows'
 * t, eps and condition drop itself (a training step); else they are given. */
typedef struct {
    const real *x0, *y;         /* [B,D], [B,P] */
    int64_t *t;                 /* [B] */
    real *eps;                  /* [B,D] */
    uint8_t *drop;              /* [B] or NULL */
    int64_t B;
    uint64_t seed;              /* dropout masks */
    int draw;
    uint64_t draw_seed, step;
    double p_uncond;
} loss_batch;

/* Chunk k of a loss: rows [r0, r0 + R). x_t and v of its rows, forward, the squared errors into
 * closs[k], backward into slot k's gradient block (zeroed first). Draws and x_t are per row,
 * so they do not depend on the chunking either. */
static void loss_chunk(cm_diffusion *m, int64_t k, int64_t r0, int64_t R, const loss_batch *lb) {
    const int D = m->cfg.x_dim, P = m->cfg.y_dim, T = m->cfg.timesteps;
    workspace *w = &m->cws[k];
    int64_t *t = lb->t + r0;
    real *eps = lb->eps + r0 * D;
    uint8_t *drop = lb->drop ? lb->drop + r0 : NULL;
    if (lb->draw) {
        diffusion_random_timesteps(t, T, lb->draw_seed, lb->step, r0, R);
        diffusion_noise(eps, lb->draw_seed ^ STREAM_TRAIN_NOISE, lb->step, r0, R, D);
        diffusion_condition_dropout(drop, lb->p_uncond, lb->draw_seed, lb->step, r0, R);
    }
    /* x_t = alpha_t x0 + sigma_t eps, v = alpha_t eps - sigma_t x0 (t was checked by the caller) */
    diffusion_add_noise(w->xt, lb->x0 + r0 * D, eps, m->acp, T, t, R, D, NULL);
    diffusion_velocity(w->dout, lb->x0 + r0 * D, eps, m->acp, T, t, R, D, NULL);   /* v, in dout for now */
    load_inputs(m, w, w->xt, t, lb->y + r0 * P, drop, R);
    /* each chunk draws its own dropout masks; chunk 0 uses the seed itself, so a batch of one
     * chunk is exactly cm_diffusion_forward(training, seed) followed by its backward */
    model_forward(m, w, R, 1, lb->seed ^ ((uint64_t)k * 0x9e3779b97f4a7c15ull));
    /* loss = mean over the WHOLE batch: dout = 2 (out - v) / (B D) */
    double sse = 0;
    const double n = (double)(lb->B * D);
    for (int64_t i = 0; i < R * D; i++) {
        const double d = (double)w->out[i] - (double)w->dout[i];
        sse += d * d;
        w->dout[i] = (real)(2.0 * d / n);
    }
    m->closs[k] = sse;
    memset(m->cgrads + k * m->P, 0, sizeof(real) * (size_t)m->P);
    model_backward(m, w, &m->cgv[k], w->dout);
}

/* The loss over all chunks: one parallel region over the chunks (or threads inside the layers
 * for a single chunk); *loss is the sum of the chunks' squared errors, in chunk order, / (B D).
 * The chunks' gradients stay in their slots: reduce_grads sums them. */
static int64_t loss_chunks(cm_diffusion *m, double *loss, const loss_batch *lb) {
    const int64_t B = lb->B, R = m->chunk_rows, nch = (B + R - 1) / R;
    if (nch == 1) {
        const int nt = serial_begin();
        loss_chunk(m, 0, 0, B, lb);
        serial_end(nt);
    } else {
#pragma omp parallel for schedule(dynamic, 1)
        for (int64_t k = 0; k < nch; k++) loss_chunk(m, k, k * R, k + 1 < nch ? R : B - k * R, lb);
    }
    double sse = 0;
    for (int64_t k = 0; k < nch; k++) sse += m->closs[k];
    if (loss) *loss = sse / (double)(B * m->cfg.x_dim);
    return nch;
}

/* grads = sum of the nch chunk gradients in chunk order; returns the squared L2 norm, summed
 * over fixed blocks in block order. One writer per entry; the same for any thread count. */
static double reduce_grads(cm_diffusion *m, int64_t nch) {
    const int64_t P = m->P, nb = (P + GRAD_BLOCK - 1) / GRAD_BLOCK;
    real *g = m->grads;
    const real *cg = m->cgrads;
    double *part = m->bpart;
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < nb; b++) {
        const int64_t lo = b * GRAD_BLOCK, hi = lo + GRAD_BLOCK < P ? lo + GRAD_BLOCK : P;
        double ss = 0;
        for (int64_t i = lo; i < hi; i++) {
            real s = cg[i];
            for (int64_t k = 1; k < nch; k++) s += cg[k * P + i];
            g[i] = s;
            ss += (double)s * s;
        }
        part[b] = ss;
    }
    double total = 0;
    for (int64_t b = 0; b < nb; b++) total += part[b];
    return total;
}

cm_status cm_diffusion_loss(cm_diffusion *m, double *loss, const real *x0, const real *y, const int64_t *t,
                            const real *eps, const uint8_t *drop, int64_t B, uint64_t seed, cm_error *err) {
    cm_status st = check_inputs(m, t, B, err);
    if (st) return st;
    if (reserve_chunks(m, B))
        return cm_error_set(err, CM_ERR_NOMEM, "", 0, "out of memory for the activations of %lld rows", (long long)B);
    const int D = m->cfg.x_dim;
    /* the loss only reads the caller's draws; the chunks take them from the batch buffers */
    memcpy(m->bt, t, sizeof(int64_t) * (size_t)B);
    memcpy(m->beps, eps, sizeof(real) * (size_t)(B * D));
    if (drop) memcpy(m->bdrop, drop, (size_t)B);
    loss_batch lb = {x0, y, m->bt, m->beps, drop ? m->bdrop : NULL, B, seed, 0, 0, 0, 0};
    reduce_grads(m, loss_chunks(m, loss, &lb));
    return CM_OK;
}

void cm_diffusion_set_chunk_rows(cm_diffusion *m, int rows) {
    if (rows < 1) rows = CM_DIFFUSION_CHUNK_ROWS;
    if (rows == m->chunk_rows) return;
    free_chunks(m);
    m->chunk_rows = rows;
}
int cm_diffusion_chunk_rows(const cm_diffusion *m) { return m->chunk_rows; }

cm_status cm_diffusion_train_step(cm_diffusion *m, double *loss, const real *x0, const real *y, int64_t B,
                                  const cm_train_config *tc, uint64_t seed, uint64_t step, cm_error *err) {
    if (B < 1) return cm_error_set(err, CM_ERR_VALUE, "", 0, "the batch is empty");
    if (!(tc->p_uncond >= 0 && tc->p_uncond <= 1))
        return cm_error_set(err, CM_ERR_VALUE, "", 0, "p_uncond must be in [0, 1] (got %g)", tc->p_uncond);
    if (reserve_chunks(m, B))
        return cm_error_set(err, CM_ERR_NOMEM, "", 0, "out of memory for the activations of %lld rows", (long long)B);
    /* three parallel regions per step (chunks; gradient sum and norm; clipping and AdamW): on a
     * shared machine every region's end is a point where a descheduled thread stalls the rest */
    loss_batch lb = {x0, y, m->bt, m->beps, m->bdrop, B, mix64(seed ^ mix64(step)), 1, seed, step, tc->p_uncond};
    const int64_t nch = loss_chunks(m, loss, &lb);
    const double norm = sqrt(reduce_grads(m, nch));
    const real scale = tc->max_grad_norm > 0 && norm > tc->max_grad_norm ? (real)(tc->max_grad_norm / (norm + 1e-6))
                                                                          : (real)1;
    m->step++;
    const int64_t P = m->P, nb = (P + GRAD_BLOCK - 1) / GRAD_BLOCK;
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < nb; b++) {
        const int64_t lo = b * GRAD_BLOCK, n = lo + GRAD_BLOCK < P ? GRAD_BLOCK : P - lo;
        if (scale != 1)
            for (int64_t i = lo; i < lo + n; i++) m->grads[i] *= scale;
        adamw_update(m->params + lo, m->grads + lo, m->am + lo, m->av + lo, n, tc->lr, tc->beta1, tc->beta2, tc->eps,
                     tc->weight_decay, m->step);
    }
    return CM_OK;
}

/* ---------------------------------------------------------------- sampling */

/* Rows of one sampling forward at most: a chunk's guided batch runs through the model in
 * sub-batches of this many rows or fewer (split evenly), so that a block's activations (about
 * 4 KB a decoder row) stay in the core's cache from one layer to the next. Rows are independent,
 * so the results are the same bits for any split. Paper shape, 1 thread, 100 designs (200 rows
 * a step): inside the matmuls 83.5-84.4% of a core's peak in one forward of 200 rows, 85.7% in
 * sub-batches of 40-48. */
#define SAMPLE_SUB_ROWS 48

/* Rows of one sub-batch: the chunk's `rows` split evenly into as few pieces of at most
 * SAMPLE_SUB_ROWS as possible, each (but the last) rounded up to a whole number of attention
 * lane groups: the short-sequence attention puts 16 (row, head) pairs in the lanes, so with 4
 * heads a piece of 34 rows would fill 8.5 groups and waste half of its last one (2 threads, 100
 * designs: 100 rows per chunk, pieces 34 + 34 + 32 wasted ~7 % of attention's lanes; now 36 + 36
 * + 28). */
static int64_t sample_sub_rows(int64_t rows, int heads) {
    const int64_t nsub = (rows + SAMPLE_SUB_ROWS - 1) / SAMPLE_SUB_ROWS;
    const int64_t g = attention_rows_per_group(heads);
    const int64_t per = ((rows + nsub - 1) / nsub + g - 1) / g * g;
    return per < rows ? per : rows;
}

/* Samples handled by one workspace: buffers for the guided batch of 2 ns rows. */
typedef struct {
    workspace w;                /* inputs and outputs of all the chunk's rows */
    workspace sub;              /* activations of one sub-batch (unused when it is all the rows) */
    real *buf;                  /* x[ns,D], vg[ns,D] */
    int64_t n;                  /* samples in this chunk */
    int64_t first;              /* index of its first sample in the call */
    cm_status st;
} chunk;

/* The chunk's forward over its `rows` rows (inputs in ch->w), in sub-batches of ch->sub.cap rows
 * when ch->sub is reserved; outputs in ch->w.out. */
static void chunk_forward(const cm_diffusion *m, chunk *ch, int64_t rows) {
    workspace *w = &ch->w, *s = &ch->sub;
    if (!s->mem) { model_forward(m, w, rows, 0, 0); return; }
    const int D = m->cfg.x_dim, P = m->cfg.y_dim;
    for (int64_t r0 = 0; r0 < rows; r0 += s->cap) {
        const int64_t rn = rows - r0 < s->cap ? rows - r0 : s->cap;
        memcpy(s->xt, w->xt + r0 * D, sizeof(real) * (size_t)(rn * D));
        memcpy(s->y, w->y + r0 * P, sizeof(real) * (size_t)(rn * P));
        memcpy(s->t, w->t + r0, sizeof(int64_t) * (size_t)rn);
        memcpy(s->drop, w->drop + r0, (size_t)rn);
        model_forward(m, s, rn, 0, 0);
        memcpy(w->out + r0 * D, s->out, sizeof(real) * (size_t)(rn * D));
    }
}

static void sample_chunk(const cm_diffusion *m, chunk *ch, real *x, const real *y, const int64_t *ts,
                         const cm_sample_config *sc, int need_cond, int need_uncond, cm_error *err) {
    const cm_diffusion_config *c = &m->cfg;
    const int D = c->x_dim, P = c->y_dim, T = c->timesteps;
    const int64_t n = ch->n, rows = (need_cond + need_uncond) * n, s0 = sc->sample0 + ch->first;
    workspace *w = &ch->w;
    real *xc = ch->buf, *vg = ch->buf + n * D;
    /* x_T ~ N(0, I) on step "T", a counter no sampler step uses */
    diffusion_noise(xc, sc->seed, (uint64_t)T, s0, n, D);
#ifdef CM_REAL_IS_FLOAT
    /* the blocks' Linear layers go through this thread's cache of weights packed once per call
     * (bf16, or fp32 where precision is fp32 or the CPU lacks the bf16 kernel) */
    const int packed = gemm_bf16_cache_begin(sc->precision == CM_PRECISION_BF16) == 0;
#endif
    /* rows [0, n): conditional; rows [n, 2n): the same x, condition dropped */
    for (int64_t k = 0; k < need_cond + need_uncond; k++) {
        memcpy(w->y + k * n * P, y, sizeof(real) * (size_t)(n * P));
        memset(w->drop + k * n, need_cond && k == 0 ? 0 : 1, (size_t)n);
    }
    for (int i = 0; i < sc->steps; i++) {
        const int64_t t = ts[i], t_prev = i + 1 < sc->steps ? ts[i + 1] : -1;
        for (int64_t r = 0; r < rows; r++) w->t[r] = t;
        for (int64_t k = 0; k < need_cond + need_uncond; k++)
            memcpy(w->xt + k * n * D, xc, sizeof(real) * (size_t)(n * D));
        chunk_forward(m, ch, rows);
        const real *v = w->out;
        if (need_cond && need_uncond) {
            if (sc->guidance == CM_GUIDE_UNCOND_WEIGHT) cfg_combine_uncond_weight(vg, w->out + n * D, w->out, n * D, sc->w);
            else cfg_combine_guidance_weight(vg, w->out + n * D, w->out, n * D, sc->w);
            v = vg;
        }
        cm_status st = sc->sampler == CM_SAMPLER_DDPM
                           ? ddpm_step(xc, NULL, xc, v, m->acp, T, t, t_prev, CM_PRED_V, sc->clip, sc->seed, s0, n, D, err)
                           : ddim_step(xc, NULL, xc, v, m->acp, T, t, t_prev, CM_PRED_V, sc->clip, sc->eta, sc->seed, s0,
                                       n, D, err);
        if (st) { ch->st = st; break; }
    }
#ifdef CM_REAL_IS_FLOAT
    if (packed) gemm_bf16_cache_end();
#endif
    if (ch->st) return;
    memcpy(x, xc, sizeof(real) * (size_t)(n * D));
}

/* Samples per thread below which fewer threads are used (one: serial). */
#define SAMPLES_PER_THREAD_MIN 8

cm_status cm_diffusion_sample(const cm_diffusion *m, real *x, const real *y, int64_t n, const cm_sample_config *sc,
                              cm_error *err) {
    const cm_diffusion_config *c = &m->cfg;
    const int D = c->x_dim, T = c->timesteps;
    if (n < 1) return cm_error_set(err, CM_ERR_VALUE, "", 0, "n must be >= 1 (got %lld)", (long long)n);
    if (sc->sampler != CM_SAMPLER_DDIM && sc->sampler != CM_SAMPLER_DDPM)
        return cm_error_set(err, CM_ERR_VALUE, "", 0, "unknown sampler %d", (int)sc->sampler);
    if (sc->guidance != CM_GUIDE_UNCOND_WEIGHT && sc->guidance != CM_GUIDE_SCALE)
        return cm_error_set(err, CM_ERR_VALUE, "", 0, "unknown guidance convention %d", (int)sc->guidance);
    if (!(sc->eta >= 0)) return cm_error_set(err, CM_ERR_VALUE, "", 0, "eta must be >= 0 (got %g)", sc->eta);
    if (!(sc->clip >= 0)) return cm_error_set(err, CM_ERR_VALUE, "", 0, "clip must be >= 0 (got %g)", sc->clip);
    if (!isfinite(sc->w)) return cm_error_set(err, CM_ERR_VALUE, "", 0, "the guidance weight must be finite");
    if (sc->precision != CM_PRECISION_FP32 && sc->precision != CM_PRECISION_BF16)
        return cm_error_set(err, CM_ERR_VALUE, "", 0, "unknown precision %d (0 fp32, 1 bf16)", (int)sc->precision);
    int64_t *ts = malloc(sizeof(int64_t) * (size_t)(sc->steps > 0 ? sc->steps : 1));
    if (!ts) return cm_error_set(err, CM_ERR_NOMEM, "", 0, "out of memory");
    cm_status st = diffusion_timesteps(ts, T, sc->steps, sc->spacing, err);
    if (st) { free(ts); return st; }
    /* the unconditional pass is skipped where its weight is 0, the conditional one likewise */
    const double wu = sc->guidance == CM_GUIDE_UNCOND_WEIGHT ? sc->w : -sc->w;   /* weight of uncond */
    const int need_uncond = wu != 0, need_cond = wu != 1;
    int nt = 1;
#ifdef _OPENMP
    nt = omp_get_max_threads();
#endif
    int64_t nch = n / SAMPLES_PER_THREAD_MIN;
    if (nch > nt) nch = nt;
    if (nch < 1) nch = 1;
    chunk *chs = calloc((size_t)nch, sizeof *chs);
    if (!chs) { free(ts); return cm_error_set(err, CM_ERR_NOMEM, "", 0, "out of memory"); }
    st = CM_OK;
    for (int64_t k = 0; k < nch && !st; k++) {
        chunk *ch = &chs[k];
        ch->first = n * k / nch;
        ch->n = n * (k + 1) / nch - ch->first;
        const int64_t rows = (need_cond + need_uncond) * ch->n, per = sample_sub_rows(rows, c->heads);
        if (ws_reserve(&ch->w, c, rows, 0)) st = CM_ERR_NOMEM;
        if (per < rows && ws_reserve(&ch->sub, c, per, 0)) st = CM_ERR_NOMEM;
        ch->buf = malloc(sizeof(real) * (size_t)(2 * ch->n * D));
        if (!ch->buf) st = CM_ERR_NOMEM;
    }
    if (!st) {
        cm_error *errs = calloc((size_t)nch, sizeof *errs);   /* one per thread: no shared writes */
        if (!errs) st = cm_error_set(err, CM_ERR_NOMEM, "", 0, "out of memory");
        else if (nch == 1) {
            const int nthreads = serial_begin();
            sample_chunk(m, &chs[0], x, y, ts, sc, need_cond, need_uncond, err);
            serial_end(nthreads);
        }
        else {
#pragma omp parallel for schedule(static, 1) num_threads((int)nch)
            for (int64_t k = 0; k < nch; k++)
                sample_chunk(m, &chs[k], x + chs[k].first * D, y + chs[k].first * c->y_dim, ts, sc, need_cond,
                             need_uncond, &errs[k]);
        }
        for (int64_t k = 0; k < nch && !st; k++)
            if (chs[k].st) {
                st = chs[k].st;
                if (err && nch > 1) *err = errs[k];
            }
        free(errs);
    } else cm_error_set(err, CM_ERR_NOMEM, "", 0, "out of memory for sampling %lld designs", (long long)n);
    for (int64_t k = 0; k < nch; k++) { ws_free(&chs[k].w); ws_free(&chs[k].sub); free(chs[k].buf); }
    free(chs);
    free(ts);
    return st;
}
