/* ipgpc: the tuple-space search over a FilterIndex (built by engine/modules/ipgpc_index.py).
 *
 * A filter instance is a key of NKEY 64-bit words (addresses, ports, ...) under a shape's
 * masks. Python groups the instances into shapes and lays out one open-addressing hash
 * table per shape; this file owns what a key *is*: the field order, which fields a packet
 * can lack, and the hash. The hash is computed only here, by shape_hash(), both when the
 * tables are built (instance_hashes) and when a packet probes them (classify_rows), so
 * the two sides cannot drift apart.
 */
#include "kernels.h"

/* The key words, in the order of a FilterIndex's value and mask rows (exported: the
 * Python side builds its rows with these numbers). */
enum {
    F_SADDR_HI, F_SADDR_LO, F_DADDR_HI, F_DADDR_LO, F_PROTO, F_SPORT, F_DPORT,
    F_DSFIELD, F_IFNAME, F_UID, F_PROJID, NKEY
};
#define U32_ALL 0xFFFFFFFFu
#define BIT(k) ((int64_t)1 << (k))
/* Fields a packet can lack (no protocol, no ports, an unknown interface, user or project):
 * a shape using one never matches such a packet, whatever its filters' values. */
#define PRESENCE_BITS \
    (BIT(F_PROTO) | BIT(F_SPORT) | BIT(F_DPORT) | BIT(F_IFNAME) | BIT(F_UID) | BIT(F_PROJID))
/* A packet cut inside its IP header (FLAG_HEADER_CUT) has no addresses: a shape testing
 * any address word cannot match it (the policy language has no /0 prefix). */
#define ADDRESS_BITS (BIT(F_SADDR_HI) | BIT(F_SADDR_LO) | BIT(F_DADDR_HI) | BIT(F_DADDR_LO))

static const uint64_t HASH_MIX = 0x9E3779B97F4A7C15ull;
static const uint64_t HASH_SEED = 0x2545F4914F6CDD1Dull;

static inline uint64_t mix(uint64_t h, uint64_t v) {
    h = (h ^ v) * HASH_MIX;
    return h ^ (h >> 31);
}

/* How a shape hashes and compares a key: the fields its mask row uses (nonzero mask),
 * ascending, and their masks in the same order. */
typedef struct {
    int nf;
    uint8_t fields[NKEY];
    uint64_t masks[NKEY];
} recipe_t;

static void recipe_of(const uint64_t *mask, recipe_t *r) {
    r->nf = 0;
    for (int k = 0; k < NKEY; k++)
        if (mask[k] != 0) {
            r->fields[r->nf] = (uint8_t)k;
            r->masks[r->nf++] = mask[k];
        }
}

/* THE hash of a key under a shape: its masked words, in ascending field order; the fields
 * the shape does not use add nothing. */
static inline uint64_t shape_hash(const uint64_t *key, const recipe_t *r) {
    uint64_t h = HASH_SEED;
    for (int q = 0; q < r->nf; q++) h = mix(h, key[r->fields[q]] & r->masks[q]);
    return h;
}

/* ---- instance_hashes ---------------------------------------------------------------- */

/* instance_hashes(values, group, gmask, out): out[i] = the hash of instance i's values
 * under its group's masks. */
