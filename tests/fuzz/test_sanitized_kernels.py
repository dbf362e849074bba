"""The fuzz slice of the packet parsers against the kernels built with ASan and UBSan.

The kernels are C reading bytes anyone can put in a capture. A wild read may return
garbage without crashing, so the ordinary slice could pass over one; here the same
targets (pcap, pcapng, decode and rewrite) run in a child interpreter whose copy of
``diffserv._kernels`` is compiled with AddressSanitizer and UndefinedBehaviorSanitizer,
every allocation going through malloc (``PYTHONMALLOC=malloc``) so each buffer has red
zones. Any report ends the child with a distinct status and fails this test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SANITIZE = "-fsanitize=address,undefined"
SANITIZER_EXIT = 86


def _runtime(name: str) -> str:
    found = subprocess.run(
        ["cc", f"-print-file-name={name}"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return found if os.path.isabs(found) else ""


@pytest.fixture(scope="module")
def sanitized_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the package whose kernels carry the sanitizers."""
    if shutil.which("cc") is None:
        pytest.fail("no C compiler: `make setup` installs gcc")
    work = tmp_path_factory.mktemp("sanitized")
    site = work / "site"
    shutil.copytree(
        ROOT / "src" / "diffserv",
        site / "diffserv",
        ignore=shutil.ignore_patterns("*.so", "__pycache__"),
    )
    flags = f"{SANITIZE} -fno-sanitize-recover=all -fno-omit-frame-pointer -g -O1"
    env = {**os.environ, "CFLAGS": flags, "LDFLAGS": SANITIZE}
    build = [sys.executable, "setup.py", "--quiet", "build_ext"]
    build += ["--build-lib", str(work / "lib"), "--build-temp", str(work / "tmp")]
    subprocess.run(build, cwd=ROOT, env=env, check=True, capture_output=True)
    (built,) = (work / "lib" / "diffserv").glob("_kernels*.so")
    shutil.copy(built, site / "diffserv" / built.name)
    return site


def test_the_packet_parsers_fuzz_clean_under_the_sanitizers(sanitized_site: Path) -> None:
    asan, ubsan = _runtime("libasan.so"), _runtime("libubsan.so")
    if not asan or not ubsan:
        pytest.fail("the compiler has no ASan/UBSan runtime (Debian: libasan8, libubsan1)")
    env = {
        **os.environ,
        "PYTHONPATH": f"{sanitized_site}{os.pathsep}{ROOT / 'tests'}",
        "LD_PRELOAD": f"{asan} {ubsan}",
        "PYTHONMALLOC": "malloc",
        "ASAN_OPTIONS": f"detect_leaks=0:exitcode={SANITIZER_EXIT}",
        "UBSAN_OPTIONS": f"halt_on_error=1:print_stacktrace=1:exitcode={SANITIZER_EXIT}",
    }
    probe = "import sys, diffserv._kernels as k; sys.exit(not k.__file__.startswith(sys.argv[1]))"
    subprocess.run([sys.executable, "-c", probe, str(sanitized_site)], env=env, check=True)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            str(ROOT / "tests" / "fuzz" / "test_fuzz_slice.py"),
            "-k",
            "pcap or decode",
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    report = (result.stdout + result.stderr)[-4000:]
    assert result.returncode != SANITIZER_EXIT, f"sanitizer report:\n{report}"
    assert result.returncode == 0, report
