"""Tenant platform repositories in the job: creating a tenant makes its platform repository
from the blueprint (the `platform-repository` step), records it in `platformRepository`, and the
fleet repository gets the Flux GitRepository and platform syncs that point at it.
The git provider runs against the real Git server (HTTPS with a test CA); the github provider
against the GitHub REST API double (tests/doubles/github_api.py), as there is no GitHub here."""
import os
import sys
import unittest

import gitserver
import harness

sys.path.insert(0, os.path.join(harness.SOURCE_DIR, "tests", "doubles"))
import github_api  # noqa: E402

PG = None


def setUpModule():
    global PG
    PG = harness.shared_postgres()


class PlatformFlow(unittest.TestCase):
    def test_git_provider_against_the_git_server(self):
        with gitserver.GitServer(tls=True) as gs:
            gs.create_bare("blueprint")
            gs.commit_files("blueprint", {"environments/dev/app.yaml": "kind: ConfigMap\n",
                                          "README.md": "platform blueprint\n"}, message="blueprint")
            gs.create_bare("tenant-pf")
            pattern = gs.url("tenant-{tenant}").replace("tenant-%7Btenant%7D", "tenant-{tenant}")
            f = harness.Fleet(PG, env={
                "CAPSTAN_PLATFORM_PROVIDER": "git", "CAPSTAN_PLATFORM_BLUEPRINT_URL": gs.url("blueprint"),
                "CAPSTAN_PLATFORM_URL_PATTERN": pattern, "CAPSTAN_PLATFORM_GIT_USERNAME": gs.user,
                "CAPSTAN_PLATFORM_GIT_PASSWORD": gs.password, "CAPSTAN_PLATFORM_CA_FILE": gs.ca_file})
            try:
                r = f.create_tenant("pf")
                j = f.request("GET", "/api/v1/jobs/" + r.json["job"]["id"]).json
                step = [s for s in j["steps"] if s["name"] == "platform-repository"][0]
                self.assertEqual(step["state"], "succeeded", step)
                url = gs.url("tenant-pf")
                t = f.request("GET", "/api/v1/tenants/pf").json
                self.assertEqual(t["platformRepository"], url)
                self.assertIn(url, f.show("tenants/pf/platform-source.yaml"))
                self.assertEqual(gs.show("tenant-pf", "environments/dev/app.yaml"), "kind: ConfigMap\n")
                f.create_env("pf", "dev")
                self.assertIn("./environments/dev", f.show("tenants/pf/environments/dev/platform-sync.yaml"))
                self.assertNotIn(gs.password, "".join(a.log() for a in f.apps))
            finally:
                self.assertEqual(f.close(), [0])

    def test_github_provider_against_the_api_double(self):
        api = github_api.GitHubApi().start()
        try:
            api.add_account("acme-platform")
            api.add_repo("acme-platform/blueprint", is_template=True)
            f = harness.Fleet(PG, env={
                "CAPSTAN_PLATFORM_PROVIDER": "github", "CAPSTAN_GITHUB_API_URL": api.url,
                "CAPSTAN_GITHUB_TOKEN": api.token, "CAPSTAN_GITHUB_OWNER": "acme-platform",
                "CAPSTAN_GITHUB_TEMPLATE_REPO": "acme-platform/blueprint",
                "CAPSTAN_PLATFORM_CA_FILE": api.ca_file})
            try:
                f.create_tenant("gh")
                t = f.request("GET", "/api/v1/tenants/gh").json
                self.assertEqual(t["platformRepository"], api.get_repo("acme-platform/tenant-gh")["clone_url"])
                self.assertIn(t["platformRepository"], f.show("tenants/gh/platform-source.yaml"))
                posts = [q for q in api.get_requests() if q["method"] == "POST"]
                self.assertEqual(len(posts), 1)
                self.assertNotIn(api.token, "".join(a.log() for a in f.apps))
            finally:
                self.assertEqual(f.close(), [0])
        finally:
            api.stop()

    def test_bad_provider_settings_stop_the_start_naming_the_variable(self):
        db = PG.create_db()
        app = harness.Capstan(PG.url(db), env={"CAPSTAN_PLATFORM_PROVIDER": "github"}).start(wait=False)
        try:
            app.proc.wait(30)
            self.assertNotEqual(app.proc.returncode, 0)
            self.assertRegex(app.log(), r"CAPSTAN_GITHUB_(TOKEN|OWNER|TEMPLATE_REPO)")
        finally:
            app.cleanup()


if __name__ == "__main__":
    unittest.main(verbosity=2)
