/* test_circuit.c: the netlist reader and writer tested in plain C, without Python.
 *
 * Good netlists parse to the expected devices, nets and values and survive a
 * cm_circuit_write -> cm_circuit_parse round trip unchanged; malformed ones fail with the
 * expected status at the expected line, with *out left NULL. Every prefix and a few thousand
 * seeded byte mutations of the good netlists either parse (and then round-trip) or fail
 * cleanly. Built with -fsanitize=address,undefined and run with ASAN_OPTIONS=detect_leaks=1
 * (tests/test_c_core.py), this also shows that no input leaks memory or reads out of bounds.
 *
 * Usage: test_circuit [workdir [datadir]]
 *   workdir: a writable empty folder for the .include / .lib tests (skipped without it)
 *   datadir: circml/data, whose circuits/<name>.sp are parsed and round-tripped
 * Prints "N passed, M failed"; the exit status is 0 only when nothing failed. */
#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../circuit/circuit.h"

static int n_pass, n_fail;

static int check_at(int ok, const char *file, int line, const char *fmt, ...) {
    if (ok) { n_pass++; return 1; }
    n_fail++;
    fprintf(stderr, "FAIL %s:%d: ", file, line);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 0;
}
#define CHECK(cond, ...) check_at((cond) ? 1 : 0, __FILE__, __LINE__, __VA_ARGS__)

/* ------------------------------------------------------------------ helpers */

static cm_circuit *parse_str(const char *text, const char *filename, const cm_parse_options *opt, cm_error *err) {
    cm_circuit *c = NULL;
    cm_status st = cm_circuit_parse(text, strlen(text), filename, opt, &c, err);
    if (st) return NULL;
    return c;
}

/* Parse text that must be good; reports the error when it is not. */
static cm_circuit *parse_good(const char *what, const char *text, const cm_parse_options *opt) {
    cm_error err;
    cm_circuit *c = parse_str(text, NULL, opt, &err);
    CHECK(c != NULL, "%s: unexpected error %d at line %d: %s", what, (int)err.status, err.line, err.msg);
    return c;
}

static int32_t dev_index(const cm_circuit *c, const char *name) {
    return cm_strtab_find(&c->devnames, name, strlen(name));
}

static const char *dev_net(const cm_circuit *c, int32_t d, int k) {
    return cm_strtab_get(&c->nets, c->term_net[c->devices[d].term_begin + k]);
}

static const char *str_or_null(const cm_strtab *t, int32_t id) { return id >= 0 ? cm_strtab_get(t, id) : NULL; }

static int same_str(const char *a, const char *b) { return (!a && !b) || (a && b && strcmp(a, b) == 0); }

static int same_num(double a, double b) { return (isnan(a) && isnan(b)) || a == b; }

/* Instance parameter `name` of device d: 1 and its value and text when present. */
static int dev_param(const cm_circuit *c, int32_t d, const char *name, double *value, const char **text) {
    const cm_device *dv = &c->devices[d];
    for (int32_t k = 0; k < dv->n_params; k++) {
        const cm_param *p = &c->params[dv->param_begin + k];
        if (strcmp(cm_strtab_get(&c->strs, p->name), name) == 0) {
            if (value) *value = p->value;
            if (text) *text = str_or_null(&c->strs, p->text);
            return 1;
        }
    }
    return 0;
}

/* Content equality of two circuits (what Circuit.__eq__ compares on the Python side).
 * Writes the first difference into why. */
