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

static inline uint64_t row_hash(const uint64_t *row, Py_ssize_t k) {
    uint64_t h = (uint64_t)k;
    for (Py_ssize_t j = 0; j < k; j++) h += (row[j] + (uint64_t)j) * WORD_MULT[j & 7];
    h ^= h >> 31;
    h *= 0xBF58476D1CE4E5B9ull;
    return h ^ (h >> 29);
}

/* The table grows with the groups (not the rows): a batch of few groups stays in the
 * cache, and no page of a table sized for the worst case is ever touched. Each group's
 * key is copied into one contiguous row of `keys`, so confirming a hit reads one or two
 * cache lines instead of one per key column. */
typedef struct {
    uint32_t tag;   /* the hash's high half */
    int32_t group;  /* -1: empty */
} slot_t;

typedef struct {
    slot_t *slots;
    size_t size; /* a power of two, at least twice the groups */
    int64_t *firsts;
    uint64_t *hashes; /* per group */
    uint64_t *keys;   /* per group, k words */
    size_t capacity;
    Py_ssize_t groups;
    Py_ssize_t k;
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
    for (Py_ssize_t g = 0; g < t->groups; g++) {
        size_t at = (size_t)t->hashes[g] & mask;
        while (slots[at].group >= 0) at = (at + 1) & mask;
        slots[at].tag = (uint32_t)(t->hashes[g] >> 32);
        slots[at].group = (int32_t)g;
    }
    free(t->slots);
    t->slots = slots;
    t->size = size;
    return 0;
}

static int grow_groups(groups_t *t) {
    size_t capacity = t->capacity * 2;
    int64_t *firsts = realloc(t->firsts, capacity * sizeof *firsts);
    if (firsts != NULL) t->firsts = firsts;
    uint64_t *hashes = realloc(t->hashes, capacity * sizeof *hashes);
    if (hashes != NULL) t->hashes = hashes;
    uint64_t *keys = realloc(t->keys, capacity * (size_t)t->k * sizeof *keys);
    if (keys != NULL) t->keys = keys;
    if (firsts == NULL || hashes == NULL || keys == NULL) return -1;
    t->capacity = capacity;
    return 0;
}

static inline int same_key(const uint64_t *a, const uint64_t *b, Py_ssize_t k) {
    uint64_t differ = 0;
    for (Py_ssize_t j = 0; j < k; j++) differ |= a[j] ^ b[j];
    return differ == 0;
}

#define BLOCK 16 /* rows hashed (and their slots prefetched) ahead of their probes */

/* Group rows [0, n) of the k key columns into `t` (ids[i] = the group of row i).
 * Returns -1 when out of memory. */
static int group_all(const uint64_t *const *columns, Py_ssize_t n, Py_ssize_t k, int64_t *ids,
                     groups_t *t) {
    uint64_t hash[BLOCK];
    uint64_t *row = malloc((size_t)k * BLOCK * sizeof *row);
    if (row == NULL) return -1;
    for (Py_ssize_t base = 0; base < n; base += BLOCK) {
        Py_ssize_t m = n - base < BLOCK ? n - base : BLOCK;
        for (Py_ssize_t j = 0; j < k; j++) { /* column by column: each read in order */
            const uint64_t *column = columns[j] + base;
            for (Py_ssize_t b = 0; b < m; b++) row[b * k + j] = column[b];
        }
        for (Py_ssize_t b = 0; b < m; b++) {
            hash[b] = row_hash(row + b * k, k);
            __builtin_prefetch(&t->slots[(size_t)hash[b] & (t->size - 1)]);
        }
        for (Py_ssize_t b = 0; b < m; b++) {
            const uint64_t *key = row + b * k;
            uint32_t tag = (uint32_t)(hash[b] >> 32);
            size_t mask = t->size - 1, at = (size_t)hash[b] & mask;
            for (;;) {
                slot_t *slot = &t->slots[at];
                if (slot->group < 0) {
                    if ((size_t)t->groups == t->capacity && grow_groups(t) < 0) goto fail;
                    Py_ssize_t g = t->groups++;
                    slot->tag = tag;
                    slot->group = (int32_t)g;
                    t->firsts[g] = base + b;
                    t->hashes[g] = hash[b];
                    for (Py_ssize_t j = 0; j < k; j++) t->keys[g * k + j] = key[j];
                    ids[base + b] = g;
                    if ((size_t)t->groups * 2 > t->size && grow_slots(t) < 0) goto fail;
                    break;
                }
                if (slot->tag == tag && same_key(t->keys + (Py_ssize_t)slot->group * k, key, k)) {
                    ids[base + b] = slot->group;
                    break;
                }
                at = (at + 1) & mask;
            }
        }
    }
    free(row);
    return 0;
fail:
    free(row);
    return -1;
}

