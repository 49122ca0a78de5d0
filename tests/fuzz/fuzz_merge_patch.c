/* Fuzz target: the RFC 7396 merge patch (model_merge_patch). The input is a JSON array
 * [target, patch]. Invariants from the RFC: a patch that is not an object replaces the
 * target; applying the same patch twice gives what applying it once gave; the result holds no
 * null member wherever the patch was an object; members the patch does not name are kept. */
#include "fuzz.h"

#include "model/model.h"

#include <jansson.h>

static void no_nulls_where_patched(const json_t *result, const json_t *patch)
{
    const char *key;
    json_t *pv;
    if (!json_is_object(patch))
        return;
    FUZZ_CHECK(json_is_object(result));
    json_object_foreach((json_t *)patch, key, pv)
    {
        json_t *rv = json_object_get(result, key);
        if (json_is_null(pv))
            FUZZ_CHECK(rv == NULL);
        else
            no_nulls_where_patched(rv, pv);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *in = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
    if (!json_is_array(in) || json_array_size(in) != 2) {
        json_decref(in);
        return 0;
    }
    const json_t *target = json_array_get(in, 0), *patch = json_array_get(in, 1);
    json_t *once = model_merge_patch(target, patch);
    FUZZ_CHECK(once != NULL);
    json_t *twice = model_merge_patch(once, patch);
    FUZZ_CHECK(twice != NULL);
    FUZZ_CHECK(json_equal(once, twice));
    if (!json_is_object(patch)) {
        FUZZ_CHECK(json_equal(once, patch));
    } else {
        no_nulls_where_patched(once, patch);
        if (json_is_object(target)) {
            const char *key;
            json_t *tv;
            json_object_foreach((json_t *)target, key, tv)
            {
                if (!json_object_get(patch, key))
                    FUZZ_CHECK(json_equal(json_object_get(once, key), tv));
            }
        }
    }
    /* the inputs are left as they were */
    json_t *again = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
    FUZZ_CHECK(json_equal(again, in));
    json_decref(again);
    json_decref(once);
    json_decref(twice);
    json_decref(in);
    return 0;
}