static int circuits_equal(const cm_circuit *a, const cm_circuit *b, char *why, size_t wn) {
    if (a->n_devices != b->n_devices) { snprintf(why, wn, "%d vs %d devices", a->n_devices, b->n_devices); return 0; }
    for (int32_t i = 0; i < a->n_devices; i++) {
        const cm_device *x = &a->devices[i], *y = &b->devices[i];
        const char *nx = cm_strtab_get(&a->devnames, x->name), *ny = cm_strtab_get(&b->devnames, y->name);
        if (strcmp(nx, ny) || x->kind != y->kind || x->n_terms != y->n_terms || x->n_params != y->n_params) {
            snprintf(why, wn, "device %d: %s/%d vs %s/%d", i, nx, x->kind, ny, y->kind);
            return 0;
        }
        for (int k = 0; k < x->n_terms; k++)
            if (strcmp(dev_net(a, i, k), dev_net(b, i, k))) {
                snprintf(why, wn, "%s terminal %d: %s vs %s", nx, k, dev_net(a, i, k), dev_net(b, i, k));
                return 0;
            }
        if (!same_str(str_or_null(&a->strs, x->model), str_or_null(&b->strs, y->model)) ||
            !same_str(str_or_null(&a->strs, x->value_text), str_or_null(&b->strs, y->value_text)) ||
            !same_str(str_or_null(&a->strs, x->control), str_or_null(&b->strs, y->control)) ||
            !same_num(x->value, y->value)) {
            snprintf(why, wn, "%s: model/value/text/control differ (%.17g vs %.17g)", nx, x->value, y->value);
            return 0;
        }
        for (int32_t k = 0; k < x->n_params; k++) {
            const cm_param *p = &a->params[x->param_begin + k], *q = &b->params[y->param_begin + k];
            if (strcmp(cm_strtab_get(&a->strs, p->name), cm_strtab_get(&b->strs, q->name)) ||
                !same_num(p->value, q->value) ||
                !same_str(str_or_null(&a->strs, p->text), str_or_null(&b->strs, q->text))) {
                snprintf(why, wn, "%s: parameter %s differs", nx, cm_strtab_get(&a->strs, p->name));
                return 0;
            }
        }
    }
    if (a->n_models != b->n_models) { snprintf(why, wn, "%d vs %d models", a->n_models, b->n_models); return 0; }
    for (int32_t i = 0; i < a->n_models; i++) {
        const cm_model *x = &a->models[i], *y = &b->models[i];
        if (strcmp(cm_strtab_get(&a->strs, x->name), cm_strtab_get(&b->strs, y->name)) ||
            strcmp(cm_strtab_get(&a->strs, x->type), cm_strtab_get(&b->strs, y->type)) ||
            strcmp(cm_strtab_get(&a->strs, x->text), cm_strtab_get(&b->strs, y->text))) {
            snprintf(why, wn, "model %s differs", cm_strtab_get(&a->strs, x->name));
            return 0;
        }
    }
    if (a->n_globals != b->n_globals) { snprintf(why, wn, "%d vs %d .params", a->n_globals, b->n_globals); return 0; }
    for (int32_t i = 0; i < a->n_globals; i++) {
        const cm_param *p = &a->globals[i], *q = &b->globals[i];
        if (strcmp(cm_strtab_get(&a->strs, p->name), cm_strtab_get(&b->strs, q->name)) || !same_num(p->value, q->value) ||
            !same_str(str_or_null(&a->strs, p->text), str_or_null(&b->strs, q->text))) {
            snprintf(why, wn, ".param %s differs", cm_strtab_get(&a->strs, p->name));
            return 0;
        }
    }
    if (a->n_directives != b->n_directives) { snprintf(why, wn, "directive counts differ"); return 0; }
    for (int32_t i = 0; i < a->n_directives; i++)
        if (strcmp(cm_strtab_get(&a->strs, a->directives[i]), cm_strtab_get(&b->strs, b->directives[i]))) {
            snprintf(why, wn, "directive %d differs", i);
            return 0;
        }
    if (a->n_global_nets != b->n_global_nets) { snprintf(why, wn, ".global counts differ"); return 0; }
    for (int32_t i = 0; i < a->n_global_nets; i++)
        if (strcmp(cm_strtab_get(&a->nets, a->global_nets[i]), cm_strtab_get(&b->nets, b->global_nets[i]))) {
            snprintf(why, wn, ".global %d differs", i);
            return 0;
        }
    if (a->nets.n != b->nets.n) { snprintf(why, wn, "%d vs %d nets", a->nets.n, b->nets.n); return 0; }
    for (int32_t i = 0; i < a->nets.n; i++) {
        const char *s = cm_strtab_get(&a->nets, i);
        if (cm_strtab_find(&b->nets, s, strlen(s)) < 0) { snprintf(why, wn, "net %s missing", s); return 0; }
    }
    return 1;
}

/* Write c, read it back with the same options, compare; the second write must equal the
 * first. Returns 1 when all holds. */
static int round_trip(const char *what, const cm_circuit *c, const cm_parse_options *opt, int report) {
    char *text = NULL, *text2 = NULL;
    size_t n = 0, n2 = 0;
    if (cm_circuit_write(c, &text, &n) != CM_OK) { if (report) CHECK(0, "%s: write failed", what); return 0; }
    int ok = strlen(text) == n;
    cm_error err;
    cm_circuit *back = NULL;
    cm_status st = cm_circuit_parse(text, n, NULL, opt, &back, &err);
    char why[1200] = "";
    if (st) {
        snprintf(why, sizeof why, "re-read failed at line %d: %s", err.line, err.msg);
        ok = 0;
    } else {
        ok = ok && circuits_equal(c, back, why, sizeof why);
        if (ok && cm_circuit_write(back, &text2, &n2) == CM_OK) {
            ok = n == n2 && memcmp(text, text2, n) == 0;
            if (!ok) snprintf(why, sizeof why, "second write differs from the first");
        }
    }
    if (report) CHECK(ok, "%s: round trip: %s\n--- written:\n%s---", what, why, text);
    free(text);
    free(text2);
    cm_circuit_free(back);
    return ok;
}

/* ------------------------------------------------------------------ numbers */

