/* flowacct's flow table: open addressing over a pool of flow rows, intrusive timeout list.
 *
 * The table's state lives in numpy arrays Python owns (see
 * diffserv/engine/modules/_flow_table.py for the column layout): a flow pool (int64,
 * F_NCOLS columns), an item pool (int64, I_NCOLS columns), a power-of-two hash index of
 * flow rows (linear probing, backward-shift deletion, so rows never move and the
 * timeout list stays valid), a vector of scalars and a record buffer. The kernels never
 * allocate: they stop and tell Python to grow a pool or drain the records.
 *
 * Every link read from the arrays is checked against the pool it points into, and every
 * walk is bounded, so a damaged table raises RuntimeError instead of reading astray.
 * Arithmetic on times and counters wraps as numba's int64 did (through uint64: signed
 * overflow is undefined in C).
 */
#include "kernels.h"

#include <stdio.h>

/* Flow pool columns. */
enum { F_SHI, F_SLO, F_DHI, F_DLO, F_PORTS, F_LAST, F_PREV, F_NEXT, F_IHEAD, F_ITAIL, F_HASH,
       F_NCOLS };
/* Item pool columns. */
enum { I_DS, I_PROJ, I_UID, I_NPK, I_NBY, I_FIRST, I_LAST, I_NEXT, I_NCOLS };
/* Scalars. */
enum { S_NITEMS, S_NFLOWS, S_FFREE, S_IFREE, S_HEAD, S_TAIL, S_STARTED, S_DEADLINE, S_CLOCK,
       S_NPACKETS, S_NBYTES, S_TBYTES, S_EPACKETS, S_NOUT, S_PENDING, S_SWEEP_AT,
       S_NSCALARS };
/* Output record columns (diffserv.records.RECORD_COLUMNS). */
enum { OUT_NCOLS = 14 };
/* Status of account(); CORRUPT never reaches Python as a status (it raises). */
enum { DONE = 0, NEED_GROW = 1, NEED_DRAIN = 2, CORRUPT = -1 };
enum { V_PASS = 0, V_FAIL = 1 };
#define EMPTY ((int64_t)-1)

static inline int64_t wadd(int64_t a, int64_t b) { return (int64_t)((uint64_t)a + (uint64_t)b); }
static inline int64_t wsub(int64_t a, int64_t b) { return (int64_t)((uint64_t)a - (uint64_t)b); }
static inline int64_t wmul(int64_t a, int64_t b) { return (int64_t)((uint64_t)a * (uint64_t)b); }

/* Python's (and numba's) floor division; b != 0. INT64_MIN // -1 wraps as numba's did. */
static int64_t floor_div(int64_t a, int64_t b) {
    if (b == -1) return wsub(0, a);
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) q--;
    return q;
}

/* The borrowed table: pools, index, scalars and the record buffer of one call. */
typedef struct {
    int64_t *flows;
    int64_t nflows; /* rows of the flow pool */
    int64_t *items;
    int64_t nitems;
    int64_t *index;
    int64_t mask; /* index length - 1 (a power of two minus one) */
    int64_t *s;
    int64_t *out;
    int64_t out_cap;
} table_t;

#define FL(t, f, col) ((t)->flows[(f) * F_NCOLS + (col)])
#define IT(t, i, col) ((t)->items[(i) * I_NCOLS + (col)])

static inline int flow_ok(const table_t *t, int64_t f) { return (uint64_t)f < (uint64_t)t->nflows; }
static inline int item_ok(const table_t *t, int64_t i) { return (uint64_t)i < (uint64_t)t->nitems; }
/* A link is a row of its pool or EMPTY. */
static inline int flow_link_ok(const table_t *t, int64_t f) { return f == EMPTY || flow_ok(t, f); }
static inline int item_link_ok(const table_t *t, int64_t i) { return i == EMPTY || item_ok(t, i); }

/* -- borrowing ------------------------------------------------------------------------ */

/* A writable int64 table of `ncols` columns (matrix_acquire); its rows go to *rows. */
static int table_part_acquire(PyObject *obj, Py_buffer *view, int ncols, int64_t *rows,
                              const char *what) {
    if (matrix_acquire(obj, view, ncols, 1, 1, what) < 0) return -1;
    *rows = view->shape[0];
    return 0;
}

typedef struct {
    Py_buffer views[5];
    int held;
} table_hold_t;

static void table_release(table_hold_t *hold) {
    for (int i = 0; i < hold->held; i++) PyBuffer_Release(&hold->views[i]);
    hold->held = 0;
}

/* Borrow flows, items, index, scalars and out, and check what every kernel relies on:
 * shapes, a power-of-two index, list heads and the record count inside their bounds. */
