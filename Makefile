# Two commands set everything up and run it: `make demo` and `make test` (each creates or reuses .venv).
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
ECOM_HOME ?= $(CURDIR)/.ecom
export ECOM_HOME
export AIRFLOW_HOME ?= $(ECOM_HOME)/airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__EXECUTOR ?= LocalExecutor
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS ?= True
export GX_ANALYTICS_ENABLED := False

.PHONY: setup demo test test-fast test-s3 airflow mlflow-ui stack stack-history stack-down stack-status bench-recsys bench-forecast bench-forecast-scale bench-forecast-promotions bench-inventory bench-intervention bench-associations bench-segments bench-risk bench-one-purchase bench-routing bench-closed-loop bench-scale clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt constraints.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt -c constraints.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	$(BIN)/python -m pip check
	touch $@

demo: setup  ## the main job on embedded defaults: synthetic shop -> validation gate -> curated lake
	$(BIN)/ecom demo

TEST_WORKERS ?= 2
# pytest-xdist workers, a test file to each at a time, in the order collected (the live stack's file first, so
# the other worker's files overlap its waits); `make test TEST_WORKERS=0` runs the suite in this one process
PYTEST = $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder
S3_PASS = ECOM_LAKE_URI=s3://ecom-test/suite $(PYTEST) -p no:cacheprovider --ignore=tests/test_live_stack.py
STORE_FREE = .pytest-store-free

test: setup  ## lint, format and type checks (ruff, mypy), then the whole suite on local lakes, then again with every lake in S3 when ECOM_TEST_POSTGRES_URL is set (the lake's lock there), leaving out the tests whose lakes do not follow ECOM_LAKE_URI
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(PYTEST) --record-store-free=$(STORE_FREE)
	@if [ -n "$$ECOM_TEST_POSTGRES_URL" ]; then echo "======== the suite again, every test's lake in S3, but the $$(wc -l < $(STORE_FREE)) tests that passed without a lake that follows ECOM_LAKE_URI (make test-s3: all) ========"; $(S3_PASS) --skip-store-free=$(STORE_FREE); \
	else echo "the S3 pass (make test-s3) needs ECOM_TEST_POSTGRES_URL for the lake's lock: not run"; fi

test-fast: setup  ## everything but the end-to-end DAG runs
	$(PYTEST) -m "not e2e"

test-s3: setup  ## the whole suite with every test's lake in moto's S3 service on the loopback address (needs ECOM_TEST_POSTGRES_URL for the lake's lock)
	$(S3_PASS)

airflow: setup  ## Airflow UI + scheduler on SQLite with the LocalExecutor: http://localhost:8080
	$(BIN)/airflow db migrate
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/airflow standalone  # standalone starts its components by name

stack: setup  ## the live production stack on this machine's PostgreSQL + Redis (Celery workers, MLflow server): docker/stack.sh
	bash docker/stack.sh up

stack-history:  ## land the synthetic shop's history ending yesterday into the live stack (then unpause the DAGs)
	bash docker/stack.sh history

stack-down:  ## stop the live stack (its databases stay; docker/stack.sh down --drop removes them)
	bash docker/stack.sh down

stack-status:  ## health of the live stack's services
	bash docker/stack.sh status

mlflow-ui: setup  ## MLflow UI over the embedded tracking/registry store: http://localhost:5000
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(ECOM_HOME)/mlflow.db --port 5000

SHARED_DATA ?= $(CURDIR)/../shared/data
SEEDS ?= 42 43 44
bench-recsys: setup  ## recommendation quality (Beauty, MovieLens-100k, Instruments) + large-scale scoring vs the matmul bound
	$(BIN)/python benchmarks/recsys_quality.py --beauty $(SHARED_DATA)/recsys/amazon-beauty \
	    --movielens $(SHARED_DATA)/recsys/movielens-100k \
	    --instruments $(SHARED_DATA)/recsys/amazon-musical-instruments-5core \
	    --seeds $(SEEDS) --out benchmarks/results/recsys_quality.json
	$(BIN)/python benchmarks/recsys_scoring.py --scale large --out benchmarks/results/recsys_scoring_large.json

bench-forecast: setup  ## rolling-origin backtest (3 origins, 28 days) on the bakery and pharma sales
	$(BIN)/python benchmarks/forecast_quality.py --bakery $(SHARED_DATA)/forecast/bakery-breadbasket \
	    --pharma $(SHARED_DATA)/forecast/pharma-sales-daily --out benchmarks/results/forecast_quality.json

# statsforecast 2.1 needs pandas < 3, so the speed anchor gets its own interpreter
ANCHOR_VENV ?= .venv-anchor
$(ANCHOR_VENV)/bin/statsforecast-installed:
	test -x $(ANCHOR_VENV)/bin/python || $(PYTHON) -m venv $(ANCHOR_VENV)
	$(ANCHOR_VENV)/bin/python -m pip install -q statsforecast==2.1.1
	touch $@

