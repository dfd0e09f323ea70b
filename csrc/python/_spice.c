/* _spice.c: the CPython binding of csrc/spice (libngspice in memory). Part of circml._core.
 *
 * simulate() does load + run + collect + reset in one call with the GIL released around
 * ngspice, so a Python sweep pays one C call per simulation. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#define PY_ARRAY_UNIQUE_SYMBOL circml_ARRAY_API
#define NO_IMPORT_ARRAY
#include <numpy/arrayobject.h>
#include <string.h>

#include "../spice/ngspice.h"
#include "../circuit/circuit.h"
#include <stdlib.h>

#define SPICE_CAPSULE "circml.spice"

static PyObject *SimulationError;     /* RuntimeError subclass; .output holds ngspice's messages */
static PyObject *SimulationTimeout;   /* SimulationError subclass */
static PyObject *SimulatorDied;       /* SimulationError subclass: reopen the simulator */
static PyObject *NgspiceNotFound;     /* OSError subclass */

static void spice_capsule_free(PyObject *cap) {
    cm_spice *s = PyCapsule_GetPointer(cap, SPICE_CAPSULE);
    if (s) cm_spice_close(s);
}

static cm_spice *get_spice(PyObject *cap) {
    if (!PyCapsule_IsValid(cap, SPICE_CAPSULE)) {
        PyErr_SetString(PyExc_TypeError, "expected a simulator handle");
        return NULL;
    }
    cm_spice *s = PyCapsule_GetPointer(cap, SPICE_CAPSULE);
    if (!s) PyErr_SetString(PyExc_ValueError, "the simulator is closed");
    return s;
}

static PyObject *raise_spice(cm_status st, const cm_error *err, cm_spice *s) {
    if (st == CM_ERR_NOMEM) return PyErr_NoMemory();
    PyObject *type = st == CM_ERR_TIMEOUT ? SimulationTimeout
                   : st == CM_ERR_DEAD    ? SimulatorDied
                   : st == CM_ERR_LIBRARY ? NgspiceNotFound
                   : st == CM_ERR_VALUE   ? PyExc_RuntimeError
                                          : SimulationError;
    PyObject *exc = PyObject_CallFunction(type, "s", err->msg);
    if (!exc) return NULL;
    if (s && type != NgspiceNotFound && type != PyExc_RuntimeError) {
        size_t n;
        const char *out = cm_spice_output(s, &n);
        PyObject *o = PyUnicode_DecodeUTF8(out, (Py_ssize_t)n, "replace");
        if (o) { PyObject_SetAttrString(exc, "output", o); Py_DECREF(o); }
        else PyErr_Clear();
    }
    PyErr_SetObject(type, exc);
    Py_DECREF(exc);
    return NULL;
}

static PyObject *py_spice_open(PyObject *self, PyObject *args) {
    (void)self;
    const char *path = NULL;
    if (!PyArg_ParseTuple(args, "|z", &path)) return NULL;
    cm_spice *s = NULL;
    cm_error err;
    cm_status st;
    Py_BEGIN_ALLOW_THREADS
    st = cm_spice_open(path, &s, &err);
    Py_END_ALLOW_THREADS
    if (st) return raise_spice(st, &err, NULL);
    PyObject *cap = PyCapsule_New(s, SPICE_CAPSULE, spice_capsule_free);
    if (!cap) cm_spice_close(s);
    return cap;
}

static PyObject *py_spice_close(PyObject *self, PyObject *cap) {
    (void)self;
    if (!PyCapsule_IsValid(cap, SPICE_CAPSULE)) {
        PyErr_SetString(PyExc_TypeError, "expected a simulator handle");
        return NULL;
    }
    cm_spice *s = PyCapsule_GetPointer(cap, SPICE_CAPSULE);
    if (s) {
        PyCapsule_SetDestructor(cap, NULL);
        cm_spice_close(s);
        /* a capsule cannot hold NULL: point it at a sentinel and mark it closed by name */
        PyCapsule_SetName(cap, "circml.spice.closed");
    }
    Py_RETURN_NONE;
}

