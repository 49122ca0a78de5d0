/* capstan: the tenant and environment model -> fleet repository files (see render.h).
 *
 * Tenant-level files and the list files are built as jansson trees and written by the one YAML
 * emitter of render/yaml.c, which quotes every string value. cluster.yaml comes from the
 * flavour's template (render/template.c); the expanded text is read back and every object must
 * sit in namespace tenant-<t> and carry the capstan labels, so a replaced template cannot put
 * objects elsewhere unnoticed. Input is checked for shape (types, lengths, names that become
 * paths); semantic validation (quantities, label values, e-mail syntax) is the API's job. */
#include "render/render.h"

#include "model/model.h"
#include "render/template.h"
#include "render/yaml.h"
#include "util/buf.h"
#include "util/crypto.h"
#include "util/embedded.h"
#include "util/error.h"
#include "util/str.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FILE_MAX          (4 << 20) /* largest rendered file */
#define TEXT_MAX          1024      /* displayName, label values */
#define OWNER_MAX         320       /* one owner (e-mail) */
#define SHORT_MAX         64        /* region, quantities, versions, machine types, ttl */
#define URL_MAX           2048      /* platformRepository */
#define PATH_MAX_RENDER   4096      /* a template path in templates_dir */
#define MANAGED_BY        "app.kubernetes.io/managed-by"
#define LABEL_TENANT      "capstan.io/tenant"
#define LABEL_ENVIRONMENT "capstan.io/environment"

/* render must accept every name and label set the model accepts */
_Static_assert(RENDER_TENANT_NAME_MAX >= MODEL_TENANT_NAME_MAX, "tenant names");
_Static_assert(RENDER_ENVIRONMENT_NAME_MAX >= MODEL_ENV_NAME_MAX, "environment names");
_Static_assert(RENDER_MAX_OWNERS >= MODEL_MAX_OWNERS, "owners");
_Static_assert(RENDER_MAX_LABELS >= MODEL_MAX_LABELS, "labels");

/* --- small helpers ------------------------------------------------------------------------ */

/* Sets the out-of-memory error; returns CAP_ERROR (a constant, so analysers see the failure). */
static int oom(void)
{
    cap_error_set(CAP_ERROR, "out of memory");
    return CAP_ERROR;
}

