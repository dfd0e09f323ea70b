/* dice.c: the DICE encoder's forward and backward over a collated graph batch (see dice.h).
 * Where the time goes (hidden 512): the Linear layers' products (gemm.c, ~70%). The rest is
 * kept to few passes over [rows, H] arrays: the message h[src] * e is summed into z without a
 * message buffer, GELU + dropout run fused and keep their derivative for backward, fresh
 * gradient buffers are written rather than zeroed and accumulated, and the node and edge
 * encoders run on the distinct input rows (one-hot types) when rows repeat. The readout is
 * folded into the last layer (its second Linears run on the pooled graph rows: see
 * cm_dice_forward). At small widths (hidden <= 64), where an OpenMP team per op costs more than
 * the op, each layer runs in row blocks in a few regions ("blocked layers" below). */
#include "dice.h"
#include "gemm.h"
#include "gnn.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TENSORS 256

/* per-layer activations */
typedef struct {
    real *z, *comb_n, *na, *nd, *h;   /* node path: z aggregated messages, comb_n MLP input, h output */
    real *comb_e, *ea, *ed, *e;       /* edge path likewise */
    /* na / ea: the MLP's first Linear output, overwritten in a training forward by the local
     * derivative of GELU + dropout (all backward needs); nd / ed: after GELU and dropout */
} layer_acts;

/* Encoder activations. bn holds the GELU derivative after a training forward. When the input
 * rows are copies of a few distinct rows (one-hot device and edge types: at most 9 and 5),
 * the encoder runs on the U distinct rows only: a1, bn, g1 then hold U rows, outu the encoded
 * distinct rows, and out[r] = outu[group[r]]. Same values as row by row, at the cost of U rows;
 * batch norm still normalises over all R rows (batchnorm_grouped_*). */
#define DEDUP_MAX 64
typedef struct {
    real *a1, *bn, *g1, *out;
    int64_t U;                   /* 0: rows one by one */
    int64_t *group;              /* [R] distinct-row id of each row */
    int64_t count[DEDUP_MAX];    /* copies of each distinct row */
    real *xu, *outu;             /* [DEDUP_MAX, F], [DEDUP_MAX, H] */
} enc_acts;

/* Blocked layers (see layer_forward_blocked): at hidden <= BLK_MAX_H a DICE layer runs in a few
 * OpenMP regions over fixed blocks of BLK_ROWS rows; inside a region gemm runs on the thread
 * that has the block (a nested team is inactive). 360 rows (a multiple of the 12-row GEMM tile):
 * 240 made ~1.5x the products and their fixed costs (~4% slower on one thread), 480 leaves
 * 13 blocks to share at the small benchmark size, too few to balance two threads. */
#define BLK_MAX_H 64
#define BLK_ROWS 360
#define BLK_PARALLEL_MIN 32768   /* (N + E) x H values: below that one thread does a layer */
/* a block's weight-gradient parts: wa [H,H], ba [H], wb [H,H], bb [H] */
#define BLK_PART(H) (2 * (H) * (H) + 2 * (H))
static int64_t blk_count(int64_t rows) { return (rows + BLK_ROWS - 1) / BLK_ROWS; }

struct cm_dice {
    cm_dice_config cfg;
    /* parameter table */
    int n_tensors;
    const char *names[MAX_TENSORS];
    int64_t sizes[MAX_TENSORS], offsets[MAX_TENSORS];
    int64_t P;
    real *block;            /* [4P]: params, grads, adam m, adam v */
    real *params, *grads, *m, *v;
    int step;
    cm_dice_tensors t, g;   /* views into params and grads */
    real *eps_store[2][64], *mlp_store[2][64][DICE_MLP_N], *geps_store[2][64], *gmlp_store[2][64][DICE_MLP_N];
    /* batch norm: node encoder, edge encoder, head */
    cm_dice_bn bn[3];
    real *buffers;          /* running stats [3][2][H] */
    /* activations, sized for (N, E, G) capacity */
    int64_t capN, capE, capG;
    real *act;
    int64_t *csr;           /* dst, src, node-graph, edge-graph CSRs */
    enc_acts enc_n, enc_e, enc_h;
    layer_acts *layers;
    real *pooled;
    real *pool_n, *pool_e;    /* [G, H]: the last layer's GELU-dropout rows summed per graph (fold) */
    real *dbuf[10];           /* backward scratch, [R = max(N, E), H] each */
    real *dpool_n, *dpool_e;  /* [G, H]: gradients of pool_n, pool_e */
    /* blocked layers (hidden <= BLK_MAX_H): per row block, its part of the MLP weight gradients
     * ([items][BLK_PART]) and of the eps gradients ([items]) */
    int blocked;
    real *blk_part;
    double *blk_dot;
    real *in_x, *in_ea;             /* copies of the inputs, kept for backward */
    int64_t *in_idx;                /* src, dst, node_graph, edge_graph copies */
    /* last forward */
    int64_t N, E, G;
    int trained_forward, grouping;   /* grouping: the encoders' distinct rows and the folded readout */
    int folded;                      /* the last forward folded the readout (see cm_dice_forward) */
    const real *x, *eain;
    const int64_t *src, *dst, *node_graph, *edge_graph;
    int64_t *dst_ptr, *dst_edges, *src_ptr, *src_edges, *ng_ptr, *ng_rows, *eg_ptr, *eg_rows;
    char layer_names[64][10][32];   /* "layer0.node_mlp.wa", ... */
    /* cfg.conv != GNN_DICE: plain layers from gnn.c (tensors, per-layer activations, scratch) */
    gnn_spec spec;
    real *gnn_p[64][GNN_MAX_TENSORS], *gnn_g[64][GNN_MAX_TENSORS];
    real *gnn_act[64], *gnn_scratch;
    gnn_graph graph;
};

static uint64_t mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static int add_tensor(cm_dice *m, const char *name, int64_t size) {
    if (m->n_tensors >= MAX_TENSORS) return -1;
    m->names[m->n_tensors] = name;
    m->sizes[m->n_tensors] = size;
    m->offsets[m->n_tensors] = m->P;
    m->P += size;
    return m->n_tensors++;
}

static const char *ENC_NAMES[3][DICE_ENC_N] = {
    {"node_enc.w1", "node_enc.b1", "node_enc.bn.weight", "node_enc.bn.bias", "node_enc.w2", "node_enc.b2"},
    {"edge_enc.w1", "edge_enc.b1", "edge_enc.bn.weight", "edge_enc.bn.bias", "edge_enc.w2", "edge_enc.b2"},
    {"head.w1", "head.b1", "head.bn.weight", "head.bn.bias", "head.w2", "head.b2"}};

