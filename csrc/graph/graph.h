/* graph.h: device-level circuit graphs (DICE) and their collation into batches.
 *
 * Nodes are the circuit's nets (first, in net order) followed by its devices (in device
 * order). Node types, DICE schema (9): ground, supply, net, current source, nmos, pmos,
 * resistor, capacitor, inductor. The extended schema (17) adds diode, npn, pnp, voltage
 * source, vcvs, vccs, cccs, ccvs. In the DICE schema devices of the extended kinds are left
 * out (their nets stay) and counted in `dropped`.
 * Edge types, DICE (5): current-carrying net<->device (both directions), gate net->nmos,
 * gate net->pmos, body net->nmos, body net->pmos. Extended (10) adds base net->npn,
 * base net->pnp, substrate net->bjt, control net->controlled source (E/G), and sensing
 * source->controlled source (F/H).
 * Features x: one-hot node type, then optionally 4 value columns: log10 W, log10 L,
 * log10 multiplicity (m * nf), log10 |value| (R, C, L, source DC, gain), 0 where absent.
 * Sizes: N nodes, E edges, F features, K edge types, G graphs. */
#ifndef CIRCML_GRAPH_H
#define CIRCML_GRAPH_H
#include <stdint.h>
#include "../circuit/circuit.h"

enum { CM_SCHEMA_DICE = 0, CM_SCHEMA_EXTENDED = 1 };

enum {
    CM_NODE_GROUND = 0, CM_NODE_SUPPLY, CM_NODE_NET, CM_NODE_ISRC, CM_NODE_NMOS, CM_NODE_PMOS,
    CM_NODE_RES, CM_NODE_CAP, CM_NODE_IND,
    CM_NODE_DIODE, CM_NODE_NPN, CM_NODE_PNP, CM_NODE_VSRC, CM_NODE_VCVS, CM_NODE_VCCS, CM_NODE_CCCS, CM_NODE_CCVS,
    CM_NODE_TYPES_EXTENDED
};
#define CM_NODE_TYPES_DICE 9

enum {
    CM_EDGE_CURRENT = 0, CM_EDGE_GATE_NMOS, CM_EDGE_GATE_PMOS, CM_EDGE_BODY_NMOS, CM_EDGE_BODY_PMOS,
    CM_EDGE_BASE_NPN, CM_EDGE_BASE_PNP, CM_EDGE_SUBSTRATE, CM_EDGE_CONTROL, CM_EDGE_SENSE,
    CM_EDGE_TYPES_EXTENDED
};
#define CM_EDGE_TYPES_DICE 5
#define CM_VALUE_FEATURES 4

typedef struct {
    int schema;             /* CM_SCHEMA_* */
    int value_features;     /* append the 4 log-value columns */
    const int8_t *net_roles;/* [N nets] cm_net_role per net, or NULL for cm_circuit_net_roles */
} cm_graph_options;

int cm_graph_num_node_types(const cm_graph_options *o);
int cm_graph_num_edge_types(const cm_graph_options *o);
int cm_graph_num_features(const cm_graph_options *o);

/* Count nodes and edges of the graph of c. */
void cm_graph_count(const cm_circuit *c, const cm_graph_options *o, int64_t *n_nodes, int64_t *n_edges,
                    int64_t *dropped);

/* Build the graphs of G circuits into one batch. node_offset/edge_offset: [G + 1] prefix sums
 * of the counts (the caller computes them with cm_graph_count). Outputs (caller-allocated):
 * x [N, F] float32, node_type [N] int64, edge_index [2, E] int64 (row 0 sources, row 1 targets,
 * global node ids), edge_type [E] int64, edge_attr [E, K] float32 one-hot, batch [N] int64.
 * net_roles: per circuit, may be NULL. OpenMP over circuits, and within a circuit of 65536
 * devices or more; the result does not depend on the thread count. CM_ERR_VALUE for bad
 * options, CM_ERR_NOMEM. */
cm_status cm_graph_build_batch(const cm_circuit *const *circuits, const int8_t *const *net_roles, int64_t G,
                               const cm_graph_options *o, const int64_t *node_offset, const int64_t *edge_offset,
                               float *x, int64_t *node_type, int64_t *edge_index, int64_t *edge_type,
                               float *edge_attr, int64_t *batch, int64_t *node_ref);
/* The same, each circuit built serially (OpenMP over circuits only): the reference. */
cm_status cm_graph_build_batch_ref(const cm_circuit *const *circuits, const int8_t *const *net_roles, int64_t G,
                                   const cm_graph_options *o, const int64_t *node_offset, const int64_t *edge_offset,
                                   float *x, int64_t *node_type, int64_t *edge_index, int64_t *edge_type,
                                   float *edge_attr, int64_t *batch, int64_t *node_ref);

/* Collate G graphs given as arrays into one batch (PyG-style): node ids of graph g are shifted
 * by node_offset[g]. Inputs are arrays of pointers per graph; outputs caller-allocated with
 * totals N = node_offset[G], E = edge_offset[G]. */
cm_status cm_graph_collate(int64_t G, int F, int K, const float *const *xs, const int64_t *const *node_types,
                           const int64_t *const *edge_indices, const int64_t *const *edge_types,
                           const float *const *edge_attrs, const int64_t *node_offset, const int64_t *edge_offset,
                           float *x, int64_t *node_type, int64_t *edge_index, int64_t *edge_type, float *edge_attr,
                           int64_t *batch);
#endif
