"""One module per benchmark, each run by `python -m loadtest NAME` (see `loadtest/__main__.py`)."""
