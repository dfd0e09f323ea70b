/* _core.c: the CPython + NumPy binding of circml's C core. The only file that includes
 * Python.h. Each function: parse arguments, convert arrays to exact dtypes, check shapes,
 * allocate outputs, run the kernel without the GIL, map statuses to exceptions. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#define PY_ARRAY_UNIQUE_SYMBOL circml_ARRAY_API
#include <numpy/arrayobject.h>
#include <math.h>
#include <string.h>

#include "../circuit/circuit.h"
#include "../graph/graph.h"
#include "../augment/augment.h"

int cm_spice_module_init(PyObject *m);   /* _spice.c */
int cm_nn_module_init(PyObject *m);      /* _nn.c */
int cm_diffusion_module_init(PyObject *m);   /* _diffusion.c */

static PyObject *NetlistError;        /* ValueError subclass with .file, .line, .reason */
static PyObject *UnsafeNetlistError;  /* NetlistError subclass: refused by a safety rule */

#define CAPSULE_NAME "circml.circuit"

static void capsule_free(PyObject *cap) {
    cm_circuit *c = PyCapsule_GetPointer(cap, CAPSULE_NAME);
    cm_circuit_free(c);
}

static cm_circuit *get_circuit(PyObject *cap) {
    if (!PyCapsule_IsValid(cap, CAPSULE_NAME)) {
        PyErr_SetString(PyExc_TypeError, "expected a circuit handle");
        return NULL;
    }
    return PyCapsule_GetPointer(cap, CAPSULE_NAME);
}

static PyObject *raise_status(cm_status st, const cm_error *err) {
    if (st == CM_ERR_NOMEM) return PyErr_NoMemory();
    if (st == CM_ERR_IO && err->line == 0) {
        PyErr_Format(PyExc_OSError, "%s: %s", err->file, err->msg);
        return NULL;
    }
    PyObject *type = st == CM_ERR_REFUSED ? UnsafeNetlistError : NetlistError;
    PyObject *text = err->line > 0 ? PyUnicode_FromFormat("%s:%d: %s", err->file, err->line, err->msg)
                                   : PyUnicode_FromFormat("%s: %s", err->file, err->msg);
    if (!text) return NULL;
    PyObject *exc = PyObject_CallOneArg(type, text);
    Py_DECREF(text);
    if (!exc) return NULL;
    PyObject *file = PyUnicode_DecodeFSDefault(err->file);
    PyObject *line = PyLong_FromLong(err->line);
    PyObject *reason = PyUnicode_FromString(err->msg);
    if (file && line && reason) {
        PyObject_SetAttrString(exc, "file", file);
        PyObject_SetAttrString(exc, "line", line);
        PyObject_SetAttrString(exc, "reason", reason);
    }
    Py_XDECREF(file);
    Py_XDECREF(line);
    Py_XDECREF(reason);
    PyErr_SetObject(type, exc);
    Py_DECREF(exc);
    return NULL;
}

/* Holds converted option strings for the duration of a parse. */
typedef struct {
    PyObject *keep;         /* list keeping bytes objects alive */
    const char **inc;       /* include dirs */
    const char **mnames, **mtypes;
    const char **pnames;
    double *pvalues;
    int n_inc, n_map, n_par;
} opt_store;

static void opt_store_free(opt_store *s) {
    Py_XDECREF(s->keep);
    PyMem_Free(s->inc);
    PyMem_Free(s->mnames);
    PyMem_Free(s->mtypes);
    PyMem_Free(s->pnames);
    PyMem_Free(s->pvalues);
}

static const char *keep_fs(opt_store *s, PyObject *o) {
    PyObject *b = NULL;
    if (!PyUnicode_FSConverter(o, &b)) return NULL;
    if (PyList_Append(s->keep, b)) { Py_DECREF(b); return NULL; }
    Py_DECREF(b);
    return PyBytes_AS_STRING(b);
}

