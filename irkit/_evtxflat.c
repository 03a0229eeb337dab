/*
 * irkit._evtxflat: the EVTX hot path in C (optional accelerator).
 *
 * Two functions with exactly the behaviour of their pure-Python twins, which stay the
 * reference and the fallback (tests/test_evtxflat.py compares both on every corpus
 * record and on generated JSON shapes):
 *
 *   flatten_event(event) -> (dict, int)    irkit.sources.evtx.flatten.flatten_event_py
 *   render(flat, n_system, resolved, resolve, one_line) -> str
 *                                          irkit.messages.MessageCatalog.render_py
 *   uids(sha256, records, ts_descs) -> list[str]
 *                                          irkit.spool.uid, over a batch
 *
 * The input is a decoded pyevtx-rs JSON event (dicts, lists, str, int, bool, float,
 * None). Nothing here reads files or keeps state between calls.
 *
 * Then the per-record loop of the fast engine, rows(), with what it is made of: the
 * fused reader (JSON text to the flat dict), and, when it fills the spool's C columns
 * (Column: Arrow buffers, no Python object per row), the native reader (JSON text to
 * (name, value) slices, no dict; native()) with the row, message and fields JSON made
 * from those slices; uids_into() makes a batch's uids into a Column. Each gives up on
 * what it does not reproduce exactly, for the path before it, the reference.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

static PyObject *S_text, *S_attributes, *S_System, *S_EventData, *S_UserData, *S_Data;
static PyObject *S_TimeCreated, *S_SystemTime, *S_Provider, *S_Provider_, *S_Guid;
static PyObject *S_EventID, *S_EventID_Qualifiers, *S_Qualifiers, *S_Correlation;
static PyObject *S_Execution, *S_Security, *S_ActivityID, *S_xmlns, *S_xmlns_colon;
static PyObject *S_empty, *S_true, *S_false, *S_dot, *S_EventData_dot;
static PyObject *S_Computer, *S_Event, *S_ellipsis;
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
    return key == name || (PyUnicode_Check(key) && PyUnicode_Compare(key, name) == 0);
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

/* One EventData item: a name equal to a field already there keeps both. Steals nothing. */
static int
eventdata_item(PyObject *out, PyObject *key, PyObject *item)
{
    int rc;
    int present = PyDict_Contains(out, key);
    if (present < 0)
        return -1;
    Py_INCREF(key);
    if (present) {
        PyObject *renamed = PyUnicode_Concat(S_EventData_dot, key);
        Py_DECREF(key);
        if (renamed == NULL)
            return -1;
        key = renamed;
    }
    Py_INCREF(item);
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
    return rc;
}

static int
flatten_eventdata(PyObject *out, PyObject *value)
{
    PyObject *key, *item;
    Py_ssize_t pos = 0;
    while (PyDict_Next(value, &pos, &key, &item)) {
        if (eventdata_item(out, key, item) < 0)
            return -1;
    }
    return 0;
}

/* The flat fields of a decoded Event (a dict); *n_system gets how many are System's. */
static PyObject *
flatten_dict(PyObject *event, Py_ssize_t *n_system_out)
{
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
    *n_system_out = n_system;
    return out;
fail:
    Py_DECREF(out);
    return NULL;
}

static PyObject *
flatten_event(PyObject *module, PyObject *event)
{
    if (!PyDict_Check(event)) {
        PyErr_SetString(PyExc_TypeError, "flatten_event() takes a dict");
        return NULL;
    }
    Py_ssize_t n_system = 0;
    PyObject *out = flatten_dict(event, &n_system);
    if (out == NULL)
        return NULL;
    return Py_BuildValue("(Nn)", out, n_system);
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

/* Is this ASCII text all printable (0x20-0x7E)? Eight bytes at a time. */
static int
ascii_printable(const char *s, Py_ssize_t n)
{
    Py_ssize_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, s + i, 8);
        /* a byte < 0x20 borrows into its high bit; 0x7F becomes 0x80 when 1 is added */
        if (((v - 0x2020202020202020u) | (v + 0x0101010101010101u)) & 0x8080808080808080u)
            break;
    }
    for (; i < n; i++) {
        if (s[i] < 0x20 || s[i] == 0x7F)
            return 0;
    }
    return 1;
}

/* one_line(): printable text is only cut; anything else goes to the Python version. */
static PyObject *
one_line(PyObject *text, PyObject *fallback)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    if (PyUnicode_IS_ASCII(text)) {
        if (!ascii_printable((const char *)PyUnicode_DATA(text), n))
            return PyObject_CallOneArg(fallback, text);
    }
    else {
        int kind = PyUnicode_KIND(text);
        const void *data = PyUnicode_DATA(text);
        for (Py_ssize_t i = 0; i < n; i++) {
            if (!Py_UNICODE_ISPRINTABLE(PyUnicode_READ(kind, data, i)))
                return PyObject_CallOneArg(fallback, text);
        }
    }
    if (n <= MAX_MESSAGE) {
        Py_INCREF(text);
        return text;
    }
    PyObject *head = PyUnicode_Substring(text, 0, MAX_MESSAGE - 1);
    if (head == NULL)
        return NULL;
    PyObject *cut = PyUnicode_Concat(head, S_ellipsis);
    Py_DECREF(head);
    return cut;
}

static PyObject *
render_message(PyObject *flat, Py_ssize_t n_system, PyObject *resolved, PyObject *resolve,
               PyObject *fallback)
{
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

static PyObject *
render(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError,
                        "render(flat, n_system, resolved, resolve, one_line) takes 5 arguments");
        return NULL;
    }
    Py_ssize_t n_system = PyLong_AsSsize_t(args[1]);
    if (n_system == -1 && PyErr_Occurred())
        return NULL;
    if (!PyDict_Check(args[0]) || !PyDict_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "render() takes dicts");
        return NULL;
    }
    return render_message(args[0], n_system, args[2], args[3], args[4]);
}


/* ---- uid(): md5 of "sha256|record|ts_desc", hex (RFC 1321) ---- */


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

/* md5_hex() of sha + "|" + rec + "|" + desc, put together in *buf (*cap bytes, made
 * larger when it must be): 0, or -1 with MemoryError set. */
static inline int
uid_hex(char **buf, size_t *cap, const char *sha, Py_ssize_t sha_len, const char *rec,
        Py_ssize_t rec_len, const char *desc, Py_ssize_t desc_len, char hex[32])
{
    size_t need = (size_t)sha_len + (size_t)rec_len + (size_t)desc_len + 2;
    if (need > *cap) {
        char *bigger = PyMem_Realloc(*buf, need);
        if (bigger == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        *buf = bigger;
        *cap = need;
    }
    char *b = *buf;
    memcpy(b, sha, (size_t)sha_len);
    b[sha_len] = '|';
    memcpy(b + sha_len + 1, rec, (size_t)rec_len);
    b[sha_len + 1 + rec_len] = '|';
    memcpy(b + sha_len + 2 + rec_len, desc, (size_t)desc_len);
    md5_hex((const uint8_t *)b, need, hex);
    return 0;
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
        char hex[32];
        if (uid_hex(&buf, &cap, sha, sha_len, r, rec_len, d, desc_len, hex) < 0)
            goto fail;
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

/* ---- The fused path: pyevtx-rs JSON text straight to flat fields ----
 *
 * orjson.loads() and flatten_dict() in one pass, for the shapes pyevtx-rs writes: System
 * and EventData are read field by field (only System's small nested elements, such as
 * Provider or TimeCreated, are built as dicts for system_dict()); every other value is
 * decoded like orjson (dicts, lists, str, int, bool, None) and flattened by the same
 * functions as above. Anything this reader does not reproduce exactly (duplicate names,
 * integers past 64 bits, "-0", infinite floats, lone surrogates, a section before System, invalid
 * JSON) makes it give up on the record without an exception ("bail"): the caller then
 * runs orjson.loads() + flatten_dict(), the reference.
 */

typedef struct {
    const char *p;
    const char *end;
    int depth;
    int bail;
} Js;

#define JS_MAX_DEPTH 200
#define CACHE_SIZE 4096
#define CACHE_MAX 48
#define VALUE_CACHE_MAX 12

/* Short ASCII strings (names, small values) are made once and reused. */
static PyObject *str_cache[CACHE_SIZE];

static PyObject *
make_ascii(const char *s, Py_ssize_t n)
{
    PyObject *text = PyUnicode_New(n, 127);
    if (text != NULL)
        memcpy(PyUnicode_DATA(text), s, (size_t)n);
    return text;
}

static inline uint64_t
load64(const char *s)
{
    uint64_t v;
    memcpy(&v, s, 8);
    return v;
}

/* Of the eight bytes in ``v``, the high bit of each that a JSON string must escape (a
 * quote, a backslash, a control) and maybe of bytes above it; none where none is one. */
static inline uint64_t
json_special8(uint64_t v)
{
    uint64_t quote = v ^ 0x2222222222222222u, slash = v ^ 0x5C5C5C5C5C5C5C5Cu;
    return (((quote - 0x0101010101010101u) & ~quote) |
            ((slash - 0x0101010101010101u) & ~slash) | ((v - 0x2020202020202020u) & ~v)) &
           0x8080808080808080u;
}

static PyObject *
cached_ascii(const char *s, Py_ssize_t n)
{
    if (n > CACHE_MAX)
        return make_ascii(s, n);
    /* A cheap hash (length, first and last 8 bytes): a wrong slot only costs a miss. */
    uint64_t h = (uint64_t)n * 0x9E3779B97F4A7C15u;
    if (n >= 8)
        h ^= load64(s) * 0xC2B2AE3D27D4EB4Fu ^ load64(s + n - 8);
    else
        for (Py_ssize_t i = 0; i < n; i++)
            h = (h ^ (uint8_t)s[i]) * 0x100000001B3u;
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9u;
    h ^= h >> 32;
    PyObject **slot = &str_cache[h & (CACHE_SIZE - 1)];
    PyObject *hit = *slot;
    if (hit != NULL && PyUnicode_GET_LENGTH(hit) == n &&
        memcmp(PyUnicode_DATA(hit), s, (size_t)n) == 0) {
        Py_INCREF(hit);
        return hit;
    }
    PyObject *made = make_ascii(s, n);
    if (made == NULL)
        return NULL;
    Py_INCREF(made);
    Py_XSETREF(*slot, made);
    return made;
}

static inline PyObject *
js_give_up(Js *j)
{
    j->bail = 1;
    return NULL;
}

static inline int
js_peek(Js *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t'))
        j->p++;
    return j->p < j->end ? (unsigned char)*j->p : -1;
}

static inline int
js_take(Js *j, char c)
{
    if (js_peek(j) != (unsigned char)c) {
        j->bail = 1;
        return -1;
    }
    j->p++;
    return 0;
}

static int
hex4(const char *s, uint32_t *out)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (uint32_t)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

/* The UTF-8 of code point ``cp`` (at most U+10FFFF) at ``w``; the end of what it wrote. */
static inline char *
utf8_put(char *w, uint32_t cp)
{
    if (cp < 0x80)
        *w++ = (char)cp;
    else if (cp < 0x800) {
        *w++ = (char)(0xC0 | (cp >> 6));
        *w++ = (char)(0x80 | (cp & 0x3F));
    }
    else if (cp < 0x10000) {
        *w++ = (char)(0xE0 | (cp >> 12));
        *w++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *w++ = (char)(0x80 | (cp & 0x3F));
    }
    else {
        *w++ = (char)(0xF0 | (cp >> 18));
        *w++ = (char)(0x80 | ((cp >> 12) & 0x3F));
        *w++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *w++ = (char)(0x80 | (cp & 0x3F));
    }
    return w;
}

/* The JSON escape at *pp (its backslash; text ends at ``end``) decoded at *wp, both moved
 * past it: 1, or 0 when it is not a valid escape (a lone or reversed surrogate neither).
 * \u0000 and the like are kept: fine in a str, and the dict path keeps them too. */
static inline int
json_unescape(const char **pp, const char *end, char **wp)
{
    const char *p = *pp;
    char *w = *wp;
    if (p + 1 >= end)
        return 0;
    char e = p[1];
    p += 2;
    if (e == '"' || e == '\\' || e == '/')
        *w++ = e;
    else if (e == 'b')
        *w++ = '\b';
    else if (e == 'f')
        *w++ = '\f';
    else if (e == 'n')
        *w++ = '\n';
    else if (e == 'r')
        *w++ = '\r';
    else if (e == 't')
        *w++ = '\t';
    else if (e == 'u') {
        uint32_t cp, low;
        if (end - p < 4 || hex4(p, &cp) < 0)
            return 0;
        p += 4;
        if (cp >= 0xDC00 && cp <= 0xDFFF)
            return 0;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || hex4(p + 2, &low) < 0 ||
                low < 0xDC00 || low > 0xDFFF)
                return 0;
            p += 6;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
        }
        w = utf8_put(w, cp);
    }
    else
        return 0;
    *pp = p;
    *wp = w;
    return 1;
}

/* A string with escapes, from just after its opening quote. */
static PyObject *
js_string_escaped(Js *j, const char *s)
{
    char *buf = PyMem_Malloc((size_t)(j->end - s) + 4);
    if (buf == NULL)
        return PyErr_NoMemory();
    char *w = buf;
    const char *p = s;
    PyObject *result = NULL;
    while (p < j->end) {
        unsigned char c = (unsigned char)*p;
        if (c == '"') {
            j->p = p + 1;
            result = PyUnicode_DecodeUTF8(buf, w - buf, "strict");
            if (result == NULL && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
                PyErr_Clear();
                j->bail = 1;
            }
            PyMem_Free(buf);
            return result;
        }
        if (c < 0x20)
            break;
        if (c != '\\') {
            *w++ = (char)c;
            p++;
            continue;
        }
        if (!json_unescape(&p, j->end, &w))
            break;
    }
    PyMem_Free(buf);
    return js_give_up(j);
}