cm_status cm_dice_init(cm_dice **out, const cm_dice_config *cfg, uint64_t seed, cm_error *err) {
    *out = NULL;
    if (cfg->node_in < 1 || cfg->edge_in < 1 || cfg->hidden < 1 || cfg->out < 1 || cfg->layers < 0 || cfg->layers > 64 ||
        cfg->dropout < 0 || cfg->dropout >= 1)
        return cm_error_set(err, CM_ERR_VALUE, "", 0, "bad DICE configuration (widths >= 1, 0 <= layers <= 64, 0 <= dropout < 1)");
    const gnn_spec spec = {cfg->conv, cfg->hidden, cfg->heads, cfg->gat_concat};
    if (gnn_spec_check(&spec, err)) return CM_ERR_VALUE;
    const int plain = cfg->conv != GNN_DICE;   /* plain layers: no edge encoder */
    cm_dice *m = calloc(1, sizeof *m);
    if (!m) return cm_error_set(err, CM_ERR_NOMEM, "", 0, "out of memory");
    m->cfg = *cfg;
    m->spec = spec;
    m->grouping = 1;
    m->blocked = !plain && cfg->hidden <= BLK_MAX_H;
    const int64_t H = cfg->hidden, Fn = cfg->node_in, Fe = cfg->edge_in, D = cfg->out;
    int idx_enc[3][DICE_ENC_N];
    const int64_t fin[3] = {Fn, Fe, H}, fout[3] = {H, H, D};
    int idx_gnn[64][GNN_MAX_TENSORS], n_gnn = 0;
    for (int k = 0; k < (plain ? 1 : 2); k++) {
        idx_enc[k][DICE_ENC_W1] = add_tensor(m, ENC_NAMES[k][0], H * fin[k]);
        idx_enc[k][DICE_ENC_B1] = add_tensor(m, ENC_NAMES[k][1], H);
        idx_enc[k][DICE_ENC_G] = add_tensor(m, ENC_NAMES[k][2], H);
        idx_enc[k][DICE_ENC_BETA] = add_tensor(m, ENC_NAMES[k][3], H);
        idx_enc[k][DICE_ENC_W2] = add_tensor(m, ENC_NAMES[k][4], H * H);
        idx_enc[k][DICE_ENC_B2] = add_tensor(m, ENC_NAMES[k][5], H);
    }
    int idx_eps[2][64], idx_mlp[2][64][DICE_MLP_N];
    for (int l = 0; l < cfg->layers && plain; l++) {
        const char *tn[GNN_MAX_TENSORS];
        int64_t ts[GNN_MAX_TENSORS];
        n_gnn = gnn_tensors(&spec, tn, ts);
        for (int j = 0; j < n_gnn; j++) {
            snprintf(m->layer_names[l][j], sizeof m->layer_names[l][j], "layer%d.%s", l, tn[j]);
            idx_gnn[l][j] = add_tensor(m, m->layer_names[l][j], ts[j]);
        }
    }
    for (int l = 0; l < cfg->layers && !plain; l++) {
        static const char *suffix[10] = {"eps_n", "eps_e", "node_mlp.wa", "node_mlp.ba", "node_mlp.wb", "node_mlp.bb",
                                         "edge_mlp.wa", "edge_mlp.ba", "edge_mlp.wb", "edge_mlp.bb"};
        char (*nm)[32] = m->layer_names[l];
        for (int s = 0; s < 10; s++) snprintf(nm[s], sizeof nm[s], "layer%d.%s", l, suffix[s]);
        idx_eps[0][l] = add_tensor(m, nm[0], 1);
        idx_eps[1][l] = add_tensor(m, nm[1], 1);
        for (int p = 0; p < 2; p++) {
            idx_mlp[p][l][DICE_MLP_WA] = add_tensor(m, nm[2 + 4 * p], H * H);
            idx_mlp[p][l][DICE_MLP_BA] = add_tensor(m, nm[3 + 4 * p], H);
            idx_mlp[p][l][DICE_MLP_WB] = add_tensor(m, nm[4 + 4 * p], H * H);
            idx_mlp[p][l][DICE_MLP_BB] = add_tensor(m, nm[5 + 4 * p], H);
        }
    }
    idx_enc[2][DICE_ENC_W1] = add_tensor(m, ENC_NAMES[2][0], H * fin[2]);
    idx_enc[2][DICE_ENC_B1] = add_tensor(m, ENC_NAMES[2][1], H);
    idx_enc[2][DICE_ENC_G] = add_tensor(m, ENC_NAMES[2][2], H);
    idx_enc[2][DICE_ENC_BETA] = add_tensor(m, ENC_NAMES[2][3], H);
    idx_enc[2][DICE_ENC_W2] = add_tensor(m, ENC_NAMES[2][4], fout[2] * H);
    idx_enc[2][DICE_ENC_B2] = add_tensor(m, ENC_NAMES[2][5], fout[2]);
    m->block = calloc((size_t)(4 * m->P), sizeof(real));
    m->buffers = calloc((size_t)(6 * H), sizeof(real));
    if (!m->block || !m->buffers) { cm_dice_free(m); return cm_error_set(err, CM_ERR_NOMEM, "", 0, "out of memory"); }
    m->params = m->block;
    m->grads = m->block + m->P;
    m->m = m->block + 2 * m->P;
    m->v = m->block + 3 * m->P;
    for (int k = 0; k < 3; k++)
        for (int j = 0; j < DICE_ENC_N && !(plain && k == 1); j++) {
            real *p = m->params + m->offsets[idx_enc[k][j]], *gp = m->grads + m->offsets[idx_enc[k][j]];
            if (k == 0) { m->t.enc_node[j] = p; m->g.enc_node[j] = gp; }
            else if (k == 1) { m->t.enc_edge[j] = p; m->g.enc_edge[j] = gp; }
            else { m->t.head[j] = p; m->g.head[j] = gp; }
        }
    for (int l = 0; l < cfg->layers && plain; l++)
        for (int j = 0; j < n_gnn; j++) {
            m->gnn_p[l][j] = m->params + m->offsets[idx_gnn[l][j]];
            m->gnn_g[l][j] = m->grads + m->offsets[idx_gnn[l][j]];
        }
    for (int l = 0; l < cfg->layers && !plain; l++)
        for (int p = 0; p < 2; p++) {
            m->eps_store[p][l] = m->params + m->offsets[idx_eps[p][l]];
            m->geps_store[p][l] = m->grads + m->offsets[idx_eps[p][l]];
            for (int j = 0; j < DICE_MLP_N; j++) {
                m->mlp_store[p][l][j] = m->params + m->offsets[idx_mlp[p][l][j]];
                m->gmlp_store[p][l][j] = m->grads + m->offsets[idx_mlp[p][l][j]];
            }
        }
    /* PyTorch's defaults: Linear weights and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)); BN
     * weight 1, bias 0; GIN eps 0. */
    uint64_t ctr = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        const char *n = m->names[i];
        real *p = m->params + m->offsets[i];
        int64_t size = m->sizes[i];
        int is_bn_w = strstr(n, "bn.weight") != NULL, is_bn_b = strstr(n, "bn.bias") != NULL, is_eps = strstr(n, "eps") != NULL;
        if (is_bn_w) { for (int64_t k = 0; k < size; k++) p[k] = 1; continue; }
        if (is_bn_b || is_eps) continue;
        /* fan_in: the input width of the Linear this tensor belongs to */
        int64_t fan_in = H;
        if (!strcmp(n, "node_enc.w1") || !strcmp(n, "node_enc.b1")) fan_in = Fn;
        else if (!strcmp(n, "edge_enc.w1") || !strcmp(n, "edge_enc.b1")) fan_in = Fe;
        double bound = 1.0 / sqrt((double)fan_in);
        for (int64_t k = 0; k < size; k++) {
            double u = (double)(mix64(seed ^ mix64(ctr++)) >> 11) * (1.0 / 9007199254740992.0);
            p[k] = (real)((2 * u - 1) * bound);
        }
    }
    for (int k = 0; k < 3; k++) {
        m->bn[k].run_mean = m->buffers + (2 * k) * H;
        m->bn[k].run_var = m->buffers + (2 * k + 1) * H;
        for (int64_t c = 0; c < H; c++) m->bn[k].run_var[c] = 1;
    }
    m->layers = calloc((size_t)(cfg->layers ? cfg->layers : 1), sizeof *m->layers);
    if (!m->layers) { cm_dice_free(m); return cm_error_set(err, CM_ERR_NOMEM, "", 0, "out of memory"); }
    *out = m;
    return CM_OK;
}

