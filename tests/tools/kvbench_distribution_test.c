/* kvbench_distribution_test: the request distributions draw what they
 * claim. Draws are seeded: the seed is printed, and KVBENCH_TEST_SEED
 * replays a run with another one. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "tests/testing/cunit_main.h"
#include "tools/kvbench/distribution.h"

#define ITEMS 1000
#define DRAWS 1000000

static uint64_t test_seed = 20261204;
static uint64_t counts[ITEMS];

static double zeta(uint64_t n) {
    double sum = 0;
    for (uint64_t i = 1; i <= n; i++)
        sum += 1.0 / pow((double)i, ZIPFIAN_THETA);
    return sum;
}

/* Draws DRAWS records of `kind` over ITEMS into counts. */
static void draw(dist_kind kind) {
    bench_rng rng;
    zipfian z;

    rng_seed(&rng, test_seed);
    zipfian_init(&z, ITEMS, ZIPFIAN_THETA);
    memset(counts, 0, sizeof(counts));
    for (int i = 0; i < DRAWS; i++) {
        uint64_t r = dist_next(kind, &z, &rng, ITEMS);
        CU_ASSERT_FATAL(r < ITEMS);
        counts[r]++;
    }
}

static double share(uint64_t n) {
    return (double)n / DRAWS;
}

static void test_zipfian_ranks_follow_the_power_law(void) {
    bench_rng rng;
    zipfian z;
    double zn = zeta(ITEMS), top100 = 0;

    rng_seed(&rng, test_seed);
    zipfian_init(&z, ITEMS, ZIPFIAN_THETA);
    memset(counts, 0, sizeof(counts));
    for (int i = 0; i < DRAWS; i++)
        counts[zipfian_next(&z, &rng, ITEMS)]++;
    /* Ranks 0 and 1 are exact in Gray's method: 1/zeta and 2^-theta/zeta. */
    CU_ASSERT_DOUBLE_EQUAL(share(counts[0]), 1 / zn, 0.05 / zn);
    CU_ASSERT_DOUBLE_EQUAL(share(counts[1]), pow(2, -ZIPFIAN_THETA) / zn, 0.05 / zn);
    /* The skew: the top tenth of the ranks take about zeta(100)/zeta(1000)
     * of the draws (0.70), where uniform draws would give them 0.10. */
    for (int i = 0; i < 100; i++)
        top100 += share(counts[i]);
    CU_ASSERT_DOUBLE_EQUAL(top100, zeta(100) / zn, 0.03);
    CU_ASSERT(counts[0] > counts[1] && counts[1] > counts[10] && counts[10] > counts[500]);
}

static void test_zipfian_grows_its_sum_as_a_fresh_one_would(void) {
    bench_rng rng;
    zipfian grown, fresh;

    rng_seed(&rng, test_seed);
    zipfian_init(&grown, 100, ZIPFIAN_THETA);
    (void)zipfian_next(&grown, &rng, ITEMS);
    zipfian_init(&fresh, ITEMS, ZIPFIAN_THETA);
    CU_ASSERT_EQUAL(grown.items, ITEMS);
    CU_ASSERT_DOUBLE_EQUAL(grown.zetan, fresh.zetan, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(grown.eta, fresh.eta, 1e-12);
}

static void test_scrambled_zipfian_spreads_the_popular_records(void) {
    uint64_t best = 0;
    int popular_in_first_tenth = 0;

    draw(DIST_ZIPFIAN);
    for (int i = 0; i < ITEMS; i++) {
        if (counts[i] > counts[best])
            best = (uint64_t)i;
    }
    /* The most popular record takes at least rank 0's share... */
    CU_ASSERT(share(counts[best]) > 0.95 / zeta(ITEMS));
    /* ...and the popular records are not bunched at the keyspace's start:
     * of the records with over 1% of the draws, few are among the first
     * tenth. */
    int popular = 0;
    for (int i = 0; i < ITEMS; i++) {
        if (share(counts[i]) > 0.01) {
            popular++;
            popular_in_first_tenth += i < ITEMS / 10;
        }
    }
    CU_ASSERT(popular >= 5);
    CU_ASSERT(popular_in_first_tenth < popular);
}

static void test_latest_favours_the_newest_records(void) {
    draw(DIST_LATEST);
    CU_ASSERT_DOUBLE_EQUAL(share(counts[ITEMS - 1]), 1 / zeta(ITEMS), 0.05 / zeta(ITEMS));
    CU_ASSERT(counts[ITEMS - 1] > counts[ITEMS - 2] && counts[ITEMS - 2] > counts[ITEMS / 2]);
    CU_ASSERT(counts[ITEMS - 1] > 50 * (counts[0] + 1));
}

static void test_uniform_is_flat(void) {
    draw(DIST_UNIFORM);
    for (int tenth = 0; tenth < 10; tenth++) {
        uint64_t n = 0;
        for (int i = tenth * ITEMS / 10; i < (tenth + 1) * ITEMS / 10; i++)
            n += counts[i];
        CU_ASSERT_DOUBLE_EQUAL(share(n), 0.1, 0.003);
    }
}

static void test_the_same_seed_draws_the_same(void) {
    bench_rng a, b;

    rng_seed(&a, test_seed);
    rng_seed(&b, test_seed);
    for (int i = 0; i < 1000; i++)
        CU_ASSERT_EQUAL(rng_next(&a), rng_next(&b));
    rng_seed(&b, test_seed + 1);
    CU_ASSERT_NOT_EQUAL(rng_next(&a), rng_next(&b));
}

static void test_names_parse_both_ways(void) {
    dist_kind k = DIST_UNIFORM;

    CU_ASSERT_EQUAL(dist_parse("latest", &k), 0);
    CU_ASSERT_EQUAL(k, DIST_LATEST);
    CU_ASSERT_STRING_EQUAL(dist_name(DIST_ZIPFIAN), "zipfian");
    CU_ASSERT_EQUAL(dist_parse("Zipfian", &k), -1);
    CU_ASSERT_EQUAL(k, DIST_LATEST);
}

int main(void) {
    const char *seed = getenv("KVBENCH_TEST_SEED");
    if (seed != NULL)
        test_seed = strtoull(seed, NULL, 10);
    printf("kvbench distribution test: seed %" PRIu64 " (KVBENCH_TEST_SEED replays)\n", test_seed);

    CU_TestInfo tests[] = {
        {"zipfian_ranks_follow_the_power_law", test_zipfian_ranks_follow_the_power_law},
        {"zipfian_grows_its_sum_as_a_fresh_one_would",
         test_zipfian_grows_its_sum_as_a_fresh_one_would},
        {"scrambled_zipfian_spreads_the_popular_records",
         test_scrambled_zipfian_spreads_the_popular_records},
        {"latest_favours_the_newest_records", test_latest_favours_the_newest_records},
        {"uniform_is_flat", test_uniform_is_flat},
        {"the_same_seed_draws_the_same", test_the_same_seed_draws_the_same},
        {"names_parse_both_ways", test_names_parse_both_ways},
        CU_TEST_INFO_NULL,
    };
    return cunit_run_suite("kvbench distribution", tests, NULL, NULL);
}
