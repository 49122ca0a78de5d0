/* Fuzz target: the tenant request validators (model_tenant_create, model_tenant_patch).
 * The input is a JSON document, used as a create body and as a merge patch onto a valid
 * tenant. Invariants: a validator either returns a spec or adds errors, never both; a spec it
 * returns validates again unchanged; a patch never changes the immutable fields. */
#include "fuzz.h"

#include "model/model.h"

#include <jansson.h>
#include <string.h>

static json_t *base_spec(const char *isolation)
{
    json_t *errors = json_array(), *spec = NULL;
    json_t *in = json_pack("{s:s,s:s,s:[s],s:s,s:{s:s,s:s,s:i}}", "name", "team-a", "displayName",
                           "Team A", "owners", "a@example.com", "isolation", isolation, "quota",
                           "cpu", "16", "memory", "64Gi", "environments", 5);
    if (strcmp(isolation, "dedicated") == 0) {
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
    size_t i;
    json_t *e;
    json_array_foreach(errors, i, e)
    {
        FUZZ_CHECK(json_is_string(json_object_get(e, "field")));
        FUZZ_CHECK(json_is_string(json_object_get(e, "message")));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const immutable[] = {"name", "isolation", "provider", "region", NULL};
    /* as the server reads request bodies: no duplicate keys, an object */
    json_t *in = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(in)) {
        json_decref(in);
        return 0;
    }
    for (int k = 0; k < 2; k++) {
        json_t *errors = json_array(), *out = NULL;
        int rc = model_tenant_create(&out, in, errors);
        check(rc, out, errors);
        if (out) {
            json_t *again = NULL, *errors2 = json_array();
            FUZZ_CHECK(model_tenant_create(&again, out, errors2) == 0);
            FUZZ_CHECK(json_equal(again, out));
            json_decref(again);
            json_decref(errors2);
        }
        json_decref(out);
        json_decref(errors);

        json_t *spec = base_spec(k ? "dedicated" : "vcluster");
        errors = json_array();
        out = NULL;
        rc = model_tenant_patch(&out, spec, in, errors);
        check(rc, out, errors);
        for (const char *const *f = immutable; out && *f; f++)
            FUZZ_CHECK(json_equal(json_object_get(out, *f), json_object_get(spec, *f)) ||
                       (!json_object_get(out, *f) && !json_object_get(spec, *f)));
        json_decref(out);
        json_decref(errors);
        json_decref(spec);
    }
    json_decref(in);
    return 0;
}
