/* _diffusion.c: the CPython binding of csrc/diffusion/model.c (the conditional diffusion
 * transformer). Part of circml._core. Parameters, gradients and AdamW moments are exposed as
 * NumPy arrays that view the model's own memory (each keeps the model alive).
 * The model is not locked: train it from one thread at a time; sampling only reads it. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#define PY_ARRAY_UNIQUE_SYMBOL circml_ARRAY_API
#define NO_IMPORT_ARRAY
#include <numpy/arrayobject.h>
#include <string.h>

#include "../diffusion/model.h"
#include "../nn/gemm.h"
#include "../nn/gemm_bf16.h"

#define DIFFUSION_CAPSULE "circml.diffusion"

static void diffusion_capsule_free(PyObject *cap) { cm_diffusion_free(PyCapsule_GetPointer(cap, DIFFUSION_CAPSULE)); }

static cm_diffusion *get_model(PyObject *cap) {
    if (!PyCapsule_IsValid(cap, DIFFUSION_CAPSULE)) {
        PyErr_SetString(PyExc_TypeError, "expected a diffusion model handle (from diffusion_init)");
        return NULL;
    }
    return PyCapsule_GetPointer(cap, DIFFUSION_CAPSULE);
}

static PyObject *raise_status(cm_status st, const cm_error *err) {
    PyErr_SetString(st == CM_ERR_NOMEM ? PyExc_MemoryError : PyExc_ValueError, err->msg);
    return NULL;
}

static PyObject *view(PyObject *owner, void *data, npy_intp n, int type) {
    PyObject *a = PyArray_SimpleNewFromData(1, &n, type, data);
    if (!a) return NULL;
    Py_INCREF(owner);
    if (PyArray_SetBaseObject((PyArrayObject *)a, owner)) { Py_DECREF(a); return NULL; }
    return a;
}

/* An exact-dtype, C-contiguous array of ndim dimensions, or NULL with a ValueError naming it. */
static PyArrayObject *as(PyObject *o, int type, int ndim, const char *what) {
    PyArrayObject *a = (PyArrayObject *)PyArray_FROM_OTF(o, type, NPY_ARRAY_IN_ARRAY | NPY_ARRAY_FORCECAST);
    if (!a) return NULL;
    if (PyArray_NDIM(a) != ndim) {
        PyErr_Format(PyExc_ValueError, "%s must have %d dimension(s), got %d", what, ndim, PyArray_NDIM(a));
        Py_DECREF(a);
        return NULL;
    }
    return a;
}

static int check_rows(PyArrayObject *a, npy_intp rows, npy_intp cols, const char *what) {
    if (PyArray_DIM(a, 0) != rows || (cols >= 0 && PyArray_DIM(a, 1) != cols)) {
        if (cols >= 0)
            PyErr_Format(PyExc_ValueError, "%s must have shape (%zd, %zd), got (%zd, %zd)", what, (Py_ssize_t)rows,
                         (Py_ssize_t)cols, (Py_ssize_t)PyArray_DIM(a, 0), (Py_ssize_t)PyArray_DIM(a, 1));
        else
            PyErr_Format(PyExc_ValueError, "%s must have %zd entries, got %zd", what, (Py_ssize_t)rows,
                         (Py_ssize_t)PyArray_DIM(a, 0));
        return -1;
    }
    return 0;
}

/* diffusion_init(x_dim, y_dim, cond_tokens, channels, heads, ff, enc_layers, dec_layers,
 *                timesteps, zero_terminal_snr, activation, dropout, seed
 *                [, backbone, mlp_layers, mlp_hidden]) -> model
 * backbone: 0 the transformer (default), 1 the MLP of DM-MLP (mlp_layers hidden layers of width
 * mlp_hidden; cond_tokens, heads, ff and the block counts are then unused). */
