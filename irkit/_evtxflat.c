/*
 * irkit._evtxflat: the EVTX hot path in C (optional accelerator).
 *
 * Two functions with exactly the behaviour of their pure-Python twins, which stay the
 * reference and the fallback (tests/test_evtxflat.py compares both on every corpus
 * record and on generated JSON shapes):
 *
 *   flatten_event(event) -> (dict, int)    irkit.sources.evtx.flatten_event_py
 *   render(flat, n_system, resolved, resolve, one_line) -> str
 *                                          irkit.messages.MessageCatalog.render_py
 *   uids(sha256, records, ts_descs) -> list[str]
 *                                          irkit.spool.uid, over a batch
 *
 * The input is a decoded pyevtx-rs JSON event (dicts, lists, str, int, bool, float,
 * None). Nothing here reads files or keeps state between calls.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyObject *S_text, *S_attributes, *S_System, *S_EventData, *S_UserData, *S_Data;
static PyObject *S_TimeCreated, *S_SystemTime, *S_Provider, *S_Provider_, *S_Guid;
static PyObject *S_EventID, *S_EventID_Qualifiers, *S_Qualifiers, *S_Correlation;
static PyObject *S_Execution, *S_Security, *S_ActivityID, *S_xmlns, *S_xmlns_colon;
static PyObject *S_empty, *S_true, *S_false, *S_dot, *S_EventData_dot;
static PyObject *S_Channel, *S_Provider_Name, *S_Binary, *S_space;
static PyObject *S_colon_space, *S_eq;

#define MAX_MESSAGE 1024

/* scalar(): one JSON leaf as the XML shows it. New reference. */
static PyObject *
scalar(PyObject *value)
{
    if (PyUnicode_CheckExact(value)) {
        Py_INCREF(value);
        return value;
    }
    if (PyLong_CheckExact(value))
        return PyObject_Str(value);
    if (value == Py_None) {
        Py_INCREF(S_empty);
        return S_empty;
    }
    if (value == Py_True) {
        Py_INCREF(S_true);
        return S_true;
    }
    if (value == Py_False) {
        Py_INCREF(S_false);
        return S_false;
    }
    return PyObject_Str(value);
}

/* out[key] = value, stealing nothing. */
static inline int
setitem(PyObject *out, PyObject *key, PyObject *value)
{
    return PyDict_SetItem(out, key, value);
}

/* out[key] = new (steals ``new``). */
static inline int
setitem_steal(PyObject *out, PyObject *key, PyObject *new)
{
    if (new == NULL)
        return -1;
    int rc = PyDict_SetItem(out, key, new);
    Py_DECREF(new);
    return rc;
}

static PyObject *
concat3(PyObject *a, PyObject *sep, PyObject *b)
{
    PyObject *head = PyUnicode_Concat(a, sep);
    if (head == NULL)
        return NULL;
    PyObject *all = PyUnicode_Concat(head, b);
    Py_DECREF(head);
    return all;
}

/* Python's ``mapping.items()`` as a dict to iterate: attribute maps are dicts. */
static int
require_dict(PyObject *obj)
{
    if (PyDict_Check(obj))
        return 0;
    PyErr_Format(PyExc_AttributeError, "'%.100s' object has no attribute 'items'",
                 Py_TYPE(obj)->tp_name);
    return -1;
}

static int
is_xmlns(PyObject *attr)
{
    int eq = PyUnicode_Compare(attr, S_xmlns) == 0;
    if (eq)
        return 1;
    Py_ssize_t r = PyUnicode_Tailmatch(attr, S_xmlns_colon, 0, PY_SSIZE_T_MAX, -1);
    return r == 1;
}

static int put(PyObject *out, PyObject *key, PyObject *value);

