"""`python -m orchestration.cli` runs the `watchllm-analytics` command."""

from orchestration.cli.main import main

raise SystemExit(main())
