/* Unit tests of the renderer (server/render/render.c): the files of a tenant and of its
 * environments for every flavour, the list files, determinism, hostile input staying inside
 * values, input errors, and operator templates. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "render/render.h"
#include "render/yaml.h"
#include "util/crypto.h"
#include "util/error.h"

#define TENANT_VCLUSTER                                                                            \
    "{\"name\": \"team-a\", \"displayName\": \"Team A\", \"owners\": [\"bob@example.com\", "       \
    "\"alice@example.com\", \"bob@example.com\"], \"isolation\": \"vcluster\", \"provider\": "     \
    "\"vcluster\", \"quota\": {\"cpu\": \"16\", \"memory\": \"64Gi\", \"environments\": 5}, "      \
    "\"labels\": {\"cost-center\": \"4711\", \"a.example.com/team\": \"x\"}, "                     \
    "\"platformRepository\": \"https://git.example.com/tenant-team-a.git\", \"state\": "           \
    "\"ready\", \"generation\": 3}"

#define TENANT_GCP                                                                                 \
    "{\"name\": \"team-b\", \"displayName\": \"Team B\", \"owners\": [\"carol@example.com\"], "    \
    "\"isolation\": \"dedicated\", \"provider\": \"gcp\", \"region\": \"europe-west1\", "          \
    "\"quota\": {\"cpu\": 8, \"memory\": \"32Gi\"}, \"platformRepository\": null}"

#define ENV_DEV                                                                                    \
    "{\"name\": \"dev\", \"tenant\": \"team-a\", \"type\": \"ephemeral\", \"ttl\": \"72h\", "      \
    "\"kubernetesVersion\": \"v1.30.4\"}"

#define ENV_DEDICATED                                                                              \
    "{\"name\": \"prod\", \"tenant\": \"team-b\", \"type\": \"permanent\", "                       \
    "\"kubernetesVersion\": \"v1.31.2\", \"controlPlane\": {\"replicas\": 3, \"machineType\": "    \
    "\"e2-standard-2\"}, \"workers\": {\"replicas\": 4, \"machineType\": \"e2-standard-4\"}}"

static json_t *load(const char *text)
{
    json_error_t err;
    json_t *j = json_loads(text, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    if (!j)
        print_error("bad test JSON: %s\n", err.text);
    assert_non_null(j);
    return j;
}

/* The documents of file path in f (new reference). */
static json_t *docs_of(const struct render_files *f, const char *path)
{
    const struct render_file *file = render_files_find(f, path);
    json_t *docs = NULL;
    if (!file)
        print_error("no file %s\n", path);
    assert_non_null(file);
    assert_int_equal(file->len, strlen(file->content));
    if (render_yaml_parse(&docs, file->content, file->len, path) != 0)
        print_error("%s: %s\n%s\n", path, cap_error_message(), file->content);
    assert_non_null(docs);
    return docs;
}

static const char *str_at(const json_t *o, const char *a, const char *b, const char *c)
{
    const json_t *v = json_object_get(o, a);
    if (b)
        v = json_object_get(v, b);
    if (c)
        v = json_object_get(v, c);
    return json_string_value(v);
}

