/* One lean span as an OTLP ``Span`` field, in C: the bytes `SpanEncoder._span` writes.
 *
 * llmesh.services.telemetry.otlp_wire encodes each span of a batch with `encode_span` when
 * this module imported, and with its own Python code otherwise. The output is the same,
 * byte for byte: the ``ScopeSpans.spans`` field (tag, length, the ``Span`` message). A span
 * this code does not cover returns None and the Python encoder writes it: a non-empty trace
 * state, links, an attribute key or value of a type other than str, bool, int, float, None,
 * bytes or a tuple or list of those, an int outside int64, a string UTF-8 cannot carry
 * (lone surrogates), ids, times or statuses of unexpected types. Nothing else is dropped
 * or changed here: whatever the Python encoder would leave out or fail on is its own to do.
 *
 * The span's fields are read from a LeanSpan's slots (from any other object, by getattr).
 * No Python code runs while the bytes are written: the only Python-level calls (a
 * non-default trace state's __len__, truth tests of the parent's is_remote, end_time, links
 * and events) come before, and nothing that could start a garbage collection is allocated
 * while a dict's items are walked.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h> /* T_OBJECT_EX, READ_RESTRICTED: what a slot's member is */

#include <stdint.h>
#include <string.h>

enum { OK = 0, DECLINE = 1, FAIL = -1 };
/* FAIL: a Python exception is set (out of memory); DECLINE: the Python encoder's span. */

#define MAX_DEPTH 32 /* tuples within tuples, deeper than this: the Python encoder's */

/* ------------------------------------------------------------------ the output buffer */

typedef struct {
    unsigned char *data;
    Py_ssize_t len;
    Py_ssize_t cap;
    unsigned char *heap; /* non-NULL once grown past `stack` */
    unsigned char stack[4096];
} Buf;

static void buf_init(Buf *b) {
    b->data = b->stack;
    b->len = 0;
    b->cap = (Py_ssize_t)sizeof(b->stack);
    b->heap = NULL;
}

static void buf_free(Buf *b) {
    if (b->heap != NULL) {
        PyMem_Free(b->heap);
        b->heap = NULL;
    }
}

static int buf_grow(Buf *b, Py_ssize_t more) {
    Py_ssize_t cap = b->cap;
    while (cap - b->len < more) {
        if (cap > PY_SSIZE_T_MAX / 2) {
            PyErr_NoMemory();
            return FAIL;
        }
        cap *= 2;
    }
    unsigned char *grown;
    if (b->heap == NULL) {
        grown = PyMem_Malloc((size_t)cap);
        if (grown != NULL) {
            memcpy(grown, b->data, (size_t)b->len);
        }
    } else {
        grown = PyMem_Realloc(b->heap, (size_t)cap);
    }
    if (grown == NULL) {
        PyErr_NoMemory();
        return FAIL;
    }
    b->heap = b->data = grown;
    b->cap = cap;
    return OK;
}

/* Room for `more` bytes. */
static inline int buf_reserve(Buf *b, Py_ssize_t more) {
    return more <= b->cap - b->len ? OK : buf_grow(b, more);
}

/* The writers below assume the room was reserved. */

static inline void put_byte(Buf *b, unsigned char byte) { b->data[b->len++] = byte; }

static inline void put_varint(Buf *b, uint64_t value) {
    while (value > 127) {
        b->data[b->len++] = (unsigned char)((value & 127) | 128);
        value >>= 7;
    }
    b->data[b->len++] = (unsigned char)value;
}

static inline int varint_size(uint64_t value) {
    int size = 1;
    while (value > 127) {
        value >>= 7;
        size++;
    }
    return size;
}

static inline void put_fixed64_le(Buf *b, uint64_t value) {
    for (int i = 0; i < 8; i++) {
        b->data[b->len++] = (unsigned char)(value >> (8 * i));
    }
}

static inline void put_fixed64_be(Buf *b, uint64_t value) {
    for (int i = 7; i >= 0; i--) {
        b->data[b->len++] = (unsigned char)(value >> (8 * i));
    }
}

