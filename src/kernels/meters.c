/* The IPQoS meters: tokenmt (RFC 2697 srTCM, RFC 2698 trTCM) and tswtclmt (RFC 2859),
 * with tswtclmt's seeded random source (splitmix64 + Lemire's bounded draw).
 *
 * docs/meters.md says what a meter does with each packet; the Python modules under
 * diffserv/engine/meters/ build the config arrays these kernels read and explain the
 * arithmetic (token_bucket.py: nanobit buckets that never overflow; time_window.py: the
 * window average in 64 bits with an exact 128-bit fallback). Everything is integer:
 * the same input always gives the same colours, counters and draws as the reference
 * model in tests/engine/meter_reference.py.
 *
 * A kernel checks its config and state against what the operator builds (and what the
 * kernel itself leaves behind) before it loops: the overflow proofs rely on those
 * bounds, so with them checked no signed operation below can overflow, every operand of
 * a division is non-negative (C's truncation is then Python's floor) and no divisor is
 * zero. Rows are checked against the columns before anything is written, so a bad call
 * changes nothing.
 */
#include "kernels.h"

typedef unsigned __int128 u128;

/* The colours (COLOUR_*), outcome slots (OUTCOME_*), EPACKETS_SLOT and NCOUNTERS come
 * from layout.h, generated from diffserv.policy.model and engine/meters/common.py:
 * counters[outcome] = packets, counters[3 + outcome] = bits, counters[6] = epackets. */
#define NOUTCOMES 3
#define ERROR_NEXT_ACTION ACTION_DROP

static const uint8_t OUTCOME_COLOURS[NOUTCOMES] = {COLOUR_GREEN, COLOUR_YELLOW, COLOUR_RED};

#define UINT32_MAX_I64 INT64_C(4294967295)
#define NS_PER_S INT64_C(1000000000)

/* tokenmt's config and state slots (TOK_CFG_*, TOK_ST_*) are in layout.h. */
#define NANOBITS_PER_BIT NS_PER_S
#define PACKET_BITS_CLAMP (INT64_C(1) << 33)
#define CAPACITY_MAX (UINT32_MAX_I64 * NANOBITS_PER_BIT)
#define COLOUR_MAP_SIZE 64

/* tswtclmt's config and state slots (TSW_CFG_*, TSW_ST_*) are in layout.h. */
#define AVG_RATE_MAX (INT64_C(1) << 62)
#define NS_PER_MS INT64_C(1000000)
#define MS_PER_S INT64_C(1000)
#define FAST_BITS_MAX (INT64_MAX / NS_PER_S) /* 9_223_372_036 */
#define FAST_ELAPSED_LIMIT (UINT64_C(1) << 62)
#define ELAPSED_CAP (UINT64_C(1) << 63)
#define PACKET_BITS_MAX (UINT32_MAX_I64 * 8)

/* splitmix64 (docs/meters.md, "Randomness"). */
#define SPLITMIX_GAMMA UINT64_C(0x9E3779B97F4A7C15)
#define SPLITMIX_MUL1 UINT64_C(0xBF58476D1CE4E5B9)
#define SPLITMIX_MUL2 UINT64_C(0x94D049BB133111EB)

/* ---- arguments ------------------------------------------------------------------- */

#define MAX_ARRAY_ARGS 14

/* Borrow the `n` array arguments `specs` describes; all or none (exception set). */
static int acquire_arrays(const char *func, PyObject *const *args, Py_ssize_t nargs,
                          const arg_spec_t *specs, int n, Py_buffer *views) {
    if (check_nargs(func, nargs, n) < 0) return -1;
    return arrays_acquire(args, specs, n, views);
}

/* The fixed-size arrays (config, state, counters, ...) must have exactly their size. */
static int check_sizes(const char *func, const arg_spec_t *specs, const Py_buffer *views,
                       const int *first, const Py_ssize_t *sizes, int count) {
    for (int k = 0; k < count; k++) {
        int i = first[k];
        if (ITEMS(views[i]) != sizes[k]) {
            PyErr_Format(PyExc_ValueError, "%s: %s has %zd items, not %zd", func, specs[i].name,
                         ITEMS(views[i]), sizes[k]);
            return -1;
        }
    }
    return 0;
}

/* The rows a column-sized argument allows: the shortest of them. */
static Py_ssize_t shortest(const Py_buffer *views, const int *which, int count) {
    Py_ssize_t n = PY_SSIZE_T_MAX;
    for (int k = 0; k < count; k++)
        if (ITEMS(views[which[k]]) < n) n = ITEMS(views[which[k]]);
    return n;
}

