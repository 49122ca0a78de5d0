/* Unit tests of the metrics registry, the text exposition format and the catalog's pure
 * helpers (server/metrics/). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/catalog.h"
#include "metrics/metrics.h"
#include "util/error.h"

static char *render(struct metrics_registry *r)
{
    struct cap_buf b = CAP_BUF_INIT(1 << 22);
    assert_int_equal(metrics_render(r, &b), 0);
    return cap_buf_detach(&b);
}

static void test_declare_checks(void **state)
{
    struct metrics_registry *r = NULL;
    struct metrics_family *f = NULL;
    static const double b[] = {1, 2};
    static const double bad[] = {2, 1};
    (void)state;
    assert_int_equal(metrics_registry_new(&r), 0);
    assert_int_equal(metrics_family_new(&f, r, METRICS_COUNTER, "9bad", "", NULL, NULL, 0),
                     CAP_EINVALID);
    assert_int_equal(metrics_family_new(&f, r, METRICS_COUNTER, "a-b", "", NULL, NULL, 0),
                     CAP_EINVALID);
    assert_int_equal(metrics_family_new(&f, r, METRICS_COUNTER, "ok_total", "",
                                        (const char *const[]){"__x", NULL}, NULL, 0),
                     CAP_EINVALID);
    assert_int_equal(metrics_family_new(&f, r, METRICS_COUNTER, "ok_total", "",
                                        (const char *const[]){"a", "a", NULL}, NULL, 0),
                     CAP_EINVALID);
    assert_int_equal(metrics_family_new(&f, r, METRICS_COUNTER, "ok_total", "",
                                        (const char *const[]){"a", "b", "c", "d", "e", NULL}, NULL,
                                        0),
                     CAP_EINVALID);
    assert_int_equal(metrics_family_new(&f, r, METRICS_HISTOGRAM, "h", "",
                                        (const char *const[]){"le", NULL}, b, 2),
                     CAP_EINVALID);
    assert_int_equal(metrics_family_new(&f, r, METRICS_HISTOGRAM, "h", "", NULL, bad, 2),
                     CAP_EINVALID);
    assert_int_equal(metrics_family_new(&f, r, METRICS_HISTOGRAM, "h", "", NULL, NULL, 0),
                     CAP_EINVALID);
    assert_int_equal(metrics_family_new(&f, r, METRICS_GAUGE, "g", "", NULL, b, 2), CAP_EINVALID);
    assert_int_equal(metrics_family_new(&f, r, METRICS_COUNTER, "ok_total", "", NULL, NULL, 0), 0);
    assert_int_equal(metrics_family_new(&f, r, METRICS_GAUGE, "ok_total", "", NULL, NULL, 0),
                     CAP_ECONFLICT);
    metrics_registry_free(r);
}

static void test_exposition(void **state)
{
    struct metrics_registry *r = NULL;
    struct metrics_family *c, *g, *h, *empty;
    static const double b[] = {0.1, 1, 2.5};
    char *text;
    (void)state;
    assert_int_equal(metrics_registry_new(&r), 0);
    assert_int_equal(metrics_family_new(&c, r, METRICS_COUNTER, "x_requests_total",
                                        "requests\nby \\ route",
                                        (const char *const[]){"route", "code", NULL}, NULL, 0),
                     0);
    assert_int_equal(metrics_family_new(&g, r, METRICS_GAUGE, "x_depth", "depth", NULL, NULL, 0),
                     0);
    assert_int_equal(metrics_family_new(&h, r, METRICS_HISTOGRAM, "x_seconds", "latency",
                                        (const char *const[]){"op", NULL}, b, 3),
                     0);
    assert_int_equal(metrics_family_new(&empty, r, METRICS_COUNTER, "x_never_total", "none",
                                        (const char *const[]){"a", NULL}, NULL, 0),
                     0);
    metrics_counter_add(metrics_series_get(c, (const char *const[]){"b", "200"}), 2);
    metrics_counter_add(metrics_series_get(c, (const char *const[]){"a\"q\\\n", "500"}), 1);
    metrics_counter_add(metrics_series_get(c, (const char *const[]){"b", "200"}), 0.5);
    metrics_counter_add(metrics_series_get(c, (const char *const[]){"b", "200"}), -7); /* ignored */
    metrics_gauge_set(metrics_series_get(g, NULL), 3);
    metrics_gauge_add(metrics_series_get(g, NULL), -1);
    metrics_observe(metrics_series_get(h, (const char *const[]){"push"}), 0.05);
    metrics_observe(metrics_series_get(h, (const char *const[]){"push"}),
                    0.1); /* le is inclusive */
    metrics_observe(metrics_series_get(h, (const char *const[]){"push"}), 2);
    metrics_observe(metrics_series_get(h, (const char *const[]){"push"}), 100);
    text = render(r);
    assert_string_equal(text, "# HELP x_requests_total requests\\nby \\\\ route\n"
                              "# TYPE x_requests_total counter\n"
                              "x_requests_total{route=\"a\\\"q\\\\\\n\",code=\"500\"} 1\n"
                              "x_requests_total{route=\"b\",code=\"200\"} 2.5\n"
                              "# HELP x_depth depth\n"
                              "# TYPE x_depth gauge\n"
                              "x_depth 2\n"
                              "# HELP x_seconds latency\n"
                              "# TYPE x_seconds histogram\n"
                              "x_seconds_bucket{op=\"push\",le=\"0.1\"} 2\n"
                              "x_seconds_bucket{op=\"push\",le=\"1\"} 2\n"
                              "x_seconds_bucket{op=\"push\",le=\"2.5\"} 3\n"
                              "x_seconds_bucket{op=\"push\",le=\"+Inf\"} 4\n"
                              "x_seconds_sum{op=\"push\"} 102.15\n"
                              "x_seconds_count{op=\"push\"} 4\n");
    free(text);

    /* hidden gauges leave the output until they are set again */
    metrics_series_hide(metrics_series_get(g, NULL));
    text = render(r);
    assert_null(strstr(text, "x_depth"));
    free(text);
    metrics_gauge_set(metrics_series_get(g, NULL), 1e21);
    text = render(r);
    assert_non_null(strstr(text, "\nx_depth 1e+21\n"));
    free(text);
    metrics_gauge_set(metrics_series_get(g, NULL), INFINITY);
    text = render(r);
    assert_non_null(strstr(text, "\nx_depth +Inf\n"));
    free(text);
    metrics_registry_free(r);
}

