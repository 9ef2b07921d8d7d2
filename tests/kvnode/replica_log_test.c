/* replica_log_test: a replica's Raft log over a real RocksDB: what
 * raft_storage answers (terms, entries, bounds) after appends, conflicting
 * appends, compaction, snapshots and a reopen, which reloads it from disk. */
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "kvnode/replica_log.h"
#include "kvnode/store.h"
#include "runtime/error.h"
#include "tests/testing/cunit_main.h"
#include "tests/testing/temp_dir.h"

#define SHARD 7

static char dir[256];
static kvs *store;
static kvs_batch *batch;
static rlog *log_;

static void setup(void) {
    cunit_require(temp_dir_make(dir, sizeof(dir)) == 0, "make a temporary directory");
    cunit_require(kvs_open(dir, &store) == 0, "open the store");
    batch = kvs_batch_new(store);
    cunit_require(rlog_open(store, SHARD, &log_) == 0, "open the log");
}

static void teardown(void) {
    rlog_free(log_);
    kvs_batch_free(batch);
    kvs_close(store);
    temp_dir_remove(dir);
}

/* Appends entries first.. with `terms` (n of them) as one ready batch would,
 * and writes the batch. */
static void append(raft_index_t first, const raft_term_t *terms, size_t n) {
    raft_entry ents[16];
    raft_ready rd;

    CU_ASSERT_FATAL(n <= 16);
    memset(&rd, 0, sizeof(rd));
    for (size_t i = 0; i < n; i++) {
        ents[i] = (raft_entry){.term = terms[i],
                               .index = first + i,
                               .type = RAFT_ENTRY_NORMAL,
                               .len = 3,
                               .data = (uint8_t *)"cmd"};
    }
    rd.entries = ents;
    rd.n_entries = n;
    rlog_stage_ready(log_, batch, &rd);
    CU_ASSERT_EQUAL_FATAL(kvs_batch_write(batch, true), 0);
}

static void reopen(void) {
    rlog_free(log_);
    log_ = NULL;
    CU_ASSERT_EQUAL_FATAL(rlog_open(store, SHARD, &log_), 0);
}

/* Asserts that entries lo..hi (inclusive) have `terms`, both as term()
 * answers and as the entries RocksDB holds. */
static void expect_terms(raft_index_t lo, raft_index_t hi, const raft_term_t *terms) {
    raft_storage s = rlog_interface(log_);
    raft_entry *ents;
    size_t n;

    CU_ASSERT_EQUAL(s.last_index(s.ctx), hi);
    for (raft_index_t i = lo; i <= hi; i++) {
        raft_term_t term = 99;
        CU_ASSERT_EQUAL(s.term(s.ctx, i, &term), RAFT_OK);
        CU_ASSERT_EQUAL(term, terms[i - lo]);
    }
    CU_ASSERT_EQUAL_FATAL(s.entries(s.ctx, lo, hi + 1, UINT64_MAX, &ents, &n), RAFT_OK);
    CU_ASSERT_EQUAL(n, hi - lo + 1);
    for (size_t i = 0; i < n; i++)
        CU_ASSERT(ents[i].index == lo + i && ents[i].term == terms[i]);
    raft_entries_free(ents, n);
}

static void test_terms_of_appended_entries(void) {
    const raft_term_t terms[] = {1, 1, 2, 2, 2, 5, 6};
    raft_storage s = rlog_interface(log_);
    raft_term_t term;

    append(1, terms, 7);
    expect_terms(1, 7, terms);
    CU_ASSERT_EQUAL(s.term(s.ctx, 0, &term), RAFT_OK); /* before the log: term 0 */
    CU_ASSERT_EQUAL(term, 0);
    CU_ASSERT_EQUAL(s.term(s.ctx, 8, &term), RAFT_ERR_UNAVAILABLE);
    /* Appending in pieces gives the same answers. */
    append(8, (raft_term_t[]){6, 6, 7}, 3);
    expect_terms(1, 10, (raft_term_t[]){1, 1, 2, 2, 2, 5, 6, 6, 6, 7});
}

static void test_a_conflicting_append_replaces_the_suffix(void) {
    append(1, (raft_term_t[]){1, 1, 2, 2, 3, 3}, 6);
    /* A new leader of term 4 overwrites from index 3 on, shorter. */
    append(3, (raft_term_t[]){4, 4}, 2);
    expect_terms(1, 4, (raft_term_t[]){1, 1, 4, 4});
    /* Replacing within one run keeps the earlier part of it. */
    append(2, (raft_term_t[]){5}, 1);
    expect_terms(1, 2, (raft_term_t[]){1, 5});
    reopen();
    expect_terms(1, 2, (raft_term_t[]){1, 5});
}