/* Whether every row index is in [0, limit): one pass before the loop, so a bad index is
 * refused before any state or output is touched (numba would have read past the column;
 * a negative index, which it wrapped, is refused too). Call without the GIL. */
static int rows_in_range(const int64_t *rows, Py_ssize_t n, Py_ssize_t limit) {
    uint64_t worst = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        uint64_t r = (uint64_t)rows[i]; /* a negative row becomes huge */
        worst = r > worst ? r : worst;
    }
    return n == 0 || worst < (uint64_t)limit;
}

/* An integer argument of a test hook, in [lo, hi] (numpy integers are accepted). */
static int int_arg(PyObject *obj, int64_t lo, int64_t hi, const char *what, int64_t *out) {
    PyObject *index = PyNumber_Index(obj);
    if (index == NULL) return -1;
    long long value = PyLong_AsLongLong(index);
    Py_DECREF(index);
    if (value == -1 && PyErr_Occurred()) return -1;
    if (value < lo || value > hi) {
        PyErr_Format(PyExc_ValueError, "%s must be in [%lld, %lld], not %lld", what,
                     (long long)lo, (long long)hi, value);
        return -1;
    }
    *out = value;
    return 0;
}

/* An unsigned 64-bit argument of a test hook (OverflowError outside [0, 2^64 − 1]). */
static int u64_arg(PyObject *obj, uint64_t *out) {
    PyObject *index = PyNumber_Index(obj);
    if (index == NULL) return -1;
    unsigned long long value = PyLong_AsUnsignedLongLong(index);
    Py_DECREF(index);
    if (value == (unsigned long long)-1 && PyErr_Occurred()) return -1;
    *out = value;
    return 0;
}

/* ---- what both meters share (engine/meters/common.py) ---------------------------- */

/* A row has an IP datagram length the meter can trust. */
static inline int is_meterable(uint8_t ip_version, uint8_t flags) {
    return ip_version != NOT_IP && (flags & FLAG_MALFORMED) == 0;
}

/* Packet size in bits: the IP datagram length × 8 (< 2^35). */
static inline int64_t packet_bits(uint32_t ip_len) { return (int64_t)ip_len * 8; }

/* Adds to a counter modulo 2^64, as numba's int64 did: a counter cannot realistically
 * wrap (2^63 bits), but if it ever did that must not be undefined behaviour. */
static inline void count(int64_t *counter, int64_t amount) {
    *counter = (int64_t)((uint64_t)*counter + (uint64_t)amount);
}

/* The outputs and counters of one call: what record_outcome/record_error write. */
typedef struct {
    const int32_t *next_ids;
    int64_t *counters;
    uint8_t *colour_out;
    int32_t *next_out;
} meter_out_t;

/* Count a metered packet, colour its row and route it to the outcome's action. */
static inline void record_outcome(const meter_out_t *out, int outcome, int64_t bits,
                                  int64_t row, Py_ssize_t position) {
    count(&out->counters[outcome], 1);
    count(&out->counters[3 + outcome], bits);
    out->colour_out[row] = OUTCOME_COLOURS[outcome];
    out->next_out[position] = out->next_ids[outcome];
}

/* Count a packet that cannot be metered; it leaves uncoloured, to ipp.drop. */
static inline void record_error(const meter_out_t *out, int64_t row, Py_ssize_t position) {
    count(&out->counters[EPACKETS_SLOT], 1);
    out->colour_out[row] = 0;
    out->next_out[position] = ERROR_NEXT_ACTION;
}

/* ---- tokenmt --------------------------------------------------------------------- */

/* fill_ns of token_bucket.py: the interval after which `rate` fills `capacity` from
 * empty, ceil(capacity / rate); 0 for a rate of 0 (operands are non-negative). */
static int64_t fill_ns(int64_t capacity, int64_t rate) {
    return rate <= 0 ? 0 : capacity / rate + (capacity % rate != 0);
}

/* Whether a tokenmt config is one TokenMeter builds: capacities of at most
 * (2^32 − 1) × 1e9 nanobits, rates of at most 2^32 − 1 bit/s and the fill intervals
 * of those. The no-overflow proof (token_bucket.py) needs exactly these bounds. */
