import sys

from bgeft.cli.main import main

sys.exit(main())
