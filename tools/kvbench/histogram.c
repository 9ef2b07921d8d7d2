/* histogram: see histogram.h for the bucket layout. */
#include "tools/kvbench/histogram.h"

#include <math.h>
#include <string.h>

#define SUB_COUNT (UINT64_C(1) << HISTOGRAM_SUB_BITS)
#define HALF      (SUB_COUNT / 2)

/* Values below SUB_COUNT have a bucket each. Above, a value with its top bit
 * at position b (b >= HISTOGRAM_SUB_BITS) is shifted right by
 * shift = b - (HISTOGRAM_SUB_BITS - 1), which leaves it in [HALF, SUB_COUNT):
 * that is its place among the HALF buckets of its power of two. */
static unsigned histogram_index(uint64_t v) {
    if (v < SUB_COUNT)
        return (unsigned)v;
    unsigned top = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = top - (HISTOGRAM_SUB_BITS - 1);
    return (unsigned)(SUB_COUNT + (shift - 1) * HALF + ((v >> shift) - HALF));
}

/* The largest value that lands in bucket i. */
static uint64_t histogram_bucket_top(unsigned i) {
    if (i < SUB_COUNT)
        return i;
    unsigned shift = (unsigned)((i - SUB_COUNT) / HALF) + 1;
    uint64_t sub = (i - SUB_COUNT) % HALF + HALF;
    return ((sub + 1) << shift) - 1;
}

void histogram_init(histogram *h) {
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

void histogram_record(histogram *h, uint64_t value) {
    uint64_t clamped = value > HISTOGRAM_VALUE_MAX ? HISTOGRAM_VALUE_MAX : value;

    h->buckets[histogram_index(clamped)]++;
    h->count++;
    h->sum += (double)value;
    if (value < h->min)
        h->min = value;
    if (value > h->max)
        h->max = value;
}

void histogram_merge(histogram *into, const histogram *from) {
    for (unsigned i = 0; i < HISTOGRAM_BUCKETS; i++)
        into->buckets[i] += from->buckets[i];
    into->count += from->count;
    into->sum += from->sum;
    if (from->min < into->min)
        into->min = from->min;
    if (from->max > into->max)
        into->max = from->max;
}

uint64_t histogram_percentile(const histogram *h, double percent) {
    if (h->count == 0)
        return 0;
    if (percent <= 0)
        return h->min;
    /* The rank of the value asked for, 1-based: ceil(count * percent / 100). */
    uint64_t rank = (uint64_t)ceil((double)h->count * (percent >= 100 ? 100 : percent) / 100.0);
    if (rank < 1)
        rank = 1;
    if (rank >= h->count)
        return h->max;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HISTOGRAM_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            uint64_t top = histogram_bucket_top(i);
            if (top >= HISTOGRAM_VALUE_MAX)
                return h->max; /* the bucket of clamped values */
            return top > h->max ? h->max : top < h->min ? h->min : top;
        }
    }
    return h->max;
}

double histogram_mean(const histogram *h) {
    return h->count ? h->sum / (double)h->count : 0;
}
