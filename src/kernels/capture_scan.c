/* The capture walkers: classic pcap records, pcapng blocks and interface descriptions,
 * and the writer's copy that leaves dropped records out.
 *
 * A walker turns the record headers found in a buffer into rows (offsets, lengths, time
 * stamps) and decodes each packet right after its header, while its bytes are in cache,
 * so a chunk of millions of records costs one call. Section headers and interface
 * descriptions are rare and carry the state packet blocks depend on: the pcapng walker
 * stops at each of them for Python (diffserv/capture/pcapng_framing.py) to take in.
 *
 * The statuses and limits the walkers share with the Python framers are defined here
 * and exported as module constants (capture_constants), the one definition both use.
 */
#include "kernels.h"
#include "packet_decode.h"

/* walker statuses (scan_pcap uses the first two) */
#define SCAN_MORE 0      /* rows full, or the next record/block is not complete in buf */
#define SCAN_BAD 1       /* impossible record/block length at the returned position */
#define SCAN_CONTROL 2   /* a section header or interface description is next */
#define SCAN_BAD_IFACE 3 /* a packet block names an interface the section does not have */
#define SCAN_BAD_TIME 4  /* a packet's time stamp is outside int64 nanoseconds */

/* scan_idbs statuses */
#define IDB_DONE 0       /* the next block is not an IDB (or not even its type is in buf) */
#define IDB_INCOMPLETE 1 /* the IDB at the returned position is not complete in buf */
#define IDB_BAD 2        /* impossible block length (or its two length fields differ) */
#define IDB_SHORT 3      /* a block too short for an IDB at the position */
#define IDB_FULL 4       /* `out` has no more rows */
/* scan_idbs output columns */
#define IDB_POS 0
#define IDB_LINKTYPE 1
#define IDB_SNAPLEN 2
#define IDB_NAME_AT 3
#define IDB_NAME_LEN 4
#define IDB_RESOL 5
#define IDB_OFFSET_AT 6
#define IDB_COLUMNS 7

#define BT_SHB 0x0A0D0D0A
#define BT_IDB 0x00000001
#define BT_OPB 0x00000002
#define BT_SPB 0x00000003
#define BT_EPB 0x00000006
#define BYTE_ORDER_MAGIC 0x1A2B3C4D

#define OPT_ENDOFOPT 0
#define OPT_IF_NAME 2
#define OPT_IF_TSRESOL 9
#define OPT_IF_TSOFFSET 14
#define OPT_EPB_FLAGS 2

#define MAX_BLOCK (1 << 28) /* 256 MiB: anything bigger is a corrupt length field */

/* Time stamps are int64 ns since the epoch: a packet whose time (with if_tsoffset) falls
 * outside [-MAX_SECONDS, MAX_SECONDS] s, about 1677-09-22 to 2262-04-11 UTC, cannot be
 * represented and stops the run (SCAN_BAD_TIME) instead of wrapping around. */
#define MAX_SECONDS INT64_C(9223372036)
#define MAX_LAST_NS UINT64_C(854775807) /* ns allowed within second MAX_SECONDS */
/* an if_tsoffset beyond this puts every packet out of range: clamping it keeps the
 * arithmetic inside int64 without changing any result */
#define OFFSET_CLAMP (INT64_C(1) << 40)
#define MAX_DECIMAL_RESOLUTION 19 /* 10^-19 s: the finest decimal unit 64 bits can count */
#define MAX_BINARY_RESOLUTION 63

#define NS_PER_S UINT64_C(1000000000)

static const uint64_t POW10[MAX_DECIMAL_RESOLUTION + 1] = {
    UINT64_C(1),
    UINT64_C(10),
    UINT64_C(100),
    UINT64_C(1000),
    UINT64_C(10000),
    UINT64_C(100000),
    UINT64_C(1000000),
    UINT64_C(10000000),
    UINT64_C(100000000),
    UINT64_C(1000000000),
    UINT64_C(10000000000),
    UINT64_C(100000000000),
    UINT64_C(1000000000000),
    UINT64_C(10000000000000),
    UINT64_C(100000000000000),
    UINT64_C(1000000000000000),
    UINT64_C(10000000000000000),
    UINT64_C(100000000000000000),
    UINT64_C(1000000000000000000),
    UINT64_C(10000000000000000000),
};

