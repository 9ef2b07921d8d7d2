/* log_test: the leveled logger, with stderr captured through a pipe. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <CUnit/CUnit.h>

#include "runtime/log.h"
#include "tests/testing/cunit_main.h"

static int saved_stderr = -1;
static int pipe_read = -1;
static char captured[16384];

static void setup(void) {
    int fds[2];

    cunit_require(pipe(fds) == 0, "make a pipe");
    /* Large enough for every line a test writes, so writes never block. */
    fcntl(fds[1], F_SETPIPE_SZ, 65536);
    saved_stderr = dup(STDERR_FILENO);
    dup2(fds[1], STDERR_FILENO);
    close(fds[1]);
    pipe_read = fds[0];
    log_set_level(LOG_LEVEL_INFO);
}

static void teardown(void) {
    dup2(saved_stderr, STDERR_FILENO);
    close(saved_stderr);
    close(pipe_read);
}

/* Ends the capture and returns what was written. */
static const char *capture_end(void) {
    ssize_t n;

    dup2(saved_stderr, STDERR_FILENO);
    n = read(pipe_read, captured, sizeof(captured) - 1);
    captured[n > 0 ? n : 0] = '\0';
    return captured;
}

static void test_lines_carry_level_location_and_message(void) {
    log_info("node %d up", 7);
    const char *out = capture_end();

    CU_ASSERT_PTR_NOT_NULL(strstr(out, " INFO  "));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "log_test.c:"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "node 7 up\n"));
    /* An ISO-8601 UTC time stamp opens the line. */
    CU_ASSERT(strlen(out) > 24 && out[4] == '-' && out[10] == 'T' && out[23] == 'Z');
}

static void test_lines_below_level_are_dropped(void) {
    log_set_level(LOG_LEVEL_WARN);
    log_info("hidden line");
    log_debug("hidden too");
    log_error("shown line");
    const char *out = capture_end();

    CU_ASSERT_PTR_NULL(strstr(out, "hidden"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "ERROR"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "shown line"));
    CU_ASSERT_FALSE(log_is_enabled(LOG_LEVEL_INFO));
    CU_ASSERT_TRUE(log_is_enabled(LOG_LEVEL_ERROR));
}

static void test_overlong_line_is_cut_and_marked(void) {
    static char big[10000];

    memset(big, 'x', sizeof(big) - 1);
    log_warn("%s", big);
    const char *out = capture_end();
    size_t len = strlen(out);

    CU_ASSERT(len < sizeof(big));
    CU_ASSERT(len > 4 && strcmp(out + len - 4, "...\n") == 0);
}

static void test_parse_level_names(void) {
    log_level_t level = LOG_LEVEL_INFO;

    CU_ASSERT_EQUAL(log_parse_level("debug", &level), 0);
    CU_ASSERT_EQUAL(level, LOG_LEVEL_DEBUG);
    CU_ASSERT_EQUAL(log_parse_level("error", &level), 0);
    CU_ASSERT_EQUAL(level, LOG_LEVEL_ERROR);
    CU_ASSERT_EQUAL(log_parse_level("loud", &level), -1);
    CU_ASSERT_EQUAL(level, LOG_LEVEL_ERROR);
    capture_end();
}

int main(void) {
    CU_TestInfo tests[] = {
        {"lines_carry_level_location_and_message", test_lines_carry_level_location_and_message},
        {"lines_below_level_are_dropped", test_lines_below_level_are_dropped},
        {"overlong_line_is_cut_and_marked", test_overlong_line_is_cut_and_marked},
        {"parse_level_names", test_parse_level_names},
        CU_TEST_INFO_NULL,
    };
    return cunit_run_suite("log", tests, setup, teardown);
}
