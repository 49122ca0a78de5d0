/* capstan: the Kubernetes verbs (GET, LIST, apply, merge patch, DELETE) and resource paths.
 *
 * Each verb builds a path with its query, hands one request to kube_do (retries, Status
 * errors, size and content checks live there) and checks the shape of what came back. */
#include "kube/internal.h"

#include "util/error.h"
#include "util/json.h"
#include "util/str.h"
#include "util/yaml.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define APPLY_MAX_DEPTH 64

static bool is_lower_alnum(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');
}

/* DNS-1123 subdomain: dot-separated labels of [a-z0-9-], at most 253 characters. */
static bool is_dns_subdomain(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 253 || !is_lower_alnum(s[0]) || !is_lower_alnum(s[n - 1]))
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!is_lower_alnum(s[i]) && s[i] != '-' && s[i] != '.')
            return false;
        if (s[i] == '.' && (!is_lower_alnum(s[i - 1]) || !is_lower_alnum(s[i + 1])))
            return false;
    }
    return true;
}

/* An object name as a path segment: 1..253 of [A-Za-z0-9._:-], not "." or "..". */
static bool is_object_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 253 || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == ':' || ch == '-'))
            return false;
    }
    return true;
}

int kube_path(char *buf, size_t size, const char *api_version, const char *resource, const char *ns,
              const char *name)
{
    const char *slash;
    int n;

    if (size > 0)
        buf[0] = '\0';
    if (!api_version || !*api_version)
        return cap_error_set_field(CAP_EINVALID, "apiVersion", "the apiVersion is empty");
    slash = strchr(api_version, '/');
    if (slash) {
        char group[254];
        size_t glen = (size_t)(slash - api_version);
        if (glen == 0 || glen >= sizeof(group))
            return cap_error_set_field(CAP_EINVALID, "apiVersion",
                                       "\"%.80s\" is not a valid apiVersion", api_version);
        memcpy(group, api_version, glen);
        group[glen] = '\0';
        if (!is_dns_subdomain(group) || !cap_is_dns_label(slash + 1, 63))
            return cap_error_set_field(CAP_EINVALID, "apiVersion",
                                       "\"%.80s\" is not a valid apiVersion", api_version);
    } else if (!cap_is_dns_label(api_version, 63)) {
        return cap_error_set_field(CAP_EINVALID, "apiVersion",
                                   "\"%.80s\" is not a valid apiVersion", api_version);
    }
    if (!resource || !cap_is_dns_label(resource, 63))
        return cap_error_set_field(CAP_EINVALID, "resource", "\"%.80s\" is not a valid resource",
                                   resource ? resource : "");
    if (ns && *ns && !cap_is_dns_label(ns, 63))
        return cap_error_set_field(CAP_EINVALID, "namespace", "\"%.80s\" is not a valid namespace",
                                   ns);
    if (name && *name && !is_object_name(name))
        return cap_error_set_field(CAP_EINVALID, "name", "\"%.80s\" is not a valid name", name);
    n = snprintf(buf, size, "/%s/%s%s%s/%s%s%s", slash ? "apis" : "api", api_version,
                 ns && *ns ? "/namespaces/" : "", ns && *ns ? ns : "", resource,
                 name && *name ? "/" : "", name && *name ? name : "");
    if (n < 0 || (size_t)n >= size) {
        if (size > 0)
            buf[0] = '\0';
        return cap_error_set(CAP_ETOOBIG, "the resource path is longer than %zu bytes", size);
    }
    return 0;
}

int kube_query_add(char *buf, size_t size, const char *name, const char *value)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t len = strlen(buf);
    char sep = strchr(buf, '?') ? '&' : '?';
    size_t need = len + 1 + strlen(name) + 1;

    if (need >= size)
        goto too_long;
    buf[len++] = sep;
    memcpy(buf + len, name, strlen(name));
    len += strlen(name);
    buf[len++] = '=';
    for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
        bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                     (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' || *p == '~';
        if (len + (plain ? 1 : 3) >= size)
            goto too_long;
        if (plain) {
            buf[len++] = (char)*p;
        } else {
            buf[len++] = '%';
            buf[len++] = hex[*p >> 4];
            buf[len++] = hex[*p & 15];
        }
    }
    buf[len] = '\0';
    return 0;

too_long:
    return cap_error_set(CAP_ETOOBIG, "the request path with its query is too long");
}

