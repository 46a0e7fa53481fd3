import sys

from vocalprint.cli import main

sys.exit(main())
