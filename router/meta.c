/* meta: router state in RocksDB. Keys: "cluster-id"; "next-id/<kind>" (the
 * next free id, 8 bytes little-endian); "node/<id 8 bytes big-endian>" ->
 * "address\0zone"; "admin/<id>" -> one byte of meta_node_admin (absent:
 * active); "removed/<id>" -> empty; "schedule" -> one byte, 0 when off.
 * Every write is synced. */
#include "router/meta.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>
#include <rocksdb/c.h>

#include "runtime/error.h"
#include "runtime/log.h"

#define META_CLUSTER_ID_BYTES 16

struct meta {
    rocksdb_t *db;
    rocksdb_options_t *options;
    rocksdb_writeoptions_t *sync;
    rocksdb_readoptions_t *read;
    char cluster_id[2 * META_CLUSTER_ID_BYTES + 1];
    pthread_mutex_t lock; /* allocations read-modify-write */
};

static int meta_error(char *err, const char *what) {
    log_error("router store %s failed: %s", what, err);
    rocksdb_free(err);
    return BS_ERR_IO;
}

static int meta_get(meta *m, const char *key, size_t key_len, char **value, size_t *len) {
    char *err = NULL;
    *value = rocksdb_get(m->db, m->read, key, key_len, len, &err);
    return err ? meta_error(err, "get") : 0;
}

static int meta_put(meta *m, const char *key, size_t key_len, const void *value, size_t len) {
    char *err = NULL;
    rocksdb_put(m->db, m->sync, key, key_len, value, len, &err);
    return err ? meta_error(err, "put") : 0;
}

static int meta_load_cluster_id(meta *m) {
    static const char key[] = "cluster-id";
    unsigned char raw[META_CLUSTER_ID_BYTES];
    char *value;
    size_t len;
    int rc;

    if ((rc = meta_get(m, key, sizeof(key) - 1, &value, &len)) != 0)
        return rc;
    if (value != NULL && len < sizeof(m->cluster_id)) {
        memcpy(m->cluster_id, value, len);
        m->cluster_id[len] = '\0';
        rocksdb_free(value);
        return 0;
    }
    rocksdb_free(value);
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return BS_ERR_INTERNAL;
    for (int i = 0; i < META_CLUSTER_ID_BYTES; i++)
        snprintf(m->cluster_id + 2 * i, 3, "%02x", raw[i]);
    log_info("new cluster %s", m->cluster_id);
    return meta_put(m, key, sizeof(key) - 1, m->cluster_id, strlen(m->cluster_id));
}

int meta_open(const char *dir, meta **out) {
    meta *m = calloc(1, sizeof(*m));
    char *err = NULL;

    *out = NULL;
    if (m == NULL)
        return BS_ERR_NOMEM;
    m->options = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(m->options, 1);
    m->db = rocksdb_open(m->options, dir, &err);
    if (err != NULL) {
        int rc = meta_error(err, "open");
        log_error("cannot open the router's store in %s (is another router using it?)", dir);
        rocksdb_options_destroy(m->options);
        free(m);
        return rc;
    }
    m->sync = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(m->sync, 1);
    m->read = rocksdb_readoptions_create();
    pthread_mutex_init(&m->lock, NULL);
    int rc = meta_load_cluster_id(m);
    if (rc != 0) {
        meta_close(m);
        return rc;
    }
    *out = m;
    return 0;
}

