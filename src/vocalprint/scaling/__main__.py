import sys

from vocalprint.scaling.run import main

sys.exit(main())
