/* kvbench_histogram_test: percentiles of known inputs, to the histogram's
 * stated precision, and merging. */
#include <stdint.h>
#include <stdlib.h>

#include <CUnit/CUnit.h>

#include "tests/testing/cunit_main.h"
#include "tools/kvbench/histogram.h"

/* The histogram's promise: within 1 part in 2^(SUB_BITS - 1) of the truth. */
static int close_enough(uint64_t got, uint64_t want) {
    double tolerance = (double)want / (1 << (HISTOGRAM_SUB_BITS - 1)) + 1;
    double diff = (double)got - (double)want;
    return diff <= tolerance && -diff <= tolerance;
}

static histogram *histogram_new(void) {
    histogram *h = malloc(sizeof(*h));
    cunit_require(h != NULL, "allocate a histogram");
    histogram_init(h);
    return h;
}

static void test_small_values_are_exact(void) {
    histogram *h = histogram_new();

    for (uint64_t v = 1; v <= 100; v++)
        histogram_record(h, v);
    CU_ASSERT_EQUAL(h->count, 100);
    CU_ASSERT_EQUAL(histogram_percentile(h, 50), 50);
    CU_ASSERT_EQUAL(histogram_percentile(h, 99), 99);
    CU_ASSERT_EQUAL(histogram_percentile(h, 100), 100);
    CU_ASSERT_EQUAL(histogram_percentile(h, 0), 1);
    CU_ASSERT_DOUBLE_EQUAL(histogram_mean(h), 50.5, 1e-9);
    free(h);
}

static void test_percentiles_of_a_uniform_spread_of_latencies(void) {
    histogram *h = histogram_new();

    /* 1 us .. 1 s in ns steps of 1 us: the p-th percentile is p% of 1 s. */
    for (uint64_t us = 1; us <= 1000000; us++)
        histogram_record(h, us * 1000);
    CU_ASSERT(close_enough(histogram_percentile(h, 50), 500000000));
    CU_ASSERT(close_enough(histogram_percentile(h, 90), 900000000));
    CU_ASSERT(close_enough(histogram_percentile(h, 99), 990000000));
    CU_ASSERT(close_enough(histogram_percentile(h, 99.9), 999000000));
    CU_ASSERT_EQUAL(histogram_percentile(h, 100), 1000000000);
    CU_ASSERT_EQUAL(h->min, 1000);
    CU_ASSERT_EQUAL(h->max, 1000000000);
    free(h);
}

static void test_a_tail_shows_in_the_high_percentiles_only(void) {
    histogram *h = histogram_new();

    /* 990 fast answers of 1 ms and 10 slow ones of 2 s. */
    for (int i = 0; i < 990; i++)
        histogram_record(h, 1000000);
    for (int i = 0; i < 10; i++)
        histogram_record(h, 2000000000);
    CU_ASSERT(close_enough(histogram_percentile(h, 50), 1000000));
    CU_ASSERT(close_enough(histogram_percentile(h, 99), 1000000));
    CU_ASSERT(close_enough(histogram_percentile(h, 99.9), 2000000000));
    CU_ASSERT_EQUAL(histogram_percentile(h, 100), 2000000000);
    free(h);
}

static void test_values_past_the_range_are_clamped_but_max_is_exact(void) {
    histogram *h = histogram_new();

    histogram_record(h, UINT64_MAX);
    histogram_record(h, 5);
    CU_ASSERT_EQUAL(h->max, UINT64_MAX);
    CU_ASSERT_EQUAL(histogram_percentile(h, 100), UINT64_MAX);
    CU_ASSERT_EQUAL(histogram_percentile(h, 50), 5);
    free(h);
}

static void test_merge_adds_counts_and_keeps_extremes(void) {
    histogram *a = histogram_new(), *b = histogram_new();

    for (uint64_t v = 1; v <= 50; v++)
        histogram_record(a, v * 1000);
    for (uint64_t v = 51; v <= 100; v++)
        histogram_record(b, v * 1000);
    histogram_merge(a, b);
    CU_ASSERT_EQUAL(a->count, 100);
    CU_ASSERT_EQUAL(a->min, 1000);
    CU_ASSERT_EQUAL(a->max, 100000);
    CU_ASSERT(close_enough(histogram_percentile(a, 75), 75000));
    free(a);
    free(b);
}

static void test_an_empty_histogram_says_zero(void) {
    histogram *h = histogram_new();

    CU_ASSERT_EQUAL(histogram_percentile(h, 50), 0);
    CU_ASSERT_DOUBLE_EQUAL(histogram_mean(h), 0, 1e-9);
    free(h);
}

int main(void) {
    CU_TestInfo tests[] = {
        {"small_values_are_exact", test_small_values_are_exact},
        {"percentiles_of_a_uniform_spread_of_latencies",
         test_percentiles_of_a_uniform_spread_of_latencies},
        {"a_tail_shows_in_the_high_percentiles_only",
         test_a_tail_shows_in_the_high_percentiles_only},
        {"values_past_the_range_are_clamped_but_max_is_exact",
         test_values_past_the_range_are_clamped_but_max_is_exact},
        {"merge_adds_counts_and_keeps_extremes", test_merge_adds_counts_and_keeps_extremes},
        {"an_empty_histogram_says_zero", test_an_empty_histogram_says_zero},
        CU_TEST_INFO_NULL,
    };
    return cunit_run_suite("kvbench histogram", tests, NULL, NULL);
}