void cm_dice_free(cm_dice *m) {
    if (!m) return;
    free(m->block);
    free(m->buffers);
    free(m->act);
    free(m->csr);
    free(m->blk_part);
    free(m->blk_dot);
    free(m->layers);
    free(m);
}

int64_t cm_dice_num_params(const cm_dice *m) { return m->P; }
real *cm_dice_params(cm_dice *m) { return m->params; }
real *cm_dice_grads(cm_dice *m) { return m->grads; }
real *cm_dice_buffers(cm_dice *m, int64_t *n) { *n = 6 * (int64_t)m->cfg.hidden; return m->buffers; }
const cm_dice_config *cm_dice_get_config(const cm_dice *m) { return &m->cfg; }
int64_t cm_dice_tensor(const cm_dice *m, int i, const char **name) {
    if (i < 0 || i >= m->n_tensors) return -1;
    *name = m->names[i];
    return m->sizes[i];
}
void cm_dice_set_grouping(cm_dice *m, int on) { m->grouping = on != 0; }
void cm_dice_zero_grad(cm_dice *m) { memset(m->grads, 0, sizeof(real) * (size_t)m->P); }

void cm_dice_adamw(cm_dice *m, real lr, real beta1, real beta2, real eps, real weight_decay) {
    m->step++;
    adamw_update(m->params, m->grads, m->m, m->v, m->P, lr, beta1, beta2, eps, weight_decay, m->step);
}

/* Carve the activation block for (N, E, G); grow only when the batch is larger than before. */
static cm_status ensure_capacity(cm_dice *m, int64_t N, int64_t E, int64_t G) {
    if (N <= m->capN && E <= m->capE && G <= m->capG) return CM_OK;
    int64_t cN = N > m->capN ? N : m->capN, cE = E > m->capE ? E : m->capE, cG = G > m->capG ? G : m->capG;
    const int64_t H = m->cfg.hidden, L = m->cfg.layers, R = cN > cE ? cN : cE;
    /* must match the TAKE sequence below */
    const int64_t Fn = m->cfg.node_in, Fe = m->cfg.edge_in;
    const int plain = m->cfg.conv != GNN_DICE;
    const int64_t per_layer = plain ? cN * H + gnn_block_act_size(&m->spec, cN, cE) : 5 * cN * H + 4 * cE * H;
    int64_t total = 4 * cN * H + 4 * cE * H + 3 * cG * H + L * per_layer + 5 * cG * H + 10 * R * H + 6 * H +
                    cN * Fn + cE * Fe + DEDUP_MAX * (Fn + Fe + 2 * H) + (plain ? gnn_block_scratch_size(&m->spec, cN, cE) : 0);
    real *act = malloc(sizeof(real) * (size_t)total);
    int64_t *csr = malloc(sizeof(int64_t) * (size_t)(2 * (cN + 1) + 2 * cE + (cG + 1) + cN + (cG + 1) + cE + 3 * cE + cN + cN + cE));
    const int64_t items = m->blocked ? blk_count(cN) + blk_count(cE) : 0;
    real *part = m->blocked ? malloc(sizeof(real) * (size_t)(items * BLK_PART(H))) : NULL;
    double *dots = m->blocked ? malloc(sizeof(double) * (size_t)items) : NULL;
    if (!act || !csr || (m->blocked && (!part || !dots))) { free(act); free(csr); free(part); free(dots); return CM_ERR_NOMEM; }
    free(m->act); free(m->csr); free(m->blk_part); free(m->blk_dot);
    m->act = act; m->csr = csr; m->blk_part = part; m->blk_dot = dots;
    m->capN = cN; m->capE = cE; m->capG = cG;
    real *p = act;
#define TAKE(ptr, n) do { (ptr) = p; p += (n); } while (0)
    TAKE(m->enc_n.a1, cN * H); TAKE(m->enc_n.bn, cN * H); TAKE(m->enc_n.g1, cN * H); TAKE(m->enc_n.out, cN * H);
    TAKE(m->enc_e.a1, cE * H); TAKE(m->enc_e.bn, cE * H); TAKE(m->enc_e.g1, cE * H); TAKE(m->enc_e.out, cE * H);
    TAKE(m->enc_h.a1, cG * H); TAKE(m->enc_h.bn, cG * H); TAKE(m->enc_h.g1, cG * H);
    for (int64_t l = 0; l < L; l++) {
        layer_acts *a = &m->layers[l];
        if (plain) { TAKE(a->h, cN * H); TAKE(m->gnn_act[l], gnn_block_act_size(&m->spec, cN, cE)); continue; }
        TAKE(a->z, cN * H); TAKE(a->comb_n, cN * H); TAKE(a->na, cN * H); TAKE(a->nd, cN * H);
        TAKE(a->h, cN * H); TAKE(a->comb_e, cE * H); TAKE(a->ea, cE * H); TAKE(a->ed, cE * H); TAKE(a->e, cE * H);
    }
    TAKE(m->pooled, cG * H);
    TAKE(m->pool_n, cG * H);
    TAKE(m->pool_e, cG * H);
    for (int k = 0; k < 10; k++) TAKE(m->dbuf[k], R * H);
    TAKE(m->dpool_n, cG * H);
    TAKE(m->dpool_e, cG * H);
    for (int k = 0; k < 3; k++) { TAKE(m->bn[k].mean, H); TAKE(m->bn[k].rstd, H); }
    TAKE(m->in_x, cN * Fn);
    TAKE(m->in_ea, cE * Fe);
    TAKE(m->enc_n.xu, DEDUP_MAX * Fn); TAKE(m->enc_n.outu, DEDUP_MAX * H);
    TAKE(m->enc_e.xu, DEDUP_MAX * Fe); TAKE(m->enc_e.outu, DEDUP_MAX * H);
    if (plain) TAKE(m->gnn_scratch, gnn_block_scratch_size(&m->spec, cN, cE));
#undef TAKE
    if (p != act + total) return CM_ERR_VALUE;   /* the budget above is out of date */
    int64_t *q = csr;
    m->dst_ptr = q; q += cN + 1;
    m->src_ptr = q; q += cN + 1;
    m->dst_edges = q; q += cE;
    m->src_edges = q; q += cE;
    m->ng_ptr = q; q += cG + 1;
    m->ng_rows = q; q += cN;
    m->eg_ptr = q; q += cG + 1;
    m->eg_rows = q; q += cE;
    m->in_idx = q;   /* [3E + N]: src, dst, edge_graph, node_graph */
    q += 3 * cE + cN;
    m->enc_n.group = q; q += cN;
    m->enc_e.group = q;
    return CM_OK;
}

