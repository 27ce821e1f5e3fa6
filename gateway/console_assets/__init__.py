"""The console's static files (ES modules, one stylesheet, one page), served at ``/console``
by `llmesh.gateway.console`; no build step, nothing fetched from elsewhere at run time."""
