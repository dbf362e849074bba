/* The engine's own per-batch work: the action graph's dispatch, the dscpmk marker and
 * the session statistics (diffserv/engine/graph.py, modules/dscpmk.py, stats.py).
 *
 * None of this is hard, but done with numpy each step is several full passes over the
 * batch and a few temporaries, repeated for every action id; here each step is one pass
 * that touches only the rows it needs. The Python side keeps the operator protocol
 * (``process(batch, rows) -> next ids``): these helpers only replace the masks, gathers
 * and sums around it, and compute exactly what the numpy code did.
 *
 * Every argument is checked before anything is written (lengths, rows in range, map
 * values), so a refused call changes nothing; the loops then run without the GIL.
 */
#include "kernels.h"

/* Slots of the outcome tally graph_scatter adds to: packets and bytes ending at each
 * virtual action, in the order graph.OUTCOMES lists them. */
enum {
    OUT_CONTINUE_PACKETS,
    OUT_CONTINUE_BYTES,
    OUT_DROP_PACKETS,
    OUT_DROP_BYTES,
    OUT_DEFER_PACKETS,
    OUT_DEFER_BYTES,
    GRAPH_OUTCOME_SIZE
};

/* Slots of a dscpmk action's counters (modules/dscpmk.py names them). */
enum {
    DSCPMK_NPACKETS,
    DSCPMK_CHANGED,
    DSCPMK_UNCHANGED,
    DSCPMK_IPACKETS,
    DSCPMK_EPACKETS,
    DSCPMK_COUNTERS
};

#define DSCP_VALUES 64
#define TRANSITIONS (DSCP_VALUES * DSCP_VALUES)

/* Slots of the packet conditions counted from the flags column (stats.PacketConditions). */
enum { COND_TRUNCATED, COND_HEADER_CUT, COND_FROM_FRAME, CONDITIONS_SIZE };

/* ---- arguments ------------------------------------------------------------------- */

/* An array argument that must hold exactly `size` items. */
static int check_size(const char *func, const char *name, const Py_buffer *view,
                      Py_ssize_t size) {
    if (ITEMS(*view) == size) return 0;
    PyErr_Format(PyExc_ValueError, "%s: %s has %zd items, not %zd", func, name, ITEMS(*view),
                 size);
    return -1;
}

/* An integer argument in [lo, hi] (numpy integers are accepted). */
static int int_arg(PyObject *obj, long long lo, long long hi, const char *what,
                   long long *out) {
    PyObject *index = PyNumber_Index(obj);
    if (index == NULL) return -1;
    long long value = PyLong_AsLongLong(index);
    Py_DECREF(index);
    if (value == -1 && PyErr_Occurred()) return -1;
    if (value < lo || value > hi) {
        PyErr_Format(PyExc_ValueError, "%s must be in [%lld, %lld], not %lld", what, lo, hi,
                     value);
        return -1;
    }
    *out = value;
    return 0;
}

/* Whether every row index is in [0, limit) (a negative row becomes huge as unsigned).
 * Call without the GIL. */
static int rows_in_range(const int64_t *rows, Py_ssize_t n, Py_ssize_t limit) {
    uint64_t worst = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        uint64_t r = (uint64_t)rows[i];
        worst = r > worst ? r : worst;
    }
    return n == 0 || worst < (uint64_t)limit;
}

/* Adds modulo 2^64: no counter can realistically wrap, but if one did it must not be
 * undefined behaviour. */
static inline void count(int64_t *counter, int64_t amount) {
    *counter = (int64_t)((uint64_t)*counter + (uint64_t)amount);
}

/* The DS byte as earlier actions left it (PacketBatch.current_ds: new_ds if set, else
 * the byte as read, taken modulo 256 as numpy's astype(uint8) does). */
static inline uint8_t current_ds(const columns_t *c, Py_ssize_t row) {
    return c->new_ds[row] >= 0 ? (uint8_t)c->new_ds[row] : c->ds_byte[row];
}

/* ---- graph: start of a batch ----------------------------------------------------- */

typedef struct {
    Py_ssize_t n_ip;          /* rows written to ip_rows */
    uint64_t bytes;           /* wire_len of every row */
    Py_ssize_t n_malformed;
    Py_ssize_t not_ip_packets;
    uint64_t not_ip_bytes;
} batch_totals_t;

/* One pass: every row's action becomes ACTION_CONTINUE; the rows that enter the graph
 * (IP, or malformed: ipgpc passes those on as epackets) are listed in ascending order;
 * the first `room` malformed packets' numbers are kept. */