/* A JSON string at j->p (its opening quote) as a str. */
static PyObject *
js_string(Js *j, Py_ssize_t cache_max)
{
    if (js_peek(j) != '"')
        return js_give_up(j);
    const char *s = ++j->p, *p = s;
    int ascii = 1;
    /* Eight bytes at a time while none is a quote, a backslash, a control or non-ASCII. */
    while (j->end - p >= 8) {
        uint64_t v = load64(p);
        if (json_special8(v) | (v & 0x8080808080808080u))
            break;
        p += 8;
    }
    while (p < j->end) {
        unsigned char c = (unsigned char)*p;
        if (c == '"') {
            j->p = p + 1;
            if (ascii)
                return p - s <= cache_max ? cached_ascii(s, p - s) : make_ascii(s, p - s);
            return PyUnicode_DecodeUTF8(s, p - s, "strict");
        }
        if (c == '\\')
            return js_string_escaped(j, s);
        if (c < 0x20)
            return js_give_up(j);
        ascii &= c < 0x80;
        p++;
    }
    return js_give_up(j);
}

/* A JSON integer as text (what str(int) gives for it); floats and big ones give up. */
static PyObject *
js_int_text(Js *j)
{
    const char *s = j->p, *p = s;
    if (p < j->end && *p == '-')
        p++;
    const char *digits = p;
    while (p < j->end && *p >= '0' && *p <= '9')
        p++;
    Py_ssize_t n = p - digits;
    if (n == 0 || (n > 1 && *digits == '0') || (n == 1 && *digits == '0' && s != digits))
        return js_give_up(j);
    /* orjson: an int within i64 or u64, a float past them (given up here). */
    if (s == digits ? (n > 20 || (n == 20 && memcmp(digits, "18446744073709551615", 20) > 0))
                    : (n > 19 || (n == 19 && memcmp(digits, "9223372036854775808", 19) > 0)))
        return js_give_up(j);
    if (p < j->end && (*p == '.' || *p == 'e' || *p == 'E'))
        return js_give_up(j);
    j->p = p;
    return cached_ascii(s, p - s);
}

/* A JSON number with a fraction or an exponent, as a float (orjson: infinity is an error,
 * so it gives up). NULL with no bail when the number has neither. */
static PyObject *
js_float(Js *j)
{
    const char *p = j->p;
    if (p < j->end && *p == '-')
        p++;
    const char *digits = p;
    while (p < j->end && *p >= '0' && *p <= '9')
        p++;
    if (p == digits || (p - digits > 1 && *digits == '0'))
        return js_give_up(j);
    int is_float = 0;
    if (p < j->end && *p == '.') {
        const char *frac = ++p;
        while (p < j->end && *p >= '0' && *p <= '9')
            p++;
        if (p == frac)
            return js_give_up(j);
        is_float = 1;
    }
    if (p < j->end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < j->end && (*p == '+' || *p == '-'))
            p++;
        const char *exp = p;
        while (p < j->end && *p >= '0' && *p <= '9')
            p++;
        if (p == exp)
            return js_give_up(j);
        is_float = 1;
    }
    if (!is_float || p - j->p > 64)
        return is_float ? js_give_up(j) : NULL;
    char text[72];
    memcpy(text, j->p, (size_t)(p - j->p));
    text[p - j->p] = '\0';
    double value = PyOS_string_to_double(text, NULL, NULL);
    if (value == -1.0 && PyErr_Occurred())
        return NULL;
    if (isinf(value))
        return js_give_up(j);
    j->p = p;
    return PyFloat_FromDouble(value);
}

static PyObject *
js_int(Js *j)
{
    PyObject *text = js_int_text(j);
    if (text == NULL)
        return NULL;
    PyObject *value = PyLong_FromUnicodeObject(text, 10);
    Py_DECREF(text);
    return value;
}

static PyObject *
js_literal(Js *j, const char *word, size_t n, PyObject *value)
{
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0)
        return js_give_up(j);
    j->p += n;
    Py_INCREF(value);
    return value;
}

static PyObject *js_value(Js *j);

static PyObject *
js_object(Js *j)
{
    if (js_take(j, '{') < 0 || ++j->depth > JS_MAX_DEPTH)
        return NULL;
    PyObject *dict = PyDict_New();
    if (dict == NULL)
        return NULL;
    if (js_peek(j) == '}') {
        j->p++;
        j->depth--;
        return dict;
    }
    for (;;) {
        PyObject *key = js_string(j, CACHE_MAX);
        if (key == NULL || js_take(j, ':') < 0) {
            Py_XDECREF(key);
            goto fail;
        }
        PyObject *value = js_value(j);
        if (value == NULL) {
            Py_DECREF(key);
            goto fail;
        }
        int rc = PyDict_SetItem(dict, key, value);
        Py_DECREF(key);
        Py_DECREF(value);
        if (rc < 0)
            goto fail;
        int c = js_peek(j);
        j->p++;
        if (c == '}')
            break;
        if (c != ',') {
            j->bail = 1;
            goto fail;
        }
    }
    j->depth--;
    return dict;
fail:
    Py_DECREF(dict);
    return NULL;
}

static PyObject *
js_array(Js *j)
{
    if (js_take(j, '[') < 0 || ++j->depth > JS_MAX_DEPTH)
        return NULL;
    PyObject *list = PyList_New(0);
    if (list == NULL)
        return NULL;
    if (js_peek(j) == ']') {
        j->p++;
        j->depth--;
        return list;
    }
    for (;;) {
        PyObject *value = js_value(j);
        if (value == NULL)
            goto fail;
        int rc = PyList_Append(list, value);
        Py_DECREF(value);
        if (rc < 0)
            goto fail;
        int c = js_peek(j);
        j->p++;
        if (c == ']')
            break;
        if (c != ',') {
            j->bail = 1;
            goto fail;
        }
    }
    j->depth--;
    return list;
fail:
    Py_DECREF(list);
    return NULL;
}

/* Any JSON value, decoded as orjson decodes it. */
static PyObject *
js_value(Js *j)
{
    int c = js_peek(j);
    if (c == '"')
        return js_string(j, VALUE_CACHE_MAX);
    if (c == '{')
        return js_object(j);
    if (c == '[')
        return js_array(j);
    if (c == '-' || (c >= '0' && c <= '9')) {
        PyObject *number = js_float(j);
        if (number != NULL || j->bail || PyErr_Occurred())
            return number;
        return js_int(j);
    }
    if (c == 't')
        return js_literal(j, "true", 4, Py_True);
    if (c == 'f')
        return js_literal(j, "false", 5, Py_False);
    if (c == 'n')
        return js_literal(j, "null", 4, Py_None);
    return js_give_up(j);
}

/* A leaf as the text flattening gives it (str, or int's text); else the decoded value. */
static PyObject *
js_leaf_or_value(Js *j, int *is_text)
{
    int c = js_peek(j);
    *is_text = 1;
    if (c == '"')
        return js_string(j, VALUE_CACHE_MAX);
    if (c == '-' || (c >= '0' && c <= '9')) {
        PyObject *number = js_float(j);
        if (number != NULL || j->bail || PyErr_Occurred()) {
            *is_text = 0;
            return number;
        }
        return js_int_text(j);
    }
    *is_text = 0;
    return js_value(j);
}

/* The names of one object, to catch a repeated one (orjson keeps the last; we give up). */
#define NAMES_SIZE 256
#define NAMES_MAX 160

typedef struct {
    PyObject *slots[NAMES_SIZE];
    uint16_t used[NAMES_MAX];
    int count;
} Names;

static Names names_event, names_system, names_data;

static void
names_clear(Names *names)
{
    for (int i = 0; i < names->count; i++) {
        Py_CLEAR(names->slots[names->used[i]]);
    }
    names->count = 0;
}

/* 0: new name, 1: repeated or too many (give up), -1: error. */
static int
names_add(Names *names, PyObject *key)
{
    Py_hash_t h = PyObject_Hash(key);
    if (h == -1)
        return -1;
    if (names->count >= NAMES_MAX)
        return 1;
    size_t i = (size_t)h & (NAMES_SIZE - 1);
    while (names->slots[i] != NULL) {
        PyObject *other = names->slots[i];
        if (other == key || PyUnicode_Compare(other, key) == 0)
            return 1;
        i = (i + 1) & (NAMES_SIZE - 1);
    }
    Py_INCREF(key);
    names->slots[i] = key;
    names->used[names->count++] = (uint16_t)i;
    return 0;
}

/* Read "name": of an object; the name is a new reference. Gives up on a repeat. */
static PyObject *
js_name(Js *j, Names *names)
{
    PyObject *key = js_string(j, CACHE_MAX);
    if (key == NULL)
        return NULL;
    int rc = names_add(names, key);
    if (rc != 0 || js_take(j, ':') < 0) {
        if (rc == 1)
            j->bail = 1;
        Py_DECREF(key);
        return NULL;
    }
    return key;
}

/* After a member: 1 more follow, 0 the object ended, -1 give up. */
static int
js_next(Js *j)
{
    int c = js_peek(j);
    j->p++;
    if (c == ',')
        return 1;
    if (c == '}')
        return 0;
    j->bail = 1;
    return -1;
}

/* Event/System, as flatten_system() does it. */
static int
fused_system(Js *j, PyObject *out)
{
    if (js_take(j, '{') < 0)
        return -1;
    if (js_peek(j) == '}') {
        j->p++;
        return 0;
    }
    int more = 1, rc = 0;
    while (more == 1 && rc == 0) {
        PyObject *key = js_name(j, &names_system);
        if (key == NULL)
            return -1;
        int is_text, c = js_peek(j);
        PyObject *value = js_leaf_or_value(j, &is_text);
        if (value == NULL) {
            Py_DECREF(key);
            return -1;
        }
        if (is_text)
            rc = setitem(out, key, value);
        else if (c == '{')
            rc = system_dict(out, key, value);
        else if (value != Py_None)
            rc = put(out, key, value);
        Py_DECREF(key);
        Py_DECREF(value);
        if (rc == 0)
            more = js_next(j);
    }
    return rc < 0 || more < 0 ? -1 : 0;
}

/* Event/EventData, as flatten_eventdata() does it. */
static int
fused_eventdata(Js *j, PyObject *out)
{
    if (js_take(j, '{') < 0)
        return -1;
    if (js_peek(j) == '}') {
        j->p++;
        return 0;
    }
    int more = 1, rc = 0;
    while (more == 1 && rc == 0) {
        PyObject *key = js_name(j, &names_data);
        if (key == NULL)
            return -1;
        int is_text;
        PyObject *value = js_leaf_or_value(j, &is_text);
        if (value == NULL) {
            Py_DECREF(key);
            return -1;
        }
        rc = eventdata_item(out, key, value);
        Py_DECREF(key);
        Py_DECREF(value);
        if (rc == 0)
            more = js_next(j);
    }
    return rc < 0 || more < 0 ? -1 : 0;
}

/* The Event object: System first, then every other section in order. */
static int
fused_event(Js *j, PyObject *out, Py_ssize_t *n_system)
{
    if (js_take(j, '{') < 0)
        return -1;
    if (js_peek(j) == '}') {
        j->p++;
        return 0;
    }
    int more = 1, rc = 0, other_seen = 0;
    while (more == 1 && rc == 0) {
        PyObject *key = js_name(j, &names_event);
        if (key == NULL)
            return -1;
        int c = js_peek(j);
        PyObject *value = NULL;
        if (key_is(key, S_System)) {
            if (other_seen || c != '{')
                rc = -1, j->bail = 1;
            else if ((rc = fused_system(j, out)) == 0)
                *n_system = PyDict_GET_SIZE(out);
        }
        else if (key_is(key, S_EventData) && c == '{') {
            other_seen = 1;
            rc = fused_eventdata(j, out);
        }
        else if ((value = js_value(j)) == NULL)
            rc = -1;
        else if (value == Py_None || key_is(key, S_attributes))
            ;
        else if (key_is(key, S_UserData) && PyDict_CheckExact(value)) {
            other_seen = 1;
            PyObject *name, *item;
            Py_ssize_t pos = 0;
            while (rc == 0 && PyDict_Next(value, &pos, &name, &item)) {
                Py_INCREF(name);
                Py_INCREF(item);
                rc = put(out, name, item);
                Py_DECREF(name);
                Py_DECREF(item);
            }
        }
        else {
            other_seen = 1;
            rc = put(out, key, value);
        }
        Py_XDECREF(value);
        Py_DECREF(key);
        if (rc == 0)
            more = js_next(j);
    }
    return rc < 0 || more < 0 ? -1 : 0;
}

/* JSON text of a record to (flat fields, n_system); NULL with no exception: give up. */
static PyObject *
fused_flatten(PyObject *data, Py_ssize_t *n_system)
{
    Py_ssize_t size;
    const char *text = PyUnicode_AsUTF8AndSize(data, &size);
    if (text == NULL) {
        if (PyErr_ExceptionMatches(PyExc_UnicodeEncodeError))
            PyErr_Clear();
        return NULL;
    }
    Js j = {text, text + size, 0, 0};
    PyObject *out = PyDict_New();
    if (out == NULL)
        return NULL;
    *n_system = 0;
    int seen_event = 0, more = 1, rc = 0;
    if (js_take(&j, '{') < 0)
        goto fail;
    if (js_peek(&j) == '}') {
        j.p++;
        more = 0;
    }
    while (more == 1) {
        PyObject *key = js_string(&j, CACHE_MAX);
        if (key == NULL || js_take(&j, ':') < 0) {
            Py_XDECREF(key);
            goto fail;
        }
        int is_event = key_is(key, S_Event);
        Py_DECREF(key);
        if (is_event && seen_event)
            goto fail_bail;
        if (is_event && js_peek(&j) == '{') {
            seen_event = 1;
            rc = fused_event(&j, out, n_system);
        }
        else {
            seen_event |= is_event;
            PyObject *value = js_value(&j);
            rc = value == NULL ? -1 : 0;
            Py_XDECREF(value);
        }
        if (rc < 0)
            goto fail;
        more = js_next(&j);
    }
    if (more < 0 || js_peek(&j) != -1)
        goto fail_bail;
    names_clear(&names_event);
    names_clear(&names_system);
    names_clear(&names_data);
    return out;
fail_bail:
    j.bail = 1;
fail:
    names_clear(&names_event);
    names_clear(&names_system);
    names_clear(&names_data);
    Py_DECREF(out);
    /* An error flattening a shape (the reference may decode it otherwise, say with a
     * repeated name) is the reference's to raise or not: give up. */
    if (PyErr_Occurred() && !PyErr_ExceptionMatches(PyExc_MemoryError))
        PyErr_Clear();
    return NULL;
}