static int
put_dict(PyObject *out, PyObject *key, PyObject *value)
{
    PyObject *sub, *item;
    Py_ssize_t pos = 0;
    while (PyDict_Next(value, &pos, &sub, &item)) {
        int rc;
        Py_INCREF(sub);
        Py_INCREF(item);
        if (PyUnicode_Check(sub) && PyUnicode_Compare(sub, S_text) == 0) {
            rc = put(out, key, item);
        }
        else if (PyUnicode_Check(sub) && PyUnicode_Compare(sub, S_attributes) == 0) {
            rc = require_dict(item);
            PyObject *attr, *attr_value;
            Py_ssize_t apos = 0;
            while (rc == 0 && PyDict_Next(item, &apos, &attr, &attr_value)) {
                if (PyUnicode_Check(attr) && is_xmlns(attr))
                    continue;
                PyObject *name = concat3(key, S_dot, attr);
                if (name == NULL) {
                    rc = -1;
                    break;
                }
                rc = setitem_steal(out, name, scalar(attr_value));
                Py_DECREF(name);
            }
        }
        else {
            PyObject *name = concat3(key, S_dot, sub);
            if (name == NULL) {
                rc = -1;
            }
            else {
                rc = put(out, name, item);
                Py_DECREF(name);
            }
        }
        Py_DECREF(sub);
        Py_DECREF(item);
        if (rc < 0)
            return -1;
    }
    return 0;
}

static int
put_list(PyObject *out, PyObject *key, PyObject *value, PyObject *prefix_sep)
{
    /* key_1, key_2... (``prefix_sep`` is "_" appended to ``key``). */
    Py_ssize_t n = PyList_GET_SIZE(value);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyList_GET_ITEM(value, i);
        Py_INCREF(item);
        PyObject *name = PyUnicode_FromFormat("%U%U%zd", key, prefix_sep, i + 1);
        int rc = name == NULL ? -1 : put(out, name, item);
        Py_XDECREF(name);
        Py_DECREF(item);
        if (rc < 0)
            return -1;
        n = PyList_GET_SIZE(value);
    }
    return 0;
}

static PyObject *S_underscore;

/* _put(): dicts to dotted paths, lists to key_1..., leaves as text. */
static int
put(PyObject *out, PyObject *key, PyObject *value)
{
    if (PyUnicode_CheckExact(value))
        return setitem(out, key, value);
    if (PyLong_CheckExact(value))
        return setitem_steal(out, key, PyObject_Str(value));
    if (PyDict_CheckExact(value))
        return put_dict(out, key, value);
    if (PyList_CheckExact(value))
        return put_list(out, key, value, S_underscore);
    return setitem_steal(out, key, scalar(value));
}

/* normalise_guid(): strip("{}").upper(). New reference. */
static PyObject *
normalise_guid(PyObject *text)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(text), lo = 0, hi = n;
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    while (lo < hi) {
        Py_UCS4 c = PyUnicode_READ(kind, data, lo);
        if (c != '{' && c != '}')
            break;
        lo++;
    }
    while (hi > lo) {
        Py_UCS4 c = PyUnicode_READ(kind, data, hi - 1);
        if (c != '{' && c != '}')
            break;
        hi--;
    }
    PyObject *inner = PyUnicode_Substring(text, lo, hi);
    if (inner == NULL)
        return NULL;
    PyObject *upper = PyObject_CallMethod(inner, "upper", NULL);
    Py_DECREF(inner);
    return upper;
}

static int
key_is(PyObject *key, PyObject *name)
{
    return PyUnicode_Check(key) && PyUnicode_Compare(key, name) == 0;
}

/* attrs.get(name) if attrs else None; borrowed reference or NULL (absent); -1 on error. */
static int
attrs_get(PyObject *attrs, PyObject *name, PyObject **found)
{
    *found = NULL;
    if (attrs == NULL)
        return 0;
    int truth = PyObject_IsTrue(attrs);
    if (truth < 0)
        return -1;
    if (!truth)
        return 0;
    if (require_dict(attrs) < 0)
        return -1;
    *found = PyDict_GetItemWithError(attrs, name);
    return *found == NULL && PyErr_Occurred() ? -1 : 0;
}

