"""`python -m keras_nexus`: the same command line as `keras-nexus`."""

import sys

from keras_nexus.cli import main

sys.exit(main())