static void test_numbers(void) {
    static const struct { const char *s; double v; } good[] = {
        {"1", 1}, {"1k", 1e3}, {"1K", 1e3}, {"10uF", 1e-5}, {"1kohm", 1e3}, {"2.5meg", 2.5e6}, {"2.5MEG", 2.5e6},
        {"1mil", 25.4e-6}, {"1e-3", 1e-3}, {"1.5E+3", 1.5e3}, {"3g", 3e9}, {"1t", 1e12}, {"4f", 4e-15},
        {"5p", 5e-12}, {"7n", 7e-9}, {"2m", 2e-3}, {"2ms", 2e-3}, {"-1.5u", -1.5e-6}, {"+3", 3}, {".5", 0.5},
        {"5.", 5}, {"1e3k", 1e6}, {"100nH", 1e-7}, {"0.18u", 0.18e-6}, {"1x", 1e6}, {"12345678901234567890", 12345678901234567890.0},
        {"0.000000000000000000001", 1e-21}, {"1.7976931348623157e308", 1.7976931348623157e308},
        {"0.00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000015", 1.5e-91},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        double v = NAN;
        int r = cm_parse_number(good[i].s, strlen(good[i].s), &v);
        CHECK(r == 0 && v == good[i].v, "cm_parse_number(\"%s\") = %d, %.17g; expected %.17g", good[i].s, r, v, good[i].v);
    }
    static const char *const bad[] = {"", "k", "-", "+", ".", "1.2.3k", "1-2", "1e+", "1k2", "abc", "1 k", "1_0", "{1}", "1.5e3.2"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        double v;
        CHECK(cm_parse_number(bad[i], strlen(bad[i]), &v) != 0, "cm_parse_number(\"%s\") accepted a bad number", bad[i]);
    }
    /* length-bounded: the text need not be NUL-terminated */
    double v = 0;
    CHECK(cm_parse_number("12k;junk", 3, &v) == 0 && v == 12e3, "cm_parse_number reads only len characters");
    /* format -> parse gives the same bits, for a spread of magnitudes */
    uint64_t s = 0x9e3779b97f4a7c15ull;
    int bad_rt = 0;
    for (int i = 0; i < 20000; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        double d;
        uint64_t bits = s;
        memcpy(&d, &bits, sizeof d);
        if (!isfinite(d)) continue;
        char buf[40];
        cm_format_number(d, buf, sizeof buf);
        double back = NAN;
        if (cm_parse_number(buf, strlen(buf), &back) != 0 || memcmp(&back, &d, sizeof d) != 0) {
            if (!bad_rt) CHECK(0, "format/parse round trip of %.17g gave '%s' -> %.17g", d, buf, back);
            bad_rt++;
        }
    }
    CHECK(bad_rt == 0, "%d doubles did not survive cm_format_number -> cm_parse_number", bad_rt);
}

/* ------------------------------------------------------------------ good netlists */

static const char *const GOOD_HIER =
    "* hierarchy test\n"
    ".global vdd\n"
    ".param wn=1u wp={2*wn} lmin=45n\n"
    ".model nch nmos level=54 vth0=0.4\n"
    ".model pch PMOS (level=54\n"
    "+ vth0=-0.4)\n"
    ".subckt inv in out wn=wn wp=wp\n"
    "M1 out in 0 0 nch w={wn} l={lmin}\n"
    "M2 out in vdd vdd pch w={wp} l={lmin}\n"
    ".ends inv\n"
    ".subckt buf a y\n"
    "X1 a mid inv wn=2u\n"
    "X2 mid y inv\n"
    ".ends\n"
    ".subckt top i o\n"
    "Xb i o buf\n"
    "Cl o gnd 10f\n"
    ".ends\n"
    "Xt in out top\n"
    "Vdd vdd 0 DC 1.0\n"
    "Vin in 0 PULSE(0 1 0 10p 10p 1n 2n)\n"
    ".end\n";

static void test_hierarchy(void) {
    cm_circuit *c = parse_good("hierarchy", GOOD_HIER, NULL);
    if (!c) return;
    CHECK(c->n_devices == 7, "hierarchy: %d devices, expected 7", c->n_devices);
    int32_t d = dev_index(c, "m.xt.xb.x1.m1");
    CHECK(d >= 0, "hierarchy: no device m.xt.xb.x1.m1");
    if (d >= 0) {
        CHECK(c->devices[d].kind == CM_DEV_NMOS, "m.xt.xb.x1.m1 is not nmos");
        CHECK(strcmp(dev_net(c, d, 0), "xt.xb.mid") == 0, "drain of m.xt.xb.x1.m1 is %s", dev_net(c, d, 0));
        CHECK(strcmp(dev_net(c, d, 1), "in") == 0, "gate of m.xt.xb.x1.m1 is %s", dev_net(c, d, 1));
        double w = 0, l = 0;
        CHECK(dev_param(c, d, "w", &w, NULL) && w == 2e-6, "w of m.xt.xb.x1.m1 = %g (override 2u)", w);
        CHECK(dev_param(c, d, "l", &l, NULL) && l == 45e-9, "l of m.xt.xb.x1.m1 = %g", l);
        CHECK(c->devices[d].src_line == 8, "m.xt.xb.x1.m1 comes from line %d, expected 8", c->devices[d].src_line);
    }
    d = dev_index(c, "m.xt.xb.x2.m2");
    if (CHECK(d >= 0, "no device m.xt.xb.x2.m2")) {
        double w = 0;
        CHECK(dev_param(c, d, "w", &w, NULL) && w == 2e-6, "w of m.xt.xb.x2.m2 = %g (default {2*wn})", w);
        CHECK(strcmp(dev_net(c, d, 2), "vdd") == 0, ".global vdd is not renamed: %s", dev_net(c, d, 2));
        CHECK(c->devices[d].kind == CM_DEV_PMOS, "PMOS type (upper case in .model) not resolved");
    }
    d = dev_index(c, "c.xt.cl");
    if (CHECK(d >= 0, "no device c.xt.cl")) {
        CHECK(strcmp(dev_net(c, d, 1), "0") == 0, "gnd not read as 0: %s", dev_net(c, d, 1));
        CHECK(c->devices[d].value == 10e-15, "c.xt.cl = %g", c->devices[d].value);
    }
    d = dev_index(c, "vin");
    if (CHECK(d >= 0, "no device vin")) {
        CHECK(isnan(c->devices[d].value), "PULSE source has a DC value");
        CHECK(same_str(str_or_null(&c->strs, c->devices[d].value_text), "pulse(0 1 0 10p 10p 1n 2n)"),
              "vin spec kept as '%s'", str_or_null(&c->strs, c->devices[d].value_text));
    }
    d = dev_index(c, "vdd");
    CHECK(d >= 0 && c->devices[d].value == 1.0, "vdd DC value");
    CHECK(cm_strtab_find(&c->nets, "xt.xb.mid", 9) >= 0, "net xt.xb.mid missing");
    CHECK(c->n_globals == 3 && c->globals[1].value == 2e-6, ".param wp={2*wn}");
    CHECK(c->n_models == 2, "%d models", c->n_models);
    round_trip("hierarchy", c, NULL, 1);
    cm_circuit_free(c);
}

