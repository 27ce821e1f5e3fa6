/* A lean tracer's span start in C: what `LeanTracer.start_span` does in Python, for the
 * spans every traced call starts (the gRPC and HTTP server spans, the attempts' client
 * spans, the gateway's gRPC client spans).
 *
 * llmesh.services.telemetry.lean_trace gives each LeanTracer a `Starter` when this module
 * imported (it is optional, see setup.py), and keeps its Python method otherwise. The result
 * is the Python method's: the same ids drawn from the same `random.getrandbits`, the same
 * SpanContext (built as a tuple, as the Python code builds it, without SpanContext's
 * checks), the same LeanSpan fields. What this code does not cover it hands to the Python
 * method, before any id is drawn: a context that is not a dict, a current span of a type
 * other than LeanSpan or NonRecordingSpan, a parent that is not a SpanContext tuple,
 * attributes that are not a dict. The fields are written at the offsets of LeanSpan's
 * __slots__, read from its member descriptors when the module is configured.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h> /* T_OBJECT_EX, READ_RESTRICTED: what a slot's member is */

#include <time.h>

enum {
    F_BATCHER,
    F_RECORD_EXCEPTION,
    F_SET_STATUS,
    F_ATTRIBUTES,
    F_CONTEXT,
    F_END_TIME,
    F_EVENTS,
    F_KIND,
    F_LINKS,
    F_NAME,
    F_PARENT,
    F_SCOPE,
    F_START_TIME,
    F_STATUS,
    FIELDS
};
static const char *FieldNames[FIELDS] = {
    "_batcher", "_record_exception", "_set_status_on_exception",
    "attributes", "context", "end_time", "events", "kind", "links", "name", "parent", "scope",
    "start_time", "status",
};
static Py_ssize_t Offsets[FIELDS];

enum { P_NAME, P_CONTEXT, P_KIND, P_ATTRIBUTES, P_LINKS, P_START_TIME, P_RECORD, P_SET, PARAMS };
static const char *ParamNames[PARAMS] = {
    "name", "context", "kind", "attributes", "links", "start_time", "record_exception",
    "set_status_on_exception",
};
static PyObject *Params[PARAMS]; /* interned */

/* set by `configure` */
static PyTypeObject *SpanType;        /* LeanSpan */
static PyTypeObject *ContextType;     /* SpanContext, a tuple subclass */
static PyTypeObject *NonRecordingType; /* NonRecordingSpan: a caller's remote context */
static PyObject *SpanKey;             /* the context key of the current span */
static PyObject *Flags;               /* TraceFlags(0) ... TraceFlags(255) */
static PyObject *NoState;             /* the trace state of a root span */
static PyObject *GetRandBits;         /* random.getrandbits */
static PyObject *Kept;                /* lean_trace._kept: attributes without None, lists as tuples */
static PyObject *Unset;               /* lean_trace.UNSET_STATUS */
static PyObject *Internal;            /* SpanKind.INTERNAL */
static PyObject *Current;             /* the current-context module (_VARIABLE, current) */
static PyObject *Fallback;            /* LeanTracer.start_span, the Python method */
static PyTypeObject *BatcherType;     /* SpanBatcher, whose common add is done here */
static PyObject *PythonMethods;       /* LeanSpan's Python methods by name (span_methods) */

static PyObject *s_variable, *s_current, *s_remote, *s_bits64, *s_bits128, *s_empty, *s_add;
static PyObject *s_queue, *s_capacity, *s_batch, *s_append;

#define RANDOM_FLAG 2 /* TraceFlags.RANDOM_TRACE_ID */
#define SAMPLED_FLAG 1

typedef struct {
    PyObject_HEAD
    PyObject *scope;   /* the LeanTracer */
    PyObject *sampler; /* NULL: every span sampled */
    PyObject *batcher;
    vectorcallfunc vectorcall;
} Starter;

static PyObject *now_ns(void) {
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return NULL;
    }
    return PyLong_FromLongLong((long long)ts.tv_sec * 1000000000LL + (long long)ts.tv_nsec);
}

/* A random id of `bits` bits, never zero (zero is the invalid id). */
static PyObject *new_id(PyObject *bits) {
    for (;;) {
        PyObject *value = PyObject_CallOneArg(GetRandBits, bits);
        if (value == NULL) {
            return NULL;
        }
        int nonzero = PyObject_IsTrue(value);
        if (nonzero != 0) {
            if (nonzero < 0) {
                Py_CLEAR(value);
            }
            return value;
        }
        Py_DECREF(value);
    }
}