/* The distinct rows of x[R,F] (compared bitwise), numbered in order of first appearance:
 * group[r], count[u], xu[u] = the row. Returns U, or 0 when there are more than DEDUP_MAX
 * distinct rows or too few copies for grouping to pay (U > R / 2). Serial and cheap (one hash
 * of F values per row); the numbering makes every later sum deterministic. */
static int64_t find_groups(const real *x, int64_t R, int F, int64_t *group, int64_t *count, real *xu) {
    enum { SLOTS = 4 * DEDUP_MAX };   /* open addressing, a power of 2 */
    int slot[SLOTS];
    for (int i = 0; i < SLOTS; i++) slot[i] = -1;
    const size_t row_bytes = sizeof(real) * (size_t)F, words = row_bytes / sizeof(uint32_t);
    int64_t U = 0;
    for (int64_t r = 0; r < R; r++) {
        const real *row = x + r * F;
        uint64_t h = 0x243f6a8885a308d3ull;
        for (size_t k = 0; k < words; k++) {
            uint32_t wd;
            memcpy(&wd, (const char *)row + 4 * k, sizeof wd);
            h = (h ^ wd) * 0x9e3779b97f4a7c15ull;
            h ^= h >> 29;
        }
        unsigned idx = (unsigned)(h & (SLOTS - 1));
        while (slot[idx] >= 0 && memcmp(xu + (int64_t)slot[idx] * F, row, row_bytes)) idx = (idx + 1) & (SLOTS - 1);
        if (slot[idx] < 0) {
            if (U == DEDUP_MAX) return 0;
            slot[idx] = (int)U;
            memcpy(xu + U * F, row, row_bytes);
            count[U++] = 0;
        }
        group[r] = slot[idx];
        count[slot[idx]]++;
    }
    return U * 2 > R ? 0 : U;
}

/* Linear -> BatchNorm -> GELU -> Linear over R rows of width F (on their distinct rows when
 * `group_rows` and the rows repeat: see enc_acts). */
static void encoder_forward(cm_dice *m, enc_acts *a, cm_dice_bn *bn, real *const *w, const real *in, int64_t R, int F,
                            int Fout, real *out, int training, int group_rows) {
    const int H = m->cfg.hidden;
    a->U = group_rows && m->grouping ? find_groups(in, R, F, a->group, a->count, a->xu) : 0;
    const int64_t rows = a->U ? a->U : R;
    linear_forward(a->a1, a->U ? a->xu : in, w[DICE_ENC_W1], w[DICE_ENC_B1], rows, F, H);
    if (training && a->U)
        batchnorm_grouped_forward(a->bn, bn->mean, bn->rstd, a->a1, a->count, w[DICE_ENC_G], w[DICE_ENC_BETA], a->U, H, R,
                                  m->cfg.bn_eps, bn->run_mean, bn->run_var, m->cfg.bn_momentum);
    else if (training)
        batchnorm_forward(a->bn, bn->mean, bn->rstd, a->a1, w[DICE_ENC_G], w[DICE_ENC_BETA], R, H, m->cfg.bn_eps,
                          bn->run_mean, bn->run_var, m->cfg.bn_momentum);
    else
        batchnorm_inference(a->bn, a->a1, w[DICE_ENC_G], w[DICE_ENC_BETA], bn->run_mean, bn->run_var, rows, H,
                            m->cfg.bn_eps);
    if (training) gelu_dropout_forward(a->g1, a->bn, NULL, a->bn, rows * H, 0, 0);   /* a->bn <- GELU' */
    else gelu_forward(a->g1, a->bn, rows * H);
    linear_forward(a->U ? a->outu : out, a->g1, w[DICE_ENC_W2], w[DICE_ENC_B2], rows, H, Fout);
    if (a->U) gather_rows_forward(out, a->outu, a->group, R, Fout);
}

/* dout [R, Fout] -> parameter gradients, and dinp when asked (the head's; grouped encoders
 * take data, whose gradient is never needed). Uses dbuf[6..8]. */
static void encoder_backward(cm_dice *m, enc_acts *a, cm_dice_bn *bn, real *const *w, real *const *gw, const real *in,
                             int64_t R, int F, int Fout, const real *dout, real *dinp) {
    const int H = m->cfg.hidden;
    real *dg1 = m->dbuf[7], *dbn = m->dbuf[8], *da1 = m->dbuf[7];
    int64_t rows = R;
    if (a->U) {   /* the distinct rows' gradients are the sums over their copies */
        real *doutu = m->dbuf[6];
        memset(doutu, 0, sizeof(real) * (size_t)(a->U * Fout));
        gather_rows_backward(doutu, dout, a->group, R, Fout);
        dout = doutu;
        rows = a->U;
        in = a->xu;
    }
    linear_backward_set(dg1, gw[DICE_ENC_W2], gw[DICE_ENC_B2], dout, a->g1, w[DICE_ENC_W2], rows, H, Fout);
    gelu_dropout_backward(dbn, dg1, a->bn, rows * H);   /* overwrites dbn */
    memset(da1, 0, sizeof(real) * (size_t)(rows * H));   /* dg1 is spent: reuse its buffer */
    if (a->U)
        batchnorm_grouped_backward(da1, gw[DICE_ENC_G], gw[DICE_ENC_BETA], dbn, a->a1, a->count, w[DICE_ENC_G], bn->mean,
                                   bn->rstd, a->U, H, R);
    else
        batchnorm_backward(da1, gw[DICE_ENC_G], gw[DICE_ENC_BETA], dbn, a->a1, w[DICE_ENC_G], bn->mean, bn->rstd, R, H);
    linear_backward(a->U ? NULL : dinp, gw[DICE_ENC_W1], gw[DICE_ENC_B1], da1, in, w[DICE_ENC_W1], rows, F, H);
}

/* MLP = Linear -> GELU -> Dropout -> Linear, all H wide. GELU and dropout run fused, and a
 * training forward overwrites `a` with their local derivative: all that backward needs. */
static void mlp_hidden_forward(cm_dice *m, real *const *w, const real *in, real *a, real *d, int64_t R, int training,
                               uint64_t seed) {
    const int H = m->cfg.hidden;
    linear_forward(a, in, w[DICE_MLP_WA], w[DICE_MLP_BA], R, H, H);
    if (training) gelu_dropout_forward(d, a, NULL, a, R * H, m->cfg.dropout, seed);
    else gelu_forward(d, a, R * H);
}

