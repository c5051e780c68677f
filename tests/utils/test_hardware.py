"""The precision policy: which precision each machine gets, from fake /proc/cpuinfo texts."""

import pytest

from cassle.utils.hardware import cpu_has_native_bf16, normalize_precision, read_cpuinfo, resolve_precision

# Abridged /proc/cpuinfo of real machines: two logical CPUs each.
EPYC_AVX2 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B13
flags\t\t: fpu vme sse sse2 avx avx2 fma bmi2 sha_ni
bugs\t\t: sysret_ss_attrs

processor\t: 1
vendor_id\t: AuthenticAMD
flags\t\t: fpu vme sse sse2 avx avx2 fma bmi2 sha_ni
"""
SAPPHIRE_RAPIDS = """processor\t: 0
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile amx_int8

processor\t: 1
flags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile amx_int8
"""
ZEN4 = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 avx512_vnni\n"
ONLY_AMX = "processor\t: 0\nflags\t\t: fpu avx2 amx_bf16 amx_tile\n"
# The flag's name elsewhere than on a flags line, or as part of another word, does not count.
DECOY = ("processor\t: 0\nmodel name\t: avx512_bf16 lookalike\n"
         "flags\t\t: fpu avx2 avx512_bf16x\npower management: amx_bf16\n")


@pytest.mark.parametrize("text, native", [
    (EPYC_AVX2, False), (SAPPHIRE_RAPIDS, True), (ZEN4, True), (ONLY_AMX, True), (DECOY, False), ("", False),
])
def test_native_bf16_from_cpu_flags(text, native):
    assert cpu_has_native_bf16(text) is native


def test_unreadable_cpuinfo_means_no_native_bf16(tmp_path, monkeypatch):
    assert read_cpuinfo(str(tmp_path / "missing")) is None
    monkeypatch.setattr("cassle.utils.hardware.CPUINFO_PATH", str(tmp_path / "missing"))
    assert cpu_has_native_bf16() is False
    assert resolve_precision(None, "cpu") == ("32-true", None)


@pytest.mark.parametrize("requested", [None, "auto"])
def test_automatic_choice(requested):
    assert resolve_precision(requested, "gpu", EPYC_AVX2) == ("16-mixed", None)
    assert resolve_precision(requested, "cpu", EPYC_AVX2) == ("32-true", None)
    assert resolve_precision(requested, "cpu", SAPPHIRE_RAPIDS) == ("bf16-mixed", None)
    assert resolve_precision(requested, "mps", EPYC_AVX2) == ("32-true", None)


@pytest.mark.parametrize("spelling", ["16", "16-mixed"])
def test_fp16_on_a_cpu_becomes_the_cpu_default_with_one_note(spelling):
    precision, note = resolve_precision(spelling, "cpu", EPYC_AVX2)
    assert precision == "32-true"
    assert note.startswith("note: --precision 16") and "32-true" in note and "\n" not in note
    precision, note = resolve_precision(spelling, "cpu", SAPPHIRE_RAPIDS)
    assert precision == "bf16-mixed" and "bf16-mixed" in note
    assert resolve_precision(spelling, "gpu", EPYC_AVX2) == ("16-mixed", None)


def test_explicit_values_are_kept():
    for spelling, name in (("32", "32-true"), ("32-true", "32-true"), ("64", "64-true"), ("bf16", "bf16-mixed")):
        assert resolve_precision(spelling, "gpu", EPYC_AVX2) == (name, None)
        assert resolve_precision(spelling, "cpu", SAPPHIRE_RAPIDS) == (name, None)
    assert resolve_precision("32", "cpu", EPYC_AVX2) == ("32-true", None)
    # bf16 asked for on a CPU without it is honoured, with a warning about its speed.
    precision, note = resolve_precision("bf16", "cpu", EPYC_AVX2)
    assert precision == "bf16-mixed" and "no native bf16" in note


def test_normalize_precision():
    assert normalize_precision(None) == normalize_precision("auto") == "auto"
    assert normalize_precision("16") == "16-mixed"
    assert normalize_precision(32) == "32-true"
    with pytest.raises(KeyError):
        normalize_precision("fp8")


# ---------------------------------------------------------------------------------------- the joints
def _no_cpuinfo(*args, **kwargs):
    raise AssertionError("--dry_run must not look at the hardware")


def test_dry_run_leaves_the_choice_to_the_machine(monkeypatch):
    from cassle.args.linear import parse_args as parse_linear
    from cassle.args.pretrain import parse_args

    monkeypatch.setattr("cassle.utils.hardware.read_cpuinfo", _no_cpuinfo)
    assert parse_args(["--dry_run"]).to_flat()["precision"] == "auto"
    assert parse_args(["--precision", "auto", "--dry_run"]).to_flat()["precision"] == "auto"
    assert parse_args(["--precision", "16", "--dry_run"]).to_flat()["precision"] == "16-mixed"
    assert parse_linear(["--random_init", "--dry_run"]).precision == "auto"


@pytest.mark.parametrize("flags, cpuinfo, expected, note", [
    ([], EPYC_AVX2, "32-true", None),
    ([], SAPPHIRE_RAPIDS, "bf16-mixed", None),
    (["--precision", "16"], EPYC_AVX2, "32-true", "note: --precision 16"),
    (["--precision", "32"], SAPPHIRE_RAPIDS, "32-true", None),
])
def test_pretraining_on_a_cpu_follows_the_policy(flags, cpuinfo, expected, note, monkeypatch, capsys):
    from cassle.args.pretrain import parse_args
    from cassle.train import resolve_hardware

    monkeypatch.setattr("cassle.utils.hardware.read_cpuinfo", lambda path=None: cpuinfo)
    cfg = resolve_hardware(parse_args(["--accelerator", "cpu", *flags]))
    assert cfg.trainer.precision == expected
    err = capsys.readouterr().err
    assert (note in err and len(err.strip().splitlines()) == 1) if note else err == ""


def test_probe_on_a_cpu_follows_the_policy(monkeypatch, capsys):
    import torch

    from cassle.args.linear import parse_args as parse_linear
    from cassle.evaluation.probe import probe_precision

    monkeypatch.setattr("cassle.utils.hardware.read_cpuinfo", lambda path=None: EPYC_AVX2)
    config = parse_linear(["--random_init", "--accelerator", "cpu", "--precision", "16"])
    assert probe_precision(config, torch.device("cpu")) == "32-true"
    assert "note: --precision 16" in capsys.readouterr().err
    monkeypatch.setattr("cassle.utils.hardware.read_cpuinfo", lambda path=None: SAPPHIRE_RAPIDS)
    assert probe_precision(parse_linear(["--random_init", "--accelerator", "cpu"]), torch.device("cpu")) == "bf16-mixed"
