# The README's two commands: `make run` and `make test`.
# `make test-fast`: the in-process tests only (tests/unit), for a change to the engine.
# `make docs`: the manual (docs/) built into site/.
.PHONY: run test test-fast lint docs bench

run:
	scripts/setup.sh run
	.venv/bin/schoolproxy run $(ARGS)

test: lint
	.venv/bin/python -m pytest $(PYTEST_ARGS)

test-fast:
	scripts/setup.sh test
	.venv/bin/python -m pytest -q tests/unit $(PYTEST_ARGS)

lint:
	scripts/setup.sh test
	.venv/bin/ruff check proxy_addon tests scripts
	.venv/bin/mypy
	.venv/bin/lint-imports
	.venv/bin/python scripts/gen_reference.py --check
	NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --quiet --site-dir site

docs:
	scripts/setup.sh test
	.venv/bin/python scripts/gen_reference.py
	NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --site-dir site

bench:
	scripts/setup.sh test
	.venv/bin/python scripts/bench_proxy.py
