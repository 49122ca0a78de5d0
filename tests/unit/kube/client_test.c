/* Unit tests of the Kubernetes client's pure parts (server/kube/client.c, http.c): resource
 * paths, Status bodies to CAP_* codes, which codes are retryable, and the checks made before
 * any request is sent. No network is used. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "kube/kube.h"
#include "util/error.h"

static void assert_path(const char *api_version, const char *resource, const char *ns,
                        const char *name, const char *want)
{
    char buf[KUBE_PATH_MAX];
    int rc = kube_path(buf, sizeof(buf), api_version, resource, ns, name);
    if (rc != 0)
        fail_msg("kube_path failed: %s", cap_error_message());
    assert_string_equal(buf, want);
}

static void test_paths(void **state)
{
    char small[16];
    char buf[KUBE_PATH_MAX];
    (void)state;
    assert_path("v1", "secrets", "tenant-x", "c1-kubeconfig",
                "/api/v1/namespaces/tenant-x/secrets/c1-kubeconfig");
    assert_path("v1", "namespaces", NULL, "tenant-x", "/api/v1/namespaces/tenant-x");
    assert_path("v1", "namespaces", "", NULL, "/api/v1/namespaces");
    assert_path("cluster.x-k8s.io/v1beta2", "clusters", "tenant-x", "name",
                "/apis/cluster.x-k8s.io/v1beta2/namespaces/tenant-x/clusters/name");
    assert_path("kustomize.toolkit.fluxcd.io/v1", "kustomizations", "flux-system", NULL,
                "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/flux-system/kustomizations");
    assert_path("rbac.authorization.k8s.io/v1", "clusterroles", NULL, "system:aggregate-to-edit",
                "/apis/rbac.authorization.k8s.io/v1/clusterroles/system:aggregate-to-edit");

    assert_int_equal(kube_path(buf, sizeof(buf), "", "secrets", NULL, NULL), CAP_EINVALID);
    assert_int_equal(kube_path(buf, sizeof(buf), "/v1", "secrets", NULL, NULL), CAP_EINVALID);
    assert_int_equal(kube_path(buf, sizeof(buf), "Apps/v1", "secrets", NULL, NULL), CAP_EINVALID);
    assert_int_equal(kube_path(buf, sizeof(buf), "apps/", "secrets", NULL, NULL), CAP_EINVALID);
    assert_int_equal(kube_path(buf, sizeof(buf), "a..b/v1", "x", NULL, NULL), CAP_EINVALID);
    assert_int_equal(kube_path(buf, sizeof(buf), "v1", "Secrets", NULL, NULL), CAP_EINVALID);
    assert_int_equal(kube_path(buf, sizeof(buf), "v1", NULL, NULL, NULL), CAP_EINVALID);
    assert_int_equal(kube_path(buf, sizeof(buf), "v1", "secrets/x", NULL, NULL), CAP_EINVALID);
    assert_int_equal(kube_path(buf, sizeof(buf), "v1", "secrets", "../x", NULL), CAP_EINVALID);
    assert_string_equal(cap_error_field(), "namespace");
    assert_int_equal(kube_path(buf, sizeof(buf), "v1", "secrets", "ns", ".."), CAP_EINVALID);
    assert_int_equal(kube_path(buf, sizeof(buf), "v1", "secrets", "ns", "a/b"), CAP_EINVALID);
    assert_int_equal(kube_path(buf, sizeof(buf), "v1", "secrets", "ns", "a?b"), CAP_EINVALID);
    assert_int_equal(kube_path(buf, sizeof(buf), "v1", "secrets", "ns", "a%2f"), CAP_EINVALID);
    assert_string_equal(cap_error_field(), "name");
    assert_string_equal(buf, "");
    assert_int_equal(kube_path(small, sizeof(small), "v1", "secrets", "ns", "name"), CAP_ETOOBIG);
    assert_string_equal(small, "");
}

static int status_code(const char *body, long http, struct kube_status *st)
{
    return kube_status_error(st, http, body, body ? strlen(body) : 0);
}

static void test_status_bodies(void **state)
{
    struct kube_status st;
    (void)state;
    assert_int_equal(
        status_code("{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":"
                    "\"Failure\",\"message\":\"secrets \\\"x\\\" not found\",\"reason\":"
                    "\"NotFound\",\"details\":{\"name\":\"x\",\"kind\":\"secrets\"},\"code\":404}",
                    404, &st),
        CAP_ENOTFOUND);
    assert_string_equal(st.reason, "NotFound");
    assert_string_equal(st.message, "secrets \"x\" not found");
    assert_int_equal(st.code, 404);
    assert_string_equal(cap_error_message(), "kubernetes api: secrets \"x\" not found");
    assert_int_equal(cap_error_code(), CAP_ENOTFOUND);

    assert_int_equal(status_code("{\"kind\":\"Status\",\"reason\":\"AlreadyExists\",\"code\":409,"
                                 "\"message\":\"exists\"}",
                                 409, &st),
                     CAP_ECONFLICT);
    assert_int_equal(
        status_code("{\"kind\":\"Status\",\"reason\":\"Conflict\",\"code\":409}", 409, &st),
        CAP_ECONFLICT);
    assert_string_equal(cap_error_message(), "kubernetes api answered 409 Conflict");
    assert_int_equal(
        status_code("{\"kind\":\"Status\",\"reason\":\"Expired\",\"code\":410}", 410, &st),
        CAP_EPRECONDITION);
    assert_int_equal(
        status_code("{\"kind\":\"Status\",\"reason\":\"Unauthorized\",\"code\":401}", 401, &st),
        CAP_EUNAUTHORIZED);
    assert_int_equal(
        status_code("{\"kind\":\"Status\",\"reason\":\"Forbidden\",\"code\":403}", 403, &st),
        CAP_EFORBIDDEN);
    assert_int_equal(
        status_code("{\"kind\":\"Status\",\"reason\":\"Invalid\",\"code\":422}", 422, &st),
        CAP_EINVALID);
    assert_int_equal(
        status_code("{\"kind\":\"Status\",\"reason\":\"BadRequest\",\"code\":400}", 400, &st),
        CAP_EMALFORMED);
    assert_int_equal(status_code("{\"kind\":\"Status\",\"reason\":\"TooManyRequests\",\"code\":429,"
                                 "\"details\":{\"retryAfterSeconds\":3}}",
                                 429, &st),
                     CAP_ERATELIMIT);
    assert_int_equal(st.retry_after_s, 3);
    assert_int_equal(
        status_code("{\"kind\":\"Status\",\"reason\":\"InternalError\",\"code\":500}", 500, &st),
        CAP_EUNAVAILABLE);
    assert_int_equal(status_code(NULL, 503, &st), CAP_EUNAVAILABLE);
    assert_string_equal(cap_error_message(), "kubernetes api answered 503");
    assert_int_equal(status_code(NULL, 504, &st), CAP_ETIMEOUT);
    assert_int_equal(status_code(NULL, 418, &st), CAP_ERROR);
    /* In a watch ERROR event the HTTP status is 0 and the Status's own code counts. */
    assert_int_equal(status_code("{\"kind\":\"Status\",\"reason\":\"Expired\",\"code\":410,"
                                 "\"message\":\"too old resource version: 5 (9)\"}",
                                 0, &st),
                     CAP_EPRECONDITION);
    assert_int_equal(st.code, 410);
    /* Bodies that are not a Status: no text of theirs is repeated. */
    assert_int_equal(status_code("<html>proxy says no: secret-ish</html>", 502, &st),
                     CAP_EUNAVAILABLE);
    assert_null(strstr(cap_error_message(), "secret-ish"));
    assert_int_equal(status_code("{\"kind\":\"Pod\",\"message\":\"not-a-status\"}", 404, &st),
                     CAP_ENOTFOUND);
    assert_null(strstr(cap_error_message(), "not-a-status"));
    assert_int_equal(status_code("{\"kind\":\"Status\",\"code\":\"x\",\"message\":5}", 409, &st),
                     CAP_ECONFLICT);
    assert_int_equal(st.code, 409);
    /* Control characters are removed; long messages are cut on a character boundary. */
    status_code("{\"kind\":\"Status\",\"message\":\"a\\nb\\u0007c\",\"code\":400}", 400, &st);
    assert_string_equal(st.message, "a b c");
    {
        char body[2048];
        size_t n = (size_t)snprintf(body, sizeof(body), "{\"kind\":\"Status\",\"message\":\"");
        for (int i = 0; i < 300; i++)
            n += (size_t)snprintf(body + n, sizeof(body) - n, "\xc3\xa9");
        snprintf(body + n, sizeof(body) - n, "\",\"code\":400}");
        status_code(body, 400, &st);
        assert_true(strlen(st.message) < sizeof(st.message));
        assert_int_equal(strlen(st.message) % 2, 0);
    }
}

