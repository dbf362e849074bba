/* In-place marking (dscpmk, dlcosmk) and the internet checksum arithmetic it needs.
 *
 * Only the bytes a marker owns change: the IPv4 ToS byte plus the header checksum
 * (RFC 1624 incremental update, so the rest of the header is never re-summed), the IPv6
 * traffic-class bits 4-11 of the first word, and the top three bits of the outer VLAN
 * TCI. Malformed packets are never touched, and nothing is written past a frame's
 * captured bytes. Also the packet area's method table (decode_rows is in
 * packet_decode.c).
 */
#include "kernels.h"
#include "packet_decode.h"

/* Fold carries of a one's-complement sum back into 16 bits. */
static inline int64_t fold16(int64_t total) {
    while (total > 0xFFFF) total = (total & 0xFFFF) + (total >> 16);
    return total;
}

/* RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), all 16-bit one's complement. */
static inline int64_t incremental_checksum(int64_t old_checksum, int64_t old_word,
                                           int64_t new_word) {
    int64_t total = (~old_checksum & 0xFFFF) + (~old_word & 0xFFFF) + (new_word & 0xFFFF);
    return ~fold16(total) & 0xFFFF;
}

#define MARK_OUTSIDE (-1) /* a row points outside buf: the caller raises */

/* Write the DS byte of row i (whose IP header is at l3); returns whether it changed. */
static inline int mark_ds(uint8_t *buf, Py_ssize_t buflen, const columns_t *c, Py_ssize_t i,
                          int64_t l3, int ds) {
    if (l3 > buflen - 2) return MARK_OUTSIDE;
    uint8_t *h = buf + l3;
    int version = c->ip_version[i];
    if (version == IPV4) {
        if (h[1] == ds) return 0; /* the word (h[0], ds) is unchanged */
        int old_word = (h[0] << 8) | h[1];
        int new_word = (old_word & 0xFF00) | ds;
        h[1] = (uint8_t)ds;
        /* the checksum only when the snap length left it in the capture */
        if (l3 + 12 <= c->pkt_off[i] + (int64_t)c->cap_len[i]) {
            if (l3 > buflen - 12) return MARK_OUTSIDE;
            int64_t new_sum = incremental_checksum((h[10] << 8) | h[11], old_word, new_word);
            h[10] = (uint8_t)(new_sum >> 8);
            h[11] = (uint8_t)(new_sum & 0xFF);
        }
        return 1;
    }
    if (version == IPV6) {
        int b0 = (h[0] & 0xF0) | (ds >> 4);
        int b1 = ((ds & 0x0F) << 4) | (h[1] & 0x0F);
        if (b0 == h[0] && b1 == h[1]) return 0;
        h[0] = (uint8_t)b0;
        h[1] = (uint8_t)b1;
        return 1;
    }
    return 0;
}

/* How many rows ahead mark_all asks for the IP header's cache line: the headers of a
 * batch are spread over megabytes of capture, so each is a cache miss, and waiting for
 * one at a time would make marking memory-latency bound. */
#define MARK_PREFETCH 16

/* Mark every row; returns the frames changed, or MARK_OUTSIDE with *bad the row
 * (kernels.h: the session's batch_end pass calls it too). */
int64_t mark_all(uint8_t *buf, Py_ssize_t buflen, const columns_t *c, Py_ssize_t *bad) {
    int64_t changed = 0;
    for (Py_ssize_t i = 0; i < c->n; i++) {
        if (i + MARK_PREFETCH < c->n) {
            /* a row that is not IP (-1) or out of range prefetches the buffer start */
            uint64_t ahead = (uint64_t)c->l3_off[i + MARK_PREFETCH];
            __builtin_prefetch(buf + (ahead < (uint64_t)buflen ? ahead : 0), 1);
        }
        if (c->flags[i] & FLAG_MALFORMED) continue;
        int touched = 0;
        int ds = c->new_ds[i];
        int64_t l3 = c->l3_off[i];
        if (ds >= 0 && l3 >= 0) {
            touched = mark_ds(buf, buflen, c, i, l3, ds & 0xFF);
            if (touched < 0) goto outside;
        }
        int pcp = c->new_pcp[i];
        int64_t tci = c->vlan_off[i];
        if (pcp >= 0 && tci >= 0) {
            if (tci >= buflen) goto outside;
            int b = ((pcp & 0x07) << 5) | (buf[tci] & 0x1F);
            if (b != buf[tci]) {
                buf[tci] = (uint8_t)b;
                touched = 1;
            }
        }
        changed += touched;
        continue;
    outside:
        *bad = i;
        return MARK_OUTSIDE;
    }
    return changed;
}

