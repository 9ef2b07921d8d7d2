/* error: the table of Basalt's error codes. */
#include "runtime/error.h"

#include <stddef.h>

static const struct {
    const char *name;
    const char *message;
} bs_err_table[BS_ERR_COUNT_] = {
    [BS_OK] = {"BS_OK", "ok"},
    [BS_ERR_INVALID_ARGUMENT] = {"BS_ERR_INVALID_ARGUMENT", "invalid argument"},
    [BS_ERR_NOT_FOUND] = {"BS_ERR_NOT_FOUND", "not found"},
    [BS_ERR_UNAVAILABLE] = {"BS_ERR_UNAVAILABLE", "unavailable"},
    [BS_ERR_DEADLINE_EXCEEDED] = {"BS_ERR_DEADLINE_EXCEEDED", "deadline exceeded"},
    [BS_ERR_RESOURCE_EXHAUSTED] = {"BS_ERR_RESOURCE_EXHAUSTED", "resource exhausted"},
    [BS_ERR_FAILED_PRECONDITION] = {"BS_ERR_FAILED_PRECONDITION", "failed precondition"},
    [BS_ERR_IO] = {"BS_ERR_IO", "i/o error"},
    [BS_ERR_CORRUPTION] = {"BS_ERR_CORRUPTION", "corrupt data"},
    [BS_ERR_NOMEM] = {"BS_ERR_NOMEM", "out of memory"},
    [BS_ERR_INTERNAL] = {"BS_ERR_INTERNAL", "internal error"},
};

static int bs_err_is_known(int code) {
    return code >= 0 && code < BS_ERR_COUNT_ && bs_err_table[code].name != NULL;
}

const char *bs_err_message(int code) {
    return bs_err_is_known(code) ? bs_err_table[code].message : "unknown error";
}

const char *bs_err_name(int code) {
    return bs_err_is_known(code) ? bs_err_table[code].name : "BS_ERR_UNKNOWN";
}