static int check_path(const char *path)
{
    if (!path || path[0] != '/' || strlen(path) >= KUBE_PATH_MAX)
        return cap_error_set(CAP_EINVALID, "\"%.80s\" is not a kubernetes api path",
                             path ? path : "");
    if (strchr(path, '?') || strchr(path, '#') || strstr(path, "/.."))
        return cap_error_set(CAP_EINVALID, "\"%.80s\" is not a kubernetes api path", path);
    for (const char *p = path; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
            return cap_error_set(CAP_EINVALID, "the kubernetes api path holds white space");
    return 0;
}

int kube_get(json_t **out, struct kube_client *c, const char *path, long timeout_ms)
{
    struct kube_request req = {"GET", path, NULL, NULL, 0, timeout_ms};
    int rc;

    *out = NULL;
    if ((rc = check_path(path)))
        return rc;
    return kube_do(out, c, &req);
}

int kube_list(json_t **out, struct kube_client *c, const char *path,
              const struct kube_list_options *opt)
{
    static const struct kube_list_options none = {0};
    char url[KUBE_PATH_MAX + 2048];
    struct kube_request req = {"GET", url, NULL, NULL, 0, 0};
    json_t *list = NULL;
    int rc;

    *out = NULL;
    if (!opt)
        opt = &none;
    if ((rc = check_path(path)))
        return rc;
    cap_strlcpy(url, path, sizeof(url));
    if (opt->label_selector && *opt->label_selector &&
        (rc = kube_query_add(url, sizeof(url), "labelSelector", opt->label_selector)))
        return rc;
    if (opt->field_selector && *opt->field_selector &&
        (rc = kube_query_add(url, sizeof(url), "fieldSelector", opt->field_selector)))
        return rc;
    if (opt->limit > 0) {
        char num[32];
        snprintf(num, sizeof(num), "%ld", opt->limit);
        if ((rc = kube_query_add(url, sizeof(url), "limit", num)))
            return rc;
    }
    if (opt->continue_token && *opt->continue_token &&
        (rc = kube_query_add(url, sizeof(url), "continue", opt->continue_token)))
        return rc;
    req.timeout_ms = opt->timeout_ms;
    if ((rc = kube_do(&list, c, &req)))
        return rc;
    if (!json_is_array(json_object_get(list, "items")) ||
        !json_is_object(json_object_get(list, "metadata")) ||
        !cap_json_get_str(json_object_get(list, "metadata"), "resourceVersion")) {
        json_decref(list);
        return cap_error_set(CAP_EUNAVAILABLE,
                             "kubernetes api answered a list without items or resourceVersion");
    }
    *out = list;
    return 0;
}

/* Checks that an object to apply names the object at path. */
static int check_apply_object(const json_t *obj, const char *path)
{
    const json_t *meta = json_object_get(obj, "metadata");
    const char *name = cap_json_get_str(meta, "name");
    const char *last = strrchr(path, '/');

    if (!json_is_object(obj))
        return cap_error_set(CAP_EINVALID, "the object to apply must be a mapping");
    if (!cap_json_get_str(obj, "apiVersion") || !cap_json_get_str(obj, "kind"))
        return cap_error_set(CAP_EINVALID, "the object to apply needs apiVersion and kind");
    if (!name || !last || strcmp(last + 1, name) != 0)
        return cap_error_set(CAP_EINVALID,
                             "the object's metadata.name does not match the path \"%.80s\"", path);
    return 0;
}

/* PATCH path?fieldManager=<ours>[&force=<force>] (force may be NULL) with doc as compact JSON
 * of the given content type. path is checked by the caller. */
static int patch_as_manager(json_t **out, struct kube_client *c, const char *path,
                            const char *force, const char *content_type, const json_t *doc,
                            long timeout_ms)
{
    char url[KUBE_PATH_MAX + 128];
    struct kube_request req = {"PATCH", url, content_type, NULL, 0, timeout_ms};
    char *body = NULL;
    int rc;

    cap_strlcpy(url, path, sizeof(url));
    if ((rc = kube_query_add(url, sizeof(url), "fieldManager", kube_client_field_manager(c))) ||
        (force && (rc = kube_query_add(url, sizeof(url), "force", force))))
        return rc;
    body = cap_json_dump(doc);
    if (!body)
        return cap_error_set(CAP_ERROR, "out of memory");
    req.body = body;
    req.body_len = strlen(body);
    rc = kube_do(out, c, &req);
    free(body);
    return rc;
}

int kube_apply(json_t **out, struct kube_client *c, const char *path, const json_t *obj, bool force,
               long timeout_ms)
{
    int rc;

    if (out)
        *out = NULL;
    if ((rc = check_path(path)) || (rc = check_apply_object(obj, path)))
        return rc;
    /* JSON is YAML: the object goes as compact JSON, which every apiserver reads. */
    return patch_as_manager(out, c, path, force ? "true" : "false", "application/apply-patch+yaml",
                            obj, timeout_ms);
}

int kube_apply_yaml(json_t **out, struct kube_client *c, const char *path, const char *yaml,
                    size_t len, bool force, long timeout_ms)
{
    json_t *obj = NULL;
    int rc;

    if (out)
        *out = NULL;
    rc = cap_yaml_to_json(&obj, yaml, len, APPLY_MAX_DEPTH);
    if (rc)
        return cap_error_wrap("the object to apply is not valid YAML");
    rc = kube_apply(out, c, path, obj, force, timeout_ms);
    json_decref(obj);
    return rc;
}

int kube_merge_patch(json_t **out, struct kube_client *c, const char *path, const json_t *patch,
                     long timeout_ms)
{
    int rc;

    if (out)
        *out = NULL;
    if ((rc = check_path(path)))
        return rc;
    if (!json_is_object(patch))
        return cap_error_set(CAP_EINVALID, "a merge patch must be a mapping");
    return patch_as_manager(out, c, path, NULL, "application/merge-patch+json", patch, timeout_ms);
}

int kube_delete(json_t **out, struct kube_client *c, const char *path, const char *propagation,
                long timeout_ms)
{
    char url[KUBE_PATH_MAX + 128];
    struct kube_request req = {"DELETE", url, NULL, NULL, 0, timeout_ms};
    int rc;

    if (out)
        *out = NULL;
    if ((rc = check_path(path)))
        return rc;
    cap_strlcpy(url, path, sizeof(url));
    if (propagation) {
        if (strcmp(propagation, "Foreground") != 0 && strcmp(propagation, "Background") != 0 &&
            strcmp(propagation, "Orphan") != 0)
            return cap_error_set(CAP_EINVALID,
                                 "propagation must be Foreground, Background or Orphan");
        if ((rc = kube_query_add(url, sizeof(url), "propagationPolicy", propagation)))
            return rc;
    }
    return kube_do(out, c, &req);
}
