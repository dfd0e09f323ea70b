/* graph.c: device-level graphs of circuits (see graph.h). OpenMP over circuits; a circuit of
 * GRAPH_SPLIT_DEVICES devices or more is split into chunks of devices instead (counts per
 * chunk, prefix sums, parallel fill). cm_graph_build_batch_ref is the serial-per-circuit
 * reference; both give the same arrays whatever the thread count. */
#include "graph.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A circuit this large is built by all threads together, in chunks of devices. */
#define GRAPH_SPLIT_DEVICES 65536
#define GRAPH_CHUNK 16384   /* devices; also nets per chunk */

int cm_graph_num_node_types(const cm_graph_options *o) {
    return o->schema == CM_SCHEMA_EXTENDED ? CM_NODE_TYPES_EXTENDED : CM_NODE_TYPES_DICE;
}
int cm_graph_num_edge_types(const cm_graph_options *o) {
    return o->schema == CM_SCHEMA_EXTENDED ? CM_EDGE_TYPES_EXTENDED : CM_EDGE_TYPES_DICE;
}
int cm_graph_num_features(const cm_graph_options *o) {
    return cm_graph_num_node_types(o) + (o->value_features ? CM_VALUE_FEATURES : 0);
}

/* Node type of a device kind, -1 when the schema leaves it out. */
static int device_node_type(int kind, int schema) {
    switch (kind) {
    case CM_DEV_ISRC: return CM_NODE_ISRC;
    case CM_DEV_NMOS: return CM_NODE_NMOS;
    case CM_DEV_PMOS: return CM_NODE_PMOS;
    case CM_DEV_RES: return CM_NODE_RES;
    case CM_DEV_CAP: return CM_NODE_CAP;
    case CM_DEV_IND: return CM_NODE_IND;
    default: break;
    }
    if (schema != CM_SCHEMA_EXTENDED) return -1;
    switch (kind) {
    case CM_DEV_DIODE: return CM_NODE_DIODE;
    case CM_DEV_NPN: return CM_NODE_NPN;
    case CM_DEV_PNP: return CM_NODE_PNP;
    case CM_DEV_VSRC: return CM_NODE_VSRC;
    case CM_DEV_VCVS: return CM_NODE_VCVS;
    case CM_DEV_VCCS: return CM_NODE_VCCS;
    case CM_DEV_CCCS: return CM_NODE_CCCS;
    case CM_DEV_CCVS: return CM_NODE_CCVS;
    default: return -1;
    }
}

/* Device index of the sensing V source of an F/H device, -1 if absent. */
static int32_t sense_device(const cm_circuit *c, const cm_device *d) {
    if (d->control < 0) return -1;
    const char *name = cm_strtab_get(&c->strs, d->control);
    int32_t id = cm_strtab_find(&c->devnames, name, strlen(name));
    if (id < 0 || c->devices[id].kind != CM_DEV_VSRC) return -1;
    return id;
}

/* Edges a kept device contributes. */
static int64_t device_edges(const cm_circuit *c, const cm_device *d) {
    switch (d->kind) {
    case CM_DEV_NMOS: case CM_DEV_PMOS: return 6;           /* d, s both ways; gate; body */
    case CM_DEV_NPN: case CM_DEV_PNP: return 5 + (d->n_terms > 3);
    case CM_DEV_VCVS: case CM_DEV_VCCS: return 6;
    case CM_DEV_CCCS: case CM_DEV_CCVS: return 4 + (sense_device(c, d) >= 0);
    default: return 2 * (int64_t)d->n_terms;
    }
}