bench-forecast-scale: setup $(ANCHOR_VENV)/bin/statsforecast-installed  ## global LightGBM on 20k series x 2 years vs statsforecast AutoETS
	$(BIN)/python benchmarks/forecast_scale.py --series 20000 --days 730 --sample 200 --anchor-python $(ANCHOR_VENV)/bin/python \
	    --out benchmarks/results/forecast_scale.json

bench-intervention: setup  ## coupon plan vs the oracle on the large synthetic shop (true uplift known); Qini on Hillstrom
	$(BIN)/python benchmarks/intervention_synthetic.py --scale large --out benchmarks/results/intervention_synthetic.json
	$(BIN)/python benchmarks/intervention_hillstrom.py --csv $(SHARED_DATA)/uplift/hillstrom/hillstrom_part_a.csv \
	    --outcome visit --seeds 20 --out benchmarks/results/intervention_hillstrom.json

bench-forecast-promotions: setup  ## LightGBM backtest with and without the promotion calendar on the synthetic demo shop
	$(BIN)/python benchmarks/forecast_promotions.py --scale demo --origins 3 --out benchmarks/results/forecast_promotions.json

bench-associations: setup  ## FP-growth rules on the bakery baskets; leave-one-out basket completion vs popularity
	$(BIN)/python benchmarks/associations_bakery.py --bakery $(SHARED_DATA)/forecast/bakery-breadbasket \
	    --out benchmarks/results/associations_bakery.json

bench-segments: setup  ## segments of the typed synthetic shop against its latent types (ARI) and from one day to the next
	$(BIN)/python benchmarks/segments_synthetic.py --out benchmarks/results/segments_synthetic.json

bench-risk: setup  ## fraud and abuse: the risk model vs the IsolationForest alone vs the rules, on the synthetic shop's last 60 days
	$(BIN)/python benchmarks/risk_synthetic.py --large --out benchmarks/results/risk_synthetic.json

bench-scale: setup  ## the daily chain (history through the gate, a daily drop, every pipeline) on the demo and the large shop: time, peak RSS, lake size
	$(BIN)/python benchmarks/scale_chain.py --scale demo --history-days 365 --out benchmarks/results/scale_chain_demo.json
	$(BIN)/python benchmarks/scale_chain.py --scale large --history-days 730 --out benchmarks/results/scale_chain_large.json
	$(BIN)/python benchmarks/scale_chain.py --compare benchmarks/results/scale_chain_demo.json benchmarks/results/scale_chain_large.json --no-mlflow

bench-closed-loop: setup  ## the shop reacts to the platform for 28 days after a year (demo shop): profit vs the passive shop, 3 seeds, ablations
	$(BIN)/python benchmarks/closed_loop.py --out benchmarks/results/closed_loop.json

bench-one-purchase: setup  ## one-purchase customers: FBT rules vs regional popularity vs EASE (synthetic shop, Amazon Instruments)
	$(BIN)/python benchmarks/recsys_one_purchase.py --test-days 56 --min-support 0.0002 --out benchmarks/results/recsys_one_purchase.json
	$(BIN)/python benchmarks/recsys_one_purchase.py --instruments $(SHARED_DATA)/recsys/amazon-musical-instruments-5core \
	    --test-days 365 --popularity-days 365 --window-days 3650 --min-support 0.0005 --out benchmarks/results/recsys_one_purchase_instruments.json

bench-routing: setup  ## Porto road graph + 1000x1000 matrix (osmnx anchor); Solomon C101/R101/RC101, X-n101-k25 and three 1000-customer Gehring-Homberger VRPTW, PyVRP vs OR-Tools
	$(BIN)/python benchmarks/routing_osm.py --osm $(SHARED_DATA)/osm/porto_portugal_r5-testdata.osm.pbf \
	    --osmnx-xml $(SHARED_DATA)/osm/derived/porto.drive.osm.bz2 --points 1000 --out benchmarks/results/routing_osm.json
	$(BIN)/python benchmarks/routing_vrp.py --instances $(SHARED_DATA)/vrp/solomon/C101.txt $(SHARED_DATA)/vrp/solomon/R101.txt \
	    $(SHARED_DATA)/vrp/solomon/RC101.txt $(SHARED_DATA)/vrp/cvrp_x/X-n101-k25.vrp --bks $(SHARED_DATA)/vrp/solomon/BKS_subset.json \
	    --time-limit 9.5 --out benchmarks/results/routing_vrp.json
	$(BIN)/python benchmarks/routing_vrp.py --instances $(SHARED_DATA)/vrp/gehring_homberger/C1_10_2.vrp \
	    $(SHARED_DATA)/vrp/gehring_homberger/R1_10_2.vrp $(SHARED_DATA)/vrp/gehring_homberger/RC1_10_2.vrp \
	    --time-limit 60 --out benchmarks/results/routing_vrp_1000.json

bench-inventory: setup  ## replenishment MILP, 1,000 SKUs x 28 days: status, gap, time; plan vs base-stock in simulation
	$(BIN)/python benchmarks/inventory_plan.py --skus 1000 --horizon 28 --out benchmarks/results/inventory_plan.json

clean:  ## remove everything the embedded configuration wrote (not the virtualenv)
	rm -rf $(ECOM_HOME)
