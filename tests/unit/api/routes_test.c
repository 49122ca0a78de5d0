/* Unit tests of the route table's access declarations (server/api/routes.c, api/auth.h):
 * every route that lets tenant roles in says where their tenant is, and says it truthfully. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "api/api.h"
#include "api/auth.h"
#include "app.h"

/* main.c defines it in the program; the handlers are linked but never called here */
struct app *capstan_app;

static void test_access_declarations_are_consistent(void **state)
{
    size_t n;
    const struct route *r = api_routes(&n);
    (void)state;
    assert_true(n > 10);
    for (size_t i = 0; i < n; i++) {
        unsigned a = r[i].flags & AUTHZ_MASK;
        unsigned who = a & (AUTHZ_BIT_TENANT_ADMIN | AUTHZ_BIT_TENANT_VIEWER);
        unsigned scope = a & (AUTHZ_SCOPE_PATH | AUTHZ_SCOPE_JOB | AUTHZ_SCOPE_LIST);
        int scopes = !!(scope & AUTHZ_SCOPE_PATH) + !!(scope & AUTHZ_SCOPE_JOB) +
                     !!(scope & AUTHZ_SCOPE_LIST);
        print_message("%s %s\n", r[i].method, r[i].pattern);
        /* only known bits */
        assert_int_equal(a & ~(unsigned)(AUTHZ_BIT_TENANT_ADMIN | AUTHZ_BIT_TENANT_VIEWER |
                                         AUTHZ_SCOPE_PATH | AUTHZ_SCOPE_JOB | AUTHZ_SCOPE_LIST),
                         0);
        if (r[i].flags & ROUTE_PUBLIC) {
            assert_int_equal(a, 0);
            continue;
        }
        /* tenant roles only with exactly one scope; a scope only for tenant roles */
        assert_int_equal(who != 0, scopes == 1);
        assert_true(scopes <= 1);
        /* a viewer may do nothing that a tenant-admin may not */
        if (who & AUTHZ_BIT_TENANT_VIEWER)
            assert_true(who & AUTHZ_BIT_TENANT_ADMIN);
        /* a viewer only reads */
        if (who & AUTHZ_BIT_TENANT_VIEWER)
            assert_string_equal(r[i].method, "GET");
        if (scope & AUTHZ_SCOPE_PATH)
            assert_non_null(strstr(r[i].pattern, "/{tenant}"));
        if (scope & AUTHZ_SCOPE_JOB)
            assert_true(strncmp(r[i].pattern, "/api/v1/jobs/{id}", 17) == 0);
        if (scope & AUTHZ_SCOPE_LIST)
            assert_null(strchr(r[i].pattern, '{'));
        /* a route about a tenant that lets tenant roles in takes the tenant from the path */
        if (who && strstr(r[i].pattern, "/{tenant}"))
            assert_int_equal(scope, AUTHZ_SCOPE_PATH);
        /* the kubeconfig of an environment is a secret: no viewers */
        if (strstr(r[i].pattern, "kubeconfig"))
            assert_int_equal(who & AUTHZ_BIT_TENANT_VIEWER, 0);
        /* tokens and the audit log are for admins only */
        if (strncmp(r[i].pattern, "/api/v1/tokens", 14) == 0 ||
            strncmp(r[i].pattern, "/api/v1/audit", 13) == 0)
            assert_int_equal(a, 0);
    }
}

static void test_role_names(void **state)
{
    (void)state;
    assert_string_equal(auth_role_name(AUTH_ROLE_ADMIN), "admin");
    assert_string_equal(auth_role_name(AUTH_ROLE_TENANT_ADMIN), "tenant-admin");
    assert_string_equal(auth_role_name(AUTH_ROLE_TENANT_VIEWER), "tenant-viewer");
    assert_null(auth_role_name(AUTH_ROLE_NONE));
    assert_null(auth_role_name(7));
    assert_int_equal(auth_role_parse("tenant-viewer"), AUTH_ROLE_TENANT_VIEWER);
    assert_int_equal(auth_role_parse("Admin"), AUTH_ROLE_NONE);
    assert_int_equal(auth_role_parse(NULL), AUTH_ROLE_NONE);
}

static void test_generated_tokens(void **state)
{
    char a[AUTH_TOKEN_SIZE], b[AUTH_TOKEN_SIZE];
    (void)state;
    assert_int_equal(auth_token_generate(a), 0);
    assert_int_equal(auth_token_generate(b), 0);
    assert_int_equal(strlen(a), 47);
    assert_memory_equal(a, "cap_", 4);
    for (const char *p = a + 4; *p; p++)
        assert_non_null(
            strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", *p));
    assert_string_not_equal(a, b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_access_declarations_are_consistent),
        cmocka_unit_test(test_role_names),
        cmocka_unit_test(test_generated_tokens),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