void cm_graph_count(const cm_circuit *c, const cm_graph_options *o, int64_t *n_nodes, int64_t *n_edges,
                    int64_t *dropped) {
    int64_t nn = c->nets.n, ne = 0, dr = 0;
#pragma omp parallel for schedule(static) reduction(+ : nn, ne, dr) if (c->n_devices >= GRAPH_SPLIT_DEVICES)
    for (int32_t i = 0; i < c->n_devices; i++) {
        const cm_device *d = &c->devices[i];
        if (device_node_type(d->kind, o->schema) < 0) { dr++; continue; }
        nn++;
        ne += device_edges(c, d);
    }
    *n_nodes = nn;
    *n_edges = ne;
    if (dropped) *dropped = dr;
}

static float safe_log10(double v) {
    v = fabs(v);
    return (isnan(v) || v == 0.0 || isinf(v)) ? 0.0f : (float)log10(v);
}

static double param_value(const cm_circuit *c, const cm_device *d, int32_t name_id, double dflt) {
    if (name_id < 0) return dflt;
    for (int32_t k = 0; k < d->n_params; k++) {
        const cm_param *p = &c->params[d->param_begin + k];
        if (p->name == name_id) return isnan(p->value) ? dflt : p->value;
    }
    return dflt;
}

/* Net nodes [lo, hi) of c, at node0 + i. roles: [N] cm_net_role, or NULL (all signal). */
static void build_nets(const cm_circuit *c, const int8_t *roles, const cm_graph_options *o, int64_t g, int64_t node0,
                       int32_t lo, int32_t hi, float *x, int64_t *node_type, int64_t *batch, int64_t *node_ref) {
    const int F = cm_graph_num_features(o);
    (void)c;
    for (int32_t i = lo; i < hi; i++) {
        int64_t v = node0 + i;
        int t = CM_NODE_NET;
        if (roles) t = roles[i] == CM_NET_GROUND ? CM_NODE_GROUND : roles[i] == CM_NET_SUPPLY ? CM_NODE_SUPPLY : CM_NODE_NET;
        float *row = x + v * F;
        for (int f = 0; f < F; f++) row[f] = 0.0f;
        row[t] = 1.0f;
        node_type[v] = t;
        if (batch) batch[v] = g;
        if (node_ref) node_ref[v] = i;
    }
}

/* Device nodes of devices [lo, hi) of c, the first kept one at node v and its first edge at e
 * (E_total: edge_index row stride). */
