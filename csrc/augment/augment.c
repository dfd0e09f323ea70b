/* augment.c: the rule registry and view construction (see augment.h).
 *
 * A view starts as a copy of its base's string tables under the same ids (stored hashes reused)
 * and its header; devices no rule picked are copied as plain structs, the picked ones are written
 * by their rule through the build API (csrc/circuit/build.h). A batch reads the bases' model
 * cards once and gives each thread one scratch [D candidates, D chosen rules, N net map] sized
 * for the largest base, so a view allocates only the circuit it returns.
 * tests/test_augment.py checks the views device for device against an independent Python
 * implementation (benchmarks/bench_augment.py) and, in ngspice, against their originals.
 * Sizes: D devices and N nets of a base, V views of a batch. */
#include "augment.h"
#include "../circuit/build.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- counter-based RNG: splitmix64 over (seed, view, draw) ---- */
static uint64_t mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}
typedef struct { uint64_t state; } rng;
static uint64_t rng_next(rng *r) { return mix64(r->state++); }
static uint32_t rng_below(rng *r, uint32_t n) { return (uint32_t)((rng_next(r) >> 11) % n); }

/* ---- context for emitting a view ---- */
typedef struct {
    const cm_circuit *src;
    cm_circuit *dst;
    const int32_t *net_map;   /* src net -> dst net */
    char name[512];
} emit_ctx;

/* A device or net name not yet used in dst (nor in src for devices). */
static const char *fresh_device_name(emit_ctx *e, const char *want) {
    snprintf(e->name, sizeof e->name, "%s", want);
    for (int k = 2; cm_strtab_find(&e->dst->devnames, e->name, strlen(e->name)) >= 0 ||
                    cm_strtab_find(&e->src->devnames, e->name, strlen(e->name)) >= 0; k++)
        /* a long name is cut to leave room for the number, so the candidates stay distinct */
        snprintf(e->name, sizeof e->name, "%.*s%d", (int)(sizeof e->name - 12), want, k);
    return e->name;
}

static int32_t fresh_net(emit_ctx *e, const char *devname) {
    char want[512], buf[540];
    snprintf(want, sizeof want, "%s_mid", devname);
    snprintf(buf, sizeof buf, "%s", want);
    for (int k = 2; cm_strtab_find(&e->dst->nets, buf, strlen(buf)) >= 0 ||
                    cm_strtab_find(&e->src->nets, buf, strlen(buf)) >= 0; k++)
        snprintf(buf, sizeof buf, "%s%d", want, k);
    return cm_circuit_net(e->dst, buf);
}

static const char *dev_name(const cm_circuit *c, int32_t i) { return cm_strtab_get(&c->devnames, c->devices[i].name); }

static double param_of(const cm_circuit *c, const cm_device *d, const char *name) {
    for (int32_t k = 0; k < d->n_params; k++) {
        const cm_param *p = &c->params[d->param_begin + k];
        if (strcmp(cm_strtab_get(&c->strs, p->name), name) == 0) return p->text >= 0 ? NAN : p->value;
    }
    return NAN;
}

/* Copy of device i named `suffix`-ed, with given nets and scalings. */
static cm_status emit_copy(emit_ctx *e, int32_t i, const char *suffix, const int32_t *nets, double vscale,
                           const char *param, double pscale) {
    char want[512];
    snprintf(want, sizeof want, "%s%s", dev_name(e->src, i), suffix);
    /* a rule that keeps the device (suffix "") keeps its name */
    const char *name = suffix[0] ? fresh_device_name(e, want) : dev_name(e->src, i);
    return cm_circuit_copy_device(e->dst, e->src, i, e->net_map, name, nets, vscale, param, pscale);
}

/* A new two-terminal device of `kind` (letter first in its name). */
static cm_status emit_new2(emit_ctx *e, int kind, char letter, int32_t i, const char *suffix, int32_t a, int32_t b,
                           double value) {
    char want[512];
    snprintf(want, sizeof want, "%c_%s%s", letter, dev_name(e->src, i), suffix);
    int32_t nets[2] = {a, b};
    cm_device_spec s = {.kind = kind, .name = fresh_device_name(e, want), .nets = nets, .n_nets = 2,
                        .value = value, .src_file = -1};
    return cm_circuit_add_device(e->dst, &s);
}

