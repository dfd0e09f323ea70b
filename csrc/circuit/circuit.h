/* circuit.h: a flattened device-level circuit, the SPICE reader that builds it and the
 * writer that turns it back into a netlist.
 *
 * A circuit is a table of devices over a table of nets. Each device has a kind, a name,
 * an ordered list of terminal nets, an optional model, a primary value (R, C, L, gain,
 * DC value of a source) and instance parameters (w, l, m, nf, ...). Subcircuits are
 * flattened at read time with hierarchical names in ngspice's style: device `m1` inside
 * instance `x1` becomes `m.x1.m1`, its internal net `n1` becomes `x1.n1`.
 * Names are case-insensitive in SPICE; the reader lowercases them.
 *
 * Sizes: D devices, N nets, P instance parameters, T terminals (sum over devices).
 * Ownership: the circuit owns all its memory; cm_circuit_free releases it. */
#ifndef CIRCML_CIRCUIT_H
#define CIRCML_CIRCUIT_H
#include <stdint.h>
#include "../util/status.h"
#include "../util/strtab.h"

typedef enum {
    CM_DEV_RES = 0,   /* R n1 n2 */
    CM_DEV_CAP,       /* C n1 n2 */
    CM_DEV_IND,       /* L n1 n2 */
    CM_DEV_DIODE,     /* D anode cathode model */
    CM_DEV_NMOS,      /* M d g s b model, model of type nmos */
    CM_DEV_PMOS,      /* M d g s b model, model of type pmos */
    CM_DEV_NPN,       /* Q c b e [sub] model */
    CM_DEV_PNP,
    CM_DEV_VSRC,      /* V n+ n- spec */
    CM_DEV_ISRC,      /* I n+ n- spec */
    CM_DEV_VCVS,      /* E n+ n- nc+ nc- gain */
    CM_DEV_VCCS,      /* G n+ n- nc+ nc- gain */
    CM_DEV_CCCS,      /* F n+ n- vsense gain */
    CM_DEV_CCVS,      /* H n+ n- vsense gain */
    CM_DEV_KIND_COUNT
} cm_device_kind;

/* Net roles, used by the graph builder (DICE's ground and supply node types). */
typedef enum { CM_NET_SIGNAL = 0, CM_NET_GROUND = 1, CM_NET_SUPPLY = 2 } cm_net_role;

typedef struct {
    int32_t kind;         /* cm_device_kind */
    int32_t name;         /* id in circuit.devnames (== device index) */
    int32_t model;        /* id in circuit.strs, -1 when none */
    int32_t term_begin;   /* first terminal in circuit.term_net */
    int32_t n_terms;
    int32_t param_begin;  /* first instance parameter in circuit.params */
    int32_t n_params;
    int32_t value_text;   /* id in circuit.strs: the value as written (source specs, unevaluated {expr}); -1 */
    int32_t control;      /* F/H: id in circuit.devnames of the sensing V source name... stored in strs; -1 */
    int32_t src_file;     /* id in circuit.files of the card's file */
    int32_t src_line;     /* 1-based line of the card */
    double value;         /* primary value in SI units; NAN when absent or not evaluable */
} cm_device;

typedef struct {
    int32_t name;   /* id in circuit.strs */
    int32_t text;   /* id in circuit.strs: the value as written, -1 when numeric */
    double value;   /* NAN when `text` could not be evaluated */
} cm_param;

typedef struct {
    int32_t name;   /* id in circuit.strs */
    int32_t type;   /* id in circuit.strs: nmos, pmos, npn, pnp, d, r, c, sw, ... */
    int32_t text;   /* id in circuit.strs: the parameters, normalised to "k=v k=v" */
} cm_model;

typedef struct {
    cm_strtab strs;      /* names, models, texts */
    cm_strtab nets;      /* net names; net id == string id */
    cm_strtab devnames;  /* device names; device index == string id (names are unique) */
    cm_strtab files;     /* source file names for messages */

    cm_device *devices;  /* [D] */
    int32_t n_devices, cap_devices;
    int32_t *term_net;   /* [T] net id of each terminal */
    int64_t n_terms, cap_terms;
    cm_param *params;    /* [P] instance parameters */
    int64_t n_params, cap_params;

    cm_model *models;    /* [n_models] */
    int32_t n_models, cap_models;
    cm_param *globals;   /* [n_globals] top-level .param values, in order */
    int32_t n_globals, cap_globals;
    int32_t *global_nets;     /* net ids named in .global */
    int32_t n_global_nets, cap_global_nets;
    int32_t *directives;      /* ids in strs: other dot-cards kept verbatim (.option, .temp, analyses) */
    int32_t n_directives, cap_directives;
    int32_t title;            /* id in strs */
    int32_t control_block;    /* id in strs of kept .control text (only when allowed), -1 */
} cm_circuit;

/* Options of the reader. */
typedef struct {
    int allow_control;           /* keep .control blocks instead of refusing them */
    int allow_any_include;       /* follow .include/.lib anywhere instead of only the allowed folders */
    const char *const *include_dirs; /* [n_include_dirs] folders .include may read from, besides the including file's */
    int n_include_dirs;
    const char *const *model_names;  /* caller's model map: model name -> type (nmos, pmos, npn, pnp, d) */
    const char *const *model_types;
    int n_model_map;
    int max_depth;               /* subcircuit nesting limit; 0 = default 64 */
    const char *const *override_names; /* [n_overrides] top-level .param values that replace the */
    const double *override_values;     /* netlist's own (design values of a testbench); names */
    int n_overrides;                   /* lowercase. Each must name a .param of the netlist. */
    int reference_reader;        /* read with the plain serial reader, the reference that the default
                                  * (parallel, same result) reader is tested against */
} cm_parse_options;

void cm_parse_options_default(cm_parse_options *opt);

/* Read a netlist from memory. `text` need not be NUL-terminated. `filename` names it in
 * messages and anchors relative .include paths (may be NULL: "<string>", includes relative
 * to the current directory). On success *out owns a new circuit; on failure *out is NULL
 * and err says where and why. Large flat netlists are read with OpenMP threads; the result
 * (ids of nets and devices by first occurrence included) and every error are those of the
 * serial reference reader (opt->reference_reader), whatever the thread count. */
cm_status cm_circuit_parse(const char *text, size_t len, const char *filename,
                           const cm_parse_options *opt, cm_circuit **out, cm_error *err);
/* Read a netlist file. */
cm_status cm_circuit_read(const char *path, const cm_parse_options *opt, cm_circuit **out, cm_error *err);

void cm_circuit_free(cm_circuit *c);

/* Write the circuit as a flat SPICE netlist into a malloc'd NUL-terminated string (*out,
 * caller frees). Reading the result back gives the same circuit. */
cm_status cm_circuit_write(const cm_circuit *c, char **out, size_t *out_len);

/* Default net roles by name: ground = 0, gnd, vss (and their `!` forms); supply = names
 * starting with vdd, vcc, avdd, dvdd, vpwr. roles: [N] int8 cm_net_role. */
void cm_circuit_net_roles(const cm_circuit *c, int8_t *roles);

/* Name of a device kind ("resistor", "nmos", ...). */
const char *cm_device_kind_name(int kind);

/* Parse a SPICE number with an optional SI suffix (f p n u m k meg g t mil) and trailing
 * unit letters ("10uF", "1kohm"). Returns 0 and *value on success, -1 when s[0:len] is not
 * a number. */
int cm_parse_number(const char *s, size_t len, double *value);

/* Format a double so that cm_parse_number reads back the same bits. buf >= 32 bytes. */
int cm_format_number(double v, char *buf, size_t size);

#endif