/* The current context (a new reference; NULL with an exception set). */
static PyObject *current_context(void) {
    PyObject *variable = PyObject_GetAttr(Current, s_variable);
    if (variable == NULL) {
        return NULL;
    }
    PyObject *context = NULL;
    if (variable == Py_None) {
        PyObject *current = PyObject_GetAttr(Current, s_current);
        if (current != NULL) {
            context = PyObject_CallNoArgs(current);
            Py_DECREF(current);
        }
    } else if (PyContextVar_Get(variable, NULL, &context) == 0 && context == NULL) {
        context = PyDict_New(); /* no value and no default: nothing is current */
    }
    Py_DECREF(variable);
    return context;
}

/* The Python method, with the same arguments (the tracer first). */
static PyObject *fall_back(Starter *self, PyObject *const *args, size_t nargsf,
                           PyObject *kwnames) {
    Py_ssize_t n = PyVectorcall_NARGS(nargsf);
    Py_ssize_t total = n + (kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames));
    PyObject **all = PyMem_Malloc((size_t)(total + 1) * sizeof(PyObject *));
    if (all == NULL) {
        return PyErr_NoMemory();
    }
    all[0] = self->scope;
    for (Py_ssize_t i = 0; i < total; i++) {
        all[i + 1] = args[i];
    }
    PyObject *result = PyObject_Vectorcall(Fallback, all, (size_t)(n + 1), kwnames);
    PyMem_Free(all);
    return result;
}

/* `start_span`'s arguments in `v` (NULL: not given); -1 with TypeError set on a bad call. */
static int parse(PyObject *const *args, size_t nargsf, PyObject *kwnames, PyObject **v) {
    Py_ssize_t n = PyVectorcall_NARGS(nargsf);
    if (n > PARAMS) {
        PyErr_Format(PyExc_TypeError, "start_span() takes at most %d arguments (%zd given)",
                     PARAMS, n);
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        v[i] = args[i];
    }
    if (kwnames != NULL) {
        for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(kwnames); k++) {
            PyObject *key = PyTuple_GET_ITEM(kwnames, k);
            int found = -1;
            for (int j = 0; j < PARAMS && found < 0; j++) {
                if (key == Params[j]) {
                    found = j;
                }
            }
            for (int j = 0; j < PARAMS && found < 0; j++) {
                if (PyUnicode_Compare(key, Params[j]) == 0) {
                    found = j;
                }
            }
            if (found < 0) {
                PyErr_Format(PyExc_TypeError,
                             "start_span() got an unexpected keyword argument '%U'", key);
                return -1;
            }
            if (v[found] != NULL) {
                PyErr_Format(PyExc_TypeError, "start_span() got multiple values for argument '%U'",
                             key);
                return -1;
            }
            v[found] = args[n + k];
        }
    }
    if (v[P_NAME] == NULL) {
        PyErr_SetString(PyExc_TypeError, "start_span() missing required argument 'name'");
        return -1;
    }
    return 0;
}

static int is_plain(PyObject *value) {
    PyTypeObject *type = Py_TYPE(value);
    return type == &PyUnicode_Type || type == &PyBool_Type || type == &PyLong_Type ||
           type == &PyFloat_Type || type == &PyTuple_Type;
}

/* dict(attributes), or `_kept` of it when a value is None, a list or of another type. */
static PyObject *own_attributes(PyObject *attributes) {
    PyObject *own = PyDict_Copy(attributes);
    if (own == NULL) {
        return NULL;
    }
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(own, &pos, &key, &value)) {
        if (!is_plain(value)) {
            PyObject *kept = PyObject_CallOneArg(Kept, own);
            Py_DECREF(own);
            return kept;
        }
    }
    return own;
}

static void put(PyObject *span, int field, PyObject *value) {
    /* a new span's slots are empty: the reference is the span's */
    *(PyObject **)((char *)span + Offsets[field]) = value;
}

