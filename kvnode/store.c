/* store: RocksDB with the "data" and "raft" column families. */
#include "kvnode/store.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include <rocksdb/c.h>

#include "runtime/error.h"
#include "runtime/log.h"

enum { KVS_CF_DEFAULT = 0, KVS_CF_COUNT = 3 };

/* Longer than any key of either column family (data keys are at most 4096
 * bytes, raft keys 17). */
#define KVS_KEY_BOUND_BYTES 4100

static const char *const kvs_cf_names[KVS_CF_COUNT] = {"default", "data", "raft"};

struct kvs {
    char *dir;
    _Atomic uint64_t disk_reserve_bytes;
    _Atomic uint64_t synced_writes;
    rocksdb_t *db;
    rocksdb_options_t *options;
    rocksdb_writeoptions_t *sync_write;
    rocksdb_writeoptions_t *async_write;
    rocksdb_readoptions_t *read;
    rocksdb_column_family_handle_t *cf[KVS_CF_COUNT];
};

struct kvs_batch {
    kvs *store;
    rocksdb_writebatch_wi_t *wb;
};

/* Translates a RocksDB error string at the boundary: logs it, frees it, and
 * returns the project code. */
static int kvs_error(char *err, const char *what) {
    int rc = strncmp(err, "Corruption", strlen("Corruption")) == 0 ? BS_ERR_CORRUPTION : BS_ERR_IO;
    log_error("rocksdb %s failed: %s", what, err);
    rocksdb_free(err);
    return rc;
}

static rocksdb_options_t *kvs_make_options(void) {
    rocksdb_options_t *o = rocksdb_options_create();

    rocksdb_options_set_create_if_missing(o, 1);
    rocksdb_options_set_create_missing_column_families(o, 1);
    /* Two cores on the target machines: one background flush/compaction
     * thread besides the foreground is plenty. */
    rocksdb_options_increase_parallelism(o, 2);
    return o;
}

int kvs_open(const char *dir, kvs **out) {
    kvs *s = calloc(1, sizeof(*s));
    const rocksdb_options_t *cf_options[KVS_CF_COUNT];
    char *err = NULL;

    *out = NULL;
    if (s == NULL)
        return BS_ERR_NOMEM;
    s->dir = strdup(dir);
    s->disk_reserve_bytes = KVS_DISK_RESERVE_BYTES_DEFAULT;
    s->options = kvs_make_options();
    for (int i = 0; i < KVS_CF_COUNT; i++)
        cf_options[i] = s->options;

    s->db = rocksdb_open_column_families(s->options, dir, KVS_CF_COUNT, kvs_cf_names, cf_options,
                                         s->cf, &err);
    if (err != NULL) {
        int rc = kvs_error(err, "open");
        log_error("cannot open the store in %s (is another kvnode using it?)", dir);
        rocksdb_options_destroy(s->options);
        free(s->dir);
        free(s);
        return rc;
    }
    s->sync_write = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(s->sync_write, 1);
    s->async_write = rocksdb_writeoptions_create();
    s->read = rocksdb_readoptions_create();
    log_info("store open in %s", dir);
    *out = s;
    return 0;
}

void kvs_close(kvs *s) {
    if (s == NULL)
        return;
    for (int i = 0; i < KVS_CF_COUNT; i++)
        rocksdb_column_family_handle_destroy(s->cf[i]);
    rocksdb_close(s->db);
    rocksdb_writeoptions_destroy(s->sync_write);
    rocksdb_writeoptions_destroy(s->async_write);
    rocksdb_readoptions_destroy(s->read);
    rocksdb_options_destroy(s->options);
    free(s->dir);
    free(s);
}

void kvs_set_disk_reserve(kvs *s, uint64_t bytes) {
    atomic_store(&s->disk_reserve_bytes, bytes);
}

int kvs_check_space(kvs *s, uint64_t bytes, int fraction_pct) {
    uint64_t reserve = atomic_load(&s->disk_reserve_bytes) / 100 * (uint64_t)fraction_pct;
    struct statvfs st;

    /* A statvfs costs about a microsecond, far below the fsync of a write. */
    if (statvfs(s->dir, &st) != 0)
        return 0; /* cannot tell; let RocksDB try */
    uint64_t free_bytes = (uint64_t)st.f_bavail * st.f_frsize;
    if (free_bytes < reserve || free_bytes - reserve < bytes) {
        log_warn("refusing a write of %llu bytes: %llu bytes free in %s, %llu kept in reserve",
                 (unsigned long long)bytes, (unsigned long long)free_bytes, s->dir,
                 (unsigned long long)reserve);
        return BS_ERR_RESOURCE_EXHAUSTED;
    }
    return 0;
}

