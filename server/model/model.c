/* capstan: validation and normalization of tenants and environments (see model.h).
 * Every check adds its own error, so a client learns every bad field at once. */
#include "model/model.h"

#include "util/error.h"
#include "util/json.h"
#include "util/str.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int model_error(json_t *errors, const char *field, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_array_append_new(
        errors, json_pack("{s:o,s:o}", "field", cap_json_str(field), "message", cap_json_str(msg)));
    return CAP_EINVALID;
}

json_t *model_merge_patch(const json_t *target, const json_t *patch)
{
    const char *key;
    json_t *value;
    json_t *out;

    if (!json_is_object(patch))
        return json_deep_copy(patch);
    out = json_is_object(target) ? json_deep_copy(target) : json_object();
    json_object_foreach((json_t *)patch, key, value)
    {
        if (json_is_null(value)) {
            json_object_del(out, key);
        } else {
            json_t *merged = model_merge_patch(json_object_get(out, key), value);
            json_object_set_new(out, key, merged);
        }
    }
    return out;
}

/* ---- field checks ---- */

static bool is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* [A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?, 1..63 */
static bool is_qualified_part(const char *s, size_t n)
{
    if (n == 0 || n > 63 || !is_alnum(s[0]) || !is_alnum(s[n - 1]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_alnum(s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.')
            return false;
    return true;
}

bool model_is_dns_subdomain(const char *s, size_t n)
{
    size_t start = 0;
    if (n == 0 || n > 253)
        return false;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == '.') {
            size_t len = i - start;
            if (len == 0 || len > 63 || s[start] == '-' || s[i - 1] == '-')
                return false;
            for (size_t j = start; j < i; j++)
                if (!((s[j] >= 'a' && s[j] <= 'z') || (s[j] >= '0' && s[j] <= '9') || s[j] == '-'))
                    return false;
            start = i + 1;
        }
    }
    return true;
}

bool model_is_label_key(const char *s)
{
    const char *slash = strchr(s, '/');
    if (!slash)
        return is_qualified_part(s, strlen(s));
    return model_is_dns_subdomain(s, (size_t)(slash - s)) &&
           is_qualified_part(slash + 1, strlen(slash + 1));
}

bool model_is_label_value(const char *s)
{
    size_t n = strlen(s);
    return n == 0 || is_qualified_part(s, n);
}

/* Kubernetes resource quantity, positive: digits[.digits][suffix]. */
static bool is_quantity(const char *s)
{
    static const char *suffixes[] = {"",  "m",  "k",  "M",  "G",  "T",  "P",
                                     "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"};
    const char *p = s;
    bool nonzero = false;
    if (strlen(s) > 24 || !isdigit((unsigned char)*p))
        return false;
    while (isdigit((unsigned char)*p))
        nonzero |= *p++ != '0';
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            return false;
        while (isdigit((unsigned char)*p))
            nonzero |= *p++ != '0';
    }
    if (!nonzero)
        return false;
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++)
        if (strcmp(p, suffixes[i]) == 0)
            return true;
    return false;
}

static bool is_email(const char *s)
{
    const char *at = strchr(s, '@');
    size_t n = strlen(s);
    if (n < 3 || n > 254 || !at || at == s || strchr(at + 1, '@') || !strchr(at + 1, '.'))
        return false;
    for (const char *p = s; p < at; p++)
        if (!is_alnum(*p) && !strchr(".!#$%&'*+/=?^_`{|}~-", *p))
            return false;
    if (s[0] == '.' || at[-1] == '.' || strstr(s, ".."))
        return false;
    const char *dom = at + 1;
    size_t dn = strlen(dom);
    if (dn == 0 || dom[0] == '.' || dom[dn - 1] == '.' || dom[0] == '-')
        return false;
    for (const char *p = dom; *p; p++)
        if (!is_alnum(*p) && *p != '-' && *p != '.')
            return false;
    return true;
}

static bool is_machine_type(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63 || !is_alnum(s[0]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-' ||
              s[i] == '.'))
            return false;
    return true;
}