static PyObject *py_diffusion_init(PyObject *self, PyObject *args) {
    (void)self;
    cm_diffusion_config c = {0};
    int zsnr, act, backbone = 0;
    unsigned long long seed;
    if (!PyArg_ParseTuple(args, "iiiiiiiiipifK|iii", &c.x_dim, &c.y_dim, &c.cond_tokens, &c.channels, &c.heads, &c.ff,
                          &c.enc_layers, &c.dec_layers, &c.timesteps, &zsnr, &act, &c.dropout, &seed, &backbone,
                          &c.mlp_layers, &c.mlp_hidden))
        return NULL;
    c.backbone = (cm_backbone)backbone;
    c.zero_terminal_snr = zsnr;
    c.act = (cm_activation)act;
    cm_diffusion *m;
    cm_error err;
    cm_status st = cm_diffusion_init(&m, &c, (uint64_t)seed, &err);
    if (st) return raise_status(st, &err);
    PyObject *cap = PyCapsule_New(m, DIFFUSION_CAPSULE, diffusion_capsule_free);
    if (!cap) cm_diffusion_free(m);
    return cap;
}

static PyObject *py_diffusion_arrays(PyObject *self, PyObject *cap) {
    (void)self;
    cm_diffusion *m = get_model(cap);
    if (!m) return NULL;
    PyObject *tensors = PyList_New(0);
    if (!tensors) return NULL;
    const char *name;
    int nd;
    int64_t dims[2];
    for (int i = 0; cm_diffusion_tensor(m, i, &name, &nd, dims) >= 0; i++) {
        PyObject *t = nd == 2 ? Py_BuildValue("(s(LL))", name, (long long)dims[0], (long long)dims[1])
                              : Py_BuildValue("(s(L))", name, (long long)dims[0]);
        if (!t || PyList_Append(tensors, t)) { Py_XDECREF(t); Py_DECREF(tensors); return NULL; }
        Py_DECREF(t);
    }
    const npy_intp P = cm_diffusion_num_params(m), T = cm_diffusion_get_config(m)->timesteps;
    return Py_BuildValue("{s:N,s:N,s:N,s:N,s:N}", "params", view(cap, cm_diffusion_params(m), P, NPY_FLOAT32), "grads",
                         view(cap, cm_diffusion_grads(m), P, NPY_FLOAT32), "moments",
                         view(cap, cm_diffusion_moments(m), 2 * P, NPY_FLOAT32), "alphas_cumprod",
                         view(cap, (void *)cm_diffusion_alphas_cumprod(m), T, NPY_FLOAT64), "tensors", tensors);
}

/* diffusion_adam_step(model[, step]) -> the AdamW step counter (set first when given) */
static PyObject *py_diffusion_adam_step(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *cap;
    int step = -1;
    if (!PyArg_ParseTuple(args, "O|i", &cap, &step)) return NULL;
    cm_diffusion *m = get_model(cap);
    if (!m) return NULL;
    if (step >= 0) cm_diffusion_set_adam_step(m, step);
    return PyLong_FromLong(cm_diffusion_adam_step(m));
}

/* Convert (xt or x0)[B,D], t[B], y[B,P], drop[B] or None with shape checks. */
static int batch_inputs(cm_diffusion *m, PyObject *xo, PyObject *to, PyObject *yo, PyObject *dro, PyArrayObject **x,
                        PyArrayObject **t, PyArrayObject **y, PyArrayObject **drop, const char *xname) {
    const cm_diffusion_config *c = cm_diffusion_get_config(m);
    *x = as(xo, NPY_FLOAT32, 2, xname);
    *t = to ? as(to, NPY_INT64, 1, "t") : NULL;
    *y = as(yo, NPY_FLOAT32, 2, "y");
    *drop = dro && dro != Py_None ? as(dro, NPY_UINT8, 1, "drop") : NULL;
    if (!*x || (to && !*t) || !*y || (dro && dro != Py_None && !*drop)) return -1;
    const npy_intp B = PyArray_DIM(*x, 0);
    if (check_rows(*x, B, c->x_dim, xname) || check_rows(*y, B, c->y_dim, "y")) return -1;
    if (*t && check_rows(*t, B, -1, "t")) return -1;
    if (*drop && check_rows(*drop, B, -1, "drop")) return -1;
    return 0;
}

