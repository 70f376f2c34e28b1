# imgpipe: `make demo` runs the whole pipeline on generated data; `make test` runs every test.
#
# The pipeline, one target per stage; each writes files, so `make` reruns only the stale stages:
#   download  -> $(WORK)/images.csv     download-s3 (the images CSV plus local_image; images under $(WORK)/data)
#   prep      -> $(WORK)/prep.json      prep-data   (dataset pointer; the dataset is $(WORK)/prep/)
#   train     -> $(WORK)/run.json       train       (run pointer; runs under $(WORK)/runs/)
#   evaluate  -> $(WORK)/eval.json      eval-model --min-accuracy $(MIN_ACCURACY) (the gate: below it, make stops)
#   upload    -> $(WORK)/upload.json    upload-s3   (the s3:// URIs of results.csv, the model, the snippet)
#   review    -> $(WORK)/review.json    review-labels (label-issues.csv and label-review.html in the run directory)
# The label loop: make review; open the page, decide, export label-decisions.csv; make train DECISIONS=that file
# (prep-data --decisions drops and relabels, then train reruns on the cleaned dataset).
#   all = upload; serve = serve the evaluated model on $(PORT).
# Each stage passes the previous stage's pointer on stdin, as in the shell pipe (scripts/pipeline.sh).
# Staleness is by content: $(WORK)/.stamps/<stage> records the sha256 of the stage's input files (train: the
# backbone's files too, wherever it is named), the settings of the config sections it reads as the stage resolves
# them (IMGPIPE_* and standard variables > CONFIG or $IMGPIPE_CONFIG > defaults; and IMGPIPE_NO_WEBGPU, which can
# change what --device auto picks), and its options
# (scripts/stamp.mjs), and is rewritten only when that changes. So a second `make all` does no work; changing
# train.lr in the config, or IMGPIPE_TRAIN_EPOCHS, reruns train, eval and upload.
# The download stage cannot see new objects on S3: `make refresh` re-downloads (skipping files already there)
# and reruns whatever that changed.
#
#   CONFIG=config.yaml make all          # against a real bucket and the config's backbone (default resnet50)
#   make all CSV=s3://bucket/images.csv BUCKET=bucket PREFIX=results/ MIN_ACCURACY=0.95
#   make train TRAIN_FLAGS='--lr 0.001,0.01 --epochs 5'
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DELETE_ON_ERROR:
PNPM ?= $(shell command -v pnpm >/dev/null 2>&1 && echo pnpm || echo "npx --yes pnpm@10")

# ---- pipeline settings: make VAR=value, or the environment
CONFIG ?=
WORK ?= out
CSV ?=
BUCKET ?=
PREFIX ?=
MIN_ACCURACY ?= 0.9
IMG ?=
BACKBONE ?=
FEATURE_LAYER ?=
DEVICE ?=
PREP_FLAGS ?=
# A label-decisions.csv exported from label-review.html: prep-data applies it (drops, relabels)
DECISIONS ?=
TRAIN_FLAGS ?=
REVIEW_FLAGS ?=
PORT ?= 8080
# The demo's generated data and backbone (make demo-data demo-backbone; scripts/demo.mjs sets these)
DEMO_COUNT ?= 400
DEMO_SEED ?= 42
DEMO_BUCKET ?= imgpipe-demo
# SKIP_BUILD=1: the stages use the bins as built (the tests set it)
SKIP_BUILD ?=

# IMGPIPE_BIN_DIR: where the stage binaries are (default: this checkout's node_modules/.bin)
BIN := $(or $(IMGPIPE_BIN_DIR),node_modules/.bin)
STAMP := node scripts/stamp.mjs
S := $(WORK)/.stamps
CFG := $(if $(CONFIG),--config $(CONFIG))
comma := ,
# $(call cfgstamp,project,data,train): make splits call arguments at commas, so each section is its own argument.
cfgstamp = --settings $(1)$(if $(2),$(comma)$(2))$(if $(3),$(comma)$(3)) $(if $(CONFIG),--config $(CONFIG))
IMG_FLAG := $(if $(IMG),--img-dimensions $(IMG))
PREP_ARGS := $(IMG_FLAG) $(if $(DECISIONS),--decisions $(DECISIONS)) $(PREP_FLAGS)
DEVICE_FLAG := $(if $(DEVICE),--device $(DEVICE))
TRAIN_ARGS := $(if $(BACKBONE),--backbone $(BACKBONE)) $(if $(FEATURE_LAYER),--feature-layer $(FEATURE_LAYER)) $(DEVICE_FLAG) $(TRAIN_FLAGS)
UPLOAD_ARGS := $(if $(BUCKET),--bucket $(BUCKET)) $(if $(PREFIX),--prefix $(PREFIX))
BUILT := node_modules/.imgpipe-built
STAGE_DEPS := $(if $(SKIP_BUILD),,$(BUILT))
# A stage's recipe writes its pointer to a temp name and renames it: an interrupted stage leaves no final file.
finish = mv -f $@.tmp $@

