/* Unit tests of kubeconfig and in-cluster configuration (server/kube/config.c): every field
 * kind, the choice of context, what is refused (exec and auth-provider plugins, basic auth,
 * impersonation, proxies, insecure-skip-tls-verify unless allowed, http unless allowed, bad
 * base64, non-PEM data, huge or deep input) and that no message quotes a credential. */
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

#include "kube/kube.h"
#include "util/buf.h"
#include "util/error.h"

/* base64 of "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n" */
#define CERT_B64 "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUIKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo="
/* base64 of "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n" */
#define KEY_B64      "LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0tCk1JSUUKLS0tLS1FTkQgUFJJVkFURSBLRVktLS0tLQo="
#define PEM_CERT     "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
#define SECRET_TOKEN "sekrit-token-0123456789"

static char tmpdir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/kubecfg-test-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[128];
    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void write_file(const char *name, const char *text)
{
    char path[256];
    FILE *f;
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* A kubeconfig with one context "ctx" of cluster "c" and user "u"; the parts are spliced in. */
static char *kubeconfig(const char *cluster_fields, const char *user_fields)
{
    struct cap_buf b = CAP_BUF_INIT(1 << 20);
    cap_buf_printf(&b,
                   "apiVersion: v1\nkind: Config\ncurrent-context: ctx\n"
                   "clusters:\n- name: c\n  cluster:\n%s"
                   "users:\n- name: u\n  user:\n%s"
                   "contexts:\n- name: ctx\n  context: {cluster: c, user: u, namespace: team-a}\n"
                   "- name: other\n  context: {cluster: c}\n",
                   cluster_fields, user_fields);
    return cap_buf_detach(&b);
}

static int parse(struct kube_config **out, const char *text, const struct kube_config_options *opt)
{
    int rc = kube_config_parse(out, text, strlen(text), opt);
    if (rc)
        assert_null(*out);
    return rc;
}

static void expect_refused(const char *cluster, const char *user, int code, const char *field,
                           const char *msg_part)
{
    struct kube_config *cfg = NULL;
    struct kube_config_options opt = {0};
    char *text = kubeconfig(cluster, user);
    int rc;

    opt.base_dir = tmpdir;
    rc = parse(&cfg, text, &opt);
    if (rc != code)
        fail_msg("got %d (%s), want %d", rc, cap_error_message(), code);
    if (field && (!cap_error_field() || strcmp(cap_error_field(), field) != 0))
        fail_msg("field %s, want %s", cap_error_field() ? cap_error_field() : "(none)", field);
    if (msg_part && !strstr(cap_error_message(), msg_part))
        fail_msg("message \"%s\" lacks \"%s\"", cap_error_message(), msg_part);
    assert_null(strstr(cap_error_message(), SECRET_TOKEN));
    assert_null(strstr(cap_error_message(), "MIIB"));
    free(text);
}

static void test_full_data_fields(void **state)
{
    struct kube_config *cfg = NULL;
    char *text = kubeconfig("    server: https://api.example.com:6443/\n"
                            "    certificate-authority-data: " CERT_B64 "\n",
                            "    client-certificate-data: " CERT_B64 "\n"
                            "    client-key-data: " KEY_B64 "\n"
                            "    token: " SECRET_TOKEN "\n");
    (void)state;
    assert_int_equal(parse(&cfg, text, NULL), 0);
    assert_string_equal(cfg->server, "https://api.example.com:6443");
    assert_string_equal(cfg->context, "ctx");
    assert_string_equal(cfg->ns, "team-a");
    assert_int_equal(cfg->ca_len, strlen(PEM_CERT));
    assert_memory_equal(cfg->ca, PEM_CERT, cfg->ca_len);
    assert_int_equal(cfg->cert_len, strlen(PEM_CERT));
    assert_true(cfg->key_len > 0 && memcmp(cfg->key, "-----BEGIN PRIVATE KEY", 22) == 0);
    assert_string_equal(cfg->token, SECRET_TOKEN);
    assert_null(cfg->token_file);
    assert_false(cfg->insecure);
    kube_config_free(cfg);
    free(text);
}

static void test_files_and_context(void **state)
{
    struct kube_config *cfg = NULL;
    struct kube_config_options opt = {0};
    char path[256];
    char *text;
    (void)state;
    write_file("ca.crt", PEM_CERT);
    write_file("tok", SECRET_TOKEN "\n");
    text = kubeconfig("    server: https://10.1.2.3/prefix/path\n"
                      "    certificate-authority: ca.crt\n",
                      "    tokenFile: tok\n    token: ignored-when-a-file-is-set\n");
    opt.base_dir = tmpdir;
    assert_int_equal(parse(&cfg, text, &opt), 0);
    assert_string_equal(cfg->server, "https://10.1.2.3/prefix/path");
    assert_memory_equal(cfg->ca, PEM_CERT, cfg->ca_len);
    snprintf(path, sizeof(path), "%s/tok", tmpdir);
    assert_string_equal(cfg->token_file, path);
    assert_null(cfg->token);
    kube_config_free(cfg);

    /* The same text from a file: relative paths from the file's folder. */
    write_file("config", text);
    snprintf(path, sizeof(path), "%s/config", tmpdir);
    assert_int_equal(kube_config_load_file(&cfg, path, NULL), 0);
    assert_memory_equal(cfg->ca, PEM_CERT, cfg->ca_len);
    kube_config_free(cfg);

    /* A named context with no user and no namespace. */
    opt.context = "other";
    assert_int_equal(parse(&cfg, text, &opt), 0);
    assert_string_equal(cfg->context, "other");
    assert_string_equal(cfg->ns, "default");
    assert_null(cfg->token);
    assert_null(cfg->token_file);
    kube_config_free(cfg);

    opt.context = "nope";
    assert_int_equal(parse(&cfg, text, &opt), CAP_EINVALID);
    assert_string_equal(cap_error_field(), "contexts");
    assert_non_null(strstr(cap_error_message(), "\"nope\""));
    free(text);

    snprintf(path, sizeof(path), "%s/missing", tmpdir);
    assert_int_equal(kube_config_load_file(&cfg, path, NULL), CAP_ENOTFOUND);
    assert_null(cfg);
    kube_config_free(NULL);
}

static void test_context_errors(void **state)
{
    struct kube_config *cfg = NULL;
    (void)state;
    assert_int_equal(parse(&cfg,
                           "clusters: [{name: c, cluster: {server: 'https://x'}}]\n"
                           "contexts: [{name: ctx, context: {cluster: c}}]\n",
                           NULL),
                     CAP_EINVALID);
    assert_string_equal(cap_error_field(), "current-context");
    /* An unknown user. */
    assert_int_equal(parse(&cfg,
                           "current-context: ctx\n"
                           "clusters: [{name: c, cluster: {server: 'https://x'}}]\n"
                           "contexts: [{name: ctx, context: {cluster: c, user: ghost}}]\n",
                           NULL),
                     CAP_EINVALID);
    assert_string_equal(cap_error_field(), "users");
    assert_non_null(strstr(cap_error_message(), "user \"ghost\" is not in the kubeconfig"));
    /* An unknown cluster, a context without a cluster, a context defined twice. */
    assert_int_equal(parse(&cfg,
                           "current-context: ctx\n"
                           "contexts: [{name: ctx, context: {cluster: c}}]\n",
                           NULL),
                     CAP_EINVALID);
    assert_string_equal(cap_error_field(), "clusters");
    assert_int_equal(
        parse(&cfg, "current-context: ctx\ncontexts: [{name: ctx, context: {}}]\n", NULL),
        CAP_EINVALID);
    assert_int_equal(parse(&cfg,
                           "current-context: ctx\n"
                           "clusters: [{name: c, cluster: {server: 'https://x'}}]\n"
                           "contexts: [{name: ctx, context: {cluster: c}}, "
                           "{name: ctx, context: {cluster: c}}]\n",
                           NULL),
                     CAP_EINVALID);
    assert_non_null(strstr(cap_error_message(), "more than once"));
    /* Not a mapping, wrong kind, wrong types, not YAML. */
    assert_int_equal(parse(&cfg, "- a\n", NULL), CAP_EINVALID);
    assert_int_equal(parse(&cfg, "kind: Pod\n", NULL), CAP_EINVALID);
    assert_int_equal(parse(&cfg,
                           "current-context: ctx\nclusters: [{name: c, cluster: {server: 5}}]\n"
                           "contexts: [{name: ctx, context: {cluster: c}}]\n",
                           NULL),
                     CAP_EINVALID);
    assert_string_equal(cap_error_field(), "clusters[0].cluster.server");
    assert_int_equal(parse(&cfg, "current-context: [\n", NULL), CAP_EMALFORMED);
    assert_int_equal(parse(&cfg, "a: &x 1\nb: *x\n", NULL), CAP_EMALFORMED);
    assert_int_equal(parse(&cfg, "", NULL), CAP_EINVALID);
}

static void test_refused_fields(void **state)
{
    (void)state;
    expect_refused("    server: https://x\n",
                   "    exec:\n      command: /bin/evil\n      apiVersion: "
                   "client.authentication.k8s.io/v1\n",
                   CAP_EINVALID, "users[0].user.exec", "credential plugins are not run");
    expect_refused("    server: https://x\n", "    auth-provider: {name: gcp}\n", CAP_EINVALID,
                   "users[0].user.auth-provider", "auth-provider is not supported");
    expect_refused("    server: https://x\n", "    username: a\n    password: " SECRET_TOKEN "\n",
                   CAP_EINVALID, "users[0].user.username", "basic authentication");
    expect_refused("    server: https://x\n", "    as: admin\n", CAP_EINVALID, "users[0].user.as",
                   "impersonation");
    expect_refused("    server: https://x\n    proxy-url: http://proxy:3128\n", "    token: t\n",
                   CAP_EINVALID, "clusters[0].cluster.proxy-url", "proxy-url");
    expect_refused("    server: https://x\n    tls-server-name: other\n", "    token: t\n",
                   CAP_EINVALID, "clusters[0].cluster.tls-server-name", NULL);
    expect_refused("    server: https://x\n    insecure-skip-tls-verify: true\n", "    token: t\n",
                   CAP_EINVALID, "clusters[0].cluster.insecure-skip-tls-verify", "refused");
    expect_refused("    server: https://x\n    insecure-skip-tls-verify: 'yes'\n", "    token: t\n",
                   CAP_EINVALID, "clusters[0].cluster.insecure-skip-tls-verify", NULL);
}

static void test_insecure_allowed(void **state)
{
    struct kube_config *cfg = NULL;
    struct kube_config_options opt = {0};
    char *text = kubeconfig("    server: https://x\n    insecure-skip-tls-verify: true\n",
                            "    token: t0000000\n");
    char *with_ca = kubeconfig("    server: https://x\n    insecure-skip-tls-verify: true\n"
                               "    certificate-authority-data: " CERT_B64 "\n",
                               "    token: t0000000\n");
    (void)state;
    opt.allow_insecure = true;
    assert_int_equal(parse(&cfg, text, &opt), 0);
    assert_true(cfg->insecure);
    kube_config_free(cfg);
    assert_int_equal(parse(&cfg, with_ca, &opt), CAP_EINVALID);
    free(text);
    free(with_ca);
}

static void test_base64_and_pem(void **state)
{
    (void)state;
    expect_refused("    server: https://x\n    certificate-authority-data: 'abc$'\n", "",
                   CAP_EINVALID, "clusters[0].cluster.certificate-authority-data",
                   "not valid base64");
    expect_refused("    server: https://x\n    certificate-authority-data: abcde\n", "",
                   CAP_EINVALID, NULL, "not valid base64");
    expect_refused("    server: https://x\n    certificate-authority-data: 'ab=c'\n", "",
                   CAP_EINVALID, NULL, "not valid base64");
    expect_refused("    server: https://x\n    certificate-authority-data: '=abc'\n", "",
                   CAP_EINVALID, NULL, "not valid base64");
    /* Valid base64 ("hello world!") that is not PEM. */
    expect_refused("    server: https://x\n    certificate-authority-data: aGVsbG8gd29ybGQh\n", "",
                   CAP_EINVALID, NULL, "not in PEM format");
    expect_refused("    server: https://x\n", "    client-key-data: " CERT_B64 "\n", CAP_EINVALID,
                   "users[0].user.client-key-data", "client key is not in PEM format");
    /* Both the data and the file. */
    expect_refused("    server: https://x\n    certificate-authority-data: " CERT_B64
                   "\n    certificate-authority: ca.crt\n",
                   "", CAP_EINVALID, NULL, "both set");
    /* A certificate without its key. */
    expect_refused("    server: https://x\n", "    client-certificate-data: " CERT_B64 "\n",
                   CAP_EINVALID, "users[0].user.client-key", "client key");
    /* A FIFO or a device is refused at once (no waiting for a writer). */
    {
        char fifo[256];
        snprintf(fifo, sizeof(fifo), "%s/fifo", tmpdir);
        assert_int_equal(mkfifo(fifo, 0600), 0);
    }
    expect_refused("    server: https://x\n    certificate-authority: fifo\n", "", CAP_EINVALID,
                   "clusters[0].cluster.certificate-authority", "not a regular file");
    expect_refused("    server: https://x\n    certificate-authority: /dev/zero\n", "",
                   CAP_EINVALID, NULL, "not a regular file");
    /* A file that is not there. */
    expect_refused("    server: https://x\n    certificate-authority: nothere.crt\n", "",
                   CAP_ENOTFOUND, "clusters[0].cluster.certificate-authority", "nothere.crt");
}

static void test_server_urls(void **state)
{
    static const char *bad[] = {
        "ftp://x",      "https://",     "https://u:p@x",  "https://x:99999",
        "https://x:0",  "https://x:",   "https://x?a=b",  "https://x#f",
        "https://x y",  "http://x",     "x:6443",         "https://:6443",
        "https://[::1", "https://[]:1", "https://[::1]x", "https://x:12a",
    };
    struct kube_config *cfg = NULL;
    struct kube_config_options opt = {0};
    char cluster[256];
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(cluster, sizeof(cluster), "    server: '%s'\n", bad[i]);
        char *text = kubeconfig(cluster, "");
        if (parse(&cfg, text, &opt) != CAP_EINVALID)
            fail_msg("server %s was accepted", bad[i]);
        assert_string_equal(cap_error_field(), "clusters[0].cluster.server");
        free(text);
    }
    char *text = kubeconfig("    server: 'https://[fd00::1]:6443'\n", "");
    assert_int_equal(parse(&cfg, text, &opt), 0);
    assert_string_equal(cfg->server, "https://[fd00::1]:6443");
    kube_config_free(cfg);
    free(text);
    text = kubeconfig("    server: 'http://127.0.0.1:8080'\n", "");
    assert_int_equal(parse(&cfg, text, &opt), CAP_EINVALID);
    opt.allow_http = true;
    assert_int_equal(parse(&cfg, text, &opt), 0);
    kube_config_free(cfg);
    free(text);
}

