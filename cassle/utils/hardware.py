"""Which numeric precision a run gets on which machine (torch-free, so ``--dry_run`` stays fast).

The policy (``docs/decisions.md``, "precision"):

* ``--precision`` keeps the official spellings (``16`` = fp16 mixed, ``bf16``, ``32``) and the
  Lightning 2 names (``16-mixed``, ``bf16-mixed``, ``32-true``, ``64-true``); ``auto`` or no flag
  leaves the choice to the machine.
* Automatic choice: a GPU gets the official fp16 mixed precision; a CPU gets bf16 mixed precision only
  where it computes bf16 natively (the ``avx512_bf16`` or ``amx_bf16`` CPU flags), otherwise fp32. On a
  CPU without them, bf16 autocast is emulated and runs several times slower than fp32.
* ``--precision 16`` on a CPU (PyTorch has no fp16 autocast there) becomes that CPU default, with one
  note saying so.
"""

from __future__ import annotations

# Every accepted spelling of --precision, mapped to the Lightning 2 name.
PRECISIONS = {
    "16": "16-mixed", "16-mixed": "16-mixed",
    "bf16": "bf16-mixed", "bf16-mixed": "bf16-mixed",
    "32": "32-true", "32-true": "32-true",
    "64": "64-true", "64-true": "64-true",
}
AUTO = "auto"
# /proc/cpuinfo flags of x86 CPUs with bf16 arithmetic in hardware (Cooper Lake, Sapphire Rapids, Zen 4 ...).
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
CPUINFO_PATH = "/proc/cpuinfo"


def normalize_precision(requested: str | None) -> str:
    """The Lightning 2 name of a ``--precision`` value, or ``"auto"`` for None / ``auto``.

    Raises:
        KeyError: an unknown spelling (argparse's ``choices`` rejects those before this is called).
    """
    if requested is None or str(requested) == AUTO:
        return AUTO
    return PRECISIONS[str(requested)]


def read_cpuinfo(path: str | None = None) -> str | None:
    """The text of ``path`` (default ``/proc/cpuinfo``), or None where it does not exist or cannot be read
    (macOS, Windows)."""
    try:
        with open(path or CPUINFO_PATH, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return None


def cpu_has_native_bf16(cpuinfo_text: str | None = None) -> bool:
    """Whether the CPU lists ``avx512_bf16`` or ``amx_bf16`` among its flags.

    Args:
        cpuinfo_text: the text of ``/proc/cpuinfo``; None reads the file (unreadable: False).

    Returns:
        True when any ``flags`` line holds one of the two flags as a whole word.
    """
    text = read_cpuinfo() if cpuinfo_text is None else cpuinfo_text
    if not text:
        return False
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "flags" and NATIVE_BF16_FLAGS & set(value.split()):
            return True
    return False


def cpu_default_precision(cpuinfo_text: str | None = None) -> str:
    """``bf16-mixed`` on a CPU with native bf16, else ``32-true``."""
    return "bf16-mixed" if cpu_has_native_bf16(cpuinfo_text) else "32-true"


def resolve_precision(requested: str | None, accelerator: str,
                      cpuinfo_text: str | None = None) -> tuple[str, str | None]:
    """The Lightning precision a run uses on ``accelerator``, and a note to print (or None).

    Args:
        requested: the ``--precision`` value in any accepted spelling; None or ``auto``: the machine's
            default.
        accelerator: the resolved accelerator, ``gpu``, ``cpu`` or ``mps`` (not ``auto``).
        cpuinfo_text: the text of ``/proc/cpuinfo`` (None: read it when needed); tests pass fake ones.

    Returns:
        ``(precision, note)``: a Lightning 2 precision name and, where the request was changed or is
        known to be slow, one line for the user.
    """
    wanted = normalize_precision(requested)
    if accelerator == "gpu":
        return ("16-mixed" if wanted == AUTO else wanted), None
    if accelerator != "cpu":  # mps: full precision unless asked otherwise
        return ("32-true" if wanted == AUTO else wanted), None
    if wanted == AUTO:
        return cpu_default_precision(cpuinfo_text), None
    if wanted == "16-mixed":
        fallback = cpu_default_precision(cpuinfo_text)
        why = "this CPU has native bf16" if fallback == "bf16-mixed" else "this CPU has no native bf16"
        return fallback, (f"note: --precision 16 (fp16 mixed) is not available on the CPU; "
                          f"using {fallback} ({why})")
    if wanted == "bf16-mixed" and not cpu_has_native_bf16(cpuinfo_text):
        return wanted, ("note: this CPU has no native bf16 (no avx512_bf16/amx_bf16 flag): bf16 autocast "
                        "is emulated and several times slower than --precision 32")
    return wanted, None
