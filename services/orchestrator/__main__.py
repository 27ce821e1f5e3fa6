"""``python -m services.orchestrator``: run the orchestrator alone."""

import sys

from services.cli import main

if __name__ == "__main__":
    main(["serve", "orchestrator", *sys.argv[1:]])
