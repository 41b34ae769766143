import sys

from galaxy_synth.cli import main

sys.exit(main())
