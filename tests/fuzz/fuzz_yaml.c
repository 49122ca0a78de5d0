/* Fuzz target: the strict one-document YAML reader (cap_yaml_to_json). Invariants: a result
 * or an error, never both; depth and size bounds hold; a result dumps as JSON that reads back
 * equal. */
#include "fuzz.h"

#include "util/error.h"
#include "util/yaml.h"

#include <jansson.h>
#include <stdlib.h>

static size_t depth(const json_t *v)
{
    size_t d = 0, i;
    const char *key;
    json_t *c;
    if (json_is_object(v)) {
        json_object_foreach((json_t *)v, key, c)
        {
            size_t x = depth(c);
            d = x > d ? x : d;
        }
        return d + 1;
    }
    if (json_is_array(v)) {
        json_array_foreach(v, i, c)
        {
            size_t x = depth(c);
            d = x > d ? x : d;
        }
        return d + 1;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (size_t max_depth = 2; max_depth <= 64; max_depth += 62) {
        json_t *out = NULL;
        int rc = cap_yaml_to_json(&out, (const char *)data, size, max_depth);
        FUZZ_CHECK((rc == 0) == (out != NULL));
        if (!out)
            continue;
        FUZZ_CHECK(depth(out) <= max_depth);
        char *text = json_dumps(out, JSON_ENCODE_ANY | JSON_COMPACT);
        FUZZ_CHECK(text != NULL);
        json_t *back = json_loads(text, JSON_DECODE_ANY, NULL);
        FUZZ_CHECK(back && json_equal(back, out));
        json_decref(back);
        free(text);
        json_decref(out);
    }
    return 0;
}
