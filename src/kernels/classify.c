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

/* The fields a mask row uses (nonzero mask), ascending; returns how many. */
static int used_fields(const uint64_t *mask, uint8_t *fields) {
    int nf = 0;
    for (int k = 0; k < NKEY; k++)
        if (mask[k] != 0) fields[nf++] = (uint8_t)k;
    return nf;
}

/* THE hash of a key under a shape: its masked words, in ascending field order; the fields
 * the shape does not use add nothing. */
static inline uint64_t shape_hash(const uint64_t *key, const uint64_t *mask,
                                  const uint8_t *fields, int nf) {
    uint64_t h = HASH_SEED;
    for (int q = 0; q < nf; q++) h = mix(h, key[fields[q]] & mask[fields[q]]);
    return h;
}

/* Borrow a C-contiguous (rows, NKEY) matrix of 8-byte integers. array_acquire takes only
 * vectors, so its dtype test is repeated here for the two matrices an index holds. */
static int matrix_acquire(PyObject *obj, Py_buffer *view, int is_signed, const char *what) {
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        PyErr_Format(PyExc_TypeError, "%s: expected a contiguous array", what);
        return -1;
    }
    const char *f = view->format ? view->format : "B";
    if (*f == '@' || *f == '=' || *f == '<') f++;
    int dtype_ok = view->itemsize == 8 && f[0] != '\0' && f[1] == '\0' &&
                   strchr(is_signed ? "ql" : "QL", f[0]) != NULL;
    if (!dtype_ok || view->ndim != 2 || view->shape[1] != NKEY) {
        PyErr_Format(PyExc_TypeError, "%s: expected a (rows, %d) array of %s 8-byte integers",
                     what, NKEY, is_signed ? "signed" : "unsigned");
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* ---- instance_hashes ---------------------------------------------------------------- */

/* instance_hashes(values, group, gmask, out): out[i] = the hash of instance i's values
 * under its group's masks. */
static PyObject *py_instance_hashes(PyObject *self, PyObject *args) {
    PyObject *values_o, *group_o, *gmask_o, *out_o;
    if (!PyArg_ParseTuple(args, "OOOO:instance_hashes", &values_o, &group_o, &gmask_o, &out_o))
        return NULL;
    Py_buffer values, group, gmask, out;
    if (matrix_acquire(values_o, &values, 0, "values") < 0) return NULL;
    if (array_acquire(group_o, &group, 8, 1, 0, "group") < 0) goto fail_values;
    if (matrix_acquire(gmask_o, &gmask, 0, "gmask") < 0) goto fail_group;
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
        const uint64_t *mask = m + g[i] * NKEY;
        uint8_t fields[NKEY];
        int nf = used_fields(mask, fields);
        h[i] = shape_hash(v + i * NKEY, mask, fields, nf);
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
 * is free): rows 0..NVEC-1 are vectors, the last two are the matrices. */
enum {
    X_G_FAMILY, X_G_MIN_RANK, X_G_TAB_OFF, X_G_TAB_MASK, X_SLOT_HASH, X_SLOT_START,
    X_SLOT_LEN, X_CAND, X_I_DIR, X_I_RANK, X_I_CLASS, NVEC, X_G_MASK = NVEC, X_I_VALUE, NINDEX
};
static const struct { const char *name; int is_signed; } INDEX_FIELDS[NINDEX] = {
    [X_G_FAMILY] = {"g_family", 1},   [X_G_MIN_RANK] = {"g_min_rank", 1},
    [X_G_TAB_OFF] = {"g_tab_off", 1}, [X_G_TAB_MASK] = {"g_tab_mask", 1},
    [X_SLOT_HASH] = {"slot_hash", 0}, [X_SLOT_START] = {"slot_start", 1},
    [X_SLOT_LEN] = {"slot_len", 1},   [X_CAND] = {"cand", 1},
    [X_I_DIR] = {"i_dir", 1},         [X_I_RANK] = {"i_rank", 1},
    [X_I_CLASS] = {"i_class", 1},     [X_G_MASK] = {"g_mask", 0},
    [X_I_VALUE] = {"i_value", 0},
};

/* One shape as the probe loop wants it: everything about it in one cache line or two. */
typedef struct {
    uint64_t mask[NKEY];
    int64_t min_rank;
    int64_t required; /* bit k: the packet must have field k */
    int64_t tab_off;
    uint64_t tab_mask;
    int64_t family; /* 0 = both, 4, 6 */
    int nf;
    uint8_t fields[NKEY];
} shape_t;

typedef struct {
    Py_buffer views[NINDEX];
    int held;
    shape_t *shapes;
    Py_ssize_t ngroups, nslots, ncand, ninst;
    const uint64_t *slot_hash, *i_value;
    const int64_t *slot_start, *slot_len, *cand, *i_dir, *i_rank, *i_class;
} index_t;

static void index_release(index_t *x) {
    for (int i = 0; i < x->held; i++) PyBuffer_Release(&x->views[i]);
    x->held = 0;
    PyMem_Free(x->shapes);
    x->shapes = NULL;
}

static int index_fail(index_t *x, PyObject *type, const char *message) {
    PyErr_Format(type, "FilterIndex: %s", message);
    index_release(x);
    return -1;
}

/* Borrow every array of a FilterIndex and check that the tables stay inside their
 * arrays, so the probe loop cannot leave a buffer. Per group the work is O(NKEY); the
 * slots and candidates are checked where they are used (see classify_one). */
static int index_acquire(PyObject *obj, index_t *x) {
    x->held = 0;
    x->shapes = NULL;
    for (int i = 0; i < NINDEX; i++) {
        PyObject *arr = PyObject_GetAttrString(obj, INDEX_FIELDS[i].name);
        if (arr == NULL) {
            index_release(x);
            return -1;
        }
        int rc = i < NVEC ? array_acquire(arr, &x->views[i], 8, INDEX_FIELDS[i].is_signed, 0,
                                          INDEX_FIELDS[i].name)
                          : matrix_acquire(arr, &x->views[i], INDEX_FIELDS[i].is_signed,
                                           INDEX_FIELDS[i].name);
        Py_DECREF(arr);
        if (rc < 0) {
            index_release(x);
            return -1;
        }
        x->held = i + 1;
    }
    Py_buffer *v = x->views;
    x->ngroups = ITEMS(v[X_G_FAMILY]);
    x->nslots = ITEMS(v[X_SLOT_HASH]);
    x->ncand = ITEMS(v[X_CAND]);
    x->ninst = ITEMS(v[X_I_DIR]);
    if (ITEMS(v[X_G_MIN_RANK]) != x->ngroups || ITEMS(v[X_G_TAB_OFF]) != x->ngroups ||
        ITEMS(v[X_G_TAB_MASK]) != x->ngroups || v[X_G_MASK].shape[0] != x->ngroups)
        return index_fail(x, PyExc_ValueError, "the group arrays differ in length");
    /* slot_len may be longer: an index without groups keeps one empty slot */
    if (ITEMS(v[X_SLOT_START]) != x->nslots || ITEMS(v[X_SLOT_LEN]) < x->nslots)
        return index_fail(x, PyExc_ValueError, "the slot arrays differ in length");
    if (ITEMS(v[X_I_RANK]) != x->ninst || ITEMS(v[X_I_CLASS]) != x->ninst ||
        v[X_I_VALUE].shape[0] != x->ninst)
        return index_fail(x, PyExc_ValueError, "the instance arrays differ in length");
    x->slot_hash = v[X_SLOT_HASH].buf;
    x->slot_start = v[X_SLOT_START].buf;
    x->slot_len = v[X_SLOT_LEN].buf;
    x->cand = v[X_CAND].buf;
    x->i_dir = v[X_I_DIR].buf;
    x->i_rank = v[X_I_RANK].buf;
    x->i_class = v[X_I_CLASS].buf;
    x->i_value = v[X_I_VALUE].buf;
    x->shapes = PyMem_Malloc((x->ngroups ? x->ngroups : 1) * sizeof(shape_t));
    if (x->shapes == NULL) {
        index_release(x);
        PyErr_NoMemory();
        return -1;
    }
    const int64_t *family = v[X_G_FAMILY].buf, *min_rank = v[X_G_MIN_RANK].buf;
    const int64_t *tab_off = v[X_G_TAB_OFF].buf, *tab_mask = v[X_G_TAB_MASK].buf;
    const uint64_t *g_mask = v[X_G_MASK].buf;
    for (Py_ssize_t g = 0; g < x->ngroups; g++) {
        shape_t *s = &x->shapes[g];
        if (tab_off[g] < 0 || tab_mask[g] < 0 || tab_mask[g] >= x->nslots - tab_off[g])
            return index_fail(x, PyExc_ValueError, "a group's table lies outside the slots");
        memcpy(s->mask, g_mask + g * NKEY, sizeof s->mask);
        s->min_rank = min_rank[g];
        s->tab_off = tab_off[g];
        s->tab_mask = (uint64_t)tab_mask[g];
        s->family = family[g];
        s->nf = used_fields(s->mask, s->fields);
        s->required = 0;
        for (int q = 0; q < s->nf; q++) {
            int64_t bit = BIT(s->fields[q]);
            s->required |= (bit & ADDRESS_BITS) ? ADDRESS_BITS : (bit & PRESENCE_BITS);
        }
    }
    return 0;
}

/* ---- classify_rows ------------------------------------------------------------------ */

/* The key of row r and the bits of the fields it lacks. */
static inline int64_t packet_key(const columns_t *c, Py_ssize_t r, int64_t if_id,
                                 uint64_t *key) {
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
    int64_t absent = 0;
    if (key[F_PROTO] == 0) absent |= BIT(F_PROTO);
    if (key[F_SPORT] == 0) absent |= BIT(F_SPORT);
    if (key[F_DPORT] == 0) absent |= BIT(F_DPORT);
    if (key[F_IFNAME] == U32_ALL) absent |= BIT(F_IFNAME);
    if (key[F_UID] == U32_ALL) absent |= BIT(F_UID);
    if (key[F_PROJID] == U32_ALL) absent |= BIT(F_PROJID);
    if (c->flags[r] & FLAG_HEADER_CUT) absent |= ADDRESS_BITS;
    return absent;
}

/* The best instance matching row r (its index), -1 if none; -2 if the index is corrupt
 * (a slot or candidate pointing outside its array). Shapes are visited best rank first,
 * so the search stops when no remaining shape can beat the match in hand; a probe stops
 * at an empty slot or after visiting the whole table. */
static inline int64_t classify_one(const index_t *x, const columns_t *c, Py_ssize_t r,
                                   int64_t if_id) {
    uint64_t key[NKEY];
    int64_t absent = packet_key(c, r, if_id, key);
    int64_t ver = c->ip_version[r], pdir = c->direction[r];
    int64_t best = INT64_MAX, best_c = -1;
    for (Py_ssize_t g = 0; g < x->ngroups; g++) {
        const shape_t *s = &x->shapes[g];
        if (s->min_rank >= best) break;
        if ((s->family != 0 && s->family != ver) || (s->required & absent)) continue;
        uint64_t h = shape_hash(key, s->mask, s->fields, s->nf);
        uint64_t pos = h & s->tab_mask;
        for (uint64_t probes = 0; probes <= s->tab_mask; probes++) {
            int64_t slot = s->tab_off + (int64_t)pos;
            int64_t len = x->slot_len[slot];
            if (len == 0) break;
            if (x->slot_hash[slot] == h) {
                int64_t start = x->slot_start[slot];
                if (len < 0 || start < 0 || start > x->ncand - len) return -2;
                for (int64_t t = start; t < start + len; t++) {
                    int64_t i = x->cand[t];
                    if (i < 0 || i >= x->ninst) return -2;
                    if (x->i_rank[i] >= best) break;
                    const uint64_t *value = x->i_value + i * NKEY;
                    int ok = 1;
                    for (int q = 0; q < s->nf && ok; q++) {
                        int k = s->fields[q];
                        ok = (key[k] & s->mask[k]) == value[k];
                    }
                    if (!ok) continue;
                    if (x->i_dir[i] != 0 && (x->i_dir[i] & pdir) == 0) continue;
                    best = x->i_rank[i];
                    best_c = i;
                    break;
                }
                break;
            }
            pos = (pos + 1) & s->tab_mask;
        }
    }
    return best_c;
}

/* classify_rows(idx, cols, if_id, index, default_class, c_packets, c_bytes, c_last, out)
 * -> None: out[j] = the class of row idx[j]; counts each row in its class. */
static PyObject *py_classify_rows(PyObject *self, PyObject *args) {
    PyObject *idx_o, *cols_o, *if_id_o, *index_o, *cp_o, *cb_o, *cl_o, *out_o;
    Py_ssize_t default_class;
    if (!PyArg_ParseTuple(args, "OOOOnOOOO:classify_rows", &idx_o, &cols_o, &if_id_o, &index_o,
                          &default_class, &cp_o, &cb_o, &cl_o, &out_o))
        return NULL;
    columns_hold_t cols;
    index_t x;
    Py_buffer idx, if_id, cp, cb, cl, out;
    PyObject *result = NULL;
    if (columns_acquire(cols_o, &cols) < 0) return NULL;
    if (index_acquire(index_o, &x) < 0) goto fail_cols;
    if (array_acquire(idx_o, &idx, 8, 1, 0, "idx") < 0) goto fail_index;
    if (array_acquire(if_id_o, &if_id, 8, 1, 0, "if_id") < 0) goto fail_idx;
    if (array_acquire(cp_o, &cp, 8, 1, 1, "c_packets") < 0) goto fail_if_id;
    if (array_acquire(cb_o, &cb, 8, 1, 1, "c_bytes") < 0) goto fail_cp;
    if (array_acquire(cl_o, &cl, 8, 1, 1, "c_last") < 0) goto fail_cb;
    if (array_acquire(out_o, &out, 4, 1, 1, "out") < 0) goto fail_cl;
    Py_ssize_t n = ITEMS(idx), rows = cols.c.n, ncls = ITEMS(cp);
    if (ITEMS(out) != n || ITEMS(if_id) != rows) {
        PyErr_SetString(PyExc_ValueError, "out must have one item per idx, if_id one per row");
        goto fail;
    }
    if (ITEMS(cb) != ncls || ITEMS(cl) != ncls || default_class < 0 || default_class >= ncls) {
        PyErr_SetString(PyExc_ValueError, "the class counters differ in length or miss the "
                                          "default class");
        goto fail;
    }
    const int64_t *rowp = idx.buf;
    for (Py_ssize_t j = 0; j < n; j++)
        if (rowp[j] < 0 || rowp[j] >= rows) {
            PyErr_Format(PyExc_IndexError, "idx[%zd] = %lld is not a row", j, (long long)rowp[j]);
            goto fail;
        }
    const int64_t *ifp = if_id.buf;
    int64_t *packets = cp.buf, *bytes = cb.buf, *last = cl.buf;
    int32_t *outp = out.buf;
    const columns_t *c = &cols.c;
    Py_ssize_t bad = -1;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t j = 0; j < n; j++) {
        Py_ssize_t r = rowp[j];
        int64_t best = classify_one(&x, c, r, ifp[r]);
        int64_t cls = best < 0 ? (int64_t)default_class : x.i_class[best];
        if (best == -2 || cls < 0 || cls >= ncls) {
            bad = j;
            break;
        }
        outp[j] = (int32_t)cls;
        packets[cls] += 1;
        bytes[cls] = (int64_t)((uint64_t)bytes[cls] + c->ip_len[r]); /* wraps, as numba did */
        if (c->ts_ns[r] > last[cls]) last[cls] = c->ts_ns[r];
    }
    Py_END_ALLOW_THREADS
    if (bad >= 0) {
        PyErr_Format(PyExc_ValueError, "FilterIndex: corrupt (row %zd reached an instance or "
                                       "class outside its array)", bad);
        goto fail;
    }
    result = Py_None;
    Py_INCREF(result);
fail:
    PyBuffer_Release(&out);
fail_cl:
    PyBuffer_Release(&cl);
fail_cb:
    PyBuffer_Release(&cb);
fail_cp:
    PyBuffer_Release(&cp);
fail_if_id:
    PyBuffer_Release(&if_id);
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
     "classify_rows(idx, cols, if_id, index, default_class, c_packets, c_bytes, c_last, out): "
     "the ipgpc class of every row in idx, counted."},
    {NULL, NULL, 0, NULL},
};

int classify_constants(PyObject *module) {
    static const struct { const char *name; int value; } constants[] = {
        {"F_SADDR_HI", F_SADDR_HI}, {"F_SADDR_LO", F_SADDR_LO}, {"F_DADDR_HI", F_DADDR_HI},
        {"F_DADDR_LO", F_DADDR_LO}, {"F_PROTO", F_PROTO},       {"F_SPORT", F_SPORT},
        {"F_DPORT", F_DPORT},       {"F_DSFIELD", F_DSFIELD},   {"F_IFNAME", F_IFNAME},
        {"F_UID", F_UID},           {"F_PROJID", F_PROJID},     {"NKEY", NKEY},
    };
    for (size_t i = 0; i < sizeof constants / sizeof constants[0]; i++)
        if (PyModule_AddIntConstant(module, constants[i].name, constants[i].value) < 0)
            return -1;
    return 0;
}