/* A length-delimited field: its tag, the length, `size` bytes. */
static inline int put_bytes_field(Buf *b, unsigned char tag, const char *bytes, Py_ssize_t size) {
    if (buf_reserve(b, 1 + 10 + size) < 0) {
        return FAIL;
    }
    put_byte(b, tag);
    put_varint(b, (uint64_t)size);
    memcpy(b->data + b->len, bytes, (size_t)size);
    b->len += size;
    return OK;
}

/* A nested message: its tag and one byte kept for its length (most are under 128 bytes);
 * `close` writes the length once the body is written, moving the body when it takes more
 * bytes. Returns where the length goes, or -1 (out of memory). */
static inline Py_ssize_t open_field(Buf *b, unsigned char tag) {
    if (buf_reserve(b, 2) < 0) {
        return -1;
    }
    put_byte(b, tag);
    b->len++;
    return b->len - 1;
}

static int close_long_field(Buf *b, Py_ssize_t at) {
    Py_ssize_t size = b->len - at - 1;
    int extra = varint_size((uint64_t)size) - 1;
    if (extra > 0) {
        if (buf_reserve(b, extra) < 0) {
            return FAIL;
        }
        memmove(b->data + at + 1 + extra, b->data + at + 1, (size_t)size);
        b->len += extra;
    }
    Py_ssize_t end = b->len;
    b->len = at;
    put_varint(b, (uint64_t)size);
    b->len = end;
    return OK;
}

static inline int close_field(Buf *b, Py_ssize_t at) {
    Py_ssize_t size = b->len - at - 1;
    if (size < 128) {
        b->data[at] = (unsigned char)size;
        return OK;
    }
    return close_long_field(b, at);
}

/* ------------------------------------------------------------ what the module looks up */

static PyObject *SpanContextType; /* opentelemetry.trace.SpanContext */
static PyObject *StatusType;      /* opentelemetry.trace.Status */
static PyObject *DefaultTraceState;
static PyObject *Kinds[5];       /* SpanKind members by value (OTLP's number is one more) */
static PyObject *StatusCodes[3]; /* StatusCode.UNSET, OK, ERROR */

static PyObject *s_name, *s_context, *s_parent, *s_kind, *s_attributes, *s_events, *s_links,
    *s_status, *s_start_time, *s_end_time, *s_status_code, *s_description;

/* ------------------------------------------------------------------------- the values */

/* A str's UTF-8 bytes; NULL when it has none (lone surrogates: the error is cleared). */
static inline const char *utf8(PyObject *text, Py_ssize_t *size) {
    if (PyUnicode_IS_COMPACT_ASCII(text)) { /* most keys and values: the bytes as they are */
        *size = PyUnicode_GET_LENGTH(text);
        return (const char *)PyUnicode_DATA(text);
    }
    const char *bytes = PyUnicode_AsUTF8AndSize(text, size);
    if (bytes == NULL) {
        PyErr_Clear();
    }
    return bytes;
}

