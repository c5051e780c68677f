# Sourced (never run) by every script in bash_files/ and by the run_*.sh entry points.
#
# Reads the settings from the environment, fills the defaults, makes relative paths absolute, moves
# to the repository root (so the scripts work from any directory) and builds the flag arrays the
# scripts share. Settings, with their defaults:
#
#   PYTHON           interpreter                                         [python]
#   DATA_DIR         dataset root (--data_dir)                           [<repo>/datasets]
#   TRAIN_DIR        ImageNet-100 training ImageFolder tree              [$DATA_DIR/imagenet-100/train]
#   VAL_DIR          ImageNet-100 validation ImageFolder tree            [$DATA_DIR/imagenet-100/val]
#   IMAGENET_TRAIN_DIR, IMAGENET_VAL_DIR   the same for ImageNet-1k    [$DATA_DIR/imagenet/{train,val}]
#   CHECKPOINT_DIR   where run folders go: <CHECKPOINT_DIR>/<NAME>       [<repo>/trained_models]
#   NUM_TASKS        number of tasks (CIFAR-100, ImageNet-100, ImageNet)  [5; DomainNet is always 6]
#   SEED             --seed (also fixes the class split)                 [5]
#   PROJECT, ENTITY  wandb project and entity; empty PROJECT = no wandb  [empty]
#   NAME             run name; each script has its own default
#   PRETRAINED_PATH  a checkpoint (*_load_task0.sh: task 0; linear probes: the backbone to probe)
#   RUN_DIR          linear probes: a run folder, every task of it is probed (wins over PRETRAINED_PATH)
#
# Relative paths in these variables are taken from the directory the script is called from. Paths
# given as command-line flags are passed as they are, so they are relative to the repository root.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# abspath PATH: PATH made absolute against the current directory (empty stays empty).
abspath() {
    case "$1" in
        "" | /*) printf '%s\n' "$1" ;;
        *) printf '%s\n' "$PWD/${1#./}" ;;
    esac
}

PYTHON="${PYTHON:-python}"
DATA_DIR="$(abspath "${DATA_DIR:-$REPO_ROOT/datasets}")"
TRAIN_DIR="$(abspath "${TRAIN_DIR:-$DATA_DIR/imagenet-100/train}")"
VAL_DIR="$(abspath "${VAL_DIR:-$DATA_DIR/imagenet-100/val}")"
IMAGENET_TRAIN_DIR="$(abspath "${IMAGENET_TRAIN_DIR:-$DATA_DIR/imagenet/train}")"
IMAGENET_VAL_DIR="$(abspath "${IMAGENET_VAL_DIR:-$DATA_DIR/imagenet/val}")"
CHECKPOINT_DIR="$(abspath "${CHECKPOINT_DIR:-$REPO_ROOT/trained_models}")"
PRETRAINED_PATH="$(abspath "${PRETRAINED_PATH:-}")"
RUN_DIR="$(abspath "${RUN_DIR:-}")"
NUM_TASKS="${NUM_TASKS:-5}"
SEED="${SEED:-5}"
PROJECT="${PROJECT:-}"
ENTITY="${ENTITY:-}"
NAME="${NAME:-}"
export PYTHON DATA_DIR TRAIN_DIR VAL_DIR IMAGENET_TRAIN_DIR IMAGENET_VAL_DIR CHECKPOINT_DIR NUM_TASKS SEED PROJECT ENTITY

# wandb only when a project is given.
WANDB_ARGS=()
if [[ -n "$PROJECT" ]]; then
    WANDB_ARGS=(--wandb --project "$PROJECT")
    if [[ -n "$ENTITY" ]]; then
        WANDB_ARGS+=(--entity "$ENTITY")
    fi
fi

# What a linear probe evaluates: a whole run (RUN_DIR) or one checkpoint (PRETRAINED_PATH). With
# neither, main_linear.py names the flags it needs (one may also come last on the command line, for
# example --random_init for the forward-transfer baseline).
PROBE_SOURCE_ARGS=()
if [[ -n "$RUN_DIR" ]]; then
    PROBE_SOURCE_ARGS=(--run_dir "$RUN_DIR")
elif [[ -n "$PRETRAINED_PATH" ]]; then
    PROBE_SOURCE_ARGS=(--pretrained_feature_extractor "$PRETRAINED_PATH")
fi

# require_pretrained_path SCRIPT: stop with one line unless PRETRAINED_PATH is set.
require_pretrained_path() {
    if [[ -z "$PRETRAINED_PATH" ]]; then
        echo "$1: set PRETRAINED_PATH to the checkpoint of task 0 to start from" >&2
        exit 2
    fi
}

cd "$REPO_ROOT"

# ---------------------------------------------------------------------------------------------
# Whole-benchmark driver of the run_*.sh entry points.
#
# run_benchmark BENCH TAG [extra pretraining flags...]
#   BENCH  folder under bash_files/continual and bash_files/linear (cifar, imagenet-100/class, ...)
#   TAG    benchmark part of the run names (cifar100, imagenet100-class, ...)
# Reads METHODS, REGULARIZERS, NAME_SUFFIX and DRY_RUN. For every method and regulariser: continual
# pretraining, then the linear probe of every task of that run; at the end one summary table of all
# runs. Before anything trains, every command is checked with --dry_run (a second in all), so a
# misspelt method or flag stops the script before the first multi-hour run instead of after it.
# DRY_RUN=1 stops after that check and prints the commands instead of running them.

_die() {
    echo "${0##*/}: $*" >&2
    exit 1
}