/* Hands the caller memory from our allocator, not RocksDB's. */
static int kvs_take_value(char *v, size_t len, bool *found, char **value, size_t *value_len) {
    *found = false;
    *value = NULL;
    *value_len = 0;
    if (v == NULL)
        return 0;
    *value = malloc(len ? len : 1);
    if (*value == NULL) {
        rocksdb_free(v);
        return BS_ERR_NOMEM;
    }
    memcpy(*value, v, len);
    rocksdb_free(v);
    *found = true;
    *value_len = len;
    return 0;
}

int kvs_get(kvs *s, kvs_cf cf, const void *key, size_t key_len, bool *found, char **value,
            size_t *value_len) {
    char *err = NULL;
    size_t len = 0;
    char *v = rocksdb_get_cf(s->db, s->read, s->cf[cf], key, key_len, &len, &err);

    if (err != NULL) {
        *found = false;
        *value = NULL;
        return kvs_error(err, "get");
    }
    return kvs_take_value(v, len, found, value, value_len);
}

int kvs_scan(kvs *s, kvs_cf cf, const void *start, size_t start_len, const void *end,
             size_t end_len, uint32_t limit, kvs_scan_cb cb, void *ctx, bool *more) {
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_iterator_t *it;
    uint32_t visited = 0;
    char *err = NULL;
    int rc = 0;

    /* The bound lets RocksDB stop at `end` instead of us comparing keys. */
    if (end_len > 0)
        rocksdb_readoptions_set_iterate_upper_bound(ro, end, end_len);
    it = rocksdb_create_iterator_cf(s->db, ro, s->cf[cf]);
    rocksdb_iter_seek(it, start, start_len);

    *more = false;
    for (; rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        if (visited == limit) {
            *more = true;
            break;
        }
        size_t kl, vl;
        const char *k = rocksdb_iter_key(it, &kl);
        const char *v = rocksdb_iter_value(it, &vl);
        rc = cb(k, kl, v, vl, ctx);
        if (rc != 0)
            break;
        visited++;
    }
    rocksdb_iter_get_error(it, &err);
    if (err != NULL && rc == 0)
        rc = kvs_error(err, "scan");
    else if (err != NULL)
        rocksdb_free(err);
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    return rc;
}

uint64_t kvs_approximate_size(kvs *s, kvs_cf cf, const void *start, size_t start_len,
                              const void *end, size_t end_len) {
    /* Past every key: keys are shorter than this run of 0xff bytes. */
    static const char beyond[KVS_KEY_BOUND_BYTES] = {[0 ... KVS_KEY_BOUND_BYTES - 1] = (char)0xff};
    const char *starts[1] = {start}, *limits[1] = {end_len ? end : beyond};
    size_t start_lens[1] = {start_len}, limit_lens[1] = {end_len ? end_len : sizeof(beyond)};
    uint64_t size = 0;
    char *err = NULL;

    rocksdb_approximate_sizes_cf(s->db, s->cf[cf], 1, starts, start_lens, limits, limit_lens, &size,
                                 &err);
    if (err != NULL) {
        rocksdb_free(err);
        return 0;
    }
    return size;
}

int kvs_flush(kvs *s) {
    rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
    char *err = NULL;
    int rc = 0;

    rocksdb_flushoptions_set_wait(fo, 1);
    for (int cf = 0; cf < KVS_CF_COUNT && rc == 0; cf++) {
        rocksdb_flush_cf(s->db, fo, s->cf[cf], &err);
        if (err != NULL)
            rc = kvs_error(err, "flush");
    }
    rocksdb_flushoptions_destroy(fo);
    return rc;
}

/* ---- batches ---- */

kvs_batch *kvs_batch_new(kvs *s) {
    kvs_batch *b = calloc(1, sizeof(*b));

    if (b == NULL)
        return NULL;
    b->store = s;
    /* Indexed, so kvs_batch_get sees the batch's own writes. */
    b->wb = rocksdb_writebatch_wi_create(0, 1);
    return b;
}

void kvs_batch_free(kvs_batch *b) {
    if (b == NULL)
        return;
    rocksdb_writebatch_wi_destroy(b->wb);
    free(b);
}

void kvs_batch_put(kvs_batch *b, kvs_cf cf, const void *key, size_t key_len, const void *value,
                   size_t value_len) {
    rocksdb_writebatch_wi_put_cf(b->wb, b->store->cf[cf], key, key_len, value, value_len);
}

void kvs_batch_delete(kvs_batch *b, kvs_cf cf, const void *key, size_t key_len) {
    rocksdb_writebatch_wi_delete_cf(b->wb, b->store->cf[cf], key, key_len);
}

int kvs_batch_get(kvs_batch *b, kvs_cf cf, const void *key, size_t key_len, bool *found,
                  char **value, size_t *value_len) {
    char *err = NULL;
    size_t len = 0;
    char *v = rocksdb_writebatch_wi_get_from_batch_and_db_cf(
        b->wb, b->store->db, b->store->read, b->store->cf[cf], key, key_len, &len, &err);

    if (err != NULL) {
        *found = false;
        *value = NULL;
        return kvs_error(err, "get");
    }
    return kvs_take_value(v, len, found, value, value_len);
}