/* diffusion_forward(model, xt[B,D], t[B], y[B,P], drop[B] or None, training, seed) -> v[B,D] */
static PyObject *py_diffusion_forward(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *cap, *xo, *to, *yo, *dro;
    int training;
    unsigned long long seed;
    if (!PyArg_ParseTuple(args, "OOOOOpK", &cap, &xo, &to, &yo, &dro, &training, &seed)) return NULL;
    cm_diffusion *m = get_model(cap);
    if (!m) return NULL;
    PyArrayObject *x = NULL, *t = NULL, *y = NULL, *drop = NULL;
    PyObject *out = NULL;
    if (batch_inputs(m, xo, to, yo, dro, &x, &t, &y, &drop, "xt")) goto done;
    npy_intp dims[2] = {PyArray_DIM(x, 0), cm_diffusion_get_config(m)->x_dim};
    out = PyArray_ZEROS(2, dims, NPY_FLOAT32, 0);
    if (!out) goto done;
    cm_error err;
    cm_status st;
    Py_BEGIN_ALLOW_THREADS
    st = cm_diffusion_forward(m, PyArray_DATA((PyArrayObject *)out), PyArray_DATA(x), PyArray_DATA(t), PyArray_DATA(y),
                              drop ? PyArray_DATA(drop) : NULL, dims[0], training, (uint64_t)seed, &err);
    Py_END_ALLOW_THREADS
    if (st) { Py_CLEAR(out); raise_status(st, &err); }
done:
    Py_XDECREF(x); Py_XDECREF(t); Py_XDECREF(y); Py_XDECREF(drop);
    return out;
}

/* diffusion_backward(model, dv[B,D]): accumulate gradients of the last training forward */
static PyObject *py_diffusion_backward(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *cap, *dyo;
    if (!PyArg_ParseTuple(args, "OO", &cap, &dyo)) return NULL;
    cm_diffusion *m = get_model(cap);
    if (!m) return NULL;
    PyArrayObject *dy = as(dyo, NPY_FLOAT32, 2, "dv");
    if (!dy) return NULL;
    if (PyArray_DIM(dy, 1) != cm_diffusion_get_config(m)->x_dim) {
        PyErr_Format(PyExc_ValueError, "dv must have %d columns, got %zd", cm_diffusion_get_config(m)->x_dim,
                     (Py_ssize_t)PyArray_DIM(dy, 1));
        Py_DECREF(dy);
        return NULL;
    }
    cm_error err;
    cm_status st;
    Py_BEGIN_ALLOW_THREADS
    st = cm_diffusion_backward(m, PyArray_DATA(dy), &err);
    Py_END_ALLOW_THREADS
    Py_DECREF(dy);
    if (st) return raise_status(st, &err);
    Py_RETURN_NONE;
}

/* diffusion_loss(model, x0[B,D], y[B,P], t[B], eps[B,D], drop[B] or None, seed) -> loss; fills the gradients */
static PyObject *py_diffusion_loss(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *cap, *xo, *yo, *to, *eo, *dro;
    unsigned long long seed;
    if (!PyArg_ParseTuple(args, "OOOOOOK", &cap, &xo, &yo, &to, &eo, &dro, &seed)) return NULL;
    cm_diffusion *m = get_model(cap);
    if (!m) return NULL;
    PyArrayObject *x = NULL, *t = NULL, *y = NULL, *drop = NULL, *eps = NULL;
    PyObject *res = NULL;
    if (batch_inputs(m, xo, to, yo, dro, &x, &t, &y, &drop, "x0")) goto done;
    eps = as(eo, NPY_FLOAT32, 2, "eps");
    if (!eps || check_rows(eps, PyArray_DIM(x, 0), PyArray_DIM(x, 1), "eps")) goto done;
    cm_error err;
    cm_status st;
    double loss = 0;
    Py_BEGIN_ALLOW_THREADS
    st = cm_diffusion_loss(m, &loss, PyArray_DATA(x), PyArray_DATA(y), PyArray_DATA(t), PyArray_DATA(eps),
                           drop ? PyArray_DATA(drop) : NULL, PyArray_DIM(x, 0), (uint64_t)seed, &err);
    Py_END_ALLOW_THREADS
    if (st) raise_status(st, &err);
    else res = PyFloat_FromDouble(loss);
done:
    Py_XDECREF(x); Py_XDECREF(t); Py_XDECREF(y); Py_XDECREF(drop); Py_XDECREF(eps);
    return res;
}