static void begin_loop(const columns_t *c, int64_t *ip_rows, int64_t *first, Py_ssize_t room,
                       batch_totals_t *t) {
    for (Py_ssize_t i = 0; i < c->n; i++) {
        c->action[i] = ACTION_CONTINUE;
        uint32_t wire = c->wire_len[i];
        t->bytes += wire;
        int malformed = (c->flags[i] & FLAG_MALFORMED) != 0;
        if (malformed) {
            if (t->n_malformed < room) first[t->n_malformed] = c->number[i];
            t->n_malformed++;
        }
        if (malformed || c->ip_version[i] != NOT_IP) {
            ip_rows[t->n_ip++] = i;
        } else {
            t->not_ip_packets++;
            t->not_ip_bytes += wire;
        }
    }
}

/* graph_begin(cols, ip_rows, malformed_first) -> (n_ip, bytes, n_malformed,
 * not_ip_packets, not_ip_bytes) */
static PyObject *graph_begin(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    static const char func[] = "graph_begin";
    if (check_nargs(func, nargs, 3) < 0) return NULL;
    columns_hold_t hold;
    if (columns_acquire(args[0], &hold) < 0) return NULL;
    static const arg_spec_t specs[] = {{"ip_rows", 8, 1, 1}, {"malformed_first", 8, 1, 1}};
    Py_buffer v[2];
    if (arrays_acquire(args + 1, specs, 2, v) < 0) {
        columns_release(&hold);
        return NULL;
    }
    PyObject *result = NULL;
    if (ITEMS(v[0]) < hold.c.n) {
        PyErr_Format(PyExc_ValueError, "%s: ip_rows has %zd items for %zd rows", func,
                     ITEMS(v[0]), hold.c.n);
        goto done;
    }
    batch_totals_t t = {0, 0, 0, 0, 0};
    Py_BEGIN_ALLOW_THREADS;
    begin_loop(&hold.c, v[0].buf, v[1].buf, ITEMS(v[1]), &t);
    Py_END_ALLOW_THREADS;
    result = Py_BuildValue("(nKnnK)", t.n_ip, (unsigned long long)t.bytes, t.n_malformed,
                           t.not_ip_packets, (unsigned long long)t.not_ip_bytes);
done:
    arrays_release(v, 2);
    columns_release(&hold);
    return result;
}

/* ---- graph: an operator's verdicts ----------------------------------------------- */

/* A verdict action `aid` may give (graph._checked): a later real action (ids are
 * topological, so packets only move forward) or one of the three virtual actions. */
static inline int verdict_ok(int32_t v, int32_t aid, int32_t nops) {
    if (v >= 0) return v > aid && v < nops;
    return v == ACTION_CONTINUE || v == ACTION_DEFER || v == ACTION_DROP;
}

static inline int outcome_slot(int32_t v) {
    return v == ACTION_CONTINUE ? OUT_CONTINUE_PACKETS
           : v == ACTION_DROP   ? OUT_DROP_PACKETS
                                : OUT_DEFER_PACKETS;
}

/* Position of the first verdict `aid` may not give, or -1. */
static Py_ssize_t first_bad_verdict(const int32_t *nxt, Py_ssize_t n, int32_t aid,
                                    int32_t nops) {
    for (Py_ssize_t i = 0; i < n; i++)
        if (!verdict_ok(nxt[i], aid, nops)) return i;
    return -1;
}

/* Write the (checked) verdicts; count the rows each later action now holds and the
 * packets and bytes that end at a virtual action (every graph row ends at exactly one,
 * written once by exactly one of these calls). */
static void scatter_loop(int32_t *action, const uint32_t *wire_len, const int64_t *rows,
                         const int32_t *nxt, Py_ssize_t n, int64_t *pending,
                         int64_t *outcomes) {
    for (Py_ssize_t i = 0; i < n; i++) {
        int32_t v = nxt[i];
        int64_t row = rows[i];
        action[row] = v;
        if (v >= 0) {
            pending[v]++;
        } else {
            int slot = outcome_slot(v);
            count(&outcomes[slot], 1);
            count(&outcomes[slot + 1], wire_len[row]);
        }
    }
}

enum { SC_ACTION, SC_WIRE_LEN, SC_ROWS, SC_NXT, SC_PENDING, SC_OUTCOMES, SC_NARRAYS };