/* plots -> {plot: {vector: ndarray}} */
static PyObject *collect(cm_spice *s) {
    PyObject *result = PyDict_New();
    if (!result) return NULL;
    char **plots = cm_spice_plots(s);
    for (int p = 0; plots && plots[p]; p++) {
        if (strcmp(plots[p], "const") == 0) continue;
        char plot[256];
        snprintf(plot, sizeof plot, "%s", plots[p]);
        PyObject *vecs = PyDict_New();
        if (!vecs || PyDict_SetItemString(result, plot, vecs)) { Py_XDECREF(vecs); Py_DECREF(result); return NULL; }
        Py_DECREF(vecs);
        char **names = cm_spice_vectors(s, plot);
        for (int v = 0; names && names[v]; v++) {
            char full[1024];
            snprintf(full, sizeof full, "%s.%s", plot, names[v]);
            const double *re, *cx;
            int len;
            if (cm_spice_vector(s, full, &re, &cx, &len)) continue;
            npy_intp n = len;
            PyObject *a = PyArray_SimpleNew(1, &n, cx ? NPY_COMPLEX128 : NPY_FLOAT64);
            if (!a) { Py_DECREF(result); return NULL; }
            if (len) memcpy(PyArray_DATA((PyArrayObject *)a), cx ? cx : re, sizeof(double) * (size_t)len * (cx ? 2 : 1));
            int rc = PyDict_SetItemString(vecs, names[v], a);
            Py_DECREF(a);
            if (rc) { Py_DECREF(result); return NULL; }
        }
    }
    return result;
}

/* Load + run with the GIL released; then results or the exception. */
static PyObject *simulate_text(cm_spice *s, const char *text, size_t len, double timeout);

/* simulate(handle, netlist, timeout=0) -> (plots, output) */
static PyObject *py_spice_simulate(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *cap;
    Py_buffer text;
    double timeout = 0;
    if (!PyArg_ParseTuple(args, "Os*|d", &cap, &text, &timeout)) return NULL;
    cm_spice *s = get_spice(cap);
    if (!s) { PyBuffer_Release(&text); return NULL; }
    PyObject *r = simulate_text(s, text.buf, (size_t)text.len, timeout);
    PyBuffer_Release(&text);
    return r;
}

/* The netlist ngspice receives for a circuit: the circuit written by circml with the analysis
 * cards (text, one per line) before its .end. Returns a malloc'd buffer, or NULL (no memory). */
static char *render_circuit(const cm_circuit *c, const char *cards, size_t ncards, size_t *len) {
    char *text = NULL, *full = NULL;
    size_t n = 0;
    if (cm_circuit_write(c, &text, &n) == CM_OK) {
        /* drop the trailing ".end\n", append the cards and a new .end */
        if (n >= 5 && memcmp(text + n - 5, ".end\n", 5) == 0) n -= 5;
        full = malloc(n + ncards + 8);
        if (full) {
            memcpy(full, text, n);
            memcpy(full + n, cards, ncards);
            n += ncards;
            if (n && full[n - 1] != '\n') full[n++] = '\n';
            memcpy(full + n, ".end\n", 5);
            n += 5;
        }
    }
    free(text);
    *len = n;
    return full;
}

static const cm_circuit *get_circuit(PyObject *ccap) {
    if (!PyCapsule_IsValid(ccap, "circml.circuit")) {
        PyErr_SetString(PyExc_TypeError, "expected a circuit handle");
        return NULL;
    }
    return PyCapsule_GetPointer(ccap, "circml.circuit");
}

/* render(circuit, analysis_cards) -> bytes: the netlist ngspice receives for a circuit. Sweeps
 * render a chunk's netlists first and simulate them back to back (warm caches). */
static PyObject *py_spice_render(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *ccap;
    Py_buffer cards;
    size_t n = 0;
    if (!PyArg_ParseTuple(args, "Os*", &ccap, &cards)) return NULL;
    const cm_circuit *c = get_circuit(ccap);
    char *full = NULL;
    if (c) {
        Py_BEGIN_ALLOW_THREADS
        full = render_circuit(c, cards.buf, (size_t)cards.len, &n);
        Py_END_ALLOW_THREADS
        if (!full) PyErr_NoMemory();
    }
    PyBuffer_Release(&cards);
    if (!full) return NULL;
    PyObject *r = PyBytes_FromStringAndSize(full, (Py_ssize_t)n);
    free(full);
    return r;
}

