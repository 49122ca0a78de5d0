/* capstan: the route table. Route names are stable labels for metrics and audit. */
#include "api/api.h"

static const struct route routes[] = {
    {"GET", "/healthz", api_healthz, ROUTE_PUBLIC, "healthz"},
    {"GET", "/readyz", api_readyz, ROUTE_PUBLIC, "readyz"},
};

const struct route *api_routes(size_t *n)
{
    *n = sizeof(routes) / sizeof(routes[0]);
    return routes;
}