/* graph_scatter(action, wire_len, rows, nxt, pending, outcomes, aid) -> int */
static PyObject *graph_scatter(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    static const char func[] = "graph_scatter";
    static const arg_spec_t specs[SC_NARRAYS] = {
        {"action", 4, 1, 1}, {"wire_len", 4, 0, 0}, {"rows", 8, 1, 0},
        {"nxt", 4, 1, 0},    {"pending", 8, 1, 1},  {"outcomes", 8, 1, 1},
    };
    if (check_nargs(func, nargs, SC_NARRAYS + 1) < 0) return NULL;
    Py_buffer v[SC_NARRAYS];
    if (arrays_acquire(args, specs, SC_NARRAYS, v) < 0) return NULL;
    PyObject *result = NULL;
    Py_ssize_t nops = ITEMS(v[SC_PENDING]);
    Py_ssize_t n = ITEMS(v[SC_ROWS]);
    Py_ssize_t limit = ITEMS(v[SC_ACTION]);
    long long aid;
    if (int_arg(args[SC_NARRAYS], 0, INT32_MAX, "aid", &aid) < 0) goto done;
    if (nops > INT32_MAX || aid >= nops) {
        PyErr_Format(PyExc_ValueError, "%s: aid %lld is not one of %zd actions", func, aid,
                     nops);
        goto done;
    }
    if (check_size(func, "outcomes", &v[SC_OUTCOMES], GRAPH_OUTCOME_SIZE) < 0) goto done;
    if (check_size(func, "nxt", &v[SC_NXT], n) < 0) goto done;
    if (check_size(func, "wire_len", &v[SC_WIRE_LEN], limit) < 0) goto done;
    const int64_t *rows = v[SC_ROWS].buf;
    const int32_t *nxt = v[SC_NXT].buf;
    int rows_ok;
    Py_ssize_t bad = -1;
    Py_BEGIN_ALLOW_THREADS;
    rows_ok = rows_in_range(rows, n, limit);
    if (rows_ok) bad = first_bad_verdict(nxt, n, (int32_t)aid, (int32_t)nops);
    if (rows_ok && bad < 0)
        scatter_loop(v[SC_ACTION].buf, v[SC_WIRE_LEN].buf, rows, nxt, n, v[SC_PENDING].buf,
                     v[SC_OUTCOMES].buf);
    Py_END_ALLOW_THREADS;
    if (!rows_ok) {
        PyErr_Format(PyExc_IndexError, "%s: a row is outside [0, %zd)", func, limit);
        goto done;
    }
    result = PyLong_FromSsize_t(bad);
done:
    arrays_release(v, SC_NARRAYS);
    return result;
}

/* ---- graph: the rows at an action ------------------------------------------------ */

/* Rows whose action is `aid`, ascending, into out (at most `room`); returns how many
 * there are in all. Branch-free (the matches fall at random): every row is stored at the
 * next free place, which only advances on a match; once out is full the rest is only
 * counted, so a caller can tell rows that reached the action behind its back. */
static Py_ssize_t rows_at_loop(const int32_t *action, Py_ssize_t n, int32_t aid, int64_t *out,
                               Py_ssize_t room) {
    Py_ssize_t k = 0, i = 0;
    for (; i < n && k < room; i++) {
        out[k] = i;
        k += action[i] == aid;
    }
    for (; i < n; i++) k += action[i] == aid;
    return k;
}

/* graph_rows_at(action, aid, out) -> int */
static PyObject *graph_rows_at(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    static const char func[] = "graph_rows_at";
    static const arg_spec_t specs[] = {{"action", 4, 1, 0}, {"out", 8, 1, 1}};
    if (check_nargs(func, nargs, 3) < 0) return NULL;
    long long aid;
    if (int_arg(args[1], INT32_MIN, INT32_MAX, "aid", &aid) < 0) return NULL;
    Py_buffer v[2];
    if (arrays_acquire((PyObject *const[]){args[0], args[2]}, specs, 2, v) < 0) return NULL;
    Py_ssize_t k;
    Py_BEGIN_ALLOW_THREADS;
    k = rows_at_loop(v[0].buf, ITEMS(v[0]), (int32_t)aid, v[1].buf, ITEMS(v[1]));
    Py_END_ALLOW_THREADS;
    arrays_release(v, 2);
    return PyLong_FromSsize_t(k);
}

/* ---- dscpmk ---------------------------------------------------------------------- */

typedef struct {
    const int64_t *rows;
    Py_ssize_t nrows;
    const uint8_t *direction;
    const uint8_t *ip_version;
    const uint8_t *ds_byte;
    int16_t *new_ds;
    const uint8_t *dscp_map;
    int64_t *per_dscp;
    int64_t *counters;
    int32_t *next_out;
    int32_t next_action;
} dscpmk_call_t;

/* Dscpmk.process for each row in turn: inbound packets are never re-marked (ipackets),
 * a row without IP counts as epackets; every other row has its DSCP mapped (ECN kept),
 * counted per output DSCP and as changed or unchanged, and a changed byte recorded in
 * new_ds. Each row is read and written once, so with distinct rows (as the graph gives)
 * this is the vectorised code's result exactly. */