static const char *const GOOD_MIX =
    "mixed devices\n"
    ".param rv=2k unk_text={nothere*2}\n"
    ".model qn npn is=1e-16 bf=100\n"
    ".model qp pnp\n"
    ".model dd D is=1e-14\n"
    "R1 a b 10uF ; trailing units, comment\n"
    "R2 a b {rv*2} $ ngspice comment\n"
    "R3 a b {nothere}\n"
    "C1 a 0 1p m=2\n"
    "L1 a 0 1n\n"
    "Q1 c b e qn\n"
    "Q2 c b e sub qp 2\n"
    "D1 a k dd\n"
    "V1 in 0 DC 1.5 AC 1 SIN(0 1 1k)\n"
    "I1 a 0 {rv/1k}\n"
    "E1 o 0 a b 10\n"
    "G1 o 0 a b 1m\n"
    "F1 o 0 v1 2\n"
    "H1 o 0 v1 1k\n"
    "* a comment line\n"
    "R4 a\n"
    "+ b\n"
    "+ 3k\n"
    ".option reltol=1e-4\n"
    ".tran 1n 100n\n"
    ".end\n";

static void test_devices(void) {
    cm_circuit *c = parse_good("devices", GOOD_MIX, NULL);
    if (!c) return;
    int32_t d;
    d = dev_index(c, "r1");
    CHECK(d >= 0 && c->devices[d].value == 1e-5, "r1 = 10uF");
    d = dev_index(c, "r2");
    CHECK(d >= 0 && c->devices[d].value == 4e3, "r2 = {rv*2}");
    d = dev_index(c, "r3");
    CHECK(d >= 0 && isnan(c->devices[d].value) && same_str(str_or_null(&c->strs, c->devices[d].value_text), "{nothere}"),
          "r3 keeps its unevaluable text");
    d = dev_index(c, "q2");
    CHECK(d >= 0 && c->devices[d].kind == CM_DEV_PNP && c->devices[d].n_terms == 4 && c->devices[d].value == 2,
          "q2: pnp with substrate and area");
    d = dev_index(c, "q1");
    CHECK(d >= 0 && c->devices[d].kind == CM_DEV_NPN && c->devices[d].n_terms == 3, "q1: npn without substrate");
    d = dev_index(c, "d1");
    CHECK(d >= 0 && c->devices[d].kind == CM_DEV_DIODE, "d1 is a diode (type D upper case)");
    d = dev_index(c, "v1");
    CHECK(d >= 0 && c->devices[d].value == 1.5, "v1 DC 1.5");
    d = dev_index(c, "i1");
    CHECK(d >= 0 && c->devices[d].value == 2.0, "i1 = {rv/1k}");
    d = dev_index(c, "f1");
    CHECK(d >= 0 && c->devices[d].kind == CM_DEV_CCCS && same_str(str_or_null(&c->strs, c->devices[d].control), "v1"),
          "f1 senses v1");
    d = dev_index(c, "r4");
    CHECK(d >= 0 && c->devices[d].value == 3e3 && c->devices[d].src_line == 21, "r4 over continuation lines, line 21");
    CHECK(c->n_directives == 2, "%d directives kept", c->n_directives);
    CHECK(c->n_globals == 2 && isnan(c->globals[1].value) && c->globals[1].text >= 0, "unevaluable .param kept as text");
    round_trip("devices", c, NULL, 1);
    cm_circuit_free(c);
}