/* vMAJOR.MINOR.PATCH with numbers of at most 3 digits each */
static bool parse_version(const char *s, int v[3])
{
    const char *p = s;
    if (*p++ != 'v')
        return false;
    for (int i = 0; i < 3; i++) {
        int n = 0, digits = 0;
        while (isdigit((unsigned char)*p) && digits < 4) {
            n = n * 10 + (*p++ - '0');
            digits++;
        }
        if (digits == 0 || digits > 3 || (digits > 1 && p[-digits] == '0'))
            return false;
        v[i] = n;
        if (i < 2 && *p++ != '.')
            return false;
    }
    return *p == '\0';
}

int model_version_cmp(const char *a, const char *b)
{
    int va[3] = {0}, vb[3] = {0};
    parse_version(a, va);
    parse_version(b, vb);
    for (int i = 0; i < 3; i++)
        if (va[i] != vb[i])
            return va[i] < vb[i] ? -1 : 1;
    return 0;
}

/* Checks that obj has only keys of allowed; read-only keys get a message of their own. */
static void check_keys(const json_t *obj, const char *prefix, const char *const *allowed,
                       const char *const *readonly, json_t *errors)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        bool ok = false;
        char field[160];
        for (const char *const *a = allowed; *a && !ok; a++)
            ok = strcmp(*a, key) == 0;
        if (ok)
            continue;
        snprintf(field, sizeof(field), "%s%.100s", prefix, key);
        for (const char *const *r = readonly; r && *r && !ok; r++)
            ok = strcmp(*r, key) == 0;
        if (ok)
            model_error(errors, field, "is set by the server and cannot be given");
        else
            model_error(errors, field, "unknown field");
    }
}

static const char *get_string(const json_t *obj, const char *key, const char *field, bool required,
                              size_t maxlen, json_t *errors)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        if (required)
            model_error(errors, field, "is required");
        return NULL;
    }
    if (!json_is_string(v)) {
        model_error(errors, field, "must be a string");
        return NULL;
    }
    const char *s = json_string_value(v);
    if (strlen(s) != json_string_length(v) || !cap_str_is_clean_utf8(s)) {
        model_error(errors, field, "must not hold control characters");
        return NULL;
    }
    if (strlen(s) > maxlen) {
        model_error(errors, field, "must be at most %zu characters", maxlen);
        return NULL;
    }
    return s;
}

static bool get_int(const json_t *obj, const char *key, const char *field, long long min,
                    long long max, long long *out, json_t *errors)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v)) {
        model_error(errors, field, "must be a whole number from %lld to %lld", min, max);
        return false;
    }
    *out = json_integer_value(v);
    if (*out < min || *out > max) {
        model_error(errors, field, "must be from %lld to %lld", min, max);
        return false;
    }
    return true;
}

static const char *one_of(const char *s, const char *const *choices)
{
    for (; *choices; choices++)
        if (strcmp(s, *choices) == 0)
            return *choices;
    return NULL;
}

/* ---- tenants ---- */

static const char *const tenant_fields[] = {
    "name", "displayName", "owners", "isolation", "provider", "region", "quota", "labels", NULL};
static const char *const tenant_readonly[] = {
    "state",     "platformRepository", "generation", "observedGeneration",
    "createdAt", "updatedAt",          NULL};
static const char *const isolations[] = {"vcluster", "dedicated", NULL};
static const char *const providers[] = {"vcluster", "gcp", "aws", NULL};

static json_t *check_owners(const json_t *in, json_t *errors)
{
    json_t *owners = json_object_get(in, "owners");
    json_t *out;
    size_t i;
    json_t *v;

    if (!owners) {
        model_error(errors, "owners", "is required (at least one owner's email)");
        return NULL;
    }
    if (!json_is_array(owners) || json_array_size(owners) == 0 ||
        json_array_size(owners) > MODEL_MAX_OWNERS) {
        model_error(errors, "owners", "must be a list of 1 to %d email addresses",
                    MODEL_MAX_OWNERS);
        return NULL;
    }
    out = json_array();
    json_array_foreach(owners, i, v)
    {
        char field[32];
        snprintf(field, sizeof(field), "owners[%zu]", i);
        if (!json_is_string(v) || !is_email(json_string_value(v)) ||
            strlen(json_string_value(v)) != json_string_length(v)) {
            model_error(errors, field, "must be an email address");
            continue;
        }
        bool dup = false;
        size_t j;
        json_t *w;
        json_array_foreach(out, j, w) dup |=
            strcmp(json_string_value(w), json_string_value(v)) == 0;
        if (dup) {
            model_error(errors, field, "\"%s\" is listed twice", json_string_value(v));
            continue;
        }
        json_array_append(out, v);
    }
    return out;
}