#define MAX_WORDS 32

/* group_rows(columns, ids) -> bytes: columns a sequence of 1 to 32 key columns, each a
 * C-contiguous array of n 8-byte integers; ids an int64 array of n items (written: each
 * row's group). Returns the first row of each group, in group order, as int64 bytes. */
static PyObject *py_group_rows(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (check_nargs("group_rows", nargs, 2) < 0) return NULL;
    PyObject *seq = PySequence_Fast(args[0], "columns: expected a sequence of arrays");
    if (seq == NULL) return NULL;
    Py_ssize_t k = PySequence_Fast_GET_SIZE(seq);
    if (k < 1 || k > MAX_WORDS) {
        PyErr_Format(PyExc_ValueError, "group_rows: 1 to %d key columns, not %zd", MAX_WORDS, k);
        Py_DECREF(seq);
        return NULL;
    }
    Py_buffer views[MAX_WORDS], ids;
    const uint64_t *columns[MAX_WORDS];
    int held = 0;
    PyObject *result = NULL;
    for (; held < k; held++) {
        if (array_acquire(PySequence_Fast_GET_ITEM(seq, held), &views[held], 8, -1, 0,
                          "key column") < 0)
            goto done;
        columns[held] = views[held].buf;
    }
    if (array_acquire(args[1], &ids, 8, 1, 1, "ids") < 0) goto done;
    Py_ssize_t n = ITEMS(ids);
    for (Py_ssize_t j = 0; j < k; j++)
        if (ITEMS(views[j]) != n) {
            PyErr_SetString(PyExc_ValueError, "group_rows: every key column has one item per id");
            goto release_ids;
        }
    if (n > INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "group_rows: under 2**31 rows");
        goto release_ids;
    }
    groups_t t = {empty_slots(64), 64, malloc(32 * sizeof(int64_t)), malloc(32 * sizeof(uint64_t)),
                  malloc(32 * (size_t)k * sizeof(uint64_t)), 32, 0, k};
    if (t.slots == NULL || t.firsts == NULL || t.hashes == NULL || t.keys == NULL) {
        PyErr_NoMemory();
    } else {
        int failed;
        Py_BEGIN_ALLOW_THREADS
        failed = group_all(columns, n, k, ids.buf, &t);
        Py_END_ALLOW_THREADS
        if (failed)
            PyErr_NoMemory();
        else
            result = PyBytes_FromStringAndSize((const char *)t.firsts,
                                               t.groups * (Py_ssize_t)sizeof(int64_t));
    }
    free(t.slots);
    free(t.firsts);
    free(t.hashes);
    free(t.keys);
release_ids:
    PyBuffer_Release(&ids);
done:
    arrays_release(views, held);
    Py_DECREF(seq);
    return result;
}

PyMethodDef grouping_methods[] = {
    {"group_rows", FASTCALL(py_group_rows),
     "group_rows(columns, ids) -> bytes: exact grouping of rows by key columns."},
    {NULL, NULL, 0, NULL},
};