/* File-order loads: every field of a capture is in the byte order of its header. */
static inline uint32_t load16(const uint8_t *p, int big) { return big ? load_be16(p) : load_le16(p); }
static inline uint32_t load32(const uint8_t *p, int big) { return big ? load_be32(p) : load_le32(p); }

/* ------------------------------------------------------------------ argument checks */

/* The walk position and end inside buf: pos >= 0 and end <= len(buf). A pos past end is
 * fine (the walk stops at once). */
static int check_span(Py_ssize_t pos, Py_ssize_t end, const Py_buffer *buf) {
    if (pos < 0 || end < 0 || end > buf->len) {
        PyErr_Format(PyExc_ValueError, "positions [%zd, %zd) are not inside buf (%zd bytes)",
                     pos, end, buf->len);
        return -1;
    }
    return 0;
}

/* Rows row..capacity-1 inside the columns. */
static int check_rows(Py_ssize_t row, Py_ssize_t capacity, const columns_t *c) {
    if (row < 0 || capacity > c->n) {
        PyErr_Format(PyExc_ValueError, "rows [%zd, %zd) are not inside the columns (%zd rows)",
                     row, capacity, c->n);
        return -1;
    }
    return 0;
}

/* A one-dimensional numpy bool array. */
static int bools_acquire(PyObject *obj, Py_buffer *view, const char *what) {
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        PyErr_Format(PyExc_TypeError, "%s: expected a contiguous bool array", what);
        return -1;
    }
    if (view->ndim > 1 || view->itemsize != 1 || view->format == NULL ||
        strcmp(view->format, "?") != 0) {
        PyErr_Format(PyExc_TypeError, "%s: expected a bool array", what);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* How far ahead of the walk the capture is fetched into cache. Each record header
 * depends on the one before (its length says where the next one is), so a walk that
 * waits for memory waits once per packet; the records lie one after the other, though,
 * so the bytes a window ahead can be asked for before the walk knows what they are. */
#ifndef STREAM_AHEAD
#define STREAM_AHEAD 4096
#endif

/* Ask for every cache line of buf up to `upto` + STREAM_AHEAD (below end) that was not
 * asked for yet; *pf is the first line not asked for. */
static inline void stream_prefetch(const uint8_t *buf, int64_t *pf, int64_t upto, int64_t end) {
    int64_t stop = upto + STREAM_AHEAD;
    if (stop > end) stop = end;
    for (int64_t at = *pf; at < stop; at += 64) __builtin_prefetch(buf + at);
    if (*pf < stop) *pf = stop;
}

/* ------------------------------------------------------------------ classic pcap */

typedef struct {
    Py_ssize_t pos, end;
    int big;
    int64_t frac_mult; /* 1 for ns time stamps, 1000 for us */
    int64_t max_record;
    int64_t linktype;
} pcap_walk_t;

/* Walk and decode records of buf[pos:end] into rows row..capacity-1; updates *row and
 * w->pos and returns the status. `big` is a constant in each of the two copies
 * pcap_walk makes, so no load asks for the byte order. */
DECODE_INLINE int pcap_walk_order(const uint8_t *buf, pcap_walk_t *w, Py_ssize_t *row_io,
                                  Py_ssize_t capacity, const columns_t *c, const int big) {
    Py_ssize_t row = *row_io;
    int64_t pos = w->pos;
    const int64_t end = w->end;
    int64_t pf = pos;
    int status = SCAN_MORE;
    while (row < capacity) {
        if (pos + 16 > end) break;
        const uint8_t *r = buf + pos;
        int64_t incl = load32(r + 8, big);
        if (incl > w->max_record) {
            status = SCAN_BAD;
            break;
        }
        if (pos + 16 + incl > end) break;
        int64_t next = pos + 16 + incl;
        stream_prefetch(buf, &pf, next, end);
        int64_t sec = load32(r, big);
        int64_t frac = load32(r + 4, big);
        int64_t wire = load32(r + 12, big);
        c->rec_off[row] = pos;
        c->rec_len[row] = 16 + incl;
        c->ts_ns[row] = sec * 1000000000 + frac * w->frac_mult; /* < 2^63: no overflow */
        c->wire_len[row] = (uint32_t)wire;
        c->cap_len[row] = (uint32_t)incl;
        c->pkt_off[row] = pos + 16;
        decode_one(c, buf, row, pos + 16, incl, wire, w->linktype, 0);
        row++;
        pos = next;
    }
    *row_io = row;
    w->pos = pos;
    return status;
}

static int pcap_walk(const uint8_t *buf, pcap_walk_t *w, Py_ssize_t *row_io, Py_ssize_t capacity,
                     const columns_t *c) {
    if (w->big) return pcap_walk_order(buf, w, row_io, capacity, c, 1);
    return pcap_walk_order(buf, w, row_io, capacity, c, 0);
}

/* scan_pcap(buf, pos, end, big, nanosecond, max_record, linktype, row, capacity, cols)
 *   -> (status, rows, pos) */
static PyObject *py_scan_pcap(PyObject *self, PyObject *args) {
    PyObject *buf_obj, *cols_obj;
    pcap_walk_t w;
    int nanosecond;
    long long max_record, linktype;
    Py_ssize_t row, capacity;
    if (!PyArg_ParseTuple(args, "OnnppLLnnO:scan_pcap", &buf_obj, &w.pos, &w.end, &w.big,
                          &nanosecond, &max_record, &linktype, &row, &capacity, &cols_obj))
        return NULL;
    w.frac_mult = nanosecond ? 1 : 1000;
    w.max_record = max_record;
    w.linktype = linktype;
    Py_buffer buf;
    columns_hold_t hold;
    if (bytes_acquire(buf_obj, &buf, 0, "buf") < 0) return NULL;
    if (columns_acquire(cols_obj, &hold) < 0) {
        PyBuffer_Release(&buf);
        return NULL;
    }
    PyObject *result = NULL;
    if (check_span(w.pos, w.end, &buf) == 0 && check_rows(row, capacity, &hold.c) == 0) {
        int status;
        Py_BEGIN_ALLOW_THREADS
        status = pcap_walk(buf.buf, &w, &row, capacity, &hold.c);
        Py_END_ALLOW_THREADS
        result = Py_BuildValue("(inn)", status, row, w.pos);
    }
    columns_release(&hold);
    PyBuffer_Release(&buf);
    return result;
}

/* ------------------------------------------------------------------ pcapng */

/* Interface description blocks that follow each other from pos: one row of `out`
 * (width IDB_COLUMNS) per IDB. Returns the status; *pos_io and *rows_io are updated. */
static int idb_walk(const uint8_t *buf, int64_t *pos_io, int64_t end, int big, int64_t *out,
                    Py_ssize_t out_rows, Py_ssize_t *rows_io) {
    int64_t pos = *pos_io;
    Py_ssize_t rows = 0;
    int status;
    for (;;) {
        if (pos + 4 > end || load32(buf + pos, big) != BT_IDB) {
            status = IDB_DONE;
            break;
        }
        if (rows == out_rows) {
            status = IDB_FULL;
            break;
        }
        if (pos + 8 > end) {
            status = IDB_INCOMPLETE;
            break;
        }
        int64_t blen = load32(buf + pos + 4, big);
        if (blen < 12 || (blen & 3) != 0 || blen > MAX_BLOCK) {
            status = IDB_BAD;
            break;
        }
        if (pos + blen > end) {
            status = IDB_INCOMPLETE;
            break;
        }
        if (load32(buf + pos + blen - 4, big) != blen) {
            status = IDB_BAD;
            break;
        }
        if (blen < 20) {
            status = IDB_SHORT;
            break;
        }
        int64_t name_at = -1, name_len = 0, resol = -1, offset_at = -1;
        int64_t opt = pos + 16;
        const int64_t opt_end = pos + blen - 4;
        while (opt + 4 <= opt_end) {
            int64_t code = load16(buf + opt, big);
            int64_t length = load16(buf + opt + 2, big);
            if (code == OPT_ENDOFOPT || opt + 4 + length > opt_end) break;
            if (code == OPT_IF_NAME) {
                name_at = opt + 4;
                name_len = length;
            } else if (code == OPT_IF_TSRESOL && length >= 1) {
                resol = buf[opt + 4];
            } else if (code == OPT_IF_TSOFFSET && length >= 8) {
                offset_at = opt + 4;
            }
            opt += 4 + ((length + 3) & ~INT64_C(3));
        }
        int64_t *o = out + rows * IDB_COLUMNS;
        o[IDB_POS] = pos;
        o[IDB_LINKTYPE] = load16(buf + pos + 8, big);
        o[IDB_SNAPLEN] = load32(buf + pos + 12, big);
        o[IDB_NAME_AT] = name_at;
        o[IDB_NAME_LEN] = name_len;
        o[IDB_RESOL] = resol;
        o[IDB_OFFSET_AT] = offset_at;
        rows++;
        pos += blen;
    }
    *pos_io = pos;
    *rows_io = rows;
    return status;
}

/* scan_idbs(buf, pos, end, big, out) -> (status, rows, pos) */
static PyObject *py_scan_idbs(PyObject *self, PyObject *args) {
    PyObject *buf_obj, *out_obj;
    Py_ssize_t pos, end;
    int big;
    if (!PyArg_ParseTuple(args, "OnnpO:scan_idbs", &buf_obj, &pos, &end, &big, &out_obj))
        return NULL;
    Py_buffer buf, out;
    if (bytes_acquire(buf_obj, &buf, 0, "buf") < 0) return NULL;
    if (matrix_acquire(out_obj, &out, IDB_COLUMNS, 1, 1, "out") < 0) {
        PyBuffer_Release(&buf);
        return NULL;
    }
    PyObject *result = NULL;
    if (check_span(pos, end, &buf) == 0) {
        int64_t walk_pos = pos;
        Py_ssize_t rows;
        int status;
        Py_BEGIN_ALLOW_THREADS
        status = idb_walk(buf.buf, &walk_pos, end, big, out.buf, out.shape[0], &rows);
        Py_END_ALLOW_THREADS
        result = Py_BuildValue("(inL)", status, rows, (long long)walk_pos);
    }
    PyBuffer_Release(&out);
    PyBuffer_Release(&buf);
    return result;
}

/* The time stamp of one interface: if_ts row (binary resolution 0/1, exponent,
 * if_tsoffset seconds), checked at the boundary so the arithmetic below is defined. */
typedef struct {
    int binary;
    int exponent;
    int64_t offset_s;
} tsres_t;

/* ns since the epoch of a raw 64-bit time stamp; 0 when outside int64 ns (MAX_SECONDS).
 * Unsigned 64-bit arithmetic throughout: nothing wraps. */
static inline int timestamp_ns(uint64_t raw, const tsres_t *t, int64_t *ns) {
    uint64_t whole, frac_ns;
    if (t->binary) {
        unsigned shift = (unsigned)t->exponent;
        whole = raw >> shift;
        uint64_t frac = raw & ((UINT64_C(1) << shift) - 1);
        if (shift <= 34) /* frac < 2^34: frac * 10^9 < 2^64 */
            frac_ns = (frac * NS_PER_S) >> shift;
        else
            frac_ns = ((frac >> (shift - 34)) * NS_PER_S) >> 34;
    } else {
        int e = t->exponent;
        uint64_t unit = POW10[e];
        whole = raw / unit;
        uint64_t frac = raw % unit;
        frac_ns = e <= 9 ? frac * POW10[9 - e] : frac / POW10[e - 9];
    }
    if (whole > (uint64_t)OFFSET_CLAMP) return 0;
    int64_t seconds = (int64_t)whole + t->offset_s; /* |offset_s| <= 2^40: no overflow */
    if (seconds > MAX_SECONDS || seconds < -MAX_SECONDS) return 0;
    if (seconds == MAX_SECONDS && frac_ns > MAX_LAST_NS) return 0;
    *ns = seconds * 1000000000 + (int64_t)frac_ns;
    return 1;
}

/* Direction from the epb_flags/pack_flags option among the options in buf[pos:end]. */
static inline int flags_direction(const uint8_t *buf, int64_t pos, int64_t end, int big) {
    while (pos + 4 <= end) {
        uint32_t code = load16(buf + pos, big);
        int64_t length = load16(buf + pos + 2, big);
        if (code == 0) return 0;
        if (code == OPT_EPB_FLAGS && length >= 4 && pos + 8 <= end) {
            uint32_t inout = load32(buf + pos + 4, big) & 0x3;
            if (inout == 1) return DIR_LOCAL_IN;
            if (inout == 2) return DIR_LOCAL_OUT;
            return 0;
        }
        pos += 4 + ((length + 3) & ~INT64_C(3));
    }
    return 0;
}

/* The current section's interfaces, as the walker reads them. */
typedef struct {
    Py_ssize_t n;
    const int32_t *linktype;
    const int64_t *snaplen;
    const int32_t *ifindex;
    const int64_t *ts; /* (n, 3) */
} ifaces_t;

typedef struct {
    int64_t pos, end;
    int big;
    int64_t last_ts;
} pcapng_walk_t;

/* Walk blocks of buf[pos:end], decoding packets into rows row..capacity-1 (one copy for
 * each byte order, as for pcap). */
DECODE_INLINE int pcapng_walk_order(const uint8_t *buf, pcapng_walk_t *w, const ifaces_t *ifs,
                                    Py_ssize_t *row_io, Py_ssize_t capacity, const columns_t *c,
                                    const int big) {
    Py_ssize_t row = *row_io;
    int64_t pos = w->pos;
    const int64_t end = w->end;
    int64_t last_ts = w->last_ts;
    int64_t pf = pos;
    int status = SCAN_MORE;
    while (row < capacity) {
        if (pos + 12 > end) break;
        const uint8_t *b = buf + pos;
        uint32_t btype = load32(b, big);
        if (btype == BT_SHB || btype == BT_IDB) {
            status = SCAN_CONTROL;
            break;
        }
        int64_t blen = load32(b + 4, big);
        if (blen < 12 || (blen & 3) != 0 || blen > MAX_BLOCK) {
            status = SCAN_BAD;
            break;
        }
        if (pos + blen > end) break;
        stream_prefetch(buf, &pf, pos + blen, end);
        if (load32(b + blen - 4, big) != blen) {
            status = SCAN_BAD;
            break;
        }
        if (btype == BT_EPB || btype == BT_OPB) {
            if (blen < 32) {
                status = SCAN_BAD;
                break;
            }
            int64_t iface = btype == BT_EPB ? load32(b + 8, big) : load16(b + 8, big);
            if (iface >= ifs->n) {
                status = SCAN_BAD_IFACE;
                break;
            }
            int64_t incl = load32(b + 20, big);
            if (28 + incl + 4 > blen) {
                status = SCAN_BAD;
                break;
            }
            const int64_t *ts_row = ifs->ts + 3 * iface;
            tsres_t res = {(int)ts_row[0], (int)ts_row[1], ts_row[2]};
            uint64_t raw = ((uint64_t)load32(b + 12, big) << 32) | load32(b + 16, big);
            int64_t ts;
            if (!timestamp_ns(raw, &res, &ts)) {
                status = SCAN_BAD_TIME;
                break;
            }
            int64_t wire = load32(b + 24, big);
            c->rec_off[row] = pos;
            c->rec_len[row] = blen;
            c->ts_ns[row] = ts;
            c->wire_len[row] = (uint32_t)wire;
            c->cap_len[row] = (uint32_t)incl;
            c->pkt_off[row] = pos + 28;
            c->ifindex[row] = ifs->ifindex[iface];
            int dir = flags_direction(buf, pos + 28 + ((incl + 3) & ~INT64_C(3)), pos + blen - 4,
                                      big);
            decode_one(c, buf, row, pos + 28, incl, wire, ifs->linktype[iface], dir);
            last_ts = ts;
            row++;
        } else if (btype == BT_SPB) {
            if (ifs->n == 0) {
                status = SCAN_BAD_IFACE;
                break;
            }
            if (blen < 16) {
                status = SCAN_BAD;
                break;
            }
            int64_t orig = load32(b + 8, big);
            int64_t incl = orig < blen - 16 ? orig : blen - 16;
            int64_t snap = ifs->snaplen[0];
            if (snap > 0 && snap < incl) incl = snap;
            c->rec_off[row] = pos;
            c->rec_len[row] = blen;
            c->ts_ns[row] = last_ts;
            c->wire_len[row] = (uint32_t)orig;
            c->cap_len[row] = (uint32_t)incl;
            c->pkt_off[row] = pos + 12;
            c->ifindex[row] = ifs->ifindex[0];
            decode_one(c, buf, row, pos + 12, incl, orig, ifs->linktype[0], 0);
            row++;
        }
        pos += blen;
    }
    *row_io = row;
    w->pos = pos;
    w->last_ts = last_ts;
    return status;
}

static int pcapng_walk(const uint8_t *buf, pcapng_walk_t *w, const ifaces_t *ifs,
                       Py_ssize_t *row_io, Py_ssize_t capacity, const columns_t *c) {
    if (w->big) return pcapng_walk_order(buf, w, ifs, row_io, capacity, c, 1);
    return pcapng_walk_order(buf, w, ifs, row_io, capacity, c, 0);
}

/* Check each interface's time stamp resolution (what resolution() in pcapng.py lets
 * through) and offset (clamp_offset), so timestamp_ns never shifts or indexes out of
 * range. */
static int check_ifaces(const ifaces_t *ifs) {
    for (Py_ssize_t i = 0; i < ifs->n; i++) {
        const int64_t *t = ifs->ts + 3 * i;
        int64_t limit = t[0] ? MAX_BINARY_RESOLUTION : MAX_DECIMAL_RESOLUTION;
        if (t[0] < 0 || t[0] > 1 || t[1] < 0 || t[1] > limit || t[2] < -OFFSET_CLAMP ||
            t[2] > OFFSET_CLAMP) {
            PyErr_Format(PyExc_ValueError,
                         "interface %zd: time stamp resolution (%lld, %lld) or offset %lld "
                         "out of range",
                         i, (long long)t[0], (long long)t[1], (long long)t[2]);
            return -1;
        }
    }
    return 0;
}

/* scan_pcapng(buf, pos, end, big, if_linktype, if_snaplen, if_ifindex, if_ts, last_ts,
 *             row, capacity, cols) -> (status, rows, pos, last_ts) */
static PyObject *py_scan_pcapng(PyObject *self, PyObject *args) {
    PyObject *buf_obj, *lt_obj, *snap_obj, *idx_obj, *ts_obj, *cols_obj;
    Py_ssize_t pos, end, row, capacity;
    int big;
    long long last_ts;
    if (!PyArg_ParseTuple(args, "OnnpOOOOLnnO:scan_pcapng", &buf_obj, &pos, &end, &big,
                          &lt_obj, &snap_obj, &idx_obj, &ts_obj, &last_ts, &row, &capacity,
                          &cols_obj))
        return NULL;
    Py_buffer buf, lt, snap, idx, ts;
    columns_hold_t hold;
    PyObject *result = NULL;
    if (bytes_acquire(buf_obj, &buf, 0, "buf") < 0) return NULL;
    if (array_acquire(lt_obj, &lt, 4, 1, 0, "if_linktype") < 0) goto done_buf;
    if (array_acquire(snap_obj, &snap, 8, 1, 0, "if_snaplen") < 0) goto done_lt;
    if (array_acquire(idx_obj, &idx, 4, 1, 0, "if_ifindex") < 0) goto done_snap;
    if (matrix_acquire(ts_obj, &ts, 3, 1, 0, "if_ts") < 0) goto done_idx;
    if (columns_acquire(cols_obj, &hold) < 0) goto done_ts;
    ifaces_t ifs = {ITEMS(lt), lt.buf, snap.buf, idx.buf, ts.buf};
    if (ITEMS(snap) != ifs.n || ITEMS(idx) != ifs.n || ts.shape[0] != ifs.n) {
        PyErr_SetString(PyExc_ValueError, "the interface tables differ in length");
        goto done_cols;
    }
    if (check_span(pos, end, &buf) < 0 || check_rows(row, capacity, &hold.c) < 0 ||
        check_ifaces(&ifs) < 0)
        goto done_cols;
    pcapng_walk_t w = {pos, end, big, last_ts};
    int status;
    Py_BEGIN_ALLOW_THREADS
    status = pcapng_walk(buf.buf, &w, &ifs, &row, capacity, &hold.c);
    Py_END_ALLOW_THREADS
    result = Py_BuildValue("(inLL)", status, row, (long long)w.pos, (long long)w.last_ts);
done_cols:
    columns_release(&hold);
done_ts:
    PyBuffer_Release(&ts);
done_idx:
    PyBuffer_Release(&idx);
done_snap:
    PyBuffer_Release(&snap);
done_lt:
    PyBuffer_Release(&lt);
done_buf:
    PyBuffer_Release(&buf);
    return result;
}

/* ------------------------------------------------------------------ writer */

/* Copy buf[span_start:span_end] to out without the records drop marks; returns the bytes
 * written, or -1 - i when dropped record i is out of order or outside the span. */
static int64_t compact_walk(const uint8_t *buf, int64_t span_start, int64_t span_end,
                            const int64_t *rec_off, const int64_t *rec_len, const uint8_t *drop,
                            Py_ssize_t n, uint8_t *out) {
    int64_t cursor = span_start;
    int64_t written = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!drop[i]) continue;
        int64_t start = rec_off[i];
        if (start < cursor || rec_len[i] < 0 || rec_len[i] > span_end - start) return -1 - i;
        memcpy(out + written, buf + cursor, (size_t)(start - cursor));
        written += start - cursor;
        cursor = start + rec_len[i];
    }
    memcpy(out + written, buf + cursor, (size_t)(span_end - cursor));
    return written + (span_end - cursor);
}