static int fill_options(cm_parse_options *opt, opt_store *s, PyObject *model_map, PyObject *include_dirs,
                        int allow_control, int allow_any_include, PyObject *params) {
    memset(s, 0, sizeof *s);
    cm_parse_options_default(opt);
    opt->allow_control = allow_control;
    opt->allow_any_include = allow_any_include;
    s->keep = PyList_New(0);
    if (!s->keep) return -1;
    if (include_dirs && include_dirs != Py_None) {
        PyObject *seq = PySequence_Fast(include_dirs, "include_dirs must be a list of folders");
        if (!seq) return -1;
        Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
        s->inc = PyMem_Calloc((size_t)n + 1, sizeof(char *));
        if (!s->inc) { Py_DECREF(seq); PyErr_NoMemory(); return -1; }
        for (Py_ssize_t i = 0; i < n; i++) {
            const char *p = keep_fs(s, PySequence_Fast_GET_ITEM(seq, i));
            if (!p) { Py_DECREF(seq); return -1; }
            s->inc[i] = p;
        }
        s->n_inc = (int)n;
        Py_DECREF(seq);
        opt->include_dirs = s->inc;
        opt->n_include_dirs = s->n_inc;
    }
    if (model_map && model_map != Py_None) {
        if (!PyDict_Check(model_map)) {
            PyErr_SetString(PyExc_TypeError, "model_map must be a dict {model name: 'nmos' | 'pmos' | 'npn' | 'pnp' | 'd'}");
            return -1;
        }
        Py_ssize_t n = PyDict_Size(model_map), pos = 0, i = 0;
        s->mnames = PyMem_Calloc((size_t)n + 1, sizeof(char *));
        s->mtypes = PyMem_Calloc((size_t)n + 1, sizeof(char *));
        if (!s->mnames || !s->mtypes) { PyErr_NoMemory(); return -1; }
        PyObject *k, *v;
        while (PyDict_Next(model_map, &pos, &k, &v)) {
            if (!PyUnicode_Check(k) || !PyUnicode_Check(v)) {
                PyErr_SetString(PyExc_TypeError, "model_map keys and values must be strings");
                return -1;
            }
            const char *ks = PyUnicode_AsUTF8(k), *vs = PyUnicode_AsUTF8(v);
            if (!ks || !vs) return -1;
            if (strcmp(vs, "nmos") && strcmp(vs, "pmos") && strcmp(vs, "npn") && strcmp(vs, "pnp") && strcmp(vs, "d")) {
                PyErr_Format(PyExc_ValueError, "model_map[%R] = %R: the type must be one of 'nmos', 'pmos', 'npn', 'pnp', 'd'", k, v);
                return -1;
            }
            s->mnames[i] = ks;
            s->mtypes[i] = vs;
            i++;
        }
        s->n_map = (int)i;
        opt->model_names = s->mnames;
        opt->model_types = s->mtypes;
        opt->n_model_map = s->n_map;
    }
    if (params && params != Py_None) {
        if (!PyDict_Check(params)) {
            PyErr_SetString(PyExc_TypeError, "params must be a dict {name: number}");
            return -1;
        }
        Py_ssize_t n = PyDict_Size(params), pos = 0, i = 0;
        s->pnames = PyMem_Calloc((size_t)n + 1, sizeof(char *));
        s->pvalues = PyMem_Calloc((size_t)n + 1, sizeof(double));
        if (!s->pnames || !s->pvalues) { PyErr_NoMemory(); return -1; }
        PyObject *k, *v;
        while (PyDict_Next(params, &pos, &k, &v)) {
            if (!PyUnicode_Check(k)) { PyErr_SetString(PyExc_TypeError, "params keys must be strings"); return -1; }
            PyObject *low = PyObject_CallMethod(k, "lower", NULL);
            if (!low) return -1;
            PyObject *b = PyUnicode_AsUTF8String(low);
            Py_DECREF(low);
            if (!b) return -1;
            if (PyList_Append(s->keep, b)) { Py_DECREF(b); return -1; }
            Py_DECREF(b);
            double d = PyFloat_AsDouble(v);
            if (d == -1.0 && PyErr_Occurred()) {
                PyErr_Format(PyExc_TypeError, "params[%R] must be a number, got %R", k, v);
                return -1;
            }
            s->pnames[i] = PyBytes_AS_STRING(b);
            s->pvalues[i] = d;
            i++;
        }
        s->n_par = (int)i;
        opt->override_names = s->pnames;
        opt->override_values = s->pvalues;
        opt->n_overrides = s->n_par;
    }
    return 0;
}

static PyObject *py_parse(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"text", "filename", "model_map", "include_dirs", "allow_control", "allow_any_include",
                             "params", "reference", NULL};
    Py_buffer text;
    PyObject *filename = Py_None, *model_map = Py_None, *include_dirs = Py_None, *params = Py_None;
    int allow_control = 0, allow_any_include = 0, reference = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "s*|OOOppOp", kwlist, &text, &filename, &model_map, &include_dirs,
                                     &allow_control, &allow_any_include, &params, &reference))
        return NULL;
    cm_parse_options opt;
    opt_store store;
    PyObject *fn_bytes = NULL, *result = NULL;
    if (fill_options(&opt, &store, model_map, include_dirs, allow_control, allow_any_include, params)) goto out;
    opt.reference_reader = reference;
    if (filename != Py_None && !PyUnicode_FSConverter(filename, &fn_bytes)) goto out;
    cm_circuit *c = NULL;
    cm_error err;
    cm_status st;
    const char *fn = fn_bytes ? PyBytes_AS_STRING(fn_bytes) : NULL;
    Py_BEGIN_ALLOW_THREADS
    st = cm_circuit_parse(text.buf, (size_t)text.len, fn, &opt, &c, &err);
    Py_END_ALLOW_THREADS
    if (st) { raise_status(st, &err); goto out; }
    result = PyCapsule_New(c, CAPSULE_NAME, capsule_free);
    if (!result) cm_circuit_free(c);
out:
    PyBuffer_Release(&text);
    Py_XDECREF(fn_bytes);
    opt_store_free(&store);
    return result;
}

static PyObject *py_read(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"path", "model_map", "include_dirs", "allow_control", "allow_any_include", "params",
                             "reference", NULL};
    PyObject *path_bytes = NULL, *model_map = Py_None, *include_dirs = Py_None, *result = NULL, *params = Py_None;
    int allow_control = 0, allow_any_include = 0, reference = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O&|OOppOp", kwlist, PyUnicode_FSConverter, &path_bytes, &model_map,
                                     &include_dirs, &allow_control, &allow_any_include, &params, &reference))
        return NULL;
    cm_parse_options opt;
    opt_store store;
    if (fill_options(&opt, &store, model_map, include_dirs, allow_control, allow_any_include, params)) goto out;
    opt.reference_reader = reference;
    cm_circuit *c = NULL;
    cm_error err;
    cm_status st;
    const char *p = PyBytes_AS_STRING(path_bytes);
    Py_BEGIN_ALLOW_THREADS
    st = cm_circuit_read(p, &opt, &c, &err);
    Py_END_ALLOW_THREADS
    if (st) {
        if (st == CM_ERR_IO && err.line == 0 && strcmp(err.file, p) == 0) {
            PyErr_Format(PyExc_FileNotFoundError, "cannot read netlist file '%s'", p);
            goto out;
        }
        raise_status(st, &err);
        goto out;
    }
    result = PyCapsule_New(c, CAPSULE_NAME, capsule_free);
    if (!result) cm_circuit_free(c);