static PyObject *py_instance_hashes(PyObject *self, PyObject *args) {
    PyObject *values_o, *group_o, *gmask_o, *out_o;
    if (!PyArg_ParseTuple(args, "OOOO:instance_hashes", &values_o, &group_o, &gmask_o, &out_o))
        return NULL;
    Py_buffer values, group, gmask, out;
    if (matrix_acquire(values_o, &values, NKEY, 0, 0, "values") < 0) return NULL;
    if (array_acquire(group_o, &group, 8, 1, 0, "group") < 0) goto fail_values;
    if (matrix_acquire(gmask_o, &gmask, NKEY, 0, 0, "gmask") < 0) goto fail_group;
    if (array_acquire(out_o, &out, 8, 0, 1, "out") < 0) goto fail_gmask;
    Py_ssize_t n = values.shape[0], ngroups = gmask.shape[0];
    if (ITEMS(group) != n || ITEMS(out) != n) {
        PyErr_SetString(PyExc_ValueError, "values, group and out must have one row per instance");
        goto fail;
    }
    const int64_t *g = group.buf;
    for (Py_ssize_t i = 0; i < n; i++)
        if (g[i] < 0 || g[i] >= ngroups) {
            PyErr_Format(PyExc_ValueError, "group[%zd] = %lld is not a group", i, (long long)g[i]);
            goto fail;
        }
    const uint64_t *v = values.buf, *m = gmask.buf;
    uint64_t *h = out.buf;
    for (Py_ssize_t i = 0; i < n; i++) {
        recipe_t recipe;
        recipe_of(m + g[i] * NKEY, &recipe);
        h[i] = shape_hash(v + i * NKEY, &recipe);
    }
    PyBuffer_Release(&out);
    PyBuffer_Release(&gmask);
    PyBuffer_Release(&group);
    PyBuffer_Release(&values);
    Py_RETURN_NONE;
fail:
    PyBuffer_Release(&out);
fail_gmask:
    PyBuffer_Release(&gmask);
fail_group:
    PyBuffer_Release(&group);
fail_values:
    PyBuffer_Release(&values);
    return NULL;
}

/* ---- the index, borrowed ------------------------------------------------------------ */

/* The FilterIndex attributes the kernel reads, by name (so the NamedTuple's field order
 * is free): the first NVEC are vectors, the last two the matrices. */
enum {
    X_G_FAMILY, X_G_MIN_RANK, X_G_TAB_OFF, X_G_TAB_MASK, X_SLOT_HASH, X_SLOT_START,
    X_SLOT_LEN, X_G_BITS_OFF, X_G_BITS_SHIFT, X_HASH_BITS, X_CAND, X_I_DIR, X_I_RANK,
    X_I_CLASS, NVEC, X_G_MASK = NVEC, X_I_VALUE, NINDEX
};
static const struct { const char *name; int is_signed; } INDEX_FIELDS[NINDEX] = {
    [X_G_FAMILY] = {"g_family", 1},     [X_G_MIN_RANK] = {"g_min_rank", 1},
    [X_G_TAB_OFF] = {"g_tab_off", 1},   [X_G_TAB_MASK] = {"g_tab_mask", 1},
    [X_SLOT_HASH] = {"slot_hash", 0},   [X_SLOT_START] = {"slot_start", 1},
    [X_SLOT_LEN] = {"slot_len", 1},     [X_G_BITS_OFF] = {"g_bits_off", 1},
    [X_G_BITS_SHIFT] = {"g_bits_shift", 1}, [X_HASH_BITS] = {"hash_bits", 0},
    [X_CAND] = {"cand", 1},             [X_I_DIR] = {"i_dir", 1},
    [X_I_RANK] = {"i_rank", 1},         [X_I_CLASS] = {"i_class", 1},
    [X_G_MASK] = {"g_mask", 0},         [X_I_VALUE] = {"i_value", 0},
};

/* One shape as the search wants it: what decides whether to probe it first, then its
 * table. */
typedef struct {
    int64_t family; /* 0 = both, 4, 6 */
    int64_t required; /* bit k: the packet must have field k */
    const uint64_t *bits; /* the bitmap of the hashes in the table */
    int bits_shift;
    recipe_t recipe;
    int64_t min_rank;
    int64_t tab_off;
    uint64_t tab_mask;
} shape_t;

/* 64 consecutive shapes as bit sets, to find without a branch per shape the ones worth
 * hashing for a packet: those whose family fits it and whose fields it has. */
typedef struct {
    uint64_t fits4, fits6; /* the shapes an IPv4 (IPv6) packet fits */
    uint64_t need[NKEY]; /* the shapes a packet lacking field k cannot match */
    int64_t needed; /* bit k: need[k] is not empty (packets mostly lack fields none needs) */
} block_t;

typedef struct {
    Py_buffer views[NINDEX];
    int held;
    shape_t *shapes;
    block_t *blocks;
    Py_ssize_t ngroups, nslots, ncand, ninst;
    const uint64_t *slot_hash, *i_value;
    const int64_t *slot_start, *slot_len, *cand, *i_dir, *i_rank, *i_class;
} index_t;

