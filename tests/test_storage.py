"""Folders on network shares and in synced folders are recognised and warned about."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from caaspp_cli.storage import _mount_table, _mount_type, storage_warning, synced_by


@pytest.mark.parametrize(
    ("folder", "client"),
    [
        ("OneDrive - Lincoln Unified/reports", "OneDrive"),
        ("OneDrive/Assessment", "OneDrive"),
        ("Dropbox/ssr", "Dropbox"),
        ("Google Drive/My Drive/ssr", "Google Drive"),
    ],
)
def test_a_folder_inside_a_sync_clients_folder_is_named(
    tmp_path: Path, folder: str, client: str
) -> None:
    path = tmp_path / folder
    assert synced_by(path, {}) == client
    warning = storage_warning(path, {})
    assert warning is not None and client in warning and str(path) in warning


def test_the_onedrive_variable_marks_its_folder_whatever_its_name(tmp_path: Path) -> None:
    root = tmp_path / "Lincoln Unified School District"
    env = {"OneDriveCommercial": str(root)}
    assert synced_by(root / "reports" / "2025", env) == "OneDrive"
    assert synced_by(tmp_path / "Lincoln Unified School District 2", env) is None


def test_an_ordinary_folder_gets_no_warning(tmp_path: Path) -> None:
    for name in ("reports", "onedrivers", "dropboxes-of-paper"):
        assert storage_warning(tmp_path / name, {}) is None


def test_a_network_file_system_is_found_by_the_longest_mount_point() -> None:
    mounts = [("/", "ext4"), ("/mnt/district", "cifs"), ("/mnt/district/local", "ext4")]
    assert _mount_type(Path("/mnt/district/ssr/2025"), mounts) == "cifs"
    assert _mount_type(Path("/mnt/district/local/ssr"), mounts) == "ext4"
    assert _mount_type(Path("/mnt/districts"), mounts) == "ext4"
    assert _mount_type(Path("/home/x"), [("/home", "nfs4"), ("/", "ext4")]) == "nfs4"


@pytest.mark.skipif(sys.platform != "linux", reason="reads Linux's mount table")
def test_the_real_mount_table_is_read(tmp_path: Path) -> None:
    kinds = dict(_mount_table())
    assert "/" in kinds
    assert _mount_type(tmp_path, _mount_table()) is not None
    point = tmp_path / "with space"
    point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(point)])
    if done.returncode != 0:
        pytest.skip("this machine does not allow mounting a tmpfs")
    try:
        assert _mount_type(point / "reports", _mount_table()) == "tmpfs"
    finally:
        subprocess.run(["umount", str(point)], check=True)


def test_bulk_into_a_onedrive_folder_warns_once_and_still_runs(
    cli, sandbox, sandbox_profile, tmp_path: Path
) -> None:
    from caaspp_cli.cli.sandbox import roster_csv

    roster = tmp_path / "roster.csv"
    roster.write_text(roster_csv(sandbox.state.world.roster_rows()[:2]), encoding="utf-8")
    out = tmp_path / "OneDrive - Lincoln Unified" / "reports"
    result = cli("bulk", str(roster), "--out", str(out))
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "OneDrive" in warnings[0]
    assert list(out.rglob("*.pdf"))
