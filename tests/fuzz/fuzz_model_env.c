/* Fuzz target: the environment request validators (model_env_create, model_env_patch,
 * model_env_extend) against a vCluster and a dedicated (GCP) tenant. The input is a JSON
 * document used as a create body, a merge patch onto a valid environment and an extend body.
 * Invariants: a spec or errors, never both; a created spec validates again unchanged; a patch
 * never changes name, type or ttl and never downgrades kubernetesVersion. */
#include "fuzz.h"

#include "model/model.h"

#include <jansson.h>
#include <string.h>

static const struct model_defaults defaults = {"v1.30.4"};

static json_t *tenant(int dedicated)
{
    json_t *errors = json_array(), *spec = NULL;
    json_t *in = json_pack("{s:s,s:s,s:[s],s:{s:s,s:s,s:i}}", "name", "team-a", "displayName",
                           "Team A", "owners", "a@example.com", "quota", "cpu", "16", "memory",
                           "64Gi", "environments", 5);
    if (dedicated) {
        json_object_set_new(in, "isolation", json_string("dedicated"));
        json_object_set_new(in, "provider", json_string("gcp"));
        json_object_set_new(in, "region", json_string("europe-west1"));
    }
    FUZZ_CHECK(model_tenant_create(&spec, in, errors) == 0);
    json_decref(in);
    json_decref(errors);
    return spec;
}

static void check(int rc, json_t *out, json_t *errors)
{
    FUZZ_CHECK((rc == 0) == (out != NULL));
    FUZZ_CHECK((rc == 0) == (json_array_size(errors) == 0));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* as the server reads request bodies: no duplicate keys, an object */
    json_t *in = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(in)) {
        json_decref(in);
        return 0;
    }
    for (int dedicated = 0; dedicated < 2; dedicated++) {
        json_t *t = tenant(dedicated), *errors = json_array(), *out = NULL, *base = NULL;
        int rc = model_env_create(&out, in, t, &defaults, errors);
        check(rc, out, errors);
        if (out) {
            json_t *again = NULL, *errors2 = json_array();
            FUZZ_CHECK(model_env_create(&again, out, t, &defaults, errors2) == 0);
            FUZZ_CHECK(json_equal(again, out));
            json_decref(again);
            json_decref(errors2);
        }
        json_decref(out);
        json_decref(errors);

        /* a valid environment to patch */
        json_t *body = json_pack("{s:s,s:s,s:s}", "name", "dev", "type", "ephemeral", "ttl", "24h");
        errors = json_array();
        FUZZ_CHECK(model_env_create(&base, body, t, &defaults, errors) == 0);
        json_decref(body);
        json_decref(errors);
        errors = json_array();
        out = NULL;
        rc = model_env_patch(&out, base, in, t, errors);
        check(rc, out, errors);
        if (out) {
            static const char *const fixed[] = {"name", "type", "ttl", NULL};
            for (const char *const *f = fixed; *f; f++)
                FUZZ_CHECK(json_equal(json_object_get(out, *f), json_object_get(base, *f)));
            FUZZ_CHECK(model_version_cmp(
                           json_string_value(json_object_get(out, "kubernetesVersion")),
                           json_string_value(json_object_get(base, "kubernetesVersion"))) >= 0);
        }
        json_decref(out);
        json_decref(errors);
        json_decref(base);
        json_decref(t);
    }
    long long ttl = 0;
    json_t *errors = json_array();
    if (model_env_extend(&ttl, in, errors) == 0)
        FUZZ_CHECK(ttl >= MODEL_TTL_MIN_MS && ttl <= MODEL_TTL_MAX_MS &&
                   json_array_size(errors) == 0);
    else
        FUZZ_CHECK(json_array_size(errors) > 0);
    json_decref(errors);
    json_decref(in);
    return 0;
}