static int token_config_ok(const int64_t *cfg) {
    int64_t c_cap = cfg[TOK_CFG_COMMITTED_CAPACITY], p_cap = cfg[TOK_CFG_PEAK_CAPACITY];
    int64_t c_rate = cfg[TOK_CFG_COMMITTED_RATE], p_rate = cfg[TOK_CFG_PEAK_RATE];
    if (c_cap < 0 || c_cap > CAPACITY_MAX || p_cap < 0 || p_cap > CAPACITY_MAX) return 0;
    if (c_rate < 0 || c_rate > UINT32_MAX_I64 || p_rate < 0 || p_rate > UINT32_MAX_I64)
        return 0;
    if (cfg[TOK_CFG_TWO_RATE] != 0)
        return cfg[TOK_CFG_COMMITTED_FILL_NS] == fill_ns(c_cap, c_rate) &&
               cfg[TOK_CFG_PEAK_FILL_NS] == fill_ns(p_cap, p_rate);
    /* single-rate: the committed rate feeds C, and E through C's overflow */
    return cfg[TOK_CFG_COMMITTED_FILL_NS] == fill_ns(c_cap + p_cap, c_rate);
}

/* Whether a tokenmt state is one the kernel leaves: buckets within their capacity. */
static int token_state_ok(const int64_t *st, const int64_t *cfg) {
    return st[TOK_ST_COMMITTED] >= 0 && st[TOK_ST_COMMITTED] <= cfg[TOK_CFG_COMMITTED_CAPACITY] &&
           st[TOK_ST_PEAK] >= 0 && st[TOK_ST_PEAK] <= cfg[TOK_CFG_PEAK_CAPACITY];
}

/* Nanobits a rate delivers over `elapsed` ns, capped at the fill interval (so the
 * product stays below 2^63). */
static inline int64_t arrived(int64_t rate, uint64_t elapsed, int64_t fill) {
    if (elapsed >= (uint64_t)fill) return rate * fill;
    return rate * (int64_t)elapsed;
}

/* The level after `arrival` nanobits reach a bucket; the overflow goes to *spill.
 * Compared with the room left, never added first, so no sum exceeds the arrival. */
static inline int64_t top_up(int64_t level, int64_t capacity, int64_t arrival, int64_t *spill) {
    int64_t room = capacity - level;
    if (arrival >= room) {
        *spill = arrival - room;
        return capacity;
    }
    *spill = 0;
    return level + arrival;
}

/* The columns and arrays token_meter_kernel reads. */
typedef struct {
    const int64_t *rows;
    Py_ssize_t nrows;
    const int64_t *ts_ns;
    const uint32_t *ip_len;
    const uint8_t *ip_version;
    const uint8_t *flags;
    const uint8_t *ds_byte;
    const int16_t *new_ds;
    const uint8_t *colour_map;
    const int64_t *config;
    int64_t *state;
} token_in_t;

static void token_meter_loop(const token_in_t *in, const meter_out_t *out) {
    const int64_t *cfg = in->config;
    const int two_rate = cfg[TOK_CFG_TWO_RATE] != 0;
    const int aware = cfg[TOK_CFG_COLOUR_AWARE] != 0;
    const int three = cfg[TOK_CFG_THREE_OUTCOMES] != 0;
    const int64_t c_cap = cfg[TOK_CFG_COMMITTED_CAPACITY], p_cap = cfg[TOK_CFG_PEAK_CAPACITY];
    const int64_t c_rate = cfg[TOK_CFG_COMMITTED_RATE], p_rate = cfg[TOK_CFG_PEAK_RATE];
    const int64_t c_fill = cfg[TOK_CFG_COMMITTED_FILL_NS], p_fill = cfg[TOK_CFG_PEAK_FILL_NS];
    int started = in->state[TOK_ST_STARTED] != 0;
    int64_t last = in->state[TOK_ST_LAST_NS];
    int64_t tokens_c = in->state[TOK_ST_COMMITTED];
    int64_t tokens_p = in->state[TOK_ST_PEAK];

    for (Py_ssize_t i = 0; i < in->nrows; i++) {
        const int64_t row = in->rows[i];
        if (!is_meterable(in->ip_version[row], in->flags[row])) {
            record_error(out, row, i);
            continue;
        }
        const int64_t now = in->ts_ns[row];
        const int64_t bits = packet_bits(in->ip_len[row]);
        /* a packet above 2^32 − 1 bits fits no bucket: the clamp never changes an outcome */
        const int64_t need =
            (bits < PACKET_BITS_CLAMP ? bits : PACKET_BITS_CLAMP) * NANOBITS_PER_BIT;

        if (!started) {
            started = 1;
            last = now;
            tokens_c = c_cap;
            tokens_p = p_cap;
        } else if (now > last) {
            /* the exact difference, even across the whole int64 range */
            const uint64_t elapsed = (uint64_t)now - (uint64_t)last;
            int64_t spill;
            if (two_rate) {
                tokens_c = top_up(tokens_c, c_cap, arrived(c_rate, elapsed, c_fill), &spill);
                tokens_p = top_up(tokens_p, p_cap, arrived(p_rate, elapsed, p_fill), &spill);
            } else {
                tokens_c = top_up(tokens_c, c_cap, arrived(c_rate, elapsed, c_fill), &spill);
                if (spill > 0) tokens_p = top_up(tokens_p, p_cap, spill, &spill);
            }
            last = now;
        }

        int pre = COLOUR_GREEN;
        if (aware) {
            const int16_t marked = in->new_ds[row];
            const int ds = marked >= 0 ? marked : in->ds_byte[row];
            pre = in->colour_map[(ds >> 2) & 63];
        }

        int outcome;
        if (two_rate) {
            if ((aware && pre == COLOUR_RED) || need > tokens_p) {
                outcome = OUTCOME_RED;
            } else if ((aware && pre == COLOUR_YELLOW) || need > tokens_c) {
                outcome = OUTCOME_YELLOW;
                tokens_p -= need;
            } else {
                outcome = OUTCOME_GREEN;
                tokens_c -= need;
                tokens_p -= need;
            }
        } else if (pre == COLOUR_GREEN && need <= tokens_c) {
            outcome = OUTCOME_GREEN;
            tokens_c -= need;
        } else if (three && (pre == COLOUR_GREEN || pre == COLOUR_YELLOW) && need <= tokens_p) {
            outcome = OUTCOME_YELLOW;
            tokens_p -= need;
        } else {
            outcome = OUTCOME_RED;
        }
        record_outcome(out, outcome, bits, row, i);
    }

    in->state[TOK_ST_STARTED] = started;
    in->state[TOK_ST_LAST_NS] = last;
    in->state[TOK_ST_COMMITTED] = tokens_c;
    in->state[TOK_ST_PEAK] = tokens_p;
}

