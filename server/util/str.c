/* capstan: string, number, duration and name helpers (see str.h). */
#include "util/str.h"

#include "util/error.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

int cap_parse_long(long long *out, const char *s, long long min, long long max)
{
    char *end = NULL;
    long long v;

    if (!s || !*s)
        return cap_error_set(CAP_EINVALID, "empty number");
    if (!(isdigit((unsigned char)s[0]) || (s[0] == '-' && isdigit((unsigned char)s[1]))))
        return cap_error_set(CAP_EINVALID, "\"%.40s\" is not a whole number", s);
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || *end)
        return cap_error_set(CAP_EINVALID, "\"%.40s\" is not a whole number", s);
    if (v < min || v > max)
        return cap_error_set(CAP_EINVALID, "%lld is out of range %lld..%lld", v, min, max);
    *out = v;
    return 0;
}

int cap_parse_size(size_t *out, const char *s)
{
    static const struct {
        const char *suffix;
        unsigned long long mult;
    } units[] = {
        {"", 1ULL},         {"b", 1ULL},         {"k", 1ULL << 10},   {"kib", 1ULL << 10},
        {"kb", 1ULL << 10}, {"m", 1ULL << 20},   {"mib", 1ULL << 20}, {"mb", 1ULL << 20},
        {"g", 1ULL << 30},  {"gib", 1ULL << 30}, {"gb", 1ULL << 30},
    };
    char *end = NULL;
    unsigned long long v;

    if (!s || !isdigit((unsigned char)s[0]))
        return cap_error_set(CAP_EINVALID, "\"%.40s\" is not a size", s ? s : "");
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno)
        return cap_error_set(CAP_EINVALID, "\"%.40s\" is not a size", s);
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcasecmp(end, units[i].suffix) == 0) {
            if (v > (unsigned long long)SIZE_MAX / units[i].mult)
                return cap_error_set(CAP_EINVALID, "\"%.40s\" is too large", s);
            *out = (size_t)(v * units[i].mult);
            return 0;
        }
    }
    return cap_error_set(CAP_EINVALID, "\"%.40s\" has an unknown unit (use KiB, MiB or GiB)", s);
}

int cap_parse_duration_ms(long long *out, const char *s)
{
    const char *p = s;
    long long total = 0;

    if (!s || !*s)
        return cap_error_set(CAP_EINVALID, "empty duration");
    while (*p) {
        long long v = 0, mult;
        if (!isdigit((unsigned char)*p))
            return cap_error_set(CAP_EINVALID, "\"%.40s\" is not a duration", s);
        while (isdigit((unsigned char)*p)) {
            if (v > (LLONG_MAX - 9) / 10)
                return cap_error_set(CAP_EINVALID, "\"%.40s\" is too long", s);
            v = v * 10 + (*p++ - '0');
        }
        if (p[0] == 'm' && p[1] == 's') {
            mult = 1;
            p += 2;
        } else if (*p == 's' || *p == '\0') {
            mult = 1000;
            p += *p ? 1 : 0;
        } else if (*p == 'm') {
            mult = 60000;
            p++;
        } else if (*p == 'h') {
            mult = 3600000;
            p++;
        } else {
            return cap_error_set(CAP_EINVALID, "\"%.40s\" has an unknown unit (use ms, s, m or h)",
                                 s);
        }
        if (v > (LLONG_MAX - total) / mult)
            return cap_error_set(CAP_EINVALID, "\"%.40s\" is too long", s);
        total += v * mult;
    }
    *out = total;
    return 0;
}

int cap_parse_bool(bool *out, const char *s)
{
    static const char *yes[] = {"true", "yes", "on", "1"};
    static const char *no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (s && strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (s && strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return cap_error_set(CAP_EINVALID, "\"%.40s\" is not a boolean (use true or false)",
                         s ? s : "");
}

bool cap_is_dns_label(const char *s, size_t maxlen)
{
    size_t n;
    if (!s)
        return false;
    n = strlen(s);
    if (n == 0 || n > maxlen)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && !(c == '-' && i > 0 && i + 1 < n))
            return false;
    }
    return true;
}

bool cap_str_is_clean_utf8(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned char c = *p;
        size_t n;
        unsigned int cp;
        if (c < 0x20 || c == 0x7f)
            return false;
        if (c < 0x80) {
            p++;
            continue;
        }
        if ((c & 0xe0) == 0xc0) {
            n = 1;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            n = 2;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        for (size_t i = 1; i <= n; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i] & 0x3f);
        }
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp < 0xa0) ||
            cp == 0xfffe || cp == 0xffff)
            return false;
        p += n + 1;
    }
    return true;
}

void cap_str_lower(char *s)
{
    for (; s && *s; s++)
        *s = (char)tolower((unsigned char)*s);
}

size_t cap_strlcpy(char *dst, const char *src, size_t n)
{
    size_t len = strlen(src);
    if (n) {
        size_t c = len < n - 1 ? len : n - 1;
        memcpy(dst, src, c);
        dst[c] = '\0';
    }
    return len;
}

int64_t cap_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t cap_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t cap_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void cap_format_rfc3339(char out[32], int64_t ms)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03dZ", (int)(ms % 1000));
}

int cap_parse_rfc3339(int64_t *out, const char *s)
{
    struct tm tm;
    const char *p;
    int64_t ms = 0;

    memset(&tm, 0, sizeof(tm));
    if (!s || !(p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm)))
        return cap_error_set(CAP_EINVALID, "\"%.40s\" is not an RFC 3339 time", s ? s : "");
    if (*p == '.') {
        int digits = 0;
        for (p++; isdigit((unsigned char)*p); p++, digits++)
            if (digits < 3)
                ms = ms * 10 + (*p - '0');
        if (digits == 0)
            return cap_error_set(CAP_EINVALID, "\"%.40s\" is not an RFC 3339 time", s);
        for (; digits < 3; digits++)
            ms *= 10;
    }
    if (strcmp(p, "Z") != 0 && strcmp(p, "+00:00") != 0)
        return cap_error_set(CAP_EINVALID, "\"%.40s\" is not a UTC RFC 3339 time", s);
    *out = (int64_t)timegm(&tm) * 1000 + ms;
    return 0;
}

void cap_sleep_ms(long long ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}
