/* capstan: a small Kubernetes API client (libcurl + jansson + libyaml).
 *
 * What it does: reads a kubeconfig or the in-cluster service account into a kube_config,
 * then GET, LIST, server-side apply, merge patch, DELETE and WATCH against the API server,
 * each call with a deadline. See server/kube/README.md for the retry, token rotation and
 * watch protocols.
 *
 * Invariants:
 *   - a kubeconfig is outside input: every field is validated and bounded; exec and
 *     auth-provider plugins, basic auth, impersonation, proxies and tls-server-name are
 *     refused; insecure-skip-tls-verify and http:// servers only when the caller allows them;
 *   - tokens, client keys and kubeconfig contents never appear in logs or error messages
 *     (tokens are also registered with log_add_secret);
 *   - only https (or http when allowed) is spoken, no redirects are followed, no proxy from
 *     the environment is used, and every response is validated (status, content type, JSON
 *     shape, size) before a caller sees it.
 *
 * Errors (negative CAP_* codes, message in the thread's last error, see util/error.h):
 *   API Status 400 -> CAP_EMALFORMED, 422 -> CAP_EINVALID, 401 -> CAP_EUNAUTHORIZED,
 *   403 -> CAP_EFORBIDDEN, 404 -> CAP_ENOTFOUND, 405 -> CAP_EMETHOD,
 *   409 (Conflict, AlreadyExists) -> CAP_ECONFLICT, 410 (Expired/Gone) -> CAP_EPRECONDITION,
 *   413 -> CAP_ETOOBIG, 415 -> CAP_EMEDIATYPE, 429 after the bounded retries -> CAP_ERATELIMIT,
 *   5xx and connection failures -> CAP_EUNAVAILABLE, a deadline passed -> CAP_ETIMEOUT,
 *   an invalid answer -> CAP_EUNAVAILABLE. kube_error_retryable() tells which are worth
 *   retrying later. */
#ifndef CAPSTAN_KUBE_KUBE_H
#define CAPSTAN_KUBE_KUBE_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

/* Limits on outside input. */
#define KUBE_CONFIG_MAX_BYTES  (1024u * 1024u) /* a kubeconfig file */
#define KUBE_PEM_MAX_BYTES     (256u * 1024u)  /* a CA bundle, client certificate or key */
#define KUBE_TOKEN_MAX_BYTES   (16u * 1024u)   /* a bearer token */
#define KUBE_SERVER_MAX_BYTES  2048u           /* a server URL */
#define KUBE_PATH_MAX          1024u           /* a resource path from kube_path */
#define KUBE_DEFAULT_FIELD_MGR "capstan"
#define KUBE_SA_DIR            "/var/run/secrets/kubernetes.io/serviceaccount"

/* ---- configuration ------------------------------------------------------------------- */

/* Where to connect and how to authenticate; all members owned, freed by kube_config_free.
 * ca/cert/key hold PEM bytes (not NUL-terminated; key bytes are wiped when freed). */
struct kube_config {
    char *server;      /* "https://host:port[/prefix]" without a trailing slash */
    char *context;     /* the context used (NULL in-cluster) */
    char *ns;          /* the context's namespace, or the service account's; "default" if none */
    unsigned char *ca; /* CA bundle to trust; NULL: the system's trust store */
    size_t ca_len;
    unsigned char *cert; /* client certificate (PEM); NULL: none */
    size_t cert_len;
    unsigned char *key; /* client key (PEM); NULL: none */
    size_t key_len;
    char *token;      /* static bearer token; NULL: none */
    char *token_file; /* bearer token file, re-read when it changes (wins over token) */
    bool insecure;    /* skip TLS verification (only when the loader was allowed to) */
};

struct kube_config_options {
    const char *context;  /* NULL: the kubeconfig's current-context */
    const char *base_dir; /* relative file paths are read from here; NULL: the current folder */
    bool allow_insecure;  /* accept insecure-skip-tls-verify: true (otherwise refused) */
    bool allow_http;      /* accept http:// servers (otherwise only https://) */
};

/* Parses kubeconfig text (YAML or JSON) and reads the files it names (relative to
 * opt->base_dir). *out is the caller's to free with kube_config_free. opt may be NULL.
 * Errors: CAP_EMALFORMED (not YAML), CAP_EINVALID (a missing or bad field; the field is set
 * as a path such as "users[0].user.exec"), CAP_ETOOBIG, CAP_ENOTFOUND (a named file is
 * missing). Messages never contain credential values. Thread-safe. */