size_t kvs_batch_count(kvs_batch *b) {
    return (size_t)rocksdb_writebatch_wi_count(b->wb);
}

int kvs_batch_write(kvs_batch *b, bool sync) {
    char *err = NULL;

    if (kvs_batch_count(b) == 0)
        return 0;
    rocksdb_write_writebatch_wi(b->store->db, sync ? b->store->sync_write : b->store->async_write,
                                b->wb, &err);
    rocksdb_writebatch_wi_clear(b->wb);
    if (err != NULL)
        return kvs_error(err, "write");
    if (sync)
        atomic_fetch_add(&b->store->synced_writes, 1);
    return 0;
}

int kvs_delete_ranges(kvs *s, const kvs_range *ranges, size_t n) {
    /* Past every valid key: keys are at most 4096 bytes, so 4097 bytes of
     * 0xff sort after all of them. */
    char beyond[4097];
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    char *err = NULL;

    memset(beyond, 0xff, sizeof(beyond));
    for (size_t i = 0; i < n; i++) {
        const kvs_range *r = &ranges[i];
        rocksdb_writebatch_delete_range_cf(wb, s->cf[r->cf], r->start, r->start_len,
                                           r->end_len ? r->end : beyond,
                                           r->end_len ? r->end_len : sizeof(beyond));
    }
    rocksdb_write(s->db, s->sync_write, wb, &err);
    rocksdb_writebatch_destroy(wb);
    if (err != NULL)
        return kvs_error(err, "delete range");
    atomic_fetch_add(&s->synced_writes, 1);
    return 0;
}

int kvs_delete_range(kvs *s, kvs_cf cf, const void *start, size_t start_len, const void *end,
                     size_t end_len) {
    kvs_range r = {cf, start, start_len, end, end_len};
    return kvs_delete_ranges(s, &r, 1);
}

struct kvs_snapshot {
    const rocksdb_snapshot_t *snap;
};

kvs_snapshot *kvs_snapshot_take(kvs *s) {
    kvs_snapshot *snap = calloc(1, sizeof(*snap));
    if (snap != NULL)
        snap->snap = rocksdb_create_snapshot(s->db);
    return snap;
}

void kvs_snapshot_release(kvs *s, kvs_snapshot *snap) {
    if (snap == NULL)
        return;
    rocksdb_release_snapshot(s->db, snap->snap);
    free(snap);
}

int kvs_write_sst(kvs *s, kvs_snapshot *snap, kvs_cf cf, const void *start, size_t start_len,
                  const void *end, size_t end_len, const char *path, uint64_t *keys) {
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_envoptions_t *env = rocksdb_envoptions_create();
    rocksdb_sstfilewriter_t *w = NULL;
    rocksdb_iterator_t *it;
    char *err = NULL;

    *keys = 0;
    rocksdb_readoptions_set_snapshot(ro, snap->snap);
    if (end_len > 0)
        rocksdb_readoptions_set_iterate_upper_bound(ro, end, end_len);
    it = rocksdb_create_iterator_cf(s->db, ro, s->cf[cf]);
    for (rocksdb_iter_seek(it, start, start_len); rocksdb_iter_valid(it) && err == NULL;
         rocksdb_iter_next(it)) {
        size_t kl, vl;
        const char *k = rocksdb_iter_key(it, &kl);
        const char *v = rocksdb_iter_value(it, &vl);
        if (w == NULL) {
            w = rocksdb_sstfilewriter_create(env, s->options);
            rocksdb_sstfilewriter_open(w, path, &err);
            if (err != NULL)
                break;
        }
        rocksdb_sstfilewriter_put(w, k, kl, v, vl, &err);
        (*keys)++;
    }
    if (err == NULL)
        rocksdb_iter_get_error(it, &err);
    if (err == NULL && w != NULL)
        rocksdb_sstfilewriter_finish(w, &err);
    if (w != NULL)
        rocksdb_sstfilewriter_destroy(w);
    rocksdb_iter_destroy(it);
    rocksdb_envoptions_destroy(env);
    rocksdb_readoptions_destroy(ro);
    return err ? kvs_error(err, "write sst") : 0;
}

int kvs_ingest_sst(kvs *s, kvs_cf cf, const char *path) {
    rocksdb_ingestexternalfileoptions_t *o = rocksdb_ingestexternalfileoptions_create();
    const char *files[] = {path};
    char *err = NULL;

    /* Copy rather than move: the file must outlive a crash mid-install. */
    rocksdb_ingestexternalfileoptions_set_move_files(o, 0);
    rocksdb_ingest_external_file_cf(s->db, s->cf[cf], files, 1, o, &err);
    rocksdb_ingestexternalfileoptions_destroy(o);
    return err ? kvs_error(err, "ingest sst") : 0;
}

const char *kvs_dir(const kvs *s) {
    return s->dir;
}

uint64_t kvs_synced_writes(kvs *s) {
    return atomic_load(&s->synced_writes);
}
