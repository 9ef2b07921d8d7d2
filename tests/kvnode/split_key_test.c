/* split_key_test: choosing where to split a shard (the middle of its range by
 * bytes) and the store's size estimate, on a real RocksDB. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "kvnode/node.h"
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

/* Puts keys "k00000".. with values of value_len(i) bytes. */
static void put_keys(int count, size_t (*value_len)(int)) {
    kvs_batch *b = kvs_batch_new(store);
    char key[16], *value = calloc(1, 4096);

    for (int i = 0; i < count; i++) {
        snprintf(key, sizeof(key), "k%05d", i);
        kvs_batch_put(b, KVS_CF_DATA, key, strlen(key), value, value_len(i));
    }
    CU_ASSERT_EQUAL_FATAL(kvs_batch_write(b, true), 0);
    kvs_batch_free(b);
    free(value);
}

static size_t same_size(int i) {
    (void)i;
    return 100;
}

/* The first tenth of the keys holds as many bytes as the rest. */
static size_t heavy_front(int i) {
    return i < 1000 ? 900 : 100;
}

static const ProtobufCBinaryData everything = {0, NULL};

/* The key index of a "k%05d" key. */
static int key_index(ProtobufCBinaryData key) {
    char text[16] = "";
    memcpy(text, key.data, key.len < sizeof(text) - 1 ? key.len : sizeof(text) - 1);
    return atoi(text + 1);
}

static void test_middle_of_equal_pairs_is_the_middle_key(void) {
    ProtobufCBinaryData key;

    /* Far more keys than samples: the sampler thins itself several times. */
    put_keys(10000, same_size);
    CU_ASSERT_EQUAL_FATAL(node_split_middle_key(store, everything, everything, &key), 0);
    int at = key_index(key);
    CU_ASSERT(at > 4800 && at < 5200);
    free(key.data);
}

static void test_middle_goes_by_bytes_not_by_count(void) {
    ProtobufCBinaryData key;

    put_keys(10000, heavy_front);
    CU_ASSERT_EQUAL_FATAL(node_split_middle_key(store, everything, everything, &key), 0);
    /* 900,000 bytes before k01000, 900,000 after: the middle is near there. */
    int at = key_index(key);
    CU_ASSERT(at > 800 && at < 1300);
    free(key.data);
}

static void test_middle_stays_within_the_range(void) {
    ProtobufCBinaryData key, start = {6, (uint8_t *)"k02000"}, end = {6, (uint8_t *)"k03000"};

    put_keys(10000, same_size);
    CU_ASSERT_EQUAL_FATAL(node_split_middle_key(store, start, end, &key), 0);
    int at = key_index(key);
    CU_ASSERT(at > 2400 && at < 2600);
    free(key.data);
}

static void test_never_the_first_key_and_two_keys_suffice(void) {
    ProtobufCBinaryData key;

    put_keys(2, same_size);
    CU_ASSERT_EQUAL_FATAL(node_split_middle_key(store, everything, everything, &key), 0);
    CU_ASSERT(key.len == 6 && memcmp(key.data, "k00001", 6) == 0);
    free(key.data);
}

static void test_too_few_keys(void) {
    ProtobufCBinaryData key = {0, NULL};

    CU_ASSERT_EQUAL(node_split_middle_key(store, everything, everything, &key), BS_ERR_NOT_FOUND);
    put_keys(1, same_size);
    CU_ASSERT_EQUAL(node_split_middle_key(store, everything, everything, &key), BS_ERR_NOT_FOUND);
    CU_ASSERT_PTR_NULL(key.data);
}

static void test_approximate_size_counts_flushed_files(void) {
    put_keys(10000, same_size);
    CU_ASSERT_EQUAL_FATAL(kvs_flush(store), 0);
    uint64_t all = kvs_approximate_size(store, KVS_CF_DATA, NULL, 0, NULL, 0);
    uint64_t half = kvs_approximate_size(store, KVS_CF_DATA, "k05000", 6, NULL, 0);
    /* A million bytes of values (less once compressed), the upper half about
     * half of it; nothing in the other column family. */
    CU_ASSERT(all > 100000 && all < 2000000);
    CU_ASSERT(half > all / 4 && half < all * 3 / 4);
    CU_ASSERT_EQUAL(kvs_approximate_size(store, KVS_CF_RAFT, NULL, 0, NULL, 0), 0);
}

int main(void) {
    CU_TestInfo tests[] = {
        {"middle_of_equal_pairs_is_the_middle_key", test_middle_of_equal_pairs_is_the_middle_key},
        {"middle_goes_by_bytes_not_by_count", test_middle_goes_by_bytes_not_by_count},
        {"middle_stays_within_the_range", test_middle_stays_within_the_range},
        {"never_the_first_key_and_two_keys_suffice", test_never_the_first_key_and_two_keys_suffice},
        {"too_few_keys", test_too_few_keys},
        {"approximate_size_counts_flushed_files", test_approximate_size_counts_flushed_files},
        CU_TEST_INFO_NULL,
    };
    return cunit_run_suite("kvnode_split_key", tests, setup, teardown);
}
