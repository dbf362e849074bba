/* Page advice for a mapped capture, with the GIL released.
 *
 * A capture file is read through a mapping (diffserv/capture/byte_source.py): the
 * pages of the next window are mapped in ahead (MADV_POPULATE_READ) and the pages
 * behind are given back (MADV_DONTNEED). Each call maps or unmaps thousands of pages,
 * a millisecond or two of kernel work, and Python's mmap.madvise holds the GIL for all
 * of it, so the engine thread stood still while the reading thread advised. These do
 * the same with the GIL released, and copy_from_mapping also fuses the map-copy-unmap
 * of a marking run's read into one call.
 *
 * The buffer stays borrowed for the whole call, so the mapping cannot be closed under
 * it (mmap.close() refuses while a buffer is exported).
 */
#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kernels.h"

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22 /* Linux >= 5.14 */
#endif

/* The page size, asked once. */
static uintptr_t page_size(void) {
    static uintptr_t page = 0;
    if (page == 0) page = (uintptr_t)sysconf(_SC_PAGESIZE);
    return page;
}

/* The page-aligned range covering [start, start + len) of a buffer at `base` of `size`
 * bytes, clipped to whole pages inside the buffer when `inside` (DONTNEED must not reach
 * a neighbour's page) or widened to whole pages when not (POPULATE may). Returns the
 * length, 0 when nothing is left. */
static size_t page_range(const uint8_t *base, Py_ssize_t size, Py_ssize_t start,
                         Py_ssize_t len, int inside, uint8_t **out) {
    uintptr_t mask = page_size() - 1;
    uintptr_t lo = (uintptr_t)(base + start), hi = (uintptr_t)(base + start + len);
    uintptr_t first = (uintptr_t)base, last = (uintptr_t)(base + size);
    if (inside) {
        lo = (lo + mask) & ~mask;
        hi &= ~mask;
        if (hi > last) hi = last & ~mask;
    } else {
        lo &= ~mask;
    }
    if (lo < first) lo = (first + mask) & ~mask;
    if (hi <= lo) return 0;
    *out = (uint8_t *)lo;
    return (size_t)(hi - lo);
}

static int range_ok(Py_ssize_t size, Py_ssize_t start, Py_ssize_t len, const char *what) {
    if (start < 0 || len < 0 || start > size || len > size - start) {
        PyErr_Format(PyExc_ValueError, "%s: [%zd, %zd) is outside the %zd-byte buffer", what,
                     start, start + len, size);
        return -1;
    }
    return 0;
}

/* advise(buf, start, length, advice) -> None: see the method table. */
static PyObject *py_advise(PyObject *self, PyObject *args) {
    PyObject *buf_o;
    Py_ssize_t start, len;
    int advice;
    if (!PyArg_ParseTuple(args, "Onni:advise", &buf_o, &start, &len, &advice)) return NULL;
    Py_buffer view;
    if (bytes_acquire(buf_o, &view, 0, "buf") < 0) return NULL;
    if (range_ok(view.len, start, len, "advise") < 0) {
        PyBuffer_Release(&view);
        return NULL;
    }
    uint8_t *at = NULL;
    /* only DONTNEED drops contents: the others may cover a partial page at either end */
    size_t n = page_range(view.buf, view.len, start, len, advice == MADV_DONTNEED, &at);
    int rc = 0, err = 0;
    if (n > 0) {
        Py_BEGIN_ALLOW_THREADS
        rc = madvise(at, n, advice);
        err = errno;
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&view);
    if (rc != 0) {
        errno = err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_RETURN_NONE;
}

/* copy_from_mapping(src, pos, dst, start, n) -> None: see the method table. */
static PyObject *py_copy_from_mapping(PyObject *self, PyObject *args) {
    PyObject *src_o, *dst_o;
    Py_ssize_t pos, start, n;
    if (!PyArg_ParseTuple(args, "OnOnn:copy_from_mapping", &src_o, &pos, &dst_o, &start, &n))
        return NULL;
    Py_buffer src, dst;
    if (bytes_acquire(src_o, &src, 0, "src") < 0) return NULL;
    if (bytes_acquire(dst_o, &dst, 1, "dst") < 0) {
        PyBuffer_Release(&src);
        return NULL;
    }
    if (range_ok(src.len, pos, n, "src") < 0 || range_ok(dst.len, start, n, "dst") < 0) {
        PyBuffer_Release(&src);
        PyBuffer_Release(&dst);
        return NULL;
    }
    const uint8_t *from = (const uint8_t *)src.buf + pos;
    /* the page `pos` is in: its bytes before `pos` were copied by the call before */
    Py_ssize_t back = (Py_ssize_t)((uintptr_t)from & (page_size() - 1));
    Py_BEGIN_ALLOW_THREADS
    uint8_t *at = NULL;
    size_t span = page_range(src.buf, src.len, pos, n, 0, &at);
    /* a kernel before 5.14 refuses POPULATE_READ: then the copy's faults map the pages */
    if (span > 0) (void)madvise(at, span, MADV_POPULATE_READ);
    memcpy((uint8_t *)dst.buf + start, from, (size_t)n);
    /* the copied pages are not needed any more (advice: nothing to report) */
    if (back <= pos && (span = page_range(src.buf, src.len, pos - back, n + back, 1, &at)) > 0)
        (void)madvise(at, span, MADV_DONTNEED);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&src);
    PyBuffer_Release(&dst);
    Py_RETURN_NONE;
}

PyMethodDef pages_methods[] = {
    {"advise", py_advise, METH_VARARGS,
     "advise(buf, start, length, advice): madvise the pages of buf[start:start + length] "
     "with the GIL released (DONTNEED only whole pages inside the range); OSError on "
     "failure."},
    {"copy_from_mapping", py_copy_from_mapping, METH_VARARGS,
     "copy_from_mapping(src, pos, dst, start, n): map in the pages of src[pos:pos + n] "
     "(POPULATE_READ, where the kernel has it), copy them to dst[start:start + n] and give "
     "the whole pages back (DONTNEED), GIL released."},
    {NULL, NULL, 0, NULL},
};

int pages_constants(PyObject *module) {
    static const int_constant_t constants[] = {
        {"MADV_POPULATE_READ", MADV_POPULATE_READ},
    };
    return add_int_constants(module, constants, sizeof constants / sizeof constants[0]);
}