enum {
    TOK_A_ROWS,
    TOK_A_TS_NS,
    TOK_A_IP_LEN,
    TOK_A_IP_VERSION,
    TOK_A_FLAGS,
    TOK_A_DS_BYTE,
    TOK_A_NEW_DS,
    TOK_A_COLOUR_MAP,
    TOK_A_CONFIG,
    TOK_A_NEXT_IDS,
    TOK_A_STATE,
    TOK_A_COUNTERS,
    TOK_A_COLOUR_OUT,
    TOK_A_NEXT_OUT,
    TOK_NARGS
};

static const arg_spec_t TOKEN_ARGS[TOK_NARGS] = {
    {"rows", 8, 1, 0},       {"ts_ns", 8, 1, 0},      {"ip_len", 4, 0, 0},
    {"ip_version", 1, 0, 0}, {"flags", 1, 0, 0},      {"ds_byte", 1, 0, 0},
    {"new_ds", 2, 1, 0},     {"colour_map", 1, 0, 0}, {"config", 8, 1, 0},
    {"next_ids", 4, 1, 0},   {"state", 8, 1, 1},      {"counters", 8, 1, 1},
    {"colour_out", 1, 0, 1}, {"next_out", 4, 1, 1},
};

static PyObject *token_meter_kernel(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    static const char func[] = "token_meter_kernel";
    Py_buffer v[TOK_NARGS];
    if (acquire_arrays(func, args, nargs, TOKEN_ARGS, TOK_NARGS, v) < 0) return NULL;

    static const int fixed[] = {TOK_A_COLOUR_MAP, TOK_A_CONFIG, TOK_A_NEXT_IDS, TOK_A_STATE,
                                TOK_A_COUNTERS};
    const Py_ssize_t sizes[] = {COLOUR_MAP_SIZE, TOK_CONFIG_SIZE, NOUTCOMES, TOK_STATE_SIZE,
                                NCOUNTERS};
    static const int per_row[] = {TOK_A_TS_NS,  TOK_A_IP_LEN,  TOK_A_IP_VERSION, TOK_A_FLAGS,
                                  TOK_A_DS_BYTE, TOK_A_NEW_DS, TOK_A_COLOUR_OUT};
    token_in_t in = {
        .rows = v[TOK_A_ROWS].buf,
        .nrows = ITEMS(v[TOK_A_ROWS]),
        .ts_ns = v[TOK_A_TS_NS].buf,
        .ip_len = v[TOK_A_IP_LEN].buf,
        .ip_version = v[TOK_A_IP_VERSION].buf,
        .flags = v[TOK_A_FLAGS].buf,
        .ds_byte = v[TOK_A_DS_BYTE].buf,
        .new_ds = v[TOK_A_NEW_DS].buf,
        .colour_map = v[TOK_A_COLOUR_MAP].buf,
        .config = v[TOK_A_CONFIG].buf,
        .state = v[TOK_A_STATE].buf,
    };
    meter_out_t out = {
        .next_ids = v[TOK_A_NEXT_IDS].buf,
        .counters = v[TOK_A_COUNTERS].buf,
        .colour_out = v[TOK_A_COLOUR_OUT].buf,
        .next_out = v[TOK_A_NEXT_OUT].buf,
    };
    if (check_sizes(func, TOKEN_ARGS, v, fixed, sizes, 5) < 0) goto fail;
    if (ITEMS(v[TOK_A_NEXT_OUT]) != in.nrows) {
        PyErr_Format(PyExc_ValueError, "%s: next_out has %zd items for %zd rows", func,
                     ITEMS(v[TOK_A_NEXT_OUT]), in.nrows);
        goto fail;
    }
    if (!token_config_ok(in.config)) {
        PyErr_Format(PyExc_ValueError, "%s: config is not one TokenMeter builds", func);
        goto fail;
    }
    if (!token_state_ok(in.state, in.config)) {
        PyErr_Format(PyExc_ValueError, "%s: state holds a bucket outside its capacity", func);
        goto fail;
    }
    Py_ssize_t limit = shortest(v, per_row, (int)(sizeof per_row / sizeof per_row[0]));
    int rows_ok;
    Py_BEGIN_ALLOW_THREADS;
    rows_ok = rows_in_range(in.rows, in.nrows, limit);
    if (rows_ok) token_meter_loop(&in, &out);
    Py_END_ALLOW_THREADS;
    if (!rows_ok) {
        PyErr_Format(PyExc_IndexError, "%s: a row is outside [0, %zd)", func, limit);
        goto fail;
    }
    arrays_release(v, TOK_NARGS);
    Py_RETURN_NONE;
fail:
    arrays_release(v, TOK_NARGS);
    return NULL;
}