static void mlp_forward(cm_dice *m, real *const *w, const real *in, real *a, real *d, real *out, int64_t R, int training,
                        uint64_t seed) {
    const int H = m->cfg.hidden;
    mlp_hidden_forward(m, w, in, a, d, R, training, seed);
    linear_forward(out, d, w[DICE_MLP_WB], w[DICE_MLP_BB], R, H, H);
}

/* The folded readout's forward (see cm_dice_forward): out[G,H] (+)= P @ wb^T + count[g] * bb,
 * P [G,H] the pooled hidden rows, count[g] = ptr[g + 1] - ptr[g] rows in graph g. */
static void pooled_linear_forward(real *out, const real *P, real *const *w, const int64_t *ptr, int64_t G, int H,
                                  int accumulate) {
    gemm(out, H, P, H, 1, w[DICE_MLP_WB], 1, H, NULL, G, H, H, accumulate);
    const real *bb = w[DICE_MLP_BB];
    for (int64_t g = 0; g < G; g++) {
        const real cnt = (real)(ptr[g + 1] - ptr[g]);
        for (int c = 0; c < H; c++) out[g * H + c] += cnt * bb[c];
    }
}

/* din [R, H] is overwritten */
static void mlp_backward(cm_dice *m, real *const *w, real *const *gw, const real *in, const real *deriv, const real *d,
                         const real *dout, real *din, int64_t R) {
    const int H = m->cfg.hidden;
    real *dd = m->dbuf[7], *da = m->dbuf[8];
    /* every buffer here is fresh: written, not accumulated (din too: see the caller) */
    linear_backward_set(dd, gw[DICE_MLP_WB], gw[DICE_MLP_BB], dout, d, w[DICE_MLP_WB], R, H, H);
    gelu_dropout_backward(da, dd, deriv, R * H);
    linear_backward_set(din, gw[DICE_MLP_WA], gw[DICE_MLP_BA], da, in, w[DICE_MLP_WA], R, H, H);
}

/* mlp_backward of a folded last layer: the MLP's output rows reach the loss only through their
 * graph's sum, so dout[r] = dpooled[row_graph[r]], and the second Linear's products run on the
 * G pooled rows: dP = dpooled @ wb, dwb += dpooled^T @ P, dbb += sum_g count[g] dpooled[g];
 * then d(pre-activation)[r] = dP[row_graph[r]] * GELU-dropout'[r] in one gather. din is written. */
static void mlp_backward_pooled(cm_dice *m, real *const *w, real *const *gw, const real *in, const real *deriv,
                                const real *P, const int64_t *ptr, const int64_t *row_graph, const real *dpooled,
                                real *din, int64_t R, int64_t G) {
    const int H = m->cfg.hidden;
    real *dP = m->dbuf[7], *da = m->dbuf[8];
    linear_backward_set(dP, gw[DICE_MLP_WB], NULL, dpooled, P, w[DICE_MLP_WB], G, H, H);
    real *gbb = gw[DICE_MLP_BB];
    for (int c = 0; c < H; c++) {
        double s = 0;
        for (int64_t g = 0; g < G; g++) s += (double)(ptr[g + 1] - ptr[g]) * dpooled[g * H + c];
        gbb[c] += (real)s;
    }
    gather_mul_forward(da, dP, row_graph, deriv, R, H);
    linear_backward_set(din, gw[DICE_MLP_WA], gw[DICE_MLP_BA], da, in, w[DICE_MLP_WA], R, H, H);
}

/* ---------------------------------------------------------------- blocked layers
 * At small widths a DICE layer is a few dozen short products and elementwise passes; one
 * OpenMP team per op (about 20 per layer) then costs more in start-ups and barriers than the
 * ops, and more still on a busy machine, where every barrier waits for a descheduled thread.
 * So at hidden <= BLK_MAX_H a layer runs in two regions forward and three backward, each a
 * loop over fixed blocks of BLK_ROWS node or edge rows handed out dynamically (a thread that
 * lost its core hands its blocks to the other). A block goes through its whole chain on one
 * thread with its rows in cache: combine, Linear, GELU + dropout, Linear, and back. The weight
 * gradients are summed per block and the blocks' parts added in block order, the eps
 * gradients likewise: the results never depend on the thread count or on who ran a block. */

typedef struct { int node; int64_t r0, r1; } blk_rows;
static blk_rows blk_item(int64_t it, int64_t nbN, int64_t N, int64_t E) {
    blk_rows b;
    b.node = it < nbN;
    b.r0 = (b.node ? it : it - nbN) * BLK_ROWS;
    const int64_t R = b.node ? N : E;
    b.r1 = b.r0 + BLK_ROWS < R ? b.r0 + BLK_ROWS : R;
    return b;
}

/* One layer forward: z, then per block comb -> Linear -> GELU + dropout -> Linear (the last
 * Linear skipped in a folded top layer, whose hidden rows are pooled instead). */
static void layer_forward_blocked(cm_dice *m, int l, const real *h, const real *e, int top, int training, uint64_t s) {
    layer_acts *a = &m->layers[l];
    const int H = m->cfg.hidden;
    const int64_t N = m->N, E = m->E, nbN = blk_count(N), nbE = blk_count(E);
    const real p = m->cfg.dropout;
    gine_message_forward(a->z, h, e, m->src, m->dst_ptr, m->dst_edges, N, H);
#pragma omp parallel for schedule(dynamic, 1) if ((N + E) * H >= BLK_PARALLEL_MIN)
    for (int64_t it = 0; it < nbN + nbE; it++) {
        const blk_rows b = blk_item(it, nbN, N, E);
        const int64_t nr = b.r1 - b.r0, i0 = b.r0 * H;
        real *const *w = m->mlp_store[b.node ? 0 : 1][l];
        real *comb = b.node ? a->comb_n : a->comb_e, *pre = b.node ? a->na : a->ea, *d = b.node ? a->nd : a->ed;
        if (b.node) gin_combine_forward_rows(comb, h, a->z, m->eps_store[0][l], b.r0, b.r1, H);
        else gine_edge_combine_forward_rows(comb, e, a->z, m->src, m->dst, m->eps_store[1][l], b.r0, b.r1, H);
        gemm(pre + i0, H, comb + i0, H, 1, w[DICE_MLP_WA], 1, H, w[DICE_MLP_BA], nr, H, H, 0);
        if (training) gelu_dropout_forward_rows(d, pre, pre, i0, nr * H, p, b.node ? s : mix64(s));
        else gelu_forward_rows(d, pre, i0, nr * H);
        if (!top) gemm((b.node ? a->h : a->e) + i0, H, d + i0, H, 1, w[DICE_MLP_WB], 1, H, w[DICE_MLP_BB], nr, H, H, 0);
    }
}