static PyObject *py_diffusion_zero_grad(PyObject *self, PyObject *cap) {
    (void)self;
    cm_diffusion *m = get_model(cap);
    if (!m) return NULL;
    cm_diffusion_zero_grad(m);
    Py_RETURN_NONE;
}

/* diffusion_adamw(model, lr, beta1, beta2, eps, weight_decay) */
static PyObject *py_diffusion_adamw(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *cap;
    float lr, b1, b2, eps, wd;
    if (!PyArg_ParseTuple(args, "Offfff", &cap, &lr, &b1, &b2, &eps, &wd)) return NULL;
    cm_diffusion *m = get_model(cap);
    if (!m) return NULL;
    Py_BEGIN_ALLOW_THREADS
    cm_diffusion_adamw(m, lr, b1, b2, eps, wd);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

/* diffusion_train_step(model, x0[B,D], y[B,P], lr, beta1, beta2, eps, weight_decay, p_uncond,
 *                      max_grad_norm, seed, step) -> loss before the update */
static PyObject *py_diffusion_train_step(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *cap, *xo, *yo;
    cm_train_config tc;
    unsigned long long seed, step;
    if (!PyArg_ParseTuple(args, "OOOfffffddKK", &cap, &xo, &yo, &tc.lr, &tc.beta1, &tc.beta2, &tc.eps,
                          &tc.weight_decay, &tc.p_uncond, &tc.max_grad_norm, &seed, &step))
        return NULL;
    cm_diffusion *m = get_model(cap);
    if (!m) return NULL;
    PyArrayObject *x = NULL, *t = NULL, *y = NULL, *drop = NULL;
    PyObject *res = NULL;
    if (batch_inputs(m, xo, NULL, yo, NULL, &x, &t, &y, &drop, "x0")) goto done;
    cm_error err;
    cm_status st;
    double loss = 0;
    Py_BEGIN_ALLOW_THREADS
    st = cm_diffusion_train_step(m, &loss, PyArray_DATA(x), PyArray_DATA(y), PyArray_DIM(x, 0), &tc, (uint64_t)seed,
                                 (uint64_t)step, &err);
    Py_END_ALLOW_THREADS
    if (st) raise_status(st, &err);
    else res = PyFloat_FromDouble(loss);
done:
    Py_XDECREF(x); Py_XDECREF(y);
    return res;
}

/* diffusion_sample(model, y[n,P], steps, sampler, spacing, eta, guidance, w, clip, seed, sample0
 *                  [, precision]) -> x[n,D]
 * precision: "fp32" (default) or "bf16" (the blocks' Linear layers in bfloat16, model.h).
 * sampler: 0 DDIM, 1 DDPM; spacing: 0 trailing, 1 leading, 2 linspace; guidance: 0 the paper's
 * w * uncond + (1 - w) * cond, 1 uncond + (1 + w) * (cond - uncond). */
static PyObject *py_diffusion_sample(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *cap, *yo;
    cm_sample_config sc;
    int sampler, spacing, guidance;
    unsigned long long seed;
    long long sample0;
    const char *precision = "fp32";
    if (!PyArg_ParseTuple(args, "OOiiididdKL|s", &cap, &yo, &sc.steps, &sampler, &spacing, &sc.eta, &guidance, &sc.w,
                          &sc.clip, &seed, &sample0, &precision))
        return NULL;
    if (!strcmp(precision, "fp32")) sc.precision = CM_PRECISION_FP32;
    else if (!strcmp(precision, "bf16")) sc.precision = CM_PRECISION_BF16;
    else return PyErr_Format(PyExc_ValueError, "precision must be 'fp32' or 'bf16', got %R", PyTuple_GET_ITEM(args, 11));
    cm_diffusion *m = get_model(cap);
    if (!m) return NULL;
    sc.sampler = (cm_sampler)sampler;
    sc.spacing = (cm_spacing)spacing;
    sc.guidance = (cm_guidance)guidance;
    sc.seed = (uint64_t)seed;
    sc.sample0 = (int64_t)sample0;
    const cm_diffusion_config *c = cm_diffusion_get_config(m);
    PyArrayObject *y = as(yo, NPY_FLOAT32, 2, "y");
    if (!y) return NULL;
    PyObject *out = NULL;
    if (PyArray_DIM(y, 1) != c->y_dim) {
        PyErr_Format(PyExc_ValueError, "y must have %d columns (the model's condition width), got %zd", c->y_dim,
                     (Py_ssize_t)PyArray_DIM(y, 1));
        goto done;
    }
    npy_intp dims[2] = {PyArray_DIM(y, 0), c->x_dim};
    if (dims[0] < 1) { PyErr_SetString(PyExc_ValueError, "y has no rows: nothing to sample"); goto done; }
    out = PyArray_ZEROS(2, dims, NPY_FLOAT32, 0);
    if (!out) goto done;
    cm_error err;
    cm_status st;
    Py_BEGIN_ALLOW_THREADS
    st = cm_diffusion_sample(m, PyArray_DATA((PyArrayObject *)out), PyArray_DATA(y), dims[0], &sc, &err);
    Py_END_ALLOW_THREADS
    if (st) { Py_CLEAR(out); raise_status(st, &err); }
done:
    Py_DECREF(y);
    return out;
}

/* gemm_bf16_info() -> {"cpu": bool, "available": bool}: the CPU has avx512_bf16; the bf16 kernel runs */
static PyObject *py_gemm_bf16_info(PyObject *self, PyObject *noargs) {
    (void)self; (void)noargs;
    return Py_BuildValue("{s:O,s:O}", "cpu", gemm_bf16_cpu_supported() ? Py_True : Py_False, "available",
                         gemm_bf16_available() ? Py_True : Py_False);
}

/* gemm_bf16_set_enabled(on) -> available: off makes precision "bf16" take the fp32 path (tests) */
static PyObject *py_gemm_bf16_set_enabled(PyObject *self, PyObject *arg) {
    (void)self;
    const int on = PyObject_IsTrue(arg);
    if (on < 0) return NULL;
    return PyBool_FromLong(gemm_bf16_set_enabled(on));
}

/* matmul_profile(reset=False, enable=None) -> {kind: {"calls", "flops", "wall_s", "thread_s", "cpu_s"}, "enabled": bool}
 * The totals of gemm.h's opt-in profiling; enable=True/False turns it on or off (before reading). */
static PyObject *py_matmul_profile(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *names[] = {"reset", "enable", NULL};
    int reset = 0;
    PyObject *enable = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|pO:matmul_profile", names, &reset, &enable)) return NULL;
    if (enable != Py_None) {
        const int on = PyObject_IsTrue(enable);
        if (on < 0) return NULL;
        gemm_profile_enable(on);
    }
    gemm_prof_entry e[GEMM_PROF_N];
    gemm_profile_read(e, reset);
    PyObject *d = PyDict_New();
    if (!d) return NULL;
    for (int k = 0; k < GEMM_PROF_N; k++) {
        PyObject *row = Py_BuildValue("{s:L,s:L,s:d,s:d,s:d}", "calls", (long long)e[k].calls, "flops",
                                      (long long)e[k].flops, "wall_s", 1e-9 * (double)e[k].wall_ns, "thread_s",
                                      1e-9 * (double)e[k].thread_ns, "cpu_s", 1e-9 * (double)e[k].cpu_ns);
        if (!row || PyDict_SetItemString(d, gemm_profile_name(k), row)) { Py_XDECREF(row); Py_DECREF(d); return NULL; }
        Py_DECREF(row);
    }
    if (PyDict_SetItemString(d, "enabled", gemm_profile_on() ? Py_True : Py_False)) { Py_DECREF(d); return NULL; }
    return d;
}

/* ---------------------------------------------------------------- the plain MLP (mlp.h) */

#define MLP_CAPSULE "circml.mlp"

static void mlp_capsule_free(PyObject *cap) { cm_mlp_free(PyCapsule_GetPointer(cap, MLP_CAPSULE)); }

static cm_mlp *get_mlp(PyObject *cap) {
    if (!PyCapsule_IsValid(cap, MLP_CAPSULE)) {
        PyErr_SetString(PyExc_TypeError, "expected an MLP handle (from mlp_init)");
        return NULL;
    }
    return PyCapsule_GetPointer(cap, MLP_CAPSULE);
}

/* mlp_init(widths (a sequence of L+1 ints), dropout, seed) -> model */
static PyObject *py_mlp_init(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *wo;
    float dropout;
    unsigned long long seed;
    if (!PyArg_ParseTuple(args, "OfK", &wo, &dropout, &seed)) return NULL;
    PyObject *seq = PySequence_Fast(wo, "widths must be a sequence of ints");
    if (!seq) return NULL;
    const Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n < 2 || n > CM_MLP_MAX_LAYERS + 1) {
        Py_DECREF(seq);
        PyErr_Format(PyExc_ValueError, "widths must have 2..%d entries (input, hidden..., output), got %zd",
                     CM_MLP_MAX_LAYERS + 1, n);
        return NULL;
    }
    int w[CM_MLP_MAX_LAYERS + 1];
    for (Py_ssize_t i = 0; i < n; i++) {
        long v = PyLong_AsLong(PySequence_Fast_GET_ITEM(seq, i));
        if (v == -1 && PyErr_Occurred()) { Py_DECREF(seq); return NULL; }
        w[i] = (int)v;
    }
    Py_DECREF(seq);
    cm_mlp *m;
    cm_error err;
    cm_status st = cm_mlp_init(&m, w, (int)n - 1, dropout, (uint64_t)seed, &err);
    if (st) return raise_status(st, &err);
    PyObject *cap = PyCapsule_New(m, MLP_CAPSULE, mlp_capsule_free);
    if (!cap) cm_mlp_free(m);
    return cap;
}