static int
system_dict(PyObject *out, PyObject *key, PyObject *value)
{
    PyObject *attrs = PyDict_GetItemWithError(value, S_attributes);
    if (attrs == NULL && PyErr_Occurred())
        return -1;
    if (key_is(key, S_TimeCreated)) {
        PyObject *system_time;
        if (attrs_get(attrs, S_SystemTime, &system_time) < 0)
            return -1;
        if (system_time != NULL) {
            int truth = PyObject_IsTrue(system_time);
            if (truth < 0)
                return -1;
            if (truth)
                return setitem_steal(out, S_SystemTime, scalar(system_time));
        }
        return 0;
    }
    if (key_is(key, S_Provider)) {
        if (attrs == NULL || attrs == Py_None)
            return 0;
        int truth = PyObject_IsTrue(attrs);
        if (truth < 0)
            return -1;
        if (!truth)
            return 0;
        if (require_dict(attrs) < 0)
            return -1;
        PyObject *attr, *attr_value;
        Py_ssize_t pos = 0;
        while (PyDict_Next(attrs, &pos, &attr, &attr_value)) {
            PyObject *text = scalar(attr_value);
            if (text == NULL)
                return -1;
            if (key_is(attr, S_Guid)) {
                PyObject *guid = normalise_guid(text);
                Py_DECREF(text);
                if (guid == NULL)
                    return -1;
                text = guid;
            }
            PyObject *name = PyUnicode_Concat(S_Provider_, attr);
            if (name == NULL) {
                Py_DECREF(text);
                return -1;
            }
            int rc = setitem(out, name, text);
            Py_DECREF(name);
            Py_DECREF(text);
            if (rc < 0)
                return -1;
        }
        return 0;
    }
    if (key_is(key, S_EventID)) {
        PyObject *id = PyDict_GetItemWithError(value, S_text);
        if (id == NULL && PyErr_Occurred())
            return -1;
        if (setitem_steal(out, S_EventID, scalar(id == NULL ? Py_None : id)) < 0)
            return -1;
        PyObject *qualifiers;
        if (attrs_get(attrs, S_Qualifiers, &qualifiers) < 0)
            return -1;
        if (qualifiers != NULL && qualifiers != Py_None) {
            int empty = PyUnicode_Check(qualifiers) && PyUnicode_GET_LENGTH(qualifiers) == 0;
            if (!empty)
                return setitem_steal(out, S_EventID_Qualifiers, scalar(qualifiers));
        }
        return 0;
    }
    if ((key_is(key, S_Correlation) || key_is(key, S_Execution) || key_is(key, S_Security)) &&
        PyDict_GET_SIZE(value) == 1 && attrs != NULL && attrs != Py_None) {
        if (require_dict(attrs) < 0)
            return -1;
        PyObject *attr, *attr_value;
        Py_ssize_t pos = 0;
        while (PyDict_Next(attrs, &pos, &attr, &attr_value)) {
            if (attr_value == Py_None)
                continue;
            if (PyUnicode_Check(attr_value) && PyUnicode_GET_LENGTH(attr_value) == 0)
                continue;
            PyObject *text = scalar(attr_value);
            if (text == NULL)
                return -1;
            int activity = PyUnicode_Check(attr) ? PyUnicode_Contains(attr, S_ActivityID) : 0;
            if (activity < 0) {
                Py_DECREF(text);
                return -1;
            }
            if (activity) {
                PyObject *guid = normalise_guid(text);
                Py_DECREF(text);
                if (guid == NULL)
                    return -1;
                text = guid;
            }
            int rc = setitem(out, attr, text);
            Py_DECREF(text);
            if (rc < 0)
                return -1;
        }
        return 0;
    }
    return put(out, key, value);
}

/* flatten_system(): Event/System into ``out`` with Sigma's names. */
static int
flatten_system(PyObject *system, PyObject *out)
{
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(system, &pos, &key, &value)) {
        int rc;
        if (PyLong_CheckExact(value))
            rc = setitem_steal(out, key, PyObject_Str(value));
        else if (PyUnicode_CheckExact(value))
            rc = setitem(out, key, value);
        else if (PyDict_CheckExact(value)) {
            Py_INCREF(value);
            rc = system_dict(out, key, value);
            Py_DECREF(value);
        }
        else if (value != Py_None)
            rc = put(out, key, value);
        else
            rc = 0;
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* _put_unnamed(): unnamed <Data> become Data_1, Data_2... */
static int
put_unnamed(PyObject *out, PyObject *item)
{
    PyObject *list;
    if (PyDict_Check(item) && PyDict_GET_SIZE(item) == 1) {
        PyObject *text = PyDict_GetItemWithError(item, S_text);
        if (text == NULL && PyErr_Occurred())
            return -1;
        if (text != NULL)
            item = text;
    }
    if (PyList_Check(item)) {
        Py_INCREF(item);
        list = item;
    }
    else {
        list = PyList_New(1);
        if (list == NULL)
            return -1;
        Py_INCREF(item);
        PyList_SET_ITEM(list, 0, item);
    }
    int rc = 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(list); i++) {
        PyObject *value = PyList_GET_ITEM(list, i);
        Py_INCREF(value);
        PyObject *name = PyUnicode_FromFormat("Data_%zd", i + 1);
        rc = name == NULL ? -1 : put(out, name, value);
        Py_XDECREF(name);
        Py_DECREF(value);
        if (rc < 0)
            break;
    }
    Py_DECREF(list);
    return rc;
}