static void index_release(index_t *x) {
    for (int i = 0; i < x->held; i++) PyBuffer_Release(&x->views[i]);
    x->held = 0;
    PyMem_Free(x->shapes);
    x->shapes = NULL;
    PyMem_Free(x->blocks);
    x->blocks = NULL;
}

static int index_fail(index_t *x, const char *message) {
    PyErr_Format(PyExc_ValueError, "FilterIndex: %s", message);
    index_release(x);
    return -1;
}

static int borrow_index_arrays(PyObject *obj, index_t *x) {
    for (int i = 0; i < NINDEX; i++) {
        PyObject *arr = PyObject_GetAttrString(obj, INDEX_FIELDS[i].name);
        if (arr == NULL) return -1;
        int rc = i < NVEC ? array_acquire(arr, &x->views[i], 8, INDEX_FIELDS[i].is_signed, 0,
                                          INDEX_FIELDS[i].name)
                          : matrix_acquire(arr, &x->views[i], NKEY, INDEX_FIELDS[i].is_signed,
                                           0, INDEX_FIELDS[i].name);
        Py_DECREF(arr);
        if (rc < 0) return -1;
        x->held = i + 1;
    }
    return 0;
}

/* Fill x->shapes from the group arrays, checking that every group's table and bitmap
 * lie inside their arrays and that groups come best rank first (the search stops at the
 * first group that cannot beat the match in hand). */
static const char *prepare_shapes(index_t *x) {
    const Py_buffer *v = x->views;
    const int64_t *family = v[X_G_FAMILY].buf, *min_rank = v[X_G_MIN_RANK].buf;
    const int64_t *tab_off = v[X_G_TAB_OFF].buf, *tab_mask = v[X_G_TAB_MASK].buf;
    const int64_t *bits_off = v[X_G_BITS_OFF].buf, *bits_shift = v[X_G_BITS_SHIFT].buf;
    const uint64_t *g_mask = v[X_G_MASK].buf, *bits = v[X_HASH_BITS].buf;
    Py_ssize_t nwords = ITEMS(v[X_HASH_BITS]);
    for (Py_ssize_t g = 0; g < x->ngroups; g++) {
        shape_t *s = &x->shapes[g];
        if (tab_off[g] < 0 || tab_mask[g] < 0 || tab_mask[g] >= x->nslots - tab_off[g])
            return "a group's table lies outside the slots";
        /* the bitmap has 2^(64 - shift) bits, from word bits_off */
        if (bits_shift[g] < 6 || bits_shift[g] > 58 || bits_off[g] < 0 ||
            ((int64_t)1 << (58 - bits_shift[g])) > nwords - bits_off[g])
            return "a group's bitmap lies outside hash_bits";
        if (g > 0 && min_rank[g] < min_rank[g - 1]) return "groups are not in rank order";
        recipe_of(g_mask + g * NKEY, &s->recipe);
        s->required = 0;
        for (int q = 0; q < s->recipe.nf; q++) {
            int64_t bit = BIT(s->recipe.fields[q]);
            s->required |= (bit & ADDRESS_BITS) ? ADDRESS_BITS : (bit & PRESENCE_BITS);
        }
        s->family = family[g];
        s->bits = bits + bits_off[g];
        s->bits_shift = (int)bits_shift[g];
        s->min_rank = min_rank[g];
        s->tab_off = tab_off[g];
        s->tab_mask = (uint64_t)tab_mask[g];
        block_t *blk = &x->blocks[g / 64];
        uint64_t me = (uint64_t)1 << (g % 64);
        if (s->family == 0 || s->family == 4) blk->fits4 |= me;
        if (s->family == 0 || s->family == 6) blk->fits6 |= me;
        for (int k = 0; k < NKEY; k++)
            if (s->required & BIT(k)) blk->need[k] |= me;
        blk->needed |= s->required;
    }
    return NULL;
}

/* Borrow every array of a FilterIndex and check what keeps the search inside them: the
 * lengths and, per group, its table and bitmap (O(groups)). Slots and candidates are
 * checked where they are used (see probe()), which costs nothing on the way that misses. */