out:
    Py_XDECREF(path_bytes);
    opt_store_free(&store);
    return result;
}

static PyObject *py_write(PyObject *self, PyObject *cap) {
    (void)self;
    cm_circuit *c = get_circuit(cap);
    if (!c) return NULL;
    char *out = NULL;
    size_t n = 0;
    cm_status st;
    Py_BEGIN_ALLOW_THREADS
    st = cm_circuit_write(c, &out, &n);
    Py_END_ALLOW_THREADS
    if (st) return PyErr_NoMemory();
    PyObject *s = PyUnicode_DecodeUTF8(out, (Py_ssize_t)n, "replace");
    free(out);
    return s;
}

static PyObject *new_array(int nd, npy_intp *dims, int type) {
    return PyArray_ZEROS(nd, dims, type, 0);
}

static PyObject *decode(const char *s) { return PyUnicode_DecodeUTF8(s, (Py_ssize_t)strlen(s), "replace"); }

static PyObject *str_or_none(const cm_strtab *t, int32_t id) {
    if (id < 0) Py_RETURN_NONE;
    return decode(cm_strtab_get(t, id));
}

static PyObject *strtab_list(const cm_strtab *t) {
    PyObject *l = PyList_New(t->n);
    if (!l) return NULL;
    for (int32_t i = 0; i < t->n; i++) {
        /* netlists need not be UTF-8 (a Latin-1 "µ" in a title): never fail on names */
        PyObject *s = PyUnicode_DecodeUTF8(cm_strtab_get(t, i), t->lens[i], "replace");
        if (!s) { Py_DECREF(l); return NULL; }
        PyList_SET_ITEM(l, i, s);
    }
    return l;
}

static PyObject *param_value_obj(const cm_circuit *c, const cm_param *p) {
    if (p->text >= 0) return decode(cm_strtab_get(&c->strs, p->text));
    return PyFloat_FromDouble(p->value);
}

/* Summary arrays of a circuit: everything Python needs to present it. */
static PyObject *py_info(PyObject *self, PyObject *cap) {
    (void)self;
    cm_circuit *c = get_circuit(cap);
    if (!c) return NULL;
    npy_intp D = c->n_devices, T = (npy_intp)c->n_terms, P = (npy_intp)c->n_params, D1 = D + 1;
    PyObject *kind = new_array(1, &D, NPY_INT32), *term_ptr = new_array(1, &D1, NPY_INT64);
    PyObject *term_net = new_array(1, &T, NPY_INT32), *value = new_array(1, &D, NPY_FLOAT64);
    PyObject *param_ptr = new_array(1, &D1, NPY_INT64), *param_value = new_array(1, &P, NPY_FLOAT64);
    PyObject *src_line = new_array(1, &D, NPY_INT32);
    PyObject *d = NULL;
    if (!kind || !term_ptr || !term_net || !value || !param_ptr || !param_value || !src_line) goto fail;
    int32_t *k = PyArray_DATA((PyArrayObject *)kind);
    int64_t *tp = PyArray_DATA((PyArrayObject *)term_ptr), *pp = PyArray_DATA((PyArrayObject *)param_ptr);
    double *v = PyArray_DATA((PyArrayObject *)value), *pv = PyArray_DATA((PyArrayObject *)param_value);
    int32_t *sl = PyArray_DATA((PyArrayObject *)src_line);
    memcpy(PyArray_DATA((PyArrayObject *)term_net), c->term_net, sizeof(int32_t) * (size_t)T);
    for (npy_intp i = 0; i < D; i++) {
        const cm_device *dv = &c->devices[i];
        k[i] = dv->kind;
        tp[i] = dv->term_begin;
        pp[i] = dv->param_begin;
        v[i] = dv->value;
        sl[i] = dv->src_line;
    }
    tp[D] = c->n_terms;
    pp[D] = c->n_params;
    for (npy_intp i = 0; i < P; i++) pv[i] = c->params[i].value;
    d = Py_BuildValue("{s:N,s:N,s:N,s:N,s:N,s:N,s:N}", "kind", kind, "term_ptr", term_ptr, "term_net", term_net,
                      "value", value, "param_ptr", param_ptr, "param_value", param_value, "src_line", src_line);
    return d;
fail:
    Py_XDECREF(kind); Py_XDECREF(term_ptr); Py_XDECREF(term_net); Py_XDECREF(value);
    Py_XDECREF(param_ptr); Py_XDECREF(param_value); Py_XDECREF(src_line);
    return NULL;
}