void meta_close(meta *m) {
    if (m == NULL)
        return;
    rocksdb_close(m->db);
    rocksdb_writeoptions_destroy(m->sync);
    rocksdb_readoptions_destroy(m->read);
    rocksdb_options_destroy(m->options);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

const char *meta_cluster_id(const meta *m) {
    return m->cluster_id;
}

int meta_alloc_ids(meta *m, meta_id_kind kind, uint64_t count, uint64_t *first) {
    char key[32];
    uint8_t buf[8];
    char *value;
    size_t len;
    uint64_t next = 1;
    int rc;

    snprintf(key, sizeof(key), "next-id/%d", (int)kind);
    pthread_mutex_lock(&m->lock);
    rc = meta_get(m, key, strlen(key), &value, &len);
    if (rc == 0 && value != NULL && len == 8) {
        next = 0;
        for (int i = 7; i >= 0; i--)
            next = (next << 8) | (uint8_t)value[i];
    }
    rocksdb_free(value);
    if (rc == 0 && count > 0) {
        uint64_t after = next + count;
        for (int i = 0; i < 8; i++)
            buf[i] = (uint8_t)(after >> (8 * i));
        rc = meta_put(m, key, strlen(key), buf, sizeof(buf));
    }
    pthread_mutex_unlock(&m->lock);
    *first = next;
    return rc;
}

int meta_reserve_ids(meta *m, meta_id_kind kind, uint64_t id) {
    uint64_t next;
    int rc = meta_alloc_ids(m, kind, 0, &next);

    /* Allocations and reservations come from the router's threads; the
     * window between reading and raising is closed by allocating the gap. */
    if (rc == 0 && next <= id)
        rc = meta_alloc_ids(m, kind, id + 1 - next, &next);
    return rc;
}

/* "<prefix><id 8 bytes big-endian>" into key; returns its length. */
static size_t meta_id_key(const char *prefix, uint64_t id, char *key) {
    size_t pl = strlen(prefix);
    memcpy(key, prefix, pl);
    for (int i = 0; i < 8; i++)
        key[pl + i] = (char)(id >> (8 * (7 - i)));
    return pl + 8;
}

int meta_put_node(meta *m, uint64_t id, const char *address, const char *zone) {
    char key[13];
    size_t al = strlen(address), zl = strlen(zone);
    char *value = malloc(al + zl + 2);
    int rc;

    if (value == NULL)
        return BS_ERR_NOMEM;
    meta_id_key("node/", id, key);
    memcpy(value, address, al + 1);
    memcpy(value + al + 1, zone, zl + 1);
    rc = meta_put(m, key, sizeof(key), value, al + zl + 2);
    free(value);
    return rc;
}

int meta_each_node(meta *m, meta_node_cb cb, void *ctx) {
    rocksdb_iterator_t *it = rocksdb_create_iterator(m->db, m->read);
    char *err = NULL;

    for (rocksdb_iter_seek(it, "node/", 5); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t kl, vl;
        const char *k = rocksdb_iter_key(it, &kl);
        const char *v = rocksdb_iter_value(it, &vl);
        if (kl != 13 || memcmp(k, "node/", 5) != 0)
            break;
        uint64_t id = 0;
        for (int i = 0; i < 8; i++)
            id = (id << 8) | (uint8_t)k[5 + i];
        /* "address\0zone\0": both strings end inside the value. */
        if (vl < 2 || v[vl - 1] != '\0' || memchr(v, '\0', vl - 1) == NULL)
            continue;
        cb(ctx, id, v, v + strlen(v) + 1);
    }
    rocksdb_iter_get_error(it, &err);
    rocksdb_iter_destroy(it);
    return err ? meta_error(err, "scan") : 0;
}

/* One byte stored under key, or `otherwise` when there is none. */
static uint8_t meta_get_byte(meta *m, const char *key, size_t key_len, uint8_t otherwise) {
    char *value;
    size_t len;
    uint8_t byte = otherwise;

    if (meta_get(m, key, key_len, &value, &len) == 0 && value != NULL && len == 1)
        byte = (uint8_t)value[0];
    rocksdb_free(value);
    return byte;
}

int meta_put_node_admin(meta *m, uint64_t id, meta_node_admin admin) {
    char key[32];
    uint8_t byte = (uint8_t)admin;
    return meta_put(m, key, meta_id_key("admin/", id, key), &byte, 1);
}

meta_node_admin meta_node_admin_of(meta *m, uint64_t id) {
    char key[32];
    uint8_t byte = meta_get_byte(m, key, meta_id_key("admin/", id, key), META_NODE_ACTIVE);
    return byte <= META_NODE_DRAINED ? (meta_node_admin)byte : META_NODE_ACTIVE;
}

int meta_remove_node(meta *m, uint64_t id) {
    rocksdb_writebatch_t *batch = rocksdb_writebatch_create();
    char key[32];
    char *err = NULL;

    rocksdb_writebatch_put(batch, key, meta_id_key("removed/", id, key), "", 0);
    rocksdb_writebatch_delete(batch, key, meta_id_key("node/", id, key));
    rocksdb_writebatch_delete(batch, key, meta_id_key("admin/", id, key));
    rocksdb_write(m->db, m->sync, batch, &err);
    rocksdb_writebatch_destroy(batch);
    return err ? meta_error(err, "remove node") : 0;
}

bool meta_node_removed(meta *m, uint64_t id) {
    char key[32];
    char *value;
    size_t len;
    bool removed =
        meta_get(m, key, meta_id_key("removed/", id, key), &value, &len) == 0 && value != NULL;
    rocksdb_free(value);
    return removed;
}

int meta_put_schedule_enabled(meta *m, bool enabled) {
    uint8_t byte = enabled ? 1 : 0;
    return meta_put(m, "schedule", 8, &byte, 1);
}

bool meta_schedule_enabled(meta *m) {
    return meta_get_byte(m, "schedule", 8, 1) != 0;
}