/* ---- the random source of tswtclmt ----------------------------------------------- */

/* Advance the splitmix64 counter and return the next 64-bit output. */
static inline uint64_t next_u64(uint64_t *state) {
    uint64_t z = (*state += SPLITMIX_GAMMA);
    z = (z ^ (z >> 30)) * SPLITMIX_MUL1;
    z = (z ^ (z >> 27)) * SPLITMIX_MUL2;
    return z ^ (z >> 31);
}

/* Uniform integer in [0, upper] (Lemire's nearly divisionless multiply-and-reject: the
 * high half of next × span, redrawn while the low half falls in the biased sliver).
 * For upper = 2^64 − 1 the span wraps to 0 and the result is 0, as it always was. */
static inline uint64_t draw_inclusive(uint64_t *state, uint64_t upper) {
    const uint64_t span = upper + 1;
    u128 product = (u128)next_u64(state) * span;
    if ((uint64_t)product < span) {
        const uint64_t threshold = (0 - span) % span; /* 2^64 mod span */
        while ((uint64_t)product < threshold) product = (u128)next_u64(state) * span;
    }
    return (uint64_t)(product >> 64);
}

/* ---- tswtclmt -------------------------------------------------------------------- */

/* The new average in 128 bits: exact for avg, bits < 2^63, window_ms < 2^32 and any
 * elapsed (avg × window_ms < 2^95, bits_in_win < 2^86, × 1e9 < 2^116), clamped at
 * AVG_RATE_MAX. The elapsed time is capped at 2^63 ns, so with window_ns < 2^63 the
 * divisor fits 64 bits and, window_ns > 0, is never 0. */
static int64_t next_avg_rate_wide(int64_t avg, int64_t window_ms, int64_t bits, uint64_t elapsed,
                                  int64_t window_ns) {
    const u128 bits_in_window =
        (u128)(uint64_t)avg * (uint64_t)window_ms / MS_PER_S + (uint64_t)bits;
    const uint64_t delta = (elapsed < ELAPSED_CAP ? elapsed : ELAPSED_CAP) + (uint64_t)window_ns;
    const u128 rate = bits_in_window * NS_PER_S / delta;
    return rate > (u128)AVG_RATE_MAX ? AVG_RATE_MAX : (int64_t)rate;
}

/* The new average: in int64 when avg × window_ms, bits_in_win × 1e9 and the elapsed time
 * all fit (avg ≤ fast_avg_max = INT64_MAX / window_ms), else the same floor in 128 bits.
 * The fast result is below 2^44 (≤ 9.2e9 × 1e9 / 1e6), so it needs no clamp. */