static int index_acquire(PyObject *obj, index_t *x) {
    x->held = 0;
    x->shapes = NULL;
    x->blocks = NULL;
    if (borrow_index_arrays(obj, x) < 0) {
        index_release(x);
        return -1;
    }
    Py_buffer *v = x->views;
    x->ngroups = ITEMS(v[X_G_FAMILY]);
    x->nslots = ITEMS(v[X_SLOT_HASH]);
    x->ncand = ITEMS(v[X_CAND]);
    x->ninst = ITEMS(v[X_I_DIR]);
    if (ITEMS(v[X_G_MIN_RANK]) != x->ngroups || ITEMS(v[X_G_TAB_OFF]) != x->ngroups ||
        ITEMS(v[X_G_TAB_MASK]) != x->ngroups || ITEMS(v[X_G_BITS_OFF]) != x->ngroups ||
        ITEMS(v[X_G_BITS_SHIFT]) != x->ngroups || v[X_G_MASK].shape[0] != x->ngroups)
        return index_fail(x, "the group arrays differ in length");
    /* slot_len may be longer: an index without groups keeps one empty slot */
    if (ITEMS(v[X_SLOT_START]) != x->nslots || ITEMS(v[X_SLOT_LEN]) < x->nslots)
        return index_fail(x, "the slot arrays differ in length");
    if (ITEMS(v[X_I_RANK]) != x->ninst || ITEMS(v[X_I_CLASS]) != x->ninst ||
        v[X_I_VALUE].shape[0] != x->ninst)
        return index_fail(x, "the instance arrays differ in length");
    x->slot_hash = v[X_SLOT_HASH].buf;
    x->slot_start = v[X_SLOT_START].buf;
    x->slot_len = v[X_SLOT_LEN].buf;
    x->cand = v[X_CAND].buf;
    x->i_dir = v[X_I_DIR].buf;
    x->i_rank = v[X_I_RANK].buf;
    x->i_class = v[X_I_CLASS].buf;
    x->i_value = v[X_I_VALUE].buf;
    x->shapes = PyMem_Malloc((x->ngroups ? x->ngroups : 1) * sizeof(shape_t));
    x->blocks = PyMem_Calloc(x->ngroups / 64 + 1, sizeof(block_t));
    if (x->shapes == NULL || x->blocks == NULL) {
        index_release(x);
        PyErr_NoMemory();
        return -1;
    }
    const char *problem = prepare_shapes(x);
    return problem == NULL ? 0 : index_fail(x, problem);
}

/* ---- the search ---------------------------------------------------------------------- */

/* A packet as the search sees it: its key, the fields it lacks, its family and direction. */
typedef struct {
    uint64_t key[NKEY];
    int64_t absent;
    int64_t version;
    int64_t direction;
} packet_t;

static inline void packet_of(const columns_t *c, Py_ssize_t r, int64_t if_id, packet_t *p) {
    uint64_t *key = p->key;
    key[F_SADDR_HI] = c->saddr_hi[r];
    key[F_SADDR_LO] = c->saddr_lo[r];
    key[F_DADDR_HI] = c->daddr_hi[r];
    key[F_DADDR_LO] = c->daddr_lo[r];
    key[F_PROTO] = c->protocol[r];
    key[F_SPORT] = c->sport[r];
    key[F_DPORT] = c->dport[r];
    key[F_DSFIELD] = c->ds_byte[r];
    key[F_IFNAME] = (uint64_t)if_id & U32_ALL;
    key[F_UID] = (uint32_t)c->uid[r];
    key[F_PROJID] = (uint32_t)c->projid[r];
    /* no protocol, no ports, unknown ids: selectors this packet can never satisfy */
    int64_t absent = (int64_t)(key[F_PROTO] == 0) << F_PROTO;
    absent |= (int64_t)(key[F_SPORT] == 0) << F_SPORT;
    absent |= (int64_t)(key[F_DPORT] == 0) << F_DPORT;
    absent |= (int64_t)(key[F_IFNAME] == U32_ALL) << F_IFNAME;
    absent |= (int64_t)(key[F_UID] == U32_ALL) << F_UID;
    absent |= (int64_t)(key[F_PROJID] == U32_ALL) << F_PROJID;
    if (c->flags[r] & FLAG_HEADER_CUT) absent |= ADDRESS_BITS;
    p->absent = absent;
    p->version = c->ip_version[r];
    p->direction = c->direction[r];
}

