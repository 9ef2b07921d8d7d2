/* parse_test: numbers and HOST:PORT addresses are taken only when whole and
 * in range; nothing is wrapped or half-read. */
#include <stdint.h>

#include <CUnit/CUnit.h>

#include "runtime/parse.h"
#include "tests/testing/cunit_main.h"

static void test_numbers_in_range_are_taken(void) {
    uint64_t n = 0;

    CU_ASSERT_EQUAL(parse_u64("0", 0, 10, &n), 0);
    CU_ASSERT_EQUAL(n, 0);
    CU_ASSERT_EQUAL(parse_u64("10", 1, 10, &n), 0);
    CU_ASSERT_EQUAL(n, 10);
    CU_ASSERT_EQUAL(parse_u64("18446744073709551615", 0, UINT64_MAX, &n), 0);
    CU_ASSERT_EQUAL(n, UINT64_MAX);
}

static void test_bad_numbers_are_refused_and_leave_out_alone(void) {
    const char *bad[] = {"", "-1", " 1", "1 ", "+1", "1x", "0x10", "11", "18446744073709551616"};
    uint64_t n = 7;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CU_ASSERT_EQUAL(parse_u64(bad[i], 0, 10, &n), -1);
    CU_ASSERT_EQUAL(parse_u64("0", 1, 10, &n), -1); /* under min */
    CU_ASSERT_EQUAL(n, 7);
}

static void test_durations(void) {
    const char *bad[] = {
        "", "5", "s", "5x", "5 s", "-5s", "5sec", "1.5s", "99999999999999999999ms"};
    uint64_t ms = 7;

    CU_ASSERT_EQUAL(parse_duration_ms("500ms", 0, UINT64_MAX, &ms), 0);
    CU_ASSERT_EQUAL(ms, 500);
    CU_ASSERT_EQUAL(parse_duration_ms("60s", 0, UINT64_MAX, &ms), 0);
    CU_ASSERT_EQUAL(ms, 60000);
    CU_ASSERT_EQUAL(parse_duration_ms("2m", 0, UINT64_MAX, &ms), 0);
    CU_ASSERT_EQUAL(ms, 120000);
    CU_ASSERT_EQUAL(parse_duration_ms("1h", 0, UINT64_MAX, &ms), 0);
    CU_ASSERT_EQUAL(ms, 3600000);
    ms = 7;
    CU_ASSERT_EQUAL(parse_duration_ms("99s", 0, 60000, &ms), -1);
    CU_ASSERT_EQUAL(parse_duration_ms("10ms", 100, 60000, &ms), -1);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CU_ASSERT_EQUAL(parse_duration_ms(bad[i], 0, UINT64_MAX, &ms), -1);
    CU_ASSERT_EQUAL(ms, 7);
}

static void test_host_port(void) {
    CU_ASSERT_TRUE(parse_host_port("127.0.0.1:7379", 1));
    CU_ASSERT_TRUE(parse_host_port("localhost:65535", 1));
    CU_ASSERT_TRUE(parse_host_port("[::1]:0", 0));
    CU_ASSERT_FALSE(parse_host_port("[::1]:0", 1));
    CU_ASSERT_FALSE(parse_host_port("127.0.0.1:65536", 0));
    CU_ASSERT_FALSE(parse_host_port("127.0.0.1:99999", 0));
    CU_ASSERT_FALSE(parse_host_port("127.0.0.1", 0));
    CU_ASSERT_FALSE(parse_host_port(":7379", 0));
    CU_ASSERT_FALSE(parse_host_port("127.0.0.1:", 0));
    CU_ASSERT_FALSE(parse_host_port("127.0.0.1:-1", 0));
}

int main(void) {
    CU_TestInfo tests[] = {
        {"numbers_in_range_are_taken", test_numbers_in_range_are_taken},
        {"bad_numbers_are_refused_and_leave_out_alone",
         test_bad_numbers_are_refused_and_leave_out_alone},
        {"host_port", test_host_port},
        {"durations", test_durations},
        CU_TEST_INFO_NULL,
    };
    return cunit_run_suite("parse", tests, NULL, NULL);
}
