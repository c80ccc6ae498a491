"""Build: the modules every record passes through are compiled to C with mypyc.

They stay plain typed Python (mypy strict), which is what mypyc compiles; the compiled module
sits beside its source and is the one imported. With NGX_ENRICH_PURE=1, or where no C compiler
is found, the same modules run as Python. Everything else (metadata, dependencies) is in
pyproject.toml.
"""

from __future__ import annotations

import glob
import os

from setuptools import Extension, setup

# The per-record path: read -> parse -> classify -> shape -> write.
COMPILED = [
    "ngx_enrich/catalog/__init__.py",
    "ngx_enrich/classify.py",
    "ngx_enrich/encode.py",
    "ngx_enrich/eventtime.py",
    "ngx_enrich/forward/events.py",
    "ngx_enrich/forward/protocol.py",
    "ngx_enrich/io.py",
    "ngx_enrich/parse/accesslog.py",
    "ngx_enrich/parse/dispatch.py",
    "ngx_enrich/parse/errorlog.py",
    "ngx_enrich/parse/fpm.py",
    "ngx_enrich/parse/jsonrecord.py",
    "ngx_enrich/parse/logformat.py",
    "ngx_enrich/parse/values.py",
    "ngx_enrich/parse/wrappers.py",
    "ngx_enrich/pipeline.py",
    "ngx_enrich/recurring.py",
    "ngx_enrich/shape.py",
    "ngx_enrich/text.py",
]


def extensions() -> list[Extension]:
    if os.environ.get("NGX_ENRICH_PURE") == "1":
        # an earlier editable install left compiled modules beside the sources: they would
        # still be the ones imported
        for source in COMPILED:
            for built in glob.glob(source.removesuffix(".py") + ".*.so"):
                os.remove(built)
        return []
    from mypyc.build import mypycify

    built = mypycify(COMPILED, opt_level="3", group_name="ngx_enrich")
    for ext in built:
        ext.optional = True  # a failed compile leaves the module to run as Python
    return built


setup(ext_modules=extensions())
