/* The NFQUEUE data plane's hot path: receive many queued packets per system call, parse
 * their netlink messages straight into a batch's columns, and send the verdicts of a
 * whole batch in a few system calls (diffserv/live/, docs/live.md).
 *
 * Receiving: recvmmsg fills up to one datagram per slot of `buf` (the kernel sends one
 * packet per datagram, but a datagram holding several messages is walked too). Each
 * NFQNL_MSG_PACKET becomes a row whose frame is its NFQA_PAYLOAD attribute, left where it
 * landed in `buf`: the decoder reads it there and the markers rewrite it there, so the
 * bytes a payload verdict sends back are never copied in user space. Anything malformed
 * (bad lengths, TLVs past the end, unknown message types) is counted and skipped; a
 * packet message whose header is readable always gets a row, an empty frame if its
 * payload is missing, so its id still gets a verdict.
 *
 * Verdicts: one NFQNL_MSG_VERDICT per packet that needs one of its own (a drop, a
 * rewritten DS byte, an skb priority for dlcosmk), then one NFQNL_MSG_VERDICT_BATCH
 * accepting every id up to the highest seen, all packed into a few datagrams (the
 * kernel's netlink receive walks every message of a datagram in order). Packet ids are
 * given out in queue order under the queue's lock, so every id up to the highest one
 * received has been delivered to this socket: the batch verdict never accepts a packet
 * this program has not seen.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>

#include "kernels.h"
#include "packet_decode.h"

/* netlink and nfnetlink_queue wire constants (linux/netlink.h, nfnetlink_queue.h) */
#define NLMSG_HDR 16
#define NFGEN_HDR 4
#define NLMSG_NOOP_T 1
#define NLMSG_ERROR_T 2
#define NLMSG_DONE_T 3
#define NFNL_SUBSYS_QUEUE 3
#define NFQNL_MSG_PACKET ((NFNL_SUBSYS_QUEUE << 8) | 0)
#define NFQNL_MSG_VERDICT ((NFNL_SUBSYS_QUEUE << 8) | 1)
#define NFQNL_MSG_VERDICT_BATCH ((NFNL_SUBSYS_QUEUE << 8) | 3)
#define NLM_F_REQUEST 1
#define NFQA_PACKET_HDR 1
#define NFQA_VERDICT_HDR 2
#define NFQA_MARK 3
#define NFQA_TIMESTAMP 4
#define NFQA_IFINDEX_INDEV 5
#define NFQA_IFINDEX_OUTDEV 6
#define NFQA_PAYLOAD 10
#define NFQA_CAP_LEN 13
#define NFQA_UID 16
#define NFQA_GID 17
#define NFQA_PRIORITY 21
#define NF_DROP 0
#define NF_ACCEPT 1
/* netfilter hooks (NF_INET_*) */
#define HOOK_PRE_ROUTING 0
#define HOOK_LOCAL_IN 1
#define HOOK_FORWARD 2
#define HOOK_LOCAL_OUT 3
#define HOOK_POST_ROUTING 4

#define ALIGN4(x) (((x) + 3) & ~(int64_t)3)

/* Slots of the per-packet metadata matrix (int64, META_WIDTH columns). */
enum { META_ID, META_HOOK, META_INDEV, META_OUTDEV, META_GID, META_MARK, META_WIDTH };

/* Slots of the counters array (int64, NFQ_COUNTERS), accumulated across calls. */
enum {
    NFQ_BAD,         /* messages skipped as malformed (lengths, TLVs, header missing) */
    NFQ_ERRORS,      /* NLMSG_ERROR messages with an error code (a verdict the kernel refused) */
    NFQ_LAST_ERROR,  /* the last such error code (positive errno) */
    NFQ_OVERFLOW,    /* packet messages beyond the batch's rows (accepted by the batch verdict) */
    NFQ_OTHER,       /* well-formed messages of other types (ack, noop, done) */
    NFQ_DROPPED,     /* drop verdicts sent */
    NFQ_REWRITTEN,   /* accept verdicts carrying a rewritten payload */
    NFQ_PRIORITY,    /* verdicts carrying an skb priority */
    NFQ_UNWRITABLE,  /* marked packets accepted unchanged: truncated copy or malformed */
    NFQ_BATCHES,     /* batch verdicts sent */
    NFQ_COUNTERS
};