/* fused(data) -> (dict, int) | None: the fused path alone, for the tests. */
static PyObject *
fused(PyObject *module, PyObject *data)
{
    if (!PyUnicode_Check(data)) {
        PyErr_SetString(PyExc_TypeError, "fused() takes a str");
        return NULL;
    }
    Py_ssize_t n_system = 0;
    PyObject *out = fused_flatten(data, &n_system);
    if (out == NULL) {
        if (PyErr_Occurred())
            return NULL;
        Py_RETURN_NONE;
    }
    return Py_BuildValue("(Nn)", out, n_system);
}

/* ---- Column: a string column built as Arrow buffers (offsets, data, validity) ----
 *
 * The spool's row columns when the accelerator is built: a value appended is copied as
 * UTF-8 into one growing buffer, no Python object kept per row; ``take()`` hands the
 * buffers over for ``pyarrow.Array.from_buffers`` (an Arrow ``string`` array, offsets
 * int32) and leaves the column empty, its memory kept for the next batch.
 */

typedef struct {
    PyObject_HEAD
    Py_ssize_t n;         /* rows */
    Py_ssize_t cap_rows;  /* room in offsets (cap_rows + 1 entries) */
    int32_t *offsets;     /* in offsets_obj, a bytes object handed over by take() */
    char *data;           /* in data_obj, likewise */
    PyObject *offsets_obj, *data_obj;
    Py_ssize_t hint_rows, hint_bytes; /* the sizes of the last batch taken */
    Py_ssize_t size, cap; /* bytes used, allocated in data */
    uint8_t *validity;    /* a bit per row, allocated at the first null */
    Py_ssize_t cap_valid; /* bytes allocated in validity */
    Py_ssize_t nulls;
    int raw;              /* bytes were appended: not known to be UTF-8 */
} Column;

static PyTypeObject Column_Type;

#define Column_Check(op) Py_IS_TYPE(op, &Column_Type)

static int
col_reserve_rows(Column *c, Py_ssize_t rows)
{
    if (c->n + rows <= c->cap_rows)
        return 0;
    Py_ssize_t want = c->cap_rows ? c->cap_rows * 2 : (c->hint_rows > 1024 ? c->hint_rows : 1024);
    while (want < c->n + rows)
        want *= 2;
    Py_ssize_t bytes = (want + 1) * (Py_ssize_t)sizeof(int32_t);
    if (c->offsets_obj == NULL)
        c->offsets_obj = PyBytes_FromStringAndSize(NULL, bytes);
    else if (_PyBytes_Resize(&c->offsets_obj, bytes) < 0)
        c->offsets_obj = NULL;
    if (c->offsets_obj == NULL) { /* the rows are lost: an empty column */
        c->offsets = NULL;
        c->n = c->cap_rows = 0;
        return -1;
    }
    c->offsets = (int32_t *)PyBytes_AS_STRING(c->offsets_obj);
    c->cap_rows = want;
    return 0;
}

/* Room for ``more`` bytes of data. */
static inline int
col_reserve(Column *c, Py_ssize_t more)
{
    if (c->size + more <= c->cap)
        return 0;
    if (c->size + more > INT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "a column batch holds at most 2 GiB of text");
        return -1;
    }
    Py_ssize_t want = c->cap ? c->cap * 2 : (c->hint_bytes > 65536 ? c->hint_bytes : 65536);
    while (want < c->size + more)
        want *= 2;
    if (want > INT32_MAX)
        want = INT32_MAX;
    if (c->data_obj == NULL)
        c->data_obj = PyBytes_FromStringAndSize(NULL, want);
    else if (_PyBytes_Resize(&c->data_obj, want) < 0)
        c->data_obj = NULL;
    if (c->data_obj == NULL) { /* the rows are lost: an empty column */
        c->data = NULL;
        c->n = c->size = c->cap = 0;
        return -1;
    }
    c->data = PyBytes_AS_STRING(c->data_obj);
    c->cap = want;
    return 0;
}

/* The row just written ends here. */
static inline int
col_end_row(Column *c)
{
    if (col_reserve_rows(c, 1) < 0)
        return -1;
    if (c->n == 0)
        c->offsets[0] = 0;
    c->n++;
    c->offsets[c->n] = (int32_t)c->size;
    if (c->validity != NULL) {
        Py_ssize_t byte = (c->n - 1) >> 3;
        if (byte >= c->cap_valid) {
            Py_ssize_t want = c->cap_valid * 2 > byte + 1 ? c->cap_valid * 2 : byte + 64;
            uint8_t *grown = PyMem_Realloc(c->validity, (size_t)want);
            if (grown == NULL) {
                c->n--;
                PyErr_NoMemory();
                return -1;
            }
            memset(grown + c->cap_valid, 0, (size_t)(want - c->cap_valid));
            c->validity = grown;
            c->cap_valid = want;
        }
        c->validity[byte] |= (uint8_t)(1u << ((c->n - 1) & 7));
    }
    return 0;
}

static int
col_append_bytes(Column *c, const char *s, Py_ssize_t len)
{
    if (col_reserve(c, len) < 0)
        return -1;
    memcpy(c->data + c->size, s, (size_t)len);
    c->size += len;
    return col_end_row(c);
}

static int
col_append_null(Column *c)
{
    if (c->validity == NULL) {
        Py_ssize_t want = (c->cap_rows > c->n ? c->cap_rows : c->n + 1) / 8 + 64;
        c->validity = PyMem_Malloc((size_t)want);
        if (c->validity == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        memset(c->validity, 0, (size_t)want);
        c->cap_valid = want;
        for (Py_ssize_t i = 0; i < c->n; i++)
            c->validity[i >> 3] |= (uint8_t)(1u << (i & 7));
    }
    if (col_reserve_rows(c, 1) < 0)
        return -1;
    if (c->n == 0)
        c->offsets[0] = 0;
    Py_ssize_t byte = c->n >> 3;
    if (byte >= c->cap_valid) {
        Py_ssize_t want = c->cap_valid * 2 > byte + 1 ? c->cap_valid * 2 : byte + 64;
        uint8_t *grown = PyMem_Realloc(c->validity, (size_t)want);
        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        memset(grown + c->cap_valid, 0, (size_t)(want - c->cap_valid));
        c->validity = grown;
        c->cap_valid = want;
    }
    c->validity[byte] &= (uint8_t) ~(1u << (c->n & 7));
    c->n++;
    c->offsets[c->n] = (int32_t)c->size;
    c->nulls++;
    return 0;
}

/* A str (as UTF-8), bytes (as they are) or None (null). */
static int
col_append(Column *c, PyObject *value)
{
    if (PyUnicode_Check(value)) {
        Py_ssize_t len;
        const char *s = PyUnicode_AsUTF8AndSize(value, &len);
        return s == NULL ? -1 : col_append_bytes(c, s, len);
    }
    if (PyBytes_Check(value)) {
        c->raw = 1;
        return col_append_bytes(c, PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value));
    }
    if (value == Py_None)
        return col_append_null(c);
    PyErr_Format(PyExc_TypeError, "a column takes str, bytes or None, not %.100s",
                 Py_TYPE(value)->tp_name);
    return -1;
}

/* Back to its first ``rows`` rows. */
static void
col_truncate(Column *c, Py_ssize_t rows)
{
    if (rows >= c->n)
        return;
    if (rows < 0)
        rows = 0;
    if (c->validity != NULL)
        for (Py_ssize_t i = rows; i < c->n; i++)
            if (!(c->validity[i >> 3] & (1u << (i & 7))))
                c->nulls--;
    c->n = rows;
    c->size = rows ? c->offsets[rows] : 0;
}

static PyObject *
Column_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    if (PyTuple_GET_SIZE(args) != 0 || (kwds != NULL && PyDict_GET_SIZE(kwds) != 0)) {
        PyErr_SetString(PyExc_TypeError, "Column() takes no arguments");
        return NULL;
    }
    Column *c = (Column *)type->tp_alloc(type, 0);
    return (PyObject *)c;
}

static void
Column_dealloc(Column *c)
{
    Py_XDECREF(c->offsets_obj);
    Py_XDECREF(c->data_obj);
    PyMem_Free(c->validity);
    Py_TYPE(c)->tp_free((PyObject *)c);
}

static Py_ssize_t
Column_len(Column *c)
{
    return c->n;
}

static PyObject *
Column_append(Column *c, PyObject *value)
{
    if (col_append(c, value) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
Column_truncate(Column *c, PyObject *arg)
{
    Py_ssize_t rows = PyLong_AsSsize_t(arg);
    if (rows == -1 && PyErr_Occurred())
        return NULL;
    col_truncate(c, rows);
    Py_RETURN_NONE;
}

/* take() -> (rows, nulls, validity | None, offsets, data, raw); the column is then empty. */
static PyObject *
Column_take(Column *c, PyObject *unused)
{
    Py_ssize_t n = c->n;
    PyObject *validity = Py_None, *offsets, *data;
    Py_INCREF(Py_None);
    if (c->validity != NULL && c->nulls > 0) {
        Py_DECREF(Py_None);
        validity = PyBytes_FromStringAndSize((const char *)c->validity, (n + 7) / 8);
        if (validity == NULL)
            return NULL;
    }
    /* The buffers themselves are handed over, cut to size: no copy. */
    int32_t zero = 0;
    Py_ssize_t offsets_size = (Py_ssize_t)sizeof(int32_t) * (n + 1);
    if (n == 0)
        offsets = PyBytes_FromStringAndSize((const char *)&zero, offsets_size);
    else {
        offsets = c->offsets_obj;
        if (_PyBytes_Resize(&offsets, offsets_size) < 0)
            offsets = NULL;
        c->offsets_obj = NULL;
        c->offsets = NULL;
        c->hint_rows = c->cap_rows;
        c->cap_rows = 0;
    }
    if (c->data_obj == NULL || c->size == 0)
        data = PyBytes_FromStringAndSize("", 0);
    else {
        data = c->data_obj;
        if (_PyBytes_Resize(&data, c->size) < 0)
            data = NULL;
        c->data_obj = NULL;
        c->data = NULL;
        c->hint_bytes = c->cap;
        c->cap = 0;
    }
    if (offsets == NULL || data == NULL) {
        Py_DECREF(validity);
        Py_XDECREF(offsets);
        Py_XDECREF(data);
        c->n = c->size = c->nulls = 0;
        return NULL;
    }
    PyObject *out = Py_BuildValue("(nnNNNO)", n, c->nulls, validity, offsets, data,
                                  c->raw ? Py_True : Py_False);
    if (out == NULL)
        return NULL;
    c->n = 0;
    c->size = 0;
    c->nulls = 0;
    c->raw = 0;
    PyMem_Free(c->validity);
    c->validity = NULL;
    c->cap_valid = 0;
    return out;
}

/* to_list() -> the values as str (None for nulls): for tests and odd paths. */
static PyObject *
Column_to_list(Column *c, PyObject *unused)
{
    PyObject *out = PyList_New(c->n);
    if (out == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < c->n; i++) {
        PyObject *value;
        if (c->validity != NULL && !(c->validity[i >> 3] & (1u << (i & 7)))) {
            Py_INCREF(Py_None);
            value = Py_None;
        }
        else
            value = PyUnicode_DecodeUTF8(c->data + c->offsets[i],
                                         c->offsets[i + 1] - c->offsets[i], "surrogateescape");
        if (value == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, i, value);
    }
    return out;
}

/* column += values: each appended (as a list's += does). */
static PyObject *
Column_inplace_concat(Column *c, PyObject *values)
{
    PyObject *seq = PySequence_Fast(values, "a column extends by a sequence");
    if (seq == NULL)
        return NULL;
    Py_ssize_t before = c->n, n = PySequence_Fast_GET_SIZE(seq);
    PyObject **items = PySequence_Fast_ITEMS(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (col_append(c, items[i]) < 0) {
            col_truncate(c, before);
            Py_DECREF(seq);
            return NULL;
        }
    }
    Py_DECREF(seq);
    Py_INCREF(c);
    return (PyObject *)c;
}

static PyObject *
Column_extend(Column *c, PyObject *values)
{
    PyObject *self = Column_inplace_concat(c, values);
    if (self == NULL)
        return NULL;
    Py_DECREF(self);
    Py_RETURN_NONE;
}

static PyMethodDef Column_methods[] = {
    {"extend", (PyCFunction)Column_extend, METH_O, "Append each of a sequence's values."},
    {"append", (PyCFunction)Column_append, METH_O, "Append a str, bytes or None (null)."},
    {"truncate", (PyCFunction)Column_truncate, METH_O, "Keep only the first n rows."},
    {"take", (PyCFunction)Column_take, METH_NOARGS,
     "(rows, nulls, validity|None, offsets, data, raw): the Arrow buffers; empties it."},
    {"to_list", (PyCFunction)Column_to_list, METH_NOARGS, "The values as a list of str."},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods Column_as_sequence = {
    .sq_length = (lenfunc)Column_len,
    .sq_inplace_concat = (binaryfunc)Column_inplace_concat,
};

static PyTypeObject Column_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "irkit._evtxflat.Column",
    .tp_basicsize = sizeof(Column),
    .tp_dealloc = (destructor)Column_dealloc,
    .tp_as_sequence = &Column_as_sequence,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A string column built as Arrow buffers (see irkit/store/spool.py).",
    .tp_methods = Column_methods,
    .tp_new = Column_new,
};

/* The JSON text orjson.dumps() gives a str of this UTF-8, into ``c`` (no row ended). */
static int
col_json_utf8(Column *c, const char *s, Py_ssize_t len)
{
    /* At most 6 bytes for each byte, and the quotes. */
    if (col_reserve(c, len * 6 + 2) < 0)
        return -1;
    static const char hex[] = "0123456789abcdef";
    char *w = c->data + c->size;
    *w++ = '"';
    const char *p = s, *end = s + len;
    while (p < end) {
        const char *run = p;
        while (end - p >= 8) {
            if (json_special8(load64(p)))
                break;
            p += 8;
        }
        while (p < end) {
            unsigned char ch = (unsigned char)*p;
            if (ch == '"' || ch == '\\' || ch < 0x20)
                break;
            p++;
        }
        memcpy(w, run, (size_t)(p - run));
        w += p - run;
        if (p == end)
            break;
        unsigned char ch = (unsigned char)*p++;
        *w++ = '\\';
        switch (ch) {
        case '"': *w++ = '"'; break;
        case '\\': *w++ = '\\'; break;
        case '\b': *w++ = 'b'; break;
        case '\t': *w++ = 't'; break;
        case '\n': *w++ = 'n'; break;
        case '\f': *w++ = 'f'; break;
        case '\r': *w++ = 'r'; break;
        default:
            *w++ = 'u';
            *w++ = '0';
            *w++ = '0';
            *w++ = hex[ch >> 4];
            *w++ = hex[ch & 15];
        }
    }
    *w++ = '"';
    c->size = w - c->data;
    return 0;
}

/* The JSON text orjson.dumps() gives a str, into ``c`` (no row ended). 0, or 1 when the
 * str has no UTF-8 form (lone surrogates: orjson's own error is the reference's). */
static int
col_json_str(Column *c, PyObject *text)
{
    Py_ssize_t len;
    const char *s = PyUnicode_AsUTF8AndSize(text, &len);
    if (s == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError))
            return -1;
        PyErr_Clear();
        return 1;
    }
    return col_json_utf8(c, s, len);
}

