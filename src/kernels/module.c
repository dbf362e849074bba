/* diffserv._kernels: module set-up and the buffer borrowing every kernel uses. */
#include "kernels.h"

static int format_matches(const Py_buffer *view, int itemsize, int is_signed) {
    if (view->itemsize != itemsize) return 0;
    if (is_signed < 0 || view->format == NULL) return 1;
    const char *f = view->format;
    while (*f == '@' || *f == '=' || *f == '<' || *f == '>' || *f == '!') f++;
    if (f[0] == '\0' || f[1] != '\0') return 0;
    int lower = (*f >= 'a' && *f <= 'z') && *f != 'c' && *f != '?';
    if (*f == '?' || *f == 'c' || *f == 'f' || *f == 'd' || *f == 'e') return 0;
    return lower == is_signed;
}

/* A C-contiguous buffer with its format (writable if asked); TypeError naming `what`. */
static int contiguous_acquire(PyObject *obj, Py_buffer *view, int writable, const char *what) {
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) < 0) {
        PyErr_Format(PyExc_TypeError, "%s: expected a contiguous%s array", what,
                     writable ? " writable" : "");
        return -1;
    }
    return 0;
}

int array_acquire(PyObject *obj, Py_buffer *view, int itemsize, int is_signed, int writable,
                  const char *what) {
    if (contiguous_acquire(obj, view, writable, what) < 0) return -1;
    if (view->ndim > 1 || !format_matches(view, itemsize, is_signed)) {
        PyErr_Format(PyExc_TypeError, "%s: expected %s %d-byte items, got format %s", what,
                     is_signed < 0 ? "" : (is_signed ? "signed" : "unsigned"), itemsize,
                     view->format ? view->format : "B");
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

int matrix_acquire(PyObject *obj, Py_buffer *view, Py_ssize_t width, int is_signed, int writable,
                   const char *what) {
    if (contiguous_acquire(obj, view, writable, what) < 0) return -1;
    if (view->ndim != 2 || view->shape[1] != width || !format_matches(view, 8, is_signed)) {
        PyErr_Format(PyExc_TypeError,
                     "%s: expected %s8-byte integers in an array of shape (rows, %zd)", what,
                     is_signed < 0 ? "" : (is_signed ? "signed " : "unsigned "), width);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

int bytes_acquire(PyObject *obj, Py_buffer *view, int writable, const char *what) {
    int flags = PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) < 0) {
        PyErr_Format(PyExc_TypeError, "%s: expected a contiguous%s byte buffer", what,
                     writable ? " writable" : "");
        return -1;
    }
    view->itemsize = 1;
    return 0;
}

void arrays_release(Py_buffer *views, int n) {
    for (int i = 0; i < n; i++) PyBuffer_Release(&views[i]);
}

int arrays_acquire(PyObject *const *args, const arg_spec_t *specs, int n, Py_buffer *views) {
    for (int i = 0; i < n; i++) {
        if (array_acquire(args[i], &views[i], specs[i].itemsize, specs[i].is_signed,
                          specs[i].writable, specs[i].name) < 0) {
            arrays_release(views, i);
            return -1;
        }
    }
    return 0;
}

int check_nargs(const char *func, Py_ssize_t nargs, int n) {
    if (nargs == n) return 0;
    PyErr_Format(PyExc_TypeError, "%s() takes %d arguments (%zd given)", func, n, nargs);
    return -1;
}

int add_int_constants(PyObject *module, const int_constant_t *constants, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (PyModule_AddIntConstant(module, constants[i].name, constants[i].value) < 0) return -1;
    return 0;
}

void columns_release(columns_hold_t *hold) {
    for (int i = 0; i < hold->held; i++) PyBuffer_Release(&hold->views[i]);
    hold->held = 0;
}

int columns_acquire(PyObject *tuple, columns_hold_t *hold) {
    hold->held = 0;
    if (!PyTuple_Check(tuple) || PyTuple_GET_SIZE(tuple) != NCOLUMNS) {
        PyErr_Format(PyExc_TypeError, "expected a PacketColumns tuple of %d columns", NCOLUMNS);
        return -1;
    }
    void *data[NCOLUMNS];
    Py_ssize_t n = -1;
    for (int i = 0; i < NCOLUMNS; i++) {
        const column_spec_t *spec = &COLUMN_SPECS[i];
        if (array_acquire(PyTuple_GET_ITEM(tuple, i), &hold->views[i], spec->itemsize,
                          spec->is_signed, 1, spec->name) < 0) {
            columns_release(hold);
            return -1;
        }
        hold->held = i + 1;
        Py_ssize_t rows = ITEMS(hold->views[i]);
        if (n >= 0 && rows != n) {
            PyErr_Format(PyExc_ValueError, "column %s has %zd rows, not %zd", spec->name, rows, n);
            columns_release(hold);
            return -1;
        }
        n = rows;
        data[i] = hold->views[i].buf;
    }
    columns_bind(&hold->c, data);
    hold->c.n = n;
    return 0;
}

/* columns_rows(cols) -> int: the rows of a PacketColumns tuple, after checking every
 * column as a kernel would (the tests hold the binding to the Python table with it). */
static PyObject *columns_rows(PyObject *self, PyObject *cols) {
    columns_hold_t hold;
    if (columns_acquire(cols, &hold) < 0) return NULL;
    Py_ssize_t n = hold.c.n;
    columns_release(&hold);
    return PyLong_FromSsize_t(n);
}

static PyMethodDef base_methods[] = {
    {"columns_rows", columns_rows, METH_O, "Rows of a PacketColumns tuple, checked."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef kernels_module = {
    PyModuleDef_HEAD_INIT, "diffserv._kernels",
    "The compiled per-packet kernels of diffserv (built when the package is installed).",
    -1, base_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__kernels(void) {
    PyObject *module = PyModule_Create(&kernels_module);
    if (module == NULL) return NULL;
#define ADD_AREA(area)                                                              \
    if (area##_methods != NULL && PyModule_AddFunctions(module, area##_methods) < 0) \
        goto fail;                                                                  \
    if (area##_constants != NULL && area##_constants(module) < 0) goto fail;
    KERNEL_AREAS(ADD_AREA)
#undef ADD_AREA
    if (PyModule_AddIntConstant(module, "NCOLUMNS", NCOLUMNS) < 0) goto fail;
    return module;
fail:
    Py_DECREF(module);
    return NULL;
}
