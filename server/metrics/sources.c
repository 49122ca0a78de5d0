/* capstan: the scrape-time collector over the pool, queue, engine, HTTP server and fleet
 * repository (see sources.h). */
#include "metrics/sources.h"

#include "gitops/gitops.h"
#include "http/http.h"
#include "jobs/engine.h"
#include "jobs/steps.h"
#include "log/log.h"
#include "metrics/catalog.h"
#include "store/jobs.h"
#include "store/store.h"
#include "util/error.h"

#include <pthread.h>
#include <stdbool.h>

static struct metrics_sources sources;
static bool started;

static struct metrics_series *one(struct metrics_family *f)
{
    return metrics_series_get(f, NULL);
}

static void collect(void *ctx)
{
    const struct metrics_sources *s = ctx;
    const struct metrics_catalog *c = metrics_catalog();

    metrics_gauge_set(one(c->start_time), (double)s->started_ms / 1000.0);
    if (s->http)
        metrics_gauge_set(one(c->http_in_flight), (double)http_server_inflight(s->http));
    if (s->engine)
        metrics_gauge_set(one(c->jobs_running), (double)jobs_engine_running(s->engine));
    if (s->pool) {
        int in_use = 0, waiting = 0, open = 0;
        long long queued = 0;
        double oldest = 0;

        store_pool_stats(s->pool, &in_use, &waiting, &open);
        metrics_gauge_set(one(c->db_pool_in_use), in_use);
        metrics_gauge_set(one(c->db_pool_waiting), waiting);
        metrics_gauge_set(one(c->db_pool_open), open);
        if (s->pool_max > 0)
            metrics_gauge_set(one(c->db_pool_max), s->pool_max);
        if (store_job_queue_stats(s->pool, &queued, &oldest) == 0) {
            metrics_gauge_set(one(c->db_up), 1);
            metrics_gauge_set(one(c->jobs_queued), (double)queued);
            metrics_gauge_set(one(c->queue_oldest_age), oldest);
        } else {
            log_debug("metrics: cannot read the job queue: %s", cap_error_message());
            cap_error_clear();
            metrics_gauge_set(one(c->db_up), 0);
            metrics_series_hide(one(c->jobs_queued));
            metrics_series_hide(one(c->queue_oldest_age));
        }
    }
    if (s->jobs) {
        struct gitops_stats st;
        bool have = false;
        /* the lock is held while the repository is being cloned (up to CAPSTAN_GIT_TIMEOUT):
         * never wait for it; the counters keep their last values meanwhile */
        if (pthread_mutex_trylock(&s->jobs->lock) == 0) {
            if (s->jobs->fleet) {
                gitops_stats_get(s->jobs->fleet, &st);
                have = true;
            }
            pthread_mutex_unlock(&s->jobs->lock);
        }
        if (have) {
            metrics_counter_set(one(c->git_push_rejections), (double)st.push_rejections);
            metrics_counter_set(one(c->git_commits), (double)st.commits);
            metrics_counter_set(one(c->git_changes), (double)st.changes);
            metrics_counter_set(one(c->git_reclones), (double)st.recloned);
        }
    }
}

int metrics_sources_start(const struct metrics_sources *src)
{
    int rc;
    if (started)
        return cap_error_set(CAP_ECONFLICT, "the metrics sources are registered already");
    sources = *src;
    if ((rc = metrics_collector_add(metrics_global(), collect, &sources)) != 0)
        return rc;
    started = true;
    return 0;
}

void metrics_sources_stop(void)
{
    if (!started)
        return;
    metrics_collector_remove(metrics_global(), collect, &sources);
    started = false;
}
