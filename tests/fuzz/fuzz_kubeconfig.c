/* Fuzz target: the kubeconfig parser (kube_config_parse), strict and permissive. The input is
 * a kubeconfig (YAML or JSON); files it names are looked for in a folder that does not exist.
 * Invariants: a parsed configuration has an https (or, when allowed, http) server; the error
 * message of a refused one never holds the input's token. */
#include "fuzz.h"

#include "kube/kube.h"
#include "util/error.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (int permissive = 0; permissive < 2; permissive++) {
        struct kube_config *cfg = NULL;
        struct kube_config_options o = {0};
        o.base_dir = "/nonexistent/capstan-fuzz";
        o.allow_insecure = permissive;
        o.allow_http = permissive;
        int rc = kube_config_parse(&cfg, (const char *)data, size, &o);
        FUZZ_CHECK((rc == 0) == (cfg != NULL));
        if (cfg) {
            FUZZ_CHECK(cfg->server != NULL);
            FUZZ_CHECK(strncmp(cfg->server, "https://", 8) == 0 ||
                       (permissive && strncmp(cfg->server, "http://", 7) == 0));
            FUZZ_CHECK(!cfg->insecure || permissive);
            if (cfg->token && strlen(cfg->token) >= 8)
                FUZZ_CHECK(strstr(cap_error_message(), cfg->token) == NULL);
        }
        kube_config_free(cfg);
    }
    return 0;
}