/* An ``AnyValue`` message's body, as otlp_wire._value writes it. */
static int put_value(Buf *b, PyObject *value, int depth) {
    PyTypeObject *type = Py_TYPE(value);
    if (type == &PyUnicode_Type) {
        Py_ssize_t size;
        const char *text = utf8(value, &size);
        if (text == NULL) {
            return DECLINE;
        }
        return put_bytes_field(b, 0x0a, text, size);
    }
    if (type == &PyBool_Type) {
        if (buf_reserve(b, 2) < 0) {
            return FAIL;
        }
        put_byte(b, 0x10);
        put_byte(b, value == Py_True ? 1 : 0);
        return OK;
    }
    if (type == &PyLong_Type) {
        int overflow;
        long long number = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (overflow) {
            return DECLINE; /* outside int64 */
        }
        if (number == -1 && PyErr_Occurred()) {
            PyErr_Clear();
            return DECLINE;
        }
        if (buf_reserve(b, 11) < 0) {
            return FAIL;
        }
        put_byte(b, 0x18);
        put_varint(b, (uint64_t)number); /* a negative one: its two's complement, 10 bytes */
        return OK;
    }
    if (type == &PyFloat_Type) {
        if (buf_reserve(b, 9) < 0) {
            return FAIL;
        }
        put_byte(b, 0x21);
        if (PyFloat_Pack8(PyFloat_AS_DOUBLE(value), (char *)b->data + b->len, 1) < 0) {
            PyErr_Clear();
            b->len--;
            return DECLINE;
        }
        b->len += 8;
        return OK;
    }
    if (value == Py_None) {
        return OK; /* an empty AnyValue */
    }
    if (type == &PyBytes_Type) {
        return put_bytes_field(b, 0x3a, PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value));
    }
    if (type == &PyTuple_Type || type == &PyList_Type) {
        if (depth >= MAX_DEPTH) {
            return DECLINE;
        }
        Py_ssize_t array = open_field(b, 0x2a);
        if (array < 0) {
            return FAIL;
        }
        /* no Python code runs while the items are read: a list cannot change meanwhile */
        Py_ssize_t count = PySequence_Fast_GET_SIZE(value);
        PyObject **items = PySequence_Fast_ITEMS(value);
        for (Py_ssize_t i = 0; i < count; i++) {
            Py_ssize_t item = open_field(b, 0x0a);
            if (item < 0) {
                return FAIL;
            }
            int done = put_value(b, items[i], depth + 1);
            if (done != OK) {
                return done;
            }
            if (close_field(b, item) < 0) {
                return FAIL;
            }
        }
        return close_field(b, array);
    }
    return DECLINE;
}

/* Each item of `attributes` (a dict) as a ``KeyValue`` field of number `tag`. */
static int put_attributes(Buf *b, PyObject *attributes, unsigned char tag) {
    if (!PyDict_CheckExact(attributes)) {
        return DECLINE;
    }
    Py_ssize_t position = 0;
    PyObject *key, *value;
    while (PyDict_Next(attributes, &position, &key, &value)) {
        if (!PyUnicode_CheckExact(key)) {
            return DECLINE;
        }
        Py_ssize_t size;
        const char *text = utf8(key, &size);
        if (text == NULL) {
            return DECLINE;
        }
        Py_ssize_t pair = open_field(b, tag);
        if (pair < 0 || put_bytes_field(b, 0x0a, text, size) < 0) {
            return FAIL;
        }
        Py_ssize_t any = open_field(b, 0x12);
        if (any < 0) {
            return FAIL;
        }
        int done = put_value(b, value, 0);
        if (done != OK) {
            return done;
        }
        if (close_field(b, any) < 0 || close_field(b, pair) < 0) {
            return FAIL;
        }
    }
    return OK;
}

/* An unsigned 64-bit int (exactly an int); DECLINE for anything else. */
static int as_u64(PyObject *number, uint64_t *out) {
    if (!PyLong_CheckExact(number)) {
        return DECLINE;
    }
    unsigned long long value = PyLong_AsUnsignedLongLong(number);
    if (value == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        return DECLINE;
    }
    *out = (uint64_t)value;
    return OK;
}

/* A trace id's 16 bytes, big-endian (an int in [0, 2**128)). */
static int as_trace_id(PyObject *number, unsigned char out[16]) {
    if (!PyLong_CheckExact(number)) {
        return DECLINE;
    }
#if PY_VERSION_HEX >= 0x030D0000
    Py_ssize_t needed = PyLong_AsNativeBytes(
        number, out, 16,
        Py_ASNATIVEBYTES_BIG_ENDIAN | Py_ASNATIVEBYTES_UNSIGNED_BUFFER |
            Py_ASNATIVEBYTES_REJECT_NEGATIVE);
    if (needed < 0) {
        PyErr_Clear();
        return DECLINE;
    }
    return needed <= 16 ? OK : DECLINE;
#else
    if (_PyLong_AsByteArray((PyLongObject *)number, out, 16, 0, 0) < 0) {
        PyErr_Clear(); /* negative, or 2**128 and over */
        return DECLINE;
    }
    return OK;
#endif
}