/* Names and texts: lists of str. */
static PyObject *py_names(PyObject *self, PyObject *cap) {
    (void)self;
    cm_circuit *c = get_circuit(cap);
    if (!c) return NULL;
    PyObject *nets = strtab_list(&c->nets), *devs = strtab_list(&c->devnames);
    PyObject *models = PyList_New(c->n_models), *globals = PyList_New(c->n_globals);
    PyObject *directives = PyList_New(c->n_directives), *gnets = PyList_New(c->n_global_nets);
    PyObject *dev_model = PyList_New(c->n_devices), *dev_text = PyList_New(c->n_devices);
    PyObject *dev_control = PyList_New(c->n_devices), *dev_file = PyList_New(c->n_devices);
    PyObject *param_name = PyList_New((Py_ssize_t)c->n_params), *param_text = PyList_New((Py_ssize_t)c->n_params);
    PyObject *files = strtab_list(&c->files);
    if (!nets || !devs || !models || !globals || !directives || !gnets || !dev_model || !dev_text || !dev_control ||
        !dev_file || !param_name || !param_text || !files)
        goto fail;
    for (int32_t i = 0; i < c->n_models; i++) {
        const cm_model *m = &c->models[i];
        PyObject *t = Py_BuildValue("(NNN)", decode(cm_strtab_get(&c->strs, m->name)),
                                    decode(cm_strtab_get(&c->strs, m->type)), decode(cm_strtab_get(&c->strs, m->text)));
        if (!t) goto fail;
        PyList_SET_ITEM(models, i, t);
    }
    for (int32_t i = 0; i < c->n_globals; i++) {
        PyObject *t = Py_BuildValue("(NN)", decode(cm_strtab_get(&c->strs, c->globals[i].name)),
                                    param_value_obj(c, &c->globals[i]));
        if (!t) goto fail;
        PyList_SET_ITEM(globals, i, t);
    }
    for (int32_t i = 0; i < c->n_directives; i++) {
        PyObject *t = decode(cm_strtab_get(&c->strs, c->directives[i]));
        if (!t) goto fail;
        PyList_SET_ITEM(directives, i, t);
    }
    for (int32_t i = 0; i < c->n_global_nets; i++) {
        PyObject *t = decode(cm_strtab_get(&c->nets, c->global_nets[i]));
        if (!t) goto fail;
        PyList_SET_ITEM(gnets, i, t);
    }
    for (int32_t i = 0; i < c->n_devices; i++) {
        const cm_device *dv = &c->devices[i];
        PyObject *a = str_or_none(&c->strs, dv->model), *b = str_or_none(&c->strs, dv->value_text);
        PyObject *cc = str_or_none(&c->strs, dv->control), *f = PyLong_FromLong(dv->src_file);
        if (!a || !b || !cc || !f) { Py_XDECREF(a); Py_XDECREF(b); Py_XDECREF(cc); Py_XDECREF(f); goto fail; }
        PyList_SET_ITEM(dev_model, i, a);
        PyList_SET_ITEM(dev_text, i, b);
        PyList_SET_ITEM(dev_control, i, cc);
        PyList_SET_ITEM(dev_file, i, f);
    }
    for (int64_t i = 0; i < c->n_params; i++) {
        PyObject *a = decode(cm_strtab_get(&c->strs, c->params[i].name));
        PyObject *b = str_or_none(&c->strs, c->params[i].text);
        if (!a || !b) { Py_XDECREF(a); Py_XDECREF(b); goto fail; }
        PyList_SET_ITEM(param_name, (Py_ssize_t)i, a);
        PyList_SET_ITEM(param_text, (Py_ssize_t)i, b);
    }
    return Py_BuildValue("{s:N,s:N,s:N,s:N,s:N,s:N,s:N,s:N,s:N,s:N,s:N,s:N,s:N,s:N,s:N}", "nets", nets, "devices", devs,
                         "models", models, "params", globals, "directives", directives, "global_nets", gnets,
                         "device_model", dev_model, "device_text", dev_text, "device_control", dev_control,
                         "device_file", dev_file, "param_name", param_name, "param_text", param_text, "files", files,
                         "title", str_or_none(&c->strs, c->title), "control", str_or_none(&c->strs, c->control_block));
fail:
    Py_XDECREF(nets); Py_XDECREF(devs); Py_XDECREF(models); Py_XDECREF(globals); Py_XDECREF(directives);
    Py_XDECREF(gnets); Py_XDECREF(dev_model); Py_XDECREF(dev_text); Py_XDECREF(dev_control); Py_XDECREF(dev_file);
    Py_XDECREF(param_name); Py_XDECREF(param_text); Py_XDECREF(files);
    return NULL;
}

static PyObject *py_counts(PyObject *self, PyObject *cap) {
    (void)self;
    cm_circuit *c = get_circuit(cap);
    if (!c) return NULL;
    return Py_BuildValue("(ii)", c->n_devices, c->nets.n);
}

static PyObject *py_net_roles(PyObject *self, PyObject *cap) {
    (void)self;
    cm_circuit *c = get_circuit(cap);
    if (!c) return NULL;
    npy_intp n = c->nets.n;
    PyObject *a = new_array(1, &n, NPY_INT8);
    if (!a) return NULL;
    cm_circuit_net_roles(c, PyArray_DATA((PyArrayObject *)a));
    return a;
}

static int parse_schema(const char *s, int *schema) {
    if (strcmp(s, "dice") == 0) *schema = CM_SCHEMA_DICE;
    else if (strcmp(s, "extended") == 0) *schema = CM_SCHEMA_EXTENDED;
    else {
        PyErr_Format(PyExc_ValueError, "schema must be 'dice' or 'extended', got '%s'", s);
        return -1;
    }
    return 0;
}