/* hook -> callout position: INPUT is LOCAL_IN, OUTPUT is LOCAL_OUT, FORWARD is FWD_OUT
 * (the position where IPQoS marks forwarded traffic; docs/live.md). */
static int hook_direction(int hook) {
    switch (hook) {
    case HOOK_LOCAL_IN: return DIR_LOCAL_IN;
    case HOOK_LOCAL_OUT: return DIR_LOCAL_OUT;
    case HOOK_FORWARD: return DIR_FWD_OUT;
    case HOOK_POST_ROUTING: return DIR_FWD_OUT;
    case HOOK_PRE_ROUTING: return DIR_FWD_IN;
    default: return DIR_UNKNOWN;
    }
}

static int64_t realtime_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* What one parse pass needs and leaves. */
typedef struct {
    const columns_t *c;
    int64_t *meta;
    int64_t *counters;
    Py_ssize_t rows;     /* rows filled so far */
    int64_t number;      /* packet number of the next row */
    int64_t now_ns;      /* receive time: a packet's time when the kernel gives none usable */
    int64_t floor_ns;    /* times never go back (meters and flowacct want order) */
    int64_t max_id;      /* highest packet id seen, rows or not */
} parse_t;

/* A kernel time stamp is used only when it is plausibly CLOCK_REALTIME: TCP's own
 * departure times (CLOCK_MONOTONIC) ride in the same skb field on output. */
#define TS_SLACK_NS INT64_C(2000000000)

/* One NFQNL_MSG_PACKET message m[0, len) at offset `at` of buf. */
static void parse_packet(parse_t *p, const uint8_t *buf, int64_t at, int64_t len) {
    const uint8_t *m = buf + at;
    int64_t pos = NLMSG_HDR + NFGEN_HDR;
    int have_hdr = 0, bad = 0;
    uint32_t id = 0, indev = 0, outdev = 0, mark = 0, caplen_attr = 0;
    int hook = -1;
    int64_t uid = UNKNOWN_ID, gid = UNKNOWN_ID, ts = -1;
    int64_t payload_off = 0, payload_len = 0;
    int have_caplen = 0;
    if (len < pos) bad = 1;
    while (!bad && pos + 4 <= len) {
        uint32_t alen = load_le16(m + pos);
        uint32_t type = load_le16(m + pos + 2) & 0x3fff; /* strip NESTED/BYTEORDER bits */
        if (alen < 4 || pos + alen > len) {
            bad = 1;
            break;
        }
        const uint8_t *v = m + pos + 4;
        uint32_t vlen = alen - 4;
        switch (type) {
        case NFQA_PACKET_HDR:
            if (vlen >= 7) {
                id = load_be32(v);
                hook = v[6];
                have_hdr = 1;
            }
            break;
        case NFQA_MARK:
            if (vlen >= 4) mark = load_be32(v);
            break;
        case NFQA_TIMESTAMP:
            if (vlen >= 16) {
                uint64_t sec = load_be64(v), usec = load_be64(v + 8);
                if (sec < UINT64_C(9000000000) && usec < 1000000)
                    ts = (int64_t)sec * 1000000000 + (int64_t)usec * 1000;
            }
            break;
        case NFQA_IFINDEX_INDEV:
            if (vlen >= 4) indev = load_be32(v);
            break;
        case NFQA_IFINDEX_OUTDEV:
            if (vlen >= 4) outdev = load_be32(v);
            break;
        case NFQA_PAYLOAD:
            payload_off = at + pos + 4;
            payload_len = vlen;
            break;
        case NFQA_CAP_LEN:
            if (vlen >= 4) {
                caplen_attr = load_be32(v);
                have_caplen = 1;
            }
            break;
        case NFQA_UID:
            if (vlen >= 4) uid = (int64_t)load_be32(v);
            break;
        case NFQA_GID:
            if (vlen >= 4) gid = (int64_t)load_be32(v);
            break;
        default:
            break;
        }
        pos += ALIGN4(alen);
    }
    if (!have_hdr) {
        p->counters[NFQ_BAD]++;
        return;
    }
    if (bad) p->counters[NFQ_BAD]++; /* the row stays: its id still needs a verdict */
    if ((int64_t)id > p->max_id) p->max_id = id;
    if (p->rows >= p->c->n) {
        p->counters[NFQ_OVERFLOW]++;
        return;
    }
    Py_ssize_t i = p->rows++;
    const columns_t *c = p->c;
    int64_t wire = payload_len;
    if (have_caplen && (int64_t)caplen_attr > payload_len) wire = caplen_attr;
    if (ts < 0 || ts > p->now_ns + TS_SLACK_NS || ts < p->now_ns - TS_SLACK_NS) ts = p->now_ns;
    if (ts < p->floor_ns) ts = p->floor_ns;
    p->floor_ns = ts;
    int direction = hook_direction(hook);
    c->number[i] = p->number++;
    c->rec_off[i] = at;
    c->rec_len[i] = len;
    c->ts_ns[i] = ts;
    c->wire_len[i] = (uint32_t)wire;
    c->cap_len[i] = (uint32_t)payload_len;
    c->pkt_off[i] = payload_off;
    /* the kernel's ifindex of the interface the position is about; Python maps it to the
     * batch's interface table */
    c->ifindex[i] = (int32_t)(direction == DIR_LOCAL_IN || direction == DIR_FWD_IN ? indev : outdev);
    c->uid[i] = (int32_t)uid;
    c->projid[i] = UNKNOWN_ID;
    /* the engine's columns start neutral for every row */
    c->class_id[i] = NO_CLASS;
    c->action[i] = 0;
    c->new_ds[i] = UNCHANGED;
    c->new_pcp[i] = UNCHANGED;
    c->colour[i] = 0;
    int64_t *meta = p->meta + i * META_WIDTH;
    meta[META_ID] = id;
    meta[META_HOOK] = hook;
    meta[META_INDEV] = indev;
    meta[META_OUTDEV] = outdev;
    meta[META_GID] = gid;
    meta[META_MARK] = mark;
    decode_one(c, buf, i, payload_off, payload_len, wire, LINKTYPE_RAW, direction);
}

