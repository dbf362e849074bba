/* parse_addresses: IP address text (an Arrow string column's buffers) to 128-bit words.
 *
 * The flow store keeps addresses as text, so every read of records for the classifier
 * turns millions of strings back into numbers. Dotted IPv4 is parsed here by hand (the
 * store's own spelling: four decimal octets, no leading zeros), anything with a colon by
 * inet_pton(AF_INET6); IPv4 comes out v4-mapped (::ffff:a.b.c.d), as packets carry it.
 */
#include "kernels.h"

#include <arpa/inet.h>

#define V4_MAPPED 0x0000FFFF00000000ull
#define TEXT_MAX 64 /* longer than any IPv6 text inet_pton accepts */

/* Dotted-quad IPv4, strictly: 1-3 digits per octet, no leading zero, value <= 255. */
static int parse_v4(const uint8_t *s, size_t len, uint32_t *out) {
    uint32_t value = 0;
    size_t i = 0;
    for (int part = 0; part < 4; part++) {
        if (part > 0) {
            if (i >= len || s[i] != '.') return 0;
            i++;
        }
        size_t start = i;
        uint32_t octet = 0;
        while (i < len && s[i] >= '0' && s[i] <= '9' && i - start < 3) octet = octet * 10 + (s[i++] - '0');
        size_t digits = i - start;
        if (digits == 0 || octet > 255 || (digits > 1 && s[start] == '0')) return 0;
        value = (value << 8) | octet;
    }
    if (i != len) return 0;
    *out = value;
    return 1;
}

static int parse_one(const uint8_t *s, size_t len, uint64_t *hi, uint64_t *lo) {
    if (memchr(s, ':', len) == NULL) {
        uint32_t v4;
        if (!parse_v4(s, len, &v4)) return 0;
        *hi = 0;
        *lo = V4_MAPPED | v4;
        return 1;
    }
    if (len >= TEXT_MAX || memchr(s, '\0', len) != NULL) return 0;
    char text[TEXT_MAX];
    memcpy(text, s, len);
    text[len] = '\0';
    unsigned char raw[16];
    if (inet_pton(AF_INET6, text, raw) != 1) return 0;
    *hi = load_be64(raw);
    *lo = load_be64(raw + 8);
    return 1;
}

/* Rows [0, n): the text of row i is data[offsets[i], offsets[i+1]); returns the first
 * row that is not an address, or -1. */
static Py_ssize_t parse_all(const void *offsets, int wide, Py_ssize_t n, const uint8_t *data,
                            Py_ssize_t datalen, uint64_t *hi, uint64_t *lo) {
    for (Py_ssize_t i = 0; i < n; i++) {
        int64_t start = wide ? ((const int64_t *)offsets)[i] : ((const int32_t *)offsets)[i];
        int64_t end = wide ? ((const int64_t *)offsets)[i + 1] : ((const int32_t *)offsets)[i + 1];
        if (start < 0 || end < start || end > datalen) return i;
        if (!parse_one(data + start, (size_t)(end - start), &hi[i], &lo[i])) return i;
    }
    return -1;
}

/* parse_addresses(offsets, data, hi, lo) -> int: offsets int32 or int64 (n + 1 items,
 * an Arrow string or large_string column's, already sliced to its rows), data its bytes;
 * hi and lo uint64 arrays of n items (written). Returns -1, or the first bad row. */
static PyObject *py_parse_addresses(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (check_nargs("parse_addresses", nargs, 4) < 0) return NULL;
    Py_buffer offsets, data, hi, lo;
    if (array_acquire(args[0], &offsets, 4, 1, 0, "offsets") < 0) {
        PyErr_Clear();
        if (array_acquire(args[0], &offsets, 8, 1, 0, "offsets") < 0) return NULL;
    }
    if (bytes_acquire(args[1], &data, 0, "data") < 0) goto fail_offsets;
    if (array_acquire(args[2], &hi, 8, 0, 1, "hi") < 0) goto fail_data;
    if (array_acquire(args[3], &lo, 8, 0, 1, "lo") < 0) goto fail_hi;
    Py_ssize_t n = ITEMS(hi);
    if (ITEMS(lo) != n || ITEMS(offsets) != n + 1) {
        PyErr_SetString(PyExc_ValueError, "offsets must have n + 1 items, hi and lo n");
        goto fail;
    }
    Py_ssize_t bad;
    int wide = offsets.itemsize == 8;
    Py_BEGIN_ALLOW_THREADS
    bad = parse_all(offsets.buf, wide, n, data.buf, data.len, hi.buf, lo.buf);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&lo);
    PyBuffer_Release(&hi);
    PyBuffer_Release(&data);
    PyBuffer_Release(&offsets);
    return PyLong_FromSsize_t(bad);
fail:
    PyBuffer_Release(&lo);
fail_hi:
    PyBuffer_Release(&hi);
fail_data:
    PyBuffer_Release(&data);
fail_offsets:
    PyBuffer_Release(&offsets);
    return NULL;
}

PyMethodDef text_methods[] = {
    {"parse_addresses", FASTCALL(py_parse_addresses),
     "parse_addresses(offsets, data, hi, lo) -> first bad row or -1."},
    {NULL, NULL, 0, NULL},
};
