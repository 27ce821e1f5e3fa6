"""The C part of the build; every other setting is in pyproject.toml.

`llmesh.services.telemetry._otlp_native` encodes spans for OTLP in C,
`llmesh.services.telemetry._lean_native` starts them, and
`llmesh.services.telemetry._current_native` makes them current. All three are optional: where
they cannot be compiled (no C compiler, no Python headers) the install goes on without them,
`llmesh.services.telemetry.otlp_wire` encodes every span in Python and
`llmesh.services.telemetry.lean_trace` starts every span in Python and
`llmesh.services.telemetry.current` changes the current context in Python.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "llmesh.services.telemetry._otlp_native",
            sources=["services/telemetry/_otlp_native.c"],
            optional=True,
        ),
        Extension(
            "llmesh.services.telemetry._lean_native",
            sources=["services/telemetry/_lean_native.c"],
            optional=True,
        ),
        Extension(
            "llmesh.services.telemetry._current_native",
            sources=["services/telemetry/_current_native.c"],
            optional=True,
        ),
    ]
)
