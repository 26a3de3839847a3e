# Build, test and demo targets. `make help` lists them.
GO      ?= go
BIN     := bin
CMDS    := bootctl=./bootctl/cmd/bootctl \
           ota-updater=./updater/cmd/ota-updater \
           imagebuilder=./imagebuilder/cmd/imagebuilder \
           manifest-server=./manifest-server/cmd/manifest-server \
           pisim=./rpi/cmd/pisim
# What runs on the gateway, cross-built static for the Pi.
DEVICE_CMDS := bootctl=./bootctl/cmd/bootctl ota-updater=./updater/cmd/ota-updater

.PHONY: help build cross test demo deps clean

help:
	@echo "make deps   install the Debian packages the tools and tests need (root)"
	@echo "make build  build every command into ./bin"
	@echo "make cross  cross-build the on-device commands (static) into ./bin/linux-arm64 and ./bin/linux-armv7"
	@echo "make demo   install the tools, build, then update a virtual Pi end to end (scripts/demo.sh)"
	@echo "make test   install the tools, then run every test (go test ./...)"

build:
	@mkdir -p $(BIN)
	@for c in $(CMDS); do \
		name=$${c%%=*}; pkg=$${c#*=}; \
		echo "go build -o $(BIN)/$$name $$pkg"; \
		$(GO) build -trimpath -o $(BIN)/$$name $$pkg || exit 1; \
	done

cross:
	@for arch in arm64 armv7; do \
		mkdir -p $(BIN)/linux-$$arch; \
		for c in $(DEVICE_CMDS); do \
			name=$${c%%=*}; pkg=$${c#*=}; \
			if [ $$arch = armv7 ]; then goarch=arm; goarm=7; else goarch=arm64; goarm=; fi; \
			echo "CGO_ENABLED=0 GOOS=linux GOARCH=$$goarch GOARM=$$goarm go build -o $(BIN)/linux-$$arch/$$name $$pkg"; \
			CGO_ENABLED=0 GOOS=linux GOARCH=$$goarch GOARM=$$goarm $(GO) build -trimpath -ldflags=-s -o $(BIN)/linux-$$arch/$$name $$pkg || exit 1; \
		done; \
	done

demo: deps build
	scripts/demo.sh

test: deps
	$(GO) test -count=1 -timeout 30m ./...

deps:
	scripts/install-deps.sh

clean:
	rm -rf $(BIN) out
