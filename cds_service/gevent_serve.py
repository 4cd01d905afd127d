"""The serving process of `cds-service serve`: `python -m cds_service.gevent_serve serve ...`.

It makes the standard library cooperative (gevent) before importing anything else, then
runs the command line as usual; `cds-service serve` starts it (`cds_service.server.
exec_patched`) once the settings, hooks and policy packs have been checked. Everything this
process and its workers write is JSON (`cds_service.json_logs.install_process_hooks`).
"""

from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402

from cds_service.json_logs import install_process_hooks  # noqa: E402

install_process_hooks()

from cds_service.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
