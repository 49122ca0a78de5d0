/* Unit tests of tenant and environment validation (server/model/model.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <string.h>

#include "model/model.h"
#include "util/error.h"

static json_t *parse(const char *text)
{
    json_error_t e;
    json_t *v = json_loads(text, 0, &e);
    assert_non_null(v);
    return v;
}

/* True if errors names field. */
static bool has_field(const json_t *errors, const char *field)
{
    size_t i;
    json_t *e;
    json_array_foreach(errors, i, e) if (strcmp(json_string_value(json_object_get(e, "field")),
                                                field) == 0) return true;
    return false;
}

static const char *good_tenant =
    "{\"name\":\"team-a\",\"displayName\":\"Team A\","
    "\"owners\":[\"alice@example.com\"],"
    "\"quota\":{\"cpu\":\"16\",\"memory\":\"64Gi\",\"environments\":5}}";

static void test_tenant_defaults(void **state)
{
    json_t *in = parse(good_tenant), *errors = json_array(), *out = NULL;
    (void)state;
    assert_int_equal(model_tenant_create(&out, in, errors), 0);
    assert_string_equal(json_string_value(json_object_get(out, "isolation")), "vcluster");
    assert_string_equal(json_string_value(json_object_get(out, "provider")), "vcluster");
    assert_null(json_object_get(out, "region"));
    assert_true(json_is_object(json_object_get(out, "labels")));
    assert_int_equal(json_array_size(errors), 0);
    json_decref(in);
    json_decref(out);
    json_decref(errors);
}

static void test_tenant_every_error(void **state)
{
    json_t *in = parse("{\"name\":\"-x\",\"owners\":\"a\",\"isolation\":\"x\",\"quota\":{\"cpu\":"
                       "\"0\",\"memory\":\"1Q\",\"environments\":1.5,\"gpu\":1},"
                       "\"labels\":{\"capstan.io/x\":\"y\"},\"generation\":3}");
    json_t *errors = json_array(), *out = NULL;
    (void)state;
    assert_int_equal(model_tenant_create(&out, in, errors), CAP_EINVALID);
    assert_null(out);
    const char *fields[] = {
        "name",         "displayName",        "owners",    "isolation",           "quota.cpu",
        "quota.memory", "quota.environments", "quota.gpu", "labels.capstan.io/x", "generation"};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        if (!has_field(errors, fields[i]))
            fail_msg("no error for %s", fields[i]);
    }
    json_decref(in);
    json_decref(errors);
}

static void test_null_means_absent(void **state)
{
    json_t *errors = json_array(), *out = NULL;
    json_t *in = parse("{\"name\":\"t\",\"displayName\":\"T\",\"owners\":[\"a@b.io\"],"
                       "\"isolation\":\"dedicated\",\"provider\":\"gcp\",\"region\":null,"
                       "\"quota\":{\"cpu\":\"1\",\"memory\":\"1Gi\",\"environments\":1}}");
    struct model_defaults d = {"v1.30.4"};
    (void)state;
    assert_int_equal(model_tenant_create(&out, in, errors), CAP_EINVALID);
    assert_true(has_field(errors, "region"));
    json_decref(in);
    json_array_clear(errors);
    /* a null version takes the default, and a 422 always names a field */
    json_t *vc = parse("{\"name\":\"t\",\"provider\":\"vcluster\"}");
    in = parse("{\"name\":\"dev\",\"kubernetesVersion\":null}");
    assert_int_equal(model_env_create(&out, in, vc, &d, errors), 0);
    assert_string_equal(json_string_value(json_object_get(out, "kubernetesVersion")), "v1.30.4");
    json_decref(out);
    assert_int_equal(model_env_create(&out, in, vc, NULL, errors), CAP_EINVALID);
    assert_true(has_field(errors, "kubernetesVersion"));
    json_decref(in);
    json_decref(vc);
    json_decref(errors);
}

static void test_tenant_patch_immutable(void **state)
{
    json_t *in = parse(good_tenant), *errors = json_array(), *spec = NULL, *out = NULL;
    json_t *patch = parse("{\"provider\":\"gcp\",\"displayName\":\"New\"}");
    (void)state;
    assert_int_equal(model_tenant_create(&spec, in, errors), 0);
    assert_int_equal(model_tenant_patch(&out, spec, patch, errors), CAP_EINVALID);
    assert_true(has_field(errors, "provider"));
    json_decref(patch);
    json_array_clear(errors);
    patch = parse("{\"displayName\":\"New\",\"labels\":{\"a\":\"b\"},\"name\":\"team-a\"}");
    assert_int_equal(model_tenant_patch(&out, spec, patch, errors), 0);
    assert_string_equal(json_string_value(json_object_get(out, "displayName")), "New");
    assert_string_equal(json_string_value(json_object_get(json_object_get(out, "labels"), "a")),
                        "b");
    json_decref(out);
    json_decref(patch);
    json_decref(spec);
    json_decref(in);
    json_decref(errors);
}