static PyObject *start(Starter *self, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
    PyObject *v[PARAMS] = {NULL};
    if (parse(args, nargsf, kwnames, v) < 0) {
        return NULL;
    }
    PyObject *attributes = v[P_ATTRIBUTES];
    if (attributes == Py_None) {
        attributes = NULL;
    }
    if (attributes != NULL && !PyDict_Check(attributes)) {
        return fall_back(self, args, nargsf, kwnames);
    }
    PyObject *context = v[P_CONTEXT];
    if (context == NULL || context == Py_None) {
        context = current_context();
        if (context == NULL) {
            return NULL;
        }
    } else {
        Py_INCREF(context);
    }
    if (!PyDict_Check(context)) {
        Py_DECREF(context);
        return fall_back(self, args, nargsf, kwnames);
    }
    PyObject *current = PyDict_GetItemWithError(context, SpanKey);
    Py_XINCREF(current);
    Py_DECREF(context);
    if (current == NULL && PyErr_Occurred()) {
        return NULL;
    }
    PyObject *parent = NULL; /* the current span's SpanContext, if there is one */
    if (current != NULL && current != Py_None) {
        if (Py_TYPE(current) == SpanType) {
            parent = *(PyObject **)((char *)current + Offsets[F_CONTEXT]);
            Py_XINCREF(parent);
        } else if (Py_TYPE(current) == NonRecordingType) {
            parent = PyObject_GetAttr(current, s_remote);
            if (parent == NULL) {
                Py_DECREF(current);
                return NULL;
            }
        } else {
            Py_DECREF(current);
            return fall_back(self, args, nargsf, kwnames);
        }
        if (parent == NULL || !PyTuple_Check(parent) || PyTuple_GET_SIZE(parent) != 6) {
            Py_XDECREF(parent);
            Py_DECREF(current);
            return fall_back(self, args, nargsf, kwnames);
        }
    }
    Py_XDECREF(current);

    PyObject *trace_id = NULL, *state = NULL, *span_id = NULL, *ids = NULL, *span = NULL;
    PyObject *own = NULL, *links = NULL, *started = NULL;
    long flags = RANDOM_FLAG;
    int valid = 0;
    if (parent != NULL) {
        valid = PyObject_IsTrue(PyTuple_GET_ITEM(parent, 5));
        if (valid < 0) {
            goto fail;
        }
    }
    if (valid) {
        long parent_flags = PyLong_AsLong(PyTuple_GET_ITEM(parent, 3));
        if (parent_flags == -1 && PyErr_Occurred()) {
            goto fail;
        }
        flags = parent_flags & RANDOM_FLAG;
        trace_id = Py_NewRef(PyTuple_GET_ITEM(parent, 0));
        state = Py_NewRef(PyTuple_GET_ITEM(parent, 4));
    } else {
        Py_CLEAR(parent); /* an invalid parent is no parent */
        trace_id = new_id(s_bits128);
        if (trace_id == NULL) {
            goto fail;
        }
        state = Py_NewRef(NoState);
    }
    int sampled = 1;
    if (self->sampler != NULL) {
        PyObject *decision = PyObject_CallFunctionObjArgs(
            self->sampler, parent == NULL ? Py_None : parent, trace_id, NULL);
        if (decision == NULL) {
            goto fail;
        }
        sampled = PyObject_IsTrue(decision);
        Py_DECREF(decision);
        if (sampled < 0) {
            goto fail;
        }
    }
    span_id = new_id(s_bits64);
    if (span_id == NULL) {
        goto fail;
    }
    PyObject *trace_flags = PyList_GetItem(Flags, sampled ? flags | SAMPLED_FLAG : flags);
    if (trace_flags == NULL) {
        goto fail;
    }
    ids = ContextType->tp_alloc(ContextType, 6);
    if (ids == NULL) {
        goto fail;
    }
    PyTuple_SET_ITEM(ids, 0, trace_id);
    PyTuple_SET_ITEM(ids, 1, span_id);
    PyTuple_SET_ITEM(ids, 2, Py_NewRef(Py_False));
    PyTuple_SET_ITEM(ids, 3, Py_NewRef(trace_flags));
    PyTuple_SET_ITEM(ids, 4, state);
    PyTuple_SET_ITEM(ids, 5, Py_NewRef(Py_True));
    trace_id = span_id = state = NULL; /* the tuple's now */
    if (!sampled) {
        Py_XDECREF(parent);
        PyObject *unsampled = PyObject_CallOneArg((PyObject *)NonRecordingType, ids);
        Py_DECREF(ids);
        return unsampled;
    }

    int some = attributes == NULL ? 0 : PyDict_GET_SIZE(attributes) > 0;
    own = some ? own_attributes(attributes) : PyDict_New();
    if (own == NULL) {
        goto fail;
    }
    PyObject *given_links = v[P_LINKS];
    int has_links = given_links == NULL ? 0 : PyObject_IsTrue(given_links);
    if (has_links < 0) {
        goto fail;
    }
    links = has_links ? PySequence_Tuple(given_links) : Py_NewRef(s_empty);
    if (links == NULL) {
        goto fail;
    }
    PyObject *given_start = v[P_START_TIME];
    int has_start = given_start == NULL ? 0 : PyObject_IsTrue(given_start);
    if (has_start < 0) {
        goto fail;
    }
    started = has_start ? Py_NewRef(given_start) : now_ns();
    if (started == NULL) {
        goto fail;
    }
    span = SpanType->tp_alloc(SpanType, 0);
    if (span == NULL) {
        goto fail;
    }
    put(span, F_NAME, Py_NewRef(v[P_NAME]));
    put(span, F_CONTEXT, ids);
    put(span, F_PARENT, parent == NULL ? Py_NewRef(Py_None) : parent);
    put(span, F_KIND, Py_NewRef(v[P_KIND] == NULL ? Internal : v[P_KIND]));
    put(span, F_ATTRIBUTES, own);
    put(span, F_EVENTS, Py_NewRef(Py_None));
    put(span, F_LINKS, links);
    put(span, F_STATUS, Py_NewRef(Unset));
    put(span, F_START_TIME, started);
    put(span, F_END_TIME, Py_NewRef(Py_None));
    put(span, F_SCOPE, Py_NewRef(self->scope));
    put(span, F_BATCHER, Py_NewRef(self->batcher));
    put(span, F_RECORD_EXCEPTION, Py_NewRef(v[P_RECORD] == NULL ? Py_True : v[P_RECORD]));
    put(span, F_SET_STATUS, Py_NewRef(v[P_SET] == NULL ? Py_True : v[P_SET]));
    return span;

fail:
    Py_XDECREF(parent);
    Py_XDECREF(trace_id);
    Py_XDECREF(state);
    Py_XDECREF(span_id);
    Py_XDECREF(ids);
    Py_XDECREF(own);
    Py_XDECREF(links);
    Py_XDECREF(started);
    return NULL;
}