/* A SpanContext, unpacked as the tuple it is (trace_id, span_id, is_remote, flags, state,
 * is_valid); NULL when it is something else. */
static PyObject **context_items(PyObject *context) {
    if ((PyObject *)Py_TYPE(context) != SpanContextType || PyTuple_GET_SIZE(context) != 6) {
        return NULL;
    }
    return &PyTuple_GET_ITEM(context, 0);
}

/* ----------------------------------------------------------------------------- a span */

enum { NAME, CONTEXT, PARENT, KIND, ATTRIBUTES, EVENTS, LINKS, STATUS, START, END, FIELDS };

static int put_events(Buf *b, PyObject *events) {
    if (!PyList_CheckExact(events) && !PyTuple_CheckExact(events)) {
        return DECLINE;
    }
    Py_ssize_t count = PySequence_Fast_GET_SIZE(events);
    PyObject **items = PySequence_Fast_ITEMS(events);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *event = items[i];
        /* a SpanEvent (name, timestamp, attributes): a tuple unpacked as a tuple */
        if (!PyTuple_Check(event) || Py_TYPE(event)->tp_iter != PyTuple_Type.tp_iter ||
            PyTuple_GET_SIZE(event) != 3) {
            return DECLINE;
        }
        PyObject *name = PyTuple_GET_ITEM(event, 0);
        uint64_t timestamp;
        if (!PyUnicode_CheckExact(name) ||
            as_u64(PyTuple_GET_ITEM(event, 1), &timestamp) != OK) {
            return DECLINE;
        }
        Py_ssize_t size;
        const char *text = utf8(name, &size);
        if (text == NULL) {
            return DECLINE;
        }
        Py_ssize_t field = open_field(b, 0x5a);
        if (field < 0 || buf_reserve(b, 9) < 0) {
            return FAIL;
        }
        put_byte(b, 0x09);
        put_fixed64_le(b, timestamp);
        if (put_bytes_field(b, 0x12, text, size) < 0) {
            return FAIL;
        }
        int done = put_attributes(b, PyTuple_GET_ITEM(event, 2), 0x1a);
        if (done != OK) {
            return done;
        }
        if (close_field(b, field) < 0) {
            return FAIL;
        }
    }
    return OK;
}

/* The ``status`` field: its code (0, 1, 2) and description (NULL: none). */
static int read_status(PyObject *status, int *code, PyObject **description) {
    if ((PyObject *)Py_TYPE(status) != StatusType) {
        return DECLINE;
    }
    /* the `status_code` and `description` properties return these, and no more */
    PyObject *status_code = PyObject_GetAttr(status, s_status_code);
    if (status_code == NULL) {
        PyErr_Clear();
        return DECLINE;
    }
    Py_DECREF(status_code); /* a StatusCode member: the enum keeps it */
    *code = -1;
    for (int i = 0; i < 3; i++) {
        if (status_code == StatusCodes[i]) {
            *code = i;
        }
    }
    if (*code < 0) {
        return DECLINE;
    }
    PyObject *text = PyObject_GetAttr(status, s_description);
    if (text == NULL) {
        PyErr_Clear();
        return DECLINE;
    }
    if (text == Py_None) {
        Py_DECREF(text);
        *description = NULL;
        return OK;
    }
    if (!PyUnicode_CheckExact(text)) {
        Py_DECREF(text);
        return DECLINE;
    }
    *description = text; /* the caller's reference */
    return OK;
}