static void dscpmk_loop(const dscpmk_call_t *a) {
    int64_t inbound = 0, not_ip = 0, changed = 0, unchanged = 0;
    for (Py_ssize_t i = 0; i < a->nrows; i++) {
        int64_t row = a->rows[i];
        a->next_out[i] = a->next_action;
        uint8_t dir = a->direction[row];
        if (dir == DIR_LOCAL_IN || dir == DIR_FWD_IN) {
            inbound++;
            continue;
        }
        if (a->ip_version[row] == NOT_IP) {
            not_ip++;
            continue;
        }
        int16_t set = a->new_ds[row];
        uint8_t old = set >= 0 ? (uint8_t)set : a->ds_byte[row];
        uint8_t old6 = old >> 2, new6 = a->dscp_map[old6];
        a->per_dscp[new6]++;
        if (new6 != old6) {
            a->new_ds[row] = (int16_t)((new6 << 2) | (old & 3));
            changed++;
        } else {
            unchanged++;
        }
    }
    count(&a->counters[DSCPMK_NPACKETS], (int64_t)a->nrows);
    count(&a->counters[DSCPMK_CHANGED], changed);
    count(&a->counters[DSCPMK_UNCHANGED], unchanged);
    count(&a->counters[DSCPMK_IPACKETS], inbound);
    count(&a->counters[DSCPMK_EPACKETS], not_ip);
}

enum {
    DM_ROWS,
    DM_DIRECTION,
    DM_IP_VERSION,
    DM_DS_BYTE,
    DM_NEW_DS,
    DM_DSCP_MAP,
    DM_PER_DSCP,
    DM_COUNTERS,
    DM_NEXT_OUT,
    DM_NARRAYS
};

/* dscpmk_rows(rows, direction, ip_version, ds_byte, new_ds, dscp_map, per_dscp, counters,
 * next_out, next_action) */
static PyObject *dscpmk_rows(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    static const char func[] = "dscpmk_rows";
    static const arg_spec_t specs[DM_NARRAYS] = {
        {"rows", 8, 1, 0},     {"direction", 1, 0, 0}, {"ip_version", 1, 0, 0},
        {"ds_byte", 1, 0, 0},  {"new_ds", 2, 1, 1},    {"dscp_map", 1, 0, 0},
        {"per_dscp", 8, 1, 1}, {"counters", 8, 1, 1},  {"next_out", 4, 1, 1},
    };
    if (check_nargs(func, nargs, DM_NARRAYS + 1) < 0) return NULL;
    long long next_action;
    if (int_arg(args[DM_NARRAYS], INT32_MIN, INT32_MAX, "next_action", &next_action) < 0)
        return NULL;
    Py_buffer v[DM_NARRAYS];
    if (arrays_acquire(args, specs, DM_NARRAYS, v) < 0) return NULL;
    PyObject *result = NULL;
    dscpmk_call_t a = {
        .rows = v[DM_ROWS].buf,
        .nrows = ITEMS(v[DM_ROWS]),
        .direction = v[DM_DIRECTION].buf,
        .ip_version = v[DM_IP_VERSION].buf,
        .ds_byte = v[DM_DS_BYTE].buf,
        .new_ds = v[DM_NEW_DS].buf,
        .dscp_map = v[DM_DSCP_MAP].buf,
        .per_dscp = v[DM_PER_DSCP].buf,
        .counters = v[DM_COUNTERS].buf,
        .next_out = v[DM_NEXT_OUT].buf,
        .next_action = (int32_t)next_action,
    };
    if (check_size(func, "dscp_map", &v[DM_DSCP_MAP], DSCP_VALUES) < 0) goto done;
    if (check_size(func, "per_dscp", &v[DM_PER_DSCP], DSCP_VALUES) < 0) goto done;
    if (check_size(func, "counters", &v[DM_COUNTERS], DSCPMK_COUNTERS) < 0) goto done;
    if (check_size(func, "next_out", &v[DM_NEXT_OUT], a.nrows) < 0) goto done;
    for (int d = 0; d < DSCP_VALUES; d++) {
        if (a.dscp_map[d] >= DSCP_VALUES) {
            PyErr_Format(PyExc_ValueError, "%s: dscp_map[%d] is %d, not a DSCP", func, d,
                         a.dscp_map[d]);
            goto done;
        }
    }
    Py_ssize_t limit = ITEMS(v[DM_DIRECTION]);
    for (int k = DM_IP_VERSION; k <= DM_NEW_DS; k++)
        if (ITEMS(v[k]) < limit) limit = ITEMS(v[k]);
    int rows_ok;
    Py_BEGIN_ALLOW_THREADS;
    rows_ok = rows_in_range(a.rows, a.nrows, limit);
    if (rows_ok) dscpmk_loop(&a);
    Py_END_ALLOW_THREADS;
    if (!rows_ok) {
        PyErr_Format(PyExc_IndexError, "%s: a row is outside [0, %zd)", func, limit);
        goto done;
    }
    result = Py_NewRef(Py_None);
done:
    arrays_release(v, DM_NARRAYS);
    return result;
}

/* ---- a run of dscpmk actions in one pass ----------------------------------------- */