/* orjson.dumps(flat) as a row of ``c``, for a dict of str to str; 1 (nothing written)
 * for anything else, which the caller then gives to orjson itself. */
static int
col_json_flat(Column *c, PyObject *flat)
{
    Py_ssize_t start = c->size, pos = 0;
    PyObject *key, *value;
    if (col_reserve(c, 2) < 0)
        return -1;
    c->data[c->size++] = '{';
    int first = 1;
    while (PyDict_Next(flat, &pos, &key, &value)) {
        if (!PyUnicode_CheckExact(key) || !PyUnicode_CheckExact(value))
            goto other;
        if (!first) {
            if (col_reserve(c, 1) < 0)
                goto fail;
            c->data[c->size++] = ',';
        }
        first = 0;
        int rc = col_json_str(c, key);
        if (rc == 0) {
            if (col_reserve(c, 1) < 0)
                goto fail;
            c->data[c->size++] = ':';
            rc = col_json_str(c, value);
        }
        if (rc < 0)
            goto fail;
        if (rc > 0)
            goto other;
    }
    if (col_reserve(c, 1) < 0)
        goto fail;
    c->data[c->size++] = '}';
    if (col_end_row(c) < 0)
        goto fail;
    return 0;
other:
    c->size = start;
    return 1;
fail:
    c->size = start;
    return -1;
}

/* uids_into(out, sha256, records, ts_descs, start, count): the uids of rows
 * [start, start + count) of two Columns appended to ``out``: uids() without a str each. */
static PyObject *
uids_into(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6 || !Column_Check(args[0]) || !PyUnicode_Check(args[1]) ||
        !Column_Check(args[2]) || !Column_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError,
                        "uids_into(out, sha256, records, ts_descs, start, count) takes Columns");
        return NULL;
    }
    Column *out = (Column *)args[0], *rec = (Column *)args[2], *desc = (Column *)args[3];
    Py_ssize_t start = PyLong_AsSsize_t(args[4]), count = PyLong_AsSsize_t(args[5]);
    if ((start == -1 || count == -1) && PyErr_Occurred())
        return NULL;
    if (start < 0 || count < 0 || start + count > rec->n || start + count > desc->n) {
        PyErr_SetString(PyExc_IndexError, "uids_into(): rows out of range");
        return NULL;
    }
    if (rec->nulls || desc->nulls) {
        PyErr_SetString(PyExc_TypeError, "records and ts_descs must be str");
        return NULL;
    }
    Py_ssize_t sha_len;
    const char *sha = PyUnicode_AsUTF8AndSize(args[1], &sha_len);
    if (sha == NULL)
        return NULL;
    size_t cap = 256;
    char *buf = PyMem_Malloc(cap);
    if (buf == NULL)
        return PyErr_NoMemory();
    Py_ssize_t before = out->n;
    for (Py_ssize_t i = start; i < start + count; i++) {
        Py_ssize_t rec_len = rec->offsets[i + 1] - rec->offsets[i];
        Py_ssize_t desc_len = desc->offsets[i + 1] - desc->offsets[i];
        char hex[32];
        if (uid_hex(&buf, &cap, sha, sha_len, rec->data + rec->offsets[i], rec_len,
                    desc->data + desc->offsets[i], desc_len, hex) < 0 ||
            col_append_bytes(out, hex, 32) < 0)
            goto fail;
    }
    PyMem_Free(buf);
    Py_RETURN_NONE;
fail:
    PyMem_Free(buf);
    col_truncate(out, before);
    return NULL;
}

/* ---- rows(): the whole per-record loop of EvtxSource.parse ---- */

static PyObject *S_EventRecordID, *S_data, *S_event_record_id, *S_timestamp;
static PyObject *S__last, *S_ordinal, *S_key, *S_dash, *S__start, *S__ranges;
static PyObject *S_user_fields[4];

/* The record number: EventRecordID when it is ASCII digits, else the header's id. */
static PyObject *
record_number(PyObject *flat, PyObject *item)
{
    PyObject *text = PyDict_GetItemWithError(flat, S_EventRecordID);
    if (text == NULL && PyErr_Occurred())
        return NULL;
    if (text != NULL && PyUnicode_Check(text) && PyUnicode_IS_ASCII(text)) {
        Py_ssize_t n = PyUnicode_GET_LENGTH(text);
        const char *data = (const char *)PyUnicode_DATA(text);
        Py_ssize_t i = 0;
        while (i < n && data[i] >= '0' && data[i] <= '9')
            i++;
        if (n > 0 && i == n)
            return PyLong_FromUnicodeObject(text, 10);
    }
    PyObject *header = PyDict_GetItemWithError(item, S_event_record_id);
    if (header == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_KeyError, "event_record_id");
        return NULL;
    }
    Py_INCREF(header);
    return header;
}

/* Is ``rid`` in one of RecordKeys' ``ranges`` ((first, last) tuples of ints)? 1, 0, or
 * -1 when they are not what RecordKeys makes (the caller then calls the method). */
static int
in_ranges(PyObject *ranges, long long rid)
{
    if (!PyList_CheckExact(ranges))
        return -1;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(ranges); i++) {
        PyObject *range = PyList_GET_ITEM(ranges, i);
        if (!PyTuple_CheckExact(range) || PyTuple_GET_SIZE(range) != 2 ||
            !PyLong_CheckExact(PyTuple_GET_ITEM(range, 0)) ||
            !PyLong_CheckExact(PyTuple_GET_ITEM(range, 1)))
            return -1;
        int overflow = 0;
        long long lo = PyLong_AsLongLongAndOverflow(PyTuple_GET_ITEM(range, 0), &overflow);
        if (overflow)
            return -1;
        long long hi = PyLong_AsLongLongAndOverflow(PyTuple_GET_ITEM(range, 1), &overflow);
        if (overflow)
            return -1;
        if (lo <= rid && rid <= hi)
            return 1;
    }
    return 0;
}

/* RecordKeys.key(number) off the sequence (irkit.sources.evtx.rows: a repeat, or a new
 * range), without its generator over the ranges; NULL with no exception: call it. */
static PyObject *
record_key_off(PyObject *keys, PyObject *number, long long number_v, long long last_v)
{
    PyObject *start = PyObject_GetAttr(keys, S__start);
    PyObject *ordinal = start == NULL ? NULL : PyObject_GetAttr(keys, S_ordinal);
    PyObject *ranges = ordinal == NULL ? NULL : PyObject_GetAttr(keys, S__ranges);
    PyObject *last = NULL, *out = NULL, *next = NULL;
    if (ranges == NULL)
        goto done;
    int overflow = 0;
    long long start_v = PyLong_CheckExact(start)
                            ? PyLong_AsLongLongAndOverflow(start, &overflow) : (overflow = 1);
    long long ordinal_v = overflow || !PyLong_CheckExact(ordinal)
                              ? (overflow = 1) : PyLong_AsLongLongAndOverflow(ordinal, &overflow);
    if (overflow || ordinal_v >= LLONG_MAX - 1 || number_v == last_v + 1)
        goto done; /* the method's (a first id, or odd state) */
    int seen = start_v <= number_v && number_v <= last_v;
    if (!seen && (seen = in_ranges(ranges, number_v)) < 0)
        goto done;
    next = PyLong_FromLongLong(ordinal_v + 1);
    if (next == NULL || PyObject_SetAttr(keys, S_ordinal, next) < 0)
        goto error;
    if (seen) {
        out = PyUnicode_FromFormat("%S#%lld", number, ordinal_v + 1);
        goto done;
    }
    if (start_v >= 0) {
        last = PyObject_GetAttr(keys, S__last);
        PyObject *range = last == NULL ? NULL : PyTuple_Pack(2, start, last);
        int rc = range == NULL ? -1 : PyList_Append(ranges, range);
        Py_XDECREF(range);
        if (rc < 0)
            goto error;
    }
    if (PyObject_SetAttr(keys, S__start, number) < 0 ||
        PyObject_SetAttr(keys, S__last, number) < 0)
        goto error;
    out = PyObject_Str(number);
    goto done;
error:
    Py_CLEAR(out);
done:
    Py_XDECREF(start);
    Py_XDECREF(ordinal);
    Py_XDECREF(ranges);
    Py_XDECREF(last);
    Py_XDECREF(next);
    return out;
}

/* RecordKeys.key(number) with the common case (the next id in sequence) done here. */
static PyObject *
record_key(PyObject *keys, PyObject *number)
{
    PyObject *last = PyObject_GetAttr(keys, S__last);
    if (last == NULL)
        return NULL;
    int overflow = 0;
    long long last_v = PyLong_AsLongLongAndOverflow(last, &overflow);
    Py_DECREF(last);
    if (last_v == -1 && PyErr_Occurred())
        return NULL;
    long long number_v = overflow ? 0 : PyLong_AsLongLongAndOverflow(number, &overflow);
    if (number_v == -1 && PyErr_Occurred())
        return NULL;
    if (!overflow && last_v >= 0 && number_v != last_v + 1 && PyLong_CheckExact(number)) {
        PyObject *key = record_key_off(keys, number, number_v, last_v);
        if (key != NULL || PyErr_Occurred())
            return key;
    }
    if (overflow || last_v < 0 || number_v != last_v + 1)
        return PyObject_CallMethodOneArg(keys, S_key, number);
    PyObject *ordinal = PyObject_GetAttr(keys, S_ordinal);
    if (ordinal == NULL)
        return NULL;
    long long ordinal_v = PyLong_AsLongLong(ordinal);
    Py_DECREF(ordinal);
    if (ordinal_v == -1 && PyErr_Occurred())
        return NULL;
    ordinal = PyLong_FromLongLong(ordinal_v + 1);
    if (ordinal == NULL)
        return NULL;
    int rc = PyObject_SetAttr(keys, S_ordinal, ordinal);
    Py_DECREF(ordinal);
    if (rc < 0 || PyObject_SetAttr(keys, S__last, number) < 0)
        return NULL;
    return PyObject_Str(number);
}

/* event_user(): the first of the user fields that is neither "" nor "-". Borrowed. */
static PyObject *
user_of(PyObject *flat)
{
    for (int i = 0; i < 4; i++) {
        PyObject *value = PyDict_GetItemWithError(flat, S_user_fields[i]);
        if (value == NULL) {
            if (PyErr_Occurred())
                return NULL;
            continue;
        }
        if (PyUnicode_Check(value) && PyUnicode_GET_LENGTH(value) > 0 &&
            PyUnicode_Compare(value, S_dash) != 0)
            return value;
    }
    return S_empty;
}

/* The reference path: orjson.loads() then flatten_dict(). *odd = 1 when the JSON does
 * not decode. */
static PyObject *
loads_flatten(PyObject *data, PyObject *loads, Py_ssize_t *n_system, int *odd)
{
    PyObject *loaded = PyObject_CallOneArg(loads, data);
    if (loaded == NULL) {
        if (PyErr_ExceptionMatches(PyExc_ValueError)) {
            PyErr_Clear();
            *odd = 1;
        }
        return NULL;
    }
    PyObject *event = NULL, *flat;
    if (PyDict_CheckExact(loaded)) {
        event = PyDict_GetItemWithError(loaded, S_Event);
        if (event == NULL && PyErr_Occurred()) {
            Py_DECREF(loaded);
            return NULL;
        }
    }
    *n_system = 0;
    if (event != NULL && PyDict_CheckExact(event))
        flat = flatten_dict(event, n_system);
    else
        flat = PyDict_New();
    Py_DECREF(loaded);
    return flat;
}

/* ---- The native path: pyevtx-rs JSON text to flat fields with no Python object ----
 *
 * For the columns (rows() into Columns): the fields of a record as (name, value) UTF-8
 * slices, in a C table with a dict's order and overwrite rules, read in one pass over
 * the JSON text; the row's values, message and fields JSON are then made from them.
 * It reads the shapes pyevtx-rs writes ({"Event": {"#attributes", "System", then
 * sections}}) with flatten_event_py's rules; anything else (floats, a repeated name, a
 * section before System, a non-ASCII GUID, invalid JSON...) makes it give up on the
 * record (nf_flatten() returns 0) and the record goes the dict path (fused_flatten(),
 * then orjson.loads()), the reference. The tests compare both on every corpus record.
 */

