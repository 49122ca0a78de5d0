/* capstan: token-bucket rate limits keyed by a string (a token id, a client address).
 *
 * Each key has a bucket of `burst` requests that refills at `rate` per second; a request takes
 * one. The table holds at most max_keys buckets: when it is full, buckets that have refilled
 * completely (idle keys) are forgotten; if none has, a new key is refused (fail closed), so a
 * flood of distinct keys cannot grow memory. Limits are per process. Thread-safe. */
#ifndef CAPSTAN_HTTP_RATELIMIT_H
#define CAPSTAN_HTTP_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_RATELIMIT_KEY_MAX 64

struct http_ratelimit;

/* Makes a limiter of rate requests per second (> 0) with bursts of burst (>= 1) for at most
 * max_keys keys. *out is the caller's (http_ratelimit_free). */
int http_ratelimit_create(struct http_ratelimit **out, double rate, double burst, size_t max_keys);
void http_ratelimit_free(struct http_ratelimit *rl);

/* Takes one request for key (at most HTTP_RATELIMIT_KEY_MAX - 1 bytes are used) at now_ms
 * (a monotonic clock). true: allowed. false: refused, and *retry_after_s (if not NULL) is the
 * whole number of seconds (>= 1) after which the key has a request again. */
bool http_ratelimit_take_at(struct http_ratelimit *rl, const char *key, int64_t now_ms,
                            unsigned *retry_after_s);

/* http_ratelimit_take_at with the current monotonic time. */
bool http_ratelimit_take(struct http_ratelimit *rl, const char *key, unsigned *retry_after_s);

/* Number of keys held (tests, metrics). */
size_t http_ratelimit_size(struct http_ratelimit *rl);

#endif