/* One dscpmk action of a fused run: its map, its counters and where it sends packets. */
typedef struct {
    const uint8_t *dscp_map;
    int64_t *per_dscp;
    int64_t *counters;
    int32_t next_action;
} marker_t;

/* One row through dscpmk action `m` (dscpmk_loop's body, counted as it goes). */
static inline void mark_one(const columns_t *c, Py_ssize_t row, const marker_t *m) {
    count(&m->counters[DSCPMK_NPACKETS], 1);
    uint8_t dir = c->direction[row];
    if (dir == DIR_LOCAL_IN || dir == DIR_FWD_IN) {
        count(&m->counters[DSCPMK_IPACKETS], 1);
        return;
    }
    if (c->ip_version[row] == NOT_IP) {
        count(&m->counters[DSCPMK_EPACKETS], 1);
        return;
    }
    int16_t set = c->new_ds[row];
    uint8_t old = set >= 0 ? (uint8_t)set : c->ds_byte[row];
    uint8_t old6 = old >> 2, new6 = m->dscp_map[old6];
    m->per_dscp[new6]++;
    if (new6 != old6) {
        c->new_ds[row] = (int16_t)((new6 << 2) | (old & 3));
        count(&m->counters[DSCPMK_CHANGED], 1);
    } else {
        count(&m->counters[DSCPMK_UNCHANGED], 1);
    }
}

/* Every row at an action of [first, first + nmarks) walks the run to its end, then is
 * scattered as graph_scatter would (pending of the action it reaches, or the outcome
 * tally). A dscpmk action touches only its row's own columns and its own counters, so
 * row by row gives what action by action (the graph's order) gives. */
static void markers_loop(const columns_t *c, const marker_t *marks, int32_t first,
                         int32_t nmarks, int64_t *pending, int64_t *outcomes) {
    uint32_t span = (uint32_t)nmarks;
    for (Py_ssize_t i = 0; i < c->n; i++) {
        int32_t a = c->action[i];
        if ((uint32_t)(a - first) >= span) continue;
        do {
            const marker_t *m = &marks[a - first];
            mark_one(c, i, m);
            a = m->next_action;
        } while ((uint32_t)(a - first) < span);
        c->action[i] = a;
        if (a >= 0) {
            pending[a]++;
        } else {
            int slot = outcome_slot(a);
            count(&outcomes[slot], 1);
            count(&outcomes[slot + 1], c->wire_len[i]);
        }
    }
}

/* graph_markers(cols, markers, pending, outcomes, first) -> int: run the dscpmk actions
 * first, first + 1, ... (markers[k] = (dscp_map, per_dscp, counters, next_action) of
 * action first + k) over every row at one of them. Returns -1, or the position in
 * markers of the first action whose next action is not a later action or a virtual one
 * (then nothing is written). */
static PyObject *graph_markers(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    static const char func[] = "graph_markers";
    static const arg_spec_t specs[] = {{"pending", 8, 1, 1}, {"outcomes", 8, 1, 1}};
    static const arg_spec_t mark_specs[] = {
        {"dscp_map", 1, 0, 0}, {"per_dscp", 8, 1, 1}, {"counters", 8, 1, 1}};
    if (check_nargs(func, nargs, 5) < 0) return NULL;
    PyObject *markers = args[1];
    if (!PyTuple_Check(markers)) {
        PyErr_Format(PyExc_TypeError, "%s: markers must be a tuple", func);
        return NULL;
    }
    Py_ssize_t nmarks = PyTuple_GET_SIZE(markers);
    long long first;
    if (int_arg(args[4], 0, INT32_MAX, "first", &first) < 0) return NULL;
    columns_hold_t hold;
    if (columns_acquire(args[0], &hold) < 0) return NULL;
    Py_buffer v[2];
    if (arrays_acquire(args + 2, specs, 2, v) < 0) {
        columns_release(&hold);
        return NULL;
    }
    PyObject *result = NULL;
    Py_ssize_t held = 0;
    marker_t *marks = PyMem_Calloc(nmarks > 0 ? (size_t)nmarks : 1, sizeof *marks);
    Py_buffer *views = PyMem_Calloc(nmarks > 0 ? (size_t)nmarks * 3 : 1, sizeof *views);
    if (marks == NULL || views == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t nops = ITEMS(v[0]);
    if (nops > INT32_MAX || first + nmarks > nops) {
        PyErr_Format(PyExc_ValueError, "%s: actions %lld.. are not %zd of %zd actions", func,
                     first, nmarks, nops);
        goto done;
    }
    if (check_size(func, "outcomes", &v[1], GRAPH_OUTCOME_SIZE) < 0) goto done;
    Py_ssize_t bad = -1;
    for (Py_ssize_t k = 0; k < nmarks; k++) {
        PyObject *item = PyTuple_GET_ITEM(markers, k);
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 4) {
            PyErr_Format(PyExc_TypeError, "%s: markers[%zd] is not a 4-tuple", func, k);
            goto done;
        }
        if (arrays_acquire(&PyTuple_GET_ITEM(item, 0), mark_specs, 3, views + 3 * k) < 0)
            goto done;
        held = k + 1;
        long long next;
        if (int_arg(PyTuple_GET_ITEM(item, 3), INT32_MIN, INT32_MAX, "next_action", &next) < 0)
            goto done;
        if (check_size(func, "dscp_map", &views[3 * k], DSCP_VALUES) < 0) goto done;
        if (check_size(func, "per_dscp", &views[3 * k + 1], DSCP_VALUES) < 0) goto done;
        if (check_size(func, "counters", &views[3 * k + 2], DSCPMK_COUNTERS) < 0) goto done;
        marks[k] = (marker_t){views[3 * k].buf, views[3 * k + 1].buf, views[3 * k + 2].buf,
                              (int32_t)next};
        for (int d = 0; d < DSCP_VALUES; d++) {
            if (marks[k].dscp_map[d] >= DSCP_VALUES) {
                PyErr_Format(PyExc_ValueError, "%s: dscp_map[%d] is %d, not a DSCP", func, d,
                             marks[k].dscp_map[d]);
                goto done;
            }
        }
        if (bad < 0 && !verdict_ok((int32_t)next, (int32_t)(first + k), (int32_t)nops)) bad = k;
    }
    if (bad < 0) {
        Py_BEGIN_ALLOW_THREADS;
        markers_loop(&hold.c, marks, (int32_t)first, (int32_t)nmarks, v[0].buf, v[1].buf);
        Py_END_ALLOW_THREADS;
    }
    result = PyLong_FromSsize_t(bad);
done:
    for (Py_ssize_t k = 0; k < held; k++) arrays_release(views + 3 * k, 3);
    PyMem_Free(views);
    PyMem_Free(marks);
    arrays_release(v, 2);
    columns_release(&hold);
    return result;
}