typedef struct {
    const char *p;
    Py_ssize_t len;
    int clean; /* known to hold no '"', '\\' nor control character: JSON as it is */
} Str;

#define LIT(text) ((Str){(text), (Py_ssize_t)(sizeof(text) - 1), 1})

typedef struct {
    Str key, value;
    uint64_t hash;
} Entry;

#define ARENA_BLOCK 65536

typedef struct {
    /* the JSON being read */
    const char *p, *end;
    int depth;
    /* fields, in order; ``index`` maps a name's hash to its entry (+1; 0 is empty) */
    Entry *entries;
    Py_ssize_t n, cap;
    int32_t *index;
    Py_ssize_t index_size;
    /* names seen per object (object serial, name), to give up on a repeat */
    uint64_t *seen;
    Py_ssize_t seen_n, seen_size;
    uint32_t serial;
    /* decoded and made strings: blocks that never move until the record is done */
    char **blocks;
    Py_ssize_t n_blocks, cap_blocks;
    char *at, *block_end;
    /* the hash of the last name read (a name is looked up and stored as it is read) */
    const char *hashed;
    Py_ssize_t hashed_len;
    uint64_t hash;
} NF;

static NF nf_state;
/* nf_state in use: a row calls back into Python (resolve, header_time...), where another
 * thread may run rows() too; that one then takes the dict path. Under the GIL. */
static int nf_busy;

static const char nf_true[] = "true", nf_false[] = "false";

static inline uint64_t
nf_hash(const char *s, Py_ssize_t n)
{
    uint64_t h = 0xcbf29ce484222325u ^ (uint64_t)n;
    Py_ssize_t i = 0;
    for (; i + 8 <= n; i += 8)
        h = (h ^ load64(s + i)) * 0x100000001B3u, h ^= h >> 29;
    for (; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 0x100000001B3u;
    h ^= h >> 32;
    h *= 0xBF58476D1CE4E5B9u;
    h ^= h >> 29;
    return h;
}

/* nf_hash() of text at ``s``, once for the last name read. */
static inline uint64_t
nf_hash_at(NF *nf, const char *s, Py_ssize_t n)
{
    if (s == nf->hashed && n == nf->hashed_len)
        return nf->hash;
    uint64_t h = nf_hash(s, n);
    nf->hashed = s;
    nf->hashed_len = n;
    nf->hash = h;
    return h;
}

static char *
nf_alloc(NF *nf, Py_ssize_t size)
{
    if (nf->block_end - nf->at >= size) {
        char *out = nf->at;
        nf->at += size;
        return out;
    }
    Py_ssize_t block = size > ARENA_BLOCK ? size : ARENA_BLOCK;
    if (nf->n_blocks == nf->cap_blocks) {
        Py_ssize_t want = nf->cap_blocks ? nf->cap_blocks * 2 : 16;
        char **grown = PyMem_Realloc(nf->blocks, (size_t)want * sizeof(char *));
        if (grown == NULL)
            return NULL;
        nf->blocks = grown;
        nf->cap_blocks = want;
    }
    char *mem = PyMem_Malloc((size_t)block);
    if (mem == NULL)
        return NULL;
    nf->blocks[nf->n_blocks++] = mem;
    nf->at = mem + size;
    nf->block_end = mem + block;
    return mem;
}

/* Ready for the next record: the first block kept, the tables emptied. */
static void
nf_reset(NF *nf)
{
    for (Py_ssize_t i = 1; i < nf->n_blocks; i++)
        PyMem_Free(nf->blocks[i]);
    if (nf->n_blocks > 1)
        nf->n_blocks = 1;
    if (nf->n_blocks == 1) {
        nf->at = nf->blocks[0];
        nf->block_end = nf->blocks[0] + ARENA_BLOCK;
    }
    if (nf->n)
        memset(nf->index, 0, (size_t)nf->index_size * sizeof(int32_t));
    nf->n = 0;
    if (nf->seen_n)
        memset(nf->seen, 0, (size_t)nf->seen_size * sizeof(uint64_t));
    nf->seen_n = 0;
    nf->serial = 0;
    nf->depth = 0;
    nf->hashed = NULL;
    nf->hashed_len = -1;
}

static inline int
str_eq(Str a, const char *b, Py_ssize_t n)
{
    return a.len == n && memcmp(a.p, b, (size_t)n) == 0;
}

#define STR_IS(s, lit) str_eq((s), (lit), (Py_ssize_t)(sizeof(lit) - 1))

/* The entry named ``key``, or -1. */
static Py_ssize_t
nf_find(NF *nf, const char *key, Py_ssize_t len, uint64_t h)
{
    if (nf->index_size == 0)
        return -1;
    size_t mask = (size_t)nf->index_size - 1, i = (size_t)h & mask;
    for (;;) {
        int32_t slot = nf->index[i];
        if (slot == 0)
            return -1;
        Entry *e = &nf->entries[slot - 1];
        if (e->hash == h && e->key.len == len && memcmp(e->key.p, key, (size_t)len) == 0)
            return slot - 1;
        i = (i + 1) & mask;
    }
}

static int
nf_grow_index(NF *nf)
{
    Py_ssize_t size = nf->index_size ? nf->index_size * 2 : 256;
    int32_t *index = PyMem_Calloc((size_t)size, sizeof(int32_t));
    if (index == NULL)
        return -1;
    size_t mask = (size_t)size - 1;
    for (Py_ssize_t k = 0; k < nf->n; k++) {
        size_t i = (size_t)nf->entries[k].hash & mask;
        while (index[i] != 0)
            i = (i + 1) & mask;
        index[i] = (int32_t)(k + 1);
    }
    PyMem_Free(nf->index);
    nf->index = index;
    nf->index_size = size;
    return 0;
}

/* out[key] = value: a new name at the end, a known one keeps its place. */
static int
nf_set(NF *nf, Str key, Str value)
{
    uint64_t h = nf_hash_at(nf, key.p, key.len);
    Py_ssize_t at = nf_find(nf, key.p, key.len, h);
    if (at >= 0) {
        nf->entries[at].value = value;
        return 0;
    }
    if ((nf->n + 1) * 2 > nf->index_size && nf_grow_index(nf) < 0)
        return -1;
    if (nf->n == nf->cap) {
        Py_ssize_t want = nf->cap ? nf->cap * 2 : 128;
        Entry *grown = PyMem_Realloc(nf->entries, (size_t)want * sizeof(Entry));
        if (grown == NULL)
            return -1;
        nf->entries = grown;
        nf->cap = want;
    }
    nf->entries[nf->n] = (Entry){key, value, h};
    nf->n++;
    size_t mask = (size_t)nf->index_size - 1, i = (size_t)h & mask;
    while (nf->index[i] != 0)
        i = (i + 1) & mask;
    nf->index[i] = (int32_t)nf->n;
    return 0;
}

/* The value of field ``key`` (empty when absent); *found whether it is there. */
static inline Str
nf_get(NF *nf, const char *key, Py_ssize_t len, int *found)
{
    Py_ssize_t at = nf_find(nf, key, len, nf_hash_at(nf, key, len));
    if (found != NULL)
        *found = at >= 0;
    return at >= 0 ? nf->entries[at].value : LIT("");
}

#define NF_GET(nf, lit, found) nf_get((nf), (lit), (Py_ssize_t)(sizeof(lit) - 1), (found))

/* A name of object ``serial``: 0 new, 1 repeated (give up), -1 no memory. */
static int
nf_seen(NF *nf, uint32_t serial, Str name)
{
    if ((nf->seen_n + 1) * 2 > nf->seen_size) {
        /* grow: rehash the kept (hash, serial) keys; a hash collision only costs a
         * give-up on a record with no repeat, which the dict path then reads right */
        Py_ssize_t size = nf->seen_size ? nf->seen_size * 2 : 512;
        uint64_t *seen = PyMem_Calloc((size_t)size, sizeof(uint64_t));
        if (seen == NULL)
            return -1;
        size_t mask = (size_t)size - 1;
        for (Py_ssize_t k = 0; k < nf->seen_size; k++) {
            uint64_t v = nf->seen[k];
            if (v == 0)
                continue;
            size_t i = (size_t)v & mask;
            while (seen[i] != 0)
                i = (i + 1) & mask;
            seen[i] = v;
        }
        PyMem_Free(nf->seen);
        nf->seen = seen;
        nf->seen_size = size;
    }
    uint64_t v = nf_hash_at(nf, name.p, name.len) ^ ((uint64_t)serial * 0x9E3779B97F4A7C15u);
    v |= 1; /* never 0 */
    size_t mask = (size_t)nf->seen_size - 1, i = (size_t)v & mask;
    while (nf->seen[i] != 0) {
        if (nf->seen[i] == v)
            return 1;
        i = (i + 1) & mask;
    }
    nf->seen[i] = v;
    nf->seen_n++;
    return 0;
}

static inline int
nf_peek(NF *nf)
{
    while (nf->p < nf->end &&
           (*nf->p == ' ' || *nf->p == '\n' || *nf->p == '\r' || *nf->p == '\t'))
        nf->p++;
    return nf->p < nf->end ? (unsigned char)*nf->p : -1;
}

static inline int
nf_take(NF *nf, char c)
{
    if (nf_peek(nf) != (unsigned char)c)
        return 0;
    nf->p++;
    return 1;
}

/* Return codes of the readers: 1 read, 0 give up, -1 error (no memory). */

/* A string with escapes, from just after its opening quote, decoded into the arena. */
static int
nf_string_escaped(NF *nf, const char *s, Str *out)
{
    char *buf = nf_alloc(nf, (Py_ssize_t)(nf->end - s));
    if (buf == NULL)
        return -1;
    char *w = buf;
    const char *p = s;
    while (p < nf->end) {
        unsigned char c = (unsigned char)*p;
        if (c == '"') {
            nf->p = p + 1;
            *out = (Str){buf, w - buf};
            nf->at = w; /* the rest of the room taken back (the last allocation) */
            return 1;
        }
        if (c < 0x20)
            return 0;
        if (c != '\\') {
            *w++ = (char)c;
            p++;
            continue;
        }
        if (!json_unescape(&p, nf->end, &w))
            return 0;
    }
    return 0;
}

/* A JSON string at the cursor (its opening quote). The text is valid UTF-8 (a str's). */
static int
nf_string(NF *nf, Str *out)
{
    if (nf_peek(nf) != '"')
        return 0;
    const char *s = ++nf->p, *p = s;
    while (nf->end - p >= 8) {
        if (json_special8(load64(p)))
            break;
        p += 8;
    }
    while (p < nf->end) {
        unsigned char c = (unsigned char)*p;
        if (c == '"') {
            nf->p = p + 1;
            *out = (Str){s, p - s, 1};
            return 1;
        }
        if (c == '\\')
            return nf_string_escaped(nf, s, out);
        if (c < 0x20)
            return 0;
        p++;
    }
    return 0;
}

enum { LEAF_STR, LEAF_INT, LEAF_NULL, LEAF_TRUE, LEAF_FALSE, LEAF_OBJECT, LEAF_ARRAY };

/* A leaf at the cursor as flattening gives its text (scalar()); an object or an array
 * is only named (*kind), not read. Floats and integers orjson reads otherwise give up. */
static int
nf_leaf(NF *nf, Str *out, int *kind)
{
    int c = nf_peek(nf);
    if (c == '"') {
        *kind = LEAF_STR;
        return nf_string(nf, out);
    }
    if (c == '{' || c == '[') {
        *kind = c == '{' ? LEAF_OBJECT : LEAF_ARRAY;
        return 1;
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        const char *s = nf->p, *p = s;
        if (*p == '-')
            p++;
        const char *digits = p;
        while (p < nf->end && *p >= '0' && *p <= '9')
            p++;
        Py_ssize_t n = p - digits;
        if (n == 0 || (n > 1 && *digits == '0') || (n == 1 && *digits == '0' && s != digits))
            return 0;
        if (s == digits ? (n > 20 || (n == 20 && memcmp(digits, "18446744073709551615", 20) > 0))
                        : (n > 19 || (n == 19 && memcmp(digits, "9223372036854775808", 19) > 0)))
            return 0;
        if (p < nf->end && (*p == '.' || *p == 'e' || *p == 'E'))
            return 0;
        nf->p = p;
        *kind = LEAF_INT;
        *out = (Str){s, p - s, 1};
        return 1;
    }
    if (c == 't' && nf->end - nf->p >= 4 && memcmp(nf->p, "true", 4) == 0) {
        nf->p += 4;
        *kind = LEAF_TRUE;
        *out = (Str){nf_true, 4, 1};
        return 1;
    }
    if (c == 'f' && nf->end - nf->p >= 5 && memcmp(nf->p, "false", 5) == 0) {
        nf->p += 5;
        *kind = LEAF_FALSE;
        *out = (Str){nf_false, 5, 1};
        return 1;
    }
    if (c == 'n' && nf->end - nf->p >= 4 && memcmp(nf->p, "null", 4) == 0) {
        nf->p += 4;
        *kind = LEAF_NULL;
        *out = LIT("");
        return 1;
    }
    return 0;
}

/* After a member or an item of what nf_open() opened: 2 more follow, 1 it closed (its
 * depth given back), 0 give up. */
static inline int
nf_next(NF *nf, char close)
{
    int c = nf_peek(nf);
    nf->p++;
    if (c == ',')
        return 2;
    if (c == close) {
        nf->depth--;
        return 1;
    }
    return 0;
}

/* Start an object at the cursor: 1 members follow, 2 it is empty, 0 give up. */
static inline int
nf_open(NF *nf, char open, char close)
{
    if (!nf_take(nf, open) || ++nf->depth > JS_MAX_DEPTH)
        return 0;
    if (nf_peek(nf) == (unsigned char)close) {
        nf->p++;
        nf->depth--;
        return 2;
    }
    return 1;
}

/* Read "name": of object ``serial``. */
static int
nf_name(NF *nf, uint32_t serial, Str *name)
{
    int rc = nf_string(nf, name);
    if (rc != 1)
        return rc;
    if (!nf_take(nf, ':'))
        return 0;
    rc = nf_seen(nf, serial, *name);
    return rc < 0 ? -1 : rc == 1 ? 0 : 1;
}

/* Any value, read and dropped (as valid JSON, names unrepeated, as the reference reads). */
static int
nf_skip(NF *nf)
{
    Str s;
    int kind, rc = nf_leaf(nf, &s, &kind);
    if (rc != 1 || (kind != LEAF_OBJECT && kind != LEAF_ARRAY))
        return rc;
    int object = kind == LEAF_OBJECT;
    rc = nf_open(nf, object ? '{' : '[', object ? '}' : ']');
    if (rc != 1)
        return rc == 2 ? 1 : rc;
    uint32_t serial = ++nf->serial;
    for (;;) {
        if (object && (rc = nf_name(nf, serial, &s)) != 1)
            return rc;
        if ((rc = nf_skip(nf)) != 1)
            return rc;
        if ((rc = nf_next(nf, object ? '}' : ']')) != 2)
            return rc;
    }
}

static int
nf_concat(NF *nf, Str a, const char *sep, Py_ssize_t sep_len, Str b, Str *out)
{
    char *buf = nf_alloc(nf, a.len + sep_len + b.len);
    if (buf == NULL)
        return -1;
    memcpy(buf, a.p, (size_t)a.len);
    memcpy(buf + a.len, sep, (size_t)sep_len);
    memcpy(buf + a.len + sep_len, b.p, (size_t)b.len);
    *out = (Str){buf, a.len + sep_len + b.len, a.clean && b.clean};
    return 1;
}

/* key + sep + the number ``n``. */
static int
nf_numbered(NF *nf, Str key, const char *sep, Py_ssize_t sep_len, Py_ssize_t n, Str *out)
{
    char digits[24];
    int len = snprintf(digits, sizeof digits, "%zd", n);
    return nf_concat(nf, key, sep, sep_len, (Str){digits, len, 1}, out);
}

static int nf_put(NF *nf, Str key);

/* The #attributes of an element under ``key``: key.attr = scalar(value), but xmlns. */
static int
nf_put_attributes(NF *nf, Str key)
{
    int rc = nf_open(nf, '{', '}');
    if (rc != 1)
        return rc == 2 ? 1 : rc; /* not an object: an error in the reference (give up) */
    uint32_t serial = ++nf->serial;
    for (;;) {
        Str attr, value, name;
        int kind;
        if ((rc = nf_name(nf, serial, &attr)) != 1 || (rc = nf_leaf(nf, &value, &kind)) != 1)
            return rc;
        if (kind == LEAF_OBJECT || kind == LEAF_ARRAY)
            return 0; /* str() of a dict or a list: the dict path's */
        int xmlns = STR_IS(attr, "xmlns") || (attr.len >= 6 && memcmp(attr.p, "xmlns:", 6) == 0);
        if (!xmlns) {
            if ((rc = nf_concat(nf, key, ".", 1, attr, &name)) != 1)
                return rc;
            if (nf_set(nf, name, value) < 0)
                return -1;
        }
        if ((rc = nf_next(nf, '}')) != 2)
            return rc;
    }
}

/* _put() of an object at the cursor under ``key``. */
static int
nf_put_object(NF *nf, Str key)
{
    int rc = nf_open(nf, '{', '}');
    if (rc != 1)
        return rc == 2 ? 1 : rc;
    uint32_t serial = ++nf->serial;
    for (;;) {
        Str sub, name;
        if ((rc = nf_name(nf, serial, &sub)) != 1)
            return rc;
        if (STR_IS(sub, "#text"))
            rc = nf_put(nf, key);
        else if (STR_IS(sub, "#attributes"))
            rc = nf_put_attributes(nf, key);
        else if ((rc = nf_concat(nf, key, ".", 1, sub, &name)) == 1)
            rc = nf_put(nf, name);
        if (rc != 1)
            return rc;
        if ((rc = nf_next(nf, '}')) != 2)
            return rc;
    }
}

/* _put() of an array at the cursor: key_1, key_2... */
static int
nf_put_array(NF *nf, Str key, const char *sep, Py_ssize_t sep_len)
{
    int rc = nf_open(nf, '[', ']');
    if (rc != 1)
        return rc == 2 ? 1 : rc;
    for (Py_ssize_t i = 1;; i++) {
        Str name;
        if ((rc = nf_numbered(nf, key, sep, sep_len, i, &name)) != 1 ||
            (rc = nf_put(nf, name)) != 1)
            return rc;
        if ((rc = nf_next(nf, ']')) != 2)
            return rc;
    }
}

/* _put(): the value at the cursor under ``key``. */
static int
nf_put(NF *nf, Str key)
{
    Str value;
    int kind, rc = nf_leaf(nf, &value, &kind);
    if (rc != 1)
        return rc;
    if (kind == LEAF_OBJECT)
        return nf_put_object(nf, key);
    if (kind == LEAF_ARRAY)
        return nf_put_array(nf, key, "_", 1);
    return nf_set(nf, key, value) < 0 ? -1 : 1;
}

/* normalise_guid() of ASCII text; 0 (give up) when it is not ASCII. */
static int
nf_guid(NF *nf, Str text, Str *out)
{
    Py_ssize_t lo = 0, hi = text.len;
    while (lo < hi && (text.p[lo] == '{' || text.p[lo] == '}'))
        lo++;
    while (hi > lo && (text.p[hi - 1] == '{' || text.p[hi - 1] == '}'))
        hi--;
    char *buf = nf_alloc(nf, hi - lo > 0 ? hi - lo : 1);
    if (buf == NULL)
        return -1;
    for (Py_ssize_t i = lo; i < hi; i++) {
        unsigned char c = (unsigned char)text.p[i];
        if (c >= 0x80)
            return 0;
        buf[i - lo] = (char)(c >= 'a' && c <= 'z' ? c - 32 : c);
    }
    *out = (Str){buf, hi - lo, text.clean};
    return 1;
}

/* A System element that is an object, read as system_dict() reads it. */
#define SMALL_MAX 32

typedef struct {
    int members;
    int has_text, text_kind;
    Str text;
    int attrs_kind; /* -1 absent, else LEAF_NULL or LEAF_OBJECT */
    int n_attrs;
    Str attr_names[SMALL_MAX], attr_values[SMALL_MAX];
    int attr_kinds[SMALL_MAX];
} Small;

/* 1 read into ``s``; 2 not a shape this reads (the cursor is then anywhere: the caller
 * starts again from the object's start); 0 give up; -1 error. */
static int
nf_small(NF *nf, Small *s)
{
    s->members = 0;
    s->has_text = 0;
    s->attrs_kind = -1;
    s->n_attrs = 0;
    int rc = nf_open(nf, '{', '}');
    if (rc != 1)
        return rc == 2 ? 1 : rc;
    uint32_t serial = ++nf->serial;
    for (;;) {
        Str sub;
        if ((rc = nf_name(nf, serial, &sub)) != 1)
            return rc;
        s->members++;
        if (STR_IS(sub, "#text")) {
            if ((rc = nf_leaf(nf, &s->text, &s->text_kind)) != 1)
                return rc;
            if (s->text_kind == LEAF_OBJECT || s->text_kind == LEAF_ARRAY)
                return 2;
            s->has_text = 1;
        }
        else if (STR_IS(sub, "#attributes")) {
            Str unused;
            int kind;
            if ((rc = nf_leaf(nf, &unused, &kind)) != 1)
                return rc;
            if (kind == LEAF_NULL)
                s->attrs_kind = LEAF_NULL;
            else if (kind != LEAF_OBJECT)
                return 2;
            else {
                s->attrs_kind = LEAF_OBJECT;
                rc = nf_open(nf, '{', '}');
                if (rc == 1) {
                    uint32_t attrs = ++nf->serial;
                    for (;;) {
                        if (s->n_attrs == SMALL_MAX)
                            return 2;
                        int k = s->n_attrs;
                        if ((rc = nf_name(nf, attrs, &s->attr_names[k])) != 1 ||
                            (rc = nf_leaf(nf, &s->attr_values[k], &s->attr_kinds[k])) != 1)
                            return rc;
                        if (s->attr_kinds[k] == LEAF_OBJECT || s->attr_kinds[k] == LEAF_ARRAY)
                            return 2;
                        s->n_attrs++;
                        if ((rc = nf_next(nf, '}')) == 0)
                            return 0;
                        if (rc == 1)
                            break;
                    }
                }
                else if (rc != 2)
                    return rc;
            }
        }
        else if ((rc = nf_skip(nf)) != 1)
            return rc;
        if ((rc = nf_next(nf, '}')) != 2)
            return rc;
    }
}

/* attrs.get(name) of a small element: its index, or -1. */
static int
small_attr(const Small *s, const char *name, Py_ssize_t len)
{
    for (int i = 0; i < s->n_attrs; i++)
        if (str_eq(s->attr_names[i], name, len))
            return i;
    return -1;
}

static inline int
leaf_truthy(int kind, Str text)
{
    if (kind == LEAF_STR)
        return text.len > 0;
    if (kind == LEAF_INT)
        return !(text.len == 1 && text.p[0] == '0');
    return kind == LEAF_TRUE;
}

static int
str_contains(Str hay, const char *needle, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i + n <= hay.len; i++)
        if (memcmp(hay.p + i, needle, (size_t)n) == 0)
            return 1;
    return 0;
}