static PyObject *starter_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf,
                                    PyObject *kwnames) {
    return start((Starter *)self, args, nargsf, kwnames);
}

static PyObject *starter_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    PyObject *scope, *sampler, *batcher;
    static char *keywords[] = {"scope", "sampler", "batcher", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOO:Starter", keywords, &scope, &sampler,
                                     &batcher)) {
        return NULL;
    }
    if (SpanType == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "configure() has not been called");
        return NULL;
    }
    Starter *self = (Starter *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->scope = Py_NewRef(scope);
    self->sampler = sampler == Py_None ? NULL : Py_NewRef(sampler);
    self->batcher = Py_NewRef(batcher);
    self->vectorcall = starter_vectorcall;
    return (PyObject *)self;
}

static int starter_traverse(Starter *self, visitproc visit, void *arg) {
    Py_VISIT(self->scope);
    Py_VISIT(self->sampler);
    Py_VISIT(self->batcher);
    return 0;
}

static int starter_clear(Starter *self) {
    Py_CLEAR(self->scope);
    Py_CLEAR(self->sampler);
    Py_CLEAR(self->batcher);
    return 0;
}

static void starter_dealloc(Starter *self) {
    PyObject_GC_UnTrack(self);
    starter_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

PyDoc_STRVAR(starter_doc,
             "Starter(scope, sampler, batcher)\n--\n\n"
             "A LeanTracer's start_span (same arguments, same result), for `scope`, sampling "
             "with `sampler` (None: every span) and ending spans into `batcher`.");

static PyTypeObject StarterType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "llmesh.services.telemetry._lean_native.Starter",
    .tp_basicsize = sizeof(Starter),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = starter_doc,
    .tp_new = starter_new,
    .tp_traverse = (traverseproc)starter_traverse,
    .tp_clear = (inquiry)starter_clear,
    .tp_dealloc = (destructor)starter_dealloc,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(Starter, vectorcall),
};