/* ---- dlcosmk --------------------------------------------------------------------- */

/* Slots of a dlcosmk action's counters (modules/dlcosmk.py). */
enum { DLCOSMK_NPACKETS, DLCOSMK_IPACKETS, DLCOSMK_COUNTERS };

/* Dlcosmk.process: inbound and untagged frames pass unchanged (ipackets); every other
 * row gets the PCP to write. With `untagged` set the packet sink carries the CoS out of
 * band (a live verdict's skb priority), so untagged outbound frames get it too. */
static void dlcosmk_loop(const int64_t *rows, Py_ssize_t n, const uint8_t *direction,
                         const int64_t *vlan_off, int8_t *new_pcp, int8_t pcp,
                         int32_t next_action, int untagged, int64_t *counters,
                         int32_t *next_out) {
    int64_t passed = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        int64_t row = rows[i];
        next_out[i] = next_action;
        uint8_t dir = direction[row];
        if (dir == DIR_LOCAL_IN || dir == DIR_FWD_IN || (vlan_off[row] < 0 && !untagged)) {
            passed++;
            continue;
        }
        new_pcp[row] = pcp;
    }
    count(&counters[DLCOSMK_NPACKETS], (int64_t)n);
    count(&counters[DLCOSMK_IPACKETS], passed);
}

enum { DC_ROWS, DC_DIRECTION, DC_VLAN_OFF, DC_NEW_PCP, DC_COUNTERS, DC_NEXT_OUT, DC_NARRAYS };

/* dlcosmk_rows(rows, direction, vlan_off, new_pcp, counters, next_out, pcp, next_action,
 *              untagged) */
