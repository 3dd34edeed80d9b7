import sys

from todkit.cli import main

sys.exit(main())
