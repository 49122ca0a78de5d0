/* Unit tests of the route table matching (server/http/router.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <string.h>

#include "http/router.h"

static int h(struct http_request *req)
{
    (void)req;
    return 0;
}

static const struct route routes[] = {
    {"GET", "/healthz", h, ROUTE_PUBLIC, "healthz"},
    {"GET", "/api/v1/tenants", h, 0, "tenants.list"},
    {"POST", "/api/v1/tenants", h, ROUTE_BODY, "tenants.create"},
    {"GET", "/api/v1/tenants/{tenant}", h, 0, "tenants.get"},
    {"PATCH", "/api/v1/tenants/{tenant}", h, ROUTE_PATCH, "tenants.patch"},
    {"DELETE", "/api/v1/tenants/{tenant}", h, 0, "tenants.delete"},
    {"GET", "/api/v1/tenants/{tenant}/environments/{env}", h, 0, "environments.get"},
    {"POST", "/api/v1/tenants/{tenant}/environments/{env}/extend", h, ROUTE_BODY, "env.extend"},
    {"GET", "/api/v1/jobs/{id}", h, 0, "jobs.get"},
    {"GET", "/api/v1/jobs/stats", h, 0, "jobs.stats"},
};
#define N (sizeof(routes) / sizeof(routes[0]))

static void test_literal(void **state)
{
    struct route_match m;
    (void)state;
    assert_int_equal(router_match(routes, N, "GET", "/healthz", &m), ROUTER_FOUND);
    assert_string_equal(m.route->name, "healthz");
    assert_int_equal(m.nparams, 0);
}

static void test_params(void **state)
{
    struct route_match m;
    (void)state;
    assert_int_equal(router_match(routes, N, "GET", "/api/v1/tenants/team-a/environments/dev", &m),
                     ROUTER_FOUND);
    assert_string_equal(m.route->name, "environments.get");
    assert_string_equal(router_param(&m, "tenant"), "team-a");
    assert_string_equal(router_param(&m, "env"), "dev");
    assert_null(router_param(&m, "nope"));
}

static void test_method_selects_route(void **state)
{
    struct route_match m;
    (void)state;
    assert_int_equal(router_match(routes, N, "PATCH", "/api/v1/tenants/x", &m), ROUTER_FOUND);
    assert_string_equal(m.route->name, "tenants.patch");
    assert_int_equal(router_match(routes, N, "POST", "/api/v1/tenants", &m), ROUTER_FOUND);
    assert_string_equal(m.route->name, "tenants.create");
}

static void test_head_is_get(void **state)
{
    struct route_match m;
    (void)state;
    assert_int_equal(router_match(routes, N, "HEAD", "/healthz", &m), ROUTER_FOUND);
    assert_string_equal(m.route->name, "healthz");
}

static void test_405_lists_allowed(void **state)
{
    struct route_match m;
    (void)state;
    assert_int_equal(router_match(routes, N, "PUT", "/api/v1/tenants/x", &m), ROUTER_NO_METHOD);
    assert_string_equal(m.allow, "GET, HEAD, PATCH, DELETE");
    assert_int_equal(router_match(routes, N, "DELETE", "/healthz", &m), ROUTER_NO_METHOD);
    assert_string_equal(m.allow, "GET, HEAD");
}

static void test_literal_beats_param(void **state)
{
    struct route_match m;
    (void)state;
    assert_int_equal(router_match(routes, N, "GET", "/api/v1/jobs/stats", &m), ROUTER_FOUND);
    assert_string_equal(m.route->name, "jobs.stats");
    assert_int_equal(router_match(routes, N, "GET", "/api/v1/jobs/123", &m), ROUTER_FOUND);
    assert_string_equal(m.route->name, "jobs.get");
}

static void test_no_path(void **state)
{
    static const char *bad[] = {"",
                                "healthz",
                                "/healthz/",
                                "//healthz",
                                "/api/v1/tenants//",
                                "/api/v1/tenants/a/b",
                                "/api/v1",
                                "/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p"};
    struct route_match m;
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(router_match(routes, N, "GET", bad[i], &m), ROUTER_NO_PATH);
}

static void test_long_param_rejected(void **state)
{
    char path[600] = "/api/v1/tenants/";
    struct route_match m;
    (void)state;
    memset(path + strlen(path), 'a', 400);
    path[16 + 400] = '\0';
    assert_int_equal(router_match(routes, N, "GET", path, &m), ROUTER_NO_PATH);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_literal),
        cmocka_unit_test(test_params),
        cmocka_unit_test(test_method_selects_route),
        cmocka_unit_test(test_head_is_get),
        cmocka_unit_test(test_405_lists_allowed),
        cmocka_unit_test(test_literal_beats_param),
        cmocka_unit_test(test_no_path),
        cmocka_unit_test(test_long_param_rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
