/* augment.h: DICE's dual graph augmentation on circuits with values.
 *
 * A positive view replaces randomly chosen devices by two identical devices in series or in
 * parallel whose values keep the circuit electrically equivalent (R -> R/2 + R/2 or 2R || 2R,
 * C -> C/2 || C/2 or 2C + 2C, L likewise, a MOSFET -> two with W/2 (m/2 when m is even) in
 * parallel or two with L/2 stacked, gates and bodies tied, a DC current source -> two with I/2 in
 * parallel). The MOSFET rules apply only where W/2 or L/2 is still a size the model card accepts. A negative
 * view applies DICE's rules that change what the circuit is (current source -> R || C || L,
 * NMOS -> PMOS added in parallel and in series, PMOS -> NMOS likewise, R -> C + L in series,
 * C -> L added in parallel and in series, L -> C likewise).
 * Rules live in one registry table (augment.c); a rule = a name, its polarity, the device
 * kinds it applies to and an emit function. Views are deterministic functions of
 * (seed, view index), so a batch gives the same views with any number of threads. */
#ifndef CIRCML_AUGMENT_H
#define CIRCML_AUGMENT_H
#include <stdint.h>
#include "../circuit/circuit.h"

enum {
    CM_AUG_R_SERIES = 0, CM_AUG_R_PARALLEL, CM_AUG_C_PARALLEL, CM_AUG_C_SERIES, CM_AUG_L_SERIES, CM_AUG_L_PARALLEL,
    CM_AUG_MOS_PARALLEL, CM_AUG_MOS_SERIES, CM_AUG_I_PARALLEL,
    CM_AUG_NEG_I_TO_RCL, CM_AUG_NEG_NMOS_ADD_PMOS, CM_AUG_NEG_PMOS_ADD_NMOS, CM_AUG_NEG_R_TO_CL,
    CM_AUG_NEG_C_ADD_L, CM_AUG_NEG_L_ADD_C,
    CM_AUG_RULE_COUNT
};

int cm_augment_rule_count(void);
const char *cm_augment_rule_name(int rule);
int cm_augment_rule_is_negative(int rule);
const char *cm_augment_rule_description(int rule);

/* One view of `base`: n_subs distinct devices, each replaced by a rule drawn uniformly from
 * those in `rule_mask` (bit r = rule r) that apply to it. *out owns the new circuit.
 * applied: [n_subs] rule used per substitution (-1 when fewer devices were eligible), may be
 * NULL; *n_applied = substitutions made (0 when no device was eligible: *out is a copy). */
cm_status cm_augment_view(const cm_circuit *base, uint64_t rule_mask, int n_subs, uint64_t seed, uint64_t view,
                          cm_circuit **out, int32_t *applied, int *n_applied, cm_error *err);

/* V views in one call, OpenMP over views: view v augments bases[base_of[v]] with
 * mask_of[v]; outs [V], n_applied [V]. Statuses per view in status [V]. */
cm_status cm_augment_batch(const cm_circuit *const *bases, const int64_t *base_of, const uint64_t *mask_of,
                           int64_t V, int n_subs, uint64_t seed, cm_circuit **outs, int32_t *n_applied,
                           int32_t *status);

#define CM_AUG_POSITIVE_MASK ((1ull << CM_AUG_NEG_I_TO_RCL) - 1ull)
#define CM_AUG_NEGATIVE_MASK (((1ull << CM_AUG_RULE_COUNT) - 1ull) & ~CM_AUG_POSITIVE_MASK)

#endif
