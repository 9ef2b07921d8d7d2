/* cunit_main: one suite per test binary, verbose, failing the process on any
 * failed assertion. */
#include "tests/testing/cunit_main.h"

#include <stdio.h>
#include <stdlib.h>

#include <CUnit/Basic.h>

int cunit_run_suite(const char *name, CU_TestInfo *tests, CU_SetUpFunc setup,
                    CU_TearDownFunc teardown) {
    CU_SuiteInfo suites[] = {
        {(char *)name, NULL, NULL, setup, teardown, tests},
        CU_SUITE_INFO_NULL,
    };
    unsigned failures;

    if (CU_initialize_registry() != CUE_SUCCESS || CU_register_suites(suites) != CUE_SUCCESS) {
        fprintf(stderr, "cunit: cannot set up suite %s: %s\n", name, CU_get_error_msg());
        return 1;
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    failures = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    if (CU_get_number_of_tests_run() == 0) {
        fprintf(stderr, "cunit: suite %s ran no test\n", name);
        failures = 1;
    }
    CU_cleanup_registry();
    return failures == 0 ? 0 : 1;
}

void cunit_require(int ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "test setup failed: %s\n", what);
        exit(1);
    }
}