/* Sets CAP_EINVALID with field and a printf-style message; returns CAP_EINVALID. */
static int bad(const char *field, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(const char *field, const char *fmt, ...)
{
    char msg[CAP_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (field)
        cap_error_set_field(CAP_EINVALID, field, "%s", msg);
    else
        cap_error_set(CAP_EINVALID, "%s", msg);
    return CAP_EINVALID;
}

/* s quoted for a message, cut after 60 bytes, into buf. */
static const char *shown(char buf[128], const char *s)
{
    struct cap_buf b = CAP_BUF_INIT(120);
    render_yaml_quote_for_message(&b, s, 60);
    snprintf(buf, 128, "%s", cap_buf_str(&b));
    cap_buf_free(&b);
    return buf;
}

static const char *opt_or(const char *v, const char *def)
{
    return v ? v : def;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorts v[0..n) and drops duplicates; returns the new count. */
static size_t sort_unique(const char **v, size_t n)
{
    size_t m = 0;
    if (n == 0)
        return 0;
    qsort(v, n, sizeof(*v), cmp_str);
    for (size_t i = 0; i < n; i++) {
        if (m == 0 || strcmp(v[m - 1], v[i]) != 0)
            v[m++] = v[i];
    }
    return m;
}

/* CAP_EINVALID naming field when s cannot go into the fleet repository (see
 * render_yaml_check_text). */
static int check_text(const char *s, size_t len, const char *what, const char *field)
{
    char msg[CAP_ERROR_MESSAGE_MAX];
    if (render_yaml_check_text(s, len) == 0)
        return 0;
    snprintf(msg, sizeof(msg), "%s", cap_error_message());
    return bad(field, "%s field \"%s\": %s", what, field, msg);
}

/* A string member. Absent or null: CAP_EINVALID when required, else *out = NULL. */
static int get_str(const char **out, const json_t *obj, const char *key, const char *what,
                   const char *field, bool required, size_t max)
{
    const json_t *v = json_object_get(obj, key);
    const char *sv;
    *out = NULL;
    if (!v || json_is_null(v)) {
        if (required)
            return bad(field, "%s field \"%s\" is required", what, field);
        return 0;
    }
    sv = json_string_value(v);
    if (!sv)
        return bad(field, "%s field \"%s\" must be a string", what, field);
    if (json_string_length(v) != strlen(sv))
        return bad(field, "%s field \"%s\" must not contain NUL characters", what, field);
    if (json_string_length(v) > max)
        return bad(field, "%s field \"%s\" is longer than %zu bytes", what, field, max);
    if (required && json_string_length(v) == 0)
        return bad(field, "%s field \"%s\" must not be empty", what, field);
    *out = sv;
    return check_text(sv, json_string_length(v), what, field);
}

/* The "name" member of a tenant or environment (what: "tenant", "environment"): a DNS-1123
 * label of at most max characters, as the model requires (it becomes a namespace and paths). */
static int get_name(const char **out, const json_t *j, const char *what, int max)
{
    char b[128];
    int rc;
    if ((rc = get_str(out, j, "name", what, "name", true, 253)) != 0)
        return rc;
    if (!cap_is_dns_label(*out, (size_t)max))
        return bad("name",
                   "%s name %s is not a DNS-1123 label of at most %d "
                   "characters (lower-case letters, digits and \"-\")",
                   what, shown(b, *out), max);
    return 0;
}

/* --- the model ---------------------------------------------------------------------------- */

struct tenant {
    const char *name;
    char ns[64];
    const char *display_name; /* NULL when absent */
    const char **owners;      /* sorted, unique, borrowed */
    size_t nowners;
    const char *isolation, *provider, *region;
    char cpu[SHORT_MAX + 1], memory[SHORT_MAX + 1];
    const json_t *labels;    /* borrowed object or NULL */
    const char **label_keys; /* sorted */
    size_t nlabels;
    const char *platform_repo; /* NULL when none */
};

struct environment {
    const char *name;
    char cluster[64];
    const char *type, *ttl, *version;
    long long cp_replicas, worker_replicas;
    const char *cp_machine_type, *worker_machine_type;
};

static void tenant_free(struct tenant *t)
{
    free(t->owners);
    free(t->label_keys);
    memset(t, 0, sizeof(*t));
}

static int parse_quantity(char out[SHORT_MAX + 1], const json_t *quota, const char *key,
                          const char *field)
{
    const json_t *v = json_object_get(quota, key);
    const char *s;
    int rc;

    if (json_is_integer(v)) {
        if (json_integer_value(v) < 0)
            return bad(field, "tenant field \"%s\" must not be negative", field);
        snprintf(out, SHORT_MAX + 1, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return 0;
    }
    if ((rc = get_str(&s, quota, key, "tenant", field, true, SHORT_MAX)) != 0)
        return rc;
    snprintf(out, SHORT_MAX + 1, "%s", s);
    return 0;
}

static int parse_tenant(struct tenant *t, const json_t *j)
{
    const json_t *owners, *quota, *labels, *v;
    const char *s;
    char b[128];
    int rc;

    memset(t, 0, sizeof(*t));
    if (!json_is_object(j))
        return cap_error_set(CAP_EINVALID, "a tenant must be a JSON object");
    if ((rc = get_name(&t->name, j, "tenant", RENDER_TENANT_NAME_MAX)) != 0)
        return rc;
    snprintf(t->ns, sizeof(t->ns), "tenant-%s", t->name);
    if ((rc = get_str(&t->display_name, j, "displayName", "tenant", "displayName", false,
                      TEXT_MAX)) != 0)
        return rc;

    /* owners: deliberately looser than model.c (no e-mail syntax check, up to RENDER_MAX_OWNERS
     * entries): the API validated them; render only checks that each can go into the repository */
    owners = json_object_get(j, "owners");
    if (!json_is_array(owners))
        return bad("owners", owners ? "tenant field \"owners\" must be an array of strings"
                                    : "tenant field \"owners\" is required");
    if (json_array_size(owners) == 0 || json_array_size(owners) > RENDER_MAX_OWNERS)
        return bad("owners", "tenant field \"owners\" must have 1 to %d entries",
                   RENDER_MAX_OWNERS);
    if (!(t->owners = calloc(json_array_size(owners), sizeof(*t->owners))))
        return oom();
    for (size_t i = 0; i < json_array_size(owners); i++) {
        char field[32];
        v = json_array_get(owners, i);
        snprintf(field, sizeof(field), "owners[%zu]", i);
        if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > OWNER_MAX ||
            json_string_length(v) != strlen(json_string_value(v)))
            return bad(field,
                       "tenant field \"%s\" must be a non-empty string of at "
                       "most %d bytes",
                       field, OWNER_MAX);
        if ((rc = check_text(json_string_value(v), json_string_length(v), "tenant", field)))
            return rc;
        t->owners[i] = json_string_value(v);
    }
    t->nowners = sort_unique(t->owners, json_array_size(owners));

    /* isolation, provider, region */
    if ((rc = get_str(&t->isolation, j, "isolation", "tenant", "isolation", false, SHORT_MAX)))
        return rc;
    if (!t->isolation)
        t->isolation = "vcluster";
    if (strcmp(t->isolation, "vcluster") != 0 && strcmp(t->isolation, "dedicated") != 0)
        return bad("isolation", "tenant isolation %s is not \"vcluster\" or \"dedicated\"",
                   shown(b, t->isolation));
    if ((rc = get_str(&t->provider, j, "provider", "tenant", "provider", false, SHORT_MAX)))
        return rc;
    if (!t->provider && strcmp(t->isolation, "vcluster") == 0)
        t->provider = "vcluster";
    if (!t->provider)
        return bad("provider", "tenant field \"provider\" is required for dedicated "
                               "isolation");
    if (strcmp(t->provider, "vcluster") != 0 && strcmp(t->provider, "gcp") != 0 &&
        strcmp(t->provider, "aws") != 0)
        return bad("provider", "tenant provider %s is not \"vcluster\", \"gcp\" or \"aws\"",
                   shown(b, t->provider));
    if ((strcmp(t->provider, "vcluster") == 0) != (strcmp(t->isolation, "vcluster") == 0))
        return bad("provider", "tenant provider \"vcluster\" goes with isolation "
                               "\"vcluster\" and only with it");
    if (strcmp(t->provider, "vcluster") != 0) {
        if ((rc = get_str(&t->region, j, "region", "tenant", "region", true, SHORT_MAX)))
            return rc;
    }

    /* quota */
    quota = json_object_get(j, "quota");
    if (!json_is_object(quota))
        return bad("quota", "tenant field \"quota\" must be an object with cpu and "
                            "memory");
    if ((rc = parse_quantity(t->cpu, quota, "cpu", "quota.cpu")) ||
        (rc = parse_quantity(t->memory, quota, "memory", "quota.memory")))
        return rc;
    v = json_object_get(quota, "environments");
    if (v && !json_is_null(v) && (!json_is_integer(v) || json_integer_value(v) < 0))
        return bad("quota.environments",
                   "tenant field \"quota.environments\" must be a non-negative "
                   "integer");

    /* labels */
    labels = json_object_get(j, "labels");
    if (labels && !json_is_null(labels)) {
        const char *k;
        json_t *lv;
        size_t i = 0;
        if (!json_is_object(labels))
            return bad("labels", "tenant field \"labels\" must be an object of strings");
        if (json_object_size(labels) > RENDER_MAX_LABELS)
            return bad("labels", "tenant field \"labels\" has more than %d entries",
                       RENDER_MAX_LABELS);
        if (!(t->label_keys = calloc(json_object_size(labels) + 1, sizeof(*t->label_keys))))
            return oom();
        /* keys follow the model's rule (they become Kubernetes label keys); values are only
         * checked to be clean text of at most TEXT_MAX bytes, looser than
         * model_is_label_value: their syntax is the API's job */
        json_object_foreach((json_t *)labels, k, lv)
        {
            if (!model_is_label_key(k))
                return bad("labels",
                           "tenant label key %s is not a valid label key "
                           "([prefix/]name)",
                           shown(b, k));
            if (strcmp(k, MANAGED_BY) == 0 || strncmp(k, "capstan.io/", 11) == 0)
                return bad("labels", "tenant label key %s is reserved for capstan", shown(b, k));
            if (!json_is_string(lv) || json_string_length(lv) > TEXT_MAX ||
                json_string_length(lv) != strlen(json_string_value(lv)))
                return bad("labels",
                           "tenant label %s must have a string value of at "
                           "most %d bytes",
                           shown(b, k), TEXT_MAX);
            if ((rc = check_text(json_string_value(lv), json_string_length(lv), "tenant",
                                 "labels")) != 0)
                return rc;
            t->label_keys[i++] = k;
        }
        t->nlabels = sort_unique(t->label_keys, i);
        t->labels = labels;
    }

    /* platformRepository */
    if ((rc = get_str(&s, j, "platformRepository", "tenant", "platformRepository", false, URL_MAX)))
        return rc;
    if (s) {
        bool scheme = strncmp(s, "https://", 8) == 0 || strncmp(s, "http://", 7) == 0 ||
                      strncmp(s, "ssh://", 6) == 0;
        bool clean = true;
        for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
            if (*p <= 0x20 || *p == 0x7f)
                clean = false;
        }
        if (!scheme || !clean || strlen(s) < 9)
            return bad("platformRepository",
                       "tenant platformRepository %s must be an https://, "
                       "http:// or ssh:// URL without spaces",
                       shown(b, s));
        t->platform_repo = s;
    }
    return 0;
}

static int parse_machines(long long *replicas, const char **machine_type, const json_t *env,
                          const char *key, long long min, long long max, bool odd_only)
{
    const json_t *o = json_object_get(env, key), *r;
    char field[48];
    int rc;

    if (!json_is_object(o))
        return bad(key,
                   "environment field \"%s\" must be an object with replicas "
                   "and machineType for dedicated isolation",
                   key);
    snprintf(field, sizeof(field), "%s.replicas", key);
    r = json_object_get(o, "replicas");
    if (!json_is_integer(r) || json_integer_value(r) < min || json_integer_value(r) > max ||
        (odd_only && json_integer_value(r) % 2 == 0))
        return bad(field,
                   odd_only ? "environment field \"%s\" must be 1, 3 or 5"
                            : "environment field \"%s\" must be an integer from "
                              "0 to 100",
                   field);
    *replicas = json_integer_value(r);
    snprintf(field, sizeof(field), "%s.machineType", key);
    if ((rc = get_str(machine_type, o, "machineType", "environment", field, true, SHORT_MAX)))
        return rc;
    return 0;
}

static int parse_environment(struct environment *e, const struct tenant *t, const json_t *j)
{
    const char *s;
    char b[128];
    int rc;

    memset(e, 0, sizeof(*e));
    if (!json_is_object(j))
        return cap_error_set(CAP_EINVALID, "an environment must be a JSON object");
    if ((rc = get_name(&e->name, j, "environment", RENDER_ENVIRONMENT_NAME_MAX)) != 0)
        return rc;
    snprintf(e->cluster, sizeof(e->cluster), "%s-%s", t->name, e->name);
    if ((rc = get_str(&s, j, "tenant", "environment", "tenant", false, 253)) != 0)
        return rc;
    if (s && strcmp(s, t->name) != 0)
        return bad("tenant", "environment %s belongs to tenant %s, not to \"%s\"", e->name,
                   shown(b, s), t->name);
    if ((rc = get_str(&e->type, j, "type", "environment", "type", true, SHORT_MAX)) != 0)
        return rc;
    if (!e->type || (strcmp(e->type, "permanent") != 0 && strcmp(e->type, "ephemeral") != 0))
        return bad("type", "environment type %s is not \"permanent\" or \"ephemeral\"",
                   shown(b, e->type));
    if ((rc = get_str(&e->ttl, j, "ttl", "environment", "ttl", false, SHORT_MAX)) != 0)
        return rc;
    if (strcmp(e->type, "permanent") == 0)
        e->ttl = NULL;
    if ((rc = get_str(&e->version, j, "kubernetesVersion", "environment", "kubernetesVersion", true,
                      SHORT_MAX)) != 0)
        return rc;
    if (strcmp(t->isolation, "dedicated") == 0) {
        if ((rc = parse_machines(&e->cp_replicas, &e->cp_machine_type, j, "controlPlane", 1, 5,
                                 true)) ||
            (rc = parse_machines(&e->worker_replicas, &e->worker_machine_type, j, "workers", 0, 100,
                                 false)))
            return rc;
    }
    return 0;
}

/* --- files -------------------------------------------------------------------------------- */

void render_files_free(struct render_files *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->n; i++) {
        free(f->items[i].path);
        free(f->items[i].content);
    }
    free(f->items);
    memset(f, 0, sizeof(*f));
}

const struct render_file *render_files_find(const struct render_files *f, const char *path)
{
    for (size_t i = 0; f && path && i < f->n; i++) {
        if (strcmp(f->items[i].path, path) == 0)
            return &f->items[i];
    }
    return NULL;
}

static int cmp_file(const void *a, const void *b)
{
    return strcmp(((const struct render_file *)a)->path, ((const struct render_file *)b)->path);
}

static void files_sort(struct render_files *f)
{
    if (f->n > 1)
        qsort(f->items, f->n, sizeof(*f->items), cmp_file);
}

/* Drops files added after the first n (used to undo a failed call). */
static void files_truncate(struct render_files *f, size_t n)
{
    while (f->n > n) {
        f->n--;
        free(f->items[f->n].path);
        free(f->items[f->n].content);
    }
}

/* Adds a file; takes content (freed on failure too). */
static int files_add(struct render_files *f, const char *path, char *content, size_t len)
{
    char *p;
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 16;
        struct render_file *items = realloc(f->items, cap * sizeof(*items));
        if (!items) {
            free(content);
            return oom();
        }
        f->items = items;
        f->cap = cap;
    }
    if (!(p = strdup(path))) {
        free(content);
        return oom();
    }
    f->items[f->n].path = p;
    f->items[f->n].content = content;
    f->items[f->n].len = len;
    f->n++;
    return 0;
}