static int table_acquire(PyObject *flows, PyObject *items, PyObject *index, PyObject *scalars,
                         PyObject *out, table_t *t, table_hold_t *hold) {
    hold->held = 0;
    Py_buffer *v = hold->views;
    if (table_part_acquire(flows, &v[0], F_NCOLS, &t->nflows, "flows") < 0) return -1;
    hold->held = 1;
    if (table_part_acquire(items, &v[1], I_NCOLS, &t->nitems, "items") < 0) goto fail;
    hold->held = 2;
    if (array_acquire(index, &v[2], 8, 1, 1, "index") < 0) goto fail;
    hold->held = 3;
    if (array_acquire(scalars, &v[3], 8, 1, 1, "scalars") < 0) goto fail;
    hold->held = 4;
    if (out == NULL) {
        t->out = NULL;
        t->out_cap = 0;
    } else {
        if (table_part_acquire(out, &v[4], OUT_NCOLS, &t->out_cap, "out") < 0) goto fail;
        hold->held = 5;
        t->out = v[4].buf;
    }
    t->flows = v[0].buf;
    t->items = v[1].buf;
    t->index = v[2].buf;
    t->s = v[3].buf;
    int64_t nindex = ITEMS(v[2]);
    if (nindex < 1 || (nindex & (nindex - 1)) != 0) {
        PyErr_SetString(PyExc_ValueError, "index: length must be a power of two");
        goto fail;
    }
    t->mask = nindex - 1;
    if (ITEMS(v[3]) < S_NSCALARS) {
        PyErr_Format(PyExc_ValueError, "scalars: expected %d items", S_NSCALARS);
        goto fail;
    }
    const int64_t *s = t->s;
    if (!flow_link_ok(t, s[S_HEAD]) || !flow_link_ok(t, s[S_TAIL]) ||
        !flow_link_ok(t, s[S_FFREE]) || !item_link_ok(t, s[S_IFREE])) {
        PyErr_SetString(PyExc_ValueError, "scalars: a list head lies outside its pool");
        goto fail;
    }
    if (out != NULL && (s[S_NOUT] < 0 || s[S_NOUT] > t->out_cap)) {
        PyErr_SetString(PyExc_ValueError, "scalars: record count outside the record buffer");
        goto fail;
    }
    return 0;
fail:
    table_release(hold);
    return -1;
}

static PyObject *corrupt_error(void) {
    PyErr_SetString(PyExc_RuntimeError, "flow table damaged: a link leaves its pool or loops");
    return NULL;
}

/* -- hashing -------------------------------------------------------------------------- */

static inline uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xFF51AFD7ED558CCDull;
    x ^= x >> 33;
    x *= 0xC4CEB9FE1A85EC53ull;
    x ^= x >> 33;
    return x;
}

/* A 63-bit hash of the 5-tuple: odd-constant multiplies folded, then one finaliser. */
static inline int64_t hash5(uint64_t shi, uint64_t slo, uint64_t dhi, uint64_t dlo,
                            uint64_t ports) {
    uint64_t h = shi * 0x9E3779B97F4A7C15ull;
    h ^= slo * 0xC2B2AE3D27D4EB4Full;
    h ^= dhi * 0x165667B19E3779F9ull;
    h ^= dlo * 0x27D4EB2F165667C5ull;
    h ^= ports * 0x85EBCA77C2B2AE63ull;
    return (int64_t)(mix64(h) & 0x7FFFFFFFFFFFFFFFull);
}

/* -- the index ------------------------------------------------------------------------ */

/* Put flow f into the first free slot of its probe chain; 0, or -1 if the index is full. */
static int index_insert(table_t *t, int64_t f, int64_t h) {
    int64_t mask = t->mask;
    int64_t pos = h & mask;
    for (int64_t steps = 0; t->index[pos] != EMPTY; steps++) {
        if (steps > mask) return -1;
        pos = (pos + 1) & mask;
    }
    t->index[pos] = f;
    return 0;
}

/* Take flow f out of the index; backward-shift deletion keeps every probe chain
 * unbroken without tombstones. */
static int index_remove(table_t *t, int64_t f) {
    int64_t mask = t->mask;
    int64_t *index = t->index;
    int64_t pos = FL(t, f, F_HASH) & mask;
    for (int64_t steps = 0; index[pos] != f; steps++) {
        if (steps > mask) return -1;
        pos = (pos + 1) & mask;
    }
    int64_t hole = pos;
    int64_t nxt = (hole + 1) & mask;
    for (int64_t steps = 0; index[nxt] != EMPTY; steps++) {
        int64_t g = index[nxt];
        if (steps > mask || !flow_ok(t, g)) return -1;
        int64_t home = FL(t, g, F_HASH) & mask;
        /* move the entry into the hole unless its home lies cyclically in (hole, nxt] */
        if (((nxt - home) & mask) >= ((nxt - hole) & mask)) {
            index[hole] = g;
            hole = nxt;
        }
        nxt = (nxt + 1) & mask;
    }
    index[hole] = EMPTY;
    return 0;
}

/* -- the timeout list ----------------------------------------------------------------- */

static int unlink_flow(table_t *t, int64_t f) {
    int64_t prev = FL(t, f, F_PREV);
    int64_t nxt = FL(t, f, F_NEXT);
    if (!flow_link_ok(t, prev) || !flow_link_ok(t, nxt)) return -1;
    if (prev == EMPTY)
        t->s[S_HEAD] = nxt;
    else
        FL(t, prev, F_NEXT) = nxt;
    if (nxt == EMPTY)
        t->s[S_TAIL] = prev;
    else
        FL(t, nxt, F_PREV) = prev;
    return 0;
}

static inline void append_flow(table_t *t, int64_t f) {
    int64_t tail = t->s[S_TAIL]; /* checked at the boundary, and only ever set to a row */
    FL(t, f, F_PREV) = tail;
    FL(t, f, F_NEXT) = EMPTY;
    if (tail == EMPTY)
        t->s[S_HEAD] = f;
    else
        FL(t, tail, F_NEXT) = f;
    t->s[S_TAIL] = f;
}