int kube_config_parse(struct kube_config **out, const char *text, size_t len,
                      const struct kube_config_options *opt);

/* Reads the kubeconfig file at path (at most KUBE_CONFIG_MAX_BYTES) and parses it, with
 * relative paths taken from the file's folder unless opt->base_dir says otherwise. */
int kube_config_load_file(struct kube_config **out, const char *path,
                          const struct kube_config_options *opt);

/* In-cluster configuration; every member may be NULL for the documented default. */
struct kube_incluster_options {
    const char *host;   /* default: $KUBERNETES_SERVICE_HOST */
    const char *port;   /* default: $KUBERNETES_SERVICE_PORT */
    const char *sa_dir; /* default: KUBE_SA_DIR (holds token, ca.crt, namespace) */
};

/* Builds a configuration from the pod's service account: server https://host:port, the CA
 * from ca.crt, the token file (re-read on rotation), the namespace file if present.
 * Errors: CAP_ENOTFOUND (not running in a cluster: no host or no token), CAP_EINVALID. */
int kube_config_in_cluster(struct kube_config **out, const struct kube_incluster_options *opt);

void kube_config_free(struct kube_config *cfg);

/* ---- client -------------------------------------------------------------------------- */

struct kube_options {
    long timeout_ms;           /* deadline of a call when the call passes 0; 0: 30000 */
    long connect_timeout_ms;   /* TCP + TLS connect; 0: 10000 */
    size_t max_response;       /* largest response body; 0: 16 MiB */
    long retry_after_max_ms;   /* longest wait a 429's Retry-After may ask for; 0: 10000 */
    int max_retries;           /* 429 retries per call; 0: 5; -1: none */
    long token_reread_ms;      /* re-read the token file at least this often; 0: 60000 */
    const char *field_manager; /* for apply and patch; NULL: "capstan" (copied) */
    const char *user_agent;    /* NULL: "capstan/<version>" (copied) */
};

struct kube_client;

/* Makes a client for cfg (copied: cfg may be freed afterwards). opt may be NULL.
 * Reads the token file once, so a missing token file fails here (CAP_ENOTFOUND).
 * The client may be used from several threads at once; each call uses its own curl handle
 * from a pool (connections are kept per handle; DNS and TLS sessions are shared).
 * Free with kube_client_free once no call is running. */
int kube_client_new(struct kube_client **out, const struct kube_config *cfg,
                    const struct kube_options *opt);
void kube_client_free(struct kube_client *c);

/* The namespace of the configuration (borrowed, valid for the client's life). */
const char *kube_client_namespace(const struct kube_client *c);

/* Builds an API path: api_version "v1" gives /api/v1, "group/version" gives
 * /apis/group/version; then /namespaces/<ns> when ns is not NULL or "", then /<resource>,
 * then /<name> when name is not NULL or "". Every part is validated (DNS-1123 names, at most
 * 253 characters). Errors: CAP_EINVALID, CAP_ETOOBIG (does not fit size). */
int kube_path(char *buf, size_t size, const char *api_version, const char *resource, const char *ns,
              const char *name);

/* GET path; *out (new reference) is the object. timeout_ms 0: the client's default. */
int kube_get(json_t **out, struct kube_client *c, const char *path, long timeout_ms);

struct kube_list_options {
    const char *label_selector; /* NULL: all */
    const char *field_selector; /* NULL: all */
    long limit;                 /* 0: no limit */
    const char *continue_token; /* from a previous page's metadata.continue */
    long timeout_ms;            /* 0: the client's default */
};

/* LIST the collection at path; *out is the List (new reference) with "items" an array and
 * metadata.resourceVersion a string. opt may be NULL. An expired continue token gives
 * CAP_EPRECONDITION (start the list again). */
int kube_list(json_t **out, struct kube_client *c, const char *path,
              const struct kube_list_options *opt);

/* Server-side apply of obj (an object with apiVersion, kind and metadata.name) at the
 * object's path (PATCH, application/apply-patch+yaml, fieldManager from the options,
 * force as given). Creates or updates; *out (may be NULL) is the object after the apply.
 * A field owned by another manager gives CAP_ECONFLICT unless force. */
int kube_apply(json_t **out, struct kube_client *c, const char *path, const json_t *obj, bool force,
               long timeout_ms);

