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

int parse_duration_ms(const char *text, uint64_t min_ms, uint64_t max_ms, uint64_t *out_ms) {
    static const struct {
        const char *unit;
        uint64_t ms;
    } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60 * 1000}, {"h", 3600 * 1000}};
    size_t digits = strspn(text, "0123456789");
    char number[24];
    uint64_t n;

    if (digits == 0 || digits >= sizeof(number))
        return -1;
    memcpy(number, text, digits);
    number[digits] = '\0';
    if (parse_u64(number, 0, UINT64_MAX, &n) != 0)
        return -1;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(text + digits, units[i].unit) != 0)
            continue;
        if (n > max_ms / units[i].ms || n * units[i].ms < min_ms)
            return -1;
        *out_ms = n * units[i].ms;
        return 0;
    }
    return -1;
}

bool parse_host_port(const char *addr, uint64_t min_port) {
    const char *colon = strrchr(addr, ':');
    uint64_t port;

    return colon != NULL && colon != addr &&
           parse_u64(colon + 1, min_port, PARSE_PORT_MAX, &port) == 0;
}