/* mark_rows(buf, cols) -> int: write the requested DS bytes and PCPs into buf; return
 * how many frames changed. */
static PyObject *py_mark_rows(PyObject *self, PyObject *args) {
    PyObject *buf_obj, *cols_obj;
    if (!PyArg_ParseTuple(args, "OO:mark_rows", &buf_obj, &cols_obj)) return NULL;
    Py_buffer buf;
    columns_hold_t hold;
    if (bytes_acquire(buf_obj, &buf, 1, "buf") < 0) return NULL;
    if (columns_acquire(cols_obj, &hold) < 0) {
        PyBuffer_Release(&buf);
        return NULL;
    }
    Py_ssize_t bad = -1;
    int64_t changed;
    Py_BEGIN_ALLOW_THREADS
    changed = mark_all(buf.buf, buf.len, &hold.c, &bad);
    Py_END_ALLOW_THREADS
    PyObject *result = NULL;
    if (changed < 0)
        PyErr_Format(PyExc_ValueError,
                     "row %zd: its IP header or VLAN tag offset is not inside buf (%zd bytes)",
                     bad, buf.len);
    else
        result = PyLong_FromLongLong(changed);
    columns_release(&hold);
    PyBuffer_Release(&buf);
    return result;
}

/* fold16(total) -> int */
static PyObject *py_fold16(PyObject *self, PyObject *args) {
    long long total;
    if (!PyArg_ParseTuple(args, "L:fold16", &total)) return NULL;
    return PyLong_FromLongLong(fold16(total));
}

/* incremental_checksum(old_checksum, old_word, new_word) -> int */
static PyObject *py_incremental_checksum(PyObject *self, PyObject *args) {
    long long old_checksum, old_word, new_word;
    if (!PyArg_ParseTuple(args, "LLL:incremental_checksum", &old_checksum, &old_word, &new_word))
        return NULL;
    return PyLong_FromLongLong(incremental_checksum(old_checksum, old_word, new_word));
}

/* ipv4_header_checksum(buf, off, header_len) -> int: the checksum of the IPv4 header at
 * buf[off:off+header_len] with its checksum field taken as 0 (what a full recomputation
 * gives; the tests hold the incremental update to it). */
static PyObject *py_ipv4_header_checksum(PyObject *self, PyObject *args) {
    PyObject *buf_obj;
    Py_ssize_t off, header_len;
    if (!PyArg_ParseTuple(args, "Onn:ipv4_header_checksum", &buf_obj, &off, &header_len))
        return NULL;
    Py_buffer buf;
    if (bytes_acquire(buf_obj, &buf, 0, "buf") < 0) return NULL;
    /* the words read: [off, off + header_len rounded up to even) */
    Py_ssize_t words = header_len > 0 ? (header_len + 1) / 2 : 0;
    if (off < 0 || off > buf.len || words > (buf.len - off) / 2) {
        PyErr_Format(PyExc_ValueError, "header [%zd, +%zd) is not inside buf (%zd bytes)", off,
                     header_len, buf.len);
        PyBuffer_Release(&buf);
        return NULL;
    }
    const uint8_t *h = (const uint8_t *)buf.buf + off;
    int64_t total = 0;
    for (Py_ssize_t w = 0; w < words; w++)
        if (w != 5) total += load_be16(h + 2 * w); /* word 5 is the checksum field */
    PyBuffer_Release(&buf);
    return PyLong_FromLongLong(~fold16(total) & 0xFFFF);
}

PyMethodDef packet_methods[] = {
    {"decode_rows", packet_decode_rows, METH_VARARGS,
     "decode_rows(buf, linktype, cols): decode every row's frame into the columns."},
    {"mark_rows", py_mark_rows, METH_VARARGS,
     "mark_rows(buf, cols) -> int: write new_ds/new_pcp into the frames; frames changed."},
    {"fold16", py_fold16, METH_VARARGS,
     "fold16(total) -> int: fold the carries of a one's-complement sum into 16 bits."},
    {"incremental_checksum", py_incremental_checksum, METH_VARARGS,
     "incremental_checksum(old_checksum, old_word, new_word) -> int: RFC 1624 eqn. 3."},
    {"ipv4_header_checksum", py_ipv4_header_checksum, METH_VARARGS,
     "ipv4_header_checksum(buf, off, header_len) -> int: full IPv4 header checksum."},
    {NULL, NULL, 0, NULL},
};