/* Every message of the datagram buf[at, at + len). */
static void parse_datagram(parse_t *p, const uint8_t *buf, int64_t at, int64_t len) {
    int64_t pos = 0;
    while (pos + NLMSG_HDR <= len) {
        const uint8_t *h = buf + at + pos;
        int64_t mlen = load_le32(h);
        uint32_t type = load_le16(h + 4);
        if (mlen < NLMSG_HDR || mlen > len - pos) {
            p->counters[NFQ_BAD]++;
            return; /* the rest of the datagram cannot be framed */
        }
        if (type == NFQNL_MSG_PACKET) {
            parse_packet(p, buf, at + pos, mlen);
        } else if (type == NLMSG_ERROR_T) {
            if (mlen >= NLMSG_HDR + 4) {
                int32_t code = (int32_t)load_le32(h + NLMSG_HDR);
                if (code != 0) {
                    p->counters[NFQ_ERRORS]++;
                    p->counters[NFQ_LAST_ERROR] = code < 0 ? -(int64_t)code : code;
                } else {
                    p->counters[NFQ_OTHER]++;
                }
            } else {
                p->counters[NFQ_BAD]++;
            }
        } else if (type == NLMSG_NOOP_T || type == NLMSG_DONE_T) {
            p->counters[NFQ_OTHER]++;
        } else {
            p->counters[NFQ_BAD]++;
        }
        pos += ALIGN4(mlen);
    }
    if (pos < len && len - pos >= 4) p->counters[NFQ_BAD]++; /* trailing bytes */
}

/* The arrays both entry points borrow. */
typedef struct {
    Py_buffer buf, meta, counters;
    columns_hold_t cols;
    int held;
} nfq_hold_t;