/* Whether the bitmap of shape s has the bit of hash h: if not, a probe would miss. */
static inline int may_hold(const shape_t *s, uint64_t h) {
    uint64_t bit = h >> s->bits_shift;
    return (s->bits[bit >> 6] >> (bit & 63)) & 1;
}

/* The shapes of block g0 whose family fits packet p (the general test, for a version
 * other than 4 or 6). */
static uint64_t family_fits(const index_t *x, Py_ssize_t g0, int nb, int64_t version) {
    uint64_t fits = 0;
    for (int b = 0; b < nb; b++) {
        int64_t family = x->shapes[g0 + b].family;
        if (family == 0 || family == version) fits |= (uint64_t)1 << b;
    }
    return fits;
}

/* The best instance of shape s matching p with a rank better than `best`, -1 if none, -2
 * if the index is corrupt (a slot or candidate pointing outside its array). A probe
 * stops at an empty slot or after visiting the whole table. */
static inline int64_t probe(const index_t *x, const shape_t *s, const packet_t *p,
                            uint64_t h, int64_t best) {
    uint64_t pos = h & s->tab_mask;
    for (uint64_t probes = 0; probes <= s->tab_mask; probes++) {
        int64_t slot = s->tab_off + (int64_t)pos;
        int64_t len = x->slot_len[slot];
        if (len == 0) return -1;
        if (x->slot_hash[slot] == h) {
            int64_t start = x->slot_start[slot];
            if (len < 0 || start < 0 || start > x->ncand - len) return -2;
            /* candidates come in rank order: the first that matches is the best */
            for (int64_t t = start; t < start + len; t++) {
                int64_t i = x->cand[t];
                if (i < 0 || i >= x->ninst) return -2;
                if (x->i_rank[i] >= best) return -1;
                const uint64_t *value = x->i_value + i * NKEY;
                const recipe_t *r = &s->recipe;
                int ok = 1;
                for (int q = 0; q < r->nf && ok; q++)
                    ok = (p->key[r->fields[q]] & r->masks[q]) == value[r->fields[q]];
                if (!ok) continue;
                if (x->i_dir[i] != 0 && (x->i_dir[i] & p->direction) == 0) continue;
                return i;
            }
            return -1;
        }
        pos = (pos + 1) & s->tab_mask;
    }
    return -1;
}

/* The best instance matching p, -1 if none, -2 if the index is corrupt. Shapes are taken
 * 64 at a time; set operations pick out the ones whose family fits the packet and whose
 * fields it has, and only those are hashed, best rank first, until no remaining shape can
 * beat the match in hand. A shape whose bitmap lacks the hash is not probed. Skipping a
 * shape whose probe would miss changes nothing (and shapes come in rank order), so this
 * finds what visiting every shape in turn finds. */
static inline int64_t search(const index_t *x, const packet_t *p) {
    int64_t best = INT64_MAX, best_i = -1;
    for (Py_ssize_t g0 = 0; g0 < x->ngroups; g0 += 64) {
        const shape_t *block = &x->shapes[g0];
        const block_t *blk = &x->blocks[g0 / 64];
        int nb = x->ngroups - g0 < 64 ? (int)(x->ngroups - g0) : 64;
        uint64_t todo = p->version == 4   ? blk->fits4
                        : p->version == 6 ? blk->fits6
                                          : family_fits(x, g0, nb, p->version);
        for (uint64_t a = (uint64_t)(p->absent & blk->needed); a != 0; a &= a - 1)
            todo &= ~blk->need[__builtin_ctzll(a)];
        while (todo != 0) {
            int b = __builtin_ctzll(todo);
            todo &= todo - 1;
            const shape_t *s = &block[b];
            /* shapes are in rank order: none from here on can do better */
            if (s->min_rank >= best) return best_i;
            uint64_t h = shape_hash(p->key, &s->recipe);
            if (!may_hold(s, h)) continue;
            int64_t i = probe(x, s, p, h, best);
            if (i == -2) return -2;
            if (i >= 0) {
                best = x->i_rank[i];
                best_i = i;
            }
        }
    }
    return best_i;
}