static int
flatten_eventdata(PyObject *out, PyObject *value)
{
    PyObject *key, *item;
    Py_ssize_t pos = 0;
    while (PyDict_Next(value, &pos, &key, &item)) {
        int rc;
        int present = PyDict_Contains(out, key);
        if (present < 0)
            return -1;
        Py_INCREF(key);
        Py_INCREF(item);
        if (present) {
            PyObject *renamed = PyUnicode_Concat(S_EventData_dot, key);
            Py_DECREF(key);
            if (renamed == NULL) {
                Py_DECREF(item);
                return -1;
            }
            key = renamed;
        }
        if (key_is(key, S_Data))
            rc = put_unnamed(out, item);
        else if (PyUnicode_CheckExact(item))
            rc = setitem(out, key, item);
        else if (PyLong_CheckExact(item))
            rc = setitem_steal(out, key, PyObject_Str(item));
        else if (!key_is(key, S_attributes))
            rc = put(out, key, item);
        else
            rc = 0;
        Py_DECREF(key);
        Py_DECREF(item);
        if (rc < 0)
            return -1;
    }
    return 0;
}

static PyObject *
flatten_event(PyObject *module, PyObject *event)
{
    if (!PyDict_Check(event)) {
        PyErr_SetString(PyExc_TypeError, "flatten_event() takes a dict");
        return NULL;
    }
    PyObject *out = PyDict_New();
    if (out == NULL)
        return NULL;
    PyObject *system = PyDict_GetItemWithError(event, S_System);
    if (system == NULL && PyErr_Occurred())
        goto fail;
    if (system != NULL && PyDict_CheckExact(system)) {
        Py_INCREF(system);
        int rc = flatten_system(system, out);
        Py_DECREF(system);
        if (rc < 0)
            goto fail;
    }
    Py_ssize_t n_system = PyDict_GET_SIZE(out);
    PyObject *section, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(event, &pos, &section, &value)) {
        int rc;
        if (value == Py_None || key_is(section, S_System) || key_is(section, S_attributes))
            continue;
        Py_INCREF(section);
        Py_INCREF(value);
        if (key_is(section, S_EventData) && PyDict_CheckExact(value)) {
            rc = flatten_eventdata(out, value);
        }
        else if (key_is(section, S_UserData) && PyDict_CheckExact(value)) {
            PyObject *key, *item;
            Py_ssize_t upos = 0;
            rc = 0;
            while (rc == 0 && PyDict_Next(value, &upos, &key, &item)) {
                Py_INCREF(key);
                Py_INCREF(item);
                rc = put(out, key, item);
                Py_DECREF(key);
                Py_DECREF(item);
            }
        }
        else {
            rc = put(out, section, value);
        }
        Py_DECREF(section);
        Py_DECREF(value);
        if (rc < 0)
            goto fail;
    }
    return Py_BuildValue("(Nn)", out, n_system);
fail:
    Py_DECREF(out);
    return NULL;
}

/* value.strip() with Python's whitespace, without a call when nothing is to strip. */
static PyObject *
strip(PyObject *value)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(value);
    if (n == 0) {
        Py_INCREF(value);
        return value;
    }
    int kind = PyUnicode_KIND(value);
    const void *data = PyUnicode_DATA(value);
    if (!Py_UNICODE_ISSPACE(PyUnicode_READ(kind, data, 0)) &&
        !Py_UNICODE_ISSPACE(PyUnicode_READ(kind, data, n - 1))) {
        Py_INCREF(value);
        return value;
    }
    return PyObject_CallMethod(value, "strip", NULL);
}

static int
is_empty_value(PyObject *value)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(value);
    return n == 0 || (n == 1 && PyUnicode_READ_CHAR(value, 0) == '-');
}