/* graph_batch(circuits, roles=None, schema="dice", value_features=False, reference=False) -> dict of arrays */
static PyObject *py_graph_batch(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"circuits", "roles", "schema", "value_features", "reference", NULL};
    PyObject *circs, *roles = Py_None;
    const char *schema_s = "dice";
    int value_features = 0, reference = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|Ospp", kwlist, &circs, &roles, &schema_s, &value_features, &reference))
        return NULL;
    cm_graph_options o = {0, value_features, NULL};
    if (parse_schema(schema_s, &o.schema)) return NULL;
    PyObject *seq = PySequence_Fast(circs, "circuits must be a sequence of circuit handles");
    if (!seq) return NULL;
    Py_ssize_t G = PySequence_Fast_GET_SIZE(seq);
    PyObject *rseq = NULL, *result = NULL;
    PyArrayObject **role_arrs = NULL;
    const cm_circuit **cs = PyMem_Calloc((size_t)G + 1, sizeof *cs);
    const int8_t **rs = PyMem_Calloc((size_t)G + 1, sizeof *rs);
    int64_t *noff = PyMem_Calloc((size_t)G + 1, sizeof *noff), *eoff = PyMem_Calloc((size_t)G + 1, sizeof *eoff);
    PyObject *dropped = NULL;
    PyObject *x = NULL, *nt = NULL, *ei = NULL, *et = NULL, *ea = NULL, *bt = NULL, *nr = NULL;
    if (!cs || !rs || !noff || !eoff) { PyErr_NoMemory(); goto out; }
    if (roles != Py_None) {
        rseq = PySequence_Fast(roles, "roles must be a sequence of int8 arrays (one per circuit) or None");
        if (!rseq) goto out;
        if (PySequence_Fast_GET_SIZE(rseq) != G) { PyErr_SetString(PyExc_ValueError, "roles: one array per circuit"); goto out; }
        role_arrs = PyMem_Calloc((size_t)G + 1, sizeof *role_arrs);
        if (!role_arrs) { PyErr_NoMemory(); goto out; }
    }
    npy_intp Gd = G;
    dropped = new_array(1, &Gd, NPY_INT64);
    if (!dropped) goto out;
    for (Py_ssize_t g = 0; g < G; g++) {
        cs[g] = get_circuit(PySequence_Fast_GET_ITEM(seq, g));
        if (!cs[g]) goto out;
        if (rseq) {
            PyObject *r = PySequence_Fast_GET_ITEM(rseq, g);
            if (r != Py_None) {
                role_arrs[g] = (PyArrayObject *)PyArray_FROM_OTF(r, NPY_INT8, NPY_ARRAY_IN_ARRAY);
                if (!role_arrs[g]) goto out;
                if (PyArray_NDIM(role_arrs[g]) != 1 || PyArray_DIM(role_arrs[g], 0) != cs[g]->nets.n) {
                    PyErr_Format(PyExc_ValueError, "roles[%zd] must have one entry per net (%d)", g, cs[g]->nets.n);
                    goto out;
                }
                rs[g] = PyArray_DATA(role_arrs[g]);
            }
        }
        int64_t nn, ne, dr;
        cm_graph_count(cs[g], &o, &nn, &ne, &dr);
        noff[g + 1] = noff[g] + nn;
        eoff[g + 1] = eoff[g] + ne;
        ((int64_t *)PyArray_DATA((PyArrayObject *)dropped))[g] = dr;
    }
    npy_intp N = noff[G], E = eoff[G], F = cm_graph_num_features(&o), K = cm_graph_num_edge_types(&o);
    npy_intp dx[2] = {N, F}, dei[2] = {2, E}, dea[2] = {E, K};
    x = new_array(2, dx, NPY_FLOAT32);
    nt = new_array(1, &N, NPY_INT64);
    ei = new_array(2, dei, NPY_INT64);
    et = new_array(1, &E, NPY_INT64);
    ea = new_array(2, dea, NPY_FLOAT32);
    bt = new_array(1, &N, NPY_INT64);
    nr = new_array(1, &N, NPY_INT64);
    if (!x || !nt || !ei || !et || !ea || !bt || !nr) goto out;
    cm_status st;
    Py_BEGIN_ALLOW_THREADS
    st = (reference ? cm_graph_build_batch_ref : cm_graph_build_batch)(cs, rs, G, &o, noff, eoff, PyArray_DATA((PyArrayObject *)x),
                              PyArray_DATA((PyArrayObject *)nt), PyArray_DATA((PyArrayObject *)ei),
                              PyArray_DATA((PyArrayObject *)et), PyArray_DATA((PyArrayObject *)ea),
                              PyArray_DATA((PyArrayObject *)bt), PyArray_DATA((PyArrayObject *)nr));
    Py_END_ALLOW_THREADS
    if (st == CM_ERR_NOMEM) { PyErr_NoMemory(); goto out; }
    if (st) { PyErr_SetString(PyExc_ValueError, "graph construction failed: bad options"); goto out; }
    npy_intp G1 = G + 1;
    PyObject *no = new_array(1, &G1, NPY_INT64), *eo = new_array(1, &G1, NPY_INT64);
    if (!no || !eo) { Py_XDECREF(no); Py_XDECREF(eo); goto out; }
    memcpy(PyArray_DATA((PyArrayObject *)no), noff, sizeof(int64_t) * (size_t)G1);
    memcpy(PyArray_DATA((PyArrayObject *)eo), eoff, sizeof(int64_t) * (size_t)G1);
    result = Py_BuildValue("{s:O,s:O,s:O,s:O,s:O,s:O,s:O,s:N,s:N,s:O}", "x", x, "node_type", nt, "edge_index", ei,
                           "edge_type", et, "edge_attr", ea, "batch", bt, "node_ref", nr, "node_offset", no,
                           "edge_offset", eo, "dropped", dropped);
out:
    Py_XDECREF(x); Py_XDECREF(nt); Py_XDECREF(ei); Py_XDECREF(et); Py_XDECREF(ea); Py_XDECREF(bt); Py_XDECREF(nr);
    Py_XDECREF(dropped);
    if (role_arrs) {
        for (Py_ssize_t g = 0; g < G; g++) Py_XDECREF(role_arrs[g]);
        PyMem_Free(role_arrs);
    }
    Py_XDECREF(rseq);
    Py_DECREF(seq);
    PyMem_Free(cs); PyMem_Free(rs); PyMem_Free(noff); PyMem_Free(eoff);
    return result;
}