/* Like kube_apply with the object given as one YAML (or JSON) document. */
int kube_apply_yaml(json_t **out, struct kube_client *c, const char *path, const char *yaml,
                    size_t len, bool force, long timeout_ms);

/* JSON merge patch (RFC 7386, application/merge-patch+json) of the object at path, e.g. to
 * set an annotation. *out (may be NULL) is the object after the patch. */
int kube_merge_patch(json_t **out, struct kube_client *c, const char *path, const json_t *patch,
                     long timeout_ms);

/* DELETE the object at path with propagationPolicy ("Foreground", "Background", "Orphan" or
 * NULL for the server's default). *out (may be NULL) is what the server answered (the object,
 * or a Status). Deleting an object that is already gone gives CAP_ENOTFOUND. */
int kube_delete(json_t **out, struct kube_client *c, const char *path, const char *propagation,
                long timeout_ms);

/* ---- watch --------------------------------------------------------------------------- */

enum kube_event_type {
    KUBE_EVENT_LIST, /* object is a whole List (the first state, and after each relist) */
    KUBE_EVENT_ADDED,
    KUBE_EVENT_MODIFIED,
    KUBE_EVENT_DELETED,
    KUBE_EVENT_BOOKMARK, /* object only carries metadata.resourceVersion */
};

/* Called for each event, on the calling thread of kube_watch, from inside the transfer:
 * it should only look at the object (borrowed, valid during the call) and decide; make other
 * calls of the client after kube_watch returns (end the watch with KUBE_WATCH_STOP).
 * Return 0 to go on, KUBE_WATCH_STOP to end the watch with success, or a negative CAP_*
 * code (with the last error set) to end it with that error. */
#define KUBE_WATCH_STOP 1
typedef int (*kube_watch_fn)(void *ud, enum kube_event_type type, const json_t *object);

struct kube_watch_options {
    const char *label_selector;
    const char *field_selector;
    const char *resource_version; /* start after this version; NULL: LIST first */
    long timeout_ms;              /* overall deadline of the watch; 0: the client's default */
    const atomic_int *stop;       /* when it becomes non-zero the watch ends (CAP_ERETRY);
                                     noticed within a second; may be NULL */
    long reconnect_min_ms;        /* first pause before reconnecting; 0: 100 */
    long reconnect_max_ms;        /* longest pause; 0: 5000 */
};

/* Statistics of a watch, for tests and logs. */
struct kube_watch_stats {
    int connects;              /* watch requests made */
    int relists;               /* LISTs made after a 410 */
    int bookmarks;             /* BOOKMARK events seen */
    char resource_version[64]; /* the last resourceVersion seen */
};

/* Watches the collection at path: unless opt->resource_version is set it first LISTs and
 * hands the List to cb (KUBE_EVENT_LIST), then watches from the list's resourceVersion with
 * bookmarks. On a dropped connection or a 5xx it reconnects from the last resourceVersion
 * seen (with a growing pause); on 410 Gone (as a status or as an ERROR event) it LISTs again,
 * hands the new List to cb, and goes on from there. Ends when cb returns KUBE_WATCH_STOP
 * (returns 0), when cb returns an error (that error), at the deadline (CAP_ETIMEOUT), when
 * *opt->stop is set (CAP_ERETRY), or on an error a reconnect cannot fix (401 after a token
 * re-read, 403, 404...). stats may be NULL. */
int kube_watch(struct kube_client *c, const char *path, const struct kube_watch_options *opt,
               kube_watch_fn cb, void *ud, struct kube_watch_stats *stats);

/* ---- errors -------------------------------------------------------------------------- */

/* The parts of a Kubernetes Status body. */
struct kube_status {
    int code;           /* the HTTP code in the Status, or the response's */
    char reason[64];    /* "NotFound", "Conflict", ... or "" */
    char message[256];  /* the server's message, control characters removed, or "" */
    long retry_after_s; /* details.retryAfterSeconds, or 0 */
};

/* Reads a Status from an error response (http_status, body of len bytes; body may be
 * NULL or not a Status). Always fills *out (defaults from http_status) and returns the
 * CAP_* code for it, setting the last error to "kubernetes api: <message>" (or a generic
 * text when the body is not a Status). */
int kube_status_error(struct kube_status *out, long http_status, const char *body, size_t len);

/* True for the codes a caller may retry later: CAP_EUNAVAILABLE, CAP_ETIMEOUT,
 * CAP_ERATELIMIT, CAP_ERETRY. */
bool kube_error_retryable(int code);

#endif