static const char *model_of_type(const cm_circuit *c, const char *type) {
    for (int32_t i = 0; i < c->n_models; i++)
        if (strcmp(cm_strtab_get(&c->strs, c->models[i].type), type) == 0) return cm_strtab_get(&c->strs, c->models[i].name);
    return NULL;
}

/* A MOSFET of the other polarity, same nets d g s b and the same parameters. */
static cm_status emit_mos_other(emit_ctx *e, int32_t i, const char *suffix, const int32_t *nets) {
    const cm_device *d = &e->src->devices[i];
    int kind = d->kind == CM_DEV_NMOS ? CM_DEV_PMOS : CM_DEV_NMOS;
    const char *type = kind == CM_DEV_NMOS ? "nmos" : "pmos";
    const char *model = model_of_type(e->src, type);
    if (!model) {
        /* no model of that polarity in the circuit: add a generic one so the view simulates */
        const char *name = kind == CM_DEV_NMOS ? "circml_nmos" : "circml_pmos";
        if (!model_of_type(e->dst, type)) {
            cm_model *mm = realloc(e->dst->models, sizeof *mm * (size_t)(e->dst->n_models + 1));
            if (!mm) return CM_ERR_NOMEM;
            e->dst->models = mm;
            e->dst->cap_models = e->dst->n_models + 1;
            cm_model *m = &e->dst->models[e->dst->n_models];
            m->name = cm_strtab_intern(&e->dst->strs, name, strlen(name), NULL);
            m->type = cm_strtab_intern(&e->dst->strs, type, strlen(type), NULL);
            m->text = cm_strtab_intern(&e->dst->strs, "level=1", 7, NULL);
            if (m->name < 0 || m->type < 0 || m->text < 0) return CM_ERR_NOMEM;
            e->dst->n_models++;
        }
        model = name;
    }
    enum { MAXP = 64 };
    const char *pn[MAXP], *pt[MAXP];
    double pv[MAXP];
    if (d->n_params > MAXP) return CM_ERR_UNSUPPORTED;
    for (int k = 0; k < d->n_params; k++) {
        const cm_param *p = &e->src->params[d->param_begin + k];
        pn[k] = cm_strtab_get(&e->src->strs, p->name);
        pt[k] = p->text >= 0 ? cm_strtab_get(&e->src->strs, p->text) : NULL;
        pv[k] = p->value;
    }
    char want[512];
    snprintf(want, sizeof want, "%s%s", dev_name(e->src, i), suffix);
    cm_device_spec s = {.kind = kind, .name = fresh_device_name(e, want), .nets = nets, .n_nets = 4, .model = model,
                        .value = NAN, .param_names = pn, .param_values = pv, .param_texts = pt,
                        .n_params = d->n_params, .src_file = -1};
    return cm_circuit_add_device(e->dst, &s);
}

/* ---- rules ---- */

/* What the applicability tests need to know about the base circuit, read once per view:
 * the shortest drawn L and W each model card accepts (see card_limits). */
typedef struct {
    double lmin, wmin;   /* NAN until read */
} card_lim;
typedef struct {
    const cm_circuit *c;
    card_lim *lim;       /* [n_models] */
} aug_ctx;

/* Shortest drawn length / width a MOSFET card simulates: its binning bounds lmin / wmin when it
 * has them, and the geometry whose effective size L + xl - 2 lint (W + xw - 2 wint; ld / wd for
 * SPICE levels 1-3) vanishes: BSIM4 stops with "effective channel length <= 0" below it. Halving
 * a 45 nm device of the PTM card (xl = -20n, lint = 3.75n) lands there, so the L/2 rule must not
 * apply to it. Absent parameters count as 0. This bounds validity, not accuracy: how close a
 * short stacked pair stays to the original is measured in tests/test_augment.py. */
static card_lim card_limits(const char *text) {
    double v[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    static const char *const keys[8] = {"lmin", "wmin", "xl", "xw", "lint", "wint", "ld", "wd"};
    const char *p = text;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == '\n') p++;
        const char *k = p;
        while (*p && *p != '=' && *p != ' ' && *p != '\t' && *p != '\n') p++;
        size_t kn = (size_t)(p - k);
        if (*p != '=') continue;
        const char *val = ++p;
        while (*p && *p != ' ' && *p != '\t' && *p != '\n') p++;
        for (int j = 0; j < 8; j++)
            if (strlen(keys[j]) == kn && strncmp(keys[j], k, kn) == 0) {
                double x;
                if (cm_parse_number(val, (size_t)(p - val), &x) == 0 && isfinite(x)) v[j] = x;
            }
    }
    double dl = v[4] > v[6] ? v[4] : v[6], dw = v[5] > v[7] ? v[5] : v[7];
    double lcut = 2 * dl - v[2], wcut = 2 * dw - v[3];
    card_lim r = {v[0] > lcut ? v[0] : lcut, v[1] > wcut ? v[1] : wcut};
    return r;
}

