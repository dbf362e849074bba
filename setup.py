"""Build the compiled kernels (``diffserv._kernels``) when the package is installed.

Everything else about the package is declared in ``pyproject.toml``; this file exists
only because an extension module needs a build step. Installing needs a C compiler and
the Python headers (``make setup`` installs them on Debian).
"""

from pathlib import Path

from setuptools import Extension, setup

KERNEL_DIR = Path("src/kernels")

setup(
    ext_modules=[
        Extension(
            "diffserv._kernels",
            sources=sorted(str(path) for path in KERNEL_DIR.glob("*.c")),
            depends=sorted(str(path) for path in KERNEL_DIR.glob("*.h")),
            include_dirs=[str(KERNEL_DIR)],
            extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
        )
    ]
)