static void nfq_release(nfq_hold_t *h) {
    if (h->held >= 4) columns_release(&h->cols);
    if (h->held >= 3) PyBuffer_Release(&h->counters);
    if (h->held >= 2) PyBuffer_Release(&h->meta);
    if (h->held >= 1) PyBuffer_Release(&h->buf);
    h->held = 0;
}

static int nfq_acquire(nfq_hold_t *h, PyObject *buf, PyObject *cols, PyObject *meta,
                       PyObject *counters) {
    h->held = 0;
    if (bytes_acquire(buf, &h->buf, 1, "buf") < 0) return -1;
    h->held = 1;
    if (matrix_acquire(meta, &h->meta, META_WIDTH, 1, 1, "meta") < 0) goto fail;
    h->held = 2;
    if (array_acquire(counters, &h->counters, 8, 1, 1, "counters") < 0) goto fail;
    h->held = 3;
    if (ITEMS(h->counters) < NFQ_COUNTERS) {
        PyErr_Format(PyExc_ValueError, "counters: need %d slots", NFQ_COUNTERS);
        goto fail;
    }
    if (columns_acquire(cols, &h->cols) < 0) goto fail;
    h->held = 4;
    if (h->meta.shape[0] < h->cols.c.n) {
        PyErr_Format(PyExc_ValueError, "meta has %zd rows, the columns %zd", h->meta.shape[0],
                     h->cols.c.n);
        goto fail;
    }
    return 0;
fail:
    nfq_release(h);
    return -1;
}

static void parse_init(parse_t *p, nfq_hold_t *h, int64_t number, int64_t now_ns,
                       int64_t floor_ns) {
    p->c = &h->cols.c;
    p->meta = h->meta.buf;
    p->counters = h->counters.buf;
    p->rows = 0;
    p->number = number;
    p->now_ns = now_ns;
    p->floor_ns = floor_ns;
    p->max_id = 0;
}

/* nfq_parse(buf, lengths, slot, cols, meta, counters, number, now_ns, floor_ns)
 *   -> (rows, max_id, last_ts): parse datagram k at buf[k * slot, + lengths[k]). */
static PyObject *py_nfq_parse(PyObject *self, PyObject *args) {
    PyObject *buf_o, *lengths_o, *cols_o, *meta_o, *counters_o;
    Py_ssize_t slot;
    long long number, now_ns, floor_ns;
    if (!PyArg_ParseTuple(args, "OOnOOOLLL:nfq_parse", &buf_o, &lengths_o, &slot, &cols_o,
                          &meta_o, &counters_o, &number, &now_ns, &floor_ns))
        return NULL;
    Py_buffer lengths;
    if (array_acquire(lengths_o, &lengths, 8, 1, 0, "lengths") < 0) return NULL;
    nfq_hold_t h;
    if (nfq_acquire(&h, buf_o, cols_o, meta_o, counters_o) < 0) {
        PyBuffer_Release(&lengths);
        return NULL;
    }
    const int64_t *len = lengths.buf;
    Py_ssize_t k, nd = ITEMS(lengths);
    if (slot <= 0 || nd > h.buf.len / slot) {
        PyErr_Format(PyExc_ValueError, "%zd datagrams of %zd bytes do not fit buf", nd, slot);
        goto fail;
    }
    for (k = 0; k < nd; k++)
        if (len[k] < 0 || len[k] > slot) {
            PyErr_Format(PyExc_ValueError, "datagram %zd: length %lld outside [0, %zd]", k,
                         (long long)len[k], slot);
            goto fail;
        }
    parse_t p;
    parse_init(&p, &h, number, now_ns, floor_ns);
    Py_BEGIN_ALLOW_THREADS
    for (k = 0; k < nd; k++) parse_datagram(&p, h.buf.buf, (int64_t)k * slot, len[k]);
    Py_END_ALLOW_THREADS
    nfq_release(&h);
    PyBuffer_Release(&lengths);
    return Py_BuildValue("nLL", p.rows, (long long)p.max_id, (long long)p.floor_ns);
fail:
    nfq_release(&h);
    PyBuffer_Release(&lengths);
    return NULL;
}