static json_t *check_quota(const json_t *in, json_t *errors)
{
    json_t *q = json_object_get(in, "quota");
    static const char *const fields[] = {"cpu", "memory", "environments", NULL};
    const char *cpu, *mem;
    long long envs = 0;
    bool ok;

    if (!q) {
        model_error(errors, "quota", "is required ({\"cpu\", \"memory\", \"environments\"})");
        return NULL;
    }
    if (!json_is_object(q)) {
        model_error(errors, "quota", "must be an object");
        return NULL;
    }
    check_keys(q, "quota.", fields, NULL, errors);
    cpu = get_string(q, "cpu", "quota.cpu", true, 24, errors);
    if (cpu && !is_quantity(cpu)) {
        model_error(errors, "quota.cpu", "must be a positive quantity such as \"16\" or \"500m\"");
        cpu = NULL;
    }
    mem = get_string(q, "memory", "quota.memory", true, 24, errors);
    if (mem && !is_quantity(mem)) {
        model_error(errors, "quota.memory",
                    "must be a positive quantity such as \"64Gi\" or \"512Mi\"");
        mem = NULL;
    }
    ok = get_int(q, "environments", "quota.environments", 0, 1000, &envs, errors);
    if (!cpu || !mem || !ok)
        return NULL;
    return json_pack("{s:s,s:s,s:I}", "cpu", cpu, "memory", mem, "environments", (json_int_t)envs);
}

static json_t *check_labels(const json_t *in, json_t *errors)
{
    json_t *labels = json_object_get(in, "labels");
    const char *key;
    json_t *v;
    json_t *out;

    if (!labels || json_is_null(labels))
        return json_object();
    if (!json_is_object(labels)) {
        model_error(errors, "labels", "must be an object of string values");
        return NULL;
    }
    if (json_object_size(labels) > MODEL_MAX_LABELS) {
        model_error(errors, "labels", "must have at most %d entries", MODEL_MAX_LABELS);
        return NULL;
    }
    out = json_object();
    json_object_foreach(labels, key, v)
    {
        char field[320];
        snprintf(field, sizeof(field), "labels.%.300s", key);
        if (!model_is_label_key(key)) {
            model_error(errors, field,
                        "is not a valid label key (an optional DNS prefix and "
                        "\"/\", then 1-63 letters, digits, '-', '_' or '.')");
            continue;
        }
        if (strncmp(key, "capstan.io/", 11) == 0 || strstr(key, "kubernetes.io/") ||
            strstr(key, "k8s.io/") || strcmp(key, "app.kubernetes.io/managed-by") == 0) {
            model_error(errors, field, "uses a reserved prefix");
            continue;
        }
        if (!json_is_string(v) || !model_is_label_value(json_string_value(v)) ||
            strlen(json_string_value(v)) != json_string_length(v)) {
            model_error(errors, field,
                        "must be a label value (empty, or 1-63 letters, digits, "
                        "'-', '_' or '.', starting and ending alphanumeric)");
            continue;
        }
        json_object_set(out, key, v);
    }
    return out;
}

