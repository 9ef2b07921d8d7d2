/* kvbench_workload_test: the workload mixes come out in their proportions,
 * the command line takes what it documents and refuses the rest, and keys
 * have the promised shape. */
#include <math.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "tests/testing/cunit_main.h"
#include "tools/kvbench/options.h"
#include "tools/kvbench/runner.h"
#include "tools/kvbench/workload.h"

#define DRAWS 200000

/* Draws DRAWS operations of workload `name` and checks each kind's share
 * against `want` (in op_kind order) within half a percent. */
static void check_mix(const char *name, const double want[OP_KINDS]) {
    const workload *w = workload_find(name);
    uint64_t counts[OP_KINDS] = {0};
    bench_rng rng;

    CU_ASSERT_PTR_NOT_NULL_FATAL(w);
    rng_seed(&rng, 7);
    for (int i = 0; i < DRAWS; i++)
        counts[workload_next_op(w, &rng)]++;
    for (int k = 0; k < OP_KINDS; k++)
        CU_ASSERT_DOUBLE_EQUAL((double)counts[k] / DRAWS, want[k], 0.005);
}

static void test_ycsb_mixes_come_out_in_proportion(void) {
    check_mix("a", (double[OP_KINDS]){[OP_READ] = 0.5, [OP_UPDATE] = 0.5});
    check_mix("b", (double[OP_KINDS]){[OP_READ] = 0.95, [OP_UPDATE] = 0.05});
    check_mix("c", (double[OP_KINDS]){[OP_READ] = 1});
    check_mix("d", (double[OP_KINDS]){[OP_READ] = 0.95, [OP_INSERT] = 0.05});
    check_mix("e", (double[OP_KINDS]){[OP_SCAN] = 0.95, [OP_INSERT] = 0.05});
    check_mix("f", (double[OP_KINDS]){[OP_READ] = 0.5, [OP_READ_MODIFY_WRITE] = 0.5});
    check_mix("put", (double[OP_KINDS]){[OP_UPDATE] = 1});
    check_mix("get", (double[OP_KINDS]){[OP_READ] = 1});
}

static void test_workloads_have_ycsbs_distributions(void) {
    CU_ASSERT_EQUAL(workload_find("a")->distribution, DIST_ZIPFIAN);
    CU_ASSERT_EQUAL(workload_find("d")->distribution, DIST_LATEST);
    CU_ASSERT_EQUAL(workload_find("e")->distribution, DIST_ZIPFIAN);
    CU_ASSERT_EQUAL(workload_find("put")->distribution, DIST_UNIFORM);
    CU_ASSERT_PTR_NULL(workload_find("g"));
    CU_ASSERT(workload_inserts(workload_find("d")));
    CU_ASSERT(!workload_inserts(workload_find("a")));
}

static int parse(kvbench_options *o, char *why, int argc, char **argv) {
    return options_parse(argc, argv, o, why, 256);
}

#define PARSE(o, why, ...)                                                                         \
    parse(o, why, sizeof((char *[]){"kvbench", __VA_ARGS__}) / sizeof(char *),                     \
          (char *[]){"kvbench", __VA_ARGS__})

static void test_options_defaults_and_values(void) {
    kvbench_options o;
    char why[256];

    CU_ASSERT_EQUAL_FATAL(PARSE(&o, why, "--workload", "e", "--clients", "64", "--seed", "9"), 0);
    CU_ASSERT_STRING_EQUAL(o.target_spec, KVBENCH_TARGET_DEFAULT);
    CU_ASSERT_STRING_EQUAL(o.run.workload->name, "e");
    CU_ASSERT_EQUAL(o.run.distribution, DIST_ZIPFIAN);
    CU_ASSERT_EQUAL(o.run.clients, 64);
    CU_ASSERT_EQUAL(o.run.seed, 9);
    CU_ASSERT_EQUAL(o.run.value_bytes, 1000);
    CU_ASSERT(o.phase_load && o.phase_run && !o.run.eventual);

    /* A put loads nothing first; a duration alone ends the run. */
    CU_ASSERT_EQUAL_FATAL(PARSE(&o, why, "--workload", "put", "--duration", "5s", "--consistency",
                                "eventual", "--output", "json"),
                          0);
    CU_ASSERT(!o.phase_load && o.phase_run && o.run.eventual);
    CU_ASSERT_EQUAL(o.run.duration_ms, 5000);
    CU_ASSERT_EQUAL(o.run.operations, 0);
    CU_ASSERT_EQUAL(o.output, OUTPUT_JSON);
}

static void test_options_refuse_bad_values(void) {
    kvbench_options o;
    char why[256];

    CU_ASSERT_EQUAL(PARSE(&o, why, "--workload", "z"), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "a, b, c, d, e, f, put, get"));
    CU_ASSERT_EQUAL(PARSE(&o, why, "--clients", "0"), -1);
    CU_ASSERT_EQUAL(PARSE(&o, why, "--clients", "4097"), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "from 1 to 4096"));
    CU_ASSERT_EQUAL(PARSE(&o, why, "--key-bytes", "19"), -1);
    CU_ASSERT_EQUAL(PARSE(&o, why, "--value-bytes", "1048577"), -1);
    CU_ASSERT_EQUAL(PARSE(&o, why, "--records", "0"), -1);
    CU_ASSERT_EQUAL(PARSE(&o, why, "--consistency", "bounded"), -1);
    CU_ASSERT_EQUAL(PARSE(&o, why, "--duration", "5"), -1);
    CU_ASSERT_EQUAL(PARSE(&o, why, "--operations", "0"), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "needs --duration"));
    CU_ASSERT_EQUAL(PARSE(&o, why, "--phase", "both"), -1);
    CU_ASSERT_EQUAL(PARSE(&o, why, "--output", "yaml"), -1);
    CU_ASSERT_EQUAL(PARSE(&o, why, "--bogus"), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "--bogus"));
    CU_ASSERT_EQUAL(PARSE(&o, why, "--clients"), -1);
    CU_ASSERT_EQUAL(PARSE(&o, why, "stray"), -1);
}

static void test_keys_have_their_shape(void) {
    uint8_t a[32], b[32];

    runner_format_key(255, true, 24, a);
    CU_ASSERT_EQUAL(memcmp(a, "user00000000000000ff0000", 24), 0);
    /* Sequential keys sort as their records do; hashed ones are scattered. */
    runner_format_key(256, true, 24, b);
    CU_ASSERT(memcmp(a, b, 24) < 0);
    runner_format_key(255, false, 20, a);
    runner_format_key(256, false, 20, b);
    CU_ASSERT_EQUAL(memcmp(a, "user", 4), 0);
    CU_ASSERT_NOT_EQUAL(memcmp(a, b, 20), 0);
    CU_ASSERT_NOT_EQUAL(memcmp(a + 4, "00000000000000ff", 16), 0);
}

int main(void) {
    CU_TestInfo tests[] = {
        {"ycsb_mixes_come_out_in_proportion", test_ycsb_mixes_come_out_in_proportion},
        {"workloads_have_ycsbs_distributions", test_workloads_have_ycsbs_distributions},
        {"options_defaults_and_values", test_options_defaults_and_values},
        {"options_refuse_bad_values", test_options_refuse_bad_values},
        {"keys_have_their_shape", test_keys_have_their_shape},
        CU_TEST_INFO_NULL,
    };
    return cunit_run_suite("kvbench workload", tests, NULL, NULL);
}
