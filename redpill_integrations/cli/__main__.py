"""``python -m redpill_integrations.cli``: the same as the ``redpill`` console script."""

from redpill_integrations.cli import main

raise SystemExit(main())
