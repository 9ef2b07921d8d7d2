/* store_test: kvnode's RocksDB store, on a real RocksDB in a fresh directory. */
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "kvnode/store.h"
#include "runtime/error.h"
#include "tests/testing/cunit_main.h"
#include "tests/testing/temp_dir.h"

static char dir[256];
static kvs *store;
static kvs_batch *batch;

static void setup(void) {
    cunit_require(temp_dir_make(dir, sizeof(dir)) == 0, "make a temporary directory");
    cunit_require(kvs_open(dir, &store) == 0, "open the store");
    batch = kvs_batch_new(store);
}

static void teardown(void) {
    kvs_batch_free(batch);
    kvs_close(store);
    store = NULL;
    temp_dir_remove(dir);
}

static void put(kvs_cf cf, const char *key, size_t key_len, const char *value, size_t value_len) {
    kvs_batch_put(batch, cf, key, key_len, value, value_len);
    CU_ASSERT_EQUAL_FATAL(kvs_batch_write(batch, true), 0);
}

/* Asserts that key holds exactly value (value NULL: that key is absent). */
static void expect_value(kvs_cf cf, const char *key, size_t key_len, const char *value,
                         size_t value_len) {
    bool found;
    char *got;
    size_t got_len;

    CU_ASSERT_EQUAL_FATAL(kvs_get(store, cf, key, key_len, &found, &got, &got_len), 0);
    CU_ASSERT_EQUAL(found, value != NULL);
    if (value != NULL && found)
        CU_ASSERT(got_len == value_len && memcmp(got, value, value_len) == 0);
    free(got);
}

static void test_batch_write_then_get(void) {
    put(KVS_CF_DATA, "k", 1, "v1", 2);
    expect_value(KVS_CF_DATA, "k", 1, "v1", 2);
    put(KVS_CF_DATA, "k", 1, "second", 6);
    expect_value(KVS_CF_DATA, "k", 1, "second", 6);
    expect_value(KVS_CF_DATA, "nope", 4, NULL, 0);
}

static void test_column_families_are_separate(void) {
    put(KVS_CF_RAFT, "k", 1, "raft", 4);
    expect_value(KVS_CF_DATA, "k", 1, NULL, 0);
    expect_value(KVS_CF_RAFT, "k", 1, "raft", 4);
}

static void test_binary_keys_values_and_empty_value(void) {
    const char key[] = {'a', '\0', (char)0xff, 'b'};
    const char value[] = {'\0', (char)0xff, '\0'};

    put(KVS_CF_DATA, key, sizeof(key), value, sizeof(value));
    expect_value(KVS_CF_DATA, key, sizeof(key), value, sizeof(value));
    expect_value(KVS_CF_DATA, "a", 1, NULL, 0);
    put(KVS_CF_DATA, "empty", 5, "", 0);
    expect_value(KVS_CF_DATA, "empty", 5, "", 0);
}

static void test_batch_get_sees_the_batch_itself(void) {
    bool found;
    char *v;
    size_t len;

    put(KVS_CF_DATA, "d", 1, "x", 1);
    kvs_batch_delete(batch, KVS_CF_DATA, "d", 1);
    kvs_batch_put(batch, KVS_CF_DATA, "n", 1, "new", 3);
    CU_ASSERT_EQUAL(kvs_batch_get(batch, KVS_CF_DATA, "d", 1, &found, &v, &len), 0);
    CU_ASSERT_FALSE(found);
    CU_ASSERT_EQUAL(kvs_batch_get(batch, KVS_CF_DATA, "n", 1, &found, &v, &len), 0);
    CU_ASSERT_TRUE(found);
    free(v);
    /* Not written yet: the store does not see it. */
    expect_value(KVS_CF_DATA, "d", 1, "x", 1);
    CU_ASSERT_EQUAL(kvs_batch_count(batch), 2);
    CU_ASSERT_EQUAL(kvs_batch_write(batch, false), 0);
    CU_ASSERT_EQUAL(kvs_batch_count(batch), 0);
    expect_value(KVS_CF_DATA, "d", 1, NULL, 0);
}

/* Collects scanned keys into one string, separated by '|'. */
typedef struct {
    char keys[512];
    size_t len;
} scan_log;

static int collect_key(const char *key, size_t key_len, const char *value, size_t value_len,
                       void *ctx) {
    scan_log *log = ctx;
    (void)value;
    (void)value_len;
    CU_ASSERT_FATAL(log->len + key_len + 1 < sizeof(log->keys));
    memcpy(log->keys + log->len, key, key_len);
    log->len += key_len;
    log->keys[log->len++] = '|';
    log->keys[log->len] = '\0';
    return 0;
}

