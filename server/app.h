/* capstan: the running application's shared state, handed to handlers and workers.
 * Set up by main.c before the HTTP server and the workers start; read-only afterwards (the
 * objects it points to are thread-safe). */
#ifndef CAPSTAN_APP_H
#define CAPSTAN_APP_H

#include "config/config.h"
#include "model/model.h"
#include "render/render.h"
#include "store/store.h"

#include <stdint.h>

struct jobs_hub;
struct jobs_engine;
struct gitops_repo;
struct jobs_kube;

struct app {
    const struct cap_config *cfg;
    struct store_pool *pool;
    struct render_options render;
    struct model_defaults defaults;
    struct gitops_repo *fleet; /* NULL when no fleet repository is configured */
    struct jobs_hub *hub;
    const struct jobs_kube *kube; /* the management cluster (client NULL: GitOps only) */
    struct jobs_engine *engine;
    char instance[37];  /* this process's id (job leases) */
    int64_t started_ms; /* wall clock at start */
};

/* The application of this process (set once by main before serving). */
extern struct app *capstan_app;

#endif