static void test_merge_patch(void **state)
{
    json_t *target = parse("{\"a\":\"b\",\"c\":{\"d\":\"e\",\"f\":\"g\"}}");
    json_t *patch = parse("{\"a\":\"z\",\"c\":{\"f\":null}}");
    json_t *want = parse("{\"a\":\"z\",\"c\":{\"d\":\"e\"}}");
    (void)state;
    json_t *got = model_merge_patch(target, patch);
    assert_true(json_equal(got, want));
    json_decref(got);
    json_decref(target);
    json_decref(patch);
    json_decref(want);
}

static void test_env_rules(void **state)
{
    json_t *vc = parse("{\"name\":\"t\",\"provider\":\"vcluster\"}");
    json_t *aws = parse("{\"name\":\"t\",\"provider\":\"aws\"}");
    struct model_defaults d = {"v1.30.4"};
    json_t *errors = json_array(), *out = NULL, *in;
    (void)state;

    in = parse("{\"name\":\"dev\"}");
    assert_int_equal(model_env_create(&out, in, vc, &d, errors), 0);
    assert_string_equal(json_string_value(json_object_get(out, "kubernetesVersion")), "v1.30.4");
    assert_string_equal(json_string_value(json_object_get(out, "type")), "permanent");
    assert_null(json_object_get(out, "workers"));
    json_decref(out);
    json_decref(in);

    in = parse("{\"name\":\"dev\",\"workers\":{\"replicas\":2}}");
    assert_int_equal(model_env_create(&out, in, vc, &d, errors), CAP_EINVALID);
    assert_true(has_field(errors, "workers"));
    json_decref(in);
    json_array_clear(errors);

    in = parse("{\"name\":\"pr-1\",\"type\":\"ephemeral\",\"ttl\":\"72h\"}");
    assert_int_equal(model_env_create(&out, in, aws, &d, errors), 0);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(out, "controlPlane"), "replicas")), 1);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(out, "workers"), "machineType")),
        "t3.xlarge");
    json_t *spec = out;
    json_decref(in);

    /* upgrade yes, downgrade no, skipping a minor no */
    json_t *p = parse("{\"kubernetesVersion\":\"v1.31.0\"}");
    assert_int_equal(model_env_patch(&out, spec, p, aws, errors), 0);
    json_decref(out);
    json_decref(p);
    p = parse("{\"kubernetesVersion\":\"v1.29.0\"}");
    assert_int_equal(model_env_patch(&out, spec, p, aws, errors), CAP_EINVALID);
    json_decref(p);
    p = parse("{\"kubernetesVersion\":\"v1.32.0\"}");
    assert_int_equal(model_env_patch(&out, spec, p, aws, errors), CAP_EINVALID);
    json_decref(p);
    p = parse("{\"ttl\":\"1h\"}");
    assert_int_equal(model_env_patch(&out, spec, p, aws, errors), CAP_EINVALID);
    json_decref(p);

    json_decref(spec);
    json_decref(vc);
    json_decref(aws);
    json_decref(errors);
}

static void test_ttl_and_extend(void **state)
{
    json_t *errors = json_array(), *in;
    long long ms = 0;
    (void)state;
    in = parse("{\"ttl\":\"24h\"}");
    assert_int_equal(model_env_extend(&ms, in, errors), 0);
    assert_int_equal(ms, 24LL * 3600 * 1000);
    json_decref(in);
    static const char *bad[] = {
        "{\"ttl\":\"59m\"}",       "{\"ttl\":\"721h\"}", "{\"ttl\":3}", "{\"ttl\":\"1d\"}", "{}",
        "{\"ttl\":\"1h\",\"x\":1}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        in = parse(bad[i]);
        assert_int_equal(model_env_extend(&ms, in, errors), CAP_EINVALID);
        json_decref(in);
    }
    json_decref(errors);
}

static void test_labels_and_versions(void **state)
{
    (void)state;
    assert_true(model_is_label_key("app"));
    assert_true(model_is_label_key("example.com/app-name"));
    assert_false(model_is_label_key("Example.com/app"));
    assert_false(model_is_label_key("/app"));
    assert_false(model_is_label_key("app/"));
    assert_false(model_is_label_key("a b"));
    assert_true(model_is_label_value(""));
    assert_true(model_is_label_value("v1.2_3-x"));
    assert_false(model_is_label_value("-x"));
    assert_true(model_version_cmp("v1.30.4", "v1.30.10") < 0);
    assert_true(model_version_cmp("v1.31.0", "v1.30.10") > 0);
    assert_int_equal(model_version_cmp("v1.30.4", "v1.30.4"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tenant_defaults),        cmocka_unit_test(test_tenant_every_error),
        cmocka_unit_test(test_tenant_patch_immutable), cmocka_unit_test(test_merge_patch),
        cmocka_unit_test(test_null_means_absent),      cmocka_unit_test(test_env_rules),
        cmocka_unit_test(test_ttl_and_extend),         cmocka_unit_test(test_labels_and_versions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