static PyObject *py_mlp_arrays(PyObject *self, PyObject *cap) {
    (void)self;
    cm_mlp *m = get_mlp(cap);
    if (!m) return NULL;
    const int L = cm_mlp_layers(m);
    const int *w = cm_mlp_widths(m);
    PyObject *widths = PyList_New(L + 1);
    if (!widths) return NULL;
    for (int i = 0; i <= L; i++) PyList_SET_ITEM(widths, i, PyLong_FromLong(w[i]));
    const npy_intp P = cm_mlp_num_params(m);
    return Py_BuildValue("{s:N,s:N,s:N,s:N}", "params", view(cap, cm_mlp_params(m), P, NPY_FLOAT32), "grads",
                         view(cap, cm_mlp_grads(m), P, NPY_FLOAT32), "moments",
                         view(cap, cm_mlp_moments(m), 2 * P, NPY_FLOAT32), "widths", widths);
}

/* mlp_adam_step(model[, step]) -> the AdamW step counter (set first when given) */
static PyObject *py_mlp_adam_step(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *cap;
    int step = -1;
    if (!PyArg_ParseTuple(args, "O|i", &cap, &step)) return NULL;
    cm_mlp *m = get_mlp(cap);
    if (!m) return NULL;
    if (step >= 0) cm_mlp_set_adam_step(m, step);
    return PyLong_FromLong(cm_mlp_adam_step(m));
}

