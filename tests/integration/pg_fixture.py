"""ctest fixture `pg`: starts (start) or stops (stop) the PostgreSQL server the tests share.
Its folder and port are written to <build>/test-pg.json; each test makes its own database."""
import json
import os
import shutil
import sys

import harness


def main():
    if sys.argv[1] == "start":
        if os.path.exists(harness.STATE_FILE):
            try:
                with open(harness.STATE_FILE) as f:
                    st = json.load(f)
                harness.Postgres(root=st["root"], port=st["port"]).destroy()
                shutil.rmtree(st["root"], ignore_errors=True)
            except (OSError, ValueError, KeyError):
                pass
        pg = harness.Postgres()
        pg.start()
        with open(harness.STATE_FILE, "w") as f:
            json.dump({"root": pg.root, "port": pg.port}, f)
        print("postgres on port %d in %s" % (pg.port, pg.root))
    else:
        try:
            with open(harness.STATE_FILE) as f:
                st = json.load(f)
        except (OSError, ValueError):
            return
        harness.Postgres(root=st["root"], port=st["port"]).destroy()
        shutil.rmtree(st["root"], ignore_errors=True)
        os.unlink(harness.STATE_FILE)


if __name__ == "__main__":
    main()
