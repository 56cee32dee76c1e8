# The README's two commands: `make run` and `make test`.
.PHONY: run test bench

run:
	scripts/setup.sh run
	.venv/bin/schoolproxy run $(ARGS)

test:
	scripts/setup.sh test
	.venv/bin/lint-imports
	.venv/bin/python -m pytest $(PYTEST_ARGS)

bench:
	scripts/setup.sh test
	.venv/bin/python scripts/bench_proxy.py
