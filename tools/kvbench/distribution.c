/* distribution: seeded random numbers and YCSB's request distributions. */
#include "tools/kvbench/distribution.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

#include <xxhash.h>

/* ---- generator ---- */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

void rng_seed(bench_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

uint64_t rng_next(bench_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;

    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint64_t rng_below(bench_rng *r, uint64_t n) {
    /* Lemire's multiply-shift; the bias (n / 2^64) is far below what a
     * benchmark could notice. */
    return (uint64_t)(((unsigned __int128)rng_next(r) * n) >> 64);
}

double rng_unit(bench_rng *r) {
    return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

/* ---- zipfian ---- */

/* Adds the terms from+1..to of the zeta sum to `sum`. */
static double zeta_extend(double sum, uint64_t from, uint64_t to, double theta) {
    for (uint64_t i = from + 1; i <= to; i++)
        sum += 1.0 / pow((double)i, theta);
    return sum;
}

static void zipfian_set_items(zipfian *z, uint64_t items) {
    z->zetan = zeta_extend(z->zetan, z->items, items, z->theta);
    z->items = items;
    z->eta = (1 - pow(2.0 / (double)items, 1 - z->theta)) / (1 - z->zeta2 / z->zetan);
}

void zipfian_init(zipfian *z, uint64_t items, double theta) {
    memset(z, 0, sizeof(*z));
    z->theta = theta;
    z->alpha = 1.0 / (1.0 - theta);
    z->zeta2 = zeta_extend(0, 0, 2, theta);
    zipfian_set_items(z, items);
}

uint64_t zipfian_next(zipfian *z, bench_rng *r, uint64_t items) {
    if (items > z->items)
        zipfian_set_items(z, items);
    double u = rng_unit(r);
    double uz = u * z->zetan;
    if (uz < 1.0)
        return 0;
    if (uz < 1.0 + pow(0.5, z->theta))
        return 1;
    uint64_t rank = (uint64_t)((double)z->items * pow(z->eta * u - z->eta + 1, z->alpha));
    return rank < z->items ? rank : z->items - 1;
}

/* ---- request distributions ---- */

static const char *const dist_names[] = {
    [DIST_UNIFORM] = "uniform",
    [DIST_ZIPFIAN] = "zipfian",
    [DIST_LATEST] = "latest",
};

const char *dist_name(dist_kind kind) {
    return (unsigned)kind < sizeof(dist_names) / sizeof(dist_names[0]) ? dist_names[kind] : NULL;
}

int dist_parse(const char *name, dist_kind *kind) {
    for (size_t i = 0; i < sizeof(dist_names) / sizeof(dist_names[0]); i++) {
        if (strcmp(name, dist_names[i]) == 0) {
            *kind = (dist_kind)i;
            return 0;
        }
    }
    return -1;
}

uint64_t dist_next(dist_kind kind, zipfian *z, bench_rng *r, uint64_t items) {
    switch (kind) {
    case DIST_ZIPFIAN:
        /* The rank, hashed onto the records: the popular records are few,
         * but scattered. */
        return XXH64(&(uint64_t){zipfian_next(z, r, items)}, sizeof(uint64_t), 0) % items;
    case DIST_LATEST:
        return items - 1 - zipfian_next(z, r, items);
    case DIST_UNIFORM:
    default:
        return rng_below(r, items);
    }
}

uint64_t record_scramble(uint64_t record) {
    return XXH64(&record, sizeof(record), 1);
}