/* ------------------------------------------------------------ a LeanSpan's own methods */

static PyObject **field(PyObject *span, int which) {
    return (PyObject **)((char *)span + Offsets[which]);
}

/* Whether `span` is a LeanSpan whose slots `fields` are set (the C methods' own case). */
static int plain_span(PyObject *span, const int *fields, int count) {
    if (Py_TYPE(span) != SpanType) {
        return 0;
    }
    for (int i = 0; i < count; i++) {
        if (*field(span, fields[i]) == NULL) {
            return 0;
        }
    }
    return 1;
}

/* The Python method `name` (span_methods' dict), called with the same arguments. */
static PyObject *python_method(const char *name, PyObject *const *args, size_t nargsf,
                               PyObject *kwnames) {
    PyObject *method = PythonMethods == NULL ? NULL : PyDict_GetItemString(PythonMethods, name);
    if (method == NULL) {
        PyErr_Format(PyExc_RuntimeError, "no Python LeanSpan.%s", name);
        return NULL;
    }
    return PyObject_Vectorcall(method, args, nargsf, kwnames);
}

/* SpanBatcher.add(span)'s common case: the span appended to the batcher's queue when the
 * queue is below its capacity and the span does not complete a batch (whose thread is then
 * woken). 1: done; 0: not done, for the Python method (any other batcher, a full queue, a
 * full batch); -1: an error. */
static int queued(PyObject *batcher, PyObject *span) {
    if (BatcherType == NULL || Py_TYPE(batcher) != BatcherType) {
        return 0;
    }
    PyObject *queue = PyObject_GetAttr(batcher, s_queue);
    PyObject *capacity = PyObject_GetAttr(batcher, s_capacity);
    PyObject *batch = PyObject_GetAttr(batcher, s_batch);
    int done = 0;
    if (queue != NULL && capacity != NULL && batch != NULL && PyLong_CheckExact(capacity) &&
        PyLong_CheckExact(batch)) {
        Py_ssize_t size = PyObject_Size(queue);
        Py_ssize_t most = PyLong_AsSsize_t(capacity);
        Py_ssize_t full = PyLong_AsSsize_t(batch);
        if (size >= 0 && !PyErr_Occurred() && size < most && size + 1 != full) {
            PyObject *appended = PyObject_CallMethodOneArg(queue, s_append, span);
            done = appended == NULL ? -1 : 1;
            Py_XDECREF(appended);
        }
    }
    if (done == 0) {
        PyErr_Clear(); /* whatever failed here, the Python method meets it again */
    }
    Py_XDECREF(queue);
    Py_XDECREF(capacity);
    Py_XDECREF(batch);
    return done;
}

/* LeanSpan.end(end_time=None): the Python method's effect (the end time set once, the span
 * handed to its sink), for a LeanSpan whose slots are set; anything else is the Python
 * method's. */
static PyObject *span_end(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs,
                          PyObject *kwnames) {
    if (nargs < 1 || nargs > 2 || kwnames != NULL || Py_TYPE(args[0]) != SpanType ||
        *field(args[0], F_END_TIME) == NULL || *field(args[0], F_BATCHER) == NULL) {
        return python_method("end", args, (size_t)nargs, kwnames);
    }
    PyObject *span = args[0];
    if (*field(span, F_END_TIME) != Py_None) {
        Py_RETURN_NONE;
    }
    PyObject *given = nargs == 2 ? args[1] : Py_None;
    int has_end = given == Py_None ? 0 : PyObject_IsTrue(given);
    if (has_end < 0) {
        return NULL;
    }
    PyObject *ended = has_end ? Py_NewRef(given) : now_ns();
    if (ended == NULL) {
        return NULL;
    }
    Py_SETREF(*field(span, F_END_TIME), ended);
    PyObject *batcher = Py_NewRef(*field(span, F_BATCHER));
    int done = queued(batcher, span);
    PyObject *result = done == 0 ? PyObject_CallMethodOneArg(batcher, s_add, span) : NULL;
    Py_DECREF(batcher);
    if (done < 0 || (done == 0 && result == NULL)) {
        return NULL;
    }
    Py_XDECREF(result);
    Py_RETURN_NONE;
}

/* LeanSpan.set_attributes(attributes): a dict's items added to the span's attributes (None
 * values left out, lists kept as tuples) while the span is not ended; anything else is the
 * Python method's. */
