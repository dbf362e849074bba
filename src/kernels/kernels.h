/* Shared by every kernel source: the column table, buffer access and the method tables.
 *
 * The kernels are the per-packet hot path of diffserv, compiled ahead of time into one
 * extension module, diffserv._kernels, when the package is installed (so no run ever
 * waits for a compiler). Python owns every array: a kernel borrows the buffers it is
 * given for the length of one call, with the GIL released while it loops.
 */
#ifndef DIFFSERV_KERNELS_H
#define DIFFSERV_KERNELS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "layout.h"

/* A PacketColumns tuple borrowed for one call: the typed pointers and the views. */
typedef struct {
    columns_t c;
    Py_buffer views[NCOLUMNS];
    int held;
} columns_hold_t;

/* Borrow every column of the PacketColumns tuple `tuple` (writable, C-contiguous, the
 * dtype the table declares, all of one length). On failure a Python exception is set,
 * nothing stays borrowed and -1 is returned. */
int columns_acquire(PyObject *tuple, columns_hold_t *hold);
void columns_release(columns_hold_t *hold);

/* Borrow a one-dimensional C-contiguous array of items of `itemsize` bytes; `is_signed`
 * -1 accepts either signedness. `writable` asks for a writable buffer. `what` names
 * the argument in the error. Returns -1 with an exception set on failure. */
int array_acquire(PyObject *obj, Py_buffer *view, int itemsize, int is_signed, int writable,
                  const char *what);
/* A C-contiguous two-dimensional array of 8-byte integers with `width` columns (the
 * signedness and writability as for array_acquire). */
int matrix_acquire(PyObject *obj, Py_buffer *view, Py_ssize_t width, int is_signed, int writable,
                   const char *what);
/* The same for a byte buffer (any buffer of bytes: numpy uint8, bytes, mmap). */
int bytes_acquire(PyObject *obj, Py_buffer *view, int writable, const char *what);

#define ITEMS(view) ((view).len / (view).itemsize)

/* One array argument of a kernel: its name in errors, item size, signedness (-1 either)
 * and whether the kernel writes it. */
typedef struct {
    const char *name;
    int itemsize;
    int is_signed;
    int writable;
} arg_spec_t;

/* Borrow the first `n` arguments as the arrays `specs` describes: all or none (with an
 * exception set). The argument count is the caller's to check (check_nargs), since some
 * kernels take integers after their arrays. */
int arrays_acquire(PyObject *const *args, const arg_spec_t *specs, int n, Py_buffer *views);
void arrays_release(Py_buffer *views, int n);
/* A TypeError unless a METH_FASTCALL kernel got exactly `n` arguments. */
int check_nargs(const char *func, Py_ssize_t nargs, int n);

/* Write every row's new_ds / new_pcp into buf (packet_rewrite.c, mark_rows): the frames
 * changed, or a negative value with *bad the row whose offsets point outside buf. Call
 * without the GIL. */
int64_t mark_all(uint8_t *buf, Py_ssize_t buflen, const columns_t *c, Py_ssize_t *bad);

/* An area's integer constants, added to the module by name. */
typedef struct {
    const char *name;
    long value;
} int_constant_t;
int add_int_constants(PyObject *module, const int_constant_t *constants, size_t n);

/* Big-endian loads from a byte buffer (callers have checked the bounds). */
static inline uint32_t load_be16(const uint8_t *p) { return ((uint32_t)p[0] << 8) | p[1]; }
static inline uint32_t load_be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline uint64_t load_be64(const uint8_t *p) {
    return ((uint64_t)load_be32(p) << 32) | load_be32(p + 4);
}
static inline uint32_t load_le16(const uint8_t *p) { return p[0] | ((uint32_t)p[1] << 8); }
static inline uint32_t load_le32(const uint8_t *p) {
    return p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/* A METH_FASTCALL entry of a method table: the function, cast as the table wants it. */
#define FASTCALL(f) (PyCFunction)(void (*)(void))(f), METH_FASTCALL

/* Each area's Python-visible functions, NULL-terminated; module.c joins them. An area
 * not built into this copy of the module is simply absent (weak symbol). */
#define KERNEL_AREAS(X) X(packet) X(capture) X(pages) X(classify) X(flows) X(meters) X(engine) \
    X(nfqueue) X(grouping) X(text)
#define DECLARE_AREA(area) \
    extern PyMethodDef area##_methods[] __attribute__((weak)); \
    extern int area##_constants(PyObject *module) __attribute__((weak));
KERNEL_AREAS(DECLARE_AREA)
#undef DECLARE_AREA

#endif
