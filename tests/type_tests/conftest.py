"""Keep pytest out of the type tests: mypy and pyright check them, nothing runs them."""

collect_ignore_glob = ["*.py"]
