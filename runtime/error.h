/* error: Basalt's one error enum, with a name and message for each code.
 *
 * Actions return 0 (BS_OK) or one of these codes. Errors of RocksDB and gRPC
 * are translated into them at the boundary, where they happen.
 */
#ifndef BASALT_RUNTIME_ERROR_H
#define BASALT_RUNTIME_ERROR_H

typedef enum {
    BS_OK = 0,
    BS_ERR_INVALID_ARGUMENT,   /* the caller's input breaks a rule */
    BS_ERR_NOT_FOUND,          /* the thing named does not exist */
    BS_ERR_UNAVAILABLE,        /* a server or replica cannot be reached now */
    BS_ERR_DEADLINE_EXCEEDED,  /* the caller's deadline passed */
    BS_ERR_RESOURCE_EXHAUSTED, /* a bound on memory, queue or rate was hit */
    BS_ERR_FAILED_PRECONDITION,
    BS_ERR_IO,         /* the disk said no */
    BS_ERR_CORRUPTION, /* bytes from disk or the network make no sense */
    BS_ERR_NOMEM,
    BS_ERR_INTERNAL, /* a bug: an invariant broke */
    BS_ERR_COUNT_    /* not an error: the number of codes */
} bs_err_t;

/* "invalid argument", "not found", ...; "unknown error" for codes out of range. */
const char *bs_err_message(int code);

/* "BS_ERR_NOT_FOUND", ...; "BS_ERR_UNKNOWN" for codes out of range. */
const char *bs_err_name(int code);

#endif