static void test_bad_values(void **state)
{
    struct metrics_registry *r = NULL;
    struct metrics_family *c;
    char big[METRICS_LABEL_VALUE_MAX + 2];
    (void)state;
    assert_int_equal(metrics_registry_new(&r), 0);
    assert_int_equal(metrics_family_new(&c, r, METRICS_COUNTER, "c_total", "",
                                        (const char *const[]){"v", NULL}, NULL, 0),
                     0);
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_null(metrics_series_get(c, (const char *const[]){big}));
    big[METRICS_LABEL_VALUE_MAX] = '\0';
    assert_non_null(metrics_series_get(c, (const char *const[]){big}));
    assert_null(metrics_series_get(c, (const char *const[]){"\xc3\x28"}));     /* bad UTF-8 */
    assert_null(metrics_series_get(c, (const char *const[]){"\xe0\x80\xaf"})); /* overlong */
    assert_null(metrics_series_get(c, (const char *const[]){"\xed\xa0\x80"})); /* surrogate */
    assert_non_null(metrics_series_get(c, (const char *const[]){"caf\xc3\xa9 \xf0\x9f\x9a\x80"}));
    assert_null(metrics_series_get(c, (const char *const[]){NULL}));
    assert_null(metrics_series_get(NULL, (const char *const[]){"x"}));
    metrics_counter_add(NULL, 1); /* no-ops */
    metrics_observe(NULL, 1);
    metrics_gauge_set(NULL, 1);
    metrics_registry_free(r);
}

static void test_series_limit(void **state)
{
    struct metrics_registry *r = NULL;
    struct metrics_family *c;
    char v[16];
    (void)state;
    assert_int_equal(metrics_registry_new(&r), 0);
    assert_int_equal(metrics_family_new(&c, r, METRICS_COUNTER, "c_total", "",
                                        (const char *const[]){"v", NULL}, NULL, 0),
                     0);
    for (int i = 0; i < METRICS_SERIES_MAX; i++) {
        snprintf(v, sizeof(v), "v%d", i);
        assert_non_null(metrics_series_get(c, (const char *const[]){v}));
    }
    assert_null(metrics_series_get(c, (const char *const[]){"one-too-many"}));
    assert_int_equal(metrics_dropped(r), 1);
    /* existing series are still found, and are the same objects */
    assert_ptr_equal(metrics_series_get(c, (const char *const[]){"v7"}),
                     metrics_series_get(c, (const char *const[]){"v7"}));
    metrics_registry_free(r);
}

struct hammer {
    struct metrics_family *c, *h;
    int id;
};

#define THREADS 8
#define ROUNDS  100000

static void *hammer_main(void *arg)
{
    struct hammer *hm = arg;
    char own[16];
    snprintf(own, sizeof(own), "t%d", hm->id);
    for (int i = 0; i < ROUNDS; i++) {
        /* the shared series is made by whichever thread comes first */
        metrics_counter_add(metrics_series_get(hm->c, (const char *const[]){"shared"}), 1);
        metrics_counter_add(metrics_series_get(hm->c, (const char *const[]){own}), 0.5);
        metrics_observe(metrics_series_get(hm->h, NULL), (double)(i % 4));
    }
    return NULL;
}