/* compact_records(buf, span_start, span_end, rec_off, rec_len, drop, out) -> int */
static PyObject *py_compact_records(PyObject *self, PyObject *args) {
    PyObject *buf_obj, *off_obj, *len_obj, *drop_obj, *out_obj;
    Py_ssize_t span_start, span_end;
    if (!PyArg_ParseTuple(args, "OnnOOOO:compact_records", &buf_obj, &span_start, &span_end,
                          &off_obj, &len_obj, &drop_obj, &out_obj))
        return NULL;
    Py_buffer buf, off, len, drop, out;
    PyObject *result = NULL;
    if (bytes_acquire(buf_obj, &buf, 0, "buf") < 0) return NULL;
    if (array_acquire(off_obj, &off, 8, 1, 0, "rec_off") < 0) goto done_buf;
    if (array_acquire(len_obj, &len, 8, 1, 0, "rec_len") < 0) goto done_off;
    if (bools_acquire(drop_obj, &drop, "drop") < 0) goto done_len;
    if (bytes_acquire(out_obj, &out, 1, "out") < 0) goto done_drop;
    Py_ssize_t n = ITEMS(off);
    if (ITEMS(len) != n || ITEMS(drop) != n) {
        PyErr_SetString(PyExc_ValueError, "rec_off, rec_len and drop differ in length");
        goto done_out;
    }
    if (span_start < 0 || span_start > span_end || span_end > buf.len ||
        span_end - span_start > out.len) {
        PyErr_Format(PyExc_ValueError,
                     "span [%zd, %zd) is not inside buf (%zd bytes) or larger than out (%zd)",
                     span_start, span_end, buf.len, out.len);
        goto done_out;
    }
    int64_t used;
    Py_BEGIN_ALLOW_THREADS
    used = compact_walk(buf.buf, span_start, span_end, off.buf, len.buf, drop.buf, n, out.buf);
    Py_END_ALLOW_THREADS
    if (used < 0)
        PyErr_Format(PyExc_ValueError, "dropped record %lld is out of order or outside the span",
                     (long long)(-1 - used));
    else
        result = PyLong_FromLongLong(used);
done_out:
    PyBuffer_Release(&out);
done_drop:
    PyBuffer_Release(&drop);
done_len:
    PyBuffer_Release(&len);
done_off:
    PyBuffer_Release(&off);
done_buf:
    PyBuffer_Release(&buf);
    return result;
}

