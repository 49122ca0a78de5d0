/* capstan: the metrics registry and the text exposition format (see metrics.h).
 *
 * Each family has a fixed table of METRICS_SERIES_MAX * 2 atomic series pointers (open
 * addressing, linear probing, FNV-1a over the label values). Slots are only ever filled,
 * never emptied, so a lookup that meets an empty slot knows the series does not exist, and
 * the table is never more than half full. A new series is published with one compare-and-swap;
 * a thread that loses the race for a slot frees its copy and uses the winner's. The registry
 * lock guards the family list and the collectors and is held while rendering; no update takes
 * it. */
#include "metrics/metrics.h"

#include "util/error.h"
#include "util/str.h"

#include <assert.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SLOTS   (2 * METRICS_SERIES_MAX) /* a power of two */
#define KEY_MAX (METRICS_MAX_LABELS * (METRICS_LABEL_VALUE_MAX + 1))

struct metrics_series {
    const struct metrics_family *family;
    atomic_bool shown;
    _Atomic uint64_t value; /* bits of a double: a counter's or gauge's value, a histogram's sum */
    size_t keylen;
    char *key;                              /* the label values, each followed by a NUL */
    const char *values[METRICS_MAX_LABELS]; /* point into key */
    _Atomic uint64_t counts[];              /* histograms: per bucket, the last one is +Inf */
};

struct metrics_family {
    struct metrics_registry *reg;
    enum metrics_type type;
    char name[METRICS_NAME_MAX + 1];
    char *help;
    int nlabels;
    char labels[METRICS_MAX_LABELS][METRICS_NAME_MAX + 1];
    double buckets[METRICS_MAX_BUCKETS];
    size_t nbuckets;
    atomic_int nseries;
    _Atomic(struct metrics_series *) slots[SLOTS];
};

struct collector {
    metrics_collect_fn fn;
    void *ctx;
};

struct metrics_registry {
    pthread_mutex_t lock; /* families, collectors; held while rendering */
    struct metrics_family *families[METRICS_MAX_FAMILIES];
    int nfamilies;
    struct collector collectors[METRICS_MAX_COLLECTORS];
    int ncollectors;
    atomic_ullong dropped;
};

/* ---- doubles in atomic 64-bit words ---- */

static uint64_t dbits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof(u));
    return u;
}

static double bitsd(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof(d));
    return d;
}

static void atomic_add_double(_Atomic uint64_t *p, double v)
{
    uint64_t old = atomic_load_explicit(p, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(p, &old, dbits(bitsd(old) + v),
                                                  memory_order_relaxed, memory_order_relaxed)) {
    }
}

/* ---- names and values ---- */

static bool name_ok(const char *s, bool colon)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > METRICS_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alpha =
            (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':');
        if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
            return false;
    }
    return true;
}

/* True if s[0..n) is well-formed UTF-8 (no overlong forms, surrogates or values past U+10FFFF). */
static bool utf8_ok(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned c = p[i];
        size_t len;
        unsigned cp;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            len = 2;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (i + len > n)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i + k] & 0x3f);
        }
        if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
            return false;
        i += len;
    }
    return true;
}

static uint64_t fnv1a(const char *s, size_t n)
{
    uint64_t h = 14695981039346656037ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

/* ---- registry and families ---- */

int metrics_registry_new(struct metrics_registry **out)
{
    struct metrics_registry *r = calloc(1, sizeof(*r));
    if (!r)
        return cap_error_set(CAP_ERROR, "out of memory");
    pthread_mutex_init(&r->lock, NULL);
    atomic_init(&r->dropped, 0);
    *out = r;
    return 0;
}

static void series_free(struct metrics_series *s)
{
    if (!s)
        return;
    free(s->key);
    free(s);
}

static void family_free(struct metrics_family *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < SLOTS; i++)
        series_free(atomic_load(&f->slots[i]));
    free(f->help);
    free(f);
}

