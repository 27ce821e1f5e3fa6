"""The C part of the build; every other setting is in pyproject.toml.

`llmesh.services.telemetry._otlp_native` encodes spans for OTLP in C. It is optional: where
it cannot be compiled (no C compiler, no Python headers) the install goes on without it and
`llmesh.services.telemetry.otlp_wire` encodes every span in Python.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "llmesh.services.telemetry._otlp_native",
            sources=["services/telemetry/_otlp_native.c"],
            optional=True,
        )
    ]
)
