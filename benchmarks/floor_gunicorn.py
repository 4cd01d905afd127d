"""gunicorn settings of the floor beyond its command line, so that it is served the way
`cds-service serve` serves the service (`cds_service.cli.cmd_serve`): the master freezes
what it loaded before it forks the workers.

    gunicorn -c python:benchmarks.floor_gunicorn ... benchmarks.floor:app
"""

from __future__ import annotations

from cds_service.cli import freeze_before_fork

pre_fork = freeze_before_fork