#define MAX_SLOTS 1024
/* Slots made ready for the first recvmmsg: setting up all 1024 message headers cost a
 * packet at a quiet queue more than receiving it; a busy queue fills the first chunk and
 * gets the rest in larger ones. */
#define RECV_CHUNK 32

/* Message headers [from, to) point at their slots of buf; returns `to`. */
static Py_ssize_t setup_slots(struct mmsghdr *msgs, struct iovec *iov, uint8_t *base,
                              Py_ssize_t slot, Py_ssize_t from, Py_ssize_t to) {
    for (Py_ssize_t k = from; k < to; k++) {
        iov[k].iov_base = base + k * slot;
        iov[k].iov_len = (size_t)slot;
        memset(&msgs[k].msg_hdr, 0, sizeof msgs[k].msg_hdr);
        msgs[k].msg_hdr.msg_iov = &iov[k];
        msgs[k].msg_hdr.msg_iovlen = 1;
    }
    return to;
}

/* Kernel interface indexes -> the batch's interface table through `lut` (lut[k] < 0:
 * not known yet), for every row or none: returns 0 when a row's index is not in the
 * table, and then leaves every row as the kernel gave it (the caller extends the table
 * and maps them). */
static int map_interfaces(int32_t *ifindex, Py_ssize_t rows, const int32_t *lut,
                          Py_ssize_t nlut) {
    for (Py_ssize_t i = 0; i < rows; i++) {
        int32_t k = ifindex[i];
        if (k < 0 || k >= nlut || lut[k] < 0) return 0;
    }
    for (Py_ssize_t i = 0; i < rows; i++) ifindex[i] = lut[ifindex[i]];
    return 1;
}

/* nfq_receive(fd, buf, slot, cols, meta, counters, number, floor_ns, timeout_ms, lut)
 *   -> (rows, datagrams, max_id, last_ts, errno, mapped): receive what is queued
 *   (waiting up to timeout_ms for the first datagram when nothing is), at most one
 *   datagram per slot and per row, and parse it. errno is 0, or the error of the receive
 *   (ENOBUFS: the socket overflowed and the kernel failed open). mapped is 1 when every
 *   row's ifindex was found in `lut` (int32, kernel index -> interface table, -1 not
 *   known) and replaced by its entry, 0 when the rows keep the kernel's indexes. */
