/* circuit.c: freeing, writing back to SPICE, net roles. */
#include "circuit.h"
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cm_circuit_free(cm_circuit *c) {
    if (!c) return;
    cm_strtab_free(&c->strs);
    cm_strtab_free(&c->nets);
    cm_strtab_free(&c->devnames);
    cm_strtab_free(&c->files);
    free(c->devices);
    free(c->term_net);
    free(c->params);
    free(c->models);
    free(c->globals);
    free(c->global_nets);
    free(c->directives);
    free(c);
}

const char *cm_device_kind_name(int kind) {
    static const char *const names[CM_DEV_KIND_COUNT] = {
        "resistor", "capacitor", "inductor", "diode", "nmos", "pmos", "npn", "pnp",
        "vsource", "isource", "vcvs", "vccs", "cccs", "ccvs"};
    return kind >= 0 && kind < CM_DEV_KIND_COUNT ? names[kind] : "unknown";
}

/* ---- a growing output buffer ---- */
typedef struct { char *s; size_t n, cap; int oom; } sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 4096;
        while (nc < b->n + n + 1) nc *= 2;
        char *p = realloc(b->s, nc);
        if (!p) { b->oom = 1; return; }
        b->s = p;
        b->cap = nc;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}
static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }
static void sb_num(sbuf *b, double v) {
    char tmp[40];
    int k = cm_format_number(v, tmp, sizeof tmp);
    sb_put(b, tmp, (size_t)k);
}

static void write_param(sbuf *b, const cm_circuit *c, const cm_param *p) {
    sb_str(b, cm_strtab_get(&c->strs, p->name));
    sb_str(b, "=");
    if (p->text >= 0) sb_str(b, cm_strtab_get(&c->strs, p->text));
    else sb_num(b, p->value);
}

static void write_value(sbuf *b, const cm_circuit *c, const cm_device *d) {
    if (d->value_text >= 0) sb_str(b, cm_strtab_get(&c->strs, d->value_text));
    else sb_num(b, d->value);
}

