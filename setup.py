"""Build hook for the optional native extensions: the CoreDNS-log tokenizer (kit/_fastlog.c)
and the capture engine (kit/_fastcap.c).

Everything else about the package is declared in pyproject.toml. Both extensions are optional:
where no C compiler is available the build goes on without them; ``kit.read_coredns_log`` then
uses its polars-only path (same results, about half the speed; ``kit.coredns.NATIVE`` tells) and
``kit.read_capture`` uses tshark for every file (``kit._capture_native.NATIVE`` tells).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "kit._fastlog",
            sources=["kit/_fastlog.c"],
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra"],
            optional=True,
        ),
        Extension(
            "kit._fastcap",
            sources=["kit/_fastcap.c"],
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra"],
            optional=True,
        ),
    ]
)
