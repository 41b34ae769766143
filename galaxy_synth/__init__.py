"""galaxy-synth's command line, thin over the stages below it: ``cli`` (the ``galaxy-synth`` command) over ``api``
(the same functions for notebooks), ``console`` (what the commands print), ``report`` (a study's HTML page),
``workers`` (search worker processes); ``export/`` (the best trials packaged as model folders) and
``predict/`` (a model folder run on images or a survey catalogue), the last two stages of the pipeline."""

import lazy_loader

__version__ = "0.1.0"

# The front door: the two ways in, loaded on first use (``galaxy-synth --help`` imports neither stage).
__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submodules=["api", "cli"])
