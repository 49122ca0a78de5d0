/* capstan: a small Prometheus metrics registry (counters, gauges, histograms with label sets)
 * and the text exposition format 0.0.4.
 *
 * A family is one metric name with its type, help text and label names; a series is one
 * combination of label values of a family. Series are made on first use and live as long as
 * the registry, so callers may keep the pointer. Invariants:
 *   - updating a series is lock-free (atomic integer adds, and compare-and-swap loops on the
 *     bits of doubles); finding an existing series is lock-free too (an open-addressing table
 *     of atomic pointers that only ever gains entries);
 *   - a family holds at most METRICS_SERIES_MAX series: label values come from small fixed sets
 *     (route names, job kinds, status codes), never from tenant names, ids or paths; past the
 *     limit new combinations are dropped (and counted) instead of growing without bound;
 *   - rendering never shows a value that was not put into a series: no configuration, no
 *     secrets. Label values are escaped (backslash, double quote, newline) and must be UTF-8.
 * Families are declared once at start-up; there is no unregistering of single families. */
#ifndef CAPSTAN_METRICS_METRICS_H
#define CAPSTAN_METRICS_METRICS_H

#include "util/buf.h"

#include <stdbool.h>
#include <stddef.h>

#define METRICS_MAX_LABELS      4    /* label names of one family */
#define METRICS_MAX_BUCKETS     24   /* histogram upper bounds (without +Inf) */
#define METRICS_SERIES_MAX      1024 /* series of one family */
#define METRICS_LABEL_VALUE_MAX 128  /* bytes of one label value */
#define METRICS_NAME_MAX        96   /* bytes of a metric or label name */
#define METRICS_MAX_FAMILIES    64
#define METRICS_MAX_COLLECTORS  16

/* The Content-Type of the text exposition format. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

enum metrics_type { METRICS_COUNTER = 1, METRICS_GAUGE = 2, METRICS_HISTOGRAM = 3 };

struct metrics_registry;
struct metrics_family;
struct metrics_series;

/* Makes an empty registry. *out is the caller's (metrics_registry_free). */
int metrics_registry_new(struct metrics_registry **out);
/* Frees the registry with its families and series. Nobody may use them afterwards. Accepts NULL. */
void metrics_registry_free(struct metrics_registry *r);

/* Declares a family. name: [a-zA-Z_:][a-zA-Z0-9_:]*; labels: NULL-terminated label names
 * ([a-zA-Z_][a-zA-Z0-9_]*, not starting with "__", not "le" for histograms), or NULL for none;
 * buckets (histograms only): 1..METRICS_MAX_BUCKETS strictly increasing finite upper bounds
 * (+Inf is implied). help may hold any text (escaped when rendered). Strings are copied.
 * *out belongs to the registry. Errors: CAP_EINVALID (a bad argument), CAP_ECONFLICT (the name
 * is taken), CAP_ETOOBIG (METRICS_MAX_FAMILIES reached). Thread-safe. */
int metrics_family_new(struct metrics_family **out, struct metrics_registry *r,
                       enum metrics_type type, const char *name, const char *help,
                       const char *const *labels, const double *buckets, size_t nbuckets);

/* The series of f for the label values `values` (as many as f has label names, in that order;
 * NULL when f has none). Made on first use; valid until the registry is freed. Returns NULL
 * (the caller's update is then a no-op) when f is NULL, a value is NULL, longer than
 * METRICS_LABEL_VALUE_MAX or not UTF-8, or f already holds METRICS_SERIES_MAX series.
 * Lock-free for existing series. Thread-safe. */
struct metrics_series *metrics_series_get(struct metrics_family *f, const char *const *values);

/* Updates. Every function accepts NULL (and does nothing), so a dropped series costs nothing.
 * counter_add: v >= 0 (others are ignored). gauge_set / gauge_add: gauges. counter_set: for
 * collectors that mirror a count kept elsewhere (it must not go down). observe: histograms.
 * series_hide: leaves a gauge out of the output until it is set again (a value that is not
 * known now, say while the database is down, is better absent than stale). Thread-safe. */
void metrics_counter_add(struct metrics_series *s, double v);
void metrics_counter_set(struct metrics_series *s, double v);
void metrics_gauge_set(struct metrics_series *s, double v);
void metrics_gauge_add(struct metrics_series *s, double v);
void metrics_observe(struct metrics_series *s, double v);
void metrics_series_hide(struct metrics_series *s);

/* Reads a series back (tests): a counter's or gauge's value, a histogram's sum; *count gets a
 * histogram's number of observations (may be NULL). 0 for NULL. */
double metrics_series_value(const struct metrics_series *s, unsigned long long *count);

/* How many times a new series was refused because its family was full (all families of r). */
unsigned long long metrics_dropped(const struct metrics_registry *r);

/* A collector runs at the start of every rendering (on the scraping thread, one rendering at a
 * time) to set gauges and mirrored counters from state kept elsewhere. It must not block for
 * long and must not call metrics_render. CAP_ETOOBIG past METRICS_MAX_COLLECTORS. */
typedef void (*metrics_collect_fn)(void *ctx);
int metrics_collector_add(struct metrics_registry *r, metrics_collect_fn fn, void *ctx);
/* Removes the collector (fn, ctx); once this returns it is not running and will not run. */
void metrics_collector_remove(struct metrics_registry *r, metrics_collect_fn fn, void *ctx);

/* Runs the collectors, then appends every family in the text exposition format 0.0.4 to out
 * (families in declaration order, series sorted by label values; # HELP and # TYPE lines;
 * histograms as cumulative _bucket{le=...}, _sum and _count). Families without series are
 * left out. CAP_ETOOBIG when out's maximum is reached. Thread-safe. */
int metrics_render(struct metrics_registry *r, struct cap_buf *out);

/* Seconds on a monotonic clock with sub-microsecond resolution, for measuring durations. */
double metrics_now(void);

#endif