/* Writes docs (a JSON array of objects; reference stolen) as a YAML stream into a new string. */
static int emit_docs(char **out, size_t *len, json_t *docs)
{
    struct cap_buf b = CAP_BUF_INIT(FILE_MAX);
    int rc;

    *out = NULL;
    if (!docs)
        return oom();
    rc = render_yaml_emit_stream(&b, docs);
    json_decref(docs);
    if (rc) {
        cap_buf_free(&b);
        return rc;
    }
    if (len)
        *len = b.len;
    if (!(*out = cap_buf_detach(&b)))
        return oom();
    return 0;
}

static int add_docs(struct render_files *f, const char *path, json_t *docs)
{
    char *text = NULL;
    size_t len = 0;
    int rc = emit_docs(&text, &len, docs);
    if (rc)
        return rc;
    return files_add(f, path, text, len);
}

/* --- objects ------------------------------------------------------------------------------ */

/* The capstan labels (sorted keys); env may be NULL. New reference or NULL. */
static json_t *base_labels(const char *tenant, const char *env)
{
    json_t *l = json_object();
    if (!l)
        return NULL;
    json_object_set_new(l, MANAGED_BY, json_string("capstan"));
    if (env)
        json_object_set_new(l, LABEL_ENVIRONMENT, json_string(env));
    if (tenant)
        json_object_set_new(l, LABEL_TENANT, json_string(tenant));
    if (json_object_size(l) != 1u + (env != NULL) + (tenant != NULL)) {
        json_decref(l);
        return NULL;
    }
    return l;
}

