"""`lav serve`: the interactive visualizer in the browser.

`lav.serve.app.create_app` builds the web app (FastAPI; the ``serve`` extra); `lav.cli.serve` is
the ``lav serve`` command. Importing this package imports neither torch nor the web framework.
"""
