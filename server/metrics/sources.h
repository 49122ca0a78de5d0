/* capstan: the scrape-time collector that reads the state other modules keep (the database
 * pool, the job queue, the job engine, the HTTP server, the fleet repository's push counters)
 * into the catalog's gauges and counters.
 *
 * Nothing here runs on a hot path: the values are read once per scrape. The queue figures
 * come from one indexed query (store_job_queue_stats); while the database cannot be reached
 * they are left out of the output (and capstan_database_up is 0) rather than shown stale. */
#ifndef CAPSTAN_METRICS_SOURCES_H
#define CAPSTAN_METRICS_SOURCES_H

#include <stdint.h>

struct store_pool;
struct jobs_engine;
struct http_server;
struct jobs_runtime;

/* What to read; any member may be NULL (or 0) when the process has no such part. The objects
 * must stay valid until metrics_sources_stop returns. */
struct metrics_sources {
    struct store_pool *pool;
    int pool_max;               /* CAPSTAN_DB_POOL */
    struct jobs_engine *engine; /* jobs running in this process */
    struct http_server *http;   /* requests in flight */
    struct jobs_runtime *jobs;  /* its fleet repository (opened lazily, read under its lock) */
    int64_t started_ms;         /* wall clock at start, for process_start_time_seconds */
};

/* Registers the collector on metrics_global() with a copy of *src. Errors: CAP_ECONFLICT when
 * it is registered already, CAP_ETOOBIG (no room for a collector). Not thread-safe against
 * metrics_sources_stop. */
int metrics_sources_start(const struct metrics_sources *src);
/* Removes the collector; once this returns no scrape reads the sources any more. Safe to call
 * when it was not started. */
void metrics_sources_stop(void);

#endif