/* metadata: name, namespace (NULL for cluster-scoped), labels and annotations (stolen; either
 * may be NULL). New reference or NULL. */
static json_t *metadata(const char *name, const char *ns, json_t *labels, json_t *annotations)
{
    json_t *m = json_pack("{s:s}", "name", name);
    bool ok = m != NULL && labels != NULL;
    if (ok && ns)
        ok = json_object_set_new(m, "namespace", json_string(ns)) == 0;
    if (ok)
        ok = json_object_set(m, "labels", labels) == 0;
    if (ok && annotations)
        ok = json_object_set(m, "annotations", annotations) == 0;
    json_decref(labels);
    json_decref(annotations);
    if (!ok) {
        json_decref(m);
        return NULL;
    }
    return m;
}

/* An object with apiVersion, kind, metadata (stolen) and the members of body (stolen; may be
 * NULL) in order. */
static json_t *object(const char *api_version, const char *kind, json_t *meta, json_t *body)
{
    json_t *o = json_pack("{s:s,s:s}", "apiVersion", api_version, "kind", kind);
    bool ok = o && meta && json_object_set(o, "metadata", meta) == 0;
    if (ok && body)
        ok = json_object_update(o, body) == 0;
    json_decref(meta);
    json_decref(body);
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *kustomization(json_t *resources)
{
    if (!resources)
        return NULL;
    return json_pack("{s:s,s:s,s:o}", "apiVersion", "kustomize.config.k8s.io/v1beta1", "kind",
                     "Kustomization", "resources", resources);
}

static json_t *namespace_doc(const struct tenant *t)
{
    json_t *labels = json_object(), *base = base_labels(t->name, NULL), *ann = NULL;
    const char *all[RENDER_MAX_LABELS + 3];
    size_t n = 0;
    const char *k;
    json_t *v;

    if (!labels || !base)
        goto fail;
    /* one sorted map of the tenant's labels and capstan's */
    for (size_t i = 0; i < t->nlabels; i++)
        all[n++] = t->label_keys[i];
    json_object_foreach(base, k, v)
    {
        all[n++] = k;
    }
    n = sort_unique(all, n);
    for (size_t i = 0; i < n; i++) {
        json_t *val = json_object_get(base, all[i]);
        if (!val)
            val = json_object_get(t->labels, all[i]);
        if (json_object_set(labels, all[i], val))
            goto fail;
    }
    json_decref(base);
    base = NULL;
    if (t->display_name && !(ann = json_pack("{s:s}", "capstan.io/display-name", t->display_name)))
        goto fail;
    return object("v1", "Namespace", metadata(t->ns, NULL, labels, ann), NULL);
fail:
    json_decref(labels);
    json_decref(base);
    return NULL;
}

/* One RoleBinding per owner (ClusterRole admin), and, when opt->kubeconfig_reader names
 * capstan's ServiceAccount ("namespace/name"), the binding that lets capstan read the tenant's
 * cluster kubeconfig Secrets (ClusterRole capstan-kubeconfigs of deploy/kubernetes/rbac.yaml):
 * it comes and goes with the tenant's namespace. */
static json_t *rbac_docs(const struct tenant *t, const struct render_options *opt)
{
    json_t *docs = json_array();
    const char *reader = opt ? opt->kubeconfig_reader : NULL;
    if (!docs)
        return NULL;
    if (reader && *reader) {
        const char *slash = strchr(reader, '/');
        char ns[64];
        size_t n = slash ? (size_t)(slash - reader) : 0;
        if (!slash || n == 0 || n >= sizeof(ns)) {
            json_decref(docs);
            cap_error_set_field(CAP_EINVALID, "kubeconfigReader",
                                "\"%s\" is not namespace/serviceaccount", reader);
            return NULL;
        }
        memcpy(ns, reader, n);
        ns[n] = '\0';
        if (!cap_is_dns_label(ns, 63) || !cap_is_dns_label(slash + 1, 63)) {
            json_decref(docs);
            cap_error_set_field(CAP_EINVALID, "kubeconfigReader",
                                "\"%s\" is not namespace/serviceaccount", reader);
            return NULL;
        }
        json_t *doc =
            object("rbac.authorization.k8s.io/v1", "RoleBinding",
                   metadata("capstan-kubeconfigs", t->ns, base_labels(t->name, NULL), NULL),
                   json_pack("{s:{s:s,s:s,s:s},s:[{s:s,s:s,s:s}]}", "roleRef", "apiGroup",
                             "rbac.authorization.k8s.io", "kind", "ClusterRole", "name",
                             "capstan-kubeconfigs", "subjects", "kind", "ServiceAccount", "name",
                             slash + 1, "namespace", ns));
        if (!doc || json_array_append_new(docs, doc)) {
            json_decref(docs);
            return NULL;
        }
    }
    for (size_t i = 0; i < t->nowners; i++) {
        char hash[65], name[32];
        json_t *doc;
        cap_sha256_hex(hash, t->owners[i], strlen(t->owners[i]));
        snprintf(name, sizeof(name), "owner-%.16s", hash);
        doc = object("rbac.authorization.k8s.io/v1", "RoleBinding",
                     metadata(name, t->ns, base_labels(t->name, NULL),
                              json_pack("{s:s}", "capstan.io/owner", t->owners[i])),
                     json_pack("{s:{s:s,s:s,s:s},s:[{s:s,s:s,s:s}]}", "roleRef", "apiGroup",
                               "rbac.authorization.k8s.io", "kind", "ClusterRole", "name", "admin",
                               "subjects", "apiGroup", "rbac.authorization.k8s.io", "kind", "User",
                               "name", t->owners[i]));
        if (!doc || json_array_append_new(docs, doc)) {
            json_decref(docs);
            return NULL;
        }
    }
    return docs;
}

static json_t *quota_docs(const struct tenant *t)
{
    json_t *quota = object("v1", "ResourceQuota",
                           metadata("tenant-quota", t->ns, base_labels(t->name, NULL), NULL),
                           json_pack("{s:{s:{s:s,s:s,s:s,s:s}}}", "spec", "hard", "limits.cpu",
                                     t->cpu, "limits.memory", t->memory, "requests.cpu", t->cpu,
                                     "requests.memory", t->memory));
    json_t *limits = object("v1", "LimitRange",
                            metadata("tenant-limits", t->ns, base_labels(t->name, NULL), NULL),
                            json_pack("{s:{s:[{s:s,s:{s:s,s:s},s:{s:s,s:s}}]}}", "spec", "limits",
                                      "type", "Container", "default", "cpu", "500m", "memory",
                                      "512Mi", "defaultRequest", "cpu", "100m", "memory", "128Mi"));
    if (!quota || !limits) {
        json_decref(quota);
        json_decref(limits);
        return NULL;
    }
    return json_pack("[o,o]", quota, limits);
}

/* Ingress only from the tenant's own namespace, and from the namespaces an operator names in
 * opt->network_policy_allow ("flux-system,capi-system": controllers that must reach a
 * vCluster's API server). */
static json_t *network_policy_docs(const struct tenant *t, const struct render_options *opt)
{
    json_t *from = json_pack("[{s:{}}]", "podSelector");
    const char *p = opt ? opt->network_policy_allow : NULL;
    char ns[64];

    while (from && p && *p) {
        size_t n = strcspn(p, ",");
        if (n > 0 && n < sizeof(ns)) {
            memcpy(ns, p, n);
            ns[n] = '\0';
            if (!cap_is_dns_label(ns, 63)) {
                json_decref(from);
                cap_error_set_field(CAP_EINVALID, "networkPolicyAllow",
                                    "\"%s\" is not a namespace name", ns);
                return NULL;
            }
            json_array_append_new(from,
                                  json_pack("{s:{s:{s:s}}}", "namespaceSelector", "matchLabels",
                                            "kubernetes.io/metadata.name", ns));
        }
        p += n + (p[n] == ',');
    }
    json_t *np = object("networking.k8s.io/v1", "NetworkPolicy",
                        metadata("same-namespace-only", t->ns, base_labels(t->name, NULL), NULL),
                        json_pack("{s:{s:{},s:[s],s:[{s:o}]}}", "spec", "podSelector",
                                  "policyTypes", "Ingress", "ingress", "from", from));
    return np ? json_pack("[o]", np) : NULL;
}

static json_t *platform_source_docs(const struct tenant *t, const struct render_options *opt)
{
    json_t *spec =
        json_pack("{s:s,s:s,s:{s:s}}", "interval", "5m", "url", t->platform_repo, "ref", "branch",
                  opt_or(opt->platform_branch, RENDER_DEFAULT_PLATFORM_BRANCH));
    json_t *doc;
    if (spec && opt->platform_secret &&
        json_object_set_new(spec, "secretRef", json_pack("{s:s}", "name", opt->platform_secret))) {
        json_decref(spec);
        return NULL;
    }
    doc = object("source.toolkit.fluxcd.io/v1", "GitRepository",
                 metadata("platform", t->ns, base_labels(t->name, NULL), NULL),
                 spec ? json_pack("{s:o}", "spec", spec) : NULL);
    return doc ? json_pack("[o]", doc) : NULL;
}

static json_t *platform_sync_docs(const struct tenant *t, const struct environment *e)
{
    char name[64], path[64], secret[80];
    json_t *doc;

    snprintf(name, sizeof(name), "platform-%s", e->name);
    snprintf(path, sizeof(path), "./environments/%s", e->name);
    snprintf(secret, sizeof(secret), "%s-kubeconfig", e->cluster);
    doc = object("kustomize.toolkit.fluxcd.io/v1", "Kustomization",
                 metadata(name, t->ns, base_labels(t->name, e->name), NULL),
                 json_pack("{s:{s:s,s:s,s:s,s:s,s:b,s:{s:s,s:s},s:{s:{s:s,s:s}}}}", "spec",
                           "interval", "10m", "retryInterval", "1m", "timeout", "5m", "path", path,
                           "prune", 1, "sourceRef", "kind", "GitRepository", "name", "platform",
                           "kubeConfig", "secretRef", "name", secret, "key", "value"));
    return doc ? json_pack("[o]", doc) : NULL;
}

/* --- validation of user-provided option values -------------------------------------------- */

static int check_options(const struct render_options *opt)
{
    const char *mgmt = opt_or(opt->mgmt_cluster, RENDER_DEFAULT_MGMT_CLUSTER);
    const char *src = opt_or(opt->fleet_source, RENDER_DEFAULT_FLEET_SOURCE);
    char b[128];

    if (!cap_is_dns_label(mgmt, 63))
        return cap_error_set(CAP_EINVALID,
                             "management cluster name %s is not a DNS-1123 label (it names the "
                             "folder clusters/NAME)",
                             shown(b, mgmt));
    if (!model_is_dns_subdomain(src, strlen(src)))
        return cap_error_set(CAP_EINVALID, "fleet source name %s is not a DNS-1123 subdomain",
                             shown(b, src));
    if (opt->platform_secret &&
        !model_is_dns_subdomain(opt->platform_secret, strlen(opt->platform_secret)))
        return cap_error_set(CAP_EINVALID, "platform secret name %s is not a DNS-1123 subdomain",
                             shown(b, opt->platform_secret));
    return 0;
}

/* --- tenant ------------------------------------------------------------------------------- */

int render_tenant(struct render_files *out, const struct render_options *opt, const json_t *tenant)
{
    static const struct render_options none = {0};
    struct tenant t;
    size_t n0 = out->n;
    char path[128];
    int rc;

    if (!opt)
        opt = &none;
    if ((rc = check_options(opt)) != 0)
        return rc;
    if ((rc = parse_tenant(&t, tenant)) != 0)
        goto cleanup;
    snprintf(path, sizeof(path), "tenants/%s/namespace.yaml", t.name);
    if ((rc = add_docs(out, path, json_pack("[o]", namespace_doc(&t)))) != 0)
        goto cleanup;
    snprintf(path, sizeof(path), "tenants/%s/rbac.yaml", t.name);
    if ((rc = add_docs(out, path, rbac_docs(&t, opt))) != 0)
        goto cleanup;
    snprintf(path, sizeof(path), "tenants/%s/quota.yaml", t.name);
    if ((rc = add_docs(out, path, quota_docs(&t))) != 0)
        goto cleanup;
    snprintf(path, sizeof(path), "tenants/%s/network-policy.yaml", t.name);
    if ((rc = add_docs(out, path, network_policy_docs(&t, opt))) != 0)
        goto cleanup;
    if (t.platform_repo) {
        snprintf(path, sizeof(path), "tenants/%s/platform-source.yaml", t.name);
        if ((rc = add_docs(out, path, platform_source_docs(&t, opt))) != 0)
            goto cleanup;
    }
    files_sort(out);
cleanup:
    if (rc)
        files_truncate(out, n0);
    tenant_free(&t);
    return rc;
}

/* --- environment -------------------------------------------------------------------------- */

/* Reads the flavour's template: templates_dir/file when it exists there, else the built-in one.
 * *owned is set when the text was read from disk (caller frees). */
static int load_template(char **owned, const char **text, size_t *len, const char *dir,
                         const char *file)
{
    *owned = NULL;
    *text = NULL;
    *len = 0;
    if (dir && *dir) {
        char path[PATH_MAX_RENDER], b[128];
        FILE *fp;
        struct cap_buf buf = CAP_BUF_INIT(RENDER_TEMPLATE_MAX);
        char chunk[8192];
        size_t got;
        int rc = 0;

        if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, file) >= sizeof(path))
            return cap_error_set(CAP_EINVALID, "templates folder path is too long");
        fp = fopen(path, "rb");
        if (!fp && errno != ENOENT)
            return cap_error_set(CAP_ERROR, "cannot read template %s: %s", shown(b, path),
                                 strerror(errno));
        if (fp) {
            while ((got = fread(chunk, 1, sizeof(chunk), fp)) > 0) {
                if ((rc = cap_buf_append(&buf, chunk, got)) != 0)
                    break;
            }
            if (!rc && ferror(fp))
                rc = cap_error_set(CAP_ERROR, "cannot read template %s", shown(b, path));
            else if (rc == CAP_ETOOBIG)
                rc = cap_error_set(CAP_ETOOBIG, "template %s is larger than %d bytes",
                                   shown(b, path), RENDER_TEMPLATE_MAX);
            fclose(fp);
            if (rc) {
                cap_buf_free(&buf);
                return rc;
            }
            *len = buf.len;
            if (!(*owned = cap_buf_detach(&buf)))
                return oom();
            *text = *owned;
            return 0;
        }
    }
    for (const struct embedded_file *f = embedded_templates; f->name; f++) {
        if (strcmp(f->name, file) == 0) {
            *text = f->data;
            *len = f->len;
            return 0;
        }
    }
    return cap_error_set(CAP_ERROR, "no built-in template \"%s\"", file);
}