/* x[B, w0] (and y[B, wL] when ycols >= 0) as float32 with shape checks */
static int mlp_batch(cm_mlp *m, PyObject *xo, PyObject *yo, PyArrayObject **x, PyArrayObject **y) {
    const int L = cm_mlp_layers(m);
    const int *w = cm_mlp_widths(m);
    *x = as(xo, NPY_FLOAT32, 2, "x");
    if (!*x) return -1;
    const npy_intp B = PyArray_DIM(*x, 0);
    if (B < 1) { PyErr_SetString(PyExc_ValueError, "x has no rows"); return -1; }
    if (check_rows(*x, B, w[0], "x")) return -1;
    if (yo) {
        *y = as(yo, NPY_FLOAT32, 2, "y");
        if (!*y || check_rows(*y, B, w[L], "y")) return -1;
    }
    return 0;
}

/* mlp_predict(model, x[B, w0]) -> out[B, wL] (no dropout) */
static PyObject *py_mlp_predict(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *cap, *xo;
    if (!PyArg_ParseTuple(args, "OO", &cap, &xo)) return NULL;
    cm_mlp *m = get_mlp(cap);
    if (!m) return NULL;
    PyArrayObject *x = NULL, *y = NULL;
    PyObject *out = NULL;
    if (mlp_batch(m, xo, NULL, &x, &y)) goto done;
    npy_intp dims[2] = {PyArray_DIM(x, 0), cm_mlp_widths(m)[cm_mlp_layers(m)]};
    out = PyArray_ZEROS(2, dims, NPY_FLOAT32, 0);
    if (!out) goto done;
    cm_error err;
    cm_status st;
    Py_BEGIN_ALLOW_THREADS
    st = cm_mlp_predict(m, PyArray_DATA((PyArrayObject *)out), PyArray_DATA(x), dims[0], &err);
    Py_END_ALLOW_THREADS
    if (st) { Py_CLEAR(out); raise_status(st, &err); }
done:
    Py_XDECREF(x);
    return out;
}

