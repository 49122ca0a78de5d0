/* Fuzz target: `${VARIABLE}` substitution in cluster templates (render_template_expand).
 * The input is a template. It is expanded twice with the same variables holding different
 * values: plain ones, and hostile ones (YAML syntax, line breaks, quotes, `${...}`, Unicode).
 * Invariants (template.h): both expansions succeed or fail alike; when the plain one is YAML,
 * the hostile one is YAML too with exactly the same keys in the same places, so whatever a
 * variable holds cannot add, remove or rename a key. */
#include "fuzz.h"

#include "render/template.h"
#include "util/error.h"
#include "util/str.h"
#include "util/yaml.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static struct render_vars plain, hostile;

static void set(const char *name, const char *calm, const char *evil)
{
    FUZZ_CHECK(render_vars_set_str(&plain, name, calm) == 0);
    FUZZ_CHECK(render_vars_set_str(&hostile, name, evil) == 0);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    set("NAME", "team-a", "x\n  injected: true\nother: [1, 2]\n- item");
    set("NS", "tenant-team-a", "\"quoted\" 'single' \\ back # not a comment");
    set("VERSION", "v1.30.4", "${NAME} $${NS} { a: b } [c] &anchor *alias !!str");
    set("EMPTY", "", "\xe2\x80\xa8 line separator, \t tab, \x01 \xef\xbb\xbf bom \xf0\x9f\x98\x80");
    set("TEXT", "plain", "---\n...\n%YAML 1.2\n? complex\n: key");
    /* the variables of the built-in templates (in templates/, also seeds) */
    static const char *const names[] = {"AWS_SSH_KEY_NAME",
                                        "CLUSTER_NAME",
                                        "CONTROL_PLANE_MACHINE_TYPE",
                                        "CONTROL_PLANE_NAME",
                                        "ENVIRONMENT_TYPE",
                                        "ENVIRONMENT",
                                        "GCP_NETWORK",
                                        "GCP_PROJECT",
                                        "KUBERNETES_VERSION",
                                        "NAMESPACE",
                                        "POD_CIDR",
                                        "REGION",
                                        "SERVICE_CIDR",
                                        "TENANT",
                                        "VCLUSTER_CHART_NAME",
                                        "VCLUSTER_CHART_REPO",
                                        "VCLUSTER_CHART_VERSION",
                                        "WORKERS_NAME",
                                        "WORKER_MACHINE_TYPE",
                                        NULL};
    for (const char *const *n = names; *n; n++)
        set(*n, "value", "a: b\n- c\n\"d\": [e]\n#");
    FUZZ_CHECK(render_vars_set_int(&plain, "CONTROL_PLANE_REPLICAS", 3) == 0);
    FUZZ_CHECK(render_vars_set_int(&hostile, "CONTROL_PLANE_REPLICAS", 0) == 0);
    FUZZ_CHECK(render_vars_set_int(&plain, "WORKER_REPLICAS", 2) == 0);
    FUZZ_CHECK(render_vars_set_int(&hostile, "WORKER_REPLICAS", 123456789) == 0);
    FUZZ_CHECK(render_vars_set_int(&plain, "REPLICAS", 3) == 0);
    FUZZ_CHECK(render_vars_set_int(&hostile, "REPLICAS", 9007199254740993LL) == 0);
    FUZZ_CHECK(render_vars_set_missing(&plain, "PROJECT", "set CAPSTAN_GCP_PROJECT") == 0);
    FUZZ_CHECK(render_vars_set_missing(&hostile, "PROJECT", "set CAPSTAN_GCP_PROJECT") == 0);
    return 0;
}

/* True if a and b have the same keys in the same places (values may differ). */
static int same_shape(const json_t *a, const json_t *b)
{
    if (json_is_object(a) != json_is_object(b) || json_is_array(a) != json_is_array(b))
        return 0;
    if (json_is_object(a)) {
        const char *key;
        json_t *v;
        if (json_object_size(a) != json_object_size(b))
            return 0;
        json_object_foreach((json_t *)a, key, v)
        {
            if (!json_object_get(b, key) || !same_shape(v, json_object_get(b, key)))
                return 0;
        }
        return 1;
    }
    if (json_is_array(a)) {
        if (json_array_size(a) != json_array_size(b))
            return 0;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!same_shape(json_array_get(a, i), json_array_get(b, i)))
                return 0;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *a = NULL, *b = NULL;
    size_t alen = 0, blen = 0;
    json_t *ja = NULL, *jb = NULL;

    int ra = render_template_expand(&a, &alen, "fuzz.yaml", (const char *)data, size, &plain);
    int rb = render_template_expand(&b, &blen, "fuzz.yaml", (const char *)data, size, &hostile);
    FUZZ_CHECK((ra == 0) == (a != NULL));
    FUZZ_CHECK((rb == 0) == (b != NULL));
    /* whether a template is acceptable does not depend on the values (bar the size limit) */
    FUZZ_CHECK(ra == rb || ra == CAP_ETOOBIG || rb == CAP_ETOOBIG);
    if (ra == 0 && rb == 0) {
        FUZZ_CHECK(strlen(a) == alen && strlen(b) == blen);
        if (cap_yaml_to_json(&ja, a, alen, 64) == 0) {
            FUZZ_CHECK(cap_yaml_to_json(&jb, b, blen, 64) == 0);
            FUZZ_CHECK(same_shape(ja, jb));
        }
    }
    json_decref(ja);
    json_decref(jb);
    free(a);
    free(b);
    return 0;
}