static int set_vars(struct render_vars *v, const struct tenant *t, const struct environment *e,
                    const struct render_options *opt)
{
    char cp[96], md[96];
    bool dedicated = strcmp(t->isolation, "dedicated") == 0;
    int rc;

    snprintf(cp, sizeof(cp), "%s-control-plane", e->cluster);
    snprintf(md, sizeof(md), "%s-md-0", e->cluster);
    if ((rc = render_vars_set_str(v, "TENANT", t->name)) ||
        (rc = render_vars_set_str(v, "ENVIRONMENT", e->name)) ||
        (rc = render_vars_set_str(v, "NAMESPACE", t->ns)) ||
        (rc = render_vars_set_str(v, "CLUSTER_NAME", e->cluster)) ||
        (rc = render_vars_set_str(v, "CONTROL_PLANE_NAME", cp)) ||
        (rc = render_vars_set_str(v, "WORKERS_NAME", md)) ||
        (rc = render_vars_set_str(v, "ENVIRONMENT_TYPE", e->type)) ||
        (rc = render_vars_set_str(v, "TTL", e->ttl ? e->ttl : "")) ||
        (rc = render_vars_set_str(v, "KUBERNETES_VERSION", e->version)) ||
        (rc = render_vars_set_str(v, "PROVIDER", t->provider)) ||
        (rc = render_vars_set_str(v, "POD_CIDR", opt_or(opt->pod_cidr, RENDER_DEFAULT_POD_CIDR))) ||
        (rc = render_vars_set_str(v, "SERVICE_CIDR",
                                  opt_or(opt->service_cidr, RENDER_DEFAULT_SERVICE_CIDR))) ||
        (rc = render_vars_set_str(v, "GCP_NETWORK",
                                  opt_or(opt->gcp_network, RENDER_DEFAULT_GCP_NETWORK))) ||
        (rc =
             render_vars_set_str(v, "AWS_SSH_KEY_NAME",
                                 opt_or(opt->aws_ssh_key_name, RENDER_DEFAULT_AWS_SSH_KEY_NAME))) ||
        (rc = render_vars_set_str(
             v, "VCLUSTER_CHART_NAME",
             opt_or(opt->vcluster_chart_name, RENDER_DEFAULT_VCLUSTER_CHART_NAME))) ||
        (rc = render_vars_set_str(
             v, "VCLUSTER_CHART_REPO",
             opt_or(opt->vcluster_chart_repo, RENDER_DEFAULT_VCLUSTER_CHART_REPO))) ||
        (rc = render_vars_set_str(
             v, "VCLUSTER_CHART_VERSION",
             opt_or(opt->vcluster_chart_version, RENDER_DEFAULT_VCLUSTER_CHART_VERSION))))
        return rc;
    if (opt->gcp_project)
        rc = render_vars_set_str(v, "GCP_PROJECT", opt->gcp_project);
    else
        rc = render_vars_set_missing(v, "GCP_PROJECT", "set CAPSTAN_GCP_PROJECT");
    if (rc)
        return rc;
    if (t->region)
        rc = render_vars_set_str(v, "REGION", t->region);
    else
        rc = render_vars_set_missing(v, "REGION", "only gcp and aws tenants have a region");
    if (rc)
        return rc;
    if (dedicated) {
        if ((rc = render_vars_set_int(v, "CONTROL_PLANE_REPLICAS", e->cp_replicas)) ||
            (rc = render_vars_set_str(v, "CONTROL_PLANE_MACHINE_TYPE", e->cp_machine_type)) ||
            (rc = render_vars_set_int(v, "WORKER_REPLICAS", e->worker_replicas)) ||
            (rc = render_vars_set_str(v, "WORKER_MACHINE_TYPE", e->worker_machine_type)))
            return rc;
    } else {
        static const char *const dedicated_only[] = {
            "CONTROL_PLANE_REPLICAS", "CONTROL_PLANE_MACHINE_TYPE", "WORKER_REPLICAS",
            "WORKER_MACHINE_TYPE", NULL};
        for (size_t i = 0; dedicated_only[i]; i++) {
            if ((rc = render_vars_set_missing(v, dedicated_only[i],
                                              "only dedicated environments have machines")))
                return rc;
        }
    }
    return 0;
}

