/* kv_limits_test: every limit of the public API, at and just past its edge. */
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "runtime/error.h"
#include "runtime/kv_limits.h"
#include "tests/testing/cunit_main.h"

static uint8_t *big; /* KV_VALUE_BYTES_MAX + 1 bytes of 'x' */
static char msg[KV_ERROR_MESSAGE_BYTES];

static ProtobufCBinaryData bytes_of(size_t len) {
    ProtobufCBinaryData b = {len, big};
    return b;
}

static int check_put(size_t key_len, size_t value_len) {
    Basalt__V1__PutRequest req = BASALT__V1__PUT_REQUEST__INIT;
    req.key = bytes_of(key_len);
    req.value = bytes_of(value_len);
    msg[0] = '\0';
    return kv_check_put(&req, msg, sizeof(msg));
}

static void test_key_must_not_be_empty(void) {
    Basalt__V1__GetRequest get = BASALT__V1__GET_REQUEST__INIT;
    Basalt__V1__DeleteRequest del = BASALT__V1__DELETE_REQUEST__INIT;

    CU_ASSERT_EQUAL(check_put(0, 1), BS_ERR_INVALID_ARGUMENT);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "empty"));
    CU_ASSERT_EQUAL(kv_check_get(&get, msg, sizeof(msg)), BS_ERR_INVALID_ARGUMENT);
    CU_ASSERT_EQUAL(kv_check_delete(&del, msg, sizeof(msg)), BS_ERR_INVALID_ARGUMENT);
}

static void test_key_limit_is_inclusive(void) {
    CU_ASSERT_EQUAL(check_put(KV_KEY_BYTES_MAX, 1), 0);
    CU_ASSERT_EQUAL(check_put(KV_KEY_BYTES_MAX + 1, 1), BS_ERR_INVALID_ARGUMENT);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "4097 bytes"));
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "4096"));
}

static void test_value_limit_is_inclusive_and_empty_allowed(void) {
    CU_ASSERT_EQUAL(check_put(1, 0), 0);
    CU_ASSERT_EQUAL(check_put(1, KV_VALUE_BYTES_MAX), 0);
    CU_ASSERT_EQUAL(check_put(1, KV_VALUE_BYTES_MAX + 1), BS_ERR_INVALID_ARGUMENT);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "value"));
}

static void test_unknown_consistency_is_refused(void) {
    Basalt__V1__GetRequest get = BASALT__V1__GET_REQUEST__INIT;
    get.key = bytes_of(1);

    get.consistency = BASALT__V1__CONSISTENCY__CONSISTENCY_EVENTUAL;
    CU_ASSERT_EQUAL(kv_check_get(&get, msg, sizeof(msg)), 0);
    get.consistency = (Basalt__V1__Consistency)7;
    CU_ASSERT_EQUAL(kv_check_get(&get, msg, sizeof(msg)), BS_ERR_INVALID_ARGUMENT);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "consistency"));
}

static void test_unspecified_consistency_means_strong(void) {
    CU_ASSERT_EQUAL(kv_effective_consistency(BASALT__V1__CONSISTENCY__CONSISTENCY_UNSPECIFIED),
                    BASALT__V1__CONSISTENCY__CONSISTENCY_STRONG);
    CU_ASSERT_EQUAL(kv_effective_consistency(BASALT__V1__CONSISTENCY__CONSISTENCY_EVENTUAL),
                    BASALT__V1__CONSISTENCY__CONSISTENCY_EVENTUAL);
}

static void test_scan_limit_default_and_maximum(void) {
    Basalt__V1__ScanRequest req = BASALT__V1__SCAN_REQUEST__INIT;
    uint32_t limit = 0;

    CU_ASSERT_EQUAL(kv_check_scan(&req, &limit, msg, sizeof(msg)), 0);
    CU_ASSERT_EQUAL(limit, KV_SCAN_LIMIT_DEFAULT);
    req.limit = KV_SCAN_LIMIT_MAX;
    CU_ASSERT_EQUAL(kv_check_scan(&req, &limit, msg, sizeof(msg)), 0);
    CU_ASSERT_EQUAL(limit, KV_SCAN_LIMIT_MAX);
    req.limit = KV_SCAN_LIMIT_MAX + 1;
    CU_ASSERT_EQUAL(kv_check_scan(&req, &limit, msg, sizeof(msg)), BS_ERR_INVALID_ARGUMENT);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "10001"));
}

static void test_scan_bounds(void) {
    Basalt__V1__ScanRequest req = BASALT__V1__SCAN_REQUEST__INIT;
    uint8_t a[] = "a", b[] = "b";
    uint32_t limit;

    req.start = (ProtobufCBinaryData){1, b};
    req.end = (ProtobufCBinaryData){1, a};
    CU_ASSERT_EQUAL(kv_check_scan(&req, &limit, msg, sizeof(msg)), BS_ERR_INVALID_ARGUMENT);
    /* start == end is an empty range, not an error. */
    req.end = (ProtobufCBinaryData){1, b};
    CU_ASSERT_EQUAL(kv_check_scan(&req, &limit, msg, sizeof(msg)), 0);
    /* Empty end: to the end of the keyspace. */
    req.end = (ProtobufCBinaryData){0, NULL};
    CU_ASSERT_EQUAL(kv_check_scan(&req, &limit, msg, sizeof(msg)), 0);
    /* A bound may be a maximal key plus the 0x00 that continues after it. */
    req.start = bytes_of(KV_KEY_BYTES_MAX + 1);
    CU_ASSERT_EQUAL(kv_check_scan(&req, &limit, msg, sizeof(msg)), 0);
    req.start = bytes_of(KV_SCAN_BOUND_BYTES_MAX + 1);
    CU_ASSERT_EQUAL(kv_check_scan(&req, &limit, msg, sizeof(msg)), BS_ERR_INVALID_ARGUMENT);
    req.start = bytes_of(0);
    req.end = bytes_of(KV_SCAN_BOUND_BYTES_MAX + 1);
    CU_ASSERT_EQUAL(kv_check_scan(&req, &limit, msg, sizeof(msg)), BS_ERR_INVALID_ARGUMENT);
}

int main(void) {
    CU_TestInfo tests[] = {
        {"key_must_not_be_empty", test_key_must_not_be_empty},
        {"key_limit_is_inclusive", test_key_limit_is_inclusive},
        {"value_limit_is_inclusive_and_empty_allowed",
         test_value_limit_is_inclusive_and_empty_allowed},
        {"unknown_consistency_is_refused", test_unknown_consistency_is_refused},
        {"unspecified_consistency_means_strong", test_unspecified_consistency_means_strong},
        {"scan_limit_default_and_maximum", test_scan_limit_default_and_maximum},
        {"scan_bounds", test_scan_bounds},
        CU_TEST_INFO_NULL,
    };
    int rc;

    big = malloc(KV_VALUE_BYTES_MAX + 1);
    memset(big, 'x', KV_VALUE_BYTES_MAX + 1);
    rc = cunit_run_suite("kv_limits", tests, NULL, NULL);
    free(big);
    return rc;
}