/* -- expiry --------------------------------------------------------------------------- */

/* Whether the record buffer can take every item of flow f: 1 yes, 0 no, -1 damaged. */
static int room_for(const table_t *t, int64_t f) {
    int64_t free_rows = t->out_cap - t->s[S_NOUT];
    int64_t it = FL(t, f, F_IHEAD);
    for (int64_t steps = 0; it != EMPTY; steps++) {
        if (!item_ok(t, it) || steps >= t->nitems) return -1;
        if (--free_rows < 0) return 0;
        it = IT(t, it, I_NEXT);
    }
    return 1;
}

/* Write every item of flow f to the record buffer (room_for said there is room) and free
 * the flow and its items. */
static int expire_flow(table_t *t, int64_t f) {
    int64_t *s = t->s;
    const int64_t *fl = &FL(t, f, 0);
    int64_t ports = fl[F_PORTS];
    int64_t it = fl[F_IHEAD];
    while (it != EMPTY) {
        if (!item_ok(t, it) || s[S_NOUT] >= t->out_cap) return -1;
        int64_t *o = &t->out[s[S_NOUT] * OUT_NCOLS];
        int64_t *im = &IT(t, it, 0);
        o[0] = fl[F_SHI];
        o[1] = fl[F_SLO];
        o[2] = fl[F_DHI];
        o[3] = fl[F_DLO];
        o[4] = (ports >> 24) & 0xFFFF;
        o[5] = (ports >> 8) & 0xFFFF;
        o[6] = ports & 0xFF;
        o[7] = im[I_DS];
        o[8] = im[I_PROJ];
        o[9] = im[I_UID];
        o[10] = im[I_NPK];
        o[11] = im[I_NBY];
        o[12] = im[I_FIRST];
        o[13] = im[I_LAST];
        s[S_NOUT] += 1;
        s[S_TBYTES] = wsub(s[S_TBYTES], im[I_NBY]);
        s[S_NITEMS] -= 1;
        int64_t nxt = im[I_NEXT];
        im[I_NEXT] = s[S_IFREE];
        s[S_IFREE] = it;
        it = nxt;
    }
    if (unlink_flow(t, f) < 0 || index_remove(t, f) < 0) return -1;
    FL(t, f, F_NEXT) = s[S_FFREE];
    s[S_FFREE] = f;
    s[S_NFLOWS] -= 1;
    return 0;
}

/* Room for flow f's records, then its expiry: 1 done, 0 no room, -1 damaged. */
static int expire_if_room(table_t *t, int64_t f) {
    int room = room_for(t, f);
    if (room <= 0) return room;
    return expire_flow(t, f) < 0 ? -1 : 1;
}

/* Expire, oldest first, every flow idle for at least timeout_ns at time `when`:
 * 1 done, 0 stopped by a full record buffer (calling again resumes), -1 damaged. */
static int sweep_table(table_t *t, int64_t when, int64_t timeout_ns) {
    int64_t f = t->s[S_HEAD];
    /* each step frees a flow, so a sound list ends within nflows steps */
    for (int64_t steps = 0; f != EMPTY && wsub(when, FL(t, f, F_LAST)) >= timeout_ns; steps++) {
        if (steps >= t->nflows) return -1;
        int64_t nxt = FL(t, f, F_NEXT);
        int done = expire_if_room(t, f);
        if (done <= 0) return done;
        f = nxt; /* expire_flow checked it while unlinking */
    }
    return 1;
}

static int flush_table(table_t *t) {
    for (int64_t steps = 0; t->s[S_HEAD] != EMPTY; steps++) {
        if (steps >= t->nflows) return -1;
        int done = expire_if_room(t, t->s[S_HEAD]);
        if (done <= 0) return done;
    }
    return 1;
}

/* -- accounting ----------------------------------------------------------------------- */

typedef struct {
    int64_t timer_ns, timeout_ns, max_limit;
    const int64_t *rows;
    int64_t nrows;
    uint8_t *verdict;
    const columns_t *c;
} account_args_t;

/* The flow of this 5-tuple, or EMPTY; -2 if the index is damaged. */
static inline int64_t find_flow(const table_t *t, int64_t h, int64_t shi, int64_t slo,
                                int64_t dhi, int64_t dlo, int64_t ports) {
    int64_t mask = t->mask;
    int64_t pos = h & mask;
    for (int64_t steps = 0;; steps++) {
        int64_t g = t->index[pos];
        if (g == EMPTY) return EMPTY;
        if (!flow_ok(t, g) || steps > mask) return -2;
        const int64_t *fl = &FL(t, g, 0);
        if (fl[F_HASH] == h && fl[F_PORTS] == ports && fl[F_SLO] == slo && fl[F_DLO] == dlo &&
            fl[F_SHI] == shi && fl[F_DHI] == dhi)
            return g;
        pos = (pos + 1) & mask;
    }
}

/* The item of flow f with this (ds, projid, uid), or EMPTY; -2 if the chain is damaged. */
static inline int64_t find_item(const table_t *t, int64_t f, int64_t ds, int64_t pj, int64_t us) {
    int64_t j = FL(t, f, F_IHEAD);
    for (int64_t steps = 0; j != EMPTY; steps++) {
        if (!item_ok(t, j) || steps >= t->nitems) return -2;
        const int64_t *im = &IT(t, j, 0);
        if (im[I_DS] == ds && im[I_PROJ] == pj && im[I_UID] == us) return j;
        j = im[I_NEXT];
    }
    return EMPTY;
}