static PyObject *py_nfq_receive(PyObject *self, PyObject *args) {
    int fd, timeout_ms;
    PyObject *buf_o, *cols_o, *meta_o, *counters_o, *lut_o;
    Py_ssize_t slot;
    long long number, floor_ns;
    if (!PyArg_ParseTuple(args, "iOnOOOLLiO:nfq_receive", &fd, &buf_o, &slot, &cols_o, &meta_o,
                          &counters_o, &number, &floor_ns, &timeout_ms, &lut_o))
        return NULL;
    Py_buffer lut;
    if (array_acquire(lut_o, &lut, 4, 1, 0, "lut") < 0) return NULL;
    nfq_hold_t h;
    if (nfq_acquire(&h, buf_o, cols_o, meta_o, counters_o) < 0) {
        PyBuffer_Release(&lut);
        return NULL;
    }
    if (slot < 256) {
        PyErr_SetString(PyExc_ValueError, "slot: at least 256 bytes");
        nfq_release(&h);
        PyBuffer_Release(&lut);
        return NULL;
    }
    Py_ssize_t nslots = h.buf.len / slot;
    if (nslots > h.cols.c.n) nslots = h.cols.c.n;
    if (nslots > MAX_SLOTS) nslots = MAX_SLOTS;
    parse_t p;
    int got = 0, err = 0, mapped = 0;
    Py_BEGIN_ALLOW_THREADS
    struct mmsghdr msgs[MAX_SLOTS];
    struct iovec iov[MAX_SLOTS];
    uint8_t *base = h.buf.buf;
    Py_ssize_t ready_slots = 0; /* message headers set up so far: a chunk at a time */
    if (nslots > 0) {
        Py_ssize_t chunk = nslots < RECV_CHUNK ? nslots : RECV_CHUNK;
        ready_slots = setup_slots(msgs, iov, base, slot, 0, chunk);
        got = recvmmsg(fd, msgs, (unsigned)chunk, MSG_DONTWAIT, NULL);
        if (got < 0 && errno == EAGAIN && timeout_ms != 0) {
            struct pollfd pfd = {.fd = fd, .events = POLLIN};
            int ready = poll(&pfd, 1, timeout_ms);
            if (ready > 0)
                got = recvmmsg(fd, msgs, (unsigned)chunk, MSG_DONTWAIT, NULL);
            else if (ready == 0)
                errno = EAGAIN;
        }
        if (got < 0) {
            err = errno == EAGAIN || errno == EWOULDBLOCK ? 0 : errno;
            got = 0;
        }
        /* a full chunk: the queue is busy, take what else is waiting (up to nslots) */
        while (got == ready_slots && got < nslots) {
            Py_ssize_t more = nslots - got < RECV_CHUNK * 4 ? nslots - got : RECV_CHUNK * 4;
            ready_slots = setup_slots(msgs, iov, base, slot, got, got + more);
            int extra = recvmmsg(fd, msgs + got, (unsigned)more, MSG_DONTWAIT, NULL);
            if (extra <= 0) break; /* an error waits for the next call, as recvmmsg's own */
            got += extra;
        }
    }
    parse_init(&p, &h, number, realtime_ns(), floor_ns);
    for (int k = 0; k < got; k++) {
        int64_t len = msgs[k].msg_len;
        if (msgs[k].msg_hdr.msg_flags & MSG_TRUNC) {
            p.counters[NFQ_BAD]++; /* larger than a slot: the packet is lost to us */
            continue;
        }
        parse_datagram(&p, base, (int64_t)k * slot, len);
    }
    mapped = map_interfaces(p.c->ifindex, p.rows, lut.buf, ITEMS(lut));
    Py_END_ALLOW_THREADS
    nfq_release(&h);
    PyBuffer_Release(&lut);
    return Py_BuildValue("niLLii", p.rows, got, (long long)p.max_id, (long long)p.floor_ns, err,
                         mapped);
}

/* ---- verdicts ------------------------------------------------------------------- */

typedef struct {
    int fd;
    uint8_t *out;
    int64_t cap, used, flush_at;
    int64_t messages, bytes;
    uint32_t seq;
    int err;
} verdict_out_t;

static int flush_out(verdict_out_t *o) {
    if (o->used == 0) return 0;
    if (o->fd >= 0) {
        ssize_t sent;
        do
            sent = send(o->fd, o->out, (size_t)o->used, 0);
        while (sent < 0 && errno == EINTR);
        if (sent < 0) {
            o->err = errno;
            o->used = 0;
            return -1;
        }
        o->bytes += o->used;
        o->used = 0;
    }
    return 0;
}

