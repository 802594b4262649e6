"""`python -m gateway` is the `gateway` command (how `serve --with-sandboxes` starts its sandbox process)."""

from gateway.cli import main

main()
