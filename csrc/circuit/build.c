/* build.c: constructing circuits device by device (see build.h). */
#include "build.h"
#include "../util/mem.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

cm_circuit *cm_circuit_new(int32_t expected_devices) {
    cm_circuit *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    if (expected_devices < 16) expected_devices = 16;
    if (cm_strtab_init(&c->strs, 64) || cm_strtab_init(&c->nets, expected_devices) ||
        cm_strtab_init(&c->devnames, expected_devices) || cm_strtab_init(&c->files, 4)) {
        cm_circuit_free(c);
        return NULL;
    }
    c->title = -1;
    c->control_block = -1;
    return c;
}

static int32_t copy_str(cm_circuit *dst, const cm_strtab *from, int32_t id) {
    if (id < 0) return -1;
    const char *s = cm_strtab_get(from, id);
    return cm_strtab_intern(&dst->strs, s, strlen(s), NULL);
}

cm_status cm_circuit_copy_header(cm_circuit *dst, const cm_circuit *src) {
    if (src->title >= 0 && (dst->title = copy_str(dst, &src->strs, src->title)) < 0) return CM_ERR_NOMEM;
    if (src->control_block >= 0 && (dst->control_block = copy_str(dst, &src->strs, src->control_block)) < 0)
        return CM_ERR_NOMEM;
    for (int32_t i = 0; i < src->n_models; i++) {
        CM_GROW(dst->models, dst->n_models, dst->cap_models, 8);
        cm_model *m = &dst->models[dst->n_models];
        m->name = copy_str(dst, &src->strs, src->models[i].name);
        m->type = copy_str(dst, &src->strs, src->models[i].type);
        m->text = copy_str(dst, &src->strs, src->models[i].text);
        if (m->name < 0 || m->type < 0 || m->text < 0) return CM_ERR_NOMEM;
        dst->n_models++;
    }
    for (int32_t i = 0; i < src->n_globals; i++) {
        CM_GROW(dst->globals, dst->n_globals, dst->cap_globals, 8);
        cm_param *p = &dst->globals[dst->n_globals];
        *p = src->globals[i];
        p->name = copy_str(dst, &src->strs, src->globals[i].name);
        p->text = copy_str(dst, &src->strs, src->globals[i].text);
        if (p->name < 0 || (src->globals[i].text >= 0 && p->text < 0)) return CM_ERR_NOMEM;
        dst->n_globals++;
    }
    for (int32_t i = 0; i < src->n_directives; i++) {
        CM_GROW(dst->directives, dst->n_directives, dst->cap_directives, 4);
        if ((dst->directives[dst->n_directives] = copy_str(dst, &src->strs, src->directives[i])) < 0) return CM_ERR_NOMEM;
        dst->n_directives++;
    }
    for (int32_t i = 0; i < src->n_global_nets; i++) {
        const char *n = cm_strtab_get(&src->nets, src->global_nets[i]);
        int32_t id = cm_strtab_intern(&dst->nets, n, strlen(n), NULL);
        if (id < 0) return CM_ERR_NOMEM;
        CM_GROW(dst->global_nets, dst->n_global_nets, dst->cap_global_nets, 4);
        dst->global_nets[dst->n_global_nets++] = id;
    }
    return CM_OK;
}

int32_t cm_circuit_net(cm_circuit *c, const char *name) {
    return cm_strtab_intern(&c->nets, name, strlen(name), NULL);
}

cm_status cm_circuit_add_device(cm_circuit *c, const cm_device_spec *s) {
    int inserted = 0;
    int32_t id = cm_strtab_intern(&c->devnames, s->name, strlen(s->name), &inserted);
    if (id < 0) return CM_ERR_NOMEM;
    if (!inserted) return CM_ERR_VALUE;
    CM_GROW(c->devices, c->n_devices, c->cap_devices, 64);
    cm_device *d = &c->devices[c->n_devices];
    memset(d, 0, sizeof *d);
    d->kind = s->kind;
    d->name = id;
    d->model = s->model ? cm_strtab_intern(&c->strs, s->model, strlen(s->model), NULL) : -1;
    d->value = s->value;
    d->value_text = s->value_text ? cm_strtab_intern(&c->strs, s->value_text, strlen(s->value_text), NULL) : -1;
    d->control = s->control ? cm_strtab_intern(&c->strs, s->control, strlen(s->control), NULL) : -1;
    d->src_file = s->src_file;
    d->src_line = s->src_line;
    if ((s->model && d->model < 0) || (s->value_text && d->value_text < 0) || (s->control && d->control < 0))
        return CM_ERR_NOMEM;
    d->term_begin = (int32_t)c->n_terms;
    d->n_terms = s->n_nets;
    for (int k = 0; k < s->n_nets; k++) {
        CM_GROW(c->term_net, c->n_terms, c->cap_terms, 256);
        c->term_net[c->n_terms++] = s->nets[k];
    }
    d->param_begin = (int32_t)c->n_params;
    d->n_params = s->n_params;
    for (int k = 0; k < s->n_params; k++) {
        CM_GROW(c->params, c->n_params, c->cap_params, 256);
        cm_param *p = &c->params[c->n_params];
        p->name = cm_strtab_intern(&c->strs, s->param_names[k], strlen(s->param_names[k]), NULL);
        p->value = s->param_values[k];
        p->text = s->param_texts && s->param_texts[k]
                      ? cm_strtab_intern(&c->strs, s->param_texts[k], strlen(s->param_texts[k]), NULL) : -1;
        if (p->name < 0 || (s->param_texts && s->param_texts[k] && p->text < 0)) return CM_ERR_NOMEM;
        c->n_params++;
    }
    c->n_devices++;
    return CM_OK;
}

cm_status cm_circuit_copy_device(cm_circuit *dst, const cm_circuit *src, int32_t i, const int32_t *net_map,
                                 const char *new_name, const int32_t *new_nets, double value_scale,
                                 const char *scale_param, double param_scale) {
    const cm_device *d = &src->devices[i];
    enum { MAXP = 64, MAXT = 8 };
    const char *pn[MAXP], *pt[MAXP];
    double pv[MAXP];
    int32_t nets[MAXT];
    if (d->n_params > MAXP || d->n_terms > MAXT) return CM_ERR_UNSUPPORTED;
    for (int k = 0; k < d->n_terms; k++) nets[k] = new_nets ? new_nets[k] : net_map[src->term_net[d->term_begin + k]];
    for (int k = 0; k < d->n_params; k++) {
        const cm_param *p = &src->params[d->param_begin + k];
        pn[k] = cm_strtab_get(&src->strs, p->name);
        pt[k] = p->text >= 0 ? cm_strtab_get(&src->strs, p->text) : NULL;
        pv[k] = p->value;
        if (scale_param && strcmp(pn[k], scale_param) == 0 && !pt[k]) pv[k] *= param_scale;
    }
    cm_device_spec s = {
        .kind = d->kind,
        .name = new_name ? new_name : cm_strtab_get(&src->devnames, d->name),
        .nets = nets,
        .n_nets = d->n_terms,
        .model = d->model >= 0 ? cm_strtab_get(&src->strs, d->model) : NULL,
        .value = d->value * value_scale,
        .value_text = d->value_text >= 0 ? cm_strtab_get(&src->strs, d->value_text) : NULL,
        .control = d->control >= 0 ? cm_strtab_get(&src->strs, d->control) : NULL,
        .param_names = pn,
        .param_values = pv,
        .param_texts = pt,
        .n_params = d->n_params,
        .src_file = -1,
        .src_line = 0,
    };
    return cm_circuit_add_device(dst, &s);
}
