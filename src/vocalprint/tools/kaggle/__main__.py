"""``python -m vocalprint.tools.kaggle build ...`` (see the package's docstring)."""
import sys

from vocalprint.tools.kaggle.kit import main

sys.exit(main())