static void test_concurrent_updates(void **state)
{
    struct metrics_registry *r = NULL;
    struct hammer hm[THREADS];
    pthread_t th[THREADS];
    static const double b[] = {0.5, 1.5, 2.5};
    struct metrics_family *c, *h;
    unsigned long long count = 0;
    (void)state;
    assert_int_equal(metrics_registry_new(&r), 0);
    assert_int_equal(metrics_family_new(&c, r, METRICS_COUNTER, "c_total", "",
                                        (const char *const[]){"v", NULL}, NULL, 0),
                     0);
    assert_int_equal(metrics_family_new(&h, r, METRICS_HISTOGRAM, "h", "", NULL, b, 3), 0);
    for (int i = 0; i < THREADS; i++) {
        hm[i] = (struct hammer){c, h, i};
        assert_int_equal(pthread_create(&th[i], NULL, hammer_main, &hm[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    assert_true(metrics_series_value(metrics_series_get(c, (const char *const[]){"shared"}),
                                     NULL) == (double)THREADS * ROUNDS);
    assert_true(metrics_series_value(metrics_series_get(c, (const char *const[]){"t3"}), NULL) ==
                ROUNDS / 2.0);
    double sum = metrics_series_value(metrics_series_get(h, NULL), &count);
    assert_int_equal(count, (unsigned long long)THREADS * ROUNDS);
    assert_true(sum == (double)THREADS * ROUNDS / 4.0 * (0 + 1 + 2 + 3));
    char *text = render(r);
    char want[128];
    snprintf(want, sizeof(want), "h_bucket{le=\"0.5\"} %d\n", THREADS * ROUNDS / 4);
    assert_non_null(strstr(text, want));
    snprintf(want, sizeof(want), "h_count %d\n", THREADS * ROUNDS);
    assert_non_null(strstr(text, want));
    free(text);
    metrics_registry_free(r);
}

static int ncollect;
static void collect_fn(void *ctx)
{
    metrics_gauge_set(metrics_series_get(ctx, NULL), ++ncollect);
}

static void test_collectors(void **state)
{
    struct metrics_registry *r = NULL;
    struct metrics_family *g;
    char *text;
    (void)state;
    assert_int_equal(metrics_registry_new(&r), 0);
    assert_int_equal(metrics_family_new(&g, r, METRICS_GAUGE, "g", "", NULL, NULL, 0), 0);
    assert_int_equal(metrics_collector_add(r, collect_fn, g), 0);
    text = render(r);
    assert_non_null(strstr(text, "\ng 1\n"));
    free(text);
    text = render(r);
    assert_non_null(strstr(text, "\ng 2\n"));
    free(text);
    metrics_collector_remove(r, collect_fn, g);
    text = render(r);
    assert_non_null(strstr(text, "\ng 2\n"));
    free(text);
    metrics_registry_free(r);
}

static void test_render_limit(void **state)
{
    struct metrics_registry *r = NULL;
    struct metrics_family *g;
    struct cap_buf b = CAP_BUF_INIT(16);
    (void)state;
    assert_int_equal(metrics_registry_new(&r), 0);
    assert_int_equal(
        metrics_family_new(&g, r, METRICS_GAUGE, "a_long_gauge_name", "help", NULL, NULL, 0), 0);
    assert_int_equal(metrics_render(r, &b), CAP_ETOOBIG);
    cap_buf_free(&b);
    metrics_registry_free(r);
}

static void test_kube_verbs(void **state)
{
    static const struct {
        const char *method, *path, *ctype, *verb;
    } cases[] = {
        {"GET", "/apis/cluster.x-k8s.io/v1beta2/namespaces/tenant-a/clusters", NULL, "list"},
        {"GET", "/apis/cluster.x-k8s.io/v1beta2/namespaces/tenant-a/clusters/a-dev", NULL, "get"},
        {"GET", "/apis/cluster.x-k8s.io/v1beta2/clusters?labelSelector=x", NULL, "list"},
        {"GET", "/apis/cluster.x-k8s.io/v1beta2/namespaces/t/clusters?watch=1&resourceVersion=5",
         NULL, "watch"},
        {"GET", "/apis/cluster.x-k8s.io/v1beta2/clusters?watch=true", NULL, "watch"},
        {"GET", "/apis/cluster.x-k8s.io/v1beta2/clusters?watch=0", NULL, "list"},
        {"GET", "/api/v1/watch/namespaces/t/secrets", NULL, "watch"},
        {"GET", "/api/v1/namespaces/tenant-a/secrets/a-dev-kubeconfig", NULL, "get"},
        {"GET", "/api/v1/namespaces", NULL, "list"},
        {"GET", "/api/v1/namespaces/tenant-a", NULL, "get"},
        {"GET", "/api/v1/namespaces/tenant-a/status", NULL, "get"},
        {"GET", "/version", NULL, "get"},
        {"PATCH",
         "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/flux-system/kustomizations/"
         "tenants?fieldManager=capstan",
         "application/merge-patch+json", "patch"},
        {"PATCH", "/api/v1/namespaces/x/configmaps/y?fieldManager=capstan&force=true",
         "application/apply-patch+yaml", "apply"},
        {"POST", "/api/v1/namespaces/x/configmaps", "application/json", "create"},
        {"PUT", "/api/v1/namespaces/x/configmaps/y", "application/json", "update"},
        {"DELETE", "/api/v1/namespaces/x/configmaps/y", NULL, "delete"},
        {"DELETE", "/api/v1/namespaces/x/configmaps", NULL, "deletecollection"},
        {"TRACE", "/api/v1/namespaces", NULL, "other"},
        {NULL, "/api", NULL, "other"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *got = metrics_kube_verb(cases[i].method, cases[i].path, cases[i].ctype);
        if (strcmp(got, cases[i].verb) != 0)
            fail_msg("%s %s: want %s, got %s", cases[i].method, cases[i].path, cases[i].verb, got);
    }
}

static void test_catalog(void **state)
{
    const struct metrics_catalog *c = metrics_catalog();
    char *text;
    (void)state;
    assert_string_equal(metrics_http_method("GET"), "GET");
    assert_string_equal(metrics_http_method("BREW"), "other");
    assert_string_equal(metrics_http_method(NULL), "other");
    metrics_http_request("tenants.get", "GET", 200, 0.002);
    metrics_http_request(NULL, "FOO", 404, 0.0001);
    metrics_job_finished("tenant.create", "succeeded");
    metrics_job_step("tenant.create", "render", false, 0.01);
    metrics_git_push("pushed", 0.2);
    metrics_kube_call("GET", "/api/v1/namespaces/t/secrets/x", NULL, 404);
    metrics_kube_call("GET", "/api/v1/namespaces/t/secrets/x", NULL, 0);
    assert_non_null(c->http_requests);
    text = render(metrics_global());
    assert_non_null(strstr(text, "capstan_http_requests_total{route=\"tenants.get\",method=\"GET\","
                                 "status=\"200\"} 1\n"));
    assert_non_null(strstr(text, "capstan_http_requests_total{route=\"unmatched\",method=\"other\","
                                 "status=\"404\"} 1\n"));
    assert_non_null(strstr(
        text, "capstan_jobs_finished_total{kind=\"tenant.create\",state=\"succeeded\"} 1\n"));
    /* known combinations are there from the start */
    assert_non_null(strstr(
        text, "capstan_jobs_finished_total{kind=\"environment.expire\",state=\"failed\"} 0\n"));
    assert_non_null(strstr(
        text, "capstan_job_step_failures_total{kind=\"tenant.create\",step=\"render\"} 1\n"));
    assert_non_null(
        strstr(text, "capstan_git_push_duration_seconds_count{outcome=\"pushed\"} 1\n"));
    assert_non_null(strstr(text, "capstan_git_push_duration_seconds_count{outcome=\"error\"} 0\n"));
    assert_non_null(strstr(text, "capstan_kube_requests_total{verb=\"get\",code=\"404\"} 1\n"));
    assert_non_null(strstr(text, "capstan_kube_requests_total{verb=\"get\",code=\"error\"} 1\n"));
    assert_non_null(strstr(text, "capstan_build_info{version=\"" CAPSTAN_VERSION "\"} 1\n"));
    assert_non_null(strstr(text, "\nprocess_resident_memory_bytes "));
    assert_non_null(strstr(text, "\nprocess_open_fds "));
    free(text);
}

/* Not an assertion of speed (machines differ), a measurement printed for the record: what the
 * HTTP completion hook costs per request. */
static void test_hook_cost(void **state)
{
    (void)state;
    double t0 = metrics_now();
    for (int i = 0; i < 200000; i++)
        metrics_http_request("jobs.get", "GET", 200, 0.001);
    double per = (metrics_now() - t0) / 200000 * 1e9;
    printf("metrics_http_request: %.0f ns per call\n", per);
    assert_true(per < 100000); /* 0.1 ms: something is badly wrong beyond this */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_declare_checks),
        cmocka_unit_test(test_exposition),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_series_limit),
        cmocka_unit_test(test_concurrent_updates),
        cmocka_unit_test(test_collectors),
        cmocka_unit_test(test_render_limit),
        cmocka_unit_test(test_kube_verbs),
        cmocka_unit_test(test_catalog),
        cmocka_unit_test(test_hook_cost),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