static void test_compaction_keeps_the_terms_after_it(void) {
    raft_storage s;
    raft_term_t term;

    append(1, (raft_term_t[]){1, 2, 2, 3, 3, 3, 4}, 7);
    rlog_stage_applied(log_, batch, 6);
    /* At a run's end, then in the middle of one. */
    CU_ASSERT_EQUAL_FATAL(rlog_stage_compact(log_, batch, 1), 0);
    CU_ASSERT_EQUAL_FATAL(kvs_batch_write(batch, true), 0);
    expect_terms(2, 7, (raft_term_t[]){2, 2, 3, 3, 3, 4});
    CU_ASSERT_EQUAL_FATAL(rlog_stage_compact(log_, batch, 5), 0);
    CU_ASSERT_EQUAL_FATAL(kvs_batch_write(batch, true), 0);
    s = rlog_interface(log_);
    CU_ASSERT_EQUAL(s.first_index(s.ctx), 6);
    CU_ASSERT_EQUAL(s.term(s.ctx, 4, &term), RAFT_ERR_COMPACTED);
    CU_ASSERT_EQUAL(s.term(s.ctx, 5, &term), RAFT_OK); /* the truncation point's term */
    CU_ASSERT_EQUAL(term, 3);
    expect_terms(6, 7, (raft_term_t[]){3, 4});
    append(8, (raft_term_t[]){4, 5}, 2);
    expect_terms(6, 9, (raft_term_t[]){3, 4, 4, 5});
    reopen();
    s = rlog_interface(log_);
    CU_ASSERT_EQUAL(s.term(s.ctx, 5, &term), RAFT_OK);
    CU_ASSERT_EQUAL(term, 3);
    expect_terms(6, 9, (raft_term_t[]){3, 4, 4, 5});
}

static void test_a_snapshot_replaces_the_log(void) {
    raft_snapshot snap = {.index = 20, .term = 8};
    raft_storage s;
    raft_term_t term;

    append(1, (raft_term_t[]){1, 2, 3}, 3);
    rlog_stage_snapshot(log_, batch, &snap);
    CU_ASSERT_EQUAL_FATAL(kvs_batch_write(batch, true), 0);
    s = rlog_interface(log_);
    CU_ASSERT_EQUAL(s.last_index(s.ctx), 20);
    CU_ASSERT_EQUAL(s.term(s.ctx, 20, &term), RAFT_OK);
    CU_ASSERT_EQUAL(term, 8);
    CU_ASSERT_EQUAL(s.term(s.ctx, 3, &term), RAFT_ERR_COMPACTED);
    append(21, (raft_term_t[]){8, 9}, 2);
    expect_terms(21, 22, (raft_term_t[]){8, 9});
    reopen();
    expect_terms(21, 22, (raft_term_t[]){8, 9});
}

/* Entries [lo, hi) as raft_storage gives them, at most max_bytes of data. */
static size_t entries_of(raft_index_t lo, raft_index_t hi, uint64_t max_bytes, raft_entry **out) {
    raft_storage s = rlog_interface(log_);
    size_t n = 0;

    CU_ASSERT_EQUAL_FATAL(s.entries(s.ctx, lo, hi, max_bytes, out, &n), RAFT_OK);
    return n;
}

static void test_entries_from_memory_and_from_disk_agree(void) {
    raft_entry *mem, *disk;
    size_t n_mem, n_disk;

    append(1, (raft_term_t[]){1, 1, 2, 2, 2, 3}, 6);
    /* Not applied yet: served from memory; a byte limit still stops early
     * (each entry carries 3 bytes) but always gives one. */
    n_mem = entries_of(2, 7, UINT64_MAX, &mem);
    CU_ASSERT_EQUAL(n_mem, 5);
    raft_entry *few;
    CU_ASSERT_EQUAL(entries_of(2, 7, 7, &few), 2);
    raft_entries_free(few, 2);
    CU_ASSERT_EQUAL(entries_of(2, 7, 1, &few), 1);
    raft_entries_free(few, 1);
    /* Applied: the same entries come from RocksDB. */
    rlog_stage_applied(log_, batch, 6);
    CU_ASSERT_EQUAL_FATAL(kvs_batch_write(batch, true), 0);
    n_disk = entries_of(2, 7, UINT64_MAX, &disk);
    CU_ASSERT_EQUAL_FATAL(n_disk, n_mem);
    for (size_t i = 0; i < n_mem; i++) {
        CU_ASSERT(mem[i].index == disk[i].index && mem[i].term == disk[i].term &&
                  mem[i].type == disk[i].type && mem[i].len == disk[i].len &&
                  memcmp(mem[i].data, disk[i].data, mem[i].len) == 0);
    }
    raft_entries_free(mem, n_mem);
    raft_entries_free(disk, n_disk);
    /* New entries after the applied ones, then a conflict among them. */
    append(7, (raft_term_t[]){3, 3, 3}, 3);
    append(8, (raft_term_t[]){4}, 1);
    expect_terms(1, 8, (raft_term_t[]){1, 1, 2, 2, 2, 3, 3, 4});
    reopen();
    expect_terms(1, 8, (raft_term_t[]){1, 1, 2, 2, 2, 3, 3, 4});
}

static void test_many_terms(void) {
    /* More runs than the first allocation holds: one election per entry. */
    raft_term_t terms[64];
    for (size_t i = 0; i < 64; i++)
        terms[i] = 10 + i;
    for (size_t i = 0; i < 64; i += 16)
        append(1 + i, terms + i, 16);
    expect_terms(1, 64, terms);
    reopen();
    expect_terms(1, 64, terms);
}

int main(void) {
    CU_TestInfo tests[] = {
        {"terms_of_appended_entries", test_terms_of_appended_entries},
        {"a_conflicting_append_replaces_the_suffix", test_a_conflicting_append_replaces_the_suffix},
        {"compaction_keeps_the_terms_after_it", test_compaction_keeps_the_terms_after_it},
        {"a_snapshot_replaces_the_log", test_a_snapshot_replaces_the_log},
        {"many_terms", test_many_terms},
        {"entries_from_memory_and_from_disk_agree", test_entries_from_memory_and_from_disk_agree},
        CU_TEST_INFO_NULL,
    };
    return cunit_run_suite("kvnode_replica_log", tests, setup, teardown);
}
