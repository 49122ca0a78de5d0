/* Fuzz target: rendering a tenant and its environments into fleet repository files
 * (render_tree). The input is {"tenant": <Tenant>, "environments": [<Environment>, ...]} as
 * in tests/fuzz/render/README.md. Invariants: files or an error, never both; every path is
 * relative, inside tenants/ or clusters/, without "." or ".." segments; every file of one
 * document is YAML that the strict reader (util/yaml.h) accepts. */
#include "fuzz.h"

#include "render/render.h"
#include "util/str.h"
#include "util/yaml.h"

#include <jansson.h>
#include <string.h>

static int safe_path(const char *p)
{
    if (p[0] == '/' || (strncmp(p, "tenants/", 8) != 0 && strncmp(p, "clusters/", 9) != 0))
        return 0;
    for (const char *s = p; *s;) {
        const char *e = strchr(s, '/');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (n == 0 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
            return 0;
        s += n + (e ? 1 : 0);
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct render_options o = {0};
    struct render_files files = {0};
    const json_t *envs[RENDER_MAX_ENVIRONMENTS];
    size_t n = 0, i;
    json_t *e;

    json_t *in = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(in)) {
        json_decref(in);
        return 0;
    }
    o.gcp_project = "fuzz-project";
    json_array_foreach(json_object_get(in, "environments"), i, e) if (n < RENDER_MAX_ENVIRONMENTS)
        envs[n++] = e;
    int rc = render_tree(&files, &o, json_object_get(in, "tenant"), envs, n);
    FUZZ_CHECK(rc == 0 || files.n == 0);
    for (i = 0; rc == 0 && i < files.n; i++) {
        const struct render_file *f = &files.items[i];
        json_t *doc = NULL;
        FUZZ_CHECK(safe_path(f->path));
        FUZZ_CHECK(strlen(f->content) == f->len);
        if (!strstr(f->content, "\n---")) {
            FUZZ_CHECK(cap_yaml_to_json(&doc, f->content, f->len, 64) == 0);
            json_decref(doc);
        }
    }
    render_files_free(&files);
    json_decref(in);
    return 0;
}