.PHONY: all install build test bench demo clean typecheck lint serve refresh download prep train evaluate upload review demo-data demo-backbone demo-trained-backbone FORCE

all: $(WORK)/upload.json

# ---- install and build
node_modules/.modules.yaml: package.json pnpm-lock.yaml packages/*/package.json
	ONNXRUNTIME_NODE_INSTALL=skip $(PNPM) install --frozen-lockfile
	@touch $@

install: node_modules/.modules.yaml

$(BUILT): node_modules/.modules.yaml tsconfig.json tsconfig.base.json $(wildcard packages/*/tsconfig.json packages/*/ui/tsconfig.json) $(shell find packages/*/src packages/*/ui -name '*.ts' 2>/dev/null)
	$(PNPM) run build
	@touch $@

build: $(BUILT)

typecheck: build
	$(PNPM) exec tsc -p tsconfig.test.json
	$(PNPM) exec tsc -p packages/upload-s3/assets/tsconfig.json

# Biome's formatter (biome.json: 150 columns; `pnpm exec biome format --write .` fixes), its recommended rules
# (non-null assertions allowed: with noUncheckedIndexedAccess they mark checked indexes),
# no import cycles between files (dpdm, type-only imports included), every generated wasm binary matches its .wat,
# and no dead code (knip, knip.config.ts: every export is imported somewhere, every file reached from an entry point).
lint: install
	$(PNPM) exec biome format .
	$(PNPM) exec biome lint --error-on-warnings .
	node scripts/build-wasm.mjs --check
	$(PNPM) exec dpdm --no-tree --no-warning --no-progress --exit-code circular:1 --exclude 'dist|node_modules' 'packages/*/src/**/*.ts' 'packages/*/ui/**/*.ts'
	$(PNPM) exec knip --no-progress

test: build typecheck lint
	$(PNPM) run test

bench: build
	$(PNPM) run bench

demo: build
	node scripts/demo.mjs $(if $(CONFIG),--config $(CONFIG))

# ---- the pipeline stages
download: $(WORK)/images.csv
prep: $(WORK)/prep.json
train: $(WORK)/run.json
evaluate: $(WORK)/eval.json
upload: $(WORK)/upload.json
review: $(WORK)/review.json

$(S)/download: FORCE
	@$(STAMP) $@ $(call cfgstamp,data,aws) --env S3_ENDPOINT --env AWS_PROFILE -- $(CSV) $(WORK)/data
$(WORK)/images.csv: $(S)/download | $(STAGE_DEPS)
	@if [[ -z "$(CSV)$(CONFIG)" ]]; then echo "make: set CSV=s3://bucket/images.csv or CONFIG=config.yaml (data.images_csv)" >&2; exit 2; fi
	$(BIN)/download-s3 $(CFG) $(if $(CSV),--csv $(CSV)) --dest $(WORK)/data --out $@ </dev/null

$(S)/prep: FORCE | $(WORK)/images.csv
	@$(STAMP) $@ --file $(WORK)/images.csv --listed $(WORK)/images.csv $(if $(DECISIONS),--file $(DECISIONS)) $(call cfgstamp,data) -- $(PREP_ARGS)
$(WORK)/prep.json: $(S)/prep | $(STAGE_DEPS)
	$(BIN)/prep-data $(CFG) --out $(WORK)/prep $(PREP_ARGS) < $(WORK)/images.csv > $@.tmp
	@$(finish)