/* Append "name=value" to ``pairs`` unless the stripped value is "" or "-". */
static int
add_pair(PyObject *pairs, PyObject *name, PyObject *raw)
{
    if (!PyUnicode_Check(raw)) {
        PyErr_SetString(PyExc_TypeError, "field values must be str");
        return -1;
    }
    PyObject *value = strip(raw);
    if (value == NULL)
        return -1;
    if (is_empty_value(value)) {
        Py_DECREF(value);
        return 0;
    }
    PyObject *pair = concat3(name, S_eq, value);
    Py_DECREF(value);
    if (pair == NULL)
        return -1;
    int rc = PyList_Append(pairs, pair);
    Py_DECREF(pair);
    return rc;
}

static PyObject *
get_text(PyObject *flat, PyObject *name)
{
    PyObject *value = PyDict_GetItemWithError(flat, name);
    if (value == NULL && !PyErr_Occurred())
        value = S_empty;
    return value; /* borrowed */
}

/* one_line(): printable text is only cut; anything else goes to the Python version. */
static PyObject *
one_line(PyObject *text, PyObject *fallback)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!Py_UNICODE_ISPRINTABLE(PyUnicode_READ(kind, data, i)))
            return PyObject_CallOneArg(fallback, text);
    }
    if (n <= MAX_MESSAGE) {
        Py_INCREF(text);
        return text;
    }
    return PyObject_CallOneArg(fallback, text);
}

static PyObject *
render(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError,
                        "render(flat, n_system, resolved, resolve, one_line) takes 5 arguments");
        return NULL;
    }
    PyObject *flat = args[0], *resolved = args[2], *resolve = args[3], *fallback = args[4];
    Py_ssize_t n_system = PyLong_AsSsize_t(args[1]);
    if (n_system == -1 && PyErr_Occurred())
        return NULL;
    if (!PyDict_Check(flat) || !PyDict_Check(resolved)) {
        PyErr_SetString(PyExc_TypeError, "render() takes dicts");
        return NULL;
    }
    PyObject *id = get_text(flat, S_EventID), *channel = get_text(flat, S_Channel);
    PyObject *provider = get_text(flat, S_Provider_Name);
    if (id == NULL || channel == NULL || provider == NULL)
        return NULL;
    PyObject *key = PyTuple_Pack(3, id, channel, provider);
    if (key == NULL)
        return NULL;
    PyObject *entry = PyDict_GetItemWithError(resolved, key);
    if (entry == NULL) {
        if (PyErr_Occurred()) {
            Py_DECREF(key);
            return NULL;
        }
        entry = PyObject_CallOneArg(resolve, key);
        if (entry == NULL || PyDict_SetItem(resolved, key, entry) < 0) {
            Py_XDECREF(entry);
            Py_DECREF(key);
            return NULL;
        }
    }
    else {
        Py_INCREF(entry);
    }
    Py_DECREF(key);
    PyObject *head, *fields, *pairs = NULL, *result = NULL;
    if (!PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) != 2) {
        PyErr_SetString(PyExc_TypeError, "resolved entries are (head, fields) tuples");
        goto done;
    }
    head = PyTuple_GET_ITEM(entry, 0);
    fields = PyTuple_GET_ITEM(entry, 1);
    pairs = PyList_New(0);
    if (pairs == NULL)
        goto done;
    if (fields != Py_None) {
        if (!PyTuple_Check(fields)) {
            PyErr_SetString(PyExc_TypeError, "template fields are a tuple");
            goto done;
        }
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(fields); i++) {
            PyObject *name = PyTuple_GET_ITEM(fields, i);
            PyObject *raw = get_text(flat, name);
            if (raw == NULL || add_pair(pairs, name, raw) < 0)
                goto done;
        }
    }
    else {
        PyObject *name, *raw;
        Py_ssize_t pos = 0, index = 0;
        while (PyDict_Next(flat, &pos, &name, &raw)) {
            if (index++ < n_system)
                continue;
            if (key_is(name, S_Binary))
                continue;
            Py_INCREF(name);
            Py_INCREF(raw);
            int rc = add_pair(pairs, name, raw);
            Py_DECREF(name);
            Py_DECREF(raw);
            if (rc < 0)
                goto done;
        }
    }
    PyObject *text;
    if (PyList_GET_SIZE(pairs) == 0) {
        Py_INCREF(head);
        text = head;
    }
    else {
        PyObject *joined = PyUnicode_Join(S_space, pairs);
        if (joined == NULL)
            goto done;
        text = concat3(head, S_colon_space, joined);
        Py_DECREF(joined);
        if (text == NULL)
            goto done;
    }
    result = one_line(text, fallback);
    Py_DECREF(text);