/* system_dict(): the System element ``key``, an object at the cursor. */
static int
nf_system_dict(NF *nf, Str key)
{
    int special = STR_IS(key, "TimeCreated") || STR_IS(key, "Provider") ||
                  STR_IS(key, "EventID") || STR_IS(key, "Correlation") ||
                  STR_IS(key, "Execution") || STR_IS(key, "Security");
    if (!special)
        return nf_put(nf, key);
    const char *start = nf->p;
    int depth = nf->depth;
    Small s;
    int rc = nf_small(nf, &s);
    if (rc != 1)
        return rc == 2 ? 0 : rc; /* a shape the dict path reads (or errs on) */
    if (STR_IS(key, "TimeCreated")) {
        int at = small_attr(&s, "SystemTime", 10);
        if (at >= 0 && leaf_truthy(s.attr_kinds[at], s.attr_values[at]))
            return nf_set(nf, LIT("SystemTime"), s.attr_values[at]) < 0 ? -1 : 1;
        return 1;
    }
    if (STR_IS(key, "Provider")) {
        for (int i = 0; i < s.n_attrs; i++) {
            Str name, text = s.attr_values[i];
            if (STR_IS(s.attr_names[i], "Guid") && (rc = nf_guid(nf, text, &text)) != 1)
                return rc;
            if ((rc = nf_concat(nf, LIT("Provider_"), "", 0, s.attr_names[i], &name)) != 1)
                return rc;
            if (nf_set(nf, name, text) < 0)
                return -1;
        }
        return 1;
    }
    if (STR_IS(key, "EventID")) {
        Str text = s.has_text ? s.text : LIT("");
        if (nf_set(nf, LIT("EventID"), text) < 0)
            return -1;
        int at = small_attr(&s, "Qualifiers", 10);
        if (at >= 0 && s.attr_kinds[at] != LEAF_NULL &&
            !(s.attr_kinds[at] == LEAF_STR && s.attr_values[at].len == 0))
            return nf_set(nf, LIT("EventID_Qualifiers"), s.attr_values[at]) < 0 ? -1 : 1;
        return 1;
    }
    if (s.members == 1 && s.attrs_kind == LEAF_OBJECT) { /* Correlation, Execution, Security */
        for (int i = 0; i < s.n_attrs; i++) {
            Str text = s.attr_values[i];
            if (s.attr_kinds[i] == LEAF_NULL || (s.attr_kinds[i] == LEAF_STR && text.len == 0))
                continue;
            if (str_contains(s.attr_names[i], "ActivityID", 10) &&
                (rc = nf_guid(nf, text, &text)) != 1)
                return rc;
            if (nf_set(nf, s.attr_names[i], text) < 0)
                return -1;
        }
        return 1;
    }
    /* Anything else: _put(), from the element's start (its names read again). */
    nf->p = start;
    nf->depth = depth;
    return nf_put(nf, key);
}

/* Event/System, as flatten_system() does it. */
static int
nf_system(NF *nf)
{
    int rc = nf_open(nf, '{', '}');
    if (rc != 1)
        return rc == 2 ? 1 : rc;
    uint32_t serial = ++nf->serial;
    for (;;) {
        Str key, value;
        int kind;
        if ((rc = nf_name(nf, serial, &key)) != 1 || (rc = nf_leaf(nf, &value, &kind)) != 1)
            return rc;
        if (kind == LEAF_OBJECT)
            rc = nf_system_dict(nf, key);
        else if (kind == LEAF_ARRAY)
            rc = nf_put_array(nf, key, "_", 1);
        else if (kind != LEAF_NULL)
            rc = nf_set(nf, key, value) < 0 ? -1 : 1;
        if (rc != 1)
            return rc;
        if ((rc = nf_next(nf, '}')) != 2)
            return rc;
    }
}

/* _put_unnamed(): Data_1, Data_2... of the value at the cursor. */
static int
nf_put_unnamed(NF *nf)
{
    static const Str data = {"Data", 4, 1};
    if (nf_peek(nf) == '{') {
        /* {"#text": x} alone is x */
        const char *start = nf->p;
        int depth = nf->depth;
        nf->p++;
        Str name;
        int rc = nf_string(nf, &name);
        if (rc < 0)
            return rc;
        if (rc == 1 && STR_IS(name, "#text") && nf_take(nf, ':')) {
            const char *inner = nf->p;
            rc = nf_skip(nf);
            if (rc != 1)
                return rc;
            if (nf_peek(nf) == '}') {
                const char *after = nf->p + 1;
                nf->p = inner;
                if (nf_peek(nf) == '[')
                    rc = nf_put_array(nf, data, "_", 1);
                else {
                    Str one;
                    rc = nf_concat(nf, data, "_1", 2, LIT(""), &one);
                    if (rc == 1)
                        rc = nf_put(nf, one);
                }
                if (rc == 1)
                    nf->p = after;
                return rc;
            }
        }
        nf->p = start;
        nf->depth = depth;
    }
    if (nf_peek(nf) == '[')
        return nf_put_array(nf, data, "_", 1);
    return nf_put(nf, LIT("Data_1"));
}

