import sys

from modelfolio.cli import main

sys.exit(main())