void metrics_registry_free(struct metrics_registry *r)
{
    if (!r)
        return;
    for (int i = 0; i < r->nfamilies; i++)
        family_free(r->families[i]);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

static struct metrics_series *series_new(const struct metrics_family *f, const char *key,
                                         size_t len)
{
    size_t ncounts = f->type == METRICS_HISTOGRAM ? f->nbuckets + 1 : 0;
    struct metrics_series *s = calloc(1, sizeof(*s) + ncounts * sizeof(s->counts[0]));
    const char *p;

    if (!s)
        return NULL;
    s->key = malloc(len ? len : 1);
    if (!s->key) {
        free(s);
        return NULL;
    }
    memcpy(s->key, key, len);
    s->keylen = len;
    s->family = f;
    atomic_init(&s->shown, true);
    atomic_init(&s->value, dbits(0.0));
    for (size_t i = 0; i < ncounts; i++)
        atomic_init(&s->counts[i], 0);
    p = s->key;
    for (int i = 0; i < f->nlabels; i++) {
        s->values[i] = p;
        p += strlen(p) + 1;
    }
    return s;
}

int metrics_family_new(struct metrics_family **out, struct metrics_registry *r,
                       enum metrics_type type, const char *name, const char *help,
                       const char *const *labels, const double *buckets, size_t nbuckets)
{
    struct metrics_family *f = NULL;
    int rc = 0;

    if (!r || (type != METRICS_COUNTER && type != METRICS_GAUGE && type != METRICS_HISTOGRAM))
        return cap_error_set(CAP_EINVALID, "invalid metric family");
    if (!name_ok(name, true))
        return cap_error_set(CAP_EINVALID, "invalid metric name \"%.100s\"", name ? name : "");
    if (type == METRICS_HISTOGRAM) {
        if (!buckets || nbuckets == 0 || nbuckets > METRICS_MAX_BUCKETS)
            return cap_error_set(CAP_EINVALID, "histogram %s needs 1..%d buckets", name,
                                 METRICS_MAX_BUCKETS);
        for (size_t i = 0; i < nbuckets; i++)
            if (!isfinite(buckets[i]) || (i > 0 && buckets[i] <= buckets[i - 1]))
                return cap_error_set(CAP_EINVALID,
                                     "buckets of histogram %s must increase and be finite", name);
    } else if (nbuckets) {
        return cap_error_set(CAP_EINVALID, "only histograms have buckets (%s)", name);
    }
    f = calloc(1, sizeof(*f));
    if (!f)
        return cap_error_set(CAP_ERROR, "out of memory");
    f->reg = r;
    f->type = type;
    cap_strlcpy(f->name, name, sizeof(f->name));
    f->help = strdup(help ? help : "");
    if (!f->help) {
        rc = cap_error_set(CAP_ERROR, "out of memory");
        goto cleanup;
    }
    for (int i = 0; labels && labels[i]; i++) {
        if (i == METRICS_MAX_LABELS) {
            rc = cap_error_set(CAP_EINVALID, "metric %s has more than %d labels", name,
                               METRICS_MAX_LABELS);
            goto cleanup;
        }
        if (!name_ok(labels[i], false) || strncmp(labels[i], "__", 2) == 0 ||
            (type == METRICS_HISTOGRAM && strcmp(labels[i], "le") == 0)) {
            rc = cap_error_set(CAP_EINVALID, "invalid label name \"%.100s\" of metric %s",
                               labels[i], name);
            goto cleanup;
        }
        for (int j = 0; j < i; j++) {
            if (strcmp(labels[j], labels[i]) == 0) {
                rc = cap_error_set(CAP_EINVALID, "label %s of metric %s is named twice", labels[i],
                                   name);
                goto cleanup;
            }
        }
        cap_strlcpy(f->labels[i], labels[i], sizeof(f->labels[i]));
        f->nlabels = i + 1;
    }
    if (type == METRICS_HISTOGRAM) {
        memcpy(f->buckets, buckets, nbuckets * sizeof(double));
        f->nbuckets = nbuckets;
    }
    atomic_init(&f->nseries, 0);
    for (size_t i = 0; i < SLOTS; i++)
        atomic_init(&f->slots[i], NULL);

    pthread_mutex_lock(&r->lock);
    for (int i = 0; i < r->nfamilies && rc == 0; i++)
        if (strcmp(r->families[i]->name, name) == 0)
            rc = cap_error_set(CAP_ECONFLICT, "metric %s is declared twice", name);
    if (rc == 0 && r->nfamilies == METRICS_MAX_FAMILIES)
        rc = cap_error_set(CAP_ETOOBIG, "more than %d metric families", METRICS_MAX_FAMILIES);
    if (rc == 0)
        r->families[r->nfamilies++] = f;
    pthread_mutex_unlock(&r->lock);
    if (rc)
        goto cleanup;
    /* a family without labels has exactly one series: show it (at 0) from the start */
    if (f->nlabels == 0)
        metrics_series_get(f, NULL);
    *out = f;
    return 0;
cleanup:
    family_free(f);
    return rc;
}

/* ---- series ---- */

struct metrics_series *metrics_series_get(struct metrics_family *f, const char *const *values)
{
    char key[KEY_MAX];
    size_t len = 0, idx;
    struct metrics_series *mine = NULL;

    if (!f)
        return NULL;
    for (int i = 0; i < f->nlabels; i++) {
        const char *v = values ? values[i] : NULL;
        size_t n = v ? strnlen(v, METRICS_LABEL_VALUE_MAX + 1) : 0;
        if (!v || n > METRICS_LABEL_VALUE_MAX || !utf8_ok(v, n))
            return NULL;
        memcpy(key + len, v, n);
        key[len + n] = '\0';
        len += n + 1;
    }
    idx = (size_t)(fnv1a(key, len) & (SLOTS - 1));
    for (size_t probe = 0; probe < SLOTS; probe++, idx = (idx + 1) & (SLOTS - 1)) {
        struct metrics_series *cur = atomic_load_explicit(&f->slots[idx], memory_order_acquire);
        if (!cur) {
            if (!mine) {
                if (atomic_fetch_add(&f->nseries, 1) >= METRICS_SERIES_MAX) {
                    atomic_fetch_sub(&f->nseries, 1);
                    atomic_fetch_add_explicit(&f->reg->dropped, 1, memory_order_relaxed);
                    return NULL;
                }
                mine = series_new(f, key, len);
                if (!mine) {
                    atomic_fetch_sub(&f->nseries, 1);
                    return NULL;
                }
            }
            if (atomic_compare_exchange_strong_explicit(&f->slots[idx], &cur, mine,
                                                        memory_order_acq_rel, memory_order_acquire))
                return mine;
            /* another thread filled this slot first: cur is its series */
        }
        if (cur->keylen == len && memcmp(cur->key, key, len) == 0) {
            if (mine) {
                series_free(mine);
                atomic_fetch_sub(&f->nseries, 1);
            }
            return cur;
        }
    }
    /* not reached: the table is never more than half full */
    series_free(mine);
    return NULL;
}

void metrics_counter_add(struct metrics_series *s, double v)
{
    if (!s || !(v >= 0))
        return;
    assert(s->family->type == METRICS_COUNTER);
    atomic_add_double(&s->value, v);
}

void metrics_counter_set(struct metrics_series *s, double v)
{
    if (!s || isnan(v))
        return;
    assert(s->family->type == METRICS_COUNTER);
    atomic_store_explicit(&s->value, dbits(v), memory_order_relaxed);
}

void metrics_gauge_set(struct metrics_series *s, double v)
{
    if (!s)
        return;
    assert(s->family->type == METRICS_GAUGE);
    atomic_store_explicit(&s->value, dbits(v), memory_order_relaxed);
    atomic_store_explicit(&s->shown, true, memory_order_relaxed);
}

void metrics_gauge_add(struct metrics_series *s, double v)
{
    if (!s)
        return;
    assert(s->family->type == METRICS_GAUGE);
    atomic_add_double(&s->value, v);
    atomic_store_explicit(&s->shown, true, memory_order_relaxed);
}

void metrics_series_hide(struct metrics_series *s)
{
    if (s)
        atomic_store_explicit(&s->shown, false, memory_order_relaxed);
}

void metrics_observe(struct metrics_series *s, double v)
{
    const struct metrics_family *f;
    size_t i = 0;

    if (!s || isnan(v))
        return;
    f = s->family;
    assert(f->type == METRICS_HISTOGRAM);
    while (i < f->nbuckets && v > f->buckets[i])
        i++;
    atomic_fetch_add_explicit(&s->counts[i], 1, memory_order_relaxed);
    atomic_add_double(&s->value, v);
}

double metrics_series_value(const struct metrics_series *s, unsigned long long *count)
{
    if (count)
        *count = 0;
    if (!s)
        return 0;
    if (count && s->family->type == METRICS_HISTOGRAM)
        for (size_t i = 0; i <= s->family->nbuckets; i++)
            *count += atomic_load_explicit(&((struct metrics_series *)s)->counts[i],
                                           memory_order_relaxed);
    return bitsd(atomic_load_explicit(&((struct metrics_series *)s)->value, memory_order_relaxed));
}

unsigned long long metrics_dropped(const struct metrics_registry *r)
{
    return r ? atomic_load(&((struct metrics_registry *)r)->dropped) : 0;
}

/* ---- collectors ---- */

int metrics_collector_add(struct metrics_registry *r, metrics_collect_fn fn, void *ctx)
{
    int rc = 0;
    pthread_mutex_lock(&r->lock);
    if (r->ncollectors == METRICS_MAX_COLLECTORS)
        rc = cap_error_set(CAP_ETOOBIG, "more than %d metrics collectors", METRICS_MAX_COLLECTORS);
    else
        r->collectors[r->ncollectors++] = (struct collector){fn, ctx};
    pthread_mutex_unlock(&r->lock);
    return rc;
}

void metrics_collector_remove(struct metrics_registry *r, metrics_collect_fn fn, void *ctx)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->lock);
    for (int i = 0; i < r->ncollectors; i++) {
        if (r->collectors[i].fn == fn && r->collectors[i].ctx == ctx) {
            memmove(&r->collectors[i], &r->collectors[i + 1],
                    (size_t)(r->ncollectors - i - 1) * sizeof(r->collectors[0]));
            r->ncollectors--;
            break;
        }
    }
    pthread_mutex_unlock(&r->lock);
}

