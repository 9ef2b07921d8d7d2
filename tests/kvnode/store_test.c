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

static void setup(void) {
    cunit_require(temp_dir_make(dir, sizeof(dir)) == 0, "make a temporary directory");
    cunit_require(kvs_open(dir, &store) == 0, "open the store");
}

static void teardown(void) {
    kvs_close(store);
    store = NULL;
    temp_dir_remove(dir);
}

/* Asserts that key holds exactly value (value NULL: that key is absent). */
static void expect_value(const char *key, size_t key_len, const char *value, size_t value_len) {
    bool found;
    char *got;
    size_t got_len;

    CU_ASSERT_EQUAL_FATAL(kvs_get(store, key, key_len, &found, &got, &got_len), 0);
    CU_ASSERT_EQUAL(found, value != NULL);
    if (value != NULL && found) {
        CU_ASSERT_EQUAL(got_len, value_len);
        CU_ASSERT(got_len == value_len && memcmp(got, value, value_len) == 0);
    }
    free(got);
}

static void test_put_then_get_returns_value(void) {
    CU_ASSERT_EQUAL(kvs_put(store, "k", 1, "v1", 2), 0);
    expect_value("k", 1, "v1", 2);
    CU_ASSERT_EQUAL(kvs_put(store, "k", 1, "second", 6), 0);
    expect_value("k", 1, "second", 6);
}

static void test_get_missing_key_is_not_found(void) {
    expect_value("nope", 4, NULL, 0);
}

static void test_binary_keys_and_values_round_trip(void) {
    const char key[] = {'a', '\0', (char)0xff, 'b'};
    const char value[] = {'\0', (char)0xff, '\0'};

    CU_ASSERT_EQUAL(kvs_put(store, key, sizeof(key), value, sizeof(value)), 0);
    expect_value(key, sizeof(key), value, sizeof(value));
    /* The prefix before the NUL is a different key. */
    expect_value("a", 1, NULL, 0);
}

static void test_empty_value_is_stored_and_found(void) {
    CU_ASSERT_EQUAL(kvs_put(store, "empty", 5, "", 0), 0);
    expect_value("empty", 5, "", 0);
}

static void test_delete_reports_whether_key_existed(void) {
    bool existed = false;

    CU_ASSERT_EQUAL(kvs_put(store, "d", 1, "x", 1), 0);
    CU_ASSERT_EQUAL(kvs_delete(store, "d", 1, &existed), 0);
    CU_ASSERT_TRUE(existed);
    expect_value("d", 1, NULL, 0);
    CU_ASSERT_EQUAL(kvs_delete(store, "d", 1, &existed), 0);
    CU_ASSERT_FALSE(existed);
}

/* Collects scanned keys into one string, separated by '|'. */
typedef struct {
    char keys[512];
    size_t len;
    int count;
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
    log->count++;
    return 0;
}

static void put_keys(const char *const *keys, int n) {
    for (int i = 0; i < n; i++)
        CU_ASSERT_EQUAL_FATAL(kvs_put(store, keys[i], strlen(keys[i]), "v", 1), 0);
}

static void test_scan_returns_keys_in_bytewise_order(void) {
    static const char *const keys[] = {"b", "a", "ab", "B", "\xff", "a\x01"};
    scan_log log = {0};
    bool more = true;

    put_keys(keys, 6);
    CU_ASSERT_EQUAL(kvs_scan(store, "", 0, NULL, 0, 100, collect_key, &log, &more), 0);
    CU_ASSERT_STRING_EQUAL(log.keys, "B|a|a\x01|ab|b|\xff|");
    CU_ASSERT_FALSE(more);
}

