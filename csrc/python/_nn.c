/* _nn.c: the CPython binding of csrc/nn (the DICE encoder and its loss). Part of circml._core.
 * Parameters, gradients and running statistics are exposed as NumPy arrays that view the
 * model's own memory (each keeps the model alive). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#define PY_ARRAY_UNIQUE_SYMBOL circml_ARRAY_API
#define NO_IMPORT_ARRAY
#include <numpy/arrayobject.h>
#include <string.h>

#include "../nn/dice.h"
#include "../nn/loss.h"

#define DICE_CAPSULE "circml.dice"

static void dice_capsule_free(PyObject *cap) { cm_dice_free(PyCapsule_GetPointer(cap, DICE_CAPSULE)); }

static cm_dice *get_dice(PyObject *cap) {
    if (!PyCapsule_IsValid(cap, DICE_CAPSULE)) {
        PyErr_SetString(PyExc_TypeError, "expected a DICE model handle");
        return NULL;
    }
    return PyCapsule_GetPointer(cap, DICE_CAPSULE);
}

static PyObject *view(PyObject *owner, real *data, npy_intp n) {
    PyObject *a = PyArray_SimpleNewFromData(1, &n, NPY_FLOAT32, data);
    if (!a) return NULL;
    Py_INCREF(owner);
    if (PyArray_SetBaseObject((PyArrayObject *)a, owner)) { Py_DECREF(a); return NULL; }
    return a;
}

static PyObject *py_dice_init(PyObject *self, PyObject *args) {
    (void)self;
    cm_dice_config c;
    unsigned long long seed;
    c.conv = 0; c.heads = 1; c.gat_concat = 1;   /* DICE's own layers unless asked */
    if (!PyArg_ParseTuple(args, "iiiiifffK|iii", &c.node_in, &c.edge_in, &c.hidden, &c.out, &c.layers, &c.dropout, &c.bn_eps,
                          &c.bn_momentum, &seed, &c.conv, &c.heads, &c.gat_concat))
        return NULL;
    cm_dice *m;
    cm_error err;
    if (cm_dice_init(&m, &c, (uint64_t)seed, &err)) {
        PyErr_SetString(err.status == CM_ERR_NOMEM ? PyExc_MemoryError : PyExc_ValueError, err.msg);
        return NULL;
    }
    PyObject *cap = PyCapsule_New(m, DICE_CAPSULE, dice_capsule_free);
    if (!cap) cm_dice_free(m);
    return cap;
}

static PyObject *py_dice_arrays(PyObject *self, PyObject *cap) {
    (void)self;
    cm_dice *m = get_dice(cap);
    if (!m) return NULL;
    int64_t nb;
    real *buf = cm_dice_buffers(m, &nb);
    PyObject *names = PyList_New(0);
    if (!names) return NULL;
    const char *name;
    for (int i = 0; cm_dice_tensor(m, i, &name) >= 0; i++) {
        int64_t size = cm_dice_tensor(m, i, &name);
        PyObject *t = Py_BuildValue("(sL)", name, (long long)size);
        if (!t || PyList_Append(names, t)) { Py_XDECREF(t); Py_DECREF(names); return NULL; }
        Py_DECREF(t);
    }
    return Py_BuildValue("{s:N,s:N,s:N,s:N}", "params", view(cap, cm_dice_params(m), cm_dice_num_params(m)), "grads",
                         view(cap, cm_dice_grads(m), cm_dice_num_params(m)), "buffers", view(cap, buf, nb), "tensors", names);
}

static PyArrayObject *as(PyObject *o, int type, int ndim, const char *what) {
    PyArrayObject *a = (PyArrayObject *)PyArray_FROM_OTF(o, type, NPY_ARRAY_IN_ARRAY);
    if (a && PyArray_NDIM(a) != ndim) {
        PyErr_Format(PyExc_ValueError, "%s must have %d dimension(s), got %d", what, ndim, PyArray_NDIM(a));
        Py_DECREF(a);
        return NULL;
    }
    return a;
}

