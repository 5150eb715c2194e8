from __future__ import annotations

import subprocess
import sys


def test_client_imports_without_torch() -> None:
    code = "import sys, hotpose_client; assert 'torch' not in sys.modules, 'torch was imported'; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"
