/* store: RocksDB with the "data" and "raft" column families.
 *
 * Put and Delete of one key are serialised by a striped lock so that Delete
 * can say truthfully whether the key existed: without it, a Put landing
 * between Delete's read and its write would be erased yet reported as absent.
 * Different keys rarely share a stripe, so their writes still reach RocksDB
 * together and share its group-committed fsync.
 */
#include "kvnode/store.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include <rocksdb/c.h>
#include <xxhash.h>

#include "runtime/error.h"
#include "runtime/log.h"

/* Number of key lock stripes; a power of two. */
#define KVS_KEY_LOCK_STRIPES 256

enum { KVS_CF_DEFAULT, KVS_CF_DATA, KVS_CF_RAFT, KVS_CF_COUNT };

static const char *const kvs_cf_names[KVS_CF_COUNT] = {"default", "data", "raft"};

struct kvs {
    char *dir;
    uint64_t disk_reserve_bytes;
    rocksdb_t *db;
    rocksdb_options_t *options;
    rocksdb_writeoptions_t *sync_write;
    rocksdb_readoptions_t *read;
    rocksdb_column_family_handle_t *cf[KVS_CF_COUNT];
    pthread_mutex_t key_locks[KVS_KEY_LOCK_STRIPES];
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
    s->read = rocksdb_readoptions_create();
    for (int i = 0; i < KVS_KEY_LOCK_STRIPES; i++)
        pthread_mutex_init(&s->key_locks[i], NULL);
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
    rocksdb_readoptions_destroy(s->read);
    rocksdb_options_destroy(s->options);
    for (int i = 0; i < KVS_KEY_LOCK_STRIPES; i++)
        pthread_mutex_destroy(&s->key_locks[i]);
    free(s->dir);
    free(s);
}

void kvs_set_disk_reserve(kvs *s, uint64_t bytes) {
    s->disk_reserve_bytes = bytes;
}

/* Refuses a write of `bytes` that would leave less than `reserve` free. A
 * statvfs per write costs about a microsecond, far below the fsync. */
static int kvs_check_space(kvs *s, uint64_t bytes, uint64_t reserve) {
    struct statvfs st;

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

static pthread_mutex_t *kvs_key_lock(kvs *s, const void *key, size_t key_len) {
    return &s->key_locks[XXH3_64bits(key, key_len) & (KVS_KEY_LOCK_STRIPES - 1)];
}

int kvs_put(kvs *s, const void *key, size_t key_len, const void *value, size_t value_len) {
    pthread_mutex_t *lock = kvs_key_lock(s, key, key_len);
    char *err = NULL;
    int rc = kvs_check_space(s, key_len + value_len, s->disk_reserve_bytes);

    if (rc != 0)
        return rc;
    pthread_mutex_lock(lock);
    rocksdb_put_cf(s->db, s->sync_write, s->cf[KVS_CF_DATA], key, key_len, value, value_len, &err);
    pthread_mutex_unlock(lock);
    return err ? kvs_error(err, "put") : 0;
}

int kvs_get(kvs *s, const void *key, size_t key_len, bool *found, char **value, size_t *value_len) {
    char *err = NULL;
    size_t len = 0;
    char *v = rocksdb_get_cf(s->db, s->read, s->cf[KVS_CF_DATA], key, key_len, &len, &err);

    *found = false;
    *value = NULL;
    *value_len = 0;
    if (err != NULL)
        return kvs_error(err, "get");
    if (v == NULL)
        return 0;

    /* Hand the caller memory from our allocator, not RocksDB's. */
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

int kvs_delete(kvs *s, const void *key, size_t key_len, bool *existed) {
    pthread_mutex_t *lock = kvs_key_lock(s, key, key_len);
    rocksdb_pinnableslice_t *old;
    char *err = NULL;
    int rc = kvs_check_space(s, key_len, s->disk_reserve_bytes / 2);

    if (rc != 0)
        return rc;
    pthread_mutex_lock(lock);
    old = rocksdb_get_pinned_cf(s->db, s->read, s->cf[KVS_CF_DATA], key, key_len, &err);
    if (err == NULL) {
        *existed = old != NULL;
        rocksdb_pinnableslice_destroy(old);
        if (*existed)
            rocksdb_delete_cf(s->db, s->sync_write, s->cf[KVS_CF_DATA], key, key_len, &err);
    }
    pthread_mutex_unlock(lock);
    return err ? kvs_error(err, "delete") : 0;
}

int kvs_scan(kvs *s, const void *start, size_t start_len, const void *end, size_t end_len,
             uint32_t limit, kvs_scan_cb cb, void *ctx, bool *more) {
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_iterator_t *it;
    uint32_t visited = 0;
    char *err = NULL;
    int rc = 0;

    /* The bound lets RocksDB stop at `end` instead of us comparing keys. */
    if (end_len > 0)
        rocksdb_readoptions_set_iterate_upper_bound(ro, end, end_len);
    it = rocksdb_create_iterator_cf(s->db, ro, s->cf[KVS_CF_DATA]);
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