/* Validates a whole tenant object (create body or patched spec) into a normalized spec. */
static json_t *tenant_normalize(const json_t *in, json_t *errors)
{
    const char *name, *display, *isolation = "vcluster", *provider = NULL, *region;
    json_t *owners, *quota, *labels, *out = NULL;
    size_t before = json_array_size(errors);

    check_keys(in, "", tenant_fields, tenant_readonly, errors);
    name = get_string(in, "name", "name", true, 256, errors);
    if (name && !cap_is_dns_label(name, MODEL_TENANT_NAME_MAX)) {
        model_error(errors, "name",
                    "must be a DNS label of 1-%d characters (lower-case letters, digits and "
                    "'-', starting and ending with a letter or digit)",
                    MODEL_TENANT_NAME_MAX);
        name = NULL;
    }
    display = get_string(in, "displayName", "displayName", true, 100, errors);
    if (display && !display[0]) {
        model_error(errors, "displayName", "must not be empty");
        display = NULL;
    }
    owners = check_owners(in, errors);
    if (json_object_get(in, "isolation")) {
        const char *s = get_string(in, "isolation", "isolation", true, 32, errors);
        isolation = s ? one_of(s, isolations) : NULL;
        if (s && !isolation)
            model_error(errors, "isolation", "must be \"vcluster\" or \"dedicated\"");
    }
    if (json_object_get(in, "provider")) {
        const char *s = get_string(in, "provider", "provider", true, 32, errors);
        provider = s ? one_of(s, providers) : NULL;
        if (s && !provider)
            model_error(errors, "provider", "must be \"vcluster\", \"gcp\" or \"aws\"");
    } else if (isolation && strcmp(isolation, "vcluster") == 0) {
        provider = "vcluster";
    } else if (isolation) {
        model_error(errors, "provider", "is required for dedicated tenants (\"gcp\" or \"aws\")");
    }
    if (isolation && provider) {
        bool vc = strcmp(isolation, "vcluster") == 0;
        if (vc != (strcmp(provider, "vcluster") == 0)) {
            model_error(errors, "provider",
                        vc ? "must be \"vcluster\" when isolation is \"vcluster\""
                           : "must be \"gcp\" or \"aws\" when isolation is \"dedicated\"");
            provider = NULL;
        }
    }
    region = get_string(in, "region", "region", false, 40, errors);
    if (region && !cap_is_dns_label(region, 40)) {
        model_error(errors, "region", "must look like \"europe-west1\" or \"eu-central-1\"");
        region = NULL;
    }
    /* absent or null: required for the clouds (a region given but invalid was reported above) */
    json_t *region_in = json_object_get(in, "region");
    if (provider && strcmp(provider, "vcluster") != 0 && !region &&
        (!region_in || json_is_null(region_in)))
        model_error(errors, "region", "is required for provider \"%s\"", provider);
    if (provider && strcmp(provider, "vcluster") == 0 && json_object_get(in, "region") &&
        !json_is_null(json_object_get(in, "region")))
        model_error(errors, "region", "must not be set for provider \"vcluster\"");
    quota = check_quota(in, errors);
    labels = check_labels(in, errors);

    if (json_array_size(errors) == before) {
        out = json_pack("{s:s,s:s,s:O,s:s,s:s,s:O,s:O}", "name", name, "displayName", display,
                        "owners", owners, "isolation", isolation, "provider", provider, "quota",
                        quota, "labels", labels);
        if (region && provider && strcmp(provider, "vcluster") != 0)
            json_object_set_new(out, "region", json_string(region));
    }
    json_decref(owners);
    json_decref(quota);
    json_decref(labels);
    return out;
}

int model_tenant_create(json_t **out, const json_t *in, json_t *errors)
{
    *out = tenant_normalize(in, errors);
    return *out ? 0 : CAP_EINVALID;
}

static bool same(const json_t *a, const json_t *b)
{
    if (!a && !b)
        return true;
    if (!a || !b)
        return false;
    return json_equal((json_t *)a, (json_t *)b);
}

int model_tenant_patch(json_t **out, const json_t *spec, const json_t *patch, json_t *errors)
{
    static const char *const immutable[] = {"name", "isolation", "provider", "region", NULL};
    json_t *merged;
    size_t before = json_array_size(errors);

    *out = NULL;
    check_keys(patch, "", tenant_fields, tenant_readonly, errors);
    for (const char *const *k = immutable; *k; k++) {
        json_t *v = json_object_get(patch, *k);
        if (v && !same(v, json_object_get(spec, *k)))
            model_error(errors, *k, "cannot be changed after the tenant is created");
    }
    if (json_array_size(errors) != before)
        return CAP_EINVALID;
    merged = model_merge_patch(spec, patch);
    *out = tenant_normalize(merged, errors);
    json_decref(merged);
    return *out ? 0 : CAP_EINVALID;
}

/* ---- environments ---- */

static const char *const env_fields[] = {"name",         "type",    "ttl", "kubernetesVersion",
                                         "controlPlane", "workers", NULL};
static const char *const env_readonly[] = {
    "tenant",    "expiresAt",          "state",     "cluster", "gitCommit", "generation",
    "createdAt", "observedGeneration", "updatedAt", NULL};
static const char *const env_types[] = {"permanent", "ephemeral", NULL};

static const char *default_machine(const char *provider, bool control_plane)
{
    if (strcmp(provider, "aws") == 0)
        return control_plane ? "t3.large" : "t3.xlarge";
    return control_plane ? "e2-standard-2" : "e2-standard-4";
}