static inline int64_t row_ports(const columns_t *c, int64_t r) {
    return ((int64_t)c->sport[r] << 24) | ((int64_t)c->dport[r] << 8) | (int64_t)c->protocol[r];
}

static inline int64_t row_hash(const columns_t *c, int64_t r) {
    return hash5(c->saddr_hi[r], c->saddr_lo[r], c->daddr_hi[r], c->daddr_lo[r],
                 (uint64_t)row_ports(c, r));
}

/* A packet costs three dependent cache misses (its index slot, the flow that slot names,
 * the flow's item) plus its list neighbours; one after another they were most of the
 * time. So a packet's hash is taken AHEAD_INDEX packets early and its slot prefetched,
 * the flow in that slot is prefetched AHEAD_FLOW packets early and the flow's first item
 * and neighbours AHEAD_ITEM early: the misses of several packets overlap. A prefetch
 * changes nothing, so a guess made stale by the packets between is only a wasted load.
 * Read prefetches: without -mprfchw gcc drops a write prefetch altogether. The helpers
 * are always_inline because gcc judges a call that only prefetches pure, and deletes it. */
enum { AHEAD_INDEX = 16, AHEAD_FLOW = 8, AHEAD_ITEM = 4, RING = 32 };

static inline __attribute__((always_inline)) void prefetch_flow(const table_t *t, int64_t h) {
    int64_t g = t->index[h & t->mask];
    if (!flow_ok(t, g)) return;
    __builtin_prefetch(&FL(t, g, 0), 0);
    __builtin_prefetch(&FL(t, g, F_NCOLS - 1), 0); /* a row spans two lines */
}

static inline __attribute__((always_inline)) void prefetch_item(const table_t *t, int64_t h) {
    int64_t g = t->index[h & t->mask];
    if (!flow_ok(t, g)) return;
    const int64_t *fl = &FL(t, g, 0);
    int64_t it = fl[F_IHEAD], prev = fl[F_PREV], nxt = fl[F_NEXT];
    if (item_ok(t, it)) {
        __builtin_prefetch(&IT(t, it, 0), 0);
        __builtin_prefetch(&IT(t, it, I_NCOLS - 1), 0);
    }
    if (flow_ok(t, prev)) __builtin_prefetch(&FL(t, prev, F_NEXT), 0);
    if (flow_ok(t, nxt)) __builtin_prefetch(&FL(t, nxt, F_PREV), 0);
}