static int put_status(Buf *b, PyObject *status) {
    int code;
    PyObject *description = NULL;
    int done = read_status(status, &code, &description);
    if (done != OK) {
        return done;
    }
    Py_ssize_t size = 0;
    const char *text = NULL;
    if (description != NULL) {
        text = utf8(description, &size);
        if (text == NULL) {
            Py_DECREF(description);
            return DECLINE;
        }
    }
    done = FAIL;
    Py_ssize_t field = open_field(b, 0x7a);
    if (field < 0) {
        goto out;
    }
    if (size > 0 && put_bytes_field(b, 0x12, text, size) < 0) {
        goto out;
    }
    if (code) {
        if (buf_reserve(b, 2) < 0) {
            goto out;
        }
        put_byte(b, 0x18);
        put_byte(b, (unsigned char)code);
    }
    done = close_field(b, field);
out:
    Py_XDECREF(description);
    return done;
}

static int put_span(Buf *b, PyObject **f) {
    PyObject **context = context_items(f[CONTEXT]);
    if (context == NULL) {
        return DECLINE;
    }
    PyObject *state = context[4];
    if (state != DefaultTraceState) {
        int some = PyObject_IsTrue(state); /* `not state`: its __len__ */
        if (some != 0) {
            PyErr_Clear();
            return DECLINE; /* a trace state (or a broken one): the Python encoder's */
        }
    }
    unsigned char trace_id[16];
    uint64_t span_id, parent_id = 0, start, end;
    if (as_trace_id(context[0], trace_id) != OK || as_u64(context[1], &span_id) != OK) {
        return DECLINE;
    }
    PyObject *parent = f[PARENT];
    int remote = 0;
    if (parent != Py_None) {
        PyObject **parent_items = context_items(parent);
        if (parent_items == NULL || as_u64(parent_items[1], &parent_id) != OK) {
            return DECLINE;
        }
        remote = PyObject_IsTrue(parent_items[2]);
        if (remote < 0) {
            PyErr_Clear();
            return DECLINE;
        }
    }
    int kind = -1;
    for (int i = 0; i < 5; i++) {
        if (f[KIND] == Kinds[i]) {
            kind = i + 1;
        }
    }
    if (kind < 0 || !PyUnicode_CheckExact(f[NAME])) {
        return DECLINE;
    }
    PyObject *end_time = f[END];
    int ended = PyObject_IsTrue(end_time); /* `span.end_time or start` */
    if (ended < 0) {
        PyErr_Clear();
        return DECLINE;
    }
    if (as_u64(f[START], &start) != OK) {
        return DECLINE;
    }
    if (!ended) {
        end = start;
    } else if (as_u64(end_time, &end) != OK) {
        return DECLINE;
    }
    int links = PyObject_IsTrue(f[LINKS]);
    int events = PyObject_IsTrue(f[EVENTS]);
    if (links != 0 || events < 0) {
        PyErr_Clear();
        return DECLINE; /* links: the Python encoder's */
    }
    Py_ssize_t name_size;
    const char *name = utf8(f[NAME], &name_size);
    if (name == NULL) {
        return DECLINE;
    }

    Py_ssize_t span = open_field(b, 0x12);
    if (span < 0 || buf_reserve(b, 2 + 16 + 2 + 8 + 2 + 8) < 0) {
        return FAIL;
    }
    put_byte(b, 0x0a);
    put_byte(b, 0x10);
    memcpy(b->data + b->len, trace_id, 16);
    b->len += 16;
    put_byte(b, 0x12);
    put_byte(b, 0x08);
    put_fixed64_be(b, span_id);
    if (parent != Py_None) {
        put_byte(b, 0x22);
        put_byte(b, 0x08);
        put_fixed64_be(b, parent_id);
    }
    if (put_bytes_field(b, 0x2a, name, name_size) < 0 || buf_reserve(b, 2 + 9 + 9) < 0) {
        return FAIL;
    }
    put_byte(b, 0x30);
    put_byte(b, (unsigned char)kind);
    put_byte(b, 0x39);
    put_fixed64_le(b, start);
    put_byte(b, 0x41);
    put_fixed64_le(b, end);
    int done = put_attributes(b, f[ATTRIBUTES], 0x4a);
    if (done == OK && events) {
        done = put_events(b, f[EVENTS]);
    }
    if (done == OK) {
        done = put_status(b, f[STATUS]);
    }
    if (done != OK) {
        return done;
    }
    if (buf_reserve(b, 6) < 0) {
        return FAIL;
    }
    put_byte(b, 0x85); /* flags: whether the parent is remote is known, and whether it is */
    put_byte(b, 0x01);
    put_byte(b, 0x00);
    put_byte(b, remote ? 0x03 : 0x01);
    put_byte(b, 0x00);
    put_byte(b, 0x00);
    return close_field(b, span);
}