static const char *const GOOD_PARAMS =
    "params and expressions\n"
    ".param vdd_v=1.2 gain = vdd_v * 10 k2=max(2,3) ratio='vdd_v/2'\n"
    ".model dd d\n"
    ".model qn npn\n"
    ".subckt cell a b params: r0=1k scale=2\n"
    ".params rl = r0 * scale rq={rl/4}\n"
    "R1 a mid {rl}\n"
    "R2 mid b {rq}\n"
    "C1 mid 0 {1p*scale} m=2\n"
    "E1 e 0 mid 0 {gain}\n"
    "D1 mid 0 dd {scale}\n"
    "Q1 b mid 0 qn {scale*2}\n"
    "X1 b mid 0 0 lib_nfet w={scale*1u} l=0.15\n"
    ".ends cell\n"
    "X1 in out cell\n"
    "X2 out 0 cell r0=10k\n"
    "Vs in 0 DC {vdd_v} AC 1 SIN(0 {vdd_v/2} 1k)\n"
    "G1 out 0 in 0 'gain/1k'\n"
    "R9 out 0 {undefined_thing*2}\n"
    ".end\n";

static const char *const PDK_NAMES[] = {"lib_nfet"};
static const char *const PDK_TYPES[] = {"nmos"};

static void test_params(void) {
    cm_parse_options opt;
    cm_parse_options_default(&opt);
    opt.model_names = PDK_NAMES;
    opt.model_types = PDK_TYPES;
    opt.n_model_map = 1;
    cm_circuit *c = parse_good("params", GOOD_PARAMS, &opt);
    if (!c) return;
    struct { const char *dev; double v; } want[] = {
        {"r.x1.r1", 2e3}, {"r.x1.r2", 500}, {"c.x1.c1", 2e-12}, {"e.x1.e1", 12}, {"d.x1.d1", 2}, {"q.x1.q1", 4},
        {"r.x2.r1", 20e3}, {"r.x2.r2", 5e3}, {"vs", 1.2}, {"g1", 0.012},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        int32_t d = dev_index(c, want[i].dev);
        CHECK(d >= 0 && fabs(c->devices[d].value - want[i].v) <= 1e-12 * fabs(want[i].v), "%s = %.17g, expected %g",
              want[i].dev, d >= 0 ? c->devices[d].value : NAN, want[i].v);
    }
    int32_t d = dev_index(c, "x.x2.x1");
    double w = 0;
    CHECK(d >= 0 && c->devices[d].kind == CM_DEV_NMOS && dev_param(c, d, "w", &w, NULL) && w == 2e-6,
          "subcircuit-wrapped transistor through the model map");
    d = dev_index(c, "vs");
    CHECK(d >= 0 && same_str(str_or_null(&c->strs, c->devices[d].value_text), "dc 1.2 ac 1 sin(0 0.6 1k)"),
          "source spec with expressions substituted: '%s'", d >= 0 ? str_or_null(&c->strs, c->devices[d].value_text) : "");
    d = dev_index(c, "r9");
    CHECK(d >= 0 && isnan(c->devices[d].value) && same_str(str_or_null(&c->strs, c->devices[d].value_text), "{undefined_thing*2}"),
          "unknown name keeps the text");
    CHECK(c->n_globals == 4 && c->globals[1].value == 12 && c->globals[2].value == 3 && c->globals[3].value == 0.6,
          "bare and quoted .param expressions");
    round_trip("params", c, &opt, 1);
    cm_circuit_free(c);
}

static void test_options(void) {
    /* model map: PDK names and a subcircuit-wrapped transistor */
    const char *names[] = {"nfet_01v8", "sky130_fd_pr__pfet_01v8"};
    const char *types[] = {"nmos", "pmos"};
    cm_parse_options opt;
    cm_parse_options_default(&opt);
    opt.model_names = names;
    opt.model_types = types;
    opt.n_model_map = 2;
    const char *text = "t\nM1 d g s b nfet_01v8 w=1 l=0.15\nXM2 d g s b sky130_fd_pr__pfet_01v8 w=1 l=0.15\n";
    cm_circuit *c = parse_good("model map", text, &opt);
    if (c) {
        CHECK(c->n_devices == 2 && c->devices[0].kind == CM_DEV_NMOS && c->devices[1].kind == CM_DEV_PMOS,
              "model map kinds");
        round_trip("model map", c, &opt, 1);
        cm_circuit_free(c);
    }
    cm_error err;
    c = parse_str(text, NULL, NULL, &err);
    CHECK(!c && err.status == CM_ERR_PARSE && err.line == 2, "without the model map: status %d line %d", err.status, err.line);
    cm_circuit_free(c);

    /* .control: refused, then kept */
    const char *ctl = "t\nR1 a 0 1k\n.control\nrun\n.endc\n";
    c = parse_str(ctl, NULL, NULL, &err);
    CHECK(!c && err.status == CM_ERR_REFUSED && err.line == 3, ".control refused: status %d line %d", err.status, err.line);
    cm_circuit_free(c);
    cm_parse_options_default(&opt);
    opt.allow_control = 1;
    c = parse_good(".control allowed", ctl, &opt);
    if (c) {
        CHECK(c->control_block >= 0 && strstr(cm_strtab_get(&c->strs, c->control_block), "run"), ".control text kept");
        char *w = NULL;
        size_t n;
        CHECK(cm_circuit_write(c, &w, &n) == CM_OK && strstr(w, ".control\nrun\n.endc\n"), "written .control block");
        free(w);
        cm_circuit_free(c);
    }
    /* parameter overrides */
    const char *on[] = {"rv"};
    double ov[] = {5e3};
    cm_parse_options_default(&opt);
    opt.override_names = on;
    opt.override_values = ov;
    opt.n_overrides = 1;
    c = parse_good("override", "t\n.param rv=1k\nR1 a 0 {rv}\n", &opt);
    if (c) CHECK(c->devices[0].value == 5e3, "override rv=5k gives %g", c->devices[0].value);
    cm_circuit_free(c);
    c = parse_str("t\n.param other=1\n", NULL, &opt, &err);
    CHECK(!c && err.status == CM_ERR_VALUE, "override of an undefined parameter: status %d", err.status);
    cm_circuit_free(c);
    /* no error record at all must still work */
    c = NULL;
    CHECK(cm_circuit_parse("t\nR1 a\n", 7, NULL, NULL, &c, NULL) == CM_ERR_PARSE && !c, "parse with err == NULL");
}