static const char *doc_str(const json_t *doc, const char *a, const char *b)
{
    const json_t *v = json_object_get(doc, a);
    if (b)
        v = json_object_get(v, b);
    return json_string_value(v);
}

static bool label_is(const json_t *labels, const char *key, const char *want)
{
    const char *v = json_string_value(json_object_get(labels, key));
    return v && want && strcmp(v, want) == 0;
}

/* Checks the expanded template: every object lives in the tenant namespace and carries the
 * capstan labels, and the Cluster named <t>-<e> is among them. */
static int check_cluster_docs(const char *file, const char *text, size_t len,
                              const struct tenant *t, const struct environment *e)
{
    json_t *docs = NULL, *d;
    char fname[128];
    size_t i;
    bool cluster = false;
    int rc;

    shown(fname, file);
    if ((rc = render_yaml_parse(&docs, text, len, "the expanded template")) != 0)
        return cap_error_wrap("template %s", fname);
    json_array_foreach(docs, i, d)
    {
        const char *kind, *api, *name, *ns;
        const json_t *labels;
        if (json_is_null(d))
            continue;
        kind = doc_str(d, "kind", NULL);
        api = doc_str(d, "apiVersion", NULL);
        name = doc_str(d, "metadata", "name");
        ns = doc_str(d, "metadata", "namespace");
        labels = json_object_get(json_object_get(d, "metadata"), "labels");
        if (!kind || !api || !name) {
            rc = cap_error_set(CAP_EINVALID,
                               "template %s: document %zu lacks apiVersion, kind or "
                               "metadata.name",
                               fname, i + 1);
            goto cleanup;
        }
        if (!ns || strcmp(ns, t->ns) != 0) {
            rc = cap_error_set(CAP_EINVALID,
                               "template %s: %s %s must set metadata.namespace: ${NAMESPACE}",
                               fname, kind, name);
            goto cleanup;
        }
        if (!label_is(labels, MANAGED_BY, "capstan") || !label_is(labels, LABEL_TENANT, t->name) ||
            !label_is(labels, LABEL_ENVIRONMENT, e->name)) {
            rc = cap_error_set(CAP_EINVALID,
                               "template %s: %s %s must carry the labels " MANAGED_BY
                               ": capstan, " LABEL_TENANT ": ${TENANT} and " LABEL_ENVIRONMENT
                               ": ${ENVIRONMENT}",
                               fname, kind, name);
            goto cleanup;
        }
        if (strcmp(kind, "Cluster") == 0 && strncmp(api, "cluster.x-k8s.io/", 17) == 0 &&
            strcmp(name, e->cluster) == 0)
            cluster = true;
    }
    if (!cluster)
        rc = cap_error_set(CAP_EINVALID,
                           "template %s does not define the Cluster (cluster.x-k8s.io) named "
                           "${CLUSTER_NAME}",
                           fname);
cleanup:
    json_decref(docs);
    return rc;
}