/* Where a span's type keeps the fields when they are all __slots__ (a LeanSpan's): they are
 * read at those offsets, without an attribute lookup each. The type is remembered with its
 * version tag; any change to the type (an attribute set on it or a base) gives it a new tag,
 * and its attributes are looked up again. Other types are read with getattr. */
static PyTypeObject *SlotsType;
static unsigned int SlotsVersion;
static Py_ssize_t SlotsOffsets[FIELDS];

static int current_tag(PyTypeObject *type, unsigned int *tag) {
    if (!PyType_HasFeature(type, Py_TPFLAGS_VALID_VERSION_TAG) || type->tp_version_tag == 0) {
        return 0;
    }
    *tag = type->tp_version_tag;
    return 1;
}

/* Whether `type`'s instances keep every field in a slot, their offsets in SlotsOffsets. */
static int slotted(PyTypeObject *type, PyObject **names) {
    unsigned int tag;
    if (type == SlotsType && current_tag(type, &tag) && tag == SlotsVersion) {
        return 1;
    }
    if (type->tp_getattro != PyObject_GenericGetAttr) {
        return 0;
    }
    Py_ssize_t offsets[FIELDS];
    for (int i = 0; i < FIELDS; i++) {
        /* on the class, a slot's member descriptor is itself (looking it up gives the type
         * its version tag) */
        PyObject *found = PyObject_GetAttr((PyObject *)type, names[i]);
        if (found == NULL) {
            PyErr_Clear();
            return 0;
        }
        int slot = Py_IS_TYPE(found, &PyMemberDescr_Type) &&
                   PyType_IsSubtype(type, PyDescr_TYPE(found)) &&
                   ((PyMemberDescrObject *)found)->d_member->type == T_OBJECT_EX &&
                   !(((PyMemberDescrObject *)found)->d_member->flags & READ_RESTRICTED);
        if (slot) {
            offsets[i] = ((PyMemberDescrObject *)found)->d_member->offset;
        }
        Py_DECREF(found);
        if (!slot) {
            return 0;
        }
    }
    if (!current_tag(type, &tag)) {
        return 0;
    }
    Py_INCREF(type);
    Py_XSETREF(SlotsType, type);
    SlotsVersion = tag;
    memcpy(SlotsOffsets, offsets, sizeof(offsets));
    return 1;
}

static PyObject *encode_span(PyObject *module, PyObject *span) {
    PyObject *names[FIELDS] = {s_name,   s_context, s_parent, s_kind,       s_attributes,
                               s_events, s_links,   s_status, s_start_time, s_end_time};
    PyObject *fields[FIELDS] = {NULL};
    PyObject *result = NULL;
    int done = DECLINE;
    if (slotted(Py_TYPE(span), names)) {
        for (int i = 0; i < FIELDS; i++) {
            fields[i] = *(PyObject **)((char *)span + SlotsOffsets[i]);
            if (fields[i] == NULL) {
                goto out; /* an empty slot: an AttributeError in Python */
            }
            Py_INCREF(fields[i]);
        }
    } else {
        for (int i = 0; i < FIELDS; i++) {
            fields[i] = PyObject_GetAttr(span, names[i]);
            if (fields[i] == NULL) {
                PyErr_Clear();
                goto out;
            }
        }
    }
    Buf b;
    buf_init(&b);
    done = put_span(&b, fields);
    if (done == OK) {
        result = PyBytes_FromStringAndSize((const char *)b.data, b.len);
    }
    buf_free(&b);
out:
    for (int i = 0; i < FIELDS; i++) {
        Py_XDECREF(fields[i]);
    }
    if (done == DECLINE) {
        Py_RETURN_NONE;
    }
    return result; /* NULL with FAIL: the exception is set */
}

