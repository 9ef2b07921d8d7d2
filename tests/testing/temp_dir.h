/* temp_dir: fresh directories for tests, under $TEST_TMPDIR when Bazel sets it. */
#ifndef BASALT_TESTS_TESTING_TEMP_DIR_H
#define BASALT_TESTS_TESTING_TEMP_DIR_H

#include <stddef.h>

/* Creates a new empty directory and writes its path into buf. Returns 0 or -1. */
int temp_dir_make(char *buf, size_t size);

/* Removes the directory and everything in it. */
void temp_dir_remove(const char *path);

#endif