static inline int64_t next_avg_rate(int64_t avg, int64_t window_ms, int64_t bits, uint64_t elapsed,
                                    int64_t window_ns, int64_t fast_avg_max) {
    if (avg <= fast_avg_max && elapsed < FAST_ELAPSED_LIMIT) {
        const int64_t bits_in_window = avg * window_ms / MS_PER_S + bits;
        if (bits_in_window <= FAST_BITS_MAX)
            return bits_in_window * NS_PER_S / ((int64_t)elapsed + window_ns);
    }
    return next_avg_rate_wide(avg, window_ms, bits, elapsed, window_ns);
}

/* Whether a tswtclmt config is one TimeSlidingWindowMeter builds: rates of at most
 * 2^32 − 1 bit/s, a window of 1 to 2^32 − 1 ms and the two values derived from it. */
static int tsw_config_ok(const int64_t *cfg) {
    int64_t c_rate = cfg[TSW_CFG_COMMITTED_RATE], p_rate = cfg[TSW_CFG_PEAK_RATE];
    int64_t window_ms = cfg[TSW_CFG_WINDOW_MS];
    if (c_rate < 0 || c_rate > UINT32_MAX_I64 || p_rate < 0 || p_rate > UINT32_MAX_I64) return 0;
    if (window_ms < 1 || window_ms > UINT32_MAX_I64) return 0;
    return cfg[TSW_CFG_WINDOW_NS] == window_ms * NS_PER_MS &&
           cfg[TSW_CFG_FAST_AVG_MAX] == INT64_MAX / window_ms;
}

/* The columns and arrays tsw_meter_kernel reads. */
typedef struct {
    const int64_t *rows;
    Py_ssize_t nrows;
    const int64_t *ts_ns;
    const uint32_t *ip_len;
    const uint8_t *ip_version;
    const uint8_t *flags;
    const int64_t *config;
    int64_t *state;
    uint64_t *rng;
} tsw_in_t;

static void tsw_meter_loop(const tsw_in_t *in, const meter_out_t *out) {
    const int64_t *cfg = in->config;
    const int64_t c_rate = cfg[TSW_CFG_COMMITTED_RATE], p_rate = cfg[TSW_CFG_PEAK_RATE];
    const int64_t window_ms = cfg[TSW_CFG_WINDOW_MS], window_ns = cfg[TSW_CFG_WINDOW_NS];
    const int64_t fast_avg_max = cfg[TSW_CFG_FAST_AVG_MAX];
    int started = in->state[TSW_ST_STARTED] != 0;
    int64_t front = in->state[TSW_ST_WIN_FRONT_NS];
    int64_t avg = in->state[TSW_ST_AVG_RATE];
    uint64_t rng = in->rng[0];

    for (Py_ssize_t i = 0; i < in->nrows; i++) {
        const int64_t row = in->rows[i];
        if (!is_meterable(in->ip_version[row], in->flags[row])) {
            record_error(out, row, i);
            continue;
        }
        const int64_t now = in->ts_ns[row];
        const int64_t bits = packet_bits(in->ip_len[row]);
        if (!started) {
            started = 1;
            front = now;
            avg = c_rate;
        }
        uint64_t elapsed = 0; /* time going backwards counts as none */
        if (now > front) {
            elapsed = (uint64_t)now - (uint64_t)front;
            front = now;
        }
        avg = next_avg_rate(avg, window_ms, bits, elapsed, window_ns, fast_avg_max);

        int outcome = OUTCOME_GREEN;
        if (avg > c_rate) {
            const int64_t draw = (int64_t)draw_inclusive(&rng, (uint64_t)avg); /* ≤ avg */
            if (avg > p_rate && avg - p_rate >= draw)
                outcome = OUTCOME_RED;
            else if (avg - c_rate >= draw)
                outcome = OUTCOME_YELLOW;
        }
        record_outcome(out, outcome, bits, row, i);
    }

    in->state[TSW_ST_STARTED] = started;
    in->state[TSW_ST_WIN_FRONT_NS] = front;
    in->state[TSW_ST_AVG_RATE] = avg;
    in->rng[0] = rng;
}

enum {
    TSW_A_ROWS,
    TSW_A_TS_NS,
    TSW_A_IP_LEN,
    TSW_A_IP_VERSION,
    TSW_A_FLAGS,
    TSW_A_CONFIG,
    TSW_A_NEXT_IDS,
    TSW_A_STATE,
    TSW_A_RNG,
    TSW_A_COUNTERS,
    TSW_A_COLOUR_OUT,
    TSW_A_NEXT_OUT,
    TSW_NARGS
};

