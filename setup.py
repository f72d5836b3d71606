"""Build hook for the optional native CoreDNS-log tokenizer (kit/_fastlog.c).

Everything else about the package is declared in pyproject.toml. The extension is optional:
where no C compiler is available the build goes on without it and ``kit.read_coredns_log``
uses its polars-only path (same results, about half the speed); ``kit.coredns.NATIVE`` tells
which one is in use.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "kit._fastlog",
            sources=["kit/_fastlog.c"],
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra"],
            optional=True,
        )
    ]
)