static PyObject *span_set_attributes(PyObject *Py_UNUSED(module), PyObject *const *args,
                                     Py_ssize_t nargs, PyObject *kwnames) {
    if (nargs != 2 || kwnames != NULL || Py_TYPE(args[0]) != SpanType ||
        !PyDict_Check(args[1]) || *field(args[0], F_END_TIME) == NULL ||
        *field(args[0], F_ATTRIBUTES) == NULL || !PyDict_Check(*field(args[0], F_ATTRIBUTES))) {
        return python_method("set_attributes", args, (size_t)nargs, kwnames);
    }
    if (*field(args[0], F_END_TIME) != Py_None) {
        Py_RETURN_NONE;
    }
    PyObject *own = Py_NewRef(*field(args[0], F_ATTRIBUTES));
    PyObject *given = args[1];
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    int plain = 1;
    while (plain && PyDict_Next(given, &pos, &key, &value)) {
        plain = is_plain(value);
    }
    int done = 0;
    if (plain) {
        done = PyDict_Update(own, given);
    } else {
        PyObject *items = PyDict_Items(given); /* a copy: nothing runs on `given` meanwhile */
        if (items == NULL) {
            done = -1;
        }
        for (Py_ssize_t i = 0; done == 0 && i < PyList_GET_SIZE(items); i++) {
            PyObject *item = PyList_GET_ITEM(items, i);
            key = PyTuple_GET_ITEM(item, 0);
            value = PyTuple_GET_ITEM(item, 1);
            if (value == Py_None) {
                continue;
            }
            if (Py_IS_TYPE(value, &PyList_Type)) {
                PyObject *kept = PyList_AsTuple(value);
                done = kept == NULL ? -1 : PyDict_SetItem(own, key, kept);
                Py_XDECREF(kept);
            } else {
                done = PyDict_SetItem(own, key, value);
            }
        }
        Py_XDECREF(items);
    }
    Py_DECREF(own);
    if (done < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* LeanSpan.is_recording(): whether the span has not ended (a slot not set: the attribute
 * read, which raises as the Python method's read does). */
static PyObject *span_is_recording(PyObject *Py_UNUSED(module), PyObject *self) {
    PyObject *ended = Py_TYPE(self) == SpanType ? *field(self, F_END_TIME) : NULL;
    if (ended == NULL) {
        ended = PyObject_GetAttrString(self, "end_time");
        if (ended == NULL) {
            return NULL;
        }
        Py_DECREF(ended); /* still referenced by the span: only compared below */
    }
    return PyBool_FromLong(ended == Py_None);
}

/* LeanSpan.get_span_context(): the span's context. */
static PyObject *span_get_span_context(PyObject *Py_UNUSED(module), PyObject *self) {
    static const int needed[] = {F_CONTEXT};
    if (!plain_span(self, needed, 1)) {
        return python_method("get_span_context", &self, 1, NULL);
    }
    return Py_NewRef(*field(self, F_CONTEXT));
}

/* LeanSpan.set_attribute(key, value): set while the span is not ended, None left out, a list
 * kept as a tuple. */
static PyObject *span_set_attribute(PyObject *Py_UNUSED(module), PyObject *const *args,
                                    Py_ssize_t nargs, PyObject *kwnames) {
    static const int needed[] = {F_END_TIME, F_ATTRIBUTES};
    if (nargs != 3 || kwnames != NULL || !plain_span(args[0], needed, 2) ||
        !PyDict_Check(*field(args[0], F_ATTRIBUTES))) {
        return python_method("set_attribute", args, (size_t)nargs, kwnames);
    }
    PyObject *value = args[2];
    if (*field(args[0], F_END_TIME) != Py_None || value == Py_None) {
        Py_RETURN_NONE;
    }
    PyObject *kept = Py_IS_TYPE(value, &PyList_Type) ? PyList_AsTuple(value) : Py_NewRef(value);
    if (kept == NULL) {
        return NULL;
    }
    int done = PyDict_SetItem(*field(args[0], F_ATTRIBUTES), args[1], kept);
    Py_DECREF(kept);
    if (done < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* LeanSpan.update_name(name): the name changed while the span is not ended. */
static PyObject *span_update_name(PyObject *Py_UNUSED(module), PyObject *const *args,
                                  Py_ssize_t nargs, PyObject *kwnames) {
    static const int needed[] = {F_END_TIME, F_NAME};
    if (nargs != 2 || kwnames != NULL || !plain_span(args[0], needed, 2)) {
        return python_method("update_name", args, (size_t)nargs, kwnames);
    }
    if (*field(args[0], F_END_TIME) == Py_None) {
        Py_SETREF(*field(args[0], F_NAME), Py_NewRef(args[1]));
    }
    Py_RETURN_NONE;
}

static PyMethodDef SpanEnd = {"end", (PyCFunction)(void (*)(void))span_end,
                              METH_FASTCALL | METH_KEYWORDS,
                              "end(self, end_time=None)\n--\n\nLeanSpan.end, in C."};
static PyMethodDef SpanSetAttributes = {
    "set_attributes", (PyCFunction)(void (*)(void))span_set_attributes,
    METH_FASTCALL | METH_KEYWORDS,
    "set_attributes(self, attributes)\n--\n\nLeanSpan.set_attributes, in C."};
static PyMethodDef SpanIsRecording = {"is_recording", (PyCFunction)span_is_recording, METH_O,
                                      "is_recording(self)\n--\n\nLeanSpan.is_recording, in C."};
static PyMethodDef SpanGetSpanContext = {
    "get_span_context", (PyCFunction)span_get_span_context, METH_O,
    "get_span_context(self)\n--\n\nLeanSpan.get_span_context, in C."};
static PyMethodDef SpanSetAttribute = {
    "set_attribute", (PyCFunction)(void (*)(void))span_set_attribute,
    METH_FASTCALL | METH_KEYWORDS,
    "set_attribute(self, key, value)\n--\n\nLeanSpan.set_attribute, in C."};
static PyMethodDef SpanUpdateName = {
    "update_name", (PyCFunction)(void (*)(void))span_update_name, METH_FASTCALL | METH_KEYWORDS,
    "update_name(self, name)\n--\n\nLeanSpan.update_name, in C."};

/* LeanSpan's methods in C, by name, as methods to put on the class (bound to the span);
 * `python` is the class's Python methods by name, which they call for anything unusual. */
static PyObject *span_methods(PyObject *module, PyObject *python) {
    if (SpanType == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "configure() has not been called");
        return NULL;
    }
    if (!PyDict_Check(python)) {
        PyErr_SetString(PyExc_TypeError, "the Python methods, in a dict by name");
        return NULL;
    }
    Py_XSETREF(PythonMethods, Py_NewRef(python));
    PyMethodDef *defs[] = {&SpanEnd,           &SpanSetAttributes, &SpanIsRecording,
                           &SpanGetSpanContext, &SpanSetAttribute,  &SpanUpdateName};
    PyObject *result = PyDict_New();
    for (size_t i = 0; result != NULL && i < sizeof(defs) / sizeof(defs[0]); i++) {
        PyObject *function = PyCFunction_NewEx(defs[i], module, NULL);
        PyObject *bound = function == NULL ? NULL : PyInstanceMethod_New(function);
        Py_XDECREF(function);
        if (bound == NULL || PyDict_SetItemString(result, defs[i]->ml_name, bound) < 0) {
            Py_CLEAR(result);
        }
        Py_XDECREF(bound);
    }
    return result;
}

PyDoc_STRVAR(span_methods_doc,
             "span_methods(python, /)\n--\n\n"
             "LeanSpan's methods in C by name, as methods for the class; python: its Python "
             "methods by name.");

/* The offset of each field's slot on `type` (LeanSpan); -1 with TypeError if one is not a
 * plain object slot of the type. */
static int find_offsets(PyTypeObject *type) {
    for (int i = 0; i < FIELDS; i++) {
        PyObject *found = PyObject_GetAttrString((PyObject *)type, FieldNames[i]);
        if (found == NULL) {
            return -1;
        }
        int slot = Py_IS_TYPE(found, &PyMemberDescr_Type) &&
                   PyDescr_TYPE(found) == type &&
                   ((PyMemberDescrObject *)found)->d_member->type == T_OBJECT_EX &&
                   !(((PyMemberDescrObject *)found)->d_member->flags & READ_RESTRICTED);
        if (slot) {
            Offsets[i] = ((PyMemberDescrObject *)found)->d_member->offset;
        }
        Py_DECREF(found);
        if (!slot) {
            PyErr_Format(PyExc_TypeError, "%s.%s is not a slot of its own", type->tp_name,
                         FieldNames[i]);
            return -1;
        }
    }
    return 0;
}

static PyObject *configure(PyObject *Py_UNUSED(module), PyObject *args) {
    PyObject *span, *ids, *remote, *key, *flags, *no_state, *getrandbits, *kept, *unset,
        *internal, *current, *fallback, *batcher;
    if (!PyArg_ParseTuple(args, "O!O!O!OO!OOOOOOOO!:configure", &PyType_Type, &span,
                          &PyType_Type, &ids, &PyType_Type, &remote, &key, &PyList_Type, &flags,
                          &no_state, &getrandbits, &kept, &unset, &internal, &current,
                          &fallback, &PyType_Type, &batcher)) {
        return NULL;
    }
    if (!PyType_IsSubtype((PyTypeObject *)ids, &PyTuple_Type) || PyList_GET_SIZE(flags) != 256) {
        PyErr_SetString(PyExc_TypeError, "a SpanContext tuple type and 256 flags");
        return NULL;
    }
    if (find_offsets((PyTypeObject *)span) < 0) {
        return NULL;
    }
    Py_XSETREF(SpanType, (PyTypeObject *)Py_NewRef(span));
    Py_XSETREF(ContextType, (PyTypeObject *)Py_NewRef(ids));
    Py_XSETREF(NonRecordingType, (PyTypeObject *)Py_NewRef(remote));
    Py_XSETREF(SpanKey, Py_NewRef(key));
    Py_XSETREF(Flags, Py_NewRef(flags));
    Py_XSETREF(NoState, Py_NewRef(no_state));
    Py_XSETREF(GetRandBits, Py_NewRef(getrandbits));
    Py_XSETREF(Kept, Py_NewRef(kept));
    Py_XSETREF(Unset, Py_NewRef(unset));
    Py_XSETREF(Internal, Py_NewRef(internal));
    Py_XSETREF(Current, Py_NewRef(current));
    Py_XSETREF(Fallback, Py_NewRef(fallback));
    Py_XSETREF(BatcherType, (PyTypeObject *)Py_NewRef(batcher));
    Py_RETURN_NONE;
}

PyDoc_STRVAR(configure_doc,
             "configure(LeanSpan, SpanContext, NonRecordingSpan, span_key, flags, no_state, "
             "getrandbits, kept, unset_status, internal, current_module, fallback, "
             "SpanBatcher, /)\n--\n\n"
             "What the starters build spans from (lean_trace calls it once).");

static PyMethodDef methods[] = {
    {"configure", (PyCFunction)configure, METH_VARARGS, configure_doc},
    {"span_methods", (PyCFunction)span_methods, METH_O, span_methods_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    "llmesh.services.telemetry._lean_native",
    "A lean tracer's span start, in C (see lean_trace).",
    -1,
    methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC PyInit__lean_native(void) {
    for (int i = 0; i < PARAMS; i++) {
        Params[i] = PyUnicode_InternFromString(ParamNames[i]);
        if (Params[i] == NULL) {
            return NULL;
        }
    }
    s_variable = PyUnicode_InternFromString("_VARIABLE");
    s_current = PyUnicode_InternFromString("current");
    s_remote = PyUnicode_InternFromString("_context");
    s_bits64 = PyLong_FromLong(64);
    s_bits128 = PyLong_FromLong(128);
    s_empty = PyTuple_New(0);
    s_add = PyUnicode_InternFromString("add");
    s_queue = PyUnicode_InternFromString("_queue");
    s_capacity = PyUnicode_InternFromString("_capacity");
    s_batch = PyUnicode_InternFromString("_batch");
    s_append = PyUnicode_InternFromString("append");
    if (s_variable == NULL || s_current == NULL || s_remote == NULL || s_bits64 == NULL ||
        s_bits128 == NULL || s_empty == NULL || s_add == NULL || s_queue == NULL ||
        s_capacity == NULL || s_batch == NULL || s_append == NULL) {
        return NULL;
    }
    if (PyType_Ready(&StarterType) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL) {
        return NULL;
    }
    if (PyModule_AddObjectRef(module, "Starter", (PyObject *)&StarterType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