static void test_tokens_and_namespace(void **state)
{
    (void)state;
    expect_refused("    server: https://x\n", "    token: 'has space " SECRET_TOKEN "'\n",
                   CAP_EINVALID, "users[0].user.token", "not allowed");
    expect_refused("    server: https://x\n", "    token: \"" SECRET_TOKEN "\\u00e9\"\n",
                   CAP_EINVALID, "users[0].user.token", NULL);
    struct kube_config *cfg = NULL;
    char *text = kubeconfig("    server: https://x\n", "    token: \"" SECRET_TOKEN "\\n\"\n");
    assert_int_equal(parse(&cfg, text, NULL), 0);
    assert_string_equal(cfg->token, SECRET_TOKEN);
    kube_config_free(cfg);
    free(text);
    assert_int_equal(parse(&cfg,
                           "current-context: ctx\n"
                           "clusters: [{name: c, cluster: {server: 'https://x'}}]\n"
                           "contexts: [{name: ctx, context: {cluster: c, namespace: Bad_NS}}]\n",
                           NULL),
                     CAP_EINVALID);
    assert_string_equal(cap_error_field(), "contexts[0].context.namespace");
}

static void test_huge_and_deep(void **state)
{
    struct kube_config *cfg = NULL;
    size_t n = KUBE_CONFIG_MAX_BYTES + 10;
    char *big = malloc(n + 1);
    struct cap_buf deep = CAP_BUF_INIT(4096);
    (void)state;
    assert_non_null(big);
    memset(big, ' ', n);
    memcpy(big, "a: ", 3);
    big[n] = '\0';
    assert_int_equal(kube_config_parse(&cfg, big, n, NULL), CAP_ETOOBIG);
    assert_null(cfg);
    free(big);
    cap_buf_puts(&deep, "current-context: ");
    for (int i = 0; i < 40; i++)
        cap_buf_puts(&deep, "[");
    assert_int_equal(parse(&cfg, cap_buf_str(&deep), NULL), CAP_EMALFORMED);
    assert_non_null(strstr(cap_error_message(), "nesting too deep"));
    cap_buf_free(&deep);
    /* A CA bundle larger than the limit. */
    struct cap_buf ca = CAP_BUF_INIT(2 * 1024 * 1024);
    cap_buf_puts(&ca, "    server: https://x\n    certificate-authority-data: ");
    for (size_t i = 0; i < (KUBE_PEM_MAX_BYTES / 3 + 10); i++)
        cap_buf_puts(&ca, "QUJD");
    cap_buf_puts(&ca, "\n");
    expect_refused(cap_buf_str(&ca), "", CAP_ETOOBIG, NULL, "longer than");
    cap_buf_free(&ca);
}