static void test_retryable(void **state)
{
    (void)state;
    assert_true(kube_error_retryable(CAP_EUNAVAILABLE));
    assert_true(kube_error_retryable(CAP_ETIMEOUT));
    assert_true(kube_error_retryable(CAP_ERATELIMIT));
    assert_false(kube_error_retryable(CAP_ENOTFOUND));
    assert_false(kube_error_retryable(CAP_ECONFLICT));
    assert_false(kube_error_retryable(CAP_EUNAUTHORIZED));
    assert_false(kube_error_retryable(0));
}

static void test_checks_before_sending(void **state)
{
    struct kube_config cfg = {0};
    struct kube_client *c = NULL;
    json_t *out = NULL, *obj;
    (void)state;
    assert_int_equal(kube_client_new(&c, &cfg, NULL), CAP_EINVALID);
    assert_null(c);
    cfg.server = "https://127.0.0.1:1";
    cfg.token_file = "/nonexistent/token";
    assert_int_equal(kube_client_new(&c, &cfg, NULL), CAP_ENOTFOUND);
    cfg.token_file = NULL;
    cfg.token = "a-static-token";
    assert_int_equal(kube_client_new(&c, &cfg, NULL), 0);
    assert_string_equal(kube_client_namespace(c), "default");

    assert_int_equal(kube_get(&out, c, "api/v1/x", 0), CAP_EINVALID);
    assert_int_equal(kube_get(&out, c, "/api/v1/x?watch=1", 0), CAP_EINVALID);
    assert_int_equal(kube_get(&out, c, "/api/v1/x y", 0), CAP_EINVALID);
    assert_int_equal(kube_get(&out, c, "/api/v1/../x", 0), CAP_EINVALID);
    assert_null(out);
    obj = json_pack("{s:s, s:s, s:{s:s}}", "apiVersion", "v1", "kind", "Secret", "metadata", "name",
                    "other");
    assert_int_equal(kube_apply(&out, c, "/api/v1/namespaces/n/secrets/x", obj, false, 0),
                     CAP_EINVALID);
    assert_non_null(strstr(cap_error_message(), "does not match"));
    json_decref(obj);
    obj = json_pack("{s:{s:s}}", "metadata", "name", "x");
    assert_int_equal(kube_apply(&out, c, "/api/v1/namespaces/n/secrets/x", obj, false, 0),
                     CAP_EINVALID);
    json_decref(obj);
    assert_int_equal(
        kube_apply_yaml(&out, c, "/api/v1/namespaces/n/secrets/x", "a: [", 4, false, 0),
        CAP_EMALFORMED);
    obj = json_array();
    assert_int_equal(kube_merge_patch(&out, c, "/api/v1/namespaces/n/secrets/x", obj, 0),
                     CAP_EINVALID);
    json_decref(obj);
    assert_int_equal(kube_delete(&out, c, "/api/v1/namespaces/n/secrets/x", "Now", 0),
                     CAP_EINVALID);
    assert_int_equal(kube_watch(c, "/api/v1/x?watch=1", NULL, NULL, NULL, NULL), CAP_EINVALID);
    kube_client_free(c);
    kube_client_free(NULL);

    /* A field manager must be a DNS label. */
    {
        struct kube_options o = {0};
        o.field_manager = "Bad Manager";
        assert_int_equal(kube_client_new(&c, &cfg, &o), CAP_EINVALID);
        assert_null(c);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_status_bodies),
        cmocka_unit_test(test_retryable),
        cmocka_unit_test(test_checks_before_sending),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