/* Limits of device d's card; none (0) when the card is not in the circuit (a caller's model map). */
static card_lim limits_of(aug_ctx *x, const cm_device *d) {
    card_lim none = {0, 0};
    for (int32_t m = 0; m < x->c->n_models; m++)
        if (x->c->models[m].name == d->model) {
            if (isnan(x->lim[m].lmin)) x->lim[m] = card_limits(cm_strtab_get(&x->c->strs, x->c->models[m].text));
            return x->lim[m];
        }
    return none;
}

typedef int (*applies_fn)(aug_ctx *x, const cm_device *d);
typedef cm_status (*emit_fn)(emit_ctx *e, int32_t i);

static int numeric_value(const cm_device *d) { return !isnan(d->value) && d->value_text < 0 && d->value != 0.0; }
static int is_r(aug_ctx *x, const cm_device *d) { (void)x; return d->kind == CM_DEV_RES && numeric_value(d) && d->model < 0; }
static int is_c(aug_ctx *x, const cm_device *d) { (void)x; return d->kind == CM_DEV_CAP && numeric_value(d) && d->model < 0; }
static int is_l(aug_ctx *x, const cm_device *d) { (void)x; return d->kind == CM_DEV_IND && numeric_value(d) && d->model < 0; }
static int is_mos(const cm_device *d) { return d->kind == CM_DEV_NMOS || d->kind == CM_DEV_PMOS; }

/* m = 2, 4, ... splits exactly into two devices of m/2 (SPICE scales every current and charge by
 * m); otherwise the W/2 split, when W/2 is still a width the card accepts. */
static int even_mult(const cm_circuit *c, const cm_device *d) {
    double m = param_of(c, d, "m");
    return m >= 2 && m == floor(m) && fmod(m, 2.0) == 0.0;
}
static int is_mos_w(aug_ctx *x, const cm_device *d) {
    if (!is_mos(d)) return 0;
    if (even_mult(x->c, d)) return 1;
    double w = param_of(x->c, d, "w");
    return w > 0 && 0.5 * w > limits_of(x, d).wmin * (1 - 1e-9);
}
static int is_mos_l(aug_ctx *x, const cm_device *d) {
    if (!is_mos(d)) return 0;
    double l = param_of(x->c, d, "l");
    return l > 0 && 0.5 * l > limits_of(x, d).lmin * (1 - 1e-9);
}
static int is_nmos(aug_ctx *x, const cm_device *d) { (void)x; return d->kind == CM_DEV_NMOS; }
static int is_pmos(aug_ctx *x, const cm_device *d) { (void)x; return d->kind == CM_DEV_PMOS; }
static int is_any_r(aug_ctx *x, const cm_device *d) { (void)x; return d->kind == CM_DEV_RES; }
static int is_any_c(aug_ctx *x, const cm_device *d) { (void)x; return d->kind == CM_DEV_CAP; }
static int is_any_l(aug_ctx *x, const cm_device *d) { (void)x; return d->kind == CM_DEV_IND; }
static int is_any_i(aug_ctx *x, const cm_device *d) { (void)x; return d->kind == CM_DEV_ISRC; }

/* A current source whose spec is only a DC value ("5u", "dc 5u"): it can be halved exactly. */
static int is_dc_isrc(aug_ctx *x, const cm_device *d) {
    if (d->kind != CM_DEV_ISRC || isnan(d->value) || d->value == 0.0) return 0;
    if (d->value_text < 0) return 1;
    const char *t = cm_strtab_get(&x->c->strs, d->value_text);
    int words = 0, in = 0;
    for (const char *p = t; *p; p++) {
        if (*p != ' ' && *p != '\t') { if (!in) words++; in = 1; } else in = 0;
    }
    return words == 1 || (words == 2 && strncmp(t, "dc", 2) == 0 && (t[2] == ' ' || t[2] == '\t'));
}