done:
    Py_XDECREF(pairs);
    Py_DECREF(entry);
    return result;
}


/* ---- uid(): md5 of "sha256|record|ts_desc", hex (RFC 1321) ---- */

#include <math.h>
#include <stdint.h>
#include <string.h>

static uint32_t md5_k[64];
static const uint8_t md5_s[64] = {
    7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
    5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20,
    4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
    6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
};

static void
md5_init_table(void)
{
    for (int i = 0; i < 64; i++)
        md5_k[i] = (uint32_t)floor(fabs(sin((double)(i + 1))) * 4294967296.0);
}

static inline uint32_t
rotl(uint32_t x, int c)
{
    return (x << c) | (x >> (32 - c));
}

static void
md5_block(uint32_t state[4], const uint8_t *block)
{
    uint32_t m[16];
    for (int i = 0; i < 16; i++)
        m[i] = (uint32_t)block[4 * i] | ((uint32_t)block[4 * i + 1] << 8) |
               ((uint32_t)block[4 * i + 2] << 16) | ((uint32_t)block[4 * i + 3] << 24);
    uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
    for (int i = 0; i < 64; i++) {
        uint32_t f;
        int g;
        if (i < 16) {
            f = (b & c) | (~b & d);
            g = i;
        }
        else if (i < 32) {
            f = (d & b) | (~d & c);
            g = (5 * i + 1) % 16;
        }
        else if (i < 48) {
            f = b ^ c ^ d;
            g = (3 * i + 5) % 16;
        }
        else {
            f = c ^ (b | ~d);
            g = (7 * i) % 16;
        }
        f = f + a + md5_k[i] + m[g];
        a = d;
        d = c;
        c = b;
        b = b + rotl(f, md5_s[i]);
    }
    state[0] += a;
    state[1] += b;
    state[2] += c;
    state[3] += d;
}

/* The hex md5 of ``data`` into ``hex`` (32 characters). */
static void
md5_hex(const uint8_t *data, size_t size, char hex[32])
{
    uint32_t state[4] = {0x67452301u, 0xefcdab89u, 0x98badcfeu, 0x10325476u};
    size_t whole = size / 64 * 64;
    for (size_t off = 0; off < whole; off += 64)
        md5_block(state, data + off);
    uint8_t tail[128];
    size_t rest = size - whole;
    memcpy(tail, data + whole, rest);
    tail[rest] = 0x80;
    size_t padded = rest + 1 + 8 <= 64 ? 64 : 128;
    memset(tail + rest + 1, 0, padded - rest - 1);
    uint64_t bits = (uint64_t)size * 8;
    for (int i = 0; i < 8; i++)
        tail[padded - 8 + i] = (uint8_t)(bits >> (8 * i));
    md5_block(state, tail);
    if (padded == 128)
        md5_block(state, tail + 64);
    static const char digits[] = "0123456789abcdef";
    for (int w = 0; w < 4; w++)
        for (int byte = 0; byte < 4; byte++) {
            uint8_t v = (uint8_t)(state[w] >> (8 * byte));
            hex[w * 8 + byte * 2] = digits[v >> 4];
            hex[w * 8 + byte * 2 + 1] = digits[v & 15];
        }
}