/* Account packets rows[start:]; the status, with the position reached in *pos. */
static int account_rows(table_t *t, const account_args_t *a, int64_t start, int64_t *pos_out) {
    const columns_t *c = a->c;
    int64_t *s = t->s;
    const int64_t timer_ns = a->timer_ns, timeout_ns = a->timeout_ns;
    const int64_t *rows = a->rows, nrows = a->nrows;
    int64_t ring[RING]; /* hashes of packets k .. k + AHEAD_INDEX */
    for (int64_t j = start; j < start + AHEAD_INDEX && j < nrows; j++)
        ring[j % RING] = row_hash(c, rows[j]);
    int64_t k;
    for (k = start; k < nrows; k++) {
        if (k + AHEAD_INDEX < nrows) {
            int64_t hj = row_hash(c, rows[k + AHEAD_INDEX]);
            ring[(k + AHEAD_INDEX) % RING] = hj;
            __builtin_prefetch(&t->index[hj & t->mask], 0);
        }
        if (k + AHEAD_FLOW < nrows) prefetch_flow(t, ring[(k + AHEAD_FLOW) % RING]);
        if (k + AHEAD_ITEM < nrows) prefetch_item(t, ring[(k + AHEAD_ITEM) % RING]);
        if (s[S_FFREE] == EMPTY || s[S_IFREE] == EMPTY) {
            *pos_out = k;
            return NEED_GROW;
        }
        if (s[S_PENDING] != 0) {
            int done = sweep_table(t, s[S_SWEEP_AT], timeout_ns);
            if (done < 0) return CORRUPT;
            if (done == 0) {
                *pos_out = k;
                return NEED_DRAIN;
            }
            s[S_PENDING] = 0;
        }
        int64_t r = rows[k];
        if ((uint64_t)r >= (uint64_t)c->n) return CORRUPT; /* checked before the loop */
        if (c->ip_version[r] == 0 || (c->flags[r] & FLAG_HEADER_CUT) != 0) {
            a->verdict[k] = V_PASS;
            continue;
        }
        int64_t now = c->ts_ns[r];
        if (s[S_STARTED] == 0) {
            s[S_STARTED] = 1;
            s[S_CLOCK] = now;
            s[S_DEADLINE] = wadd(now, timer_ns);
        } else if (now < s[S_CLOCK]) {
            now = s[S_CLOCK]; /* packet time never runs backwards for the table */
        } else {
            s[S_CLOCK] = now;
        }
        /* timer: one sweep at the latest deadline <= now (missed deadlines would find
         * nothing more, since no packet arrived between them) */
        int due = 0;
        int64_t when = now;
        if (timer_ns == 0) {
            due = 1;
        } else if (now >= s[S_DEADLINE]) {
            due = 1;
            int64_t late = wsub(now, s[S_DEADLINE]);
            when = wadd(s[S_DEADLINE], wmul(floor_div(late, timer_ns), timer_ns));
            s[S_DEADLINE] = wadd(when, timer_ns);
        }
        if (due && s[S_HEAD] != EMPTY) {
            int done = sweep_table(t, when, timeout_ns);
            if (done < 0) return CORRUPT;
            if (done == 0) {
                s[S_PENDING] = 1;
                s[S_SWEEP_AT] = when;
                *pos_out = k;
                return NEED_DRAIN;
            }
        }

        int64_t shi = (int64_t)c->saddr_hi[r], slo = (int64_t)c->saddr_lo[r];
        int64_t dhi = (int64_t)c->daddr_hi[r], dlo = (int64_t)c->daddr_lo[r];
        int64_t ports = row_ports(c, r);
        int64_t h = ring[k % RING];
        int64_t f = find_flow(t, h, shi, slo, dhi, dlo, ports);
        if (f == -2) return CORRUPT;
        int64_t dsv = c->new_ds[r] >= 0 ? (int64_t)c->new_ds[r] : (int64_t)c->ds_byte[r];
        int64_t pj = c->projid[r];
        int64_t us = c->uid[r];
        int64_t it = EMPTY;
        if (f != EMPTY) {
            it = find_item(t, f, dsv, pj, us);
            if (it == -2) return CORRUPT;
        }
        int64_t length = c->ip_len[r];
        if (it == EMPTY) {
            if (s[S_NITEMS] + 1 > a->max_limit) {
                /* one try: the oldest flow other than this packet's own, if it timed out */
                int64_t victim = s[S_HEAD];
                if (victim != EMPTY && victim == f) victim = FL(t, victim, F_NEXT);
                if (!flow_link_ok(t, victim)) return CORRUPT;
                if (victim != EMPTY && wsub(now, FL(t, victim, F_LAST)) >= timeout_ns) {
                    int done = expire_if_room(t, victim);
                    if (done < 0) return CORRUPT;
                    if (done == 0) {
                        *pos_out = k; /* nothing changed yet: the packet is redone */
                        return NEED_DRAIN;
                    }
                }
            }
            if (s[S_NITEMS] + 1 > a->max_limit) {
                s[S_EPACKETS] += 1;
                a->verdict[k] = V_FAIL;
                continue;
            }
            if (f == EMPTY) {
                f = s[S_FFREE];
                int64_t *fl = &FL(t, f, 0);
                if (!flow_link_ok(t, fl[F_NEXT])) return CORRUPT;
                s[S_FFREE] = fl[F_NEXT];
                fl[F_SHI] = shi;
                fl[F_SLO] = slo;
                fl[F_DHI] = dhi;
                fl[F_DLO] = dlo;
                fl[F_PORTS] = ports;
                fl[F_HASH] = h;
                fl[F_IHEAD] = EMPTY;
                fl[F_ITAIL] = EMPTY;
                if (index_insert(t, f, h) < 0) return CORRUPT;
                s[S_NFLOWS] += 1;
            } else if (unlink_flow(t, f) < 0) {
                return CORRUPT;
            }
            it = s[S_IFREE];
            int64_t *im = &IT(t, it, 0);
            if (!item_link_ok(t, im[I_NEXT])) return CORRUPT;
            s[S_IFREE] = im[I_NEXT];
            im[I_DS] = dsv;
            im[I_PROJ] = pj;
            im[I_UID] = us;
            im[I_NPK] = 1;
            im[I_NBY] = length;
            im[I_FIRST] = now;
            im[I_NEXT] = EMPTY;
            int64_t tail = FL(t, f, F_ITAIL);
            if (!item_link_ok(t, tail)) return CORRUPT;
            if (tail == EMPTY)
                FL(t, f, F_IHEAD) = it;
            else
                IT(t, tail, I_NEXT) = it;
            FL(t, f, F_ITAIL) = it;
            s[S_NITEMS] += 1;
            append_flow(t, f);
        } else {
            IT(t, it, I_NPK) = wadd(IT(t, it, I_NPK), 1);
            IT(t, it, I_NBY) = wadd(IT(t, it, I_NBY), length);
            if (s[S_TAIL] != f) { /* already the newest: the list order stands */
                if (unlink_flow(t, f) < 0) return CORRUPT;
                append_flow(t, f);
            }
        }
        IT(t, it, I_LAST) = now;
        FL(t, f, F_LAST) = now;
        s[S_NPACKETS] += 1;
        s[S_NBYTES] = wadd(s[S_NBYTES], length);
        s[S_TBYTES] = wadd(s[S_TBYTES], length);
        a->verdict[k] = V_PASS;
    }
    *pos_out = k;
    return DONE;
}

/* -- Python entry points -------------------------------------------------------------- */

/* link_free_rows(pool, start, link_col) -> int */
static PyObject *py_link_free_rows(PyObject *self, PyObject *args) {
    PyObject *pool_obj;
    long long start, link_col;
    if (!PyArg_ParseTuple(args, "OLL:link_free_rows", &pool_obj, &start, &link_col)) return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(pool_obj, &view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE) <
        0)
        return NULL;
    const char *f = view.format ? view.format : "B";
    while (*f == '@' || *f == '=' || *f == '<') f++;
    int int64 = view.itemsize == 8 && (f[0] == 'l' || f[0] == 'q') && f[1] == '\0';
    if (!int64 || view.ndim != 2) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_TypeError, "pool: expected a two-dimensional int64 array");
        return NULL;
    }
    int64_t n = view.shape[0], ncols = view.shape[1];
    if (link_col < 0 || link_col >= ncols || start < 0) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "link_col outside the pool, or start negative");
        return NULL;
    }
    int64_t *pool = view.buf;
    for (int64_t r = start; r < n; r++) pool[r * ncols + link_col] = r + 1 < n ? r + 1 : EMPTY;
    PyBuffer_Release(&view);
    return PyLong_FromLongLong(start < n ? start : EMPTY);
}

