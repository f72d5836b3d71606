"""Build hooks: the optional native extensions, the CoreDNS-log tokenizer (kit/_fastlog.c) and
the capture engine (kit/_fastcap.c), and the notebooks shipped as package data.

Everything else about the package is declared in pyproject.toml. Both extensions are optional:
where no C compiler is available the build goes on without them; ``kit.read_coredns_log`` then
uses its polars-only path (same results, about half the speed; ``kit.sources.coredns.NATIVE`` tells) and
``kit.read_capture`` uses tshark for every file (``kit.sources.capture._native.NATIVE`` tells).

The guided notebooks stay at the top of the repository (``notebooks/*.py``, their source of
truth); the build copies them into the package as ``kit/_notebooks/`` so that ``dnskit report``
and ``dnskit notebooks`` work from any directory after ``pip install`` of the wheel. An editable
install reads them from the checkout instead (``kit.report.notebooks.notebook_dir``).
"""

import shutil
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


class BuildPyWithNotebooks(build_py):
    """``build_py`` that also copies ``notebooks/*.py`` and their README to ``kit/_notebooks``."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install finds them in the checkout
        src = HERE / "notebooks"
        notebooks = sorted(src.glob("[0-9]*.py"))
        if not notebooks:
            raise SystemExit(f"no notebooks in {src}: the wheel would ship without them")
        dest = Path(self.build_lib) / "kit" / "_notebooks"
        dest.mkdir(parents=True, exist_ok=True)
        for f in [*notebooks, src / "README.md"]:
            if f.is_file():
                shutil.copy2(f, dest / f.name)


setup(
    cmdclass={"build_py": BuildPyWithNotebooks},
    ext_modules=[
        Extension(
            "kit._fastlog",
            sources=["kit/_fastlog.c"],
            depends=["kit/_arrow_c.h"],
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra"],
            optional=True,
        ),
        Extension(
            "kit._fastcap",
            sources=["kit/_fastcap.c"],
            depends=["kit/_arrow_c.h"],
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra"],
            optional=True,
        ),
    ],
)