static PyObject *simulate_text(cm_spice *s, const char *buf, size_t len, double timeout) {
    cm_error err;
    cm_status st;
    Py_BEGIN_ALLOW_THREADS
    st = cm_spice_load(s, buf, len, &err);
    if (!st) st = cm_spice_run(s, timeout, &err);
    Py_END_ALLOW_THREADS
    if (st) {
        raise_spice(st, &err, s);
        if (st != CM_ERR_DEAD) {
            PyObject *et, *ev, *tb;
            PyErr_Fetch(&et, &ev, &tb);
            cm_error e2;
            cm_spice_reset(s, &e2);
            PyErr_Restore(et, ev, tb);
        }
        return NULL;
    }
    PyObject *plots = collect(s);
    size_t n;
    const char *out = cm_spice_output(s, &n);
    PyObject *o = PyUnicode_DecodeUTF8(out, (Py_ssize_t)n, "replace");
    cm_error e2;
    cm_status st2 = cm_spice_reset(s, &e2);
    if (!plots || !o) { Py_XDECREF(plots); Py_XDECREF(o); return NULL; }
    if (st2) { Py_DECREF(plots); Py_DECREF(o); return raise_spice(st2, &e2, s); }
    return Py_BuildValue("(NN)", plots, o);
}

static PyObject *py_spice_command(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *cap;
    const char *cmd;
    if (!PyArg_ParseTuple(args, "Os", &cap, &cmd)) return NULL;
    cm_spice *s = get_spice(cap);
    if (!s) return NULL;
    cm_error err;
    cm_status st;
    size_t before;
    cm_spice_output(s, &before);
    Py_BEGIN_ALLOW_THREADS
    st = cm_spice_command(s, cmd, &err);
    Py_END_ALLOW_THREADS
    if (st) return raise_spice(st, &err, s);
    size_t n;
    const char *out = cm_spice_output(s, &n);
    return PyUnicode_DecodeUTF8(out + before, (Py_ssize_t)(n - before), "replace");
}

static PyObject *py_spice_is_dead(PyObject *self, PyObject *cap) {
    (void)self;
    cm_spice *s = get_spice(cap);
    if (!s) return NULL;
    return PyBool_FromLong(cm_spice_is_dead(s));
}

static PyMethodDef spice_methods[] = {
    {"spice_open", py_spice_open, METH_VARARGS, "spice_open(library_path=None) -> simulator handle"},
    {"spice_close", py_spice_close, METH_O, "spice_close(handle): release ngspice"},
    {"spice_simulate", py_spice_simulate, METH_VARARGS,
     "spice_simulate(handle, netlist, timeout=0) -> ({plot: {vector: array}}, output)"},
    {"spice_render", py_spice_render, METH_VARARGS,
     "spice_render(circuit, analysis_cards) -> bytes: the netlist ngspice receives for the circuit"},
    {"spice_command", py_spice_command, METH_VARARGS, "spice_command(handle, command) -> output"},
    {"spice_is_dead", py_spice_is_dead, METH_O, "whether ngspice exited fatally"},
    {NULL, NULL, 0, NULL}};

int cm_spice_module_init(PyObject *m) {
    SimulationError = PyErr_NewExceptionWithDoc("circml._core.SimulationError",
                                                "ngspice reported an error; .output holds its messages.",
                                                PyExc_RuntimeError, NULL);
    if (!SimulationError) return -1;
    SimulationTimeout = PyErr_NewExceptionWithDoc("circml._core.SimulationTimeout",
                                                  "A simulation ran past its time limit and was halted.", SimulationError, NULL);
    SimulatorDied = PyErr_NewExceptionWithDoc("circml._core.SimulatorDied",
                                              "ngspice exited fatally; the Simulator reopens it on the next run.",
                                              SimulationError, NULL);
    NgspiceNotFound = PyErr_NewExceptionWithDoc("circml._core.NgspiceNotFound",
                                                "The ngspice shared library could not be loaded.", PyExc_OSError, NULL);
    if (!SimulationTimeout || !SimulatorDied || !NgspiceNotFound) return -1;
    Py_INCREF(SimulationError); Py_INCREF(SimulationTimeout); Py_INCREF(SimulatorDied); Py_INCREF(NgspiceNotFound);
    if (PyModule_AddObject(m, "SimulationError", SimulationError) ||
        PyModule_AddObject(m, "SimulationTimeout", SimulationTimeout) ||
        PyModule_AddObject(m, "SimulatorDied", SimulatorDied) ||
        PyModule_AddObject(m, "NgspiceNotFound", NgspiceNotFound))
        return -1;
    return PyModule_AddFunctions(m, spice_methods);
}