static int render_env_files(struct render_files *out, const struct render_options *opt,
                            const struct tenant *t, const struct environment *e)
{
    struct render_vars vars = {0};
    char file[64], path[160], *owned = NULL, *expanded = NULL;
    const char *text;
    size_t len, elen = 0;
    json_t *resources;
    int rc;

    snprintf(file, sizeof(file), "cluster-%s.yaml", t->provider);
    if ((rc = load_template(&owned, &text, &len, opt->templates_dir, file)) != 0)
        goto cleanup;
    if ((rc = set_vars(&vars, t, e, opt)) != 0)
        goto cleanup;
    if ((rc = render_template_expand(&expanded, &elen, file, text, len, &vars)) != 0)
        goto cleanup;
    if ((rc = check_cluster_docs(file, expanded, elen, t, e)) != 0)
        goto cleanup;
    snprintf(path, sizeof(path), "tenants/%s/environments/%s/cluster.yaml", t->name, e->name);
    rc = files_add(out, path, expanded, elen);
    expanded = NULL;
    if (rc)
        goto cleanup;
    if (t->platform_repo) {
        snprintf(path, sizeof(path), "tenants/%s/environments/%s/platform-sync.yaml", t->name,
                 e->name);
        if ((rc = add_docs(out, path, platform_sync_docs(t, e))) != 0)
            goto cleanup;
    }
    resources = t->platform_repo ? json_pack("[s,s]", "cluster.yaml", "platform-sync.yaml")
                                 : json_pack("[s]", "cluster.yaml");
    snprintf(path, sizeof(path), "tenants/%s/environments/%s/kustomization.yaml", t->name, e->name);
    if ((rc = add_docs(out, path, json_pack("[o]", kustomization(resources)))) != 0)
        goto cleanup;
cleanup:
    free(owned);
    free(expanded);
    render_vars_free(&vars);
    return rc;
}

int render_environment(struct render_files *out, const struct render_options *opt,
                       const json_t *tenant, const json_t *env)
{
    static const struct render_options none = {0};
    struct tenant t;
    struct environment e;
    size_t n0 = out->n;
    int rc;

    if (!opt)
        opt = &none;
    if ((rc = check_options(opt)) != 0)
        return rc;
    if ((rc = parse_tenant(&t, tenant)) != 0)
        goto cleanup;
    if ((rc = parse_environment(&e, &t, env)) != 0)
        goto cleanup;
    if ((rc = render_env_files(out, opt, &t, &e)) != 0)
        goto cleanup;
    files_sort(out);
cleanup:
    if (rc)
        files_truncate(out, n0);
    tenant_free(&t);
    return rc;
}

/* --- list files --------------------------------------------------------------------------- */

/* Copies the n folder names into out; each must be a DNS-1123 label of at most max characters.
 * CAP_EINVALID otherwise: "<what> folder name ... is not <want>". */
static int copy_folder_names(const char **out, const char *const *names, size_t n, size_t max,
                             const char *what, const char *want)
{
    char b[128];
    for (size_t i = 0; i < n; i++) {
        if (!cap_is_dns_label(names[i], max))
            return cap_error_set(CAP_EINVALID, "%s folder name %s is not %s", what,
                                 shown(b, names[i] ? names[i] : ""), want);
        out[i] = names[i];
    }
    return 0;
}

/* A kustomization listing files, then environments/<env> for each of envs; it owns nothing of
 * its arguments. New reference, or NULL when out of memory. */
static json_t *kustomization_of(const char *const *files, size_t nfiles, const char *const *envs,
                                size_t nenvs)
{
    json_t *resources = json_array();
    bool ok = resources != NULL;
    for (size_t i = 0; ok && i < nfiles; i++)
        ok = json_array_append_new(resources, json_string(files[i])) == 0;
    for (size_t i = 0; ok && i < nenvs; i++) {
        char p[64];
        snprintf(p, sizeof(p), "environments/%s", envs[i]);
        ok = json_array_append_new(resources, json_string(p)) == 0;
    }
    if (!ok) {
        json_decref(resources);
        return NULL;
    }
    return kustomization(resources);
}

int render_tenants_index(char **out, const char *const *tenant_names, size_t n)
{
    const char **names = NULL;
    json_t *doc;
    int rc;

    *out = NULL;
    if (n > 0 && !(names = calloc(n, sizeof(*names))))
        return oom();
    rc = copy_folder_names(names, tenant_names, n, RENDER_TENANT_NAME_MAX, "tenant",
                           "a tenant name");
    if (rc == 0) {
        doc = kustomization_of(names, sort_unique(names, n), NULL, 0);
        rc = emit_docs(out, NULL, doc ? json_pack("[o]", doc) : NULL);
    }
    free(names);
    return rc;
}