static void build_devices(const cm_circuit *c, const cm_graph_options *o, int64_t g, int64_t node0, int32_t lo,
                          int32_t hi, int64_t v, int64_t e, int64_t E_total, float *x, int64_t *node_type,
                          int64_t *edge_index, int64_t *edge_type, float *edge_attr, int64_t *batch, int64_t *node_ref) {
    const int F = cm_graph_num_features(o), K = cm_graph_num_edge_types(o), NT = cm_graph_num_node_types(o);
    const int32_t n_nets = c->nets.n;
    int32_t id_w = cm_strtab_find(&c->strs, "w", 1), id_l = cm_strtab_find(&c->strs, "l", 1);
    int32_t id_m = cm_strtab_find(&c->strs, "m", 1), id_nf = cm_strtab_find(&c->strs, "nf", 2);
    /* Node of device i: in the extended schema every device is kept, so it is n_nets + i. */
#define EDGE(src, dst, type)                                                      \
    do {                                                                          \
        edge_index[e] = (src);                                                    \
        edge_index[E_total + e] = (dst);                                          \
        edge_type[e] = (type);                                                    \
        float *ea_ = edge_attr + e * K;                                           \
        for (int k_ = 0; k_ < K; k_++) ea_[k_] = 0.0f;                            \
        ea_[(type)] = 1.0f;                                                       \
        e++;                                                                      \
    } while (0)
    for (int32_t i = lo; i < hi; i++) {
        const cm_device *d = &c->devices[i];
        int t = device_node_type(d->kind, o->schema);
        if (t < 0) continue;
        float *row = x + v * F;
        for (int f = 0; f < F; f++) row[f] = 0.0f;
        row[t] = 1.0f;
        if (o->value_features) {
            double w = param_value(c, d, id_w, NAN), l = param_value(c, d, id_l, NAN);
            double mult = param_value(c, d, id_m, 1.0) * param_value(c, d, id_nf, 1.0);
            row[NT + 0] = safe_log10(w);
            row[NT + 1] = safe_log10(l);
            row[NT + 2] = safe_log10(mult);
            row[NT + 3] = (d->kind == CM_DEV_NMOS || d->kind == CM_DEV_PMOS) ? 0.0f : safe_log10(d->value);
        }
        node_type[v] = t;
        if (batch) batch[v] = g;
        if (node_ref) node_ref[v] = i;
        const int32_t *tn = c->term_net + d->term_begin;
        switch (d->kind) {
        case CM_DEV_NMOS: case CM_DEV_PMOS: {
            int nm = d->kind == CM_DEV_NMOS;
            EDGE(node0 + tn[0], v, CM_EDGE_CURRENT);
            EDGE(v, node0 + tn[0], CM_EDGE_CURRENT);
            EDGE(node0 + tn[1], v, nm ? CM_EDGE_GATE_NMOS : CM_EDGE_GATE_PMOS);
            EDGE(node0 + tn[2], v, CM_EDGE_CURRENT);
            EDGE(v, node0 + tn[2], CM_EDGE_CURRENT);
            EDGE(node0 + tn[3], v, nm ? CM_EDGE_BODY_NMOS : CM_EDGE_BODY_PMOS);
            break;
        }
        case CM_DEV_NPN: case CM_DEV_PNP:
            EDGE(node0 + tn[0], v, CM_EDGE_CURRENT);
            EDGE(v, node0 + tn[0], CM_EDGE_CURRENT);
            EDGE(node0 + tn[1], v, d->kind == CM_DEV_NPN ? CM_EDGE_BASE_NPN : CM_EDGE_BASE_PNP);
            EDGE(node0 + tn[2], v, CM_EDGE_CURRENT);
            EDGE(v, node0 + tn[2], CM_EDGE_CURRENT);
            if (d->n_terms > 3) EDGE(node0 + tn[3], v, CM_EDGE_SUBSTRATE);
            break;
        case CM_DEV_VCVS: case CM_DEV_VCCS:
            for (int k = 0; k < 2; k++) {
                EDGE(node0 + tn[k], v, CM_EDGE_CURRENT);
                EDGE(v, node0 + tn[k], CM_EDGE_CURRENT);
            }
            EDGE(node0 + tn[2], v, CM_EDGE_CONTROL);
            EDGE(node0 + tn[3], v, CM_EDGE_CONTROL);
            break;
        case CM_DEV_CCCS: case CM_DEV_CCVS: {
            for (int k = 0; k < 2; k++) {
                EDGE(node0 + tn[k], v, CM_EDGE_CURRENT);
                EDGE(v, node0 + tn[k], CM_EDGE_CURRENT);
            }
            int32_t s = sense_device(c, d);
            if (s >= 0) EDGE(node0 + n_nets + s, v, CM_EDGE_SENSE);
            break;
        }
        default:
            for (int32_t k = 0; k < d->n_terms; k++) {
                EDGE(node0 + tn[k], v, CM_EDGE_CURRENT);
                EDGE(v, node0 + tn[k], CM_EDGE_CURRENT);
            }
        }
        v++;
    }
#undef EDGE
}

/* One circuit into the batch at (node0, edge0), serially: the reference. */
static void build_one(const cm_circuit *c, const int8_t *roles_in, const cm_graph_options *o, int64_t g,
                      int64_t node0, int64_t edge0, int64_t E_total, float *x, int64_t *node_type,
                      int64_t *edge_index, int64_t *edge_type, float *edge_attr, int64_t *batch, int64_t *node_ref) {
    const int32_t n_nets = c->nets.n;
    int8_t *roles = NULL;
    if (!roles_in) {
        roles = malloc((size_t)(n_nets ? n_nets : 1));
        if (roles) cm_circuit_net_roles(c, roles);
        roles_in = roles;
    }
    build_nets(c, roles_in, o, g, node0, 0, n_nets, x, node_type, batch, node_ref);
    free(roles);
    build_devices(c, o, g, node0, 0, c->n_devices, node0 + n_nets, edge0, E_total, x, node_type, edge_index, edge_type,
                  edge_attr, batch, node_ref);
}

