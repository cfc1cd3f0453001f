import sys

from dyntools.cli import main

sys.exit(main())
