# Two entry points, each of which sets everything up on a fresh machine:
#   make demo   5-task continual run (SimCLR + PNR) on the embedded digits data, CPU, then a linear
#               probe after every task: prints the accuracy table, writes results.md / results.png
#   make test   the test suite (CPU, a few minutes)
PYTHON_BASE ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_DIR ?= trained_models

.PHONY: demo test install clean-demo

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON_BASE) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

demo: install
	rm -rf $(DEMO_DIR)/demo-digits-simclr-pnr
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(PY) main_pretrain.py \
		--dataset digits --method simclr --distiller simclr_pnr --num_tasks 5 \
		--accelerator cpu --precision bf16 --channels_last --max_epochs 8 --batch_size 64 \
		--num_workers 1 --optimizer sgd --lars --grad_clip_lars --eta_lars 0.02 --exclude_bias_n_norm \
		--lr 0.6 --classifier_lr 0.1 --warmup_epochs 2 --temperature 0.2 --distill_temperature 0.2 \
		--solarization_prob 0.0 0.2 --gaussian_prob 0.0 0.0 \
		--eval_every_task --checkpoint_dir $(DEMO_DIR) --name demo-digits-simclr-pnr

test: install
	$(PY) -m pytest -p no:cacheprovider tests