/* ---- the text exposition format 0.0.4 ---- */

/* The shortest of %.15g / %.17g that reads back as v; NaN, +Inf and -Inf as Prometheus writes
 * them. */
static void format_value(char out[40], double v)
{
    if (isnan(v)) {
        cap_strlcpy(out, "NaN", 40);
    } else if (isinf(v)) {
        cap_strlcpy(out, v > 0 ? "+Inf" : "-Inf", 40);
    } else {
        snprintf(out, 40, "%.15g", v);
        if (strtod(out, NULL) != v)
            snprintf(out, 40, "%.17g", v);
    }
}

/* Appends s with backslash and newline escaped, and double quotes too when quote is set. */
static int put_escaped(struct cap_buf *b, const char *s, bool quote)
{
    const char *run = s;
    int rc = 0;
    for (const char *p = s; *p && rc == 0; p++) {
        const char *esc = *p == '\\'             ? "\\\\"
                          : *p == '\n'           ? "\\n"
                          : (quote && *p == '"') ? "\\\""
                                                 : NULL;
        if (!esc)
            continue;
        rc = cap_buf_append(b, run, (size_t)(p - run));
        if (rc == 0)
            rc = cap_buf_puts(b, esc);
        run = p + 1;
    }
    if (rc == 0)
        rc = cap_buf_puts(b, run);
    return rc;
}