/* grad[k] += sum over items it0 <= it < it1 of part[it][off + k], k < n, items in order */
static void blk_reduce(real *grad, const real *part, int64_t it0, int64_t it1, int64_t stride, int64_t off, int64_t n) {
    enum { CH = 256 };
    for (int64_t k0 = 0; k0 < n; k0 += CH) {
        const int w = (int)(n - k0 < CH ? n - k0 : CH);
        real acc[CH];
        for (int k = 0; k < w; k++) acc[k] = grad[k0 + k];
        for (int64_t it = it0; it < it1; it++) {
            const real *q = part + it * stride + off + k0;
            for (int k = 0; k < w; k++) acc[k] += q[k];
        }
        for (int k = 0; k < w; k++) grad[k0 + k] = acc[k];
    }
}

/* One layer backward. dh, de [N|E, H]: gradients of the layer's outputs (unused in a folded
 * top layer, which reads dpooled [G, H]); dh_prev, de_prev: of its inputs, WRITTEN. */
static void layer_backward_blocked(cm_dice *m, int l, int top, const real *h_in, const real *e_in, const real *dh,
                                   const real *de, const real *dpooled, real *dh_prev, real *de_prev) {
    layer_acts *a = &m->layers[l];
    const int H = m->cfg.hidden;
    const int64_t N = m->N, E = m->E, G = m->G, nbN = blk_count(N), nbE = blk_count(E), PART = BLK_PART(H);
    real *const *wn = m->mlp_store[0][l], *const *we = m->mlp_store[1][l];
    real *const *gn = m->gmlp_store[0][l], *const *ge = m->gmlp_store[1][l];
    real *dcomb_n = m->dbuf[5], *dcomb_e = m->dbuf[6], *da_n = m->dbuf[7], *da_e = m->dbuf[8], *dz = m->dbuf[9];
    const int par = (N + E) * H >= BLK_PARALLEL_MIN;
    if (top) {   /* the second Linears on the G pooled rows (see mlp_backward_pooled) */
        for (int k = 0; k < 2; k++) {
            real *const *w = k ? we : wn, *const *gw = k ? ge : gn;
            const int64_t *ptr = k ? m->eg_ptr : m->ng_ptr;
            linear_backward_set(k ? m->dpool_e : m->dpool_n, gw[DICE_MLP_WB], NULL, dpooled, k ? m->pool_e : m->pool_n,
                                w[DICE_MLP_WB], G, H, H);
            for (int c = 0; c < H; c++) {
                double acc = 0;
                for (int64_t g = 0; g < G; g++) acc += (double)(ptr[g + 1] - ptr[g]) * dpooled[g * H + c];
                gw[DICE_MLP_BB][c] += (real)acc;
            }
        }
    }
    /* 1: the MLPs, block by block: d(pre-activation), its Linear's parts of the weight
     * gradients and the gradient of the MLP input (dcomb) */
#pragma omp parallel for schedule(dynamic, 1) if (par)
    for (int64_t it = 0; it < nbN + nbE; it++) {
        const blk_rows b = blk_item(it, nbN, N, E);
        const int64_t nr = b.r1 - b.r0, i0 = b.r0 * H;
        real *const *w = b.node ? wn : we;
        real *part = m->blk_part + it * PART;
        const real *comb = (b.node ? a->comb_n : a->comb_e) + i0, *deriv = b.node ? a->na : a->ea;
        real *da = b.node ? da_n : da_e;
        if (top) {
            gather_mul_forward_rows(da, b.node ? m->dpool_n : m->dpool_e, b.node ? m->node_graph : m->edge_graph, deriv,
                                    b.r0, b.r1, H);
        } else {
            const real *dout = (b.node ? dh : de) + i0, *d = (b.node ? a->nd : a->ed) + i0;
            gemm(da + i0, H, dout, H, 1, w[DICE_MLP_WB], H, 1, NULL, nr, H, H, 0);              /* dd = dout @ wb */
            gemm(part + H * H + H, H, dout, 1, H, d, H, 1, NULL, H, H, nr, 0);                 /* dout^T @ d */
            colsum_rows(part + 2 * H * H + H, dout, 0, nr, H);
            gelu_dropout_backward_rows(da, da, deriv, i0, nr * H);                              /* da = dd * deriv */
        }
        gemm(part, H, da + i0, 1, H, comb, H, 1, NULL, H, H, nr, 0);                             /* da^T @ comb */
        colsum_rows(part + H * H, da + i0, 0, nr, H);
        gemm((b.node ? dcomb_n : dcomb_e) + i0, H, da + i0, H, 1, w[DICE_MLP_WA], H, 1, NULL, nr, H, H, 0);   /* da @ wa */
    }
    /* 2: dz and the node input's combine gradient, per node block; the weight-gradient parts
     * summed, per piece of a tensor (pieces of the node and edge MLPs' wa, ba, and wb, bb
     * unless folded) */
    struct { real *grad; int64_t it0, it1, off, n; } red[64];
    int nred = 0;
    for (int k = 0; k < 2; k++) {
        real *const *gw = k ? ge : gn;
        const int64_t it0 = k ? nbN : 0, it1 = k ? nbN + nbE : nbN;
        const int64_t offs[4] = {0, H * H, H * H + H, 2 * H * H + H}, lens[4] = {H * H, H, H * H, H};
        real *grads[4] = {gw[DICE_MLP_WA], gw[DICE_MLP_BA], gw[DICE_MLP_WB], gw[DICE_MLP_BB]};
        for (int t = 0; t < (top ? 2 : 4); t++)
            for (int64_t k0 = 0; k0 < lens[t]; k0 += 1024) {
                const int64_t n = lens[t] - k0 < 1024 ? lens[t] - k0 : 1024;
                red[nred].grad = grads[t] + k0;
                red[nred].it0 = it0; red[nred].it1 = it1; red[nred].off = offs[t] + k0; red[nred].n = n;
                nred++;
            }
    }
    double *dot_n = m->blk_dot, *dot_e = m->blk_dot + nbN;
    const real *eps_n = m->eps_store[0][l], *eps_e = m->eps_store[1][l];
#pragma omp parallel if (par)
    {
#pragma omp for schedule(dynamic, 1) nowait
        for (int64_t ib = 0; ib < nbN; ib++) {
            const int64_t r0 = ib * BLK_ROWS, r1 = r0 + BLK_ROWS < N ? r0 + BLK_ROWS : N;
            dot_n[ib] = gine_node_backward_rows(dz, dh_prev, dcomb_n, dcomb_e, h_in, eps_n, m->src_ptr, m->src_edges,
                                                m->dst_ptr, m->dst_edges, r0, r1, H);
        }
#pragma omp for schedule(dynamic, 1)
        for (int r = 0; r < nred; r++)
            blk_reduce(red[r].grad, m->blk_part, red[r].it0, red[r].it1, PART, red[r].off, red[r].n);
    }
    /* 3: the messages' gradients: the edge input's (written, with its combine gradient) and
     * the node input's (added) */
#pragma omp parallel if (par)
    {
#pragma omp for schedule(dynamic, 1) nowait
        for (int64_t ib = 0; ib < nbE; ib++) {
            const int64_t r0 = ib * BLK_ROWS, r1 = r0 + BLK_ROWS < E ? r0 + BLK_ROWS : E;
            dot_e[ib] = gine_edge_backward_rows(de_prev, dcomb_e, e_in, dz, h_in, m->src, m->dst, eps_e, r0, r1, H);
        }
#pragma omp for schedule(dynamic, 1)
        for (int64_t ib = 0; ib < nbN; ib++) {
            const int64_t r0 = ib * BLK_ROWS, r1 = r0 + BLK_ROWS < N ? r0 + BLK_ROWS : N;
            gine_message_backward_nodes_rows(dh_prev, dz, e_in, m->dst, m->src_ptr, m->src_edges, r0, r1, H);
        }
    }
    double sn = 0, se = 0;
    for (int64_t ib = 0; ib < nbN; ib++) sn += dot_n[ib];
    for (int64_t ib = 0; ib < nbE; ib++) se += dot_e[ib];
    m->geps_store[0][l][0] += (real)sn;
    m->geps_store[1][l][0] += (real)se;
}

