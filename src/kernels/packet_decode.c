/* decode_rows: the L2-L4 decode of a batch whose frames are already located.
 *
 * The decoder itself is in packet_decode.h, shared with the capture walkers (which
 * decode while they frame); this is the entry for rows framed elsewhere (decode_frames,
 * live sources).
 */
#include "kernels.h"
#include "packet_decode.h"

/* Decode rows [0, n); returns the first row whose frame is not inside buf, or -1. */
static Py_ssize_t decode_all(const columns_t *c, const uint8_t *buf, Py_ssize_t buflen,
                             const int32_t *linktype) {
    for (Py_ssize_t i = 0; i < c->n; i++) {
        int64_t start = c->pkt_off[i];
        int64_t caplen = c->cap_len[i];
        if (start < 0 || start > buflen - caplen) return i;
        decode_one(c, buf, i, start, caplen, c->wire_len[i], linktype[i], c->direction[i]);
    }
    return -1;
}

/* decode_rows(buf, linktype, cols) -> None: fill the decoded columns of every row from
 * the frames that pkt_off/cap_len/wire_len locate in buf; linktype (int32, one per row)
 * gives each frame's link-layer header type. */
PyObject *packet_decode_rows(PyObject *self, PyObject *args) {
    PyObject *buf_obj, *linktype_obj, *cols_obj;
    if (!PyArg_ParseTuple(args, "OOO:decode_rows", &buf_obj, &linktype_obj, &cols_obj))
        return NULL;
    Py_buffer buf, linktype;
    columns_hold_t hold;
    if (bytes_acquire(buf_obj, &buf, 0, "buf") < 0) return NULL;
    if (array_acquire(linktype_obj, &linktype, 4, 1, 0, "linktype") < 0) goto fail_buf;
    if (columns_acquire(cols_obj, &hold) < 0) goto fail_linktype;
    if (ITEMS(linktype) != hold.c.n) {
        PyErr_Format(PyExc_ValueError, "linktype has %zd rows, the columns %zd",
                     ITEMS(linktype), hold.c.n);
        goto fail_cols;
    }
    Py_ssize_t bad;
    Py_BEGIN_ALLOW_THREADS
    bad = decode_all(&hold.c, buf.buf, buf.len, linktype.buf);
    Py_END_ALLOW_THREADS
    if (bad >= 0) {
        PyErr_Format(PyExc_ValueError, "row %zd: frame [%lld, +%lld) is not inside buf (%zd bytes)",
                     bad, (long long)hold.c.pkt_off[bad], (long long)hold.c.cap_len[bad], buf.len);
        goto fail_cols;
    }
    columns_release(&hold);
    PyBuffer_Release(&linktype);
    PyBuffer_Release(&buf);
    Py_RETURN_NONE;
fail_cols:
    columns_release(&hold);
fail_linktype:
    PyBuffer_Release(&linktype);
fail_buf:
    PyBuffer_Release(&buf);
    return NULL;
}
