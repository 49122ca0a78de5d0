/* capstan: GET /api/v1/tenants/{tenant}/environments/{env}/kubeconfig: the kubeconfig of the
 * environment's cluster, read from the management cluster (the <cluster>-kubeconfig Secret that
 * Cluster API writes) each time; never stored, never logged. */
#include "api/api.h"
#include "api/common.h"
#include "app.h"
#include "jobs/cluster.h"
#include "store/resources.h"
#include "util/error.h"
#include "util/json.h"

#include <stdlib.h>
#include <string.h>

int api_envs_kubeconfig(struct http_request *req)
{
    const char *tname, *ename, *state;
    json_t *e = NULL;
    char *kubeconfig = NULL;
    size_t len = 0;
    int rc;

    if ((rc = api_tenant_param(req, &tname)) != 0 || (rc = api_env_param(req, &ename)) != 0 ||
        (rc = http_query_only(req, (const char *const[]){NULL})) != 0)
        return rc;
    if ((rc = store_env_get(capstan_app->pool, tname, ename, &e)) != 0)
        return rc;
    state = cap_json_get_str(e, "state");
    if (strcmp(state, "ready") != 0) {
        rc = cap_error_set(CAP_ECONFLICT,
                           "environment \"%s\" is %s; its kubeconfig is available once it is ready",
                           ename, state);
        json_decref(e);
        return rc;
    }
    json_decref(e);
    if ((rc = jobs_cluster_kubeconfig(capstan_app->kube, tname, ename, &kubeconfig, &len)) != 0)
        return rc;
    rc = http_reply_text(req, HTTP_OK, "application/yaml", kubeconfig, len);
    /* wipe the copy we held before giving the memory back */
    memset(kubeconfig, 0, len);
    free(kubeconfig);
    return rc;
}
