/* group_rows: exact grouping of rows by many 64-bit key words, in one pass.
 *
 * The audit folds millions of judged flows into tallies keyed by several columns, and
 * sums a capture's packets per flow. Sorting for that costs O(n log n) per batch; an
 * open-addressing table of each group's first row costs one probe per row, and the full
 * key is compared on every hit, so two keys that hash alike are never merged. Groups are
 * numbered in the order of their first row, which makes the result independent of how the
 * rows were hashed (and, for callers that concatenate batches, of how they were batched).
 */
#include "kernels.h"

#include <stdlib.h>

/* Per-word multipliers: the words of a row are hashed independently (the multiplies
 * pipeline instead of waiting on each other) and mixed once at the end. */
static const uint64_t WORD_MULT[8] = {
    0x9E3779B97F4A7C15ull, 0xBF58476D1CE4E5B9ull, 0x94D049BB133111EBull, 0xD6E8FEB86659FD93ull,
    0xC2B2AE3D27D4EB4Full, 0x165667B19E3779F9ull, 0xFF51AFD7ED558CCDull, 0xC4CEB9FE1A85EC53ull,
};

/* The key words of row i are words[j * n + i], j < k: one column after another, as
 * numpy stacks the key columns (no transposing copy). */
static inline uint64_t row_hash(const uint64_t *words, Py_ssize_t n, Py_ssize_t k,
                                Py_ssize_t i) {
    uint64_t h = (uint64_t)k;
    for (Py_ssize_t j = 0; j < k; j++) h += (words[j * n + i] + (uint64_t)j) * WORD_MULT[j & 7];
    h ^= h >> 31;
    h *= 0xBF58476D1CE4E5B9ull;
    return h ^ (h >> 29);
}

static inline int same_row(const uint64_t *words, Py_ssize_t n, Py_ssize_t k, Py_ssize_t a,
                           Py_ssize_t b) {
    for (Py_ssize_t j = 0; j < k; j++)
        if (words[j * n + a] != words[j * n + b]) return 0;
    return 1;
}

/* The table grows with the groups (not the rows): a batch of few groups stays in the
 * cache, and no page of a table sized for the worst case is ever touched. */
typedef struct {
    uint64_t hash;
    int64_t group; /* -1: empty */
} slot_t;

typedef struct {
    slot_t *slots;
    size_t size; /* a power of two, at least twice the groups */
    int64_t *firsts;
    size_t capacity;
    Py_ssize_t groups;
} groups_t;

static slot_t *empty_slots(size_t size) {
    slot_t *slots = malloc(size * sizeof *slots);
    if (slots != NULL)
        for (size_t i = 0; i < size; i++) slots[i].group = -1;
    return slots;
}

static int grow_slots(groups_t *t) {
    size_t size = t->size * 2, mask = size - 1;
    slot_t *slots = empty_slots(size);
    if (slots == NULL) return -1;
    for (size_t i = 0; i < t->size; i++) {
        if (t->slots[i].group < 0) continue;
        size_t at = (size_t)t->slots[i].hash & mask;
        while (slots[at].group >= 0) at = (at + 1) & mask;
        slots[at] = t->slots[i];
    }
    free(t->slots);
    t->slots = slots;
    t->size = size;
    return 0;
}

static int add_group(groups_t *t, slot_t *slot, uint64_t hash, Py_ssize_t row) {
    if ((size_t)t->groups == t->capacity) {
        int64_t *firsts = realloc(t->firsts, t->capacity * 2 * sizeof *firsts);
        if (firsts == NULL) return -1;
        t->firsts = firsts;
        t->capacity *= 2;
    }
    slot->hash = hash;
    slot->group = t->groups;
    t->firsts[t->groups++] = row;
    return (size_t)t->groups * 2 > t->size ? grow_slots(t) : 0;
}

/* Group rows [0, n) of the k x n column matrix `words` into `t` (ids[i] = the group of
 * row i). Returns -1 when out of memory. */
static int group_all(const uint64_t *words, Py_ssize_t n, Py_ssize_t k, int64_t *ids,
                     groups_t *t) {
    for (Py_ssize_t i = 0; i < n; i++) {
        uint64_t hash = row_hash(words, n, k, i);
        size_t mask = t->size - 1, at = (size_t)hash & mask;
        for (;;) {
            slot_t *slot = &t->slots[at];
            if (slot->group < 0) {
                ids[i] = t->groups;
                if (add_group(t, slot, hash, i) < 0) return -1;
                break;
            }
            if (slot->hash == hash && same_row(words, n, k, i, t->firsts[slot->group])) {
                ids[i] = slot->group;
                break;
            }
            at = (at + 1) & mask;
        }
    }
    return 0;
}

/* group_rows(columns, ids) -> bytes: columns a C-contiguous (k, n) array of 8-byte
 * integers (key column j is row j), ids an int64 array of n items (written: each row's
 * group). Returns the first row of
 * each group, in group order, as native int64 bytes. */
static PyObject *py_group_rows(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (check_nargs("group_rows", nargs, 2) < 0) return NULL;
    Py_buffer keys, ids; /* keys: the (k, n) key columns */
    if (PyObject_GetBuffer(args[0], &keys, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) return NULL;
    if (keys.ndim != 2 || keys.itemsize != 8) {
        PyErr_SetString(PyExc_TypeError, "columns: expected a (words, rows) array of 8-byte items");
        PyBuffer_Release(&keys);
        return NULL;
    }
    if (array_acquire(args[1], &ids, 8, 1, 1, "ids") < 0) {
        PyBuffer_Release(&keys);
        return NULL;
    }
    PyObject *result = NULL;
    Py_ssize_t k = keys.shape[0], n = keys.shape[1];
    groups_t t = {empty_slots(64), 64, malloc(64 * sizeof(int64_t)), 64, 0};
    if (ITEMS(ids) != n) {
        PyErr_SetString(PyExc_ValueError, "ids must have one item per key row");
    } else if (t.slots == NULL || t.firsts == NULL) {
        PyErr_NoMemory();
    } else {
        int failed;
        Py_BEGIN_ALLOW_THREADS
        failed = group_all(keys.buf, n, k, ids.buf, &t);
        Py_END_ALLOW_THREADS
        if (failed)
            PyErr_NoMemory();
        else
            result = PyBytes_FromStringAndSize((const char *)t.firsts,
                                               t.groups * (Py_ssize_t)sizeof(int64_t));
    }
    free(t.slots);
    free(t.firsts);
    PyBuffer_Release(&ids);
    PyBuffer_Release(&keys);
    return result;
}

PyMethodDef grouping_methods[] = {
    {"group_rows", FASTCALL(py_group_rows),
     "group_rows(columns, ids) -> bytes: exact grouping of rows by key columns."},
    {NULL, NULL, 0, NULL},
};