static json_t *check_pool(const json_t *in, const char *key, bool control_plane,
                          const char *provider, json_t *errors)
{
    json_t *v = json_object_get(in, key);
    static const char *const fields[] = {"replicas", "machineType", NULL};
    long long replicas = control_plane ? 1 : 2;
    const char *machine = default_machine(provider, control_plane);
    char field[64];
    size_t before = json_array_size(errors);

    if (!v || json_is_null(v))
        return json_pack("{s:I,s:s}", "replicas", (json_int_t)replicas, "machineType", machine);
    if (!json_is_object(v)) {
        model_error(errors, key, "must be an object {\"replicas\", \"machineType\"}");
        return NULL;
    }
    snprintf(field, sizeof(field), "%s.", key);
    check_keys(v, field, fields, NULL, errors);
    snprintf(field, sizeof(field), "%s.replicas", key);
    if (json_object_get(v, "replicas")) {
        if (control_plane) {
            if (get_int(v, "replicas", field, 1, 5, &replicas, errors) && replicas % 2 == 0)
                model_error(errors, field, "must be 1, 3 or 5");
        } else {
            get_int(v, "replicas", field, 0, 100, &replicas, errors);
        }
    }
    snprintf(field, sizeof(field), "%s.machineType", key);
    if (json_object_get(v, "machineType")) {
        machine = get_string(v, "machineType", field, true, 63, errors);
        if (machine && !is_machine_type(machine))
            model_error(errors, field,
                        "must be a machine type such as \"e2-standard-4\" or "
                        "\"m5.xlarge\"");
    }
    if (json_array_size(errors) != before)
        return NULL;
    return json_pack("{s:I,s:s}", "replicas", (json_int_t)replicas, "machineType", machine);
}

static int check_ttl(const char *ttl, const char *field, long long *ms, json_t *errors)
{
    if (cap_parse_duration_ms(ms, ttl) != 0)
        return model_error(errors, field, "must be a duration such as \"24h\" or \"90m\"");
    if (*ms < MODEL_TTL_MIN_MS || *ms > MODEL_TTL_MAX_MS)
        return model_error(errors, field, "must be from 1h to 720h");
    return 0;
}

static json_t *env_normalize(const json_t *in, const json_t *tenant, bool create,
                             const struct model_defaults *defaults, json_t *errors)
{
    const char *name, *type = "permanent", *ttl = NULL, *version;
    const char *tenant_name = cap_json_get_str(tenant, "name");
    const char *provider = cap_json_get_str(tenant, "provider");
    bool dedicated = provider && strcmp(provider, "vcluster") != 0;
    json_t *cp = NULL, *workers = NULL, *out = NULL;
    size_t before = json_array_size(errors);
    long long ms;

    check_keys(in, "", env_fields, env_readonly, errors);
    name = get_string(in, "name", "name", true, 256, errors);
    if (name && !cap_is_dns_label(name, MODEL_ENV_NAME_MAX)) {
        model_error(errors, "name",
                    "must be a DNS label of 1-%d characters (lower-case letters, digits and "
                    "'-', starting and ending with a letter or digit)",
                    MODEL_ENV_NAME_MAX);
        name = NULL;
    }
    if (name && tenant_name && strlen(tenant_name) + 1 + strlen(name) > 52)
        model_error(errors, "name", "makes the cluster name \"%s-%s\" too long", tenant_name, name);
    if (json_object_get(in, "type")) {
        const char *s = get_string(in, "type", "type", true, 32, errors);
        type = s ? one_of(s, env_types) : NULL;
        if (s && !type)
            model_error(errors, "type", "must be \"permanent\" or \"ephemeral\"");
    }
    if (json_object_get(in, "ttl") && !json_is_null(json_object_get(in, "ttl"))) {
        ttl = get_string(in, "ttl", "ttl", true, 16, errors);
        if (ttl && type && strcmp(type, "ephemeral") != 0)
            model_error(errors, "ttl", "is only for ephemeral environments");
        else if (ttl && check_ttl(ttl, "ttl", &ms, errors))
            ttl = NULL;
    } else if (type && strcmp(type, "ephemeral") == 0) {
        model_error(errors, "ttl", "is required for ephemeral environments (1h to 720h)");
    }
    version = get_string(in, "kubernetesVersion", "kubernetesVersion", false, 16, errors);
    json_t *version_in = json_object_get(in, "kubernetesVersion");
    bool version_absent = !version_in || json_is_null(version_in);
    if (version_absent && defaults)
        version = defaults->kubernetes_version;
    if (version) {
        int v[3];
        if (!parse_version(version, v) || v[0] != 1) {
            model_error(errors, "kubernetesVersion", "must be a version such as \"v1.30.4\"");
            version = NULL;
        }
    } else if (version_absent) {
        model_error(errors, "kubernetesVersion", "is required");
    }
    if (dedicated) {
        cp = check_pool(in, "controlPlane", true, provider, errors);
        workers = check_pool(in, "workers", false, provider, errors);
    } else {
        static const char *const pools[] = {"controlPlane", "workers", NULL};
        for (const char *const *p = pools; *p; p++) {
            json_t *v = json_object_get(in, *p);
            if (v && !json_is_null(v))
                model_error(errors, *p,
                            "is only for environments of dedicated tenants; "
                            "tenant \"%s\" uses vcluster isolation",
                            tenant_name ? tenant_name : "");
        }
    }
    (void)create;
    if (json_array_size(errors) == before) {
        out = json_pack("{s:s,s:s,s:s}", "name", name, "type", type, "kubernetesVersion", version);
        if (ttl)
            json_object_set_new(out, "ttl", json_string(ttl));
        if (cp)
            json_object_set(out, "controlPlane", cp);
        if (workers)
            json_object_set(out, "workers", workers);
    }
    json_decref(cp);
    json_decref(workers);
    return out;
}