static PyObject *
uids(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyUnicode_Check(args[0]) || !PyList_Check(args[1]) ||
        !PyList_Check(args[2]) || PyList_GET_SIZE(args[1]) != PyList_GET_SIZE(args[2])) {
        PyErr_SetString(PyExc_TypeError,
                        "uids(sha256, records, ts_descs) takes a str and two equal lists");
        return NULL;
    }
    Py_ssize_t sha_len, n = PyList_GET_SIZE(args[1]);
    const char *sha = PyUnicode_AsUTF8AndSize(args[0], &sha_len);
    if (sha == NULL)
        return NULL;
    PyObject *out = PyList_New(n);
    if (out == NULL)
        return NULL;
    size_t cap = 256;
    char *buf = PyMem_Malloc(cap);
    if (buf == NULL) {
        Py_DECREF(out);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t rec_len, desc_len;
        PyObject *rec = PyList_GET_ITEM(args[1], i), *desc = PyList_GET_ITEM(args[2], i);
        const char *r = PyUnicode_Check(rec) ? PyUnicode_AsUTF8AndSize(rec, &rec_len) : NULL;
        const char *d = PyUnicode_Check(desc) ? PyUnicode_AsUTF8AndSize(desc, &desc_len) : NULL;
        if (r == NULL || d == NULL) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_TypeError, "records and ts_descs must be str");
            goto fail;
        }
        size_t need = (size_t)sha_len + (size_t)rec_len + (size_t)desc_len + 2;
        if (need > cap) {
            char *bigger = PyMem_Realloc(buf, need);
            if (bigger == NULL) {
                PyErr_NoMemory();
                goto fail;
            }
            buf = bigger;
            cap = need;
        }
        memcpy(buf, sha, (size_t)sha_len);
        buf[sha_len] = '|';
        memcpy(buf + sha_len + 1, r, (size_t)rec_len);
        buf[sha_len + 1 + rec_len] = '|';
        memcpy(buf + sha_len + 2 + rec_len, d, (size_t)desc_len);
        char hex[32];
        md5_hex((const uint8_t *)buf, need, hex);
        PyObject *text = PyUnicode_FromStringAndSize(hex, 32);
        if (text == NULL)
            goto fail;
        PyList_SET_ITEM(out, i, text);
    }
    PyMem_Free(buf);
    return out;
fail:
    PyMem_Free(buf);
    Py_DECREF(out);
    return NULL;
}

static PyMethodDef methods[] = {
    {"flatten_event", (PyCFunction)flatten_event, METH_O,
     "Flatten a pyevtx-rs JSON Event; returns the fields and how many are System's."},
    {"render", (PyCFunction)(void (*)(void))render, METH_FASTCALL,
     "render(flat, n_system, resolved, resolve, one_line): the one-line message."},
    {"uids", (PyCFunction)(void (*)(void))uids, METH_FASTCALL,
     "uids(sha256, records, ts_descs): md5 hex of each 'sha256|record|ts_desc'."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_evtxflat", "The EVTX hot path in C (see evtx.py).", -1, methods,
    NULL, NULL, NULL, NULL,
};

#define INTERN(var, text)                                                                     \
    do {                                                                                       \
        if ((var = PyUnicode_InternFromString(text)) == NULL)                                  \
            return NULL;                                                                       \
    } while (0)

PyMODINIT_FUNC
PyInit__evtxflat(void)
{
    md5_init_table();
    INTERN(S_text, "#text");
    INTERN(S_attributes, "#attributes");
    INTERN(S_System, "System");
    INTERN(S_EventData, "EventData");
    INTERN(S_UserData, "UserData");
    INTERN(S_Data, "Data");
    INTERN(S_TimeCreated, "TimeCreated");
    INTERN(S_SystemTime, "SystemTime");
    INTERN(S_Provider, "Provider");
    INTERN(S_Provider_, "Provider_");
    INTERN(S_Guid, "Guid");
    INTERN(S_EventID, "EventID");
    INTERN(S_EventID_Qualifiers, "EventID_Qualifiers");
    INTERN(S_Qualifiers, "Qualifiers");
    INTERN(S_Correlation, "Correlation");
    INTERN(S_Execution, "Execution");
    INTERN(S_Security, "Security");
    INTERN(S_ActivityID, "ActivityID");
    INTERN(S_xmlns, "xmlns");
    INTERN(S_xmlns_colon, "xmlns:");
    INTERN(S_empty, "");
    INTERN(S_true, "true");
    INTERN(S_false, "false");
    INTERN(S_dot, ".");
    INTERN(S_EventData_dot, "EventData.");
    INTERN(S_Channel, "Channel");
    INTERN(S_Provider_Name, "Provider_Name");
    INTERN(S_Binary, "Binary");
    INTERN(S_space, " ");
    INTERN(S_colon_space, ": ");
    INTERN(S_eq, "=");
    INTERN(S_underscore, "_");
    return PyModule_Create(&module_def);
}
