"""What the composite action and the Docker image run.

With no arguments it runs the action's job (`batch-metrics run`, inputs from
`INPUT_*`); with arguments (`docker run IMAGE serve`) it is the CLI.
"""

import sys
from pathlib import Path

# The composite action runs this file from the action's checkout without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from batch_metrics.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["run"]))