static PyObject *dlcosmk_rows(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    static const char func[] = "dlcosmk_rows";
    static const arg_spec_t specs[DC_NARRAYS] = {
        {"rows", 8, 1, 0},    {"direction", 1, 0, 0}, {"vlan_off", 8, 1, 0},
        {"new_pcp", 1, 1, 1}, {"counters", 8, 1, 1},  {"next_out", 4, 1, 1},
    };
    if (check_nargs(func, nargs, DC_NARRAYS + 3) < 0) return NULL;
    long long pcp, next_action, untagged;
    if (int_arg(args[DC_NARRAYS], 0, 7, "pcp", &pcp) < 0) return NULL;
    if (int_arg(args[DC_NARRAYS + 1], INT32_MIN, INT32_MAX, "next_action", &next_action) < 0)
        return NULL;
    if (int_arg(args[DC_NARRAYS + 2], 0, 1, "untagged", &untagged) < 0) return NULL;
    Py_buffer v[DC_NARRAYS];
    if (arrays_acquire(args, specs, DC_NARRAYS, v) < 0) return NULL;
    PyObject *result = NULL;
    Py_ssize_t n = ITEMS(v[DC_ROWS]);
    if (check_size(func, "counters", &v[DC_COUNTERS], DLCOSMK_COUNTERS) < 0) goto done;
    if (check_size(func, "next_out", &v[DC_NEXT_OUT], n) < 0) goto done;
    Py_ssize_t limit = ITEMS(v[DC_DIRECTION]);
    for (int k = DC_VLAN_OFF; k <= DC_NEW_PCP; k++)
        if (ITEMS(v[k]) < limit) limit = ITEMS(v[k]);
    int rows_ok;
    Py_BEGIN_ALLOW_THREADS;
    rows_ok = rows_in_range(v[DC_ROWS].buf, n, limit);
    if (rows_ok)
        dlcosmk_loop(v[DC_ROWS].buf, n, v[DC_DIRECTION].buf, v[DC_VLAN_OFF].buf,
                     v[DC_NEW_PCP].buf, (int8_t)pcp, (int32_t)next_action, (int)untagged,
                     v[DC_COUNTERS].buf, v[DC_NEXT_OUT].buf);
    Py_END_ALLOW_THREADS;
    if (!rows_ok) {
        PyErr_Format(PyExc_IndexError, "%s: a row is outside [0, %zd)", func, limit);
        goto done;
    }
    result = Py_NewRef(Py_None);
done:
    arrays_release(v, DC_NARRAYS);
    return result;
}

/* ---- statistics ------------------------------------------------------------------ */

/* DscpTransitions.update: (DSCP as read, DSCP as written) of each packet written out
 * (action ACTION_CONTINUE, IP). */
static void transitions_loop(const columns_t *c, int64_t *counts) {
    for (Py_ssize_t i = 0; i < c->n; i++) {
        if (c->action[i] != ACTION_CONTINUE || c->ip_version[i] == NOT_IP) continue;
        counts[(c->ds_byte[i] >> 2) * DSCP_VALUES + (current_ds(c, i) >> 2)]++;
    }
}

/* dscp_transitions(cols, counts) */
static PyObject *dscp_transitions(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    static const char func[] = "dscp_transitions";
    static const arg_spec_t spec = {"counts", 8, 1, 1};
    if (check_nargs(func, nargs, 2) < 0) return NULL;
    columns_hold_t hold;
    if (columns_acquire(args[0], &hold) < 0) return NULL;
    Py_buffer counts;
    if (arrays_acquire(args + 1, &spec, 1, &counts) < 0) {
        columns_release(&hold);
        return NULL;
    }
    PyObject *result = NULL;
    if (check_size(func, "counts", &counts, TRANSITIONS) < 0) goto done;
    Py_BEGIN_ALLOW_THREADS;
    transitions_loop(&hold.c, counts.buf);
    Py_END_ALLOW_THREADS;
    result = Py_NewRef(Py_None);
done:
    PyBuffer_Release(&counts);
    columns_release(&hold);
    return result;
}

/* PacketConditions.update: snap-length cuts, and header cuts and offload lengths of
 * packets that are not malformed (a malformed packet counts only as malformed). */
static void conditions_loop(const uint8_t *flags, Py_ssize_t n, int64_t *out) {
    int64_t truncated = 0, header_cut = 0, from_frame = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        uint8_t f = flags[i];
        truncated += (f & FLAG_TRUNCATED) != 0;
        int sound = (f & FLAG_MALFORMED) == 0;
        header_cut += sound && (f & FLAG_HEADER_CUT);
        from_frame += sound && (f & FLAG_LENGTH_FROM_FRAME);
    }
    count(&out[COND_TRUNCATED], truncated);
    count(&out[COND_HEADER_CUT], header_cut);
    count(&out[COND_FROM_FRAME], from_frame);
}

/* packet_conditions(flags, counts) */
static PyObject *packet_conditions(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    static const char func[] = "packet_conditions";
    static const arg_spec_t specs[] = {{"flags", 1, 0, 0}, {"counts", 8, 1, 1}};
    if (check_nargs(func, nargs, 2) < 0) return NULL;
    Py_buffer v[2];
    if (arrays_acquire(args, specs, 2, v) < 0) return NULL;
    PyObject *result = NULL;
    if (check_size(func, "counts", &v[1], CONDITIONS_SIZE) < 0) goto done;
    Py_BEGIN_ALLOW_THREADS;
    conditions_loop(v[0].buf, ITEMS(v[0]), v[1].buf);
    Py_END_ALLOW_THREADS;
    result = Py_NewRef(Py_None);
done:
    arrays_release(v, 2);
    return result;
}

/* ---- the session's end of a batch ------------------------------------------------- */

/* batch_end(buf, cols, transitions, conditions, rewrite) -> int: what Session.process does
 * once the graph has run, in one call over one borrow of the columns: the DSCP
 * transitions (dscp_transitions), the packet conditions (packet_conditions) and, when
 * `rewrite`, the marks written into buf (mark_rows; the frames changed, else 0). */
