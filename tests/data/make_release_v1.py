# Kept as run to make tests/data/release_v1; see tests/data/README.md. Not collected by pytest.
"""Save a small real release with clio_lite at commit a0a12ac (release schema version 1)."""
import sys
from pathlib import Path

import clio_lite as cl
from fixtures.generate import generate_conversations

out = Path(sys.argv[1])
records = generate_conversations(400, seed=3)
clio = cl.Clio(min_users=5, min_conversations=10, random_state=0, cache_dir=False, verbose=False).fit(records)
clio.release_.save(out, overwrite=True)
print(clio.release_, clio.release_.counts)