/* mlp_loss(model, x, y, seed) -> MSE loss (gradients overwritten) */
static PyObject *py_mlp_loss(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *cap, *xo, *yo;
    unsigned long long seed;
    if (!PyArg_ParseTuple(args, "OOOK", &cap, &xo, &yo, &seed)) return NULL;
    cm_mlp *m = get_mlp(cap);
    if (!m) return NULL;
    PyArrayObject *x = NULL, *y = NULL;
    PyObject *res = NULL;
    if (mlp_batch(m, xo, yo, &x, &y)) goto done;
    cm_error err;
    cm_status st;
    double loss = 0;
    Py_BEGIN_ALLOW_THREADS
    st = cm_mlp_loss(m, &loss, PyArray_DATA(x), PyArray_DATA(y), PyArray_DIM(x, 0), (uint64_t)seed, &err);
    Py_END_ALLOW_THREADS
    if (st) raise_status(st, &err);
    else res = PyFloat_FromDouble(loss);
done:
    Py_XDECREF(x); Py_XDECREF(y);
    return res;
}

/* mlp_train_step(model, x, y, lr, beta1, beta2, eps, weight_decay, seed) -> loss before the update */
static PyObject *py_mlp_train_step(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *cap, *xo, *yo;
    float lr, b1, b2, eps, wd;
    unsigned long long seed;
    if (!PyArg_ParseTuple(args, "OOOfffffK", &cap, &xo, &yo, &lr, &b1, &b2, &eps, &wd, &seed)) return NULL;
    cm_mlp *m = get_mlp(cap);
    if (!m) return NULL;
    PyArrayObject *x = NULL, *y = NULL;
    PyObject *res = NULL;
    if (mlp_batch(m, xo, yo, &x, &y)) goto done;
    cm_error err;
    cm_status st;
    double loss = 0;
    Py_BEGIN_ALLOW_THREADS
    st = cm_mlp_train_step(m, &loss, PyArray_DATA(x), PyArray_DATA(y), PyArray_DIM(x, 0), lr, b1, b2, eps, wd,
                           (uint64_t)seed, &err);
    Py_END_ALLOW_THREADS
    if (st) raise_status(st, &err);
    else res = PyFloat_FromDouble(loss);
done:
    Py_XDECREF(x); Py_XDECREF(y);
    return res;
}