static void assert_paths(const struct render_files *f, const char *const *want)
{
    size_t n = 0;
    while (want[n])
        n++;
    if (f->n != n) {
        for (size_t i = 0; i < f->n; i++)
            print_error("have %s\n", f->items[i].path);
    }
    assert_int_equal(f->n, n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(f->items[i].path, want[i]);
}

static void test_tenant_files(void **state)
{
    static const char *const want[] = {"tenants/team-a/namespace.yaml",
                                       "tenants/team-a/network-policy.yaml",
                                       "tenants/team-a/platform-source.yaml",
                                       "tenants/team-a/quota.yaml",
                                       "tenants/team-a/rbac.yaml",
                                       NULL};
    struct render_files f = {0};
    json_t *t = load(TENANT_VCLUSTER), *docs, *ns, *labels;
    char hash[65], name[32];
    (void)state;

    assert_int_equal(render_tenant(&f, NULL, t), 0);
    assert_paths(&f, want);

    docs = docs_of(&f, "tenants/team-a/namespace.yaml");
    assert_int_equal(json_array_size(docs), 1);
    ns = json_array_get(docs, 0);
    assert_string_equal(str_at(ns, "kind", NULL, NULL), "Namespace");
    assert_string_equal(str_at(ns, "metadata", "name", NULL), "tenant-team-a");
    assert_null(json_object_get(json_object_get(ns, "metadata"), "namespace"));
    labels = json_object_get(json_object_get(ns, "metadata"), "labels");
    assert_int_equal(json_object_size(labels), 4);
    assert_string_equal(str_at(labels, "app.kubernetes.io/managed-by", NULL, NULL), "capstan");
    assert_string_equal(str_at(labels, "capstan.io/tenant", NULL, NULL), "team-a");
    assert_string_equal(str_at(labels, "cost-center", NULL, NULL), "4711");
    assert_string_equal(str_at(labels, "a.example.com/team", NULL, NULL), "x");
    assert_string_equal(str_at(ns, "metadata", "annotations", "capstan.io/display-name"), "Team A");
    json_decref(docs);

    /* one RoleBinding per distinct owner, sorted by e-mail, named after its hash */
    docs = docs_of(&f, "tenants/team-a/rbac.yaml");
    assert_int_equal(json_array_size(docs), 2);
    cap_sha256_hex(hash, "alice@example.com", 17);
    snprintf(name, sizeof(name), "owner-%.16s", hash);
    assert_string_equal(str_at(json_array_get(docs, 0), "metadata", "name", NULL), name);
    assert_string_equal(str_at(json_array_get(docs, 0), "metadata", "namespace", NULL),
                        "tenant-team-a");
    assert_string_equal(str_at(json_array_get(docs, 0), "roleRef", "name", NULL), "admin");
    assert_string_equal(str_at(json_array_get(docs, 0), "roleRef", "kind", NULL), "ClusterRole");
    {
        json_t *subjects = json_object_get(json_array_get(docs, 1), "subjects");
        assert_int_equal(json_array_size(subjects), 1);
        assert_string_equal(str_at(json_array_get(subjects, 0), "kind", NULL, NULL), "User");
        assert_string_equal(str_at(json_array_get(subjects, 0), "name", NULL, NULL),
                            "bob@example.com");
        assert_string_equal(str_at(json_array_get(subjects, 0), "apiGroup", NULL, NULL),
                            "rbac.authorization.k8s.io");
    }
    json_decref(docs);

    docs = docs_of(&f, "tenants/team-a/quota.yaml");
    assert_int_equal(json_array_size(docs), 2);
    assert_string_equal(str_at(json_array_get(docs, 0), "spec", "hard", "requests.cpu"), "16");
    assert_string_equal(str_at(json_array_get(docs, 0), "spec", "hard", "limits.memory"), "64Gi");
    assert_string_equal(str_at(json_array_get(docs, 1), "kind", NULL, NULL), "LimitRange");
    json_decref(docs);

    docs = docs_of(&f, "tenants/team-a/network-policy.yaml");
    {
        json_t *spec = json_object_get(json_array_get(docs, 0), "spec");
        json_t *from = json_object_get(json_array_get(json_object_get(spec, "ingress"), 0), "from");
        assert_int_equal(json_object_size(json_object_get(spec, "podSelector")), 0);
        assert_string_equal(
            json_string_value(json_array_get(json_object_get(spec, "policyTypes"), 0)), "Ingress");
        /* only a podSelector: pods of the same namespace */
        assert_int_equal(json_array_size(from), 1);
        assert_int_equal(json_object_size(json_array_get(from, 0)), 1);
        assert_non_null(json_object_get(json_array_get(from, 0), "podSelector"));
    }
    json_decref(docs);

    docs = docs_of(&f, "tenants/team-a/platform-source.yaml");
    assert_string_equal(str_at(json_array_get(docs, 0), "apiVersion", NULL, NULL),
                        "source.toolkit.fluxcd.io/v1");
    assert_string_equal(str_at(json_array_get(docs, 0), "spec", "url", NULL),
                        "https://git.example.com/tenant-team-a.git");
    assert_string_equal(str_at(json_array_get(docs, 0), "spec", "ref", "branch"), "main");
    json_decref(docs);

    render_files_free(&f);
    json_decref(t);
}

static void test_every_object_labelled(void **state)
{
    struct render_files f = {0};
    struct render_options o = {0};
    json_t *t = load(TENANT_GCP), *e = load(ENV_DEDICATED);
    const json_t *envs[] = {e};
    (void)state;
    o.gcp_project = "my-project";
    assert_int_equal(render_tree(&f, &o, t, envs, 1), 0);
    for (size_t i = 0; i < f.n; i++) {
        json_t *docs = docs_of(&f, f.items[i].path), *d;
        size_t k;
        bool is_kustomize_list = strstr(f.items[i].path, "kustomization.yaml") != NULL;
        json_array_foreach(docs, k, d)
        {
            const json_t *labels = json_object_get(json_object_get(d, "metadata"), "labels");
            if (is_kustomize_list)
                continue;
            assert_string_equal(str_at(labels, "app.kubernetes.io/managed-by", NULL, NULL),
                                "capstan");
            if (strncmp(f.items[i].path, "clusters/", 9) == 0)
                continue;
            assert_string_equal(str_at(labels, "capstan.io/tenant", NULL, NULL), "team-b");
            if (strstr(f.items[i].path, "/environments/prod/")) {
                assert_string_equal(str_at(labels, "capstan.io/environment", NULL, NULL), "prod");
            }
            if (strcmp(str_at(d, "kind", NULL, NULL), "Namespace") != 0)
                assert_string_equal(str_at(d, "metadata", "namespace", NULL), "tenant-team-b");
        }
        json_decref(docs);
    }
    render_files_free(&f);
    json_decref(t);
    json_decref(e);
}

static void test_environment_vcluster(void **state)
{
    static const char *const want[] = {"tenants/team-a/environments/dev/cluster.yaml",
                                       "tenants/team-a/environments/dev/kustomization.yaml",
                                       "tenants/team-a/environments/dev/platform-sync.yaml", NULL};
    struct render_files f = {0};
    json_t *t = load(TENANT_VCLUSTER), *e = load(ENV_DEV), *docs, *d;
    (void)state;

    assert_int_equal(render_environment(&f, NULL, t, e), 0);
    assert_paths(&f, want);

    docs = docs_of(&f, "tenants/team-a/environments/dev/cluster.yaml");
    assert_int_equal(json_array_size(docs), 2);
    d = json_array_get(docs, 0);
    assert_string_equal(str_at(d, "apiVersion", NULL, NULL), "cluster.x-k8s.io/v1beta2");
    assert_string_equal(str_at(d, "metadata", "name", NULL), "team-a-dev");
    assert_string_equal(str_at(d, "spec", "controlPlaneRef", "kind"), "VCluster");
    assert_string_equal(str_at(d, "spec", "infrastructureRef", "apiGroup"),
                        "infrastructure.cluster.x-k8s.io");
    assert_string_equal(str_at(d, "metadata", "labels", "capstan.io/environment-type"),
                        "ephemeral");
    d = json_array_get(docs, 1);
    assert_string_equal(str_at(d, "apiVersion", NULL, NULL),
                        "infrastructure.cluster.x-k8s.io/v1alpha1");
    {
        json_t *chart =
            json_object_get(json_object_get(json_object_get(d, "spec"), "helmRelease"), "chart");
        assert_string_equal(str_at(chart, "name", NULL, NULL), "vcluster");
        assert_string_equal(str_at(chart, "repo", NULL, NULL), "https://charts.loft.sh");
        assert_string_equal(str_at(chart, "version", NULL, NULL),
                            RENDER_DEFAULT_VCLUSTER_CHART_VERSION);
    }
    {
        json_t *k8s = json_object_get(
            json_object_get(
                json_object_get(
                    json_object_get(json_object_get(json_object_get(d, "spec"), "helmRelease"),
                                    "valuesObject"),
                    "controlPlane"),
                "distro"),
            "k8s");
        assert_string_equal(str_at(k8s, "version", NULL, NULL), "v1.30.4");
        assert_true(json_is_true(json_object_get(k8s, "enabled")));
    }
    assert_null(json_object_get(json_object_get(d, "spec"), "kubernetesVersion"));
    json_decref(docs);

    docs = docs_of(&f, "tenants/team-a/environments/dev/platform-sync.yaml");
    d = json_array_get(docs, 0);
    assert_string_equal(str_at(d, "kind", NULL, NULL), "Kustomization");
    assert_string_equal(str_at(d, "metadata", "namespace", NULL), "tenant-team-a");
    assert_string_equal(str_at(d, "spec", "path", NULL), "./environments/dev");
    assert_true(json_is_true(json_object_get(json_object_get(d, "spec"), "prune")));
    assert_string_equal(str_at(json_object_get(d, "spec"), "kubeConfig", "secretRef", "name"),
                        "team-a-dev-kubeconfig");
    assert_string_equal(str_at(json_object_get(d, "spec"), "kubeConfig", "secretRef", "key"),
                        "value");
    assert_string_equal(str_at(d, "spec", "sourceRef", "name"), "platform");
    json_decref(docs);

    docs = docs_of(&f, "tenants/team-a/environments/dev/kustomization.yaml");
    d = json_object_get(json_array_get(docs, 0), "resources");
    assert_int_equal(json_array_size(d), 2);
    assert_string_equal(json_string_value(json_array_get(d, 0)), "cluster.yaml");
    assert_string_equal(json_string_value(json_array_get(d, 1)), "platform-sync.yaml");
    json_decref(docs);

    render_files_free(&f);
    json_decref(t);
    json_decref(e);
}

static void test_environment_dedicated(void **state)
{
    static const char *const providers[] = {"gcp", "aws", NULL};
    (void)state;
    for (size_t p = 0; providers[p]; p++) {
        struct render_files f = {0};
        struct render_options o = {0};
        json_t *t = load(TENANT_GCP), *e = load(ENV_DEDICATED), *docs, *d;
        size_t i;
        bool seen_md = false, seen_kcp = false, seen_infra = false;
        char infra[32];

        json_object_set_new(t, "provider", json_string(providers[p]));
        snprintf(infra, sizeof(infra), "%sCluster", strcmp(providers[p], "gcp") ? "AWS" : "GCP");
        o.gcp_project = "my-project";
        o.aws_ssh_key_name = "ops";
        assert_int_equal(render_environment(&f, &o, t, e), 0);
        assert_int_equal(f.n, 2); /* no platform repository: no platform-sync.yaml */
        docs = docs_of(&f, "tenants/team-b/environments/prod/cluster.yaml");
        json_array_foreach(docs, i, d)
        {
            const char *kind = str_at(d, "kind", NULL, NULL);
            if (strcmp(kind, "MachineDeployment") == 0) {
                seen_md = true;
                assert_int_equal(
                    json_integer_value(json_object_get(json_object_get(d, "spec"), "replicas")), 4);
                assert_string_equal(str_at(d, "spec", "clusterName", NULL), "team-b-prod");
            } else if (strcmp(kind, "KubeadmControlPlane") == 0) {
                seen_kcp = true;
                assert_int_equal(
                    json_integer_value(json_object_get(json_object_get(d, "spec"), "replicas")), 3);
                assert_string_equal(str_at(d, "spec", "version", NULL), "v1.31.2");
            } else if (strcmp(kind, infra) == 0) {
                seen_infra = true;
                assert_string_equal(str_at(d, "spec", "region", NULL), "europe-west1");
                if (strcmp(providers[p], "gcp") == 0)
                    assert_string_equal(str_at(d, "spec", "project", NULL), "my-project");
                else
                    assert_string_equal(str_at(d, "spec", "sshKeyName", NULL), "ops");
            }
        }
        assert_true(seen_md && seen_kcp && seen_infra);
        json_decref(docs);
        render_files_free(&f);
        json_decref(t);
        json_decref(e);
    }
}

static void test_gcp_needs_project(void **state)
{
    struct render_files f = {0};
    json_t *t = load(TENANT_GCP), *e = load(ENV_DEDICATED);
    (void)state;
    assert_int_equal(render_environment(&f, NULL, t, e), CAP_EINVALID);
    assert_non_null(strstr(cap_error_message(), "${GCP_PROJECT}"));
    assert_non_null(strstr(cap_error_message(), "cluster-gcp.yaml"));
    assert_non_null(strstr(cap_error_message(), "CAPSTAN_GCP_PROJECT"));
    assert_int_equal(f.n, 0);
    json_decref(t);
    json_decref(e);
}

/* Free text stays inside its quoted value: the objects have exactly the expected keys. */
static void test_hostile_tenant(void **state)
{
    static const char *const hostile[] = {"x\nkind: Secret",
                                          "a: b",
                                          "{x: y}",
                                          "\"}\n---\napiVersion: v1\nkind: Secret",
                                          "# comment",
                                          "\xe2\x80\xa8\x01 \\ '",
                                          NULL};
    (void)state;
    for (size_t h = 0; hostile[h]; h++) {
        struct render_files f = {0};
        json_t *t = load(TENANT_VCLUSTER), *docs, *meta, *subjects;
        json_object_set_new(t, "displayName", json_string(hostile[h]));
        json_object_set_new(t, "owners", json_pack("[s]", hostile[h]));
        json_object_set_new(t, "labels", json_pack("{s:s}", "team", hostile[h]));
        assert_int_equal(render_tenant(&f, NULL, t), 0);

        docs = docs_of(&f, "tenants/team-a/namespace.yaml");
        assert_int_equal(json_array_size(docs), 1);
        assert_int_equal(json_object_size(json_array_get(docs, 0)), 3);
        meta = json_object_get(json_array_get(docs, 0), "metadata");
        assert_int_equal(json_object_size(meta), 3);
        assert_int_equal(json_object_size(json_object_get(meta, "annotations")), 1);
        assert_string_equal(str_at(meta, "annotations", "capstan.io/display-name", NULL),
                            hostile[h]);
        assert_int_equal(json_object_size(json_object_get(meta, "labels")), 3);
        assert_string_equal(str_at(meta, "labels", "team", NULL), hostile[h]);
        json_decref(docs);

        docs = docs_of(&f, "tenants/team-a/rbac.yaml");
        assert_int_equal(json_array_size(docs), 1);
        assert_int_equal(json_object_size(json_array_get(docs, 0)), 5);
        subjects = json_object_get(json_array_get(docs, 0), "subjects");
        assert_int_equal(json_array_size(subjects), 1);
        assert_int_equal(json_object_size(json_array_get(subjects, 0)), 3);
        assert_string_equal(str_at(json_array_get(subjects, 0), "name", NULL, NULL), hostile[h]);
        assert_string_equal(
            str_at(json_array_get(docs, 0), "metadata", "annotations", "capstan.io/owner"),
            hostile[h]);
        assert_non_null(
            strstr(str_at(json_array_get(docs, 0), "metadata", "name", NULL), "owner-"));
        json_decref(docs);
        render_files_free(&f);
        json_decref(t);
    }
}

static void test_deterministic(void **state)
{
    struct render_files a = {0}, b = {0};
    struct render_options o = {0};
    json_t *t1 = load(TENANT_VCLUSTER), *e1 = load(ENV_DEV);
    /* the same tenant with members, owners and labels in another order */
    json_t *t2 = load("{\"generation\": 3, \"platformRepository\": "
                      "\"https://git.example.com/tenant-team-a.git\", \"labels\": "
                      "{\"a.example.com/team\": \"x\", \"cost-center\": \"4711\"}, \"quota\": "
                      "{\"memory\": \"64Gi\", \"cpu\": \"16\"}, \"provider\": \"vcluster\", "
                      "\"owners\": [\"alice@example.com\", \"bob@example.com\"], "
                      "\"displayName\": \"Team A\", \"name\": \"team-a\"}");
    json_t *e2 = load("{\"kubernetesVersion\": \"v1.30.4\", \"ttl\": \"72h\", \"type\": "
                      "\"ephemeral\", \"name\": \"dev\"}");
    const json_t *envs1[] = {e1}, *envs2[] = {e2};
    (void)state;
    o.mgmt_cluster = "hub";
    assert_int_equal(render_tree(&a, &o, t1, envs1, 1), 0);
    assert_int_equal(render_tree(&b, &o, t2, envs2, 1), 0);
    assert_int_equal(a.n, b.n);
    for (size_t i = 0; i < a.n; i++) {
        assert_string_equal(a.items[i].path, b.items[i].path);
        assert_int_equal(a.items[i].len, b.items[i].len);
        assert_memory_equal(a.items[i].content, b.items[i].content, a.items[i].len);
    }
    assert_non_null(render_files_find(&a, "clusters/hub/tenants.yaml"));
    render_files_free(&a);
    render_files_free(&b);
    json_decref(t1);
    json_decref(t2);
    json_decref(e1);
    json_decref(e2);
}

struct bad_case {
    const char *member; /* member of the tenant to replace */
    const char *json;   /* its new value; NULL deletes it */
    const char *field;  /* the field the error names */
};

static void test_tenant_errors(void **state)
{
    static const struct bad_case cases[] = {
        {"name", NULL, "name"},
        {"name", "\"../../etc\"", "name"},
        {"name", "\"Team-A\"", "name"},
        {"name", "\"abcdefghijabcdefghijabcdefghijk\"", "name"}, /* 31 characters */
        {"name", "42", "name"},
        {"displayName", "[]", "displayName"},
        {"displayName", "\"del\\u007f\"", "displayName"},
        {"displayName", "\"nul\\u0000\"", "displayName"},
        {"owners", NULL, "owners"},
        {"owners", "\"alice@example.com\"", "owners"},
        {"owners", "[]", "owners"},
        {"owners", "[\"a@example.com\", 7]", "owners[1]"},
        {"owners", "[\"\"]", "owners[0]"},
        {"owners", "[\"a@example.com\", \"c1\\u0085\"]", "owners[1]"},
        {"isolation", "\"shared\"", "isolation"},
        {"provider", "\"azure\"", "provider"},
        {"provider", "\"gcp\"", "provider"}, /* gcp with vcluster isolation */
        {"quota", NULL, "quota"},
        {"quota", "{\"cpu\": \"1\"}", "quota.memory"},
        {"quota", "{\"cpu\": -1, \"memory\": \"1Gi\"}", "quota.cpu"},
        {"quota", "{\"cpu\": \"1\", \"memory\": \"1Gi\", \"environments\": \"5\"}",
         "quota.environments"},
        {"labels", "[]", "labels"},
        {"labels", "{\"a: b\": \"x\"}", "labels"},
        {"labels", "{\"x\\nkind\": \"x\"}", "labels"},
        /* label keys follow model_is_label_key */
        {"labels", "{\"a.example.com/b/c\": \"x\"}", "labels"},
        {"labels", "{\"A.example.com/b\": \"x\"}", "labels"},
        {"labels", "{\"a..example.com/b\": \"x\"}", "labels"},
        {"labels", "{\"a.example.com/\": \"x\"}", "labels"},
        {"labels", "{\"/b\": \"x\"}", "labels"},
        {"labels", "{\"-b\": \"x\"}", "labels"},
        {"labels", "{\"b_\": \"x\"}", "labels"},
        {"labels", "{\"abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcd\": \"x\"}",
         "labels"}, /* 64 characters */
        {"labels", "{\"capstan.io/tenant\": \"other\"}", "labels"},
        {"labels", "{\"app.kubernetes.io/managed-by\": \"me\"}", "labels"},
        {"labels", "{\"ok\": 5}", "labels"},
        {"labels", "{\"ok\": \"\\uffff\"}", "labels"},
        {"platformRepository", "\"file:///etc/passwd\"", "platformRepository"},
        {"platformRepository", "\"https://x.example.com/a b\"", "platformRepository"},
        {"platformRepository", "\"git@github.com:a/b.git\"", "platformRepository"},
        {"platformRepository", "5", "platformRepository"},
        {NULL, NULL, NULL},
    };
    (void)state;
    for (size_t i = 0; cases[i].member; i++) {
        struct render_files f = {0};
        json_t *t = load(TENANT_VCLUSTER);
        int rc;
        if (cases[i].json)
            json_object_set_new(t, cases[i].member, load(cases[i].json));
        else
            json_object_del(t, cases[i].member);
        rc = render_tenant(&f, NULL, t);
        if (rc != CAP_EINVALID || !cap_error_field() ||
            strcmp(cap_error_field(), cases[i].field) != 0) {
            print_error("case %zu (%s = %s): rc %d field %s: %s\n", i, cases[i].member,
                        cases[i].json ? cases[i].json : "(deleted)", rc,
                        cap_error_field() ? cap_error_field() : "-", cap_error_message());
            fail();
        }
        assert_null(strchr(cap_error_message(), '\n'));
        assert_int_equal(f.n, 0);
        json_decref(t);
    }
    /* not an object at all */
    {
        struct render_files f = {0};
        json_t *arr = json_array();
        assert_int_equal(render_tenant(&f, NULL, arr), CAP_EINVALID);
        assert_int_equal(render_tenant(&f, NULL, NULL), CAP_EINVALID);
        json_decref(arr);
    }
}

static void test_environment_errors(void **state)
{
    static const struct bad_case cases[] = {
        {"name", NULL, "name"},
        {"name", "\"../x\"", "name"},
        {"name", "\"abcdefghijabcdefghijk\"", "name"}, /* 21 characters */
        {"tenant", "\"team-a\"", "tenant"},
        {"type", "\"forever\"", "type"},
        {"type", NULL, "type"},
        {"kubernetesVersion", NULL, "kubernetesVersion"},
        {"kubernetesVersion", "1.30", "kubernetesVersion"},
        {"controlPlane", NULL, "controlPlane"},
        {"controlPlane", "{\"replicas\": 2, \"machineType\": \"m\"}", "controlPlane.replicas"},
        {"controlPlane", "{\"replicas\": \"3\", \"machineType\": \"m\"}", "controlPlane.replicas"},
        {"controlPlane", "{\"replicas\": 3}", "controlPlane.machineType"},
        {"workers", "{\"replicas\": 101, \"machineType\": \"m\"}", "workers.replicas"},
        {"workers", "{\"replicas\": -1, \"machineType\": \"m\"}", "workers.replicas"},
        {"workers", "{\"replicas\": 1.5, \"machineType\": \"m\"}", "workers.replicas"},
        {NULL, NULL, NULL},
    };
    struct render_options o = {0};
    (void)state;
    o.gcp_project = "p";
    for (size_t i = 0; cases[i].member; i++) {
        struct render_files f = {0};
        json_t *t = load(TENANT_GCP), *e = load(ENV_DEDICATED);
        int rc;
        if (cases[i].json)
            json_object_set_new(e, cases[i].member, load(cases[i].json));
        else
            json_object_del(e, cases[i].member);
        rc = render_environment(&f, &o, t, e);
        if (rc != CAP_EINVALID || !cap_error_field() ||
            strcmp(cap_error_field(), cases[i].field) != 0) {
            print_error("case %zu (%s): rc %d field %s: %s\n", i, cases[i].member, rc,
                        cap_error_field() ? cap_error_field() : "-", cap_error_message());
            fail();
        }
        assert_int_equal(f.n, 0);
        json_decref(t);
        json_decref(e);
    }
}

static void test_failure_leaves_files(void **state)
{
    struct render_files f = {0};
    json_t *t = load(TENANT_VCLUSTER), *bad = load("{\"name\": \"x\"}");
    (void)state;
    assert_int_equal(render_tenant(&f, NULL, t), 0);
    assert_int_equal(f.n, 5);
    assert_int_equal(render_environment(&f, NULL, t, bad), CAP_EINVALID);
    assert_int_equal(f.n, 5);
    render_files_free(&f);
    render_files_free(&f); /* reusable and idempotent */
    render_files_free(NULL);
    json_decref(t);
    json_decref(bad);
}

static void test_list_files(void **state)
{
    static const char *const tenants[] = {"team-b", "team-a", "team-b"};
    static const char *const files[] = {"rbac.yaml", "namespace.yaml", "quota.yaml"};
    static const char *const envs[] = {"prod", "dev"};
    static const char *const bad_tenants[] = {"../x"};
    static const char *const bad_files[] = {"kustomization.yaml", "../x.yaml", "a/b.yaml", "x.yml",
                                            ".hidden.yaml"};
    char *out = NULL;
    (void)state;

    assert_int_equal(render_tenants_index(&out, tenants, 3), 0);
    assert_string_equal(out, "apiVersion: \"kustomize.config.k8s.io/v1beta1\"\n"
                             "kind: \"Kustomization\"\n"
                             "resources:\n- \"team-a\"\n- \"team-b\"\n");
    free(out);
    assert_int_equal(render_tenants_index(&out, NULL, 0), 0);
    assert_string_equal(out, "apiVersion: \"kustomize.config.k8s.io/v1beta1\"\n"
                             "kind: \"Kustomization\"\n"
                             "resources: []\n");
    free(out);
    assert_int_equal(render_tenants_index(&out, bad_tenants, 1), CAP_EINVALID);
    assert_null(out);

    assert_int_equal(render_tenant_kustomization(&out, files, 3, envs, 2), 0);
    assert_string_equal(out, "apiVersion: \"kustomize.config.k8s.io/v1beta1\"\n"
                             "kind: \"Kustomization\"\n"
                             "resources:\n- \"namespace.yaml\"\n- \"quota.yaml\"\n"
                             "- \"rbac.yaml\"\n- \"environments/dev\"\n- \"environments/prod\"\n");
    free(out);
    for (size_t i = 0; i < sizeof(bad_files) / sizeof(bad_files[0]); i++) {
        assert_int_equal(render_tenant_kustomization(&out, &bad_files[i], 1, NULL, 0),
                         CAP_EINVALID);
        assert_null(out);
    }
    assert_int_equal(render_tenant_kustomization(&out, files, 1, bad_tenants, 1), CAP_EINVALID);

    assert_int_equal(render_cluster_entry(&out, NULL), 0);
    {
        json_t *docs = NULL, *d;
        assert_int_equal(render_yaml_parse(&docs, out, strlen(out), "t"), 0);
        d = json_array_get(docs, 0);
        assert_string_equal(str_at(d, "apiVersion", NULL, NULL), "kustomize.toolkit.fluxcd.io/v1");
        assert_string_equal(str_at(d, "metadata", "namespace", NULL), "flux-system");
        assert_string_equal(str_at(d, "spec", "path", NULL), "./tenants");
        assert_true(json_is_true(json_object_get(json_object_get(d, "spec"), "prune")));
        assert_string_equal(str_at(d, "spec", "sourceRef", "kind"), "GitRepository");
        json_decref(docs);
    }
    free(out);
    assert_int_equal(render_cluster_entry(&out, "Bad Name"), CAP_EINVALID);
    assert_null(out);
}

static void test_tree(void **state)
{
    static const char *const want[] = {"clusters/mgmt/tenants.yaml",
                                       "tenants/kustomization.yaml",
                                       "tenants/team-a/environments/dev/cluster.yaml",
                                       "tenants/team-a/environments/dev/kustomization.yaml",
                                       "tenants/team-a/environments/dev/platform-sync.yaml",
                                       "tenants/team-a/environments/qa/cluster.yaml",
                                       "tenants/team-a/environments/qa/kustomization.yaml",
                                       "tenants/team-a/environments/qa/platform-sync.yaml",
                                       "tenants/team-a/kustomization.yaml",
                                       "tenants/team-a/namespace.yaml",
                                       "tenants/team-a/network-policy.yaml",
                                       "tenants/team-a/platform-source.yaml",
                                       "tenants/team-a/quota.yaml",
                                       "tenants/team-a/rbac.yaml",
                                       NULL};
    struct render_files f = {0};
    json_t *t = load(TENANT_VCLUSTER), *dev = load(ENV_DEV), *qa = load(ENV_DEV);
    const json_t *envs[] = {qa, dev};
    json_t *docs, *res;
    (void)state;
    json_object_set_new(qa, "name", json_string("qa"));
    json_object_set_new(qa, "type", json_string("permanent"));
    assert_int_equal(render_tree(&f, NULL, t, envs, 2), 0);
    assert_paths(&f, want);
    docs = docs_of(&f, "tenants/team-a/kustomization.yaml");
    res = json_object_get(json_array_get(docs, 0), "resources");
    assert_int_equal(json_array_size(res), 7);
    assert_string_equal(json_string_value(json_array_get(res, 4)), "rbac.yaml");
    assert_string_equal(json_string_value(json_array_get(res, 5)), "environments/dev");
    assert_string_equal(json_string_value(json_array_get(res, 6)), "environments/qa");
    json_decref(docs);
    render_files_free(&f);

    /* the same environment twice */
    envs[0] = dev;
    assert_int_equal(render_tree(&f, NULL, t, envs, 2), CAP_EINVALID);
    assert_non_null(strstr(cap_error_message(), "twice"));
    assert_int_equal(f.n, 0);

    /* a bad environment names which one */
    json_object_set_new(qa, "type", json_string("bogus"));
    envs[0] = dev;
    envs[1] = qa;
    assert_int_equal(render_tree(&f, NULL, t, envs, 2), CAP_EINVALID);
    assert_non_null(strstr(cap_error_message(), "environment 2"));
    assert_int_equal(f.n, 0);

    /* no environments: the tenant alone */
    assert_int_equal(render_tree(&f, NULL, t, NULL, 0), 0);
    assert_int_equal(f.n, 8);
    render_files_free(&f);
    json_decref(t);
    json_decref(dev);
    json_decref(qa);
}

/* --- operator templates ------------------------------------------------------------------- */

static char tmpdir[64];

static void write_template(const char *name, const char *text)
{
    char path[128];
    FILE *fp;
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static int tmp_setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/capstan-render-test-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int tmp_teardown(void **state)
{
    char path[128];
    static const char *const names[] = {"cluster-vcluster.yaml", NULL};
    (void)state;
    for (size_t i = 0; names[i]; i++) {
        snprintf(path, sizeof(path), "%s/%s", tmpdir, names[i]);
        unlink(path);
    }
    rmdir(tmpdir);
    return 0;
}

#define OBJ_HEAD                                                                                   \
    "apiVersion: cluster.x-k8s.io/v1beta2\nkind: Cluster\nmetadata:\n  name: ${CLUSTER_NAME}\n"    \
    "  namespace: ${NAMESPACE}\n  labels:\n    app.kubernetes.io/managed-by: capstan\n"            \
    "    capstan.io/tenant: ${TENANT}\n    capstan.io/environment: ${ENVIRONMENT}\n"

static void test_templates_dir(void **state)
{
    struct render_files f = {0};
    struct render_options o = {0};
    json_t *t = load(TENANT_VCLUSTER), *e = load(ENV_DEV), *gt = load(TENANT_GCP),
           *ge = load(ENV_DEDICATED), *docs;
    const struct render_file *file;
    (void)state;
    o.templates_dir = tmpdir;
    o.gcp_project = "p";

    /* a replaced flavour is used */
    write_template("cluster-vcluster.yaml",
                   "# operator template\n" OBJ_HEAD "spec:\n  paused: true\n");
    assert_int_equal(render_environment(&f, &o, t, e), 0);
    file = render_files_find(&f, "tenants/team-a/environments/dev/cluster.yaml");
    assert_non_null(file);
    assert_non_null(strstr(file->content, "# operator template"));
    docs = docs_of(&f, "tenants/team-a/environments/dev/cluster.yaml");
    assert_int_equal(json_array_size(docs), 1);
    assert_true(
        json_is_true(json_object_get(json_object_get(json_array_get(docs, 0), "spec"), "paused")));
    json_decref(docs);
    render_files_free(&f);

    /* a flavour missing from the folder falls back to the built-in one */
    assert_int_equal(render_environment(&f, &o, gt, ge), 0);
    file = render_files_find(&f, "tenants/team-b/environments/prod/cluster.yaml");
    assert_non_null(file);
    assert_non_null(strstr(file->content, "GCPCluster"));
    render_files_free(&f);

    /* unknown variable: the message names it and the template */
    write_template("cluster-vcluster.yaml", OBJ_HEAD "spec:\n  x: ${NO_SUCH_VARIABLE}\n");
    assert_int_equal(render_environment(&f, &o, t, e), CAP_EINVALID);
    assert_non_null(strstr(cap_error_message(), "${NO_SUCH_VARIABLE}"));
    assert_non_null(strstr(cap_error_message(), "cluster-vcluster.yaml"));
    assert_int_equal(f.n, 0);

    /* objects must stay in the tenant namespace and carry the labels */
    write_template("cluster-vcluster.yaml",
                   "apiVersion: cluster.x-k8s.io/v1beta2\nkind: Cluster\nmetadata:\n"
                   "  name: ${CLUSTER_NAME}\n  namespace: kube-system\n");
    assert_int_equal(render_environment(&f, &o, t, e), CAP_EINVALID);
    assert_non_null(strstr(cap_error_message(), "${NAMESPACE}"));
    write_template("cluster-vcluster.yaml",
                   "apiVersion: cluster.x-k8s.io/v1beta2\nkind: Cluster\nmetadata:\n"
                   "  name: ${CLUSTER_NAME}\n  namespace: ${NAMESPACE}\n");
    assert_int_equal(render_environment(&f, &o, t, e), CAP_EINVALID);
    assert_non_null(strstr(cap_error_message(), "labels"));
    /* and the Cluster <t>-<e> must be there */
    write_template("cluster-vcluster.yaml",
                   "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n"
                   "  namespace: ${NAMESPACE}\n  labels:\n    app.kubernetes.io/managed-by: "
                   "capstan\n    capstan.io/tenant: ${TENANT}\n    capstan.io/environment: "
                   "${ENVIRONMENT}\n");
    assert_int_equal(render_environment(&f, &o, t, e), CAP_EINVALID);
    assert_non_null(strstr(cap_error_message(), "${CLUSTER_NAME}"));
    /* a template that is not YAML */
    write_template("cluster-vcluster.yaml", OBJ_HEAD "spec: [\n");
    assert_int_equal(render_environment(&f, &o, t, e), CAP_EINVALID);
    assert_non_null(strstr(cap_error_message(), "cluster-vcluster.yaml"));
    /* a machine variable in a vcluster environment has no value */
    write_template("cluster-vcluster.yaml", OBJ_HEAD "spec:\n  r: ${WORKER_REPLICAS}\n");
    assert_int_equal(render_environment(&f, &o, t, e), CAP_EINVALID);
    assert_non_null(strstr(cap_error_message(), "${WORKER_REPLICAS}"));
    assert_int_equal(f.n, 0);

    json_decref(t);
    json_decref(e);
    json_decref(gt);
    json_decref(ge);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tenant_files),
        cmocka_unit_test(test_every_object_labelled),
        cmocka_unit_test(test_environment_vcluster),
        cmocka_unit_test(test_environment_dedicated),
        cmocka_unit_test(test_gcp_needs_project),
        cmocka_unit_test(test_hostile_tenant),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_tenant_errors),
        cmocka_unit_test(test_environment_errors),
        cmocka_unit_test(test_failure_leaves_files),
        cmocka_unit_test(test_list_files),
        cmocka_unit_test(test_tree),
        cmocka_unit_test_setup_teardown(test_templates_dir, tmp_setup, tmp_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
