/* parse: strict numbers and HOST:PORT addresses for flags and endpoints. */
#include "runtime/parse.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int parse_u64(const char *text, uint64_t min, uint64_t max, uint64_t *out) {
    char *end;

    if (text[0] < '0' || text[0] > '9') /* strtoull would take "-1" and " 1" */
        return -1;
    errno = 0;
    unsigned long long n = strtoull(text, &end, 10);
    if (errno != 0 || *end != '\0' || n < min || n > max)
        return -1;
    *out = n;
    return 0;
}

bool parse_host_port(const char *addr, uint64_t min_port) {
    const char *colon = strrchr(addr, ':');
    uint64_t port;

    return colon != NULL && colon != addr &&
           parse_u64(colon + 1, min_port, PARSE_PORT_MAX, &port) == 0;
}
