/* distribution: which record an operation touches, as YCSB chooses it.
 *
 * Records are numbered 0..n-1 (n grows as a workload inserts). Three
 * request distributions:
 *   uniform  every record alike;
 *   zipfian  a few records take most requests (YCSB's constant 0.99); the
 *            rank is hashed onto the records, so the popular ones are spread
 *            over the keyspace (and over shards) rather than all at its start;
 *   latest   zipfian by age: the newest record is the most popular.
 * The zipfian sampler is Gray et al.'s ("Quickly generating billion-record
 * synthetic databases", SIGMOD 1994), the one YCSB uses.
 *
 * Every draw comes from a seeded generator, so a run replays from its seed.
 */
#ifndef BASALT_TOOLS_KVBENCH_DISTRIBUTION_H
#define BASALT_TOOLS_KVBENCH_DISTRIBUTION_H

#include <stdint.h>

/* YCSB's zipfian constant. */
#define ZIPFIAN_THETA 0.99

/* xoshiro256**, seeded through splitmix64: fast, and good enough for load. */
typedef struct {
    uint64_t s[4];
} bench_rng;

void rng_seed(bench_rng *r, uint64_t seed);
uint64_t rng_next(bench_rng *r);
/* Uniform in [0, n); n > 0. */
uint64_t rng_below(bench_rng *r, uint64_t n);
/* Uniform in [0, 1). */
double rng_unit(bench_rng *r);

/* A zipfian sampler over ranks 0..items-1, rank 0 the most popular. Its
 * zeta sum is extended, not recomputed, when the item count grows. */
typedef struct {
    double theta, alpha, zeta2, zetan, eta;
    uint64_t items;
} zipfian;

/* Computing zeta takes O(items) at first; items > 0. */
void zipfian_init(zipfian *z, uint64_t items, double theta);
/* A rank in [0, items); items >= the count zipfian_init was given. */
uint64_t zipfian_next(zipfian *z, bench_rng *r, uint64_t items);

typedef enum {
    DIST_UNIFORM,
    DIST_ZIPFIAN,
    DIST_LATEST,
} dist_kind;

/* "uniform", "zipfian", "latest"; NULL for another value. */
const char *dist_name(dist_kind kind);
/* 0 and the kind for a known name, -1 otherwise. */
int dist_parse(const char *name, dist_kind *kind);

/* A record to touch among records 0..items-1; items > 0. For zipfian and
 * latest, `z` must have been initialised (any item count up to items). */
uint64_t dist_next(dist_kind kind, zipfian *z, bench_rng *r, uint64_t items);

/* The record number's place in the keyspace: YCSB hashes record numbers so
 * that inserts land all over the keyspace instead of at its end. */
uint64_t record_scramble(uint64_t record);

#endif