$(S)/train: FORCE | $(WORK)/prep.json $(filter $(WORK)/backbone/model.onnx $(WORK)/backbone-trained/model.json,$(BACKBONE))
	@$(STAMP) $@ --file $(WORK)/prep/manifest.json --backbone $(call cfgstamp,project,data,train) --env IMGPIPE_NO_WEBGPU -- $(TRAIN_ARGS)
$(WORK)/run.json: $(S)/train | $(STAGE_DEPS)
	$(BIN)/train $(CFG) --out $(WORK)/runs $(TRAIN_ARGS) < $(WORK)/prep.json > $@.tmp
	@$(finish)

$(S)/eval: FORCE | $(WORK)/run.json
	@$(STAMP) $@ --file $(WORK)/run.json $(call cfgstamp,data,train) --env IMGPIPE_NO_WEBGPU -- $(MIN_ACCURACY) $(DEVICE_FLAG)
$(WORK)/eval.json: $(S)/eval | $(STAGE_DEPS)
	$(BIN)/eval-model $(CFG) $(DEVICE_FLAG) --min-accuracy $(MIN_ACCURACY) < $(WORK)/run.json > $@.tmp
	@$(finish)

$(S)/upload: FORCE | $(WORK)/eval.json
	@$(STAMP) $@ --file $(WORK)/eval.json $(call cfgstamp,project,aws) --env S3_ENDPOINT --env AWS_PROFILE -- $(UPLOAD_ARGS)
$(WORK)/upload.json: $(S)/upload | $(STAGE_DEPS)
	$(BIN)/upload-s3 $(CFG) $(UPLOAD_ARGS) < $(WORK)/eval.json > $@.tmp
	@$(finish)

$(S)/review: FORCE | $(WORK)/run.json
	@$(STAMP) $@ --file $(WORK)/run.json $(call cfgstamp,data,train) -- $(DEVICE_FLAG) $(REVIEW_FLAGS)
$(WORK)/review.json: $(S)/review | $(STAGE_DEPS)
	$(BIN)/review-labels $(CFG) $(DEVICE_FLAG) $(REVIEW_FLAGS) < $(WORK)/run.json > $@.tmp
	@$(finish)

refresh:
	rm -f $(S)/download
	$(MAKE) --no-print-directory all

serve: $(WORK)/eval.json
	$(BIN)/serve $(CFG) $(DEVICE_FLAG) --port $(PORT) --model "$$(node -p 'JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).best' $(WORK)/run.json)"

# ---- the demo's generated images and backbone (no network needed)
demo-data: $(WORK)/images/images.csv
demo-backbone: $(WORK)/backbone/model.onnx
demo-trained-backbone: $(WORK)/backbone-trained/model.json

$(S)/demo-data: FORCE
	@$(STAMP) $@ --file scripts/make-demo-data.mjs -- $(DEMO_COUNT) $(DEMO_SEED) $(DEMO_BUCKET)
$(WORK)/images/images.csv: $(S)/demo-data | $(STAGE_DEPS)
	node scripts/make-demo-data.mjs --dir $(WORK)/images --count $(DEMO_COUNT) --seed $(DEMO_SEED) --bucket $(DEMO_BUCKET) --prefix images

$(S)/demo-backbone: FORCE
	@$(STAMP) $@ --file scripts/demo-backbone.mjs -- $(IMG)
$(WORK)/backbone/model.onnx: $(S)/demo-backbone | $(STAGE_DEPS)
	node scripts/demo-backbone.mjs --dir $(WORK)/backbone --size $(or $(IMG),64) >/dev/null

# The demo's fallback when random weights do not pass the gate: a small conv net trained on the train split only.
$(S)/demo-trained-backbone: FORCE | $(WORK)/prep.json
	@$(STAMP) $@ --file scripts/demo-backbone.mjs --file $(WORK)/prep/manifest.json
$(WORK)/backbone-trained/model.json: $(S)/demo-trained-backbone | $(STAGE_DEPS)
	node scripts/demo-backbone.mjs --dir $(WORK)/backbone-trained --train-on $(WORK)/prep >/dev/null

FORCE:

clean:
	rm -rf packages/*/dist packages/*/tsconfig.tsbuildinfo bench-results $(BUILT) demo $(WORK)