/* forward(model, x[N,Fn], edge_attr[E,Fe], edge_index[2,E], node_graph[N], edge_graph[E], G, training, seed) -> y */
static PyObject *py_dice_forward(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *cap, *xo, *eao, *eio, *ngo, *ego;
    long long G;
    int training;
    unsigned long long seed;
    if (!PyArg_ParseTuple(args, "OOOOOOLpK", &cap, &xo, &eao, &eio, &ngo, &ego, &G, &training, &seed)) return NULL;
    cm_dice *m = get_dice(cap);
    if (!m) return NULL;
    const cm_dice_config *c = cm_dice_get_config(m);
    PyArrayObject *x = as(xo, NPY_FLOAT32, 2, "x"), *ea = as(eao, NPY_FLOAT32, 2, "edge_attr");
    PyArrayObject *ei = as(eio, NPY_INT64, 2, "edge_index"), *ng = as(ngo, NPY_INT64, 1, "batch");
    PyArrayObject *eg = as(ego, NPY_INT64, 1, "edge batch");
    PyObject *y = NULL;
    if (!x || !ea || !ei || !ng || !eg) goto out;
    npy_intp N = PyArray_DIM(x, 0), E = PyArray_DIM(ea, 0);
    if (PyArray_DIM(x, 1) != c->node_in || PyArray_DIM(ea, 1) != c->edge_in) {
        PyErr_Format(PyExc_ValueError, "the model expects %d node features and %d edge features, got %zd and %zd",
                     c->node_in, c->edge_in, (Py_ssize_t)PyArray_DIM(x, 1), (Py_ssize_t)PyArray_DIM(ea, 1));
        goto out;
    }
    if (PyArray_DIM(ei, 0) != 2 || PyArray_DIM(ei, 1) != E || PyArray_DIM(ng, 0) != N || PyArray_DIM(eg, 0) != E) {
        PyErr_SetString(PyExc_ValueError, "shapes: edge_index [2, E], batch [N], edge batch [E] with E = len(edge_attr)");
        goto out;
    }
    npy_intp dims[2] = {(npy_intp)G, c->out};
    y = PyArray_ZEROS(2, dims, NPY_FLOAT32, 0);
    if (!y) goto out;
    const int64_t *eiv = PyArray_DATA(ei);
    cm_error err;
    cm_status st;
    Py_BEGIN_ALLOW_THREADS
    st = cm_dice_forward(m, PyArray_DATA((PyArrayObject *)y), PyArray_DATA(x), PyArray_DATA(ea), eiv, eiv + E,
                         PyArray_DATA(ng), PyArray_DATA(eg), N, E, (int64_t)G, training, (uint64_t)seed, &err);
    Py_END_ALLOW_THREADS
    if (st) {
        PyErr_SetString(st == CM_ERR_NOMEM ? PyExc_MemoryError : PyExc_ValueError, err.msg);
        Py_CLEAR(y);
    }
out:
    Py_XDECREF(x); Py_XDECREF(ea); Py_XDECREF(ei); Py_XDECREF(ng); Py_XDECREF(eg);
    return y;
}

static PyObject *py_dice_backward(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *cap, *dyo;
    if (!PyArg_ParseTuple(args, "OO", &cap, &dyo)) return NULL;
    cm_dice *m = get_dice(cap);
    if (!m) return NULL;
    PyArrayObject *dy = as(dyo, NPY_FLOAT32, 2, "dy");
    if (!dy) return NULL;
    cm_error err;
    cm_status st;
    Py_BEGIN_ALLOW_THREADS
    st = cm_dice_backward(m, PyArray_DATA(dy), &err);
    Py_END_ALLOW_THREADS
    Py_DECREF(dy);
    if (st) { PyErr_SetString(PyExc_RuntimeError, err.msg); return NULL; }
    Py_RETURN_NONE;
}

static PyObject *py_dice_zero_grad(PyObject *self, PyObject *cap) {
    (void)self;
    cm_dice *m = get_dice(cap);
    if (!m) return NULL;
    cm_dice_zero_grad(m);
    Py_RETURN_NONE;
}

