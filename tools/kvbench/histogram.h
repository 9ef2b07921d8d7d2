/* histogram: latencies in a log-linear (HDR-style) histogram of fixed size.
 *
 * Values (nanoseconds) below 2^HISTOGRAM_SUB_BITS are counted exactly; above,
 * each power of two is cut into 2^(HISTOGRAM_SUB_BITS - 1) equal buckets, so
 * a percentile is off by less than 1 part in 2^(HISTOGRAM_SUB_BITS - 1)
 * (0.2%) whatever its size. Recording is a few instructions and allocates
 * nothing; a histogram belongs to one thread, and histograms of several
 * threads are merged once the run is over. No C library of Debian's does
 * this (HdrHistogram_c is not packaged), hence our own.
 */
#ifndef BASALT_TOOLS_KVBENCH_HISTOGRAM_H
#define BASALT_TOOLS_KVBENCH_HISTOGRAM_H

#include <stdint.h>

#define HISTOGRAM_SUB_BITS 10
/* Values above this (about 18 minutes in ns) are counted as this; min and
 * max stay exact. */
#define HISTOGRAM_VALUE_MAX ((UINT64_C(1) << 40) - 1)
#define HISTOGRAM_BUCKETS                                                                          \
    ((1 << HISTOGRAM_SUB_BITS) + (40 - HISTOGRAM_SUB_BITS) * (1 << (HISTOGRAM_SUB_BITS - 1)))

typedef struct {
    uint64_t count;
    uint64_t min, max; /* exact; min is UINT64_MAX while empty */
    double sum;
    uint64_t buckets[HISTOGRAM_BUCKETS];
} histogram;

void histogram_init(histogram *h);
void histogram_record(histogram *h, uint64_t value);
/* Adds every value of `from` to `into`. */
void histogram_merge(histogram *into, const histogram *from);

/* The smallest recorded value v such that `percent` % of the values are at
 * most v, to the histogram's precision (never past the exact max); 0 when
 * empty. percent in [0, 100]. */
uint64_t histogram_percentile(const histogram *h, double percent);
double histogram_mean(const histogram *h);

#endif