/* The folded readout's sums: pool_n[g] = sum of graph g's rows of nd, pool_e[g] of ed (rows
 * in CSR order, one writer per graph). */
static void pool_rows(cm_dice *m, const real *nd, const real *ed) {
    const int H = m->cfg.hidden;
    const int64_t G = m->G;
#pragma omp parallel for schedule(dynamic, 4) if ((m->N + m->E) * H >= BLK_PARALLEL_MIN)
    for (int64_t g = 0; g < G; g++) {
        for (int k = 0; k < 2; k++) {
            const int64_t *ptr = k ? m->eg_ptr : m->ng_ptr, *rows = k ? m->eg_rows : m->ng_rows;
            const real *in = k ? ed : nd;
            real *o = (k ? m->pool_e : m->pool_n) + g * H;
            for (int c = 0; c < H; c++) o[c] = 0;
            for (int64_t q = ptr[g]; q < ptr[g + 1]; q++) {
                const real *x = in + rows[q] * H;
                for (int c = 0; c < H; c++) o[c] += x[c];
            }
        }
    }
}

/* Sum rows into their segments: out[G,H] += in[rows of segment g]. */
static void segment_sum(real *out, const real *in, const int64_t *ptr, const int64_t *rows, int64_t G, int H) {
    scatter_add_forward(out, in, ptr, rows, G, H);
}

cm_status cm_dice_forward(cm_dice *m, real *y, const real *x, const real *ea, const int64_t *src, const int64_t *dst,
                          const int64_t *node_graph, const int64_t *edge_graph, int64_t N, int64_t E, int64_t G,
                          int training, uint64_t seed, cm_error *err) {
    const cm_dice_config *c = &m->cfg;
    const int H = c->hidden;
    for (int64_t e = 0; e < E; e++)
        if (src[e] < 0 || src[e] >= N || dst[e] < 0 || dst[e] >= N || edge_graph[e] < 0 || edge_graph[e] >= G)
            return cm_error_set(err, CM_ERR_VALUE, "", 0, "edge %lld refers to a node or graph out of range", (long long)e);
    for (int64_t n = 0; n < N; n++)
        if (node_graph[n] < 0 || node_graph[n] >= G)
            return cm_error_set(err, CM_ERR_VALUE, "", 0, "node %lld refers to graph %lld outside [0, %lld)", (long long)n,
                                (long long)node_graph[n], (long long)G);
    if (training && (N < 2 || E < 2 || G < 2))
        return cm_error_set(err, CM_ERR_VALUE, "", 0, "batch norm in training needs at least 2 nodes, edges and graphs");
    if (ensure_capacity(m, N, E, G)) return cm_error_set(err, CM_ERR_NOMEM, "", 0, "out of memory for activations");
    m->N = N; m->E = E; m->G = G;
    /* own copies, so backward never reads the caller's (possibly freed) arrays */
    memcpy(m->in_x, x, sizeof(real) * (size_t)(N * c->node_in));
    memcpy(m->in_ea, ea, sizeof(real) * (size_t)(E * c->edge_in));
    int64_t *isrc = m->in_idx, *idst = isrc + E, *ieg = idst + E, *ing = ieg + E;
    memcpy(isrc, src, sizeof(int64_t) * (size_t)E);
    memcpy(idst, dst, sizeof(int64_t) * (size_t)E);
    memcpy(ieg, edge_graph, sizeof(int64_t) * (size_t)E);
    memcpy(ing, node_graph, sizeof(int64_t) * (size_t)N);
    x = m->in_x; ea = m->in_ea; src = isrc; dst = idst; edge_graph = ieg; node_graph = ing;
    m->x = x; m->eain = ea; m->src = src; m->dst = dst; m->node_graph = node_graph; m->edge_graph = edge_graph;
    m->trained_forward = training;
    /* the four groupings are independent: shared between threads (serial, each is a pass of
     * random writes over the edges) */
#pragma omp parallel for schedule(dynamic, 1) if (N + E >= 4096)
    for (int k = 0; k < 4; k++) {
        if (k == 0) scatter_csr(m->dst_ptr, m->dst_edges, dst, E, N);
        else if (k == 1) scatter_csr(m->src_ptr, m->src_edges, src, E, N);
        else if (k == 2) scatter_csr(m->eg_ptr, m->eg_rows, edge_graph, E, G);
        else scatter_csr(m->ng_ptr, m->ng_rows, node_graph, N, G);
    }
    encoder_forward(m, &m->enc_n, &m->bn[0], m->t.enc_node, x, N, c->node_in, H, m->enc_n.out, training, 1);
    const int plain = c->conv != GNN_DICE;
    if (!plain) encoder_forward(m, &m->enc_e, &m->bn[1], m->t.enc_edge, ea, E, c->edge_in, H, m->enc_e.out, training, 1);
    m->graph = (gnn_graph){N, E, src, dst, m->dst_ptr, m->dst_edges, m->src_ptr, m->src_edges};
    const real *h = m->enc_n.out, *e = m->enc_e.out;
    /* The readout sums the last layer's rows per graph, and an MLP's last step is linear, so
     * sum_r (wb d_r + bb) = wb (sum_r d_r) + count bb: the last layer's second Linears run on
     * the G pooled rows instead of the N and E rows (a quarter of the layers' products). Same
     * values up to rounding; off with grouping (cm_dice_set_grouping) for the row-by-row work. */
    m->folded = m->grouping && !plain && c->layers > 0;
    for (int l = 0; l < c->layers; l++) {
        layer_acts *a = &m->layers[l];
        if (plain) {   /* a gnn.c layer, then GELU and dropout */
            gnn_block_forward(a->h, m->gnn_act[l], h, m->gnn_p[l], &m->graph, &m->spec, training, c->dropout,
                              mix64(seed ^ mix64((uint64_t)l * 2 + 0x5151)));
            h = a->h;
            continue;
        }
        uint64_t s = mix64(seed ^ mix64((uint64_t)l * 2 + 0x5151));
        const int top = m->folded && l == c->layers - 1;
        if (m->blocked) {
            layer_forward_blocked(m, l, h, e, top, training, s);
            if (top) {
                pool_rows(m, a->nd, a->ed);
                pooled_linear_forward(m->pooled, m->pool_n, m->mlp_store[0][l], m->ng_ptr, G, H, 0);
                pooled_linear_forward(m->pooled, m->pool_e, m->mlp_store[1][l], m->eg_ptr, G, H, 1);
                break;
            }
            h = a->h;
            e = a->e;
            continue;
        }
        /* z = sum over edges into n of h[src] * e (one pass, no message buffer) */
        gine_message_forward(a->z, h, e, src, m->dst_ptr, m->dst_edges, N, H);
        gin_combine_forward(a->comb_n, h, a->z, m->eps_store[0][l], N, H);
        gine_edge_combine_forward(a->comb_e, e, a->z, src, dst, m->eps_store[1][l], E, H);
        if (top) {
            mlp_hidden_forward(m, m->mlp_store[0][l], a->comb_n, a->na, a->nd, N, training, s);
            mlp_hidden_forward(m, m->mlp_store[1][l], a->comb_e, a->ea, a->ed, E, training, mix64(s));
            pool_rows(m, a->nd, a->ed);
            pooled_linear_forward(m->pooled, m->pool_n, m->mlp_store[0][l], m->ng_ptr, G, H, 0);
            pooled_linear_forward(m->pooled, m->pool_e, m->mlp_store[1][l], m->eg_ptr, G, H, 1);
            break;
        }
        mlp_forward(m, m->mlp_store[0][l], a->comb_n, a->na, a->nd, a->h, N, training, s);
        mlp_forward(m, m->mlp_store[1][l], a->comb_e, a->ea, a->ed, a->e, E, training, mix64(s));
        h = a->h;
        e = a->e;
    }
    if (!m->folded) {
        memset(m->pooled, 0, sizeof(real) * (size_t)(G * H));
        segment_sum(m->pooled, h, m->ng_ptr, m->ng_rows, G, H);
        if (!plain) segment_sum(m->pooled, e, m->eg_ptr, m->eg_rows, G, H);
    }
    encoder_forward(m, &m->enc_h, &m->bn[2], m->t.head, m->pooled, G, H, c->out, y, training, 0);
    return CM_OK;
}

