/* The current OpenTelemetry context, read and changed in C (see current.py).
 *
 * With the default runtime context, current.py's functions are a few operations on one
 * ContextVar; every traced call runs several of them (the server span made current, the
 * attempt's span current while its request is sent, each undone after). These are the
 * same functions without a Python frame: the same contexts (an opentelemetry Context
 * built from the base one with the span under the span key), the same tokens. Anything
 * else (a keyword argument, a failing reset) goes to the Python functions, whose effect
 * (and logging) stays the reference.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyObject *Variable;    /* the runtime context's ContextVar */
static PyObject *ContextType; /* opentelemetry.context.Context, a dict subclass */
static PyObject *SpanKey;     /* the context key of the current span */
static PyObject *PyWithSpan;  /* the Python functions, for anything unusual */
static PyObject *PyAttachSpan;
static PyObject *PyDetach;

static int configured(void) {
    if (Variable == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "configure() has not been called");
        return 0;
    }
    return 1;
}

/* The current context (a new reference), as ContextVar.get() gives it. */
static PyObject *get_current(void) {
    PyObject *value = NULL;
    if (PyContextVar_Get(Variable, NULL, &value) < 0) {
        return NULL;
    }
    if (value == NULL) {
        PyErr_SetObject(PyExc_LookupError, Variable);
    }
    return value;
}

/* Context(base, **{span_key: span}): a copy of `base` with `span` as its span. */
static PyObject *with(PyObject *span, PyObject *base) {
    PyObject *context = PyObject_CallOneArg(ContextType, base);
    if (context == NULL) {
        return NULL;
    }
    if (!PyDict_Check(context) || PyDict_SetItem(context, SpanKey, span) < 0) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_TypeError, "Context is not a dict");
        }
        Py_DECREF(context);
        return NULL;
    }
    return context;
}

/* `context` (or the current one when None or absent), new reference. */
static PyObject *base_of(PyObject *const *args, Py_ssize_t nargs) {
    if (nargs == 2 && args[1] != Py_None) {
        return Py_NewRef(args[1]);
    }
    return get_current();
}

/* What with_span(span[, context]) makes from its positional arguments, new reference. */
static PyObject *made(PyObject *const *args, Py_ssize_t nargs) {
    PyObject *base = base_of(args, nargs);
    if (base == NULL) {
        return NULL;
    }
    PyObject *context = with(args[0], base);
    Py_DECREF(base);
    return context;
}

static PyObject *current(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(unused)) {
    return configured() ? get_current() : NULL;
}

static PyObject *with_span(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs,
                           PyObject *kwnames) {
    if (!configured()) {
        return NULL;
    }
    if (nargs < 1 || nargs > 2 || kwnames != NULL) {
        return PyObject_Vectorcall(PyWithSpan, args, (size_t)nargs, kwnames);
    }
    return made(args, nargs);
}

static PyObject *attach_span(PyObject *Py_UNUSED(module), PyObject *const *args,
                             Py_ssize_t nargs, PyObject *kwnames) {
    if (!configured()) {
        return NULL;
    }
    if (nargs < 1 || nargs > 2 || kwnames != NULL) {
        return PyObject_Vectorcall(PyAttachSpan, args, (size_t)nargs, kwnames);
    }
    PyObject *context = made(args, nargs);
    if (context == NULL) {
        return NULL;
    }
    PyObject *token = PyContextVar_Set(Variable, context);
    Py_DECREF(context);
    return token;
}

static PyObject *attach(PyObject *Py_UNUSED(module), PyObject *context) {
    return configured() ? PyContextVar_Set(Variable, context) : NULL;
}

static PyObject *detach(PyObject *Py_UNUSED(module), PyObject *token) {
    if (!configured()) {
        return NULL;
    }
    if (PyContextVar_Reset(Variable, token) < 0) {
        PyErr_Clear(); /* the Python function fails the same way, and logs it */
        return PyObject_CallOneArg(PyDetach, token);
    }
    Py_RETURN_NONE;
}

static PyObject *configure(PyObject *Py_UNUSED(module), PyObject *args) {
    PyObject *variable, *context_type, *key, *py_with_span, *py_attach_span, *py_detach;
    if (!PyArg_ParseTuple(args, "O!O!OOOO:configure", &PyContextVar_Type, &variable,
                          &PyType_Type, &context_type, &key, &py_with_span, &py_attach_span,
                          &py_detach)) {
        return NULL;
    }
    if (!PyType_IsSubtype((PyTypeObject *)context_type, &PyDict_Type)) {
        PyErr_SetString(PyExc_TypeError, "Context must be a dict subclass");
        return NULL;
    }
    Py_XSETREF(Variable, Py_NewRef(variable));
    Py_XSETREF(ContextType, Py_NewRef(context_type));
    Py_XSETREF(SpanKey, Py_NewRef(key));
    Py_XSETREF(PyWithSpan, Py_NewRef(py_with_span));
    Py_XSETREF(PyAttachSpan, Py_NewRef(py_attach_span));
    Py_XSETREF(PyDetach, Py_NewRef(py_detach));
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"configure", (PyCFunction)configure, METH_VARARGS,
     "configure(variable, Context, span_key, with_span, attach_span, detach, /)\n--\n\n"
     "The runtime context's variable, the context type and key, and the Python functions "
     "for anything unusual (current.py calls it once)."},
    {"current", (PyCFunction)current, METH_NOARGS, "current()\n--\n\ncurrent.current, in C."},
    {"with_span", (PyCFunction)(void (*)(void))with_span, METH_FASTCALL | METH_KEYWORDS,
     "with_span(span, context=None)\n--\n\ncurrent.with_span, in C."},
    {"attach_span", (PyCFunction)(void (*)(void))attach_span, METH_FASTCALL | METH_KEYWORDS,
     "attach_span(span, context=None)\n--\n\ncurrent.attach_span, in C."},
    {"attach", (PyCFunction)attach, METH_O, "attach(context)\n--\n\ncurrent.attach, in C."},
    {"detach", (PyCFunction)detach, METH_O, "detach(token)\n--\n\ncurrent.detach, in C."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    "llmesh.services.telemetry._current_native",
    "The current OpenTelemetry context, read and changed in C (see current.py).",
    -1,
    methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC PyInit__current_native(void) { return PyModule_Create(&module_def); }
