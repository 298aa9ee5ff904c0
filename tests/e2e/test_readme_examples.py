"""The README's shell examples run as pasted against a live server with the demo's keys file, so they stay true."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from shopfloor.demo import write_keys_file
from shopfloor.store.engine import make_engine
from shopfloor.store.keys import create_api_key
from shopfloor.store.migrate import upgrade_database
from tests.support.ci import skip_or_fail
from tests.support.server import ServerProcess

README = Path(__file__).resolve().parents[2] / "README.md"

#: Every curl in the examples fails the block on an HTTP error (and prints the error body), as a reader would see.
STRICT = 'set -euo pipefail\ncurl() { command curl --fail-with-body -sS "$@"; echo; }\n'


def _curl_and_bash_or_skip() -> None:
    """The live examples need curl and bash: a failure under CI (``CI=true``), a skip elsewhere."""
    missing = [tool for tool in ("curl", "bash") if shutil.which(tool) is None]
    if missing:
        skip_or_fail(f"the README examples need {' and '.join(missing)}: apt-get install -y {' '.join(missing)}")


def readme_shell_blocks() -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```$", README.read_text(), flags=re.S | re.M)


def test_the_readme_has_runnable_examples_and_no_uuidgen():
    blocks = readme_shell_blocks()
    assert len(blocks) >= 2
    assert all("uuidgen" not in b for b in blocks)
    for block in blocks:  # a JSON body without its Content-Type is refused: every -d must carry the header
        for command in re.split(r"\n(?=\S)", block):
            if " -d " in command:
                assert '"$JSON"' in command or "application/json" in command, command


def test_the_readme_examples_run_against_a_live_server(tmp_path):
    from datetime import datetime, timezone

    _curl_and_bash_or_skip()
    workdir = tmp_path / "var" / "demo"
    workdir.mkdir(parents=True)
    db_url = f"sqlite:///{workdir / 'shopfloor.db'}"
    upgrade_database(db_url)
    engine = make_engine(db_url)
    now = datetime.now(timezone.utc)
    keys = [create_api_key(engine, [scope], f"readme-{scope}", now)[1] for scope in ("admin", "storefront", "ingest")]
    engine.dispose()
    write_keys_file(workdir / "keys.env", *keys)
    server = ServerProcess(db_url, env={"SHOPFLOOR_DATA_DIR": str(workdir)},
                           log_path=tmp_path / "server.log").start()
    try:
        script = STRICT + "\n".join(readme_shell_blocks()).replace("localhost:8000", f"127.0.0.1:{server.port}")
        out = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    finally:
        server.stop()
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert '"order_id":"ord_' in out.stdout
    assert '"sku":"A1"' in out.stdout and '"available":998' in out.stdout  # one order of 2, not two