static PyObject *py_dice_adamw(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *cap;
    float lr, b1, b2, eps, wd;
    if (!PyArg_ParseTuple(args, "Offfff", &cap, &lr, &b1, &b2, &eps, &wd)) return NULL;
    cm_dice *m = get_dice(cap);
    if (!m) return NULL;
    Py_BEGIN_ALLOW_THREADS
    cm_dice_adamw(m, lr, b1, b2, eps, wd);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

/* contrastive_loss(y[G,D], group[G], negative[G], tau, tau_p, tau_n) -> (loss, dy[G,D], n_pairs) */
static PyObject *py_contrastive_loss(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *yo, *go, *no;
    double tau, tau_p, tau_n;
    if (!PyArg_ParseTuple(args, "OOOddd", &yo, &go, &no, &tau, &tau_p, &tau_n)) return NULL;
    if (tau <= 0 || tau_p <= 0 || tau_n <= 0) { PyErr_SetString(PyExc_ValueError, "temperatures must be positive"); return NULL; }
    PyArrayObject *y = as(yo, NPY_FLOAT32, 2, "embeddings"), *g = as(go, NPY_INT64, 1, "group");
    PyArrayObject *ng = as(no, NPY_UINT8, 1, "negative");
    PyObject *result = NULL, *dy = NULL;
    real *work = NULL;
    if (!y || !g || !ng) goto out;
    npy_intp G = PyArray_DIM(y, 0), D = PyArray_DIM(y, 1);
    if (PyArray_DIM(g, 0) != G || PyArray_DIM(ng, 0) != G) {
        PyErr_SetString(PyExc_ValueError, "group and negative need one entry per embedding row");
        goto out;
    }
    npy_intp dims[2] = {G, D};
    dy = PyArray_ZEROS(2, dims, NPY_FLOAT32, 0);
    /* workspace: u[G,D], norm[G], sim[G,G], du[G,D], ds[G,G], anchor[G] doubles */
    size_t nw = (size_t)(2 * G * D + G + 2 * G * G) * sizeof(real) + (size_t)G * sizeof(double) + 64;
    work = PyMem_Calloc(1, nw);
    if (!dy || !work) { if (!work) PyErr_NoMemory(); goto out; }
    real *u = work, *norm = u + G * D, *sim = norm + G, *du = sim + G * G, *ds = du + G * D;
    double *anchor = (double *)(((uintptr_t)(ds + G * G) + 7) & ~(uintptr_t)7);
    double loss;
    int64_t pairs;
    Py_BEGIN_ALLOW_THREADS
    l2norm_forward(u, norm, PyArray_DATA(y), G, (int)D);
    loss = dice_loss_forward(sim, anchor, u, PyArray_DATA(g), PyArray_DATA(ng), G, (int)D, tau, tau_p, tau_n, &pairs);
    dice_loss_backward(du, ds, u, sim, PyArray_DATA(g), PyArray_DATA(ng), G, (int)D, tau, tau_p, tau_n);
    l2norm_backward(PyArray_DATA((PyArrayObject *)dy), du, u, norm, G, (int)D);
    Py_END_ALLOW_THREADS
    result = Py_BuildValue("(dOL)", loss, dy, (long long)pairs);
out:
    PyMem_Free(work);
    Py_XDECREF(dy); Py_XDECREF(y); Py_XDECREF(g); Py_XDECREF(ng);
    return result;
}

static PyMethodDef nn_methods[] = {
    {"dice_init", py_dice_init, METH_VARARGS,
     "dice_init(node_in, edge_in, hidden, out, layers, dropout, bn_eps, bn_momentum, seed, conv=0, heads=1, "
     "gat_concat=1) -> model; conv: 0 dice, 1 gin, 2 gcn, 3 sage, 4 gat"},
    {"dice_arrays", py_dice_arrays, METH_O, "{'params', 'grads', 'buffers': float32 views, 'tensors': [(name, size)]}"},
    {"dice_forward", py_dice_forward, METH_VARARGS,
     "dice_forward(model, x, edge_attr, edge_index, batch, edge_batch, num_graphs, training, seed) -> y"},
    {"dice_backward", py_dice_backward, METH_VARARGS, "dice_backward(model, dy): accumulate gradients"},
    {"dice_zero_grad", py_dice_zero_grad, METH_O, "zero the gradient block"},
    {"dice_adamw", py_dice_adamw, METH_VARARGS, "dice_adamw(model, lr, beta1, beta2, eps, weight_decay)"},
    {"contrastive_loss", py_contrastive_loss, METH_VARARGS,
     "contrastive_loss(y, group, negative, tau, tau_p, tau_n) -> (loss, dloss/dy, n_pairs)"},
    {NULL, NULL, 0, NULL}};

int cm_nn_module_init(PyObject *m) { return PyModule_AddFunctions(m, nn_methods); }