/* ------------------------------------------------------------------ malformed netlists */

typedef struct {
    const char *name;
    const char *text;
    cm_status status;
    int line;
    const char *phrase;
} bad_case;

#define MODELS ".model n nmos\n.model p pmos\n.model dd d\n.model qn npn\n"

static const bad_case BAD[] = {
    {"mosfet 3 nets", "t\n" MODELS "M1 d g s n\n", CM_ERR_PARSE, 6, "needs 4 nets"},
    {"unknown model", "t\nM1 d g s b foo\n", CM_ERR_PARSE, 2, "has no .model line"},
    {"wrong model type", "t\n" MODELS "M1 d g s b dd\n", CM_ERR_PARSE, 6, "expected nmos or pmos"},
    {"R without value", "t\nR1 a b\n", CM_ERR_PARSE, 2, "has no value"},
    {"bad number", "t\nR1 a b 1.2.3k\n", CM_ERR_PARSE, 2, "expected a number"},
    {"bad expression", "t\n\nR1 a b {1+*2}\n", CM_ERR_PARSE, 3, "bad expression"},
    {"unterminated brace", "t\nR1 a b {1+2\n", CM_ERR_PARSE, 2, "unterminated"},
    {"continuation first", "t\n+ R1 a b 1\n", CM_ERR_PARSE, 2, "continuation line"},
    {"unknown subckt", "t\nX1 a b foo\n", CM_ERR_PARSE, 2, "unknown subcircuit"},
    {"port count", "t\n.subckt s a b\nR1 a b 1\n.ends\nX1 a s\n", CM_ERR_PARSE, 5, "has 2 ports"},
    {"duplicate device", "t\nR1 a b 1\nr1 c d 2\n", CM_ERR_PARSE, 3, "duplicate device name"},
    {"duplicate model", "t\n.model n nmos\n.model N pmos\n", CM_ERR_PARSE, 3, "defined twice"},
    {"duplicate subckt", "t\n.subckt s a\n.ends\n.subckt S b\n.ends\n", CM_ERR_PARSE, 4, "defined twice"},
    {"subckt without ends", "t\nR0 a 0 1\n.subckt s a\nR1 a 0 1\n", CM_ERR_PARSE, 3, "no matching .ends"},
    {"ends without subckt", "t\nR1 a 0 1\n.ends\n", CM_ERR_PARSE, 3, ".ends without"},
    {"nested subckt", "t\n.subckt s a\n.subckt q b\n.ends\n.ends\n", CM_ERR_UNSUPPORTED, 3, "nested"},
    {"recursive subckt", "t\n.subckt s a\nX1 a s\n.ends\nX1 n s\n", CM_ERR_PARSE, 3, "instantiates itself"},
    {"unknown dot-command", "t\n.frobnicate 1\n", CM_ERR_PARSE, 2, "unknown dot-command"},
    {"B element", "t\nB1 a 0 V=1\n", CM_ERR_UNSUPPORTED, 2, "not supported"},
    {"K element", "t\nL1 a 0 1n\nL2 b 0 1n\nK1 L1 L2 0.9\n", CM_ERR_UNSUPPORTED, 4, "not supported"},
    {"E with POLY", "t\nE1 a 0 POLY(1) b 0 0 1\n", CM_ERR_UNSUPPORTED, 2, "poly form"},
    {"control without endc", "t\nR1 a 0 1\n.control\nrun\n", CM_ERR_PARSE, 3, "no matching .endc"},
    {"NUL byte", "t\nR1 a b 1\nR2 a b 2\n", CM_ERR_PARSE, 3, "NUL byte"},   /* NUL patched in below */
    {"token after mosfet params", "t\n" MODELS "M1 d g s b n w=1u l=1u junk\n", CM_ERR_PARSE, 6, "unexpected 'junk'"},
    {".param without =", "t\n.param a 1\n", CM_ERR_PARSE, 2, "expected name=value"},
    {".param missing value", "t\n.param a= b =1\n", CM_ERR_PARSE, 2, "has no value"},
    {"error in subckt body", "t\n.subckt s a\nR1 a 0 1\nR2 a 0 1.2.3\n.ends\nX1 n s\n", CM_ERR_PARSE, 4, "'1.2.3'"},
    {"number out of range", "t\nR1 a 0 1e400\n", CM_ERR_PARSE, 2, "out of range"},
    {"expression to nan", "t\nC1 a 0 {sqrt(-1)}\n", CM_ERR_PARSE, 2, "evaluates to nan"},
    {"missing include", "t\n.include surely_missing_file.lib\n", CM_ERR_IO, 2, "cannot open include file"},
};

