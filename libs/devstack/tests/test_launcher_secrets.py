"""The demo API key file is created readable by its owner only, never written first and restricted
after (another user could open it in between)."""
import os
import stat
import sys

from posint_devstack.seed import seed_demo

_chmods: list[str] = []
sys.addaudithook(lambda event, args: event == "os.chmod" and _chmods.append(str(args[0])))


async def test_the_api_key_file_is_created_private(infra, tmp_path):
    key_file = tmp_path / "api-key"
    previous = os.umask(0)  # whatever the file is created with shows as is
    try:
        api_key = await seed_demo(infra.database_url, key_file)
    finally:
        os.umask(previous)
    assert api_key and key_file.read_text().strip() == api_key
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert str(key_file) not in _chmods, "created open, then restricted"
    assert not [p for p in tmp_path.iterdir() if p != key_file], "no temporary file left behind"