int model_env_create(json_t **out, const json_t *in, const json_t *tenant_spec,
                     const struct model_defaults *defaults, json_t *errors)
{
    *out = env_normalize(in, tenant_spec, true, defaults, errors);
    return *out ? 0 : CAP_EINVALID;
}

int model_env_patch(json_t **out, const json_t *spec, const json_t *patch,
                    const json_t *tenant_spec, json_t *errors)
{
    static const char *const immutable[] = {"name", "type", "ttl", "controlPlane", NULL};
    size_t before = json_array_size(errors);
    json_t *merged;
    const char *newv = cap_json_get_str(patch, "kubernetesVersion");
    const char *oldv = cap_json_get_str(spec, "kubernetesVersion");

    *out = NULL;
    check_keys(patch, "", env_fields, env_readonly, errors);
    for (const char *const *k = immutable; *k; k++) {
        json_t *v = json_object_get(patch, *k);
        if (v && !same(v, json_object_get(spec, *k)))
            model_error(errors, *k, "cannot be changed (only workers and kubernetesVersion can)%s",
                        strcmp(*k, "ttl") == 0 ? "; use the extend action for more time" : "");
    }
    if (json_object_get(patch, "kubernetesVersion") && !newv)
        model_error(errors, "kubernetesVersion", "must be a version such as \"v1.30.4\"");
    if (json_array_size(errors) != before)
        return CAP_EINVALID;
    merged = model_merge_patch(spec, patch);
    *out = env_normalize(merged, tenant_spec, false, NULL, errors);
    json_decref(merged);
    if (*out && newv && oldv && model_version_cmp(newv, oldv) < 0) {
        model_error(errors, "kubernetesVersion",
                    "%s is older than the current %s; only upgrades are possible", newv, oldv);
        json_decref(*out);
        *out = NULL;
    }
    if (*out) {
        const char *nv = cap_json_get_str(*out, "kubernetesVersion");
        int a[3], b[3];
        if (nv && oldv && parse_version(nv, a) && parse_version(oldv, b) && a[1] > b[1] + 1) {
            model_error(errors, "kubernetesVersion",
                        "upgrade one minor version at a time (from %s to v%d.%d.x first)", oldv,
                        b[0], b[1] + 1);
            json_decref(*out);
            *out = NULL;
        }
    }
    return *out ? 0 : CAP_EINVALID;
}

int model_env_extend(long long *ttl_ms, const json_t *in, json_t *errors)
{
    static const char *const fields[] = {"ttl", NULL};
    size_t before = json_array_size(errors);
    const char *ttl;

    check_keys(in, "", fields, NULL, errors);
    ttl = get_string(in, "ttl", "ttl", true, 16, errors);
    if (ttl)
        check_ttl(ttl, "ttl", ttl_ms, errors);
    return json_array_size(errors) == before ? 0 : CAP_EINVALID;
}
