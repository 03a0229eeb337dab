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
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
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
        if (p + 1 >= j->end)
            break;
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
            if (j->end - p < 4 || hex4(p, &cp) < 0)
                break;
            p += 4;
            if (cp >= 0xDC00 && cp <= 0xDFFF)
                break;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (j->end - p < 6 || p[0] != '\\' || p[1] != 'u' || hex4(p + 2, &low) < 0 ||
                    low < 0xDC00 || low > 0xDFFF)
                    break;
                p += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
            }
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
        }
        else
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
        uint64_t quote = v ^ 0x2222222222222222u, slash = v ^ 0x5C5C5C5C5C5C5C5Cu;
        uint64_t odd = ((quote - 0x0101010101010101u) & ~quote) |
                       ((slash - 0x0101010101010101u) & ~slash) |
                       (v - 0x2020202020202020u) | v;
        if (odd & 0x8080808080808080u)
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

/* ---- rows(): the whole per-record loop of EvtxSource.parse ---- */

static PyObject *S_EventRecordID, *S_data, *S_event_record_id, *S_timestamp;
static PyObject *S__last, *S_ordinal, *S_key, *S_dash;
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

/* One pyevtx-rs record (a dict) as a timeline row; *odd = 1 when its JSON does not decode
 * and Python must handle it. New reference, or NULL with *odd set or an exception. */
static PyObject *
record_row(PyObject *item, PyObject *const *a, int *odd)
{
    PyObject *keys = a[3], *seen = a[4], *loads = a[5], *dumps = a[6], *header_time = a[7];
    PyObject *resolved = a[8], *resolve = a[9], *fallback = a[10];
    PyObject *ts_desc = a[11], *ts_desc_header = a[12];
    PyObject *flat = NULL, *number = NULL, *row = NULL;
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
    PyObject *record = record_key(keys, number);
    if (record == NULL)
        goto done;
    row = PyTuple_New(9);
    if (row == NULL) {
        Py_DECREF(record);
        goto done;
    }
    PyTuple_SET_ITEM(row, 8, record);
    PyObject *ts = PyDict_GetItemWithError(flat, S_SystemTime);
    if (ts == NULL && PyErr_Occurred())
        goto fail;
    if (ts != NULL && PyUnicode_Check(ts) && PyUnicode_GET_LENGTH(ts) > 0) {
        Py_INCREF(ts);
        Py_INCREF(ts_desc);
        PyTuple_SET_ITEM(row, 1, ts_desc);
    }
    else {
        PyObject *header_ts = PyDict_GetItemWithError(item, S_timestamp);
        if (header_ts == NULL) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_KeyError, "timestamp");
            goto fail;
        }
        ts = PyObject_CallOneArg(header_time, header_ts);
        if (ts == NULL)
            goto fail;
        Py_INCREF(ts_desc_header);
        PyTuple_SET_ITEM(row, 1, ts_desc_header);
    }
    PyTuple_SET_ITEM(row, 0, ts);
    PyObject *names[3] = {S_Channel, S_Computer, NULL};
    for (int i = 0; i < 2; i++) {
        PyObject *value = get_text(flat, names[i]);
        if (value == NULL)
            goto fail;
        Py_INCREF(value);
        PyTuple_SET_ITEM(row, 2 + i, value);
    }
    PyObject *user = user_of(flat);
    if (user == NULL)
        goto fail;
    Py_INCREF(user);
    PyTuple_SET_ITEM(row, 4, user);
    PyObject *eid = get_text(flat, S_EventID);
    if (eid == NULL)
        goto fail;
    Py_INCREF(eid);
    PyTuple_SET_ITEM(row, 5, eid);
    PyObject *message = render_message(flat, n_system, resolved, resolve, fallback);
    if (message == NULL)
        goto fail;
    PyTuple_SET_ITEM(row, 6, message);
    PyObject *fields = PyObject_CallOneArg(dumps, flat);
    if (fields == NULL)
        goto fail;
    PyTuple_SET_ITEM(row, 7, fields);
    goto done;
fail:
    Py_CLEAR(row);
done:
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
    for (Py_ssize_t i = 0; columns && i < 9; i++)
        columns = PyList_CheckExact(PyTuple_GET_ITEM(out, i));
    if (!(columns || PyList_Check(out)) || !PyDict_Check(args[8]) ||
        (args[4] != Py_None && !PySet_Check(args[4]))) {
        PyErr_SetString(PyExc_TypeError,
                        "rows(): out is a list or 9 lists, resolved a dict, seen a set");
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
        PyObject *row = record_row(item, args, &odd);
        if (row == NULL) {
            if (odd)
                return item;
            Py_DECREF(item);
            return NULL;
        }
        Py_DECREF(item);
        int rc = 0;
        if (columns)
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
    {"fused", (PyCFunction)fused, METH_O,
     "fused(json_text): (fields, n_system) straight from pyevtx-rs JSON, or None."},
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
    INTERN(S_ordinal, "ordinal");
    INTERN(S_key, "key");
    INTERN(S_dash, "-");
    INTERN(S_user_fields[0], "TargetUserName");
    INTERN(S_user_fields[1], "SubjectUserName");
    INTERN(S_user_fields[2], "User");
    INTERN(S_user_fields[3], "UserID");
    return PyModule_Create(&module_def);
}