static void put_attr(uint8_t *at, uint16_t type, const void *value, uint32_t vlen) {
    uint16_t alen = (uint16_t)(4 + vlen);
    memcpy(at, &alen, 2);
    memcpy(at + 2, &type, 2);
    if (vlen) memcpy(at + 4, value, vlen);
    uint32_t pad = (uint32_t)(ALIGN4(4 + vlen) - (4 + vlen));
    if (pad) memset(at + 4 + vlen, 0, pad);
}

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Append one verdict message; -1 if it does not fit the output (a build without fd). */
static int put_verdict(verdict_out_t *o, int batch, uint16_t queue, uint32_t verdict,
                       uint32_t id, int64_t priority, const uint8_t *payload,
                       int64_t payload_len) {
    int64_t len = NLMSG_HDR + NFGEN_HDR + 12;
    if (priority >= 0) len += 8;
    if (payload != NULL) len += ALIGN4(4 + payload_len);
    if (o->used + len > o->flush_at && flush_out(o) < 0) return -1;
    if (o->used + len > o->cap) {
        o->err = ENOBUFS;
        return -1;
    }
    uint8_t *m = o->out + o->used;
    uint32_t mlen = (uint32_t)len;
    uint16_t type = batch ? NFQNL_MSG_VERDICT_BATCH : NFQNL_MSG_VERDICT;
    uint16_t flags = NLM_F_REQUEST;
    uint32_t seq = ++o->seq, pid = 0;
    memcpy(m, &mlen, 4);
    memcpy(m + 4, &type, 2);
    memcpy(m + 6, &flags, 2);
    memcpy(m + 8, &seq, 4);
    memcpy(m + 12, &pid, 4);
    m[16] = 0; /* AF_UNSPEC */
    m[17] = 0; /* NFNETLINK_V0 */
    m[18] = (uint8_t)(queue >> 8);
    m[19] = (uint8_t)queue;
    uint8_t hdr[8];
    put_be32(hdr, verdict);
    put_be32(hdr + 4, id);
    int64_t pos = NLMSG_HDR + NFGEN_HDR;
    put_attr(m + pos, NFQA_VERDICT_HDR, hdr, 8);
    pos += 12;
    if (priority >= 0) {
        uint8_t pr[4];
        put_be32(pr, (uint32_t)priority);
        put_attr(m + pos, NFQA_PRIORITY, pr, 4);
        pos += 8;
    }
    if (payload != NULL) put_attr(m + pos, NFQA_PAYLOAD, payload, (uint32_t)payload_len);
    o->used += len;
    o->messages++;
    return 0;
}

/* nfq_verdicts(fd, queue, buf, cols, meta, out, counters, rows, max_id)
 *   -> (messages, bytes, errno): the verdicts of rows [0, rows) (see the top of the
 *   file), written to `out` and sent from it whenever it fills (fd >= 0), or only
 *   written when fd < 0 (then `out` must hold them all; bytes is what it holds). */
static PyObject *py_nfq_verdicts(PyObject *self, PyObject *args) {
    int fd, queue;
    PyObject *buf_o, *cols_o, *meta_o, *out_o, *counters_o;
    Py_ssize_t rows;
    long long max_id;
    if (!PyArg_ParseTuple(args, "iiOOOOOnL:nfq_verdicts", &fd, &queue, &buf_o, &cols_o,
                          &meta_o, &out_o, &counters_o, &rows, &max_id))
        return NULL;
    if (queue < 0 || queue > 65535) {
        PyErr_SetString(PyExc_ValueError, "queue: outside [0, 65535]");
        return NULL;
    }
    nfq_hold_t h;
    if (nfq_acquire(&h, buf_o, cols_o, meta_o, counters_o) < 0) return NULL;
    Py_buffer out;
    if (bytes_acquire(out_o, &out, 1, "out") < 0) {
        nfq_release(&h);
        return NULL;
    }
    const columns_t *c = &h.cols.c;
    if (rows < 0 || rows > c->n) {
        PyErr_Format(PyExc_ValueError, "rows: %zd outside [0, %zd]", rows, c->n);
        goto fail;
    }
    for (Py_ssize_t i = 0; i < rows; i++) {
        int64_t off = c->pkt_off[i], len = c->cap_len[i];
        if (off < 0 || off > h.buf.len - len) {
            PyErr_Format(PyExc_ValueError, "row %zd: payload outside buf", i);
            goto fail;
        }
    }
    if (out.len < 4096) {
        PyErr_SetString(PyExc_ValueError, "out: at least 4096 bytes");
        goto fail;
    }
    verdict_out_t o = {.fd = fd, .out = out.buf, .cap = out.len,
                       .flush_at = fd >= 0 ? out.len : INT64_MAX};
    int64_t *counters = h.counters.buf;
    const int64_t *meta = h.meta.buf;
    const uint8_t *buf = h.buf.buf;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < rows && o.err == 0; i++) {
        uint32_t id = (uint32_t)meta[i * META_WIDTH + META_ID];
        if (c->action[i] == ACTION_DROP) {
            if (put_verdict(&o, 0, (uint16_t)queue, NF_DROP, id, -1, NULL, 0) == 0)
                counters[NFQ_DROPPED]++;
            continue;
        }
        int marked = c->new_ds[i] >= 0 && c->new_ds[i] != c->ds_byte[i];
        int writable = !(c->flags[i] & (FLAG_MALFORMED | FLAG_TRUNCATED | FLAG_HEADER_CUT)) &&
                       c->cap_len[i] > 0 && c->cap_len[i] >= c->wire_len[i];
        if (marked && !writable) {
            counters[NFQ_UNWRITABLE]++;
            marked = 0;
        }
        int64_t priority = c->new_pcp[i] >= 0 ? c->new_pcp[i] : -1;
        if (!marked && priority < 0) continue; /* the batch verdict accepts it */
        if (put_verdict(&o, 0, (uint16_t)queue, NF_ACCEPT, id, priority,
                        marked ? buf + c->pkt_off[i] : NULL, c->cap_len[i]) == 0) {
            if (marked) counters[NFQ_REWRITTEN]++;
            if (priority >= 0) counters[NFQ_PRIORITY]++;
        }
    }
    if (o.err == 0 && max_id > 0 &&
        put_verdict(&o, 1, (uint16_t)queue, NF_ACCEPT, (uint32_t)max_id, -1, NULL, 0) == 0)
        counters[NFQ_BATCHES]++;
    if (o.err == 0 && fd >= 0) flush_out(&o);
    Py_END_ALLOW_THREADS
    int64_t bytes = fd >= 0 ? o.bytes : o.used;
    PyBuffer_Release(&out);
    nfq_release(&h);
    return Py_BuildValue("LLi", (long long)o.messages, (long long)bytes, o.err);