/* collate(graphs) where each graph is (x, node_type, edge_index, edge_type, edge_attr). */
static PyObject *py_collate(PyObject *self, PyObject *arg) {
    (void)self;
    PyObject *seq = PySequence_Fast(arg, "collate expects a sequence of (x, node_type, edge_index, edge_type, edge_attr)");
    if (!seq) return NULL;
    Py_ssize_t G = PySequence_Fast_GET_SIZE(seq);
    PyArrayObject **arrs = PyMem_Calloc((size_t)(5 * G + 1), sizeof *arrs);
    const float **xs = PyMem_Calloc((size_t)G + 1, sizeof *xs), **eas = PyMem_Calloc((size_t)G + 1, sizeof *eas);
    const int64_t **nts = PyMem_Calloc((size_t)G + 1, sizeof *nts), **eis = PyMem_Calloc((size_t)G + 1, sizeof *eis);
    const int64_t **ets = PyMem_Calloc((size_t)G + 1, sizeof *ets);
    int64_t *noff = PyMem_Calloc((size_t)G + 1, sizeof *noff), *eoff = PyMem_Calloc((size_t)G + 1, sizeof *eoff);
    PyObject *result = NULL, *x = NULL, *nt = NULL, *ei = NULL, *et = NULL, *ea = NULL, *bt = NULL;
    npy_intp F = -1, K = -1;
    if (!arrs || !xs || !eas || !nts || !eis || !ets || !noff || !eoff) { PyErr_NoMemory(); goto out; }
    for (Py_ssize_t g = 0; g < G; g++) {
        PyObject *t = PySequence_Fast_GET_ITEM(seq, g);
        if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) != 5) {
            PyErr_Format(PyExc_TypeError, "graph %zd: expected a tuple (x, node_type, edge_index, edge_type, edge_attr)", g);
            goto out;
        }
        static const int types[5] = {NPY_FLOAT32, NPY_INT64, NPY_INT64, NPY_INT64, NPY_FLOAT32};
        static const int ndims[5] = {2, 1, 2, 1, 2};
        static const char *names[5] = {"x", "node_type", "edge_index", "edge_type", "edge_attr"};
        for (int k = 0; k < 5; k++) {
            PyArrayObject *a = (PyArrayObject *)PyArray_FROM_OTF(PyTuple_GET_ITEM(t, k), types[k], NPY_ARRAY_IN_ARRAY);
            if (!a) goto out;
            arrs[5 * g + k] = a;
            if (PyArray_NDIM(a) != ndims[k]) {
                PyErr_Format(PyExc_ValueError, "graph %zd: %s must have %d dimension(s)", g, names[k], ndims[k]);
                goto out;
            }
        }
        npy_intp n = PyArray_DIM(arrs[5 * g], 0), e = PyArray_DIM(arrs[5 * g + 3], 0);
        if (F < 0) { F = PyArray_DIM(arrs[5 * g], 1); K = PyArray_DIM(arrs[5 * g + 4], 1); }
        if (PyArray_DIM(arrs[5 * g], 1) != F || PyArray_DIM(arrs[5 * g + 4], 1) != K) {
            PyErr_Format(PyExc_ValueError, "graph %zd: feature widths differ from graph 0 (x: %zd vs %zd, edge_attr: %zd vs %zd)",
                         g, (Py_ssize_t)PyArray_DIM(arrs[5 * g], 1), (Py_ssize_t)F, (Py_ssize_t)PyArray_DIM(arrs[5 * g + 4], 1),
                         (Py_ssize_t)K);
            goto out;
        }
        if (PyArray_DIM(arrs[5 * g + 1], 0) != n || PyArray_DIM(arrs[5 * g + 2], 0) != 2 ||
            PyArray_DIM(arrs[5 * g + 2], 1) != e || PyArray_DIM(arrs[5 * g + 4], 0) != e) {
            PyErr_Format(PyExc_ValueError, "graph %zd: inconsistent shapes (node_type [N], edge_index [2, E], edge_attr [E, K])", g);
            goto out;
        }
        const int64_t *eiv = PyArray_DATA(arrs[5 * g + 2]);
        for (npy_intp j = 0; j < 2 * e; j++)
            if (eiv[j] < 0 || eiv[j] >= n) {
                PyErr_Format(PyExc_ValueError, "graph %zd: edge_index holds node %lld outside [0, %zd)", g, (long long)eiv[j], (Py_ssize_t)n);
                goto out;
            }
        xs[g] = PyArray_DATA(arrs[5 * g]);
        nts[g] = PyArray_DATA(arrs[5 * g + 1]);
        eis[g] = eiv;
        ets[g] = PyArray_DATA(arrs[5 * g + 3]);
        eas[g] = PyArray_DATA(arrs[5 * g + 4]);
        noff[g + 1] = noff[g] + n;
        eoff[g + 1] = eoff[g] + e;
    }
    if (F < 0) { F = 0; K = 0; }
    npy_intp N = noff[G], E = eoff[G], dx[2] = {N, F}, dei[2] = {2, E}, dea[2] = {E, K};
    x = new_array(2, dx, NPY_FLOAT32);
    nt = new_array(1, &N, NPY_INT64);
    ei = new_array(2, dei, NPY_INT64);
    et = new_array(1, &E, NPY_INT64);
    ea = new_array(2, dea, NPY_FLOAT32);
    bt = new_array(1, &N, NPY_INT64);
    if (!x || !nt || !ei || !et || !ea || !bt) goto out;
    Py_BEGIN_ALLOW_THREADS
    cm_graph_collate(G, (int)F, (int)K, xs, nts, eis, ets, eas, noff, eoff, PyArray_DATA((PyArrayObject *)x),
                     PyArray_DATA((PyArrayObject *)nt), PyArray_DATA((PyArrayObject *)ei), PyArray_DATA((PyArrayObject *)et),
                     PyArray_DATA((PyArrayObject *)ea), PyArray_DATA((PyArrayObject *)bt));
    Py_END_ALLOW_THREADS
    result = Py_BuildValue("{s:O,s:O,s:O,s:O,s:O,s:O}", "x", x, "node_type", nt, "edge_index", ei, "edge_type", et,
                           "edge_attr", ea, "batch", bt);
