/* capstan: the running application's shared state, handed to handlers and workers.
 * Set up by main.c before the HTTP server and the workers start; read-only afterwards except
 * for the members that say how they are synchronized. */
#ifndef CAPSTAN_APP_H
#define CAPSTAN_APP_H

#include "config/config.h"
#include "store/store.h"

#include <stdint.h>

struct app {
    const struct cap_config *cfg;
    struct store_pool *pool;
    int64_t started_ms; /* wall clock at start */
};

/* The application of this process (set once by main before serving). */
extern struct app *capstan_app;

#endif