static int32_t term(const emit_ctx *e, int32_t i, int k) {
    const cm_device *d = &e->src->devices[i];
    return e->net_map[e->src->term_net[d->term_begin + k]];
}

static cm_status two_in_series(emit_ctx *e, int32_t i, double scale) {
    int32_t a = term(e, i, 0), b = term(e, i, 1), m = fresh_net(e, dev_name(e->src, i));
    if (m < 0) return CM_ERR_NOMEM;
    int32_t n1[2] = {a, m}, n2[2] = {m, b};
    cm_status st = emit_copy(e, i, "_a", n1, scale, NULL, 1);
    return st ? st : emit_copy(e, i, "_b", n2, scale, NULL, 1);
}
static cm_status two_in_parallel(emit_ctx *e, int32_t i, double scale) {
    cm_status st = emit_copy(e, i, "_a", NULL, scale, NULL, 1);
    return st ? st : emit_copy(e, i, "_b", NULL, scale, NULL, 1);
}
static cm_status r_series(emit_ctx *e, int32_t i) { return two_in_series(e, i, 0.5); }
static cm_status r_parallel(emit_ctx *e, int32_t i) { return two_in_parallel(e, i, 2.0); }
static cm_status c_parallel(emit_ctx *e, int32_t i) { return two_in_parallel(e, i, 0.5); }
static cm_status c_series(emit_ctx *e, int32_t i) { return two_in_series(e, i, 2.0); }
static cm_status l_series(emit_ctx *e, int32_t i) { return two_in_series(e, i, 0.5); }
static cm_status l_parallel(emit_ctx *e, int32_t i) { return two_in_parallel(e, i, 2.0); }

static cm_status mos_parallel(emit_ctx *e, int32_t i) {
    const char *p = even_mult(e->src, &e->src->devices[i]) ? "m" : "w";
    cm_status st = emit_copy(e, i, "_a", NULL, 1, p, 0.5);
    return st ? st : emit_copy(e, i, "_b", NULL, 1, p, 0.5);
}
static cm_status mos_series(emit_ctx *e, int32_t i) {
    /* upper device: drain .. mid, lower: mid .. source; gates tied, bodies tied */
    int32_t d = term(e, i, 0), g = term(e, i, 1), s = term(e, i, 2), b = term(e, i, 3);
    int32_t m = fresh_net(e, dev_name(e->src, i));
    if (m < 0) return CM_ERR_NOMEM;
    int32_t up[4] = {d, g, m, b}, lo[4] = {m, g, s, b};
    cm_status st = emit_copy(e, i, "_a", up, 1, "l", 0.5);
    return st ? st : emit_copy(e, i, "_b", lo, 1, "l", 0.5);
}
static cm_status i_parallel(emit_ctx *e, int32_t i) {
    /* The spec text must change with the value: write it as a plain DC value. */
    const cm_device *d = &e->src->devices[i];
    char want[512], text[64];
    snprintf(text, sizeof text, "dc ");
    cm_format_number(d->value * 0.5, text + 3, sizeof text - 3);
    int32_t nets[2] = {term(e, i, 0), term(e, i, 1)};
    for (int k = 0; k < 2; k++) {
        snprintf(want, sizeof want, "%s%s", dev_name(e->src, i), k ? "_b" : "_a");
        cm_device_spec s = {.kind = CM_DEV_ISRC, .name = fresh_device_name(e, want), .nets = nets, .n_nets = 2,
                            .value = d->value * 0.5, .value_text = text, .src_file = -1};
        cm_status st = cm_circuit_add_device(e->dst, &s);
        if (st) return st;
    }
    return CM_OK;
}

/* Values of devices the negative rules add: typical on-chip magnitudes. */
#define NEG_R 1e3
#define NEG_C 1e-12
#define NEG_L 1e-9

