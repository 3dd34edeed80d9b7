# Two commands on a fresh machine: `make demo` and `make test`.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.todkit-installed
OUT    ?= out/demo

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,demo]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) demo/lenet_digits.py --out $(OUT)

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(PY) -m pip install -q ruff && $(VENV)/bin/ruff check todkit tests demo

clean:
	rm -rf $(VENV) out build *.egg-info