/* flow_hash(shi, slo, dhi, dlo, ports) -> int: the hash account() files a 5-tuple under
 * (arguments taken modulo 2**64, as the int64 columns' bits). */
static PyObject *py_flow_hash(PyObject *self, PyObject *args) {
    PyObject *o[5];
    if (!PyArg_UnpackTuple(args, "flow_hash", 5, 5, &o[0], &o[1], &o[2], &o[3], &o[4]))
        return NULL;
    uint64_t v[5];
    for (int i = 0; i < 5; i++) {
        if (!PyLong_Check(o[i])) {
            PyErr_SetString(PyExc_TypeError, "flow_hash: expected integers");
            return NULL;
        }
        v[i] = PyLong_AsUnsignedLongLongMask(o[i]);
        if (v[i] == (uint64_t)-1 && PyErr_Occurred()) return NULL;
    }
    return PyLong_FromLongLong(hash5(v[0], v[1], v[2], v[3], v[4]));
}

/* rebuild_index(flows, index, head) -> None */
static PyObject *py_rebuild_index(PyObject *self, PyObject *args) {
    PyObject *flows_obj, *index_obj;
    long long head;
    if (!PyArg_ParseTuple(args, "OOL:rebuild_index", &flows_obj, &index_obj, &head)) return NULL;
    table_t t = {0};
    table_hold_t hold = {.held = 0};
    if (table_part_acquire(flows_obj, &hold.views[0], F_NCOLS, &t.nflows, "flows") < 0) return NULL;
    hold.held = 1;
    if (array_acquire(index_obj, &hold.views[1], 8, 1, 1, "index") < 0) {
        table_release(&hold);
        return NULL;
    }
    hold.held = 2;
    int64_t nindex = ITEMS(hold.views[1]);
    if (nindex < 1 || (nindex & (nindex - 1)) != 0) {
        table_release(&hold);
        PyErr_SetString(PyExc_ValueError, "index: length must be a power of two");
        return NULL;
    }
    t.flows = hold.views[0].buf;
    t.index = hold.views[1].buf;
    t.mask = nindex - 1;
    int bad = 0;
    Py_BEGIN_ALLOW_THREADS;
    int64_t f = head;
    for (int64_t steps = 0; f != EMPTY; steps++) {
        if (!flow_ok(&t, f) || steps >= t.nflows || index_insert(&t, f, FL(&t, f, F_HASH)) < 0) {
            bad = 1;
            break;
        }
        f = FL(&t, f, F_NEXT);
    }
    Py_END_ALLOW_THREADS;
    table_release(&hold);
    if (bad) return corrupt_error();
    Py_RETURN_NONE;
}

/* sweep(flows, items, index, scalars, out, when, timeout_ns) -> bool */
static PyObject *py_sweep(PyObject *self, PyObject *args) {
    PyObject *fo, *io, *xo, *so, *oo;
    long long when, timeout_ns;
    if (!PyArg_ParseTuple(args, "OOOOOLL:sweep", &fo, &io, &xo, &so, &oo, &when, &timeout_ns))
        return NULL;
    table_t t;
    table_hold_t hold;
    if (table_acquire(fo, io, xo, so, oo, &t, &hold) < 0) return NULL;
    int done;
    Py_BEGIN_ALLOW_THREADS;
    done = sweep_table(&t, when, timeout_ns);
    Py_END_ALLOW_THREADS;
    table_release(&hold);
    if (done < 0) return corrupt_error();
    return PyBool_FromLong(done);
}

/* flush_all(flows, items, index, scalars, out) -> bool */
static PyObject *py_flush_all(PyObject *self, PyObject *args) {
    PyObject *fo, *io, *xo, *so, *oo;
    if (!PyArg_ParseTuple(args, "OOOOO:flush_all", &fo, &io, &xo, &so, &oo)) return NULL;
    table_t t;
    table_hold_t hold;
    if (table_acquire(fo, io, xo, so, oo, &t, &hold) < 0) return NULL;
    int done;
    Py_BEGIN_ALLOW_THREADS;
    done = flush_table(&t);
    Py_END_ALLOW_THREADS;
    table_release(&hold);
    if (done < 0) return corrupt_error();
    return PyBool_FromLong(done);
}

/* account(flows, items, index, scalars, out, timer_ns, timeout_ns, max_limit, rows, start,
 *         cols, verdict) -> (status, position) */