cm_status cm_graph_build_batch_ref(const cm_circuit *const *circuits, const int8_t *const *net_roles, int64_t G,
                                   const cm_graph_options *o, const int64_t *node_offset, const int64_t *edge_offset,
                                   float *x, int64_t *node_type, int64_t *edge_index, int64_t *edge_type,
                                   float *edge_attr, int64_t *batch, int64_t *node_ref) {
    if (G < 0 || (o->schema != CM_SCHEMA_DICE && o->schema != CM_SCHEMA_EXTENDED)) return CM_ERR_VALUE;
    const int64_t E = edge_offset[G];
#pragma omp parallel for schedule(dynamic, 1) if (G > 1)
    for (int64_t g = 0; g < G; g++)
        build_one(circuits[g], net_roles ? net_roles[g] : NULL, o, g, node_offset[g], edge_offset[g], E, x, node_type,
                  edge_index, edge_type, edge_attr, batch, node_ref);
    return CM_OK;
}

/* One large circuit with all threads: nodes and edges counted per chunk of devices, prefix
 * sums give every chunk its place, then the chunks are filled in parallel. The result is that
 * of build_one, whatever the thread count. */
static cm_status build_one_split(const cm_circuit *c, const int8_t *roles_in, const cm_graph_options *o, int64_t g,
                                 int64_t node0, int64_t edge0, int64_t E_total, float *x, int64_t *node_type,
                                 int64_t *edge_index, int64_t *edge_type, float *edge_attr, int64_t *batch,
                                 int64_t *node_ref) {
    const int32_t n_nets = c->nets.n, D = c->n_devices;
    const int64_t nb = ((int64_t)D + GRAPH_CHUNK - 1) / GRAPH_CHUNK, nnb = ((int64_t)n_nets + GRAPH_CHUNK - 1) / GRAPH_CHUNK;
    int64_t *off = malloc(sizeof *off * (size_t)(2 * (nb + 1)));   /* [nb + 1] node, [nb + 1] edge starts */
    int8_t *roles = NULL;
    if (!roles_in) roles = malloc((size_t)(n_nets ? n_nets : 1));
    if (!off || (!roles_in && !roles)) { free(off); free(roles); return CM_ERR_NOMEM; }
    int64_t *eoff = off + nb + 1;
    if (roles) cm_circuit_net_roles(c, roles);
    const int8_t *r = roles_in ? roles_in : roles;
#pragma omp parallel
    {
#pragma omp for schedule(static)
        for (int64_t b = 0; b < nb; b++) {
            int32_t lo = (int32_t)(b * GRAPH_CHUNK), hi = (int32_t)(lo + GRAPH_CHUNK < D ? lo + GRAPH_CHUNK : D);
            int64_t nn = 0, ne = 0;
            for (int32_t i = lo; i < hi; i++) {
                const cm_device *d = &c->devices[i];
                if (device_node_type(d->kind, o->schema) < 0) continue;
                nn++;
                ne += device_edges(c, d);
            }
            off[b + 1] = nn;
            eoff[b + 1] = ne;
        }
#pragma omp single
        {
            off[0] = node0 + n_nets;
            eoff[0] = edge0;
            for (int64_t b = 0; b < nb; b++) {
                off[b + 1] += off[b];
                eoff[b + 1] += eoff[b];
            }
        }
#pragma omp for schedule(static) nowait
        for (int64_t b = 0; b < nnb; b++) {
            int32_t lo = (int32_t)(b * GRAPH_CHUNK), hi = (int32_t)(lo + GRAPH_CHUNK < n_nets ? lo + GRAPH_CHUNK : n_nets);
            build_nets(c, r, o, g, node0, lo, hi, x, node_type, batch, node_ref);
        }
#pragma omp for schedule(static)
        for (int64_t b = 0; b < nb; b++) {
            int32_t lo = (int32_t)(b * GRAPH_CHUNK), hi = (int32_t)(lo + GRAPH_CHUNK < D ? lo + GRAPH_CHUNK : D);
            build_devices(c, o, g, node0, lo, hi, off[b], eoff[b], E_total, x, node_type, edge_index, edge_type,
                          edge_attr, batch, node_ref);
        }
    }
    free(off);
    free(roles);
    return CM_OK;
}