/* ---- classify_rows ------------------------------------------------------------------ */

typedef struct {
    const int64_t *rows;
    Py_ssize_t n;
    const int64_t *if_table; /* interface id by ifindex, NULL: no filter names one */
    Py_ssize_t ntable;
    int64_t default_class;
    const int32_t *class_next;
    int64_t *packets, *bytes, *last;
    Py_ssize_t nclasses;
    int32_t *next;
} job_t;

/* Classify every row of the job; returns the malformed rows skipped, or -1 - j if row
 * idx[j] reached an instance or class outside its array (a corrupt index). */
static Py_ssize_t classify_job(const index_t *index, const columns_t *cols, const job_t *jobp) {
    /* local copies: the stores to the counters cannot change them, so the compiler keeps
     * their fields in registers instead of reloading them for every row */
    const index_t xl = *index;
    const columns_t cl = *cols;
    const job_t jl = *jobp;
    const index_t *x = &xl;
    const columns_t *c = &cl;
    const job_t *job = &jl;
    Py_ssize_t malformed = 0;
    packet_t p;
    for (Py_ssize_t j = 0; j < job->n; j++) {
        Py_ssize_t r = job->rows[j];
        /* headers inconsistent or cut short: passed on unclassified (ipgpc's epackets) */
        if (c->flags[r] & FLAG_MALFORMED) {
            job->next[j] = ACTION_CONTINUE;
            malformed++;
            continue;
        }
        int64_t if_id = 0;
        if (job->if_table != NULL) {
            int64_t ifindex = c->ifindex[r];
            if_id = ifindex >= 0 && ifindex < job->ntable ? job->if_table[ifindex] : -1;
        }
        packet_of(c, r, if_id, &p);
        int64_t best = search(x, &p);
        int64_t cls = best < 0 ? job->default_class : x->i_class[best];
        if (best == -2 || cls < 0 || cls >= job->nclasses) return -1 - j;
        c->class_id[r] = (int32_t)cls;
        job->next[j] = job->class_next[cls];
        job->packets[cls] += 1;
        job->bytes[cls] = (int64_t)((uint64_t)job->bytes[cls] + c->ip_len[r]); /* wraps */
        if (c->ts_ns[r] > job->last[cls]) job->last[cls] = c->ts_ns[r];
    }
    return malformed;
}

/* classify_rows(idx, cols, if_table, index, default_class, class_next, c_packets, c_bytes,
 * c_last, next) -> int: see the method table. */