static cm_status neg_i_to_rcl(emit_ctx *e, int32_t i) {
    int32_t a = term(e, i, 0), b = term(e, i, 1);
    cm_status st = emit_new2(e, CM_DEV_RES, 'r', i, "", a, b, NEG_R);
    if (!st) st = emit_new2(e, CM_DEV_CAP, 'c', i, "", a, b, NEG_C);
    if (!st) st = emit_new2(e, CM_DEV_IND, 'l', i, "", a, b, NEG_L);
    return st;
}
static cm_status neg_mos_add_other(emit_ctx *e, int32_t i) {
    /* the original from drain to a new net, the other polarity from there to the source
     * (series), and the other polarity across drain-source (parallel) */
    int32_t d = term(e, i, 0), g = term(e, i, 1), s = term(e, i, 2), b = term(e, i, 3);
    int32_t m = fresh_net(e, dev_name(e->src, i));
    if (m < 0) return CM_ERR_NOMEM;
    int32_t orig[4] = {d, g, m, b}, ser[4] = {m, g, s, b}, par[4] = {d, g, s, b};
    cm_status st = emit_copy(e, i, "", orig, 1, NULL, 1);
    if (!st) st = emit_mos_other(e, i, "_s", ser);
    if (!st) st = emit_mos_other(e, i, "_p", par);
    return st;
}
static cm_status neg_r_to_cl(emit_ctx *e, int32_t i) {
    int32_t a = term(e, i, 0), b = term(e, i, 1), m = fresh_net(e, dev_name(e->src, i));
    if (m < 0) return CM_ERR_NOMEM;
    cm_status st = emit_new2(e, CM_DEV_CAP, 'c', i, "", a, m, NEG_C);
    return st ? st : emit_new2(e, CM_DEV_IND, 'l', i, "", m, b, NEG_L);
}
static cm_status neg_add_series_parallel(emit_ctx *e, int32_t i, int kind, char letter, double value) {
    int32_t a = term(e, i, 0), b = term(e, i, 1), m = fresh_net(e, dev_name(e->src, i));
    if (m < 0) return CM_ERR_NOMEM;
    int32_t orig[2] = {a, m};
    cm_status st = emit_copy(e, i, "", orig, 1, NULL, 1);
    if (!st) st = emit_new2(e, kind, letter, i, "_s", m, b, value);
    if (!st) st = emit_new2(e, kind, letter, i, "_p", a, b, value);
    return st;
}
static cm_status neg_c_add_l(emit_ctx *e, int32_t i) { return neg_add_series_parallel(e, i, CM_DEV_IND, 'l', NEG_L); }
static cm_status neg_l_add_c(emit_ctx *e, int32_t i) { return neg_add_series_parallel(e, i, CM_DEV_CAP, 'c', NEG_C); }

typedef struct {
    const char *name;
    int negative;
    applies_fn applies;
    emit_fn emit;
    const char *description;
} rule;

/* The registry. Order = the CM_AUG_* enum. Adding a rule: an enum value, an entry here, a test. */
static const rule RULES[CM_AUG_RULE_COUNT] = {
    {"r_series", 0, is_r, r_series, "R -> R/2 + R/2 in series"},
    {"r_parallel", 0, is_r, r_parallel, "R -> 2R || 2R"},
    {"c_parallel", 0, is_c, c_parallel, "C -> C/2 || C/2"},
    {"c_series", 0, is_c, c_series, "C -> 2C + 2C in series"},
    {"l_series", 0, is_l, l_series, "L -> L/2 + L/2 in series"},
    {"l_parallel", 0, is_l, l_parallel, "L -> 2L || 2L"},
    {"mos_parallel", 0, is_mos_w, mos_parallel, "MOSFET -> two with W/2 (or m/2 when m is even) in parallel"},
    {"mos_series", 0, is_mos_l, mos_series, "MOSFET -> two with L/2 stacked, gates and bodies tied (when L/2 is valid for its card)"},
    {"i_parallel", 0, is_dc_isrc, i_parallel, "DC current source -> two with I/2 in parallel"},
    {"neg_i_to_rcl", 1, is_any_i, neg_i_to_rcl, "current source -> R || C || L"},
    {"neg_nmos_add_pmos", 1, is_nmos, neg_mos_add_other, "NMOS -> a PMOS added in parallel and in series"},
    {"neg_pmos_add_nmos", 1, is_pmos, neg_mos_add_other, "PMOS -> an NMOS added in parallel and in series"},
    {"neg_r_to_cl", 1, is_any_r, neg_r_to_cl, "R -> C with an L in series"},
    {"neg_c_add_l", 1, is_any_c, neg_c_add_l, "C -> an L added in parallel and in series"},
    {"neg_l_add_c", 1, is_any_l, neg_l_add_c, "L -> a C added in parallel and in series"},
};