static bool is_yaml_file_name(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n < 6 || n > 128 || strcmp(s + n - 5, ".yaml") != 0 || s[0] == '.')
        return false;
    if (strcmp(s, "kustomization.yaml") == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_' || c == '.';
        if (!ok)
            return false;
    }
    return true;
}

int render_tenant_kustomization(char **out, const char *const *files, size_t nfiles,
                                const char *const *envs, size_t nenvs)
{
    const char **f = NULL, **e = NULL;
    json_t *doc;
    char b[128];
    int rc = 0;

    *out = NULL;
    if ((nfiles && !(f = calloc(nfiles, sizeof(*f)))) ||
        (nenvs && !(e = calloc(nenvs, sizeof(*e))))) {
        rc = oom();
        goto cleanup;
    }
    for (size_t i = 0; i < nfiles; i++) {
        if (!is_yaml_file_name(files[i])) {
            rc = cap_error_set(CAP_EINVALID,
                               "tenant file name %s is not a plain .yaml file name other than "
                               "kustomization.yaml",
                               shown(b, files[i] ? files[i] : ""));
            goto cleanup;
        }
        f[i] = files[i];
    }
    if ((rc = copy_folder_names(e, envs, nenvs, RENDER_ENVIRONMENT_NAME_MAX, "environment",
                                "an environment name")) != 0)
        goto cleanup;
    doc = kustomization_of(f, sort_unique(f, nfiles), e, sort_unique(e, nenvs));
    rc = emit_docs(out, NULL, doc ? json_pack("[o]", doc) : NULL);
cleanup:
    free(f);
    free(e);
    return rc;
}

int render_cluster_entry_source(char **out, const char *mgmt_cluster, const char *fleet_source)
{
    struct render_options o = {0};
    json_t *doc;
    int rc;

    *out = NULL;
    o.mgmt_cluster = mgmt_cluster;
    o.fleet_source = fleet_source;
    if ((rc = check_options(&o)) != 0)
        return rc;
    doc = object("kustomize.toolkit.fluxcd.io/v1", "Kustomization",
                 metadata("tenants", "flux-system", base_labels(NULL, NULL), NULL),
                 json_pack("{s:{s:s,s:s,s:s,s:s,s:b,s:{s:s,s:s}}}", "spec", "interval", "10m",
                           "retryInterval", "1m", "timeout", "5m", "path", "./tenants", "prune", 1,
                           "sourceRef", "kind", "GitRepository", "name",
                           opt_or(fleet_source, RENDER_DEFAULT_FLEET_SOURCE)));
    return emit_docs(out, NULL, doc ? json_pack("[o]", doc) : NULL);
}

int render_cluster_entry(char **out, const char *mgmt_cluster)
{
    return render_cluster_entry_source(out, mgmt_cluster, NULL);
}

/* --- tree --------------------------------------------------------------------------------- */

/* Adds a list file whose text is already made (takes text). */
static int add_text(struct render_files *out, const char *path, char *text)
{
    if (!text)
        return oom();
    return files_add(out, path, text, strlen(text));
}

int render_tree(struct render_files *out, const struct render_options *opt, const json_t *tenant,
                const json_t *const *envs, size_t nenvs)
{
    static const struct render_options none = {0};
    struct tenant t = {0};
    const char **env_names = NULL, **file_names = NULL;
    size_t n0 = out->n, nfiles = 0;
    char path[128], prefix[64], *text = NULL;
    int rc;

    if (!opt)
        opt = &none;
    if (nenvs > RENDER_MAX_ENVIRONMENTS)
        return cap_error_set(CAP_EINVALID, "more than %d environments", RENDER_MAX_ENVIRONMENTS);
    if ((rc = check_options(opt)) != 0)
        return rc;
    if ((rc = parse_tenant(&t, tenant)) != 0)
        goto cleanup;
    if ((rc = render_tenant(out, opt, tenant)) != 0)
        goto cleanup;
    if (nenvs && !(env_names = calloc(nenvs, sizeof(*env_names)))) {
        rc = oom();
        goto cleanup;
    }
    for (size_t i = 0; i < nenvs; i++) {
        struct environment e;
        if ((rc = parse_environment(&e, &t, envs[i])) != 0) {
            cap_error_wrap("environment %zu", i + 1);
            goto cleanup;
        }
        for (size_t k = 0; k < i; k++) {
            if (strcmp(env_names[k], e.name) == 0) {
                rc = bad("name", "environment \"%s\" is given twice", e.name);
                goto cleanup;
            }
        }
        env_names[i] = e.name;
        if ((rc = render_env_files(out, opt, &t, &e)) != 0)
            goto cleanup;
    }

    /* tenants/<t>/kustomization.yaml lists the files directly in the tenant folder */
    snprintf(prefix, sizeof(prefix), "tenants/%s/", t.name);
    if (!(file_names = calloc(out->n - n0 + 1, sizeof(*file_names)))) {
        rc = oom();
        goto cleanup;
    }
    for (size_t i = n0; i < out->n; i++) {
        const char *p = out->items[i].path;
        if (strncmp(p, prefix, strlen(prefix)) == 0 && !strchr(p + strlen(prefix), '/'))
            file_names[nfiles++] = p + strlen(prefix);
    }
    if ((rc = render_tenant_kustomization(&text, file_names, nfiles, env_names, nenvs)) != 0)
        goto cleanup;
    snprintf(path, sizeof(path), "tenants/%s/kustomization.yaml", t.name);
    rc = add_text(out, path, text);
    text = NULL;
    if (rc)
        goto cleanup;

    if ((rc = render_tenants_index(&text, &t.name, 1)) != 0)
        goto cleanup;
    rc = add_text(out, "tenants/kustomization.yaml", text);
    text = NULL;
    if (rc)
        goto cleanup;

    if ((rc = render_cluster_entry_source(&text, opt->mgmt_cluster, opt->fleet_source)) != 0)
        goto cleanup;
    snprintf(path, sizeof(path), "clusters/%s/tenants.yaml",
             opt_or(opt->mgmt_cluster, RENDER_DEFAULT_MGMT_CLUSTER));
    rc = add_text(out, path, text);
    text = NULL;
    if (rc)
        goto cleanup;
    files_sort(out);
cleanup:
    if (rc)
        files_truncate(out, n0);
    free(text);
    free(file_names);
    free(env_names);
    tenant_free(&t);
    return rc;
}