static const arg_spec_t TSW_ARGS[TSW_NARGS] = {
    {"rows", 8, 1, 0},     {"ts_ns", 8, 1, 0},    {"ip_len", 4, 0, 0},
    {"ip_version", 1, 0, 0}, {"flags", 1, 0, 0},  {"config", 8, 1, 0},
    {"next_ids", 4, 1, 0}, {"state", 8, 1, 1},    {"rng", 8, 0, 1},
    {"counters", 8, 1, 1}, {"colour_out", 1, 0, 1}, {"next_out", 4, 1, 1},
};

static PyObject *tsw_meter_kernel(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    static const char func[] = "tsw_meter_kernel";
    Py_buffer v[TSW_NARGS];
    if (acquire_arrays(func, args, nargs, TSW_ARGS, TSW_NARGS, v) < 0) return NULL;

    static const int fixed[] = {TSW_A_CONFIG, TSW_A_NEXT_IDS, TSW_A_STATE, TSW_A_RNG,
                                TSW_A_COUNTERS};
    const Py_ssize_t sizes[] = {TSW_CONFIG_SIZE, NOUTCOMES, TSW_STATE_SIZE, 1, NCOUNTERS};
    static const int per_row[] = {TSW_A_TS_NS, TSW_A_IP_LEN, TSW_A_IP_VERSION, TSW_A_FLAGS,
                                  TSW_A_COLOUR_OUT};
    tsw_in_t in = {
        .rows = v[TSW_A_ROWS].buf,
        .nrows = ITEMS(v[TSW_A_ROWS]),
        .ts_ns = v[TSW_A_TS_NS].buf,
        .ip_len = v[TSW_A_IP_LEN].buf,
        .ip_version = v[TSW_A_IP_VERSION].buf,
        .flags = v[TSW_A_FLAGS].buf,
        .config = v[TSW_A_CONFIG].buf,
        .state = v[TSW_A_STATE].buf,
        .rng = v[TSW_A_RNG].buf,
    };
    meter_out_t out = {
        .next_ids = v[TSW_A_NEXT_IDS].buf,
        .counters = v[TSW_A_COUNTERS].buf,
        .colour_out = v[TSW_A_COLOUR_OUT].buf,
        .next_out = v[TSW_A_NEXT_OUT].buf,
    };
    if (check_sizes(func, TSW_ARGS, v, fixed, sizes, 5) < 0) goto fail;
    if (ITEMS(v[TSW_A_NEXT_OUT]) != in.nrows) {
        PyErr_Format(PyExc_ValueError, "%s: next_out has %zd items for %zd rows", func,
                     ITEMS(v[TSW_A_NEXT_OUT]), in.nrows);
        goto fail;
    }
    if (!tsw_config_ok(in.config)) {
        PyErr_Format(PyExc_ValueError, "%s: config is not one TimeSlidingWindowMeter builds",
                     func);
        goto fail;
    }
    /* the kernel only ever leaves an average in [0, AVG_RATE_MAX] */
    if (in.state[TSW_ST_AVG_RATE] < 0 || in.state[TSW_ST_AVG_RATE] > AVG_RATE_MAX) {
        PyErr_Format(PyExc_ValueError, "%s: state holds an average outside [0, 2^62]", func);
        goto fail;
    }
    Py_ssize_t limit = shortest(v, per_row, (int)(sizeof per_row / sizeof per_row[0]));
    int rows_ok;
    Py_BEGIN_ALLOW_THREADS;
    rows_ok = rows_in_range(in.rows, in.nrows, limit);
    if (rows_ok) tsw_meter_loop(&in, &out);
    Py_END_ALLOW_THREADS;
    if (!rows_ok) {
        PyErr_Format(PyExc_IndexError, "%s: a row is outside [0, %zd)", func, limit);
        goto fail;
    }
    arrays_release(v, TSW_NARGS);
    Py_RETURN_NONE;
fail:
    arrays_release(v, TSW_NARGS);
    return NULL;
}

/* ---- test hooks: the average step and the random source, one call at a time ------- */

/* The average step's operands within the bounds its exactness is proved for. */
static int average_args(PyObject *const *args, int64_t *avg, int64_t *window_ms, int64_t *bits,
                        uint64_t *elapsed) {
    if (int_arg(args[0], 0, INT64_MAX, "avg", avg) < 0) return -1;
    if (int_arg(args[1], 1, UINT32_MAX_I64, "window_ms", window_ms) < 0) return -1;
    if (int_arg(args[2], 0, INT64_MAX, "bits", bits) < 0) return -1;
    return u64_arg(args[3], elapsed);
}