int cm_augment_rule_count(void) { return CM_AUG_RULE_COUNT; }
const char *cm_augment_rule_name(int r) { return r >= 0 && r < CM_AUG_RULE_COUNT ? RULES[r].name : NULL; }
int cm_augment_rule_is_negative(int r) { return r >= 0 && r < CM_AUG_RULE_COUNT ? RULES[r].negative : 0; }
const char *cm_augment_rule_description(int r) { return r >= 0 && r < CM_AUG_RULE_COUNT ? RULES[r].description : NULL; }

/* ---- views: the base's string tables under the same ids, kept devices copied as structs ---- */

/* Intern every string of src into the empty table dst, in src's order: the ids come out equal,
 * and src's stored hashes are reused (a model card's text is kilobytes). */
static int strtab_copy_ids(cm_strtab *dst, const cm_strtab *src, int32_t extra_n, size_t extra_bytes) {
    if (cm_strtab_reserve(dst, src->n + extra_n, src->len + extra_bytes)) return -1;
    for (int32_t i = 0; i < src->n; i++)
        if (cm_strtab_intern_h(dst, src->buf + src->offs[i], (size_t)src->lens[i], src->hashes[i], NULL) != i) return -1;
    return 0;
}

static void *dup_array(const void *a, size_t n, size_t size, size_t extra) {
    if (n + extra == 0) return NULL;
    void *p = malloc((n + extra) * size);
    if (p && n) memcpy(p, a, n * size);
    return p;
}

/* An empty view of base with base's header: its strings, nets, models, .params, directives and
 * .global nets under the same ids, and room for base's devices plus `subs` substitutions (each
 * replaces a device by at most 3 with at most 4 terminals). NULL when out of memory. */
static cm_circuit *view_new(const cm_circuit *base, int subs) {
    cm_circuit *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->title = base->title;
    c->control_block = base->control_block;
    int32_t max_params = 0;
    for (int32_t i = 0; i < base->n_devices; i++)
        if (base->devices[i].n_params > max_params) max_params = base->devices[i].n_params;
    c->cap_devices = base->n_devices + 2 * subs;
    c->cap_terms = base->n_terms + 12 * (int64_t)subs;
    c->cap_params = base->n_params + 3 * (int64_t)subs * max_params;
    c->cap_models = base->n_models + 1;  /* a negative MOS rule may add a card */
    c->devices = malloc(sizeof *c->devices * (size_t)c->cap_devices);
    c->term_net = malloc(sizeof *c->term_net * (size_t)c->cap_terms);
    c->params = malloc(sizeof *c->params * (size_t)(c->cap_params ? c->cap_params : 1));
    c->models = dup_array(base->models, (size_t)base->n_models, sizeof *c->models, 1);
    c->globals = dup_array(base->globals, (size_t)base->n_globals, sizeof *c->globals, 0);
    c->directives = dup_array(base->directives, (size_t)base->n_directives, sizeof *c->directives, 0);
    c->global_nets = dup_array(base->global_nets, (size_t)base->n_global_nets, sizeof *c->global_nets, 0);
    c->n_models = base->n_models;
    c->n_globals = c->cap_globals = base->n_globals;
    c->n_directives = c->cap_directives = base->n_directives;
    c->n_global_nets = c->cap_global_nets = base->n_global_nets;
    if (!c->devices || !c->term_net || !c->params || !c->models || (base->n_globals && !c->globals) ||
        (base->n_directives && !c->directives) || (base->n_global_nets && !c->global_nets) ||
        cm_strtab_init(&c->strs, base->strs.n + 8) || strtab_copy_ids(&c->strs, &base->strs, 8, 128) ||
        cm_strtab_init(&c->nets, base->nets.n + 2 * subs) ||
        strtab_copy_ids(&c->nets, &base->nets, 2 * subs, (size_t)subs * 64) ||
        cm_strtab_init(&c->devnames, c->cap_devices) ||
        cm_strtab_reserve(&c->devnames, c->cap_devices, base->devnames.len + (size_t)subs * 192) ||
        cm_strtab_init(&c->files, 1)) {
        cm_circuit_free(c);
        return NULL;
    }
    return c;
}