/* Event/EventData, as flatten_eventdata() does it. */
static int
nf_eventdata(NF *nf)
{
    int rc = nf_open(nf, '{', '}');
    if (rc != 1)
        return rc == 2 ? 1 : rc;
    uint32_t serial = ++nf->serial;
    for (;;) {
        Str key;
        if ((rc = nf_name(nf, serial, &key)) != 1)
            return rc;
        int found;
        nf_get(nf, key.p, key.len, &found);
        if (found && (rc = nf_concat(nf, LIT("EventData."), "", 0, key, &key)) != 1)
            return rc;
        if (STR_IS(key, "Data"))
            rc = nf_put_unnamed(nf);
        else if (!STR_IS(key, "#attributes"))
            rc = nf_put(nf, key);
        else {
            /* "#attributes": a str or an int is a field, anything else is not */
            const char *start = nf->p;
            Str value;
            int kind;
            rc = nf_leaf(nf, &value, &kind);
            if (rc == 1 && (kind == LEAF_STR || kind == LEAF_INT))
                rc = nf_set(nf, key, value) < 0 ? -1 : 1;
            else if (rc == 1) {
                nf->p = start;
                rc = nf_skip(nf);
            }
        }
        if (rc != 1)
            return rc;
        if ((rc = nf_next(nf, '}')) != 2)
            return rc;
    }
}

/* Event/UserData: each member _put() under its name. */
static int
nf_userdata(NF *nf)
{
    int rc = nf_open(nf, '{', '}');
    if (rc != 1)
        return rc == 2 ? 1 : rc;
    uint32_t serial = ++nf->serial;
    for (;;) {
        Str key;
        if ((rc = nf_name(nf, serial, &key)) != 1 || (rc = nf_put(nf, key)) != 1)
            return rc;
        if ((rc = nf_next(nf, '}')) != 2)
            return rc;
    }
}

/* The flat fields of a record's JSON text into ``nf``: 1, 0 give up, -1 error. */
static int
nf_flatten(NF *nf, const char *text, Py_ssize_t size, Py_ssize_t *n_system)
{
    nf_reset(nf);
    nf->p = text;
    nf->end = text + size;
    *n_system = 0;
    Str name;
    int rc;
    if (!nf_take(nf, '{') || nf_string(nf, &name) != 1 || !STR_IS(name, "Event") ||
        !nf_take(nf, ':'))
        return 0;
    rc = nf_open(nf, '{', '}');
    if (rc != 1)
        return rc == 2 ? 0 : rc; /* an empty Event: the dict path */
    uint32_t serial = ++nf->serial;
    int other_seen = 0;
    for (;;) {
        Str section;
        if ((rc = nf_name(nf, serial, &section)) != 1)
            return rc;
        int c = nf_peek(nf);
        if (STR_IS(section, "System")) {
            if (other_seen || c != '{')
                return 0;
            if ((rc = nf_system(nf)) != 1)
                return rc;
            *n_system = nf->n;
        }
        else if (STR_IS(section, "#attributes"))
            rc = nf_skip(nf);
        else if (c == 'n') {
            Str value;
            int kind;
            rc = nf_leaf(nf, &value, &kind);
            if (rc == 1 && kind != LEAF_NULL)
                return 0;
        }
        else {
            other_seen = 1;
            if (STR_IS(section, "EventData") && c == '{')
                rc = nf_eventdata(nf);
            else if (STR_IS(section, "UserData") && c == '{')
                rc = nf_userdata(nf);
            else
                rc = nf_put(nf, section);
        }
        if (rc != 1)
            return rc;
        if ((rc = nf_next(nf, '}')) != 2)
            break;
    }
    if (rc != 1 || !nf_take(nf, '}') || nf_peek(nf) != -1)
        return 0;
    return 1;
}

/* ---- The row from the native fields ---- */

static inline int
nf_flat_ascii_digits(Str s)
{
    if (s.len == 0)
        return 0;
    for (Py_ssize_t i = 0; i < s.len; i++)
        if (s.p[i] < '0' || s.p[i] > '9')
            return 0;
    return 1;
}

/* A field's text as a str (short ASCII ones cached). New reference. */
static PyObject *
str_of(Str s)
{
    int ascii = 1;
    for (Py_ssize_t i = 0; i < s.len && ascii; i++)
        ascii = (unsigned char)s.p[i] < 0x80;
    if (ascii)
        return cached_ascii(s.p, s.len);
    return PyUnicode_DecodeUTF8(s.p, s.len, "strict");
}

/* The code point of the UTF-8 sequence at s (valid UTF-8); *n its length. */
static inline Py_UCS4
utf8_at(const unsigned char *s, int *n)
{
    if (s[0] < 0x80) {
        *n = 1;
        return s[0];
    }
    if (s[0] < 0xE0) {
        *n = 2;
        return ((Py_UCS4)(s[0] & 0x1F) << 6) | (s[1] & 0x3F);
    }
    if (s[0] < 0xF0) {
        *n = 3;
        return ((Py_UCS4)(s[0] & 0x0F) << 12) | ((Py_UCS4)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
    }
    *n = 4;
    return ((Py_UCS4)(s[0] & 0x07) << 18) | ((Py_UCS4)(s[1] & 0x3F) << 12) |
           ((Py_UCS4)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
}

/* str.strip() of UTF-8 text. */
static Str
utf8_strip(Str s)
{
    const unsigned char *p = (const unsigned char *)s.p, *end = p + s.len;
    while (p < end) {
        int n;
        Py_UCS4 cp = utf8_at(p, &n);
        if (!Py_UNICODE_ISSPACE(cp))
            break;
        p += n;
    }
    while (end > p) {
        const unsigned char *q = end - 1;
        while (q > p && (*q & 0xC0) == 0x80)
            q--;
        int n;
        Py_UCS4 cp = utf8_at(q, &n);
        if (!Py_UNICODE_ISSPACE(cp))
            break;
        end = q;
    }
    return (Str){(const char *)p, (const char *)end - (const char *)p};
}

/* A growing scratch buffer for the message. */
static char *msg_buf;
static Py_ssize_t msg_size, msg_cap;

static int
msg_add(const char *s, Py_ssize_t n)
{
    if (msg_size + n > msg_cap) {
        Py_ssize_t want = msg_cap ? msg_cap * 2 : 4096;
        while (want < msg_size + n)
            want *= 2;
        char *grown = PyMem_Realloc(msg_buf, (size_t)want);
        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        msg_buf = grown;
        msg_cap = want;
    }
    memcpy(msg_buf + msg_size, s, (size_t)n);
    msg_size += n;
    return 0;
}

/* "name=value" after the pairs before it, unless the stripped value is "" or "-". */
static int
msg_pair(int *pairs, const char *name, Py_ssize_t name_len, Str raw)
{
    Str value = utf8_strip(raw);
    if (value.len == 0 || (value.len == 1 && value.p[0] == '-'))
        return 0;
    if (msg_add(*pairs ? " " : ": ", *pairs ? 1 : 2) < 0 || msg_add(name, name_len) < 0 ||
        msg_add("=", 1) < 0 || msg_add(value.p, value.len) < 0)
        return -1;
    (*pairs)++;
    return 0;
}

/* render_message() of the native fields, appended to ``col``. */
static int
nf_message(NF *nf, Py_ssize_t n_system, Column *col, PyObject *resolved, PyObject *resolve,
           PyObject *fallback)
{
    PyObject *id = str_of(NF_GET(nf, "EventID", NULL));
    PyObject *channel = id == NULL ? NULL : str_of(NF_GET(nf, "Channel", NULL));
    PyObject *provider = channel == NULL ? NULL : str_of(NF_GET(nf, "Provider_Name", NULL));
    PyObject *key = provider == NULL ? NULL : PyTuple_Pack(3, id, channel, provider);
    Py_XDECREF(id);
    Py_XDECREF(channel);
    Py_XDECREF(provider);
    if (key == NULL)
        return -1;
    PyObject *entry = PyDict_GetItemWithError(resolved, key);
    if (entry == NULL) {
        if (PyErr_Occurred()) {
            Py_DECREF(key);
            return -1;
        }
        entry = PyObject_CallOneArg(resolve, key);
        if (entry == NULL || PyDict_SetItem(resolved, key, entry) < 0) {
            Py_XDECREF(entry);
            Py_DECREF(key);
            return -1;
        }
    }
    else
        Py_INCREF(entry);
    Py_DECREF(key);
    int rc = -1;
    if (!PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) != 2 ||
        !PyUnicode_Check(PyTuple_GET_ITEM(entry, 0))) {
        PyErr_SetString(PyExc_TypeError, "resolved entries are (head, fields) tuples");
        goto done;
    }
    PyObject *head = PyTuple_GET_ITEM(entry, 0), *fields = PyTuple_GET_ITEM(entry, 1);
    Py_ssize_t head_len;
    const char *head_text = PyUnicode_AsUTF8AndSize(head, &head_len);
    if (head_text == NULL)
        goto done;
    msg_size = 0;
    if (msg_add(head_text, head_len) < 0)
        goto done;
    int pairs = 0;
    if (fields != Py_None) {
        if (!PyTuple_Check(fields)) {
            PyErr_SetString(PyExc_TypeError, "template fields are a tuple");
            goto done;
        }
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(fields); i++) {
            PyObject *name = PyTuple_GET_ITEM(fields, i);
            Py_ssize_t len;
            const char *text = PyUnicode_Check(name) ? PyUnicode_AsUTF8AndSize(name, &len) : NULL;
            if (text == NULL) {
                if (!PyErr_Occurred())
                    PyErr_SetString(PyExc_TypeError, "field names are str");
                goto done;
            }
            if (msg_pair(&pairs, text, len, nf_get(nf, text, len, NULL)) < 0)
                goto done;
        }
    }
    else {
        for (Py_ssize_t i = n_system; i < nf->n; i++) {
            Entry *e = &nf->entries[i];
            if (STR_IS(e->key, "Binary"))
                continue;
            if (msg_pair(&pairs, e->key.p, e->key.len, e->value) < 0)
                goto done;
        }
    }
    /* one_line(): printable ASCII is only cut; anything else goes the str way. */
    int plain = 1;
    for (Py_ssize_t i = 0; i < msg_size && plain; i++)
        plain = msg_buf[i] >= 0x20 && msg_buf[i] < 0x7F;
    if (plain) {
        if (msg_size <= MAX_MESSAGE)
            rc = col_append_bytes(col, msg_buf, msg_size);
        else {
            msg_size = MAX_MESSAGE - 1;
            rc = msg_add("\xe2\x80\xa6", 3) < 0 ? -1 : col_append_bytes(col, msg_buf, msg_size);
        }
    }
    else {
        PyObject *text = PyUnicode_DecodeUTF8(msg_buf, msg_size, "strict");
        PyObject *line = text == NULL ? NULL : one_line(text, fallback);
        Py_XDECREF(text);
        rc = line == NULL ? -1 : col_append(col, line);
        Py_XDECREF(line);
    }
done:
    Py_DECREF(entry);
    return rc;
}

/* A field's text as JSON into ``c``: a clean one only quoted. */
static inline int
col_json_text(Column *c, Str s)
{
    if (!s.clean)
        return col_json_utf8(c, s.p, s.len);
    if (col_reserve(c, s.len + 2) < 0)
        return -1;
    char *w = c->data + c->size;
    *w = '"';
    memcpy(w + 1, s.p, (size_t)s.len);
    w[s.len + 1] = '"';
    c->size += s.len + 2;
    return 0;
}

/* orjson.dumps() of the native fields as a row of ``c``. */
static int
nf_json(NF *nf, Column *c)
{
    if (col_reserve(c, 2) < 0)
        return -1;
    c->data[c->size++] = '{';
    for (Py_ssize_t i = 0; i < nf->n; i++) {
        Entry *e = &nf->entries[i];
        if (i && (col_reserve(c, 1) < 0 || (c->data[c->size++] = ',', 0)))
            return -1;
        if (col_json_text(c, e->key) < 0 || col_reserve(c, 1) < 0)
            return -1;
        c->data[c->size++] = ':';
        if (col_json_text(c, e->value) < 0)
            return -1;
    }
    if (col_reserve(c, 1) < 0)
        return -1;
    c->data[c->size++] = '}';
    return col_end_row(c);
}

/* The record's row from the native fields into 9 Columns: 1 done, 0 give up (nothing
 * appended, nothing changed), -1 error. */
