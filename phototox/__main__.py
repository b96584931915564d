"""python -m phototox"""

import sys

from phototox.apps.cli import main

sys.exit(main())