/* Base device i, unchanged, appended to the view (same string and net ids; no source location). */
static cm_status view_keep_device(cm_circuit *dst, const cm_circuit *src, int32_t i) {
    const cm_device *d = &src->devices[i];
    /* view_new sized the arrays for every base device plus the substitutions' devices */
    if (dst->n_devices >= dst->cap_devices || dst->n_terms + d->n_terms > dst->cap_terms ||
        dst->n_params + d->n_params > dst->cap_params)
        return CM_ERR_UNSUPPORTED;
    int inserted = 0;
    int32_t id = cm_strtab_intern_h(&dst->devnames, cm_strtab_get(&src->devnames, d->name),
                                    (size_t)src->devnames.lens[d->name], src->devnames.hashes[d->name], &inserted);
    if (id < 0) return CM_ERR_NOMEM;
    if (!inserted || id != dst->n_devices) return CM_ERR_VALUE;
    cm_device *o = &dst->devices[dst->n_devices++];
    *o = *d;
    o->name = id;
    o->term_begin = (int32_t)dst->n_terms;
    o->param_begin = (int32_t)dst->n_params;
    o->src_file = -1;
    o->src_line = 0;
    memcpy(dst->term_net + dst->n_terms, src->term_net + d->term_begin, sizeof *dst->term_net * (size_t)d->n_terms);
    memcpy(dst->params + dst->n_params, src->params + d->param_begin, sizeof *dst->params * (size_t)d->n_params);
    dst->n_terms += d->n_terms;
    dst->n_params += d->n_params;
    return CM_OK;
}

/* Scratch of one view, sized for the largest base: [D] candidates, [D] chosen rule per device,
 * [N] base net -> view net. Reused across the views a thread makes. */
typedef struct {
    int32_t *cand, *chosen, *net_map;
} aug_scratch;

static int scratch_init(aug_scratch *s, int32_t D, int32_t N) {
    s->cand = malloc(sizeof *s->cand * (size_t)(D ? D : 1));
    s->chosen = malloc(sizeof *s->chosen * (size_t)(D ? D : 1));
    s->net_map = malloc(sizeof *s->net_map * (size_t)(N ? N : 1));
    return s->cand && s->chosen && s->net_map;
}
static void scratch_free(aug_scratch *s) { free(s->cand); free(s->chosen); free(s->net_map); }

/* One view (see cm_augment_view). lim: [base->n_models] card limits, NAN entries read lazily
 * (a batch passes them all read, so threads share them read-only). */
static cm_status augment_one(const cm_circuit *base, card_lim *lim, aug_scratch *sc, uint64_t mask, int n_subs,
                             uint64_t seed, uint64_t view, cm_circuit **out, int32_t *applied, int *n_applied) {
    *out = NULL;
    if (n_applied) *n_applied = 0;
    const int32_t D = base->n_devices, N = base->nets.n;
    int32_t *cand = sc->cand, *chosen_rule = sc->chosen, *net_map = sc->net_map;
    aug_ctx x = {base, lim};
    /* eligible devices and, per device, its applicable rules */
    int32_t n_cand = 0;
    for (int32_t i = 0; i < D; i++) {
        chosen_rule[i] = -1;
        for (int r = 0; r < CM_AUG_RULE_COUNT; r++)
            if ((mask >> r & 1u) && RULES[r].applies(&x, &base->devices[i])) { cand[n_cand++] = i; break; }
    }
    rng g = {mix64(seed ^ mix64(view + 0x632be59bd9b4e019ull))};
    int k = n_subs < n_cand ? n_subs : n_cand;
    for (int j = 0; j < k; j++) {
        /* partial Fisher-Yates: the first k of a random permutation of the candidates */
        int32_t t = j + (int32_t)rng_below(&g, (uint32_t)(n_cand - j));
        int32_t tmp = cand[j]; cand[j] = cand[t]; cand[t] = tmp;
        int32_t i = cand[j], opts[CM_AUG_RULE_COUNT], n_opts = 0;
        for (int r = 0; r < CM_AUG_RULE_COUNT; r++)
            if ((mask >> r & 1u) && RULES[r].applies(&x, &base->devices[i])) opts[n_opts++] = r;
        chosen_rule[i] = opts[rng_below(&g, (uint32_t)n_opts)];
        if (applied) applied[j] = chosen_rule[i];
    }
    if (applied) for (int j = k; j < n_subs; j++) applied[j] = -1;

    cm_circuit *dst = view_new(base, n_subs);
    if (!dst) return CM_ERR_NOMEM;
    cm_status st = CM_OK;
    for (int32_t n = 0; n < N; n++) net_map[n] = n;  /* view_new keeps the base's net ids */
    emit_ctx e = {base, dst, net_map, {0}};
    for (int32_t i = 0; i < D && !st; i++)
        st = chosen_rule[i] < 0 ? view_keep_device(dst, base, i) : RULES[chosen_rule[i]].emit(&e, i);
    if (st) {
        cm_circuit_free(dst);
        return st;
    }
    if (n_applied) *n_applied = k;
    *out = dst;
    return CM_OK;
}

