/* cunit_main: runs one CUnit suite and turns its result into an exit code, so
 * each cc_test is one suite that Bazel reports by name. */
#ifndef BASALT_TESTS_TESTING_CUNIT_MAIN_H
#define BASALT_TESTS_TESTING_CUNIT_MAIN_H

#include <CUnit/CUnit.h>

/* Runs `tests` (ending with CU_TEST_INFO_NULL) as suite `name`, with optional
 * setup and teardown run around each test. Returns 0 when every assertion
 * held, 1 otherwise (or when CUnit itself failed). */
int cunit_run_suite(const char *name, CU_TestInfo *tests, CU_SetUpFunc setup,
                    CU_TearDownFunc teardown);

/* For setup functions, which cannot fail a test: when `ok` is false, reports
 * `what` and ends the test binary with a failure. */
void cunit_require(int ok, const char *what);

#endif