cm_status cm_dice_backward(cm_dice *m, const real *dy, cm_error *err) {
    if (!m->trained_forward)
        return cm_error_set(err, CM_ERR_VALUE, "", 0, "backward needs a preceding forward in training mode");
    const cm_dice_config *c = &m->cfg;
    const int H = c->hidden;
    const int64_t N = m->N, E = m->E, G = m->G;
    /* head */
    real *dpooled = m->dbuf[0];
    memset(dpooled, 0, sizeof(real) * (size_t)(G * H));
    encoder_backward(m, &m->enc_h, &m->bn[2], m->t.head, m->g.head, m->pooled, G, H, c->out, dy, dpooled);
    /* pooling: every row of a graph receives its graph's gradient (a gather, written) */
    real *dh = m->dbuf[1], *de = m->dbuf[2];
    const int plain = c->conv != GNN_DICE;
    if (!m->folded) {   /* folded: the last layer reads dpooled itself */
        gather_rows_forward(dh, dpooled, m->node_graph, N, H);
        if (!plain) gather_rows_forward(de, dpooled, m->edge_graph, E, H);
    }
    real *dh_prev = m->dbuf[3], *de_prev = m->dbuf[4], *dcomb = m->dbuf[5], *dz = m->dbuf[6];
    for (int l = c->layers - 1; l >= 0; l--) {
        layer_acts *a = &m->layers[l];
        const real *h_in = l ? m->layers[l - 1].h : m->enc_n.out;
        const real *e_in = l ? m->layers[l - 1].e : m->enc_e.out;
        if (m->blocked) {   /* dh_prev, de_prev written */
            layer_backward_blocked(m, l, m->folded && l == c->layers - 1, h_in, e_in, dh, de, dpooled, dh_prev, de_prev);
            real *t = dh; dh = dh_prev; dh_prev = t;
            t = de; de = de_prev; de_prev = t;
            continue;
        }
        memset(dh_prev, 0, sizeof(real) * (size_t)(N * H));
        if (plain) {
            gnn_block_backward(dh_prev, m->gnn_g[l], dh, h_in, m->gnn_p[l], m->gnn_act[l], &m->graph, &m->spec,
                               m->gnn_scratch);
            real *t = dh; dh = dh_prev; dh_prev = t;
            continue;
        }
        memset(de_prev, 0, sizeof(real) * (size_t)(E * H));
        memset(dz, 0, sizeof(real) * (size_t)(N * H));
        /* e' = MLP_e(comb_e), comb_e = (1 + eps_e) e + z[src] - z[dst]: d comb_e is also the
         * gradient of z[src] - z[dst] */
        const int top = m->folded && l == c->layers - 1;
        if (top)
            mlp_backward_pooled(m, m->mlp_store[1][l], m->gmlp_store[1][l], a->comb_e, a->ea, m->pool_e, m->eg_ptr,
                                m->edge_graph, dpooled, dcomb, E, G);
        else
            mlp_backward(m, m->mlp_store[1][l], m->gmlp_store[1][l], a->comb_e, a->ea, a->ed, de, dcomb, E);
        gin_combine_backward(de_prev, NULL, m->geps_store[1][l], dcomb, e_in, m->eps_store[1][l], E, H);
        gather_diff_backward(dz, dcomb, N, H, m->src_ptr, m->src_edges, m->dst_ptr, m->dst_edges);
        /* h' = MLP_n(comb_n), comb_n = (1 + eps_n) h + z */
        if (top)
            mlp_backward_pooled(m, m->mlp_store[0][l], m->gmlp_store[0][l], a->comb_n, a->na, m->pool_n, m->ng_ptr,
                                m->node_graph, dpooled, dcomb, N, G);
        else
            mlp_backward(m, m->mlp_store[0][l], m->gmlp_store[0][l], a->comb_n, a->na, a->nd, dh, dcomb, N);
        gin_combine_backward(dh_prev, dz, m->geps_store[0][l], dcomb, h_in, m->eps_store[0][l], N, H);
        /* z = sum over edges into n of h[src] * e */
        gine_message_backward(dh_prev, de_prev, dz, h_in, e_in, m->src, m->dst, E, N, H, m->src_ptr, m->src_edges);
        /* the inputs' gradients become the outputs' gradients of the layer below */
        real *t = dh; dh = dh_prev; dh_prev = t;
        t = de; de = de_prev; de_prev = t;
    }
    if (!plain) encoder_backward(m, &m->enc_e, &m->bn[1], m->t.enc_edge, m->g.enc_edge, m->eain, E, c->edge_in, H, de, NULL);
    encoder_backward(m, &m->enc_n, &m->bn[0], m->t.enc_node, m->g.enc_node, m->x, N, c->node_in, H, dh, NULL);
    return CM_OK;
}