_quote() {
    local out
    printf -v out '%q ' "$@"
    printf '%s\n' "${out% }"
}

# _step MODE LABEL COMMAND...: check (dry run, output hidden), print, or run COMMAND.
_step() {
    local mode="$1" label="$2"
    shift 2
    case "$mode" in
        check)
            "$@" --dry_run >/dev/null ||
                _die "$label: the command does not resolve (error above): $(_quote "$@")"
            ;;
        print)
            echo "+ $(_quote "$@")"
            ;;
        run)
            echo "+ $(_quote "$@")"
            "$@" || _die "$label failed (exit $?); later runs were not started. Command: $(_quote "$@")"
            ;;
    esac
}

run_benchmark() {
    local bench="$1" tag="$2"
    shift 2
    local tasks_tag="${NUM_TASKS}t"
    if [[ "$bench" == domainnet ]]; then
        tasks_tag="6t"
    fi
    local method reg name mode
    local -a names=() run_dirs=()
    for method in $METHODS; do
        [[ -f "bash_files/linear/$bench/${method}_linear.sh" ]] ||
            _die "unknown method '$method' in METHODS (choose from: mocov2plus byol vicreg simclr barlow)"
        for reg in $REGULARIZERS; do
            [[ -f "bash_files/continual/$bench/${method}_${reg}.sh" ]] ||
                _die "unknown regularizer '$reg' in REGULARIZERS (choose from: pnr cassle finetune)"
            name="$method-$reg-$tag-$tasks_tag${NAME_SUFFIX:-}"
            names+=("$method $reg $name")
            run_dirs+=("$CHECKPOINT_DIR/$name")
        done
    done
    [[ ${#names[@]} -gt 0 ]] || _die "METHODS and REGULARIZERS must not be empty"

    echo "${0##*/}: DATA_DIR=$DATA_DIR CHECKPOINT_DIR=$CHECKPOINT_DIR tasks=${tasks_tag%t}" \
        "SEED=$SEED PROJECT=${PROJECT:-<no wandb>} METHODS='$METHODS' REGULARIZERS='$REGULARIZERS'"
    local -a modes=(check run)
    if [[ "${DRY_RUN:-0}" == 1 ]]; then
        modes=(check print)
    fi
    local entry
    for mode in "${modes[@]}"; do
        for entry in "${names[@]}"; do
            read -r method reg name <<<"$entry"
            _step "$mode" "pretraining of $name" \
                env NAME="$name" bash "bash_files/continual/$bench/${method}_${reg}.sh" "$@"
            _step "$mode" "linear evaluation of $name" \
                env NAME="$name-linear" RUN_DIR="$CHECKPOINT_DIR/$name" \
                bash "bash_files/linear/$bench/${method}_linear.sh"
        done
    done
    local summary="$CHECKPOINT_DIR/summary-$tag-$tasks_tag${NAME_SUFFIX:-}.md"
    if [[ "${DRY_RUN:-0}" == 1 ]]; then
        _step print summary "$PYTHON" -m cassle.evaluation summary "${run_dirs[@]}"
        return 0
    fi
    mkdir -p "$CHECKPOINT_DIR"
    echo "+ $(_quote "$PYTHON" -m cassle.evaluation summary "${run_dirs[@]}") > $summary"
    "$PYTHON" -m cassle.evaluation summary "${run_dirs[@]}" >"$summary" ||
        _die "the summary failed (exit $?); the runs themselves finished"
    cat "$summary"
}