cm_status cm_graph_build_batch(const cm_circuit *const *circuits, const int8_t *const *net_roles, int64_t G,
                               const cm_graph_options *o, const int64_t *node_offset, const int64_t *edge_offset,
                               float *x, int64_t *node_type, int64_t *edge_index, int64_t *edge_type,
                               float *edge_attr, int64_t *batch, int64_t *node_ref) {
    if (G < 0 || (o->schema != CM_SCHEMA_DICE && o->schema != CM_SCHEMA_EXTENDED)) return CM_ERR_VALUE;
    const int64_t E = edge_offset[G];
    /* Small circuits: one per thread. Large ones: one after the other, each by all threads. */
#pragma omp parallel for schedule(dynamic, 1) if (G > 1)
    for (int64_t g = 0; g < G; g++)
        if (circuits[g]->n_devices < GRAPH_SPLIT_DEVICES)
            build_one(circuits[g], net_roles ? net_roles[g] : NULL, o, g, node_offset[g], edge_offset[g], E, x,
                      node_type, edge_index, edge_type, edge_attr, batch, node_ref);
    cm_status st = CM_OK;
    for (int64_t g = 0; g < G && !st; g++)
        if (circuits[g]->n_devices >= GRAPH_SPLIT_DEVICES)
            st = build_one_split(circuits[g], net_roles ? net_roles[g] : NULL, o, g, node_offset[g], edge_offset[g], E,
                                 x, node_type, edge_index, edge_type, edge_attr, batch, node_ref);
    return st;
}

cm_status cm_graph_collate(int64_t G, int F, int K, const float *const *xs, const int64_t *const *node_types,
                           const int64_t *const *edge_indices, const int64_t *const *edge_types,
                           const float *const *edge_attrs, const int64_t *node_offset, const int64_t *edge_offset,
                           float *x, int64_t *node_type, int64_t *edge_index, int64_t *edge_type, float *edge_attr,
                           int64_t *batch) {
    const int64_t E = edge_offset[G];
#pragma omp parallel for schedule(dynamic, 1) if (G > 1)
    for (int64_t g = 0; g < G; g++) {
        int64_t n0 = node_offset[g], n = node_offset[g + 1] - n0;
        int64_t e0 = edge_offset[g], ne = edge_offset[g + 1] - e0;
        memcpy(x + n0 * F, xs[g], sizeof(float) * (size_t)(n * F));
        memcpy(node_type + n0, node_types[g], sizeof(int64_t) * (size_t)n);
        for (int64_t i = 0; i < n; i++) batch[n0 + i] = g;
        const int64_t *ei = edge_indices[g];
        for (int64_t j = 0; j < ne; j++) {
            edge_index[e0 + j] = ei[j] + n0;
            edge_index[E + e0 + j] = ei[ne + j] + n0;
        }
        memcpy(edge_type + e0, edge_types[g], sizeof(int64_t) * (size_t)ne);
        memcpy(edge_attr + e0 * K, edge_attrs[g], sizeof(float) * (size_t)(ne * K));
    }
    return CM_OK;
}