static void test_bad(void) {
    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
        const bad_case *b = &BAD[i];
        size_t n = strlen(b->text);
        char *text = malloc(n + 1);
        memcpy(text, b->text, n + 1);
        if (strcmp(b->name, "NUL byte") == 0) text[strlen("t\nR1 a b 1\nR2 a")] = '\0';
        cm_parse_options opt;
        cm_parse_options_default(&opt);
        opt.allow_control = strstr(b->name, "endc") != NULL;
        cm_circuit *c = (cm_circuit *)1;
        cm_error err;
        cm_status st = cm_circuit_parse(text, n, NULL, &opt, &c, &err);
        CHECK(st == b->status && err.status == b->status, "%s: status %d, expected %d (%s)", b->name, st, b->status, err.msg);
        CHECK(c == NULL, "%s: *out not NULL on failure", b->name);
        CHECK(err.line == b->line, "%s: line %d, expected %d (%s)", b->name, err.line, b->line, err.msg);
        CHECK(strcmp(err.file, "<string>") == 0, "%s: file '%s'", b->name, err.file);
        CHECK(strstr(err.msg, b->phrase) != NULL, "%s: message '%s' lacks '%s'", b->name, err.msg, b->phrase);
        free(text);
    }
    cm_error err;
    cm_circuit *c = NULL;
    CHECK(cm_circuit_read("/nonexistent/dir/x.sp", NULL, &c, &err) == CM_ERR_IO && err.line == 0 && !c,
          "missing top file: CM_ERR_IO at line 0");
}

/* ------------------------------------------------------------------ includes */

static int write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    fputs(text, f);
    return fclose(f);
}

static void test_includes(const char *work) {
    char p[4096], top[4096], inc_dir[4096];
    snprintf(p, sizeof p, "%s/sub", work);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/other", work);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/sub/models.lib", work);
    write_file(p, "* models\n.model n1 nmos vth0=0.4\n\n.model p1 pmos\n");
    snprintf(p, sizeof p, "%s/sub/corners.lib", work);
    write_file(p, ".lib tt\n.model nc nmos vth0=0.4\n.endl tt\n.lib ff\n.model nc nmos vth0=0.3\n.endl ff\n");
    snprintf(p, sizeof p, "%s/sub/broken.lib", work);
    write_file(p, "* broken\n.model ok nmos\n\nR1 a b\n");
    snprintf(p, sizeof p, "%s/other/far.lib", work);
    write_file(p, ".model far nmos\n");
    snprintf(top, sizeof top, "%s/top.sp", work);
    snprintf(inc_dir, sizeof inc_dir, "%s/other", work);

    cm_error err;
    cm_circuit *c = parse_str("t\n.include sub/models.lib\nM1 d g s b n1 w=1u l=1u\n", top, NULL, &err);
    CHECK(c && c->n_devices == 1 && c->devices[0].kind == CM_DEV_NMOS, ".include relative to the file: %s", c ? "" : err.msg);
    if (c) round_trip(".include", c, NULL, 1);
    cm_circuit_free(c);

    c = parse_str("t\n.lib sub/corners.lib ff\nM1 d g s b nc\n", top, NULL, &err);
    CHECK(c && c->n_models == 1 && strcmp(cm_strtab_get(&c->strs, c->models[0].text), "vth0=0.3") == 0,
          ".lib file section: %s", c ? "" : err.msg);
    cm_circuit_free(c);
    c = parse_str("t\n\n.lib sub/corners.lib ss\n", top, NULL, &err);
    CHECK(!c && err.status == CM_ERR_PARSE && err.line == 3 && strstr(err.msg, "section 'ss' not found"),
          "missing .lib section: line %d: %s", err.line, err.msg);
    cm_circuit_free(c);

    /* an error inside an included file names that file and its line */
    c = parse_str("t\n.include sub/broken.lib\n", top, NULL, &err);
    CHECK(!c && err.line == 4 && strstr(err.file, "broken.lib") && strstr(err.msg, "has no value"),
          "error in included file: %s:%d: %s", err.file, err.line, err.msg);
    cm_circuit_free(c);

    /* outside the allowed folders: refused; allowed with include_dirs or allow_any_include */
    snprintf(p, sizeof p, "%s/sub/top.sp", work);
    const char *far = "t\n.include ../other/far.lib\nM1 d g s b far\n";
    c = parse_str(far, p, NULL, &err);
    CHECK(!c && err.status == CM_ERR_REFUSED && err.line == 2, "include outside refused: %d %s", err.status, err.msg);
    cm_circuit_free(c);
    cm_parse_options opt;
    cm_parse_options_default(&opt);
    const char *dirs[] = {inc_dir};
    opt.include_dirs = dirs;
    opt.n_include_dirs = 1;
    c = parse_str(far, p, &opt, &err);
    CHECK(c != NULL, "include_dirs allows it: %s", c ? "" : err.msg);
    cm_circuit_free(c);
    cm_parse_options_default(&opt);
    opt.allow_any_include = 1;
    c = parse_str(far, p, &opt, &err);
    CHECK(c != NULL, "allow_any_include allows it: %s", c ? "" : err.msg);
    cm_circuit_free(c);

    /* an include cycle ends in an error, not a stack overflow */
    snprintf(p, sizeof p, "%s/sub/cycle.lib", work);
    write_file(p, ".include cycle.lib\n");
    c = parse_str("t\n.include sub/cycle.lib\n", top, NULL, &err);
    CHECK(!c && err.status == CM_ERR_PARSE && strstr(err.msg, "nested deeper"), "include cycle: %s", err.msg);
    cm_circuit_free(c);
}

