# Two entry points, each of which sets everything up on a fresh machine:
#   make demo   5-task continual run (SimCLR + PNR) on the embedded digits data, CPU, then a linear
#               probe after every task: prints the accuracy table, writes results.md / results.png
#   make test   the test suite (CPU, a few minutes)
#   make test-ddp, make test-faults   the long DDP and fault-injection tests (kills, signals, SLURM requeue)
# and one for a GPU machine, which uses the python it finds (no .venv: GPU images bring their own torch):
#   make gpu-check   GPU acceptance check, about 4 minutes: fp16 training of every method with PNR on both
#                    data paths, GPU JPEG decoding, DDP (2+ GPUs), benchmark; writes gpu_check.json / .md
PYTHON_BASE ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_DIR ?= trained_models

.PHONY: demo test test-ddp test-faults test-slow lint install digits-comparison gpu-check

install: $(VENV)/.installed

# The exact pins of requirements.txt, then the package itself (editable, no further downloads).
$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON_BASE) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet "setuptools>=64"
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

# The CIFAR-100 recipes shrunk to the 2-core CPU: 16 px digits, batch 64, 6 epochs (24 steps) per task.
# Precision is the machine's default (fp32 unless the CPU has native bf16). No warm-up: with epochs of 4
# steps the per-epoch warm-up is a single jump of the learning rate (0.003 to the base), which lets SGD's
# momentum buffer, filled at the small rate with gradients LARS did not rescale, throw the weights (the
# online classifier first) at the full rate. The online classifier is off: under LARS its steps are capped
# at 2% of its weight norm, far too few in 120 steps to converge; the linear probes give the accuracies.
DIGITS := --dataset digits --num_tasks 5 --accelerator cpu --channels_last \
	--max_epochs 6 --warmup_epochs 0 --batch_size 64 --num_workers 1 --optimizer sgd --lars \
	--grad_clip_lars --eta_lars 0.02 --exclude_bias_n_norm --no_online_eval \
	--solarization_prob 0.0 0.2 --gaussian_prob 0.0 0.0 --eval_every_task --checkpoint_dir $(DEMO_DIR)
SIMCLR := --method simclr --lr 0.6 --temperature 0.2
BYOL := --method byol --lr 1.0 --weight_decay 1e-5 --proj_hidden_dim 4096 --pred_hidden_dim 4096 \
	--output_dim 256 --momentum_classifier --base_tau_momentum 0.99 --final_tau_momentum 1.0
RUN := OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(PY) main_pretrain.py $(DIGITS)

demo: install
	rm -rf $(DEMO_DIR)/demo-digits-simclr-pnr
	$(RUN) $(SIMCLR) --distiller simclr_pnr --name demo-digits-simclr-pnr

# Fine-tuning vs CaSSLe vs PNR for SimCLR and BYOL on digits (six runs of about the demo's length).
COMPARISON := simclr-finetune simclr-cassle simclr-pnr byol-finetune byol-cassle byol-pnr
digits-comparison: install
	for run in $(COMPARISON); do rm -rf $(DEMO_DIR)/digits-$$run; done
	$(RUN) $(SIMCLR) --name digits-simclr-finetune
	$(RUN) $(SIMCLR) --distiller contrastive --name digits-simclr-cassle
	$(RUN) $(SIMCLR) --distiller simclr_pnr --name digits-simclr-pnr
	$(RUN) $(BYOL) --name digits-byol-finetune
	$(RUN) $(BYOL) --distiller predictive --name digits-byol-cassle
	$(RUN) $(BYOL) --distiller byol_pnr --negative_lamb 0.5 --name digits-byol-pnr
	$(PY) -m cassle.evaluation summary $(addprefix $(DEMO_DIR)/digits-,$(COMPARISON))

test: install
	$(PY) -m pytest --durations=15 tests

# The long multi-process tests (DDP, torchrun) and fault-injection runs (kills, signals, SLURM requeue).
test-ddp: install
	$(PY) -m pytest --durations=10 -m ddp tests/ddp

test-faults: install
	$(PY) -m pytest --durations=10 -m faults tests

# End-to-end checks of what training learns (a pretrained backbone against a random one).
test-slow: install
	$(PY) -m pytest --durations=10 -m slow tests

lint: install
	$(PY) -m ruff check .

gpu-check:
	$(PYTHON_BASE) -m cassle.gpu_check $(GPU_CHECK_ARGS)