/* Appends {a="x",b="y"[,le="..."]} (nothing when there is no label at all). */
static int put_labels(struct cap_buf *b, const struct metrics_series *s, const char *le)
{
    const struct metrics_family *f = s->family;
    int rc = 0;
    if (f->nlabels == 0 && !le)
        return 0;
    rc = cap_buf_putc(b, '{');
    for (int i = 0; i < f->nlabels && rc == 0; i++) {
        rc = cap_buf_printf(b, "%s%s=\"", i ? "," : "", f->labels[i]);
        if (rc == 0)
            rc = put_escaped(b, s->values[i], true);
        if (rc == 0)
            rc = cap_buf_putc(b, '"');
    }
    if (le && rc == 0)
        rc = cap_buf_printf(b, "%sle=\"%s\"", f->nlabels ? "," : "", le);
    if (rc == 0)
        rc = cap_buf_putc(b, '}');
    return rc;
}

static int put_sample(struct cap_buf *b, const struct metrics_series *s, const char *suffix,
                      const char *le, double v)
{
    char num[40];
    int rc = cap_buf_printf(b, "%s%s", s->family->name, suffix);
    if (rc == 0)
        rc = put_labels(b, s, le);
    format_value(num, v);
    if (rc == 0)
        rc = cap_buf_printf(b, " %s\n", num);
    return rc;
}