cm_status cm_circuit_write(const cm_circuit *c, char **out, size_t *out_len) {
    sbuf b = {0};
    const char *title = c->title >= 0 ? cm_strtab_get(&c->strs, c->title) : "";
    sb_str(&b, title[0] ? title : "* circml netlist");
    sb_str(&b, "\n");
    if (c->n_global_nets) {
        sb_str(&b, ".global");
        for (int32_t i = 0; i < c->n_global_nets; i++) {
            sb_str(&b, " ");
            sb_str(&b, cm_strtab_get(&c->nets, c->global_nets[i]));
        }
        sb_str(&b, "\n");
    }
    for (int32_t i = 0; i < c->n_globals; i++) {
        sb_str(&b, ".param ");
        write_param(&b, c, &c->globals[i]);
        sb_str(&b, "\n");
    }
    for (int32_t i = 0; i < c->n_models; i++) {
        const cm_model *m = &c->models[i];
        sb_str(&b, ".model ");
        sb_str(&b, cm_strtab_get(&c->strs, m->name));
        sb_str(&b, " ");
        sb_str(&b, cm_strtab_get(&c->strs, m->type));
        /* wrap long cards, six parameters a line */
        const char *t = cm_strtab_get(&c->strs, m->text);
        int count = 0;
        while (*t) {
            while (*t == ' ') t++;
            if (!*t) break;
            /* a piece ends at a space outside {..} and '..': never wrap inside an expression */
            const char *e = t;
            int depth = 0, quoted = 0;
            for (; *e && (*e != ' ' || depth > 0 || quoted); e++) {
                if (*e == '\'') quoted = !quoted;
                else if (!quoted && *e == '{') depth++;
                else if (!quoted && *e == '}' && depth > 0) depth--;
            }
            sb_str(&b, count % 6 == 0 && count ? "\n+ " : " ");
            sb_put(&b, t, (size_t)(e - t));
            count++;
            t = e;
        }
        sb_str(&b, "\n");
    }
    for (int32_t i = 0; i < c->n_devices; i++) {
        const cm_device *d = &c->devices[i];
        sb_str(&b, cm_strtab_get(&c->devnames, d->name));
        for (int32_t k = 0; k < d->n_terms; k++) {
            sb_str(&b, " ");
            sb_str(&b, cm_strtab_get(&c->nets, c->term_net[d->term_begin + k]));
        }
        switch (d->kind) {
        case CM_DEV_RES: case CM_DEV_CAP: case CM_DEV_IND:
            if (d->model >= 0) { sb_str(&b, " "); sb_str(&b, cm_strtab_get(&c->strs, d->model)); }
            if (!isnan(d->value) || d->value_text >= 0) { sb_str(&b, " "); write_value(&b, c, d); }
            break;
        case CM_DEV_DIODE: case CM_DEV_NPN: case CM_DEV_PNP: case CM_DEV_NMOS: case CM_DEV_PMOS:
            sb_str(&b, " ");
            sb_str(&b, cm_strtab_get(&c->strs, d->model));
            if (d->kind != CM_DEV_NMOS && d->kind != CM_DEV_PMOS && (!isnan(d->value) || d->value_text >= 0)) {
                sb_str(&b, " ");   /* the area */
                write_value(&b, c, d);
            }
            break;
        case CM_DEV_VSRC: case CM_DEV_ISRC:
            if (d->value_text >= 0) { sb_str(&b, " "); sb_str(&b, cm_strtab_get(&c->strs, d->value_text)); }
            break;
        case CM_DEV_CCCS: case CM_DEV_CCVS:
            sb_str(&b, " ");
            sb_str(&b, cm_strtab_get(&c->strs, d->control));
            /* fall through */
        default:
            sb_str(&b, " ");
            write_value(&b, c, d);
        }
        for (int32_t k = 0; k < d->n_params; k++) {
            sb_str(&b, " ");
            write_param(&b, c, &c->params[d->param_begin + k]);
        }
        sb_str(&b, "\n");
    }
    for (int32_t i = 0; i < c->n_directives; i++) {
        sb_str(&b, cm_strtab_get(&c->strs, c->directives[i]));
        sb_str(&b, "\n");
    }
    if (c->control_block >= 0) sb_str(&b, cm_strtab_get(&c->strs, c->control_block));
    sb_str(&b, ".end\n");
    if (b.oom) { free(b.s); return CM_ERR_NOMEM; }
    *out = b.s;
    *out_len = b.n;
    return CM_OK;
}

static int name_is(const char *s, const char *lit) { return strcmp(s, lit) == 0; }
static int starts(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

void cm_circuit_net_roles(const cm_circuit *c, int8_t *roles) {
#pragma omp parallel for schedule(static) if (c->nets.n >= 65536)
    for (int32_t i = 0; i < c->nets.n; i++) {
        const char *s = cm_strtab_get(&c->nets, i);
        /* hierarchical nets (x1.vdd) are internal to an instance, not the supply */
        const char *leaf = s;
        int8_t r = CM_NET_SIGNAL;
        /* every name below starts with one of these: most nets are rejected on one byte */
        char c0 = leaf[0];
        if (c0 != '0' && c0 != 'g' && c0 != 'v' && c0 != 'a' && c0 != 'd') {
            roles[i] = r;
            continue;
        }
        if (name_is(leaf, "0") || name_is(leaf, "gnd") || name_is(leaf, "gnd!") || name_is(leaf, "vss") ||
            name_is(leaf, "vss!") || name_is(leaf, "agnd") || name_is(leaf, "dgnd"))
            r = CM_NET_GROUND;
        else if (starts(leaf, "vdd") || starts(leaf, "vcc") || starts(leaf, "avdd") || starts(leaf, "dvdd") ||
                 starts(leaf, "vpwr"))
            r = CM_NET_SUPPLY;
        roles[i] = r;
    }
}
