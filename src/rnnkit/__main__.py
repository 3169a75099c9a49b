import sys

from rnnkit.cli.main import main

sys.exit(main())
