# credgate — see README.md. Every target says what it does; `make help` lists them.
GO        ?= go
VAULT_BIN := bin/vault
VAULT_MOD := deploy/vault
# Tests run with the race detector: credgate's caches and check-and-set
# loops are concurrent code.
TESTFLAGS ?= -race -count=1 -timeout 20m
# Test artifacts (the Swagger UI screenshot) are kept under testdata-out/.
ARTIFACTS := -artifacts -outputdir $(CURDIR)/testdata-out

SWAGGER_UI_VERSION := 5.35.0
SWAGGER_UI_DIR     := httpapi/swaggerui/dist

.PHONY: help vault dev test test-deploy bench bench-compare bench-scale fuzz lint verify build clean swagger-ui

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

build: ## build bin/credgate
	$(GO) build -o bin/credgate ./cmd/credgate

vault: $(VAULT_BIN) ## build a real Vault (v1.21.2, -tags minimal) into bin/vault from deploy/vault

# Rebuilt only when the pinned module changes. The first build downloads
# about 3 GB of modules and takes several minutes.
$(VAULT_BIN): $(VAULT_MOD)/go.mod $(VAULT_MOD)/go.sum
	@mkdir -p $(dir $@)
	cd $(VAULT_MOD) && $(GO) build -tags minimal -o $(abspath $@) github.com/hashicorp/vault
	@touch $@

dev: vault build ## run a local stack: Vault dev server, its OIDC issuer, credgate on 127.0.0.1:8080
	exec bin/credgate dev

test: vault ## vet and run every test against a real Vault
	$(GO) vet ./...
	@mkdir -p testdata-out
	$(GO) test $(TESTFLAGS) $(ARTIFACTS) ./...
	@find testdata-out -name '*.png' | sed 's/^/artifact: /'
	$(MAKE) test-deploy

test-deploy: ## test deploy/: the Helm chart (lint, render, strict decode), compose.yaml, the image (podman)
	cd deploy/deploytest && $(GO) vet ./... && $(GO) test -count=1 -timeout 10m ./...

bench: vault ## run the benchmarks
	$(GO) test -run '^$$' -bench . -benchmem ./...

bench-compare: vault build ## credgate's reads side by side with direct Vault and vault proxy (BENCHFLAGS: -duration, -rounds, -conns, -callers)
	$(GO) run ./cmd/bench-compare -vault $(VAULT_BIN) -credgate bin/credgate $(BENCHFLAGS)

# SCALE: credentials, comma-separated (100 a tenant, ten services each).
SCALE ?= 10000

bench-scale: vault ## seed SCALE credentials into a fresh Vault and print the monitor pass, inventory walk and RSS they cost
	CREDGATE_SCALE=$(SCALE) $(GO) test ./monitor -run '^$$' -bench '^BenchmarkScale$$' -benchtime 1x -timeout 90m

# Each fuzz target runs for FUZZTIME (8 targets: about 10 minutes at 75s).
# make test runs their seed corpora (f.Add and testdata/fuzz) as tests.
FUZZTIME ?= 75s

fuzz: ## run every fuzz target for FUZZTIME each; inputs that fail land in testdata/fuzz
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for fn in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$fn ($$pkg, $(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

verify: lint ## fail when go mod tidy or gofmt would change anything
	$(GO) mod tidy -diff

swagger-ui: ## re-fetch the pinned swagger-ui-dist assets embedded for /docs (needs npm)
	tmp=$$(mktemp -d) && cd $$tmp && npm pack --silent swagger-ui-dist@$(SWAGGER_UI_VERSION) >/dev/null && tar xzf swagger-ui-dist-*.tgz && \
	cp package/swagger-ui-bundle.js package/swagger-ui-bundle.js.LICENSE.txt package/swagger-ui.css \
	   package/LICENSE package/NOTICE package/favicon-32x32.png $(CURDIR)/$(SWAGGER_UI_DIR)/ && rm -rf $$tmp

clean: ## remove built binaries and dev state
	rm -rf bin .credgate-dev
