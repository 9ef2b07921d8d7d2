/* kvctl_args_test: kvctl's command line parsing. */
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "tests/testing/cunit_main.h"
#include "tools/kvctl/args.h"

static char why[256];

/* Parses a NULL-terminated list of words after "kvctl". */
static int parse(kvctl_args *a, const char **words) {
    char *argv[32];
    int argc = 0;

    argv[argc++] = "kvctl";
    while (*words)
        argv[argc++] = (char *)*words++;
    argv[argc] = NULL;
    return kvctl_parse_args(argc, argv, a, why, sizeof(why));
}

static void test_durations(void) {
    int64_t ms = 0;

    CU_ASSERT_EQUAL(kvctl_parse_duration_ms("250ms", &ms), 0);
    CU_ASSERT_EQUAL(ms, 250);
    CU_ASSERT_EQUAL(kvctl_parse_duration_ms("5s", &ms), 0);
    CU_ASSERT_EQUAL(ms, 5000);
    CU_ASSERT_EQUAL(kvctl_parse_duration_ms("2m", &ms), 0);
    CU_ASSERT_EQUAL(ms, 120000);
    CU_ASSERT_EQUAL(kvctl_parse_duration_ms("3", &ms), 0);
    CU_ASSERT_EQUAL(ms, 3000);
    CU_ASSERT_EQUAL(kvctl_parse_duration_ms("0s", &ms), -1);
    CU_ASSERT_EQUAL(kvctl_parse_duration_ms("-1s", &ms), -1);
    CU_ASSERT_EQUAL(kvctl_parse_duration_ms("5h", &ms), -1);
    CU_ASSERT_EQUAL(kvctl_parse_duration_ms("s", &ms), -1);
    CU_ASSERT_EQUAL(kvctl_parse_duration_ms("61m", &ms), -1);
    CU_ASSERT_EQUAL(kvctl_parse_duration_ms("99999999999999999999s", &ms), -1);
}

static void test_defaults_and_environment(void) {
    kvctl_args a;
    const char *words[] = {"get", "k", NULL};

    unsetenv(KVCTL_ENDPOINTS_ENV);
    CU_ASSERT_EQUAL_FATAL(parse(&a, words), 0);
    CU_ASSERT_STRING_EQUAL(a.endpoints, KVCTL_ENDPOINT_DEFAULT);
    CU_ASSERT_EQUAL(a.timeout_ms, KVCTL_TIMEOUT_MS_DEFAULT);
    CU_ASSERT_EQUAL(a.output, KVCTL_OUTPUT_TABLE);
    CU_ASSERT_EQUAL(a.consistency, BASALT__V1__CONSISTENCY__CONSISTENCY_STRONG);

    setenv(KVCTL_ENDPOINTS_ENV, "10.0.0.1:1,10.0.0.2:2", 1);
    CU_ASSERT_EQUAL_FATAL(parse(&a, words), 0);
    CU_ASSERT_STRING_EQUAL(a.endpoints, "10.0.0.1:1,10.0.0.2:2");
    unsetenv(KVCTL_ENDPOINTS_ENV);
}

static void test_flags_anywhere_and_positionals_in_order(void) {
    kvctl_args a;
    const char *words[] = {"--output", "json", "scan",          "a",        "--limit",
                           "7",        "z",    "--consistency", "eventual", NULL};

    CU_ASSERT_EQUAL_FATAL(parse(&a, words), 0);
    CU_ASSERT_STRING_EQUAL(a.command, "scan");
    CU_ASSERT_EQUAL(a.positional_count, 2);
    CU_ASSERT_STRING_EQUAL(a.positionals[0], "a");
    CU_ASSERT_STRING_EQUAL(a.positionals[1], "z");
    CU_ASSERT_EQUAL(a.limit, 7);
    CU_ASSERT_EQUAL(a.output, KVCTL_OUTPUT_JSON);
    CU_ASSERT_EQUAL(a.consistency, BASALT__V1__CONSISTENCY__CONSISTENCY_EVENTUAL);
    CU_ASSERT_EQUAL(a.flags_given, KVCTL_FLAG_LIMIT | KVCTL_FLAG_CONSISTENCY);
}

static void test_double_dash_allows_keys_starting_with_dash(void) {
    kvctl_args a;
    const char *words[] = {"put", "--", "-k", "-v", NULL};

    CU_ASSERT_EQUAL_FATAL(parse(&a, words), 0);
    CU_ASSERT_EQUAL(a.positional_count, 2);
    CU_ASSERT_STRING_EQUAL(a.positionals[0], "-k");
    CU_ASSERT_STRING_EQUAL(a.positionals[1], "-v");
}

static void test_bad_values_are_usage_errors(void) {
    kvctl_args a;
    const char *bad_output[] = {"--output", "xml", "get", "k", NULL};
    const char *bad_consistency[] = {"get", "k", "--consistency", "weak", NULL};
    const char *bad_limit[] = {"scan", "a", "--limit", "ten", NULL};
    const char *huge_limit[] = {"scan", "a", "--limit", "4294967296", NULL};
    const char *unknown[] = {"--frobnicate", "get", "k", NULL};
    const char *missing_value[] = {"get", "k", "--timeout", NULL};

    CU_ASSERT_EQUAL(parse(&a, bad_output), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "output"));
    CU_ASSERT_EQUAL(parse(&a, bad_consistency), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "consistency"));
    CU_ASSERT_EQUAL(parse(&a, bad_limit), -1);
    CU_ASSERT_EQUAL(parse(&a, huge_limit), -1);
    CU_ASSERT_EQUAL(parse(&a, unknown), -1);
    CU_ASSERT_EQUAL(parse(&a, missing_value), -1);
}

int main(void) {
    CU_TestInfo tests[] = {
        {"durations", test_durations},
        {"defaults_and_environment", test_defaults_and_environment},
        {"flags_anywhere_and_positionals_in_order", test_flags_anywhere_and_positionals_in_order},
        {"double_dash_allows_keys_starting_with_dash",
         test_double_dash_allows_keys_starting_with_dash},
        {"bad_values_are_usage_errors", test_bad_values_are_usage_errors},
        CU_TEST_INFO_NULL,
    };
    return cunit_run_suite("kvctl_args", tests, NULL, NULL);
}