out:
    Py_XDECREF(x); Py_XDECREF(nt); Py_XDECREF(ei); Py_XDECREF(et); Py_XDECREF(ea); Py_XDECREF(bt);
    if (arrs) for (Py_ssize_t i = 0; i < 5 * G; i++) Py_XDECREF(arrs[i]);
    PyMem_Free(arrs); PyMem_Free(xs); PyMem_Free(eas); PyMem_Free(nts); PyMem_Free(eis); PyMem_Free(ets);
    PyMem_Free(noff); PyMem_Free(eoff);
    Py_DECREF(seq);
    return result;
}

/* augment(bases, base_of, masks, n_subs, seed) -> (list of handles, n_applied int32 array) */
static PyObject *py_augment(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *bases_o, *base_of_o, *masks_o;
    int n_subs;
    unsigned long long seed;
    if (!PyArg_ParseTuple(args, "OOOiK", &bases_o, &base_of_o, &masks_o, &n_subs, &seed)) return NULL;
    if (n_subs < 1) { PyErr_SetString(PyExc_ValueError, "n_subs must be at least 1"); return NULL; }
    PyObject *seq = PySequence_Fast(bases_o, "bases must be a sequence of circuit handles");
    if (!seq) return NULL;
    PyArrayObject *base_of = NULL, *masks = NULL, *n_applied = NULL, *status = NULL;
    const cm_circuit **bases = NULL;
    cm_circuit **outs = NULL;
    PyObject *result = NULL, *list = NULL;
    Py_ssize_t B = PySequence_Fast_GET_SIZE(seq);
    base_of = (PyArrayObject *)PyArray_FROM_OTF(base_of_o, NPY_INT64, NPY_ARRAY_IN_ARRAY);
    masks = (PyArrayObject *)PyArray_FROM_OTF(masks_o, NPY_UINT64, NPY_ARRAY_IN_ARRAY);
    if (!base_of || !masks) goto out;
    if (PyArray_NDIM(base_of) != 1 || PyArray_NDIM(masks) != 1 || PyArray_DIM(base_of, 0) != PyArray_DIM(masks, 0)) {
        PyErr_SetString(PyExc_ValueError, "base_of and masks must be 1-D arrays of the same length");
        goto out;
    }
    npy_intp V = PyArray_DIM(base_of, 0);
    const int64_t *bo = PyArray_DATA(base_of);
    for (npy_intp v = 0; v < V; v++)
        if (bo[v] < 0 || bo[v] >= B) {
            PyErr_Format(PyExc_ValueError, "base_of[%zd] = %lld is not a base index in [0, %zd)", (Py_ssize_t)v,
                         (long long)bo[v], B);
            goto out;
        }
    bases = PyMem_Calloc((size_t)B + 1, sizeof *bases);
    outs = PyMem_Calloc((size_t)V + 1, sizeof *outs);
    if (!bases || !outs) { PyErr_NoMemory(); goto out; }
    for (Py_ssize_t b = 0; b < B; b++)
        if (!(bases[b] = get_circuit(PySequence_Fast_GET_ITEM(seq, b)))) goto out;
    n_applied = (PyArrayObject *)PyArray_ZEROS(1, &V, NPY_INT32, 0);
    status = (PyArrayObject *)PyArray_ZEROS(1, &V, NPY_INT32, 0);
    if (!n_applied || !status) goto out;
    cm_status st;
    Py_BEGIN_ALLOW_THREADS
    st = cm_augment_batch(bases, bo, PyArray_DATA(masks), V, n_subs, (uint64_t)seed, outs, PyArray_DATA(n_applied),
                          PyArray_DATA(status));
    Py_END_ALLOW_THREADS
    if (st) {
        if (st == CM_ERR_NOMEM) PyErr_NoMemory();
        else PyErr_Format(PyExc_RuntimeError, "augmentation failed (status %d)", st);
        goto out;
    }
    list = PyList_New(V);
    if (!list) goto out;
    for (npy_intp v = 0; v < V; v++) {
        PyObject *cap = PyCapsule_New(outs[v], CAPSULE_NAME, capsule_free);
        if (!cap) goto out;
        outs[v] = NULL;
        PyList_SET_ITEM(list, v, cap);
    }
    result = Py_BuildValue("(OO)", list, n_applied);
out:
    if (outs) {
        for (npy_intp v = 0; base_of && v < PyArray_DIM(base_of, 0); v++) cm_circuit_free(outs[v]);
        PyMem_Free(outs);
    }
    PyMem_Free(bases);
    Py_XDECREF(list); Py_XDECREF(base_of); Py_XDECREF(masks); Py_XDECREF(n_applied); Py_XDECREF(status);
    Py_DECREF(seq);
    return result;
}