static PyObject *py_account(PyObject *self, PyObject *args) {
    PyObject *fo, *io, *xo, *so, *oo, *rows_obj, *cols_obj, *verdict_obj;
    long long timer_ns, timeout_ns, max_limit, start;
    if (!PyArg_ParseTuple(args, "OOOOOLLLOLOO:account", &fo, &io, &xo, &so, &oo, &timer_ns,
                          &timeout_ns, &max_limit, &rows_obj, &start, &cols_obj, &verdict_obj))
        return NULL;
    table_t t;
    table_hold_t hold;
    if (table_acquire(fo, io, xo, so, oo, &t, &hold) < 0) return NULL;
    columns_hold_t cols;
    Py_buffer rows_view, verdict_view;
    if (columns_acquire(cols_obj, &cols) < 0) goto fail_table;
    if (array_acquire(rows_obj, &rows_view, 8, 1, 0, "rows") < 0) goto fail_cols;
    if (array_acquire(verdict_obj, &verdict_view, 1, 0, 1, "verdict") < 0) goto fail_rows;
    account_args_t a = {
        .timer_ns = timer_ns,
        .timeout_ns = timeout_ns,
        .max_limit = max_limit,
        .rows = rows_view.buf,
        .nrows = ITEMS(rows_view),
        .verdict = verdict_view.buf,
        .c = &cols.c,
    };
    if (ITEMS(verdict_view) < a.nrows) {
        PyErr_SetString(PyExc_ValueError, "verdict: shorter than rows");
        goto fail_all;
    }
    if (start < 0) {
        PyErr_SetString(PyExc_ValueError, "start: negative");
        goto fail_all;
    }
    for (int64_t k = start; k < a.nrows; k++) {
        if ((uint64_t)a.rows[k] >= (uint64_t)cols.c.n) {
            PyErr_Format(PyExc_IndexError, "rows[%lld] = %lld outside the batch of %zd rows",
                         (long long)k, (long long)a.rows[k], cols.c.n);
            goto fail_all;
        }
    }
    int status;
    int64_t position = a.nrows > start ? a.nrows : start;
    Py_BEGIN_ALLOW_THREADS;
    status = account_rows(&t, &a, start, &position);
    Py_END_ALLOW_THREADS;
    PyBuffer_Release(&verdict_view);
    PyBuffer_Release(&rows_view);
    columns_release(&cols);
    table_release(&hold);
    if (status == CORRUPT) return corrupt_error();
    return Py_BuildValue("(iL)", status, (long long)position);
fail_all:
    PyBuffer_Release(&verdict_view);
fail_rows:
    PyBuffer_Release(&rows_view);
fail_cols:
    columns_release(&cols);
fail_table:
    table_release(&hold);
    return NULL;
}

/* ---- record text ------------------------------------------------------------------ */

/* Decimal text of 0..255 and lowercase hex text of 0..0xFFFF without leading zeros
 * (sprintf costs more than the rest of an address). */
static char *put_decimal_byte(char *p, unsigned v) {
    if (v >= 100) *p++ = (char)('0' + v / 100);
    if (v >= 10) *p++ = (char)('0' + v / 10 % 10);
    *p++ = (char)('0' + v % 10);
    return p;
}

static char *put_hex_word(char *p, unsigned v) {
    static const char hex[] = "0123456789abcdef";
    int shift = 12;
    while (shift > 0 && (v >> shift) == 0) shift -= 4;
    for (; shift >= 0; shift -= 4) *p++ = hex[(v >> shift) & 0xF];
    return p;
}

/* The text of one 128-bit address into out (at least 40 bytes); returns its length. An
 * IPv4-mapped address is a dotted quad; any other is RFC 5952: lowercase hex words
 * without leading zeros, the longest run of two or more zero words (the first of equal
 * runs) as "::". That is what Python's ipaddress writes, and not quite what inet_ntop
 * does (it writes ::a.b.c.d for the IPv4-compatible block). */
static int address_text(uint64_t hi, uint64_t lo, char *out) {
    if (hi == 0 && (lo >> 32) == 0xFFFF) {
        char *q = out;
        for (int shift = 24; shift >= 0; shift -= 8) {
            q = put_decimal_byte(q, (unsigned)(lo >> shift) & 0xFF);
            *q++ = shift ? '.' : '\0';
        }
        return (int)(q - out - 1);
    }
    unsigned words[8];
    for (int i = 0; i < 4; i++) {
        words[i] = (unsigned)(hi >> (48 - 16 * i)) & 0xFFFF;
        words[4 + i] = (unsigned)(lo >> (48 - 16 * i)) & 0xFFFF;
    }
    int best = -1, best_len = 0;
    for (int i = 0; i < 8;) {
        if (words[i] != 0) {
            i++;
            continue;
        }
        int start = i;
        while (i < 8 && words[i] == 0) i++;
        if (i - start > best_len) {
            best = start;
            best_len = i - start;
        }
    }
    if (best_len < 2) best = -1;
    char *p = out;
    int after_gap = 1;
    for (int i = 0; i < 8;) {
        if (i == best) {
            *p++ = ':';
            *p++ = ':';
            i += best_len;
            after_gap = 1;
            continue;
        }
        if (!after_gap) *p++ = ':';
        p = put_hex_word(p, words[i]);
        after_gap = 0;
        i++;
    }
    *p = '\0';
    return (int)(p - out);
}