static void put_keys(const char *const *keys, int n) {
    for (int i = 0; i < n; i++)
        kvs_batch_put(batch, KVS_CF_DATA, keys[i], strlen(keys[i]), "v", 1);
    CU_ASSERT_EQUAL_FATAL(kvs_batch_write(batch, true), 0);
}

static void test_scan_order_bounds_and_limit(void) {
    static const char *const keys[] = {"b", "a", "ab", "B", "\xff", "a\x01"};
    scan_log log = {0};
    bool more = true;

    put_keys(keys, 6);
    CU_ASSERT_EQUAL(kvs_scan(store, KVS_CF_DATA, "", 0, NULL, 0, 100, collect_key, &log, &more), 0);
    CU_ASSERT_STRING_EQUAL(log.keys, "B|a|a\x01|ab|b|\xff|");
    CU_ASSERT_FALSE(more);
    memset(&log, 0, sizeof(log));
    CU_ASSERT_EQUAL(kvs_scan(store, KVS_CF_DATA, "a", 1, "b", 1, 2, collect_key, &log, &more), 0);
    CU_ASSERT_STRING_EQUAL(log.keys, "a|a\x01|");
    CU_ASSERT_TRUE(more);
}

static void test_delete_range_to_the_end(void) {
    static const char *const keys[] = {"r1", "r2", "s1", "\xff\xff"};
    scan_log log = {0};
    bool more;

    put_keys(keys, 4);
    CU_ASSERT_EQUAL(kvs_delete_range(store, KVS_CF_DATA, "r2", 2, NULL, 0), 0);
    CU_ASSERT_EQUAL(kvs_scan(store, KVS_CF_DATA, "", 0, NULL, 0, 100, collect_key, &log, &more), 0);
    CU_ASSERT_STRING_EQUAL(log.keys, "r1|");
}

static void test_data_survives_reopen(void) {
    put(KVS_CF_DATA, "durable", 7, "yes", 3);
    kvs_batch_free(batch);
    kvs_close(store);
    CU_ASSERT_EQUAL_FATAL(kvs_open(dir, &store), 0);
    batch = kvs_batch_new(store);
    expect_value(KVS_CF_DATA, "durable", 7, "yes", 3);
}

static void test_second_open_of_same_dir_fails(void) {
    kvs *other = NULL;

    CU_ASSERT_NOT_EQUAL(kvs_open(dir, &other), 0);
    CU_ASSERT_PTR_NULL(other);
    put(KVS_CF_DATA, "still", 5, "ok", 2);
}

static void test_synced_writes_are_counted(void) {
    uint64_t before = kvs_synced_writes(store);

    put(KVS_CF_DATA, "a", 1, "1", 1);
    kvs_batch_put(batch, KVS_CF_DATA, "b", 1, "2", 1);
    CU_ASSERT_EQUAL(kvs_batch_write(batch, false), 0);
    CU_ASSERT_EQUAL(kvs_synced_writes(store) - before, 1);
}

static void test_disk_reserve(void) {
    /* No file system here has an exabyte free. */
    kvs_set_disk_reserve(store, 1ull << 60);
    CU_ASSERT_EQUAL(kvs_check_space(store, 1, 100), BS_ERR_RESOURCE_EXHAUSTED);
    CU_ASSERT_EQUAL(kvs_check_space(store, 1, 50), BS_ERR_RESOURCE_EXHAUSTED);
    kvs_set_disk_reserve(store, 0);
    CU_ASSERT_EQUAL(kvs_check_space(store, 1, 100), 0);
}

int main(void) {
    CU_TestInfo tests[] = {
        {"batch_write_then_get", test_batch_write_then_get},
        {"column_families_are_separate", test_column_families_are_separate},
        {"binary_keys_values_and_empty_value", test_binary_keys_values_and_empty_value},
        {"batch_get_sees_the_batch_itself", test_batch_get_sees_the_batch_itself},
        {"scan_order_bounds_and_limit", test_scan_order_bounds_and_limit},
        {"delete_range_to_the_end", test_delete_range_to_the_end},
        {"data_survives_reopen", test_data_survives_reopen},
        {"second_open_of_same_dir_fails", test_second_open_of_same_dir_fails},
        {"synced_writes_are_counted", test_synced_writes_are_counted},
        {"disk_reserve", test_disk_reserve},
        CU_TEST_INFO_NULL,
    };
    return cunit_run_suite("kvnode_store", tests, setup, teardown);
}