static void test_scan_honours_start_end_and_limit(void) {
    static const char *const keys[] = {"k1", "k2", "k3", "k4", "k5"};
    scan_log log = {0};
    bool more = false;

    put_keys(keys, 5);
    /* [k2, k4): end is exclusive. */
    CU_ASSERT_EQUAL(kvs_scan(store, "k2", 2, "k4", 2, 100, collect_key, &log, &more), 0);
    CU_ASSERT_STRING_EQUAL(log.keys, "k2|k3|");
    CU_ASSERT_FALSE(more);

    /* A limit that cuts the range says there is more. */
    memset(&log, 0, sizeof(log));
    CU_ASSERT_EQUAL(kvs_scan(store, "k", 1, NULL, 0, 2, collect_key, &log, &more), 0);
    CU_ASSERT_STRING_EQUAL(log.keys, "k1|k2|");
    CU_ASSERT_TRUE(more);

    /* A limit equal to what remains does not. */
    memset(&log, 0, sizeof(log));
    CU_ASSERT_EQUAL(kvs_scan(store, "k4", 2, NULL, 0, 2, collect_key, &log, &more), 0);
    CU_ASSERT_STRING_EQUAL(log.keys, "k4|k5|");
    CU_ASSERT_FALSE(more);
}

static int stop_after_first(const char *key, size_t key_len, const char *value, size_t value_len,
                            void *ctx) {
    (void)key;
    (void)key_len;
    (void)value;
    (void)value_len;
    (*(int *)ctx)++;
    return 42;
}

static void test_scan_stops_with_callback_code(void) {
    static const char *const keys[] = {"x1", "x2"};
    int calls = 0;
    bool more;

    put_keys(keys, 2);
    CU_ASSERT_EQUAL(kvs_scan(store, "x", 1, NULL, 0, 10, stop_after_first, &calls, &more), 42);
    CU_ASSERT_EQUAL(calls, 1);
}

static void test_data_survives_reopen(void) {
    CU_ASSERT_EQUAL(kvs_put(store, "durable", 7, "yes", 3), 0);
    kvs_close(store);
    store = NULL;
    CU_ASSERT_EQUAL_FATAL(kvs_open(dir, &store), 0);
    expect_value("durable", 7, "yes", 3);
}

static void test_second_open_of_same_dir_fails(void) {
    kvs *other = NULL;

    CU_ASSERT_NOT_EQUAL(kvs_open(dir, &other), 0);
    CU_ASSERT_PTR_NULL(other);
    /* The first handle still works. */
    CU_ASSERT_EQUAL(kvs_put(store, "still", 5, "ok", 2), 0);
}

static void test_writes_refused_when_disk_reserve_reached(void) {
    bool existed;

    /* No file system here has an exabyte free: every write hits the reserve. */
    kvs_set_disk_reserve(store, 1ull << 60);
    CU_ASSERT_EQUAL(kvs_put(store, "r", 1, "v", 1), BS_ERR_RESOURCE_EXHAUSTED);
    CU_ASSERT_EQUAL(kvs_delete(store, "r", 1, &existed), BS_ERR_RESOURCE_EXHAUSTED);
    expect_value("r", 1, NULL, 0);
    /* Below the reserve again, writes go through. */
    kvs_set_disk_reserve(store, 0);
    CU_ASSERT_EQUAL(kvs_put(store, "r", 1, "v", 1), 0);
    expect_value("r", 1, "v", 1);
}

int main(void) {
    CU_TestInfo tests[] = {
        {"put_then_get_returns_value", test_put_then_get_returns_value},
        {"get_missing_key_is_not_found", test_get_missing_key_is_not_found},
        {"binary_keys_and_values_round_trip", test_binary_keys_and_values_round_trip},
        {"empty_value_is_stored_and_found", test_empty_value_is_stored_and_found},
        {"delete_reports_whether_key_existed", test_delete_reports_whether_key_existed},
        {"scan_returns_keys_in_bytewise_order", test_scan_returns_keys_in_bytewise_order},
        {"scan_honours_start_end_and_limit", test_scan_honours_start_end_and_limit},
        {"scan_stops_with_callback_code", test_scan_stops_with_callback_code},
        {"data_survives_reopen", test_data_survives_reopen},
        {"second_open_of_same_dir_fails", test_second_open_of_same_dir_fails},
        {"writes_refused_when_disk_reserve_reached", test_writes_refused_when_disk_reserve_reached},
        CU_TEST_INFO_NULL,
    };
    return cunit_run_suite("kvnode_store", tests, setup, teardown);
}
