/* capstan: `capstan render`, which writes the fleet repository tree of one tenant and its
 * environments into a folder, exactly as the server would commit it (render_tree).
 *
 * Exit status: 0 written, 1 invalid input or a failed read/write (one line on stderr),
 * 2 usage error. The rendering settings come from the server's configuration table (main.c
 * loads them from flags and CAPSTAN_* variables), so the CLI renders exactly as the server. */
#include "render/render.h"

#include "util/buf.h"
#include "util/error.h"
#include "util/fs.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#define CLI_INPUT_MAX (1 << 20) /* largest tenant or environment JSON file */
#define CLI_PATH_MAX  4096

static void usage(FILE *out)
{
    fputs("usage: capstan render --tenant FILE [--environment FILE ...] --out DIR [options]\n\n"
          "Writes the fleet repository files of one tenant (API JSON) and its environments into\n"
          "DIR, as the server commits them. The rendering settings (--mgmt-cluster,\n"
          "--templates-dir, --gcp-project, ...) are the server's: see capstan --help.\n",
          out);
}

/* Reads a JSON file of at most CLI_INPUT_MAX bytes. */
static int read_json(json_t **out, const char *path)
{
    struct cap_buf b = CAP_BUF_INIT(CLI_INPUT_MAX);
    json_error_t jerr;
    char chunk[8192];
    size_t got;
    FILE *fp;
    int rc = 0;

    *out = NULL;
    if (!(fp = fopen(path, "rb")))
        return cap_error_set(CAP_EINVALID, "cannot open \"%s\": %s", path, strerror(errno));
    while ((got = fread(chunk, 1, sizeof(chunk), fp)) > 0) {
        if ((rc = cap_buf_append(&b, chunk, got)) != 0)
            break;
    }
    if (rc == CAP_ETOOBIG)
        rc = cap_error_set(CAP_EINVALID, "\"%s\" is larger than %d bytes", path, CLI_INPUT_MAX);
    else if (!rc && ferror(fp))
        rc = cap_error_set(CAP_EINVALID, "cannot read \"%s\"", path);
    fclose(fp);
    if (!rc) {
        *out = json_loadb(b.data ? b.data : "", b.len, JSON_REJECT_DUPLICATES, &jerr);
        if (!*out)
            rc = cap_error_set(CAP_EINVALID, "\"%s\" is not valid JSON: %s (line %d)", path,
                               jerr.text, jerr.line);
    }
    cap_buf_free(&b);
    return rc;
}

static int write_file(const char *dir, const struct render_file *f)
{
    char path[CLI_PATH_MAX];
    char *slash;
    FILE *fp;
    int rc;

    if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, f->path) >= sizeof(path))
        return cap_error_set(CAP_EINVALID, "output path is too long");
    slash = strrchr(path, '/');
    *slash = '\0';
    rc = cap_mkdirs(path, 0755);
    *slash = '/';
    if (rc)
        return rc;
    if (!(fp = fopen(path, "wb")))
        return cap_error_set(CAP_ERROR, "cannot write \"%s\": %s", path, strerror(errno));
    if (fwrite(f->content, 1, f->len, fp) != f->len) {
        fclose(fp);
        return cap_error_set(CAP_ERROR, "cannot write \"%s\": %s", path, strerror(errno));
    }
    if (fclose(fp) != 0)
        return cap_error_set(CAP_ERROR, "cannot write \"%s\": %s", path, strerror(errno));
    return 0;
}

int render_cli_main(int argc, char **argv, const struct render_options *opt)
{
    struct render_files files = {0};
    const char *tenant_path = NULL, *out_dir = NULL;
    const char *env_paths[RENDER_MAX_ENVIRONMENTS];
    json_t *tenant = NULL, *envs[RENDER_MAX_ENVIRONMENTS];
    size_t nenvs = 0, nloaded = 0;
    int status = 2;

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *val = NULL, *eq = strchr(arg, '=');
        size_t nlen = eq ? (size_t)(eq - arg) : strlen(arg);
        bool matched = false;

        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strncmp(arg, "--", 2) != 0) {
            fprintf(stderr,
                    "capstan render: unexpected argument \"%s\" (see capstan render "
                    "--help)\n",
                    arg);
            return 2;
        }
        if (eq) {
            val = eq + 1;
        } else if (i + 1 < argc) {
            val = argv[++i];
        } else {
            fprintf(stderr, "capstan render: %s needs a value\n", arg);
            return 2;
        }
#define IS(name) (strlen(name) == nlen && strncmp(arg, name, nlen) == 0)
        if (IS("--tenant")) {
            tenant_path = val;
            matched = true;
        } else if (IS("--out")) {
            out_dir = val;
            matched = true;
        } else if (IS("--environment")) {
            if (nenvs == RENDER_MAX_ENVIRONMENTS) {
                fprintf(stderr, "capstan render: more than %d environments\n",
                        RENDER_MAX_ENVIRONMENTS);
                return 2;
            }
            env_paths[nenvs++] = val;
            matched = true;
        }
#undef IS
        if (!matched) {
            fprintf(stderr,
                    "capstan render: unknown option \"%.*s\" (see capstan render "
                    "--help)\n",
                    (int)nlen, arg);
            return 2;
        }
    }
    if (!tenant_path || !out_dir || !*out_dir) {
        fprintf(stderr, "capstan render: --tenant and --out are required (see capstan render "
                        "--help)\n");
        return 2;
    }

    status = 1;
    if (read_json(&tenant, tenant_path) != 0)
        goto cleanup;
    for (nloaded = 0; nloaded < nenvs; nloaded++) {
        if (read_json(&envs[nloaded], env_paths[nloaded]) != 0)
            goto cleanup;
    }
    if (render_tree(&files, opt, tenant, (const json_t *const *)envs, nenvs) != 0)
        goto cleanup;
    if (cap_mkdirs(out_dir, 0755) != 0)
        goto cleanup;
    for (size_t i = 0; i < files.n; i++) {
        if (write_file(out_dir, &files.items[i]) != 0)
            goto cleanup;
    }
    status = 0;
cleanup:
    if (status != 0) {
        /* one line, whatever the message quotes */
        char msg[CAP_ERROR_MESSAGE_MAX];
        snprintf(msg, sizeof(msg), "%s", cap_error_message());
        for (char *p = msg; *p; p++) {
            if ((unsigned char)*p < 0x20 || *p == 0x7f)
                *p = ' ';
        }
        fprintf(stderr, "capstan render: %s\n", msg);
    }
    for (size_t i = 0; i < nloaded; i++)
        json_decref(envs[i]);
    json_decref(tenant);
    render_files_free(&files);
    return status;
}