PyMethodDef capture_methods[] = {
    {"scan_pcap", py_scan_pcap, METH_VARARGS,
     "scan_pcap(buf, pos, end, big, nanosecond, max_record, linktype, row, capacity, cols)"
     " -> (status, rows, pos): walk and decode classic pcap records."},
    {"scan_idbs", py_scan_idbs, METH_VARARGS,
     "scan_idbs(buf, pos, end, big, out) -> (status, rows, pos): walk pcapng interface "
     "description blocks."},
    {"scan_pcapng", py_scan_pcapng, METH_VARARGS,
     "scan_pcapng(buf, pos, end, big, if_linktype, if_snaplen, if_ifindex, if_ts, last_ts, "
     "row, capacity, cols) -> (status, rows, pos, last_ts): walk and decode pcapng blocks."},
    {"compact_records", py_compact_records, METH_VARARGS,
     "compact_records(buf, span_start, span_end, rec_off, rec_len, drop, out) -> int: copy "
     "the span without the dropped records."},
    {NULL, NULL, 0, NULL},
};

int capture_constants(PyObject *m) {
#define ADD(name) \
    if (PyModule_AddIntConstant(m, #name, name) < 0) return -1;
    ADD(SCAN_MORE) ADD(SCAN_BAD) ADD(SCAN_CONTROL) ADD(SCAN_BAD_IFACE) ADD(SCAN_BAD_TIME)
    ADD(IDB_DONE) ADD(IDB_INCOMPLETE) ADD(IDB_BAD) ADD(IDB_SHORT) ADD(IDB_FULL)
    ADD(IDB_POS) ADD(IDB_LINKTYPE) ADD(IDB_SNAPLEN) ADD(IDB_NAME_AT) ADD(IDB_NAME_LEN)
    ADD(IDB_RESOL) ADD(IDB_OFFSET_AT) ADD(IDB_COLUMNS)
    ADD(BT_SHB) ADD(BT_IDB) ADD(BT_OPB) ADD(BT_SPB) ADD(BT_EPB) ADD(BYTE_ORDER_MAGIC)
    ADD(OPT_ENDOFOPT) ADD(OPT_IF_NAME) ADD(OPT_IF_TSRESOL) ADD(OPT_IF_TSOFFSET) ADD(OPT_EPB_FLAGS)
    ADD(MAX_BLOCK) ADD(MAX_SECONDS) ADD(OFFSET_CLAMP)
    ADD(MAX_DECIMAL_RESOLUTION) ADD(MAX_BINARY_RESOLUTION)
#undef ADD
    return 0;
}