static void test_in_cluster(void **state)
{
    struct kube_config *cfg = NULL;
    struct kube_incluster_options o = {0};
    char sa[128], path[256];
    (void)state;
    snprintf(sa, sizeof(sa), "%s/sa", tmpdir);
    assert_int_equal(mkdir(sa, 0700), 0);
    o.sa_dir = sa;
    o.host = "10.96.0.1";
    o.port = "443";
    /* No token yet. */
    assert_int_equal(kube_config_in_cluster(&cfg, &o), CAP_ENOTFOUND);
    write_file("sa/token", SECRET_TOKEN "\n");
    write_file("sa/ca.crt", PEM_CERT);
    assert_int_equal(kube_config_in_cluster(&cfg, &o), 0);
    assert_string_equal(cfg->server, "https://10.96.0.1:443");
    assert_string_equal(cfg->ns, "default");
    snprintf(path, sizeof(path), "%s/token", sa);
    assert_string_equal(cfg->token_file, path);
    assert_memory_equal(cfg->ca, PEM_CERT, cfg->ca_len);
    kube_config_free(cfg);

    write_file("sa/namespace", "tenant-x\n");
    o.host = "fd00::1";
    o.port = "6443";
    assert_int_equal(kube_config_in_cluster(&cfg, &o), 0);
    assert_string_equal(cfg->server, "https://[fd00::1]:6443");
    assert_string_equal(cfg->ns, "tenant-x");
    kube_config_free(cfg);

    o.port = "70000";
    assert_int_equal(kube_config_in_cluster(&cfg, &o), CAP_EINVALID);
    o.port = "443";
    o.host = "evil/host";
    assert_int_equal(kube_config_in_cluster(&cfg, &o), CAP_EINVALID);
    /* Outside a cluster: no host at all. */
    unsetenv("KUBERNETES_SERVICE_HOST");
    o.host = NULL;
    assert_int_equal(kube_config_in_cluster(&cfg, &o), CAP_ENOTFOUND);
    assert_null(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_data_fields), cmocka_unit_test(test_files_and_context),
        cmocka_unit_test(test_context_errors),   cmocka_unit_test(test_refused_fields),
        cmocka_unit_test(test_insecure_allowed), cmocka_unit_test(test_base64_and_pem),
        cmocka_unit_test(test_server_urls),      cmocka_unit_test(test_tokens_and_namespace),
        cmocka_unit_test(test_huge_and_deep),    cmocka_unit_test(test_in_cluster),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
