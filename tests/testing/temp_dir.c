#define _XOPEN_SOURCE 700
#include "tests/testing/temp_dir.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>

int temp_dir_make(char *buf, size_t size) {
    const char *base = getenv("TEST_TMPDIR");

    if (base == NULL || base[0] == '\0')
        base = "/tmp";
    if ((size_t)snprintf(buf, size, "%s/basalt-test.XXXXXX", base) >= size)
        return -1;
    return mkdtemp(buf) != NULL ? 0 : -1;
}

static int temp_dir_remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void temp_dir_remove(const char *path) {
    nftw(path, temp_dir_remove_one, 16, FTW_DEPTH | FTW_PHYS);
}