fail:
    PyBuffer_Release(&out);
    nfq_release(&h);
    return NULL;
}

PyMethodDef nfqueue_methods[] = {
    {"nfq_parse", py_nfq_parse, METH_VARARGS,
     "nfq_parse(buf, lengths, slot, cols, meta, counters, number, now_ns, floor_ns) -> "
     "(rows, max_id, last_ts): parse NFQUEUE datagrams into rows and decode them."},
    {"nfq_receive", py_nfq_receive, METH_VARARGS,
     "nfq_receive(fd, buf, slot, cols, meta, counters, number, floor_ns, timeout_ms, lut) -> "
     "(rows, datagrams, max_id, last_ts, errno, mapped): recvmmsg what is queued, parse it "
     "and map its interface indexes through lut when it knows them all."},
    {"nfq_verdicts", py_nfq_verdicts, METH_VARARGS,
     "nfq_verdicts(fd, queue, buf, cols, meta, out, counters, rows, max_id) -> "
     "(messages, bytes, errno): build and send the verdicts of a batch."},
    {NULL, NULL, 0, NULL},
};

int nfqueue_constants(PyObject *module) {
    static const int_constant_t constants[] = {
        {"NFQ_META_WIDTH", META_WIDTH}, {"NFQ_META_ID", META_ID},
        {"NFQ_META_HOOK", META_HOOK},   {"NFQ_META_INDEV", META_INDEV},
        {"NFQ_META_OUTDEV", META_OUTDEV}, {"NFQ_META_GID", META_GID},
        {"NFQ_META_MARK", META_MARK},   {"NFQ_COUNTERS", NFQ_COUNTERS},
        {"NFQ_BAD", NFQ_BAD},           {"NFQ_ERRORS", NFQ_ERRORS},
        {"NFQ_LAST_ERROR", NFQ_LAST_ERROR}, {"NFQ_OVERFLOW", NFQ_OVERFLOW},
        {"NFQ_OTHER", NFQ_OTHER},       {"NFQ_DROPPED", NFQ_DROPPED},
        {"NFQ_REWRITTEN", NFQ_REWRITTEN}, {"NFQ_PRIORITY", NFQ_PRIORITY},
        {"NFQ_UNWRITABLE", NFQ_UNWRITABLE}, {"NFQ_BATCHES", NFQ_BATCHES},
        {"NFQ_MAX_SLOTS", MAX_SLOTS},
    };
    return add_int_constants(module, constants, sizeof constants / sizeof constants[0]);
}
