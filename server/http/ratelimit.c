/* capstan: token-bucket rate limits (see ratelimit.h).
 *
 * A chained hash table of buckets under one mutex. A bucket stores the tokens it had at its
 * last update; the refill since then is computed when the key comes again. When the table is
 * full, one sweep (at most every 100 ms) forgets the buckets that have refilled completely,
 * since a full bucket is the same as no bucket. */
#include "http/ratelimit.h"

#include "util/error.h"
#include "util/str.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct bucket {
    struct bucket *next;
    double tokens;
    int64_t last_ms;
    char key[HTTP_RATELIMIT_KEY_MAX];
};

struct http_ratelimit {
    pthread_mutex_t lock;
    double rate;  /* per millisecond */
    double burst; /* most tokens */
    size_t max_keys, count, nslots;
    struct bucket **slots;
    int64_t last_sweep_ms;
};

int http_ratelimit_create(struct http_ratelimit **out, double rate, double burst, size_t max_keys)
{
    struct http_ratelimit *rl;

    *out = NULL;
    if (!(rate > 0) || !(burst >= 1) || max_keys == 0)
        return cap_error_set(CAP_EINVALID, "a rate limit needs a rate, a burst and room for keys");
    rl = calloc(1, sizeof(*rl));
    if (!rl)
        return cap_error_set(CAP_ERROR, "out of memory");
    rl->nslots = 64;
    while (rl->nslots < max_keys && rl->nslots < (1u << 20))
        rl->nslots <<= 1;
    rl->slots = calloc(rl->nslots, sizeof(struct bucket *));
    if (!rl->slots) {
        free(rl);
        return cap_error_set(CAP_ERROR, "out of memory");
    }
    rl->rate = rate / 1000.0;
    rl->burst = burst;
    rl->max_keys = max_keys;
    rl->last_sweep_ms = INT64_MIN / 2;
    pthread_mutex_init(&rl->lock, NULL);
    *out = rl;
    return 0;
}

void http_ratelimit_free(struct http_ratelimit *rl)
{
    if (!rl)
        return;
    for (size_t i = 0; i < rl->nslots; i++) {
        struct bucket *b = rl->slots[i];
        while (b) {
            struct bucket *next = b->next;
            free(b);
            b = next;
        }
    }
    pthread_mutex_destroy(&rl->lock);
    free(rl->slots);
    free(rl);
}

/* FNV-1a */
static size_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return (size_t)h;
}

static double refilled(const struct http_ratelimit *rl, const struct bucket *b, int64_t now_ms)
{
    int64_t elapsed = now_ms > b->last_ms ? now_ms - b->last_ms : 0;
    double t = b->tokens + (double)elapsed * rl->rate;
    return t > rl->burst ? rl->burst : t;
}

/* Forgets every bucket that is full again; lock held. */
static void sweep(struct http_ratelimit *rl, int64_t now_ms)
{
    for (size_t i = 0; i < rl->nslots; i++) {
        struct bucket **pp = &rl->slots[i];
        while (*pp) {
            struct bucket *b = *pp;
            if (refilled(rl, b, now_ms) >= rl->burst) {
                *pp = b->next;
                free(b);
                rl->count--;
            } else {
                pp = &b->next;
            }
        }
    }
}

bool http_ratelimit_take_at(struct http_ratelimit *rl, const char *key, int64_t now_ms,
                            unsigned *retry_after_s)
{
    char k[HTTP_RATELIMIT_KEY_MAX];
    struct bucket *b;
    bool ok;

    cap_strlcpy(k, key, sizeof(k));
    size_t slot = hash(k) & (rl->nslots - 1);
    pthread_mutex_lock(&rl->lock);
    for (b = rl->slots[slot]; b; b = b->next)
        if (strcmp(b->key, k) == 0)
            break;
    if (!b) {
        if (rl->count >= rl->max_keys && now_ms - rl->last_sweep_ms >= 100) {
            rl->last_sweep_ms = now_ms;
            sweep(rl, now_ms);
        }
        if (rl->count >= rl->max_keys || !(b = calloc(1, sizeof(*b)))) {
            pthread_mutex_unlock(&rl->lock);
            if (retry_after_s)
                *retry_after_s = 1;
            return false;
        }
        memcpy(b->key, k, sizeof(k));
        b->tokens = rl->burst;
        b->last_ms = now_ms;
        b->next = rl->slots[slot];
        rl->slots[slot] = b;
        rl->count++;
    }
    b->tokens = refilled(rl, b, now_ms);
    b->last_ms = now_ms;
    ok = b->tokens >= 1.0;
    if (ok) {
        b->tokens -= 1.0;
    } else if (retry_after_s) {
        double ms = (1.0 - b->tokens) / rl->rate;
        double s = ceil(ms / 1000.0);
        *retry_after_s = s < 1 ? 1 : s > 86400 ? 86400 : (unsigned)s;
    }
    pthread_mutex_unlock(&rl->lock);
    return ok;
}

bool http_ratelimit_take(struct http_ratelimit *rl, const char *key, unsigned *retry_after_s)
{
    return http_ratelimit_take_at(rl, key, cap_mono_ms(), retry_after_s);
}

size_t http_ratelimit_size(struct http_ratelimit *rl)
{
    size_t n;
    pthread_mutex_lock(&rl->lock);
    n = rl->count;
    pthread_mutex_unlock(&rl->lock);
    return n;
}
