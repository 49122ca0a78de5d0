/* capstan: string, number, duration and name helpers. All functions are thread-safe. */
#ifndef CAPSTAN_UTIL_STR_H
#define CAPSTAN_UTIL_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Parses a whole decimal integer within [min, max]. CAP_EINVALID with a message otherwise. */
int cap_parse_long(long long *out, const char *s, long long min, long long max);

/* Parses a byte size: "1048576", "512KiB", "1MiB", "2GiB" (also k/M/G as powers of 1024). */
int cap_parse_size(size_t *out, const char *s);

/* Parses a duration into milliseconds: a number followed by ms, s, m or h ("30s", "72h"),
 * or several such parts ("1h30m"). A bare number means seconds. */
int cap_parse_duration_ms(long long *out, const char *s);

/* Parses a boolean: true/false, yes/no, on/off, 1/0 (case-insensitive). */
int cap_parse_bool(bool *out, const char *s);

/* True if s is a DNS-1123 label of 1..maxlen characters. */
bool cap_is_dns_label(const char *s, size_t maxlen);

/* True if s is valid UTF-8 without control characters (C0, DEL, C1) and without the
 * noncharacters U+FFFE and U+FFFF (which YAML cannot carry). */
bool cap_str_is_clean_utf8(const char *s);

/* Lower-cases ASCII letters in place. */
void cap_str_lower(char *s);

/* Copies src into dst of size n, always NUL-terminating; returns the length of src. */
size_t cap_strlcpy(char *dst, const char *src, size_t n);

/* Wall clock in milliseconds since the epoch, and a monotonic clock in milliseconds. */
int64_t cap_now_ms(void);
int64_t cap_mono_ms(void);
/* The monotonic clock in nanoseconds, for measuring short durations. */
int64_t cap_mono_ns(void);

/* Formats milliseconds since the epoch as RFC 3339 UTC with milliseconds
 * ("2026-01-02T03:04:05.678Z"); out must hold 32 bytes. */
void cap_format_rfc3339(char out[32], int64_t ms);

/* Parses RFC 3339 UTC ("2026-01-02T03:04:05Z", optional fraction) into milliseconds since the
 * epoch. CAP_EINVALID otherwise. */
int cap_parse_rfc3339(int64_t *out, const char *s);

/* Sleeps for ms milliseconds (restarts after signals). */
void cap_sleep_ms(long long ms);

#endif