static card_lim *limits_alloc(const cm_circuit *base) {
    card_lim *lim = malloc(sizeof *lim * (size_t)(base->n_models ? base->n_models : 1));
    if (lim) for (int32_t m = 0; m < base->n_models; m++) lim[m].lmin = lim[m].wmin = NAN;
    return lim;
}

cm_status cm_augment_view(const cm_circuit *base, uint64_t mask, int n_subs, uint64_t seed, uint64_t view,
                          cm_circuit **out, int32_t *applied, int *n_applied, cm_error *err) {
    *out = NULL;
    if (n_applied) *n_applied = 0;
    if (n_subs < 1) return cm_error_set(err, CM_ERR_VALUE, "", 0, "n_subs must be at least 1");
    aug_scratch sc;
    card_lim *lim = limits_alloc(base);
    cm_status st = scratch_init(&sc, base->n_devices, base->nets.n) && lim
                       ? augment_one(base, lim, &sc, mask, n_subs, seed, view, out, applied, n_applied)
                       : CM_ERR_NOMEM;
    scratch_free(&sc);
    free(lim);
    if (st) return cm_error_set(err, st, "", 0, st == CM_ERR_NOMEM ? "out of memory" : "augmentation failed (code %d)", st);
    return CM_OK;
}

cm_status cm_augment_batch(const cm_circuit *const *bases, const int64_t *base_of, const uint64_t *mask_of,
                           int64_t V, int n_subs, uint64_t seed, cm_circuit **outs, int32_t *n_applied,
                           int32_t *status) {
    if (n_subs < 1) return CM_ERR_VALUE;
    /* the bases used, their card limits read once, and the largest sizes for the scratch */
    int64_t B = 0;
    for (int64_t v = 0; v < V; v++) if (base_of[v] + 1 > B) B = base_of[v] + 1;
    card_lim **lims = calloc((size_t)(B ? B : 1), sizeof *lims);
    if (!lims) return CM_ERR_NOMEM;
    cm_status worst = CM_OK;
    int32_t maxD = 0, maxN = 0;
    uint64_t any_mask = 0;
    for (int64_t v = 0; v < V; v++) any_mask |= mask_of[v];
    /* only the MOSFET size rules read the cards; without them the limits stay unread (NAN) */
    const int read_cards = (any_mask >> CM_AUG_MOS_PARALLEL & 1u) || (any_mask >> CM_AUG_MOS_SERIES & 1u);
    for (int64_t v = 0; v < V; v++) {
        int64_t b = base_of[v];
        if (lims[b]) continue;
        const cm_circuit *c = bases[b];
        if (!(lims[b] = limits_alloc(c))) { worst = CM_ERR_NOMEM; goto done; }
        for (int32_t m = 0; read_cards && m < c->n_models; m++)
            lims[b][m] = card_limits(cm_strtab_get(&c->strs, c->models[m].text));
        if (c->n_devices > maxD) maxD = c->n_devices;
        if (c->nets.n > maxN) maxN = c->nets.n;
    }
#pragma omp parallel
    {
        aug_scratch sc;
        int ok = scratch_init(&sc, maxD, maxN);
#pragma omp for schedule(dynamic, 4)
        for (int64_t v = 0; v < V; v++) {
            int na = 0;
            cm_status st = ok ? augment_one(bases[base_of[v]], lims[base_of[v]], &sc, mask_of[v], n_subs, seed,
                                            (uint64_t)v, &outs[v], NULL, &na)
                              : CM_ERR_NOMEM;
            if (!ok) outs[v] = NULL;
            n_applied[v] = na;
            status[v] = st;
            if (st) {
#pragma omp critical(cm_augment_status)
                worst = st;
            }
        }
        scratch_free(&sc);
    }
done:
    for (int64_t b = 0; b < B; b++) free(lims[b]);
    free(lims);
    return worst;
}
