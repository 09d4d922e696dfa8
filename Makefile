# storvisor: the two commands are `make demo` and `make test`; each installs what is missing.
PY := .venv/bin/python
export STORVISOR_HYPOTHESIS ?= ci

.PHONY: demo test setup build bench clean

setup:
	@impl/testbed/ensure-deps.sh

build: setup
	@if [ -f impl/vmm/Makefile ]; then $(MAKE) -s -C impl/vmm; fi
	@$(MAKE) -s -C impl/server/datapath

demo: build
	$(PY) -m impl.demo

test: build
	$(PY) -m pytest

bench: build
	$(PY) -m benchmarks

clean:
	rm -rf build
	@if [ -f impl/vmm/Makefile ]; then $(MAKE) -s -C impl/vmm clean; fi