static int
nf_row(PyObject *item, PyObject *data, PyObject *const *a, Column **cols)
{
    PyObject *keys = a[3], *seen = a[4], *header_time = a[7];
    PyObject *resolved = a[8], *resolve = a[9], *fallback = a[10];
    PyObject *ts_desc = a[11], *ts_desc_header = a[12];
    NF *nf = &nf_state;
    Py_ssize_t size, n_system;
    if (nf_busy)
        return 0;
    const char *text = PyUnicode_AsUTF8AndSize(data, &size);
    if (text == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError))
            return -1;
        PyErr_Clear();
        return 0;
    }
    int rc = nf_flatten(nf, text, size, &n_system);
    if (rc != 1) {
        if (rc < 0 && !PyErr_Occurred())
            PyErr_NoMemory();
        return rc;
    }
    /* The record number: EventRecordID when it is ASCII digits, else the header's. */
    PyObject *number;
    Str rid = NF_GET(nf, "EventRecordID", NULL);
    if (nf_flat_ascii_digits(rid)) {
        PyObject *digits = cached_ascii(rid.p, rid.len);
        number = digits == NULL ? NULL : PyLong_FromUnicodeObject(digits, 10);
        Py_XDECREF(digits);
    }
    else {
        number = PyDict_GetItemWithError(item, S_event_record_id);
        if (number == NULL && !PyErr_Occurred())
            PyErr_SetString(PyExc_KeyError, "event_record_id");
        Py_XINCREF(number);
    }
    if (number == NULL)
        return -1;
    nf_busy = 1;
    PyObject *record = NULL, *header = NULL;
    Py_ssize_t before[9];
    for (int i = 0; i < 9; i++)
        before[i] = cols[i]->n;
    rc = -1;
    if (seen != Py_None && PySet_Add(seen, number) < 0)
        goto done;
    record = record_key(keys, number);
    if (record == NULL)
        goto done;
    Str ts = NF_GET(nf, "SystemTime", NULL);
    if (ts.len > 0) {
        if (col_append_bytes(cols[0], ts.p, ts.len) < 0 || col_append(cols[1], ts_desc) < 0)
            goto fail;
    }
    else {
        PyObject *header_ts = PyDict_GetItemWithError(item, S_timestamp);
        if (header_ts == NULL) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_KeyError, "timestamp");
            goto fail;
        }
        header = PyObject_CallOneArg(header_time, header_ts);
        if (header == NULL || col_append(cols[0], header) < 0 ||
            col_append(cols[1], ts_desc_header) < 0)
            goto fail;
    }
    Str channel = NF_GET(nf, "Channel", NULL), computer = NF_GET(nf, "Computer", NULL);
    if (col_append_bytes(cols[2], channel.p, channel.len) < 0 ||
        col_append_bytes(cols[3], computer.p, computer.len) < 0)
        goto fail;
    static const char *users[4] = {"TargetUserName", "SubjectUserName", "User", "UserID"};
    Str user = {"", 0};
    for (int i = 0; i < 4; i++) {
        Str value = nf_get(nf, users[i], (Py_ssize_t)strlen(users[i]), NULL);
        if (value.len > 0 && !(value.len == 1 && value.p[0] == '-')) {
            user = value;
            break;
        }
    }
    Str eid = NF_GET(nf, "EventID", NULL);
    if (col_append_bytes(cols[4], user.p, user.len) < 0 ||
        col_append_bytes(cols[5], eid.p, eid.len) < 0 ||
        nf_message(nf, n_system, cols[6], resolved, resolve, fallback) < 0 ||
        nf_json(nf, cols[7]) < 0 || col_append(cols[8], record) < 0)
        goto fail;
    rc = 1;
    goto done;
fail:
    for (int i = 0; i < 9; i++)
        col_truncate(cols[i], before[i]);
done:
    nf_busy = 0;
    Py_XDECREF(header);
    Py_XDECREF(record);
    Py_DECREF(number);
    return rc;
}

/* native(text) -> ([(name, value)...], n_system) | None: the native reader alone, for
 * the tests. */
static PyObject *
native(PyObject *module, PyObject *data)
{
    if (!PyUnicode_Check(data)) {
        PyErr_SetString(PyExc_TypeError, "native() takes a str");
        return NULL;
    }
    Py_ssize_t size, n_system;
    const char *text = PyUnicode_AsUTF8AndSize(data, &size);
    if (text == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError))
            return NULL;
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    NF *nf = &nf_state;
    if (nf_busy)
        Py_RETURN_NONE;
    int rc = nf_flatten(nf, text, size, &n_system);
    if (rc < 0)
        return PyErr_Occurred() ? NULL : PyErr_NoMemory();
    if (rc == 0)
        Py_RETURN_NONE;
    PyObject *pairs = PyList_New(nf->n);
    if (pairs == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < nf->n; i++) {
        Entry *e = &nf->entries[i];
        PyObject *pair = Py_BuildValue("(s#s#)", e->key.p, e->key.len, e->value.p, e->value.len);
        if (pair == NULL) {
            Py_DECREF(pairs);
            return NULL;
        }
        PyList_SET_ITEM(pairs, i, pair);
    }
    return Py_BuildValue("(Nn)", pairs, n_system);
}

/* One row's values into 9 Columns; the fields as orjson.dumps(flat) gives them. On an
 * error no column keeps any of the row. */
static int
append_row(Column **cols, PyObject *const *vals, PyObject *flat, PyObject *dumps)
{
    Py_ssize_t before[9];
    for (int i = 0; i < 9; i++)
        before[i] = cols[i]->n;
    int rc = 0;
    for (int i = 0; i < 9 && rc == 0; i++) {
        if (i != 7) {
            rc = col_append(cols[i], vals[i]);
            continue;
        }
        rc = col_json_flat(cols[7], flat);
        if (rc > 0) {
            PyObject *fields = PyObject_CallOneArg(dumps, flat);
            rc = fields == NULL ? -1 : col_append(cols[7], fields);
            Py_XDECREF(fields);
        }
    }
    if (rc < 0)
        for (int i = 0; i < 9; i++)
            col_truncate(cols[i], before[i]);
    return rc;
}

/* One pyevtx-rs record (a dict) as a timeline row: a 9-tuple, or (``cols`` given) its
 * values appended to 9 Columns (Py_None returned). *odd = 1 when its JSON does not decode
 * and Python must handle it. New reference, or NULL with *odd set or an exception. */
static PyObject *
record_row(PyObject *item, PyObject *const *a, int *odd, Column **cols)
{
    PyObject *keys = a[3], *seen = a[4], *loads = a[5], *dumps = a[6], *header_time = a[7];
    PyObject *resolved = a[8], *resolve = a[9], *fallback = a[10];
    PyObject *ts_desc = a[11], *ts_desc_header = a[12];
    PyObject *flat = NULL, *number = NULL, *row = NULL;
    /* ts, ts_desc, channel, computer, user, event id, message, fields, record: owned. */
    PyObject *vals[9] = {NULL};
    if (!PyDict_Check(item)) {
        PyErr_SetString(PyExc_TypeError, "records are dicts");
        return NULL;
    }
    PyObject *data = PyDict_GetItemWithError(item, S_data);
    if (data == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_KeyError, "data");
        return NULL;
    }
    if (cols != NULL && PyUnicode_CheckExact(data)) {
        int done = nf_row(item, data, a, cols);
        if (done != 0) {
            if (done < 0)
                return NULL;
            Py_RETURN_NONE;
        }
    }
    Py_ssize_t n_system = 0;
    flat = PyUnicode_CheckExact(data) ? fused_flatten(data, &n_system) : NULL;
    if (flat == NULL && PyErr_Occurred())
        return NULL;
    if (flat == NULL && (flat = loads_flatten(data, loads, &n_system, odd)) == NULL)
        return NULL;
    number = record_number(flat, item);
    if (number == NULL)
        goto done;
    if (seen != Py_None && PySet_Add(seen, number) < 0)
        goto done;
    vals[8] = record_key(keys, number);
    if (vals[8] == NULL)
        goto done;
    PyObject *ts = PyDict_GetItemWithError(flat, S_SystemTime);
    if (ts == NULL && PyErr_Occurred())
        goto done;
    if (ts != NULL && PyUnicode_Check(ts) && PyUnicode_GET_LENGTH(ts) > 0) {
        Py_INCREF(ts);
        Py_INCREF(ts_desc);
        vals[1] = ts_desc;
    }
    else {
        PyObject *header_ts = PyDict_GetItemWithError(item, S_timestamp);
        if (header_ts == NULL) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_KeyError, "timestamp");
            goto done;
        }
        ts = PyObject_CallOneArg(header_time, header_ts);
        if (ts == NULL)
            goto done;
        Py_INCREF(ts_desc_header);
        vals[1] = ts_desc_header;
    }
    vals[0] = ts;
    PyObject *names[3] = {S_Channel, S_Computer, NULL};
    for (int i = 0; i < 2; i++) {
        PyObject *value = get_text(flat, names[i]);
        if (value == NULL)
            goto done;
        Py_INCREF(value);
        vals[2 + i] = value;
    }
    PyObject *user = user_of(flat);
    if (user == NULL)
        goto done;
    Py_INCREF(user);
    vals[4] = user;
    PyObject *eid = get_text(flat, S_EventID);
    if (eid == NULL)
        goto done;
    Py_INCREF(eid);
    vals[5] = eid;
    vals[6] = render_message(flat, n_system, resolved, resolve, fallback);
    if (vals[6] == NULL)
        goto done;
    if (cols != NULL) {
        if (append_row(cols, vals, flat, dumps) == 0) {
            Py_INCREF(Py_None);
            row = Py_None;
        }
        goto done;
    }
    vals[7] = PyObject_CallOneArg(dumps, flat);
    if (vals[7] == NULL)
        goto done;
    row = PyTuple_New(9);
    if (row == NULL)
        goto done;
    for (int i = 0; i < 9; i++) {
        PyTuple_SET_ITEM(row, i, vals[i]);
        vals[i] = NULL;
    }
done:
    for (int i = 0; i < 9; i++)
        Py_XDECREF(vals[i]);
    Py_XDECREF(number);
    Py_DECREF(flat);
    return row;
}

/*
 * rows(records, out, limit, keys, seen, loads, dumps, header_time, resolved, resolve,
 *      one_line, ts_desc, ts_desc_header)
 * Appends up to ``limit`` rows to ``out`` from the ``records`` iterator: to a list as
 * 9-tuples, or to a tuple of 9 lists, one per row column. Returns None when
 * the records are exhausted, True when ``limit`` rows were added, or a record whose JSON
 * does not decode (for Python to report). The Python loop it replaces:
 * irkit.sources.evtx.source.EvtxSource._parse_py.
 */
static PyObject *
rows(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 13) {
        PyErr_SetString(PyExc_TypeError, "rows() takes 13 arguments");
        return NULL;
    }
    PyObject *records = args[0], *out = args[1];
    Py_ssize_t limit = PyLong_AsSsize_t(args[2]);
    if (limit == -1 && PyErr_Occurred())
        return NULL;
    int columns = PyTuple_CheckExact(out) && PyTuple_GET_SIZE(out) == 9;
    int builders = columns;
    Column *cols[9];
    for (Py_ssize_t i = 0; columns && i < 9; i++) {
        PyObject *column = PyTuple_GET_ITEM(out, i);
        builders = builders && Column_Check(column);
        columns = PyList_CheckExact(column) || Column_Check(column);
        cols[i] = (Column *)column;
    }
    if (columns && !builders)
        for (Py_ssize_t i = 0; columns && i < 9; i++)
            columns = PyList_CheckExact(PyTuple_GET_ITEM(out, i));
    if (!(columns || PyList_Check(out)) || !PyDict_Check(args[8]) ||
        (args[4] != Py_None && !PySet_Check(args[4]))) {
        PyErr_SetString(PyExc_TypeError,
                        "rows(): out is a list, 9 lists or 9 Columns, resolved a dict, seen a set");
        return NULL;
    }
    for (Py_ssize_t added = 0; added < limit; added++) {
        PyObject *item = PyIter_Next(records);
        if (item == NULL) {
            if (PyErr_Occurred())
                return NULL;
            Py_RETURN_NONE;
        }
        int odd = 0;
        PyObject *row = record_row(item, args, &odd, builders ? cols : NULL);
        if (row == NULL) {
            if (odd)
                return item;
            Py_DECREF(item);
            return NULL;
        }
        Py_DECREF(item);
        int rc = 0;
        if (builders)
            ;
        else if (columns)
            for (Py_ssize_t i = 0; i < 9 && rc == 0; i++)
                rc = PyList_Append(PyTuple_GET_ITEM(out, i), PyTuple_GET_ITEM(row, i));
        else
            rc = PyList_Append(out, row);
        Py_DECREF(row);
        if (rc < 0)
            return NULL;
    }
    Py_RETURN_TRUE;
}

static PyMethodDef methods[] = {
    {"flatten_event", (PyCFunction)flatten_event, METH_O,
     "Flatten a pyevtx-rs JSON Event; returns the fields and how many are System's."},
    {"render", (PyCFunction)(void (*)(void))render, METH_FASTCALL,
     "render(flat, n_system, resolved, resolve, one_line): the one-line message."},
    {"uids", (PyCFunction)(void (*)(void))uids, METH_FASTCALL,
     "uids(sha256, records, ts_descs): md5 hex of each 'sha256|record|ts_desc'."},
    {"native", (PyCFunction)native, METH_O,
     "native(json_text): ([(name, value)...], n_system) of the native reader, or None."},
    {"fused", (PyCFunction)fused, METH_O,
     "fused(json_text): (fields, n_system) straight from pyevtx-rs JSON, or None."},
    {"uids_into", (PyCFunction)(void (*)(void))uids_into, METH_FASTCALL,
     "uids_into(out, sha256, records, ts_descs, start, count): uids() of Column rows."},
    {"rows", (PyCFunction)(void (*)(void))rows, METH_FASTCALL,
     "rows(records, out, limit, keys, seen, loads, dumps, header_time, resolved, resolve,"
     " one_line, ts_desc, ts_desc_header): timeline rows from pyevtx-rs records."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_evtxflat", "The EVTX hot path in C (see irkit/sources/evtx/).", -1, methods,
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
    INTERN(S_Computer, "Computer");
    INTERN(S_ellipsis, "\xe2\x80\xa6");
    INTERN(S_EventRecordID, "EventRecordID");
    INTERN(S_Event, "Event");
    INTERN(S_data, "data");
    INTERN(S_event_record_id, "event_record_id");
    INTERN(S_timestamp, "timestamp");
    INTERN(S__last, "_last");
    INTERN(S__start, "_start");
    INTERN(S__ranges, "_ranges");
    INTERN(S_ordinal, "ordinal");
    INTERN(S_key, "key");
    INTERN(S_dash, "-");
    INTERN(S_user_fields[0], "TargetUserName");
    INTERN(S_user_fields[1], "SubjectUserName");
    INTERN(S_user_fields[2], "User");
    INTERN(S_user_fields[3], "UserID");
    if (PyType_Ready(&Column_Type) < 0)
        return NULL;
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL)
        return NULL;
    Py_INCREF(&Column_Type);
    if (PyModule_AddObject(module, "Column", (PyObject *)&Column_Type) < 0) {
        Py_DECREF(&Column_Type);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
