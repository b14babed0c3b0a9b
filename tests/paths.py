"""Where test data lives. `shared/` sits beside the repository (also in CI's clean clone)."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_SAMPLES = Path(os.environ.get("CLAIMDESK_SAMPLES", REPO.parent / "shared" / "samples"))
DATA = REPO / "tests" / "data"