static int series_cmp(const void *a, const void *b)
{
    const struct metrics_series *x = *(const struct metrics_series *const *)a;
    const struct metrics_series *y = *(const struct metrics_series *const *)b;
    size_t n = x->keylen < y->keylen ? x->keylen : y->keylen;
    int c = memcmp(x->key, y->key, n);
    if (c)
        return c;
    return x->keylen < y->keylen ? -1 : x->keylen > y->keylen;
}

static int render_family(struct metrics_family *f, struct cap_buf *b, struct metrics_series **list)
{
    static const char *const types[] = {"", "counter", "gauge", "histogram"};
    size_t n = 0;
    int rc;

    for (size_t i = 0; i < SLOTS; i++) {
        struct metrics_series *s = atomic_load_explicit(&f->slots[i], memory_order_acquire);
        if (s && atomic_load_explicit(&s->shown, memory_order_relaxed))
            list[n++] = s;
    }
    if (n == 0)
        return 0;
    qsort(list, n, sizeof(struct metrics_series *), series_cmp);
    rc = cap_buf_printf(b, "# HELP %s ", f->name);
    if (rc == 0)
        rc = put_escaped(b, f->help, false);
    if (rc == 0)
        rc = cap_buf_printf(b, "\n# TYPE %s %s\n", f->name, types[f->type]);
    for (size_t k = 0; k < n && rc == 0; k++) {
        struct metrics_series *s = list[k];
        double value = bitsd(atomic_load_explicit(&s->value, memory_order_relaxed));
        if (f->type != METRICS_HISTOGRAM) {
            rc = put_sample(b, s, "", NULL, value);
            continue;
        }
        /* cumulative buckets; _count is the +Inf bucket, so the two always agree */
        uint64_t cum = 0;
        char le[40];
        for (size_t i = 0; i <= f->nbuckets && rc == 0; i++) {
            cum += atomic_load_explicit(&s->counts[i], memory_order_relaxed);
            if (i < f->nbuckets)
                format_value(le, f->buckets[i]);
            else
                cap_strlcpy(le, "+Inf", sizeof(le));
            rc = put_sample(b, s, "_bucket", le, (double)cum);
        }
        if (rc == 0)
            rc = put_sample(b, s, "_sum", NULL, value);
        if (rc == 0)
            rc = put_sample(b, s, "_count", NULL, (double)cum);
    }
    return rc;
}

int metrics_render(struct metrics_registry *r, struct cap_buf *out)
{
    struct metrics_series **list = malloc(SLOTS * sizeof(struct metrics_series *));
    int rc = 0;

    if (!list)
        return cap_error_set(CAP_ERROR, "out of memory");
    pthread_mutex_lock(&r->lock);
    for (int i = 0; i < r->ncollectors; i++)
        r->collectors[i].fn(r->collectors[i].ctx);
    for (int i = 0; i < r->nfamilies && rc == 0; i++)
        rc = render_family(r->families[i], out, list);
    pthread_mutex_unlock(&r->lock);
    free(list);
    if (rc)
        return cap_error_set(rc, "the metrics are larger than %zu bytes", out->max);
    return 0;
}

double metrics_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