/* ------------------------------------------------------------------ the library */

static void test_library(const char *data) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/circuits", data);
    DIR *dp = opendir(dir);
    CHECK(dp != NULL, "cannot open %s", dir);
    if (!dp) return;
    cm_parse_options opt;
    cm_parse_options_default(&opt);
    const char *dirs[] = {data};
    opt.include_dirs = dirs;
    opt.n_include_dirs = 1;
    int count = 0;
    struct dirent *e;
    while ((e = readdir(dp))) {
        size_t n = strlen(e->d_name);
        if (n < 4 || strcmp(e->d_name + n - 3, ".sp")) continue;
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        cm_circuit *c = NULL;
        cm_error err;
        cm_status st = cm_circuit_read(path, &opt, &c, &err);
        CHECK(st == CM_OK, "%s: %s:%d: %s", e->d_name, err.file, err.line, err.msg);
        if (st) continue;
        CHECK(c->n_devices >= 3, "%s: only %d devices", e->d_name, c->n_devices);
        round_trip(e->d_name, c, NULL, 1);
        cm_circuit_free(c);
        count++;
    }
    closedir(dp);
    CHECK(count >= 10, "only %d library circuits found in %s", count, dir);
}

/* ------------------------------------------------------------------ robustness */

#ifndef MAX_SHOWN
#define MAX_SHOWN 3
#endif

/* Any text: either a circuit that round-trips, or a failure with a message and *out NULL. */
static void robust_one(const char *what, const char *text, size_t n, int *bad) {
    cm_circuit *c = (cm_circuit *)1;
    cm_error err;
    cm_parse_options opt;
    cm_parse_options_default(&opt);
    opt.model_names = PDK_NAMES;
    opt.model_types = PDK_TYPES;
    opt.n_model_map = 1;
    cm_status st = cm_circuit_parse(text, n, NULL, &opt, &c, &err);
    if (st == CM_OK) {
        if (!c || !round_trip(what, c, &opt, 0)) {
            if (*bad < MAX_SHOWN) {
                fprintf(stderr, "---- input:\n%.*s\n----\n", (int)n, text);
                if (c) round_trip(what, c, &opt, 1);
            }
            ++*bad;
        }
        cm_circuit_free(c);
    } else if (c != NULL || err.msg[0] == 0 || err.status != st || st == CM_ERR_NOMEM) {
        if (*bad < MAX_SHOWN) CHECK(0, "%s: status %d with out=%p, message '%s'", what, st, (void *)c, err.msg);
        ++*bad;
    }
}

#ifndef N_MUTATIONS
#define N_MUTATIONS 3000   /* per seed netlist; -DN_MUTATIONS=300000 for a long hunt */
#endif

static void test_robustness(void) {
    const char *seeds[] = {GOOD_HIER, GOOD_MIX, GOOD_PARAMS};
    int bad = 0;
    for (int k = 0; k < 3; k++) {
        const char *s = seeds[k];
        size_t n = strlen(s);
        /* every prefix: cuts inside cards, braces and subcircuits */
        for (size_t len = 0; len <= n; len++) robust_one("prefix", s, len, &bad);
        /* seeded mutations: overwrite, delete or duplicate bytes */
        char *buf = malloc(2 * n + 16);
        uint64_t r = 88172645463325252ull + (uint64_t)k;
        static const char alphabet[] = " \n+=*{}()'.;$0123456789kmuxabcdegilmnpqrsvx\t\"\\";
        for (int it = 0; it < N_MUTATIONS; it++) {
            memcpy(buf, s, n);
            size_t m = n;
            int edits = 1 + it % 4;
            for (int e = 0; e < edits; e++) {
                r ^= r << 13; r ^= r >> 7; r ^= r << 17;
                size_t at = (size_t)(r % (m ? m : 1));
                int op = (int)((r >> 32) % 3);
                char ch = alphabet[(r >> 40) % (sizeof alphabet - 1)];
                if (op == 0 && m) buf[at] = ch;
                else if (op == 1 && m) { memmove(buf + at, buf + at + 1, m - at - 1); m--; }
                else if (m < 2 * n) { memmove(buf + at + 1, buf + at, m - at); buf[at] = ch; m++; }
            }
            robust_one("mutation", buf, m, &bad);
        }
        free(buf);
    }
    CHECK(bad == 0, "%d malformed inputs were mishandled (first ones above)", bad);
}

int main(int argc, char **argv) {
    test_numbers();
    test_hierarchy();
    test_devices();
    test_params();
    test_options();
    test_bad();
    if (argc > 1) test_includes(argv[1]);
    if (argc > 2) test_library(argv[2]);
    test_robustness();
    printf("%d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}