static PyObject *py_augment_rules(PyObject *self, PyObject *unused) {
    (void)self; (void)unused;
    int n = cm_augment_rule_count();
    PyObject *l = PyList_New(n);
    if (!l) return NULL;
    for (int r = 0; r < n; r++) {
        PyObject *t = Py_BuildValue("(sOs)", cm_augment_rule_name(r), cm_augment_rule_is_negative(r) ? Py_True : Py_False,
                                    cm_augment_rule_description(r));
        if (!t) { Py_DECREF(l); return NULL; }
        PyList_SET_ITEM(l, r, t);
    }
    return l;
}

static PyObject *py_kind_names(PyObject *self, PyObject *unused) {
    (void)self; (void)unused;
    PyObject *l = PyList_New(CM_DEV_KIND_COUNT);
    if (!l) return NULL;
    for (int i = 0; i < CM_DEV_KIND_COUNT; i++) PyList_SET_ITEM(l, i, PyUnicode_FromString(cm_device_kind_name(i)));
    return l;
}

static PyObject *py_parse_number(PyObject *self, PyObject *arg) {
    (void)self;
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(arg, &n);
    if (!s) return NULL;
    double v;
    if (cm_parse_number(s, (size_t)n, &v)) {
        PyErr_Format(PyExc_ValueError, "not a SPICE number: %R", arg);
        return NULL;
    }
    return PyFloat_FromDouble(v);
}

static PyObject *py_format_number(PyObject *self, PyObject *arg) {
    (void)self;
    double v = PyFloat_AsDouble(arg);
    if (v == -1.0 && PyErr_Occurred()) return NULL;
    char buf[40];
    cm_format_number(v, buf, sizeof buf);
    return PyUnicode_FromString(buf);
}

static PyObject *py_openmp_threads(PyObject *self, PyObject *unused) {
    (void)self; (void)unused;
#ifdef _OPENMP
    extern int omp_get_max_threads(void);
    return PyLong_FromLong(omp_get_max_threads());
#else
    return PyLong_FromLong(0);
#endif
}

static PyMethodDef methods[] = {
    {"parse", (PyCFunction)(void (*)(void))py_parse, METH_VARARGS | METH_KEYWORDS,
     "parse(text, filename=None, model_map=None, include_dirs=None, allow_control=False, allow_any_include=False, "
     "params=None, reference=False) -> handle; reference=True: the plain serial reader"},
    {"read", (PyCFunction)(void (*)(void))py_read, METH_VARARGS | METH_KEYWORDS,
     "read(path, model_map=None, include_dirs=None, allow_control=False, allow_any_include=False, params=None, "
     "reference=False) -> handle; reference=True: the plain serial reader"},
    {"write", py_write, METH_O, "write(handle) -> flat SPICE netlist text"},
    {"info", py_info, METH_O, "info(handle) -> dict of arrays describing devices"},
    {"names", py_names, METH_O, "names(handle) -> dict of names and texts"},
    {"counts", py_counts, METH_O, "counts(handle) -> (n_devices, n_nets)"},
    {"net_roles", py_net_roles, METH_O, "net_roles(handle) -> int8 array (0 signal, 1 ground, 2 supply)"},
    {"graph_batch", (PyCFunction)(void (*)(void))py_graph_batch, METH_VARARGS | METH_KEYWORDS,
     "graph_batch(handles, roles=None, schema='dice', value_features=False, reference=False) -> dict of arrays; "
     "reference=True: each circuit built serially"},
    {"collate", py_collate, METH_O, "collate([(x, node_type, edge_index, edge_type, edge_attr), ...]) -> dict"},
    {"augment", py_augment, METH_VARARGS,
     "augment(bases, base_of, masks, n_subs, seed) -> (views, n_applied): view v augments bases[base_of[v]] with rule mask masks[v]"},
    {"augment_rules", py_augment_rules, METH_NOARGS, "[(name, is_negative, description)] in rule-bit order"},
    {"kind_names", py_kind_names, METH_NOARGS, "device kind names, by kind code"},
    {"parse_number", py_parse_number, METH_O, "parse a SPICE number with SI suffix"},
    {"format_number", py_format_number, METH_O, "shortest text that reads back as the same float"},
    {"openmp_threads", py_openmp_threads, METH_NOARGS, "OpenMP threads available (0: built without OpenMP)"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "circml._core", "circml's C core.", -1, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__core(void) {
    import_array();
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    NetlistError = PyErr_NewExceptionWithDoc("circml._core.NetlistError",
                                             "A netlist could not be read. Attributes: file, line, reason.",
                                             PyExc_ValueError, NULL);
    UnsafeNetlistError = PyErr_NewExceptionWithDoc(
        "circml._core.UnsafeNetlistError",
        "A netlist was refused by a safety rule (.control block, include outside the allowed folders).", NetlistError, NULL);
    if (!NetlistError || !UnsafeNetlistError) return NULL;
    Py_INCREF(NetlistError);
    Py_INCREF(UnsafeNetlistError);
    PyModule_AddObject(m, "NetlistError", NetlistError);
    PyModule_AddObject(m, "UnsafeNetlistError", UnsafeNetlistError);
    if (cm_spice_module_init(m) || cm_nn_module_init(m) || cm_diffusion_module_init(m)) return NULL;
    PyModule_AddIntConstant(m, "SCHEMA_DICE", CM_SCHEMA_DICE);
    PyModule_AddIntConstant(m, "SCHEMA_EXTENDED", CM_SCHEMA_EXTENDED);
    return m;
}