static PyObject *py_classify_rows(PyObject *self, PyObject *args) {
    PyObject *idx_o, *cols_o, *table_o, *index_o, *next_cls_o, *cp_o, *cb_o, *cl_o, *next_o;
    Py_ssize_t default_class;
    if (!PyArg_ParseTuple(args, "OOOOnOOOOO:classify_rows", &idx_o, &cols_o, &table_o,
                          &index_o, &default_class, &next_cls_o, &cp_o, &cb_o, &cl_o, &next_o))
        return NULL;
    columns_hold_t cols;
    index_t x;
    Py_buffer idx, table = {0}, class_next, cp, cb, cl, next;
    PyObject *result = NULL;
    if (columns_acquire(cols_o, &cols) < 0) return NULL;
    if (index_acquire(index_o, &x) < 0) goto fail_cols;
    if (array_acquire(idx_o, &idx, 8, 1, 0, "idx") < 0) goto fail_index;
    if (table_o != Py_None && array_acquire(table_o, &table, 8, 1, 0, "if_table") < 0)
        goto fail_idx;
    if (array_acquire(next_cls_o, &class_next, 4, 1, 0, "class_next") < 0) goto fail_table;
    if (array_acquire(cp_o, &cp, 8, 1, 1, "c_packets") < 0) goto fail_class_next;
    if (array_acquire(cb_o, &cb, 8, 1, 1, "c_bytes") < 0) goto fail_cp;
    if (array_acquire(cl_o, &cl, 8, 1, 1, "c_last") < 0) goto fail_cb;
    if (array_acquire(next_o, &next, 4, 1, 1, "next") < 0) goto fail_cl;
    job_t job = {
        .rows = idx.buf, .n = ITEMS(idx),
        .if_table = table_o != Py_None ? table.buf : NULL,
        .ntable = table_o != Py_None ? ITEMS(table) : 0,
        .default_class = default_class, .class_next = class_next.buf,
        .packets = cp.buf, .bytes = cb.buf, .last = cl.buf, .nclasses = ITEMS(cp),
        .next = next.buf,
    };
    if (ITEMS(next) != job.n) {
        PyErr_SetString(PyExc_ValueError, "next must have one item per idx");
        goto fail;
    }
    if (ITEMS(cb) != job.nclasses || ITEMS(cl) != job.nclasses ||
        ITEMS(class_next) != job.nclasses || default_class < 0 ||
        default_class >= job.nclasses) {
        PyErr_SetString(PyExc_ValueError,
                        "class_next and the class counters must have one item per class, "
                        "default_class among them");
        goto fail;
    }
    for (Py_ssize_t j = 0; j < job.n; j++)
        if (job.rows[j] < 0 || job.rows[j] >= cols.c.n) {
            PyErr_Format(PyExc_IndexError, "idx[%zd] = %lld is not a row", j,
                         (long long)job.rows[j]);
            goto fail;
        }
    Py_ssize_t malformed;
    Py_BEGIN_ALLOW_THREADS
    malformed = classify_job(&x, &cols.c, &job);
    Py_END_ALLOW_THREADS
    if (malformed < 0) {
        PyErr_Format(PyExc_ValueError, "FilterIndex: corrupt (row idx[%zd] reached an instance "
                                       "or class outside its array)", -1 - malformed);
        goto fail;
    }
    result = PyLong_FromSsize_t(malformed);
fail:
    PyBuffer_Release(&next);
fail_cl:
    PyBuffer_Release(&cl);
fail_cb:
    PyBuffer_Release(&cb);
fail_cp:
    PyBuffer_Release(&cp);
fail_class_next:
    PyBuffer_Release(&class_next);
fail_table:
    if (table_o != Py_None) PyBuffer_Release(&table);
fail_idx:
    PyBuffer_Release(&idx);
fail_index:
    index_release(&x);
fail_cols:
    columns_release(&cols);
    return result;
}

PyMethodDef classify_methods[] = {
    {"instance_hashes", py_instance_hashes, METH_VARARGS,
     "instance_hashes(values, group, gmask, out): each instance's hash under its group's "
     "masks."},
    {"classify_rows", py_classify_rows, METH_VARARGS,
     "classify_rows(idx, cols, if_table, index, default_class, class_next, c_packets, "
     "c_bytes, c_last, next) -> int: ipgpc over the rows idx of cols. A malformed row gets "
     "next ACTION_CONTINUE and is not classified; any other row gets its class in "
     "cols.class_id and that class's class_next in next, and is counted. if_table maps "
     "ifindex to interface id (None: no filter names one). Returns the malformed rows."},
    {NULL, NULL, 0, NULL},
};

int classify_constants(PyObject *module) {
    static const int_constant_t constants[] = {
        {"F_SADDR_HI", F_SADDR_HI}, {"F_SADDR_LO", F_SADDR_LO}, {"F_DADDR_HI", F_DADDR_HI},
        {"F_DADDR_LO", F_DADDR_LO}, {"F_PROTO", F_PROTO},       {"F_SPORT", F_SPORT},
        {"F_DPORT", F_DPORT},       {"F_DSFIELD", F_DSFIELD},   {"F_IFNAME", F_IFNAME},
        {"F_UID", F_UID},           {"F_PROJID", F_PROJID},     {"NKEY", NKEY},
    };
    return add_int_constants(module, constants, sizeof constants / sizeof constants[0]);
}