PyDoc_STRVAR(encode_span_doc,
             "encode_span(span, /)\n--\n\n"
             "The span's ``ScopeSpans.spans`` field (tag, length, ``Span``), as "
             "otlp_wire.SpanEncoder._span writes it; None for a span it leaves to the Python "
             "encoder.");

static PyMethodDef methods[] = {
    {"encode_span", (PyCFunction)encode_span, METH_O, encode_span_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    "llmesh.services.telemetry._otlp_native",
    "A lean span's OTLP protobuf bytes, written in C (see otlp_wire).",
    -1,
    methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

static int members(PyObject *enum_type, const char **names, PyObject **out, int count) {
    for (int i = 0; i < count; i++) {
        out[i] = PyObject_GetAttrString(enum_type, names[i]);
        if (out[i] == NULL) {
            return -1;
        }
    }
    return 0;
}

static int intern(PyObject **out, const char *text) {
    *out = PyUnicode_InternFromString(text);
    return *out == NULL ? -1 : 0;
}

PyMODINIT_FUNC PyInit__otlp_native(void) {
    static const char *kinds[5] = {"INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER"};
    static const char *codes[3] = {"UNSET", "OK", "ERROR"};
    PyObject *trace = NULL, *span = NULL, *kind = NULL, *code = NULL, *check = NULL;
    PyObject *module = NULL;
    if (intern(&s_name, "name") < 0 || intern(&s_context, "context") < 0 ||
        intern(&s_parent, "parent") < 0 || intern(&s_kind, "kind") < 0 ||
        intern(&s_attributes, "attributes") < 0 || intern(&s_events, "events") < 0 ||
        intern(&s_links, "links") < 0 || intern(&s_status, "status") < 0 ||
        intern(&s_start_time, "start_time") < 0 || intern(&s_end_time, "end_time") < 0 ||
        intern(&s_status_code, "_status_code") < 0 || intern(&s_description, "_description") < 0) {
        return NULL;
    }
    trace = PyImport_ImportModule("opentelemetry.trace");
    span = PyImport_ImportModule("opentelemetry.trace.span");
    if (trace == NULL || span == NULL) {
        goto out;
    }
    SpanContextType = PyObject_GetAttrString(trace, "SpanContext");
    StatusType = PyObject_GetAttrString(trace, "Status");
    DefaultTraceState = PyObject_GetAttrString(span, "DEFAULT_TRACE_STATE");
    kind = PyObject_GetAttrString(trace, "SpanKind");
    code = PyObject_GetAttrString(trace, "StatusCode");
    if (SpanContextType == NULL || StatusType == NULL || DefaultTraceState == NULL ||
        kind == NULL || code == NULL || members(kind, kinds, Kinds, 5) < 0 ||
        members(code, codes, StatusCodes, 3) < 0) {
        goto out;
    }
    /* the numbers this module writes are the members' values */
    for (int i = 0; i < 5; i++) {
        check = PyObject_GetAttrString(Kinds[i], "value");
        if (check == NULL) {
            goto out;
        }
        long value = PyLong_AsLong(check);
        Py_CLEAR(check);
        if (value != i) {
            PyErr_Format(PyExc_ImportError, "SpanKind.%s is not %d", kinds[i], i);
            goto out;
        }
    }
    for (int i = 0; i < 3; i++) {
        check = PyObject_GetAttrString(StatusCodes[i], "value");
        if (check == NULL) {
            goto out;
        }
        long value = PyLong_AsLong(check);
        Py_CLEAR(check);
        if (value != i) {
            PyErr_Format(PyExc_ImportError, "StatusCode.%s is not %d", codes[i], i);
            goto out;
        }
    }
    module = PyModule_Create(&module_def);
out:
    Py_XDECREF(trace);
    Py_XDECREF(span);
    Py_XDECREF(kind);
    Py_XDECREF(code);
    return module;
}
