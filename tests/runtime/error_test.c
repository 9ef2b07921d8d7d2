/* error_test: the error table names and describes every code. */
#include <string.h>

#include <CUnit/CUnit.h>

#include "runtime/error.h"
#include "tests/testing/cunit_main.h"

static void test_every_code_has_a_distinct_name_and_message(void) {
    for (int a = 0; a < BS_ERR_COUNT_; a++) {
        CU_ASSERT_STRING_NOT_EQUAL(bs_err_name(a), "BS_ERR_UNKNOWN");
        CU_ASSERT_STRING_NOT_EQUAL(bs_err_message(a), "unknown error");
        for (int b = a + 1; b < BS_ERR_COUNT_; b++) {
            CU_ASSERT_STRING_NOT_EQUAL(bs_err_name(a), bs_err_name(b));
            CU_ASSERT_STRING_NOT_EQUAL(bs_err_message(a), bs_err_message(b));
        }
    }
}

static void test_codes_out_of_range_are_unknown(void) {
    CU_ASSERT_STRING_EQUAL(bs_err_name(-1), "BS_ERR_UNKNOWN");
    CU_ASSERT_STRING_EQUAL(bs_err_name(BS_ERR_COUNT_), "BS_ERR_UNKNOWN");
    CU_ASSERT_STRING_EQUAL(bs_err_message(1000), "unknown error");
}

static void test_names_match_codes(void) {
    CU_ASSERT_STRING_EQUAL(bs_err_name(BS_OK), "BS_OK");
    CU_ASSERT_STRING_EQUAL(bs_err_name(BS_ERR_NOT_FOUND), "BS_ERR_NOT_FOUND");
    CU_ASSERT_STRING_EQUAL(bs_err_message(BS_ERR_INVALID_ARGUMENT), "invalid argument");
}

int main(void) {
    CU_TestInfo tests[] = {
        {"every_code_has_a_distinct_name_and_message",
         test_every_code_has_a_distinct_name_and_message},
        {"codes_out_of_range_are_unknown", test_codes_out_of_range_are_unknown},
        {"names_match_codes", test_names_match_codes},
        CU_TEST_INFO_NULL,
    };
    return cunit_run_suite("error", tests, NULL, NULL);
}