static PyObject *batch_end(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    static const char func[] = "batch_end";
    static const arg_spec_t specs[] = {{"transitions", 8, 1, 1}, {"conditions", 8, 1, 1}};
    if (check_nargs(func, nargs, 5) < 0) return NULL;
    int rewrite = PyObject_IsTrue(args[4]);
    if (rewrite < 0) return NULL;
    Py_buffer buf;
    if (bytes_acquire(args[0], &buf, 1, "buf") < 0) return NULL;
    columns_hold_t hold;
    if (columns_acquire(args[1], &hold) < 0) {
        PyBuffer_Release(&buf);
        return NULL;
    }
    Py_buffer v[2];
    if (arrays_acquire(args + 2, specs, 2, v) < 0) {
        columns_release(&hold);
        PyBuffer_Release(&buf);
        return NULL;
    }
    PyObject *result = NULL;
    if (check_size(func, "transitions", &v[0], TRANSITIONS) < 0) goto done;
    if (check_size(func, "conditions", &v[1], CONDITIONS_SIZE) < 0) goto done;
    int64_t changed = 0;
    Py_ssize_t bad = -1;
    Py_BEGIN_ALLOW_THREADS;
    transitions_loop(&hold.c, v[0].buf);
    conditions_loop(hold.c.flags, hold.c.n, v[1].buf);
    if (rewrite) changed = mark_all(buf.buf, buf.len, &hold.c, &bad);
    Py_END_ALLOW_THREADS;
    if (changed < 0)
        PyErr_Format(PyExc_ValueError,
                     "row %zd: its IP header or VLAN tag offset is not inside buf (%zd bytes)",
                     bad, buf.len);
    else
        result = PyLong_FromLongLong(changed);
done:
    arrays_release(v, 2);
    columns_release(&hold);
    PyBuffer_Release(&buf);
    return result;
}

/* ---- module tables --------------------------------------------------------------- */

PyMethodDef engine_methods[] = {
    {"graph_begin", FASTCALL(graph_begin),
     "graph_begin(cols, ip_rows, malformed_first) -> (n_ip, bytes, n_malformed, "
     "not_ip_packets, not_ip_bytes): start a batch (every action ACTION_CONTINUE) and list "
     "the rows that enter the graph."},
    {"graph_scatter", FASTCALL(graph_scatter),
     "graph_scatter(action, wire_len, rows, nxt, pending, outcomes, aid) -> int: check and "
     "write action aid's verdicts; the position of the first invalid one (nothing written) "
     "or -1."},
    {"graph_rows_at", FASTCALL(graph_rows_at),
     "graph_rows_at(action, aid, out) -> int: the rows at action aid, ascending, into out; "
     "how many there are."},
    {"dscpmk_rows", FASTCALL(dscpmk_rows),
     "dscpmk_rows(rows, direction, ip_version, ds_byte, new_ds, dscp_map, per_dscp, "
     "counters, next_out, next_action): mark rows with a dscpmk action."},
    {"graph_markers", FASTCALL(graph_markers),
     "graph_markers(cols, markers, pending, outcomes, first) -> int: run a run of dscpmk "
     "actions (markers[k] = (dscp_map, per_dscp, counters, next_action) of action "
     "first + k) over the rows at them in one pass; -1, or the first marker whose next "
     "action is invalid (nothing written)."},
    {"dlcosmk_rows", FASTCALL(dlcosmk_rows),
     "dlcosmk_rows(rows, direction, vlan_off, new_pcp, counters, next_out, pcp, "
     "next_action, untagged): mark rows with a dlcosmk action."},
    {"batch_end", FASTCALL(batch_end),
     "batch_end(buf, cols, transitions, conditions, rewrite) -> int: the DSCP transitions, "
     "the packet conditions and (rewrite) the marks of a processed batch in one call; the "
     "frames changed."},
    {"dscp_transitions", FASTCALL(dscp_transitions),
     "dscp_transitions(cols, counts): count the (read, written) DSCP pairs of the packets "
     "written out."},
    {"packet_conditions", FASTCALL(packet_conditions),
     "packet_conditions(flags, counts): add the snap-length cuts, header cuts and offload "
     "lengths."},
    {NULL, NULL, 0, NULL},
};

int engine_constants(PyObject *module) {
    static const int_constant_t constants[] = {
        {"GRAPH_OUTCOME_SIZE", GRAPH_OUTCOME_SIZE},
        {"DSCPMK_COUNTERS", DSCPMK_COUNTERS},
        {"DLCOSMK_COUNTERS", DLCOSMK_COUNTERS},
        {"DSCP_TRANSITIONS", TRANSITIONS},
        {"PACKET_CONDITIONS", CONDITIONS_SIZE},
    };
    return add_int_constants(module, constants, sizeof constants / sizeof constants[0]);
}