/* format_addresses(hi, lo) -> list[str]: the text of every address (see address_text). */
static PyObject *py_format_addresses(PyObject *self, PyObject *args) {
    PyObject *hi_o, *lo_o;
    if (!PyArg_ParseTuple(args, "OO:format_addresses", &hi_o, &lo_o)) return NULL;
    Py_buffer hi, lo;
    if (array_acquire(hi_o, &hi, 8, 0, 0, "hi") < 0) return NULL;
    if (array_acquire(lo_o, &lo, 8, 0, 0, "lo") < 0) {
        PyBuffer_Release(&hi);
        return NULL;
    }
    PyObject *out = NULL;
    Py_ssize_t n = ITEMS(hi);
    if (ITEMS(lo) != n) {
        PyErr_SetString(PyExc_ValueError, "hi and lo differ in length");
        goto done;
    }
    out = PyList_New(n);
    if (out == NULL) goto done;
    const uint64_t *h = hi.buf, *l = lo.buf;
    char text[48];
    for (Py_ssize_t i = 0; i < n; i++) {
        int len = address_text(h[i], l[i], text);
        PyObject *item = PyUnicode_FromStringAndSize(text, len);
        if (item == NULL) {
            Py_CLEAR(out);
            goto done;
        }
        PyList_SET_ITEM(out, i, item);
    }
done:
    PyBuffer_Release(&lo);
    PyBuffer_Release(&hi);
    return out;
}

/* format_addresses_utf8(hi, lo, offsets) -> bytes: the same texts, end to end, for an Arrow
 * string column: offsets (int32, n + 1, written here) say where each text starts. No
 * Python object per address, and the GIL is released while formatting. */
static PyObject *py_format_addresses_utf8(PyObject *self, PyObject *args) {
    PyObject *hi_o, *lo_o, *off_o;
    if (!PyArg_ParseTuple(args, "OOO:format_addresses_utf8", &hi_o, &lo_o, &off_o)) return NULL;
    Py_buffer hi, lo, off;
    if (array_acquire(hi_o, &hi, 8, 0, 0, "hi") < 0) return NULL;
    if (array_acquire(lo_o, &lo, 8, 0, 0, "lo") < 0) {
        PyBuffer_Release(&hi);
        return NULL;
    }
    if (array_acquire(off_o, &off, 4, 1, 1, "offsets") < 0) {
        PyBuffer_Release(&lo);
        PyBuffer_Release(&hi);
        return NULL;
    }
    PyObject *out = NULL;
    Py_ssize_t n = ITEMS(hi);
    /* 39 characters is the longest RFC 5952 text (8 groups of 4 and 7 colons) */
    if (ITEMS(lo) != n || ITEMS(off) != n + 1) {
        PyErr_SetString(PyExc_ValueError, "hi, lo and offsets (n + 1) differ in length");
        goto done;
    }
    if (n > (Py_ssize_t)(INT32_MAX / 48)) {
        PyErr_SetString(PyExc_ValueError, "too many addresses for 32-bit offsets");
        goto done;
    }
    out = PyBytes_FromStringAndSize(NULL, n * 48);
    if (out == NULL) goto done;
    const uint64_t *h = hi.buf, *l = lo.buf;
    int32_t *o = off.buf;
    char *data = PyBytes_AS_STRING(out);
    Py_ssize_t pos = 0;
    Py_BEGIN_ALLOW_THREADS
    o[0] = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        pos += address_text(h[i], l[i], data + pos);
        o[i + 1] = (int32_t)pos;
    }
    Py_END_ALLOW_THREADS
    if (_PyBytes_Resize(&out, pos) < 0) out = NULL;
done:
    PyBuffer_Release(&off);
    PyBuffer_Release(&lo);
    PyBuffer_Release(&hi);
    return out;
}

PyMethodDef flows_methods[] = {
    {"format_addresses", py_format_addresses, METH_VARARGS,
     "format_addresses(hi, lo) -> list[str]: dotted quads for IPv4-mapped addresses, RFC "
     "5952 text for the others."},
    {"format_addresses_utf8", py_format_addresses_utf8, METH_VARARGS,
     "format_addresses_utf8(hi, lo, offsets) -> bytes: the same texts end to end, offsets "
     "(int32, n + 1) filled: an Arrow string column's buffers."},
    {"link_free_rows", py_link_free_rows, METH_VARARGS,
     "link_free_rows(pool, start, link_col) -> head: chain rows start.. as a free list."},
    {"flow_hash", py_flow_hash, METH_VARARGS,
     "flow_hash(shi, slo, dhi, dlo, ports) -> int: the 63-bit hash of a 5-tuple."},
    {"rebuild_index", py_rebuild_index, METH_VARARGS,
     "rebuild_index(flows, index, head): insert every listed flow into an empty index."},
    {"sweep", py_sweep, METH_VARARGS,
     "sweep(flows, items, index, scalars, out, when, timeout_ns) -> bool: expire idle flows."},
    {"flush_all", py_flush_all, METH_VARARGS,
     "flush_all(flows, items, index, scalars, out) -> bool: expire every flow."},
    {"account", py_account, METH_VARARGS,
     "account(flows, items, index, scalars, out, timer_ns, timeout_ns, max_limit, rows, "
     "start, cols, verdict) -> (status, position): account packets rows[start:]."},
    {NULL, NULL, 0, NULL},
};

/* The layout constants, so Python and C cannot disagree on a column. */
int flows_constants(PyObject *module) {
    static const struct { const char *name; long value; } table[] = {
        {"FLOW_NCOLS", F_NCOLS}, {"ITEM_NCOLS", I_NCOLS}, {"FLOW_NSCALARS", S_NSCALARS},
        {"FLOW_OUT_NCOLS", OUT_NCOLS},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (PyModule_AddIntConstant(module, table[i].name, table[i].value) < 0) return -1;
    return 0;
}