static PyMethodDef diffusion_methods[] = {
    {"diffusion_init", py_diffusion_init, METH_VARARGS,
     "diffusion_init(x_dim, y_dim, cond_tokens, channels, heads, ff, enc_layers, dec_layers, timesteps, "
     "zero_terminal_snr, activation (0 GELU, 1 ReLU), dropout, seed[, backbone (0 transformer, 1 MLP), mlp_layers, "
     "mlp_hidden]) -> model"},
    {"diffusion_arrays", py_diffusion_arrays, METH_O,
     "{'params', 'grads', 'moments': float32 views, 'alphas_cumprod': float64 view, 'tensors': [(name, shape)]}"},
    {"diffusion_adam_step", py_diffusion_adam_step, METH_VARARGS, "diffusion_adam_step(model[, step]) -> step"},
    {"diffusion_forward", py_diffusion_forward, METH_VARARGS,
     "diffusion_forward(model, xt, t, y, drop_or_None, training, seed) -> v prediction"},
    {"diffusion_backward", py_diffusion_backward, METH_VARARGS, "diffusion_backward(model, dv): accumulate gradients"},
    {"diffusion_loss", py_diffusion_loss, METH_VARARGS,
     "diffusion_loss(model, x0, y, t, eps, drop_or_None, seed) -> v-MSE loss (gradients zeroed, then filled)"},
    {"diffusion_zero_grad", py_diffusion_zero_grad, METH_O, "zero the gradient block"},
    {"diffusion_adamw", py_diffusion_adamw, METH_VARARGS, "diffusion_adamw(model, lr, beta1, beta2, eps, weight_decay)"},
    {"diffusion_train_step", py_diffusion_train_step, METH_VARARGS,
     "diffusion_train_step(model, x0, y, lr, beta1, beta2, eps, weight_decay, p_uncond, max_grad_norm, seed, step) -> loss"},
    {"diffusion_sample", py_diffusion_sample, METH_VARARGS,
     "diffusion_sample(model, y, steps, sampler, spacing, eta, guidance, w, clip, seed, sample0) -> x"},
    {"gemm_bf16_info", py_gemm_bf16_info, METH_NOARGS, "{'cpu': has avx512_bf16, 'available': the bf16 kernel runs}"},
    {"gemm_bf16_set_enabled", py_gemm_bf16_set_enabled, METH_O,
     "gemm_bf16_set_enabled(on) -> available (off: precision 'bf16' runs fp32)"},
    {"matmul_profile", (PyCFunction)(void (*)(void))py_matmul_profile, METH_VARARGS | METH_KEYWORDS,
     "matmul_profile(reset=False, enable=None) -> {kind: {'calls', 'flops', 'wall_s', 'thread_s', 'cpu_s'}, "
     "'enabled': bool}: time and flops inside the matrix products (gemm.h's opt-in profiling; enable=True turns it "
     "on, reset=True zeroes the totals after reading). Kinds: gemm (ops.c Linear), linear_fp32_packed and "
     "linear_bf16_packed (the sampling path), attention_fused (q k^T + softmax + att v; flops of the two products)"},
    {"mlp_init", py_mlp_init, METH_VARARGS, "mlp_init(widths, dropout, seed) -> MLP (Linear/ReLU/dropout, linear output)"},
    {"mlp_arrays", py_mlp_arrays, METH_O, "{'params', 'grads', 'moments': float32 views, 'widths': [int]}"},
    {"mlp_adam_step", py_mlp_adam_step, METH_VARARGS, "mlp_adam_step(model[, step]) -> step"},
    {"mlp_predict", py_mlp_predict, METH_VARARGS, "mlp_predict(model, x) -> out (no dropout)"},
    {"mlp_loss", py_mlp_loss, METH_VARARGS, "mlp_loss(model, x, y, seed) -> MSE (gradients overwritten)"},
    {"mlp_train_step", py_mlp_train_step, METH_VARARGS,
     "mlp_train_step(model, x, y, lr, beta1, beta2, eps, weight_decay, seed) -> MSE before the AdamW update"},
    {NULL, NULL, 0, NULL}};

int cm_diffusion_module_init(PyObject *m) { return PyModule_AddFunctions(m, diffusion_methods); }