static PyObject *tsw_next_avg_rate(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    int64_t avg, window_ms, bits;
    uint64_t elapsed;
    if (nargs != 4) {
        PyErr_Format(PyExc_TypeError, "tsw_next_avg_rate() takes 4 arguments (%zd given)", nargs);
        return NULL;
    }
    if (average_args(args, &avg, &window_ms, &bits, &elapsed) < 0) return NULL;
    /* the fast path's bits_in_win must fit int64: avg × window_ms / 1000 < 2^54 */
    if (bits > (INT64_C(1) << 62)) {
        PyErr_SetString(PyExc_ValueError, "bits must be in [0, 2^62]");
        return NULL;
    }
    return PyLong_FromLongLong(next_avg_rate(avg, window_ms, bits, elapsed, window_ms * NS_PER_MS,
                                             INT64_MAX / window_ms));
}

static PyObject *tsw_next_avg_rate_wide(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    int64_t avg, window_ms, bits, window_ns;
    uint64_t elapsed;
    if (nargs != 5) {
        PyErr_Format(PyExc_TypeError, "tsw_next_avg_rate_wide() takes 5 arguments (%zd given)",
                     nargs);
        return NULL;
    }
    if (average_args(args, &avg, &window_ms, &bits, &elapsed) < 0) return NULL;
    if (int_arg(args[4], 1, INT64_MAX, "window_ns", &window_ns) < 0) return NULL;
    return PyLong_FromLongLong(next_avg_rate_wide(avg, window_ms, bits, elapsed, window_ns));
}

/* The one-item uint64 state array of the random source, borrowed writable. */
static int rng_acquire(PyObject *obj, Py_buffer *view) {
    if (array_acquire(obj, view, 8, 0, 1, "rng") < 0) return -1;
    if (ITEMS(*view) != 1) {
        PyErr_Format(PyExc_ValueError, "rng has %zd items, not 1", ITEMS(*view));
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

static PyObject *tsw_next_u64(PyObject *self, PyObject *rng) {
    Py_buffer view;
    if (rng_acquire(rng, &view) < 0) return NULL;
    uint64_t value = next_u64(view.buf);
    PyBuffer_Release(&view);
    return PyLong_FromUnsignedLongLong(value);
}

static PyObject *tsw_draw_inclusive(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    uint64_t upper;
    Py_buffer view;
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "tsw_draw_inclusive() takes 2 arguments (%zd given)", nargs);
        return NULL;
    }
    if (u64_arg(args[1], &upper) < 0) return NULL;
    if (rng_acquire(args[0], &view) < 0) return NULL;
    uint64_t value = draw_inclusive(view.buf, upper);
    PyBuffer_Release(&view);
    return PyLong_FromUnsignedLongLong(value);
}

PyMethodDef meters_methods[] = {
    {"token_meter_kernel", FASTCALL(token_meter_kernel),
     "token_meter_kernel(rows, ts_ns, ip_len, ip_version, flags, ds_byte, new_ds, colour_map, "
     "config, next_ids, state, counters, colour_out, next_out): meter rows with tokenmt."},
    {"tsw_meter_kernel", FASTCALL(tsw_meter_kernel),
     "tsw_meter_kernel(rows, ts_ns, ip_len, ip_version, flags, config, next_ids, state, rng, "
     "counters, colour_out, next_out): meter rows with tswtclmt."},
    {"tsw_next_avg_rate", FASTCALL(tsw_next_avg_rate),
     "tsw_next_avg_rate(avg, window_ms, bits, elapsed) -> int: the kernel's average step."},
    {"tsw_next_avg_rate_wide", FASTCALL(tsw_next_avg_rate_wide),
     "tsw_next_avg_rate_wide(avg, window_ms, bits, elapsed, window_ns) -> int: the step in "
     "128 bits."},
    {"tsw_next_u64", tsw_next_u64, METH_O,
     "tsw_next_u64(rng) -> int: advance the splitmix64 state rng[0], return its output."},
    {"tsw_draw_inclusive", FASTCALL(tsw_draw_inclusive),
     "tsw_draw_inclusive(rng, upper) -> int: a uniform draw in [0, upper] (Lemire)."},
    {NULL, NULL, 0, NULL},
};

int meters_constants(PyObject *module) {
    static const int_constant_t constants[] = {
        {"METER_GREEN", COLOUR_GREEN},
        {"METER_YELLOW", COLOUR_YELLOW},
        {"METER_RED", COLOUR_RED},
        {"TOKEN_CONFIG_SIZE", TOK_CONFIG_SIZE},
        {"TOKEN_STATE_SIZE", TOK_STATE_SIZE},
        {"TSW_CONFIG_SIZE", TSW_CONFIG_SIZE},
        {"TSW_STATE_SIZE", TSW_STATE_SIZE},
    };
    return add_int_constants(module, constants, sizeof constants / sizeof constants[0]);
}
