"""Packaging checks that need no build: the spec, installers, icons and metadata agree.

The build itself (PyInstaller, the .deb, and the frozen app's self-check) runs after the
tests in CI: installer/build-linux.sh then installer/smoke-linux.sh.
"""

from __future__ import annotations

import ast
import os
import plistlib
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import PyInstaller.compat
import pytest
import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
ICONS = ROOT / "resources" / "icons"
DESKTOP = ROOT / "resources" / "bucket-chat-desktop.desktop"
METAINFO = ROOT / "resources" / "io.github.bucketchat.BucketChat.metainfo.xml"
SPEC = ROOT / "build.spec"
RELEASE = ROOT / ".github" / "workflows" / "release.yml"
APP_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
TRAY_SIZES = (16, 22, 24, 32, 48)
SHELL_SCRIPTS = (
    "installer/build-linux.sh",
    "installer/smoke-linux.sh",
    "installer/linux/build-deb.sh",
    "installer/linux/build-appimage.sh",
    "installer/linux/launcher.sh",
    "installer/linux/appimage/AppRun",
    "installer/macos/build-dmg.sh",
)


def desktop_entry() -> dict[str, str]:
    group, entry = None, {}
    for line in DESKTOP.read_text(encoding="utf-8").splitlines():
        if line.startswith("["):
            group = line.strip("[]")
        elif "=" in line and group == "Desktop Entry":
            key, value = line.split("=", 1)
            entry[key] = value
    return entry


def spec_text() -> str:
    return SPEC.read_text(encoding="utf-8")


# -- icons ------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", APP_SIZES)
def test_app_icon_png_has_its_size(size: int) -> None:
    with Image.open(ICONS / f"bucket-chat-{size}.png") as img:
        assert img.format == "PNG" and img.size == (size, size) and img.mode == "RGBA"
        # Transparent corners (a rounded square), an opaque middle.
        alpha = img.getchannel("A")
        assert alpha.getpixel((0, 0)) < 128 and alpha.getpixel((size // 2, size // 2)) == 255


def test_ico_holds_every_windows_size() -> None:
    with Image.open(ICONS / "bucket-chat.ico") as ico:
        sizes = set(ico.info["sizes"])
    assert {(s, s) for s in (16, 24, 32, 48, 64, 128, 256)} <= sizes


def test_icns_holds_the_macos_sizes() -> None:
    """Every point size at 2x (Retina), 128-512 also at 1x (Pillow writes no 16/32 @1x:
    macOS scales the 2x ones down for the rare non-Retina screen)."""
    with Image.open(ICONS / "bucket-chat.icns") as icns:
        sizes = {(w, scale) for (w, _h, scale) in icns.icns.itersizes()}  # type: ignore[attr-defined]
    assert {(16, 2), (32, 2), (128, 1), (128, 2), (256, 1), (256, 2), (512, 1), (512, 2)} <= sizes


def _rgba_pixels(img: Image.Image) -> list[tuple[int, ...]]:
    data = img.convert("RGBA").tobytes()
    return [tuple(data[i : i + 4]) for i in range(0, len(data), 4)]


def _luminance(rgb: tuple[int, ...]) -> float:
    r, g, b = rgb[:3]
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


@pytest.mark.parametrize("size", TRAY_SIZES)
def test_tray_icon_reads_on_light_and_dark_panels(size: int) -> None:
    """A light body and a dark outline: on any panel one of them contrasts."""
    with Image.open(ICONS / f"tray-{size}.png") as img:
        assert img.size == (size, size) and img.mode == "RGBA"
        pixels = _rgba_pixels(img)
    opaque = [p for p in pixels if p[3] >= 200]
    light = sum(1 for p in opaque if _luminance(p) > 200)
    dark = sum(1 for p in opaque if _luminance(p) < 70)
    assert light >= size * size * 0.15, "the body must be light (dark panels)"
    assert dark >= size * 1.5, "the outline must be dark (light panels)"
    assert pixels[0][3] == 0, "no background: the panel shows through"


def test_icon_script_reproduces_the_committed_icons() -> None:
    """resources/make_icons.py draws what is committed (small tolerance for Pillow's
    resampling across versions)."""
    sys.path.insert(0, str(ROOT / "resources"))
    try:
        import make_icons
    finally:
        sys.path.pop(0)
    for drawn, name in (
        (make_icons.app_icon(16), "bucket-chat-16"),
        (make_icons.tray_icon(22), "tray-22"),
    ):
        with Image.open(ICONS / f"{name}.png") as committed:
            pixels = zip(_rgba_pixels(drawn), _rgba_pixels(committed), strict=True)
            worst = max(max(abs(a - b) for a, b in zip(p, q, strict=True)) for p, q in pixels)
        assert worst <= 24, f"{name}.png is out of date: run python resources/make_icons.py"


def test_window_icon_is_found_in_the_frozen_layout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """build.spec puts the icons in <_MEIPASS>/resources/icons; app._app_icon must find
    them from the package there (<_MEIPASS>/bucket_chat_desktop/app.pyc)."""
    from bucket_chat_desktop import app

    assert re.search(r'\(str\(p\), "resources/icons"\) for p in sorted\(ICONS\.glob', spec_text())
    internal = tmp_path / "_internal"
    (internal / "resources" / "icons").mkdir(parents=True)
    icon = internal / "resources" / "icons" / "bucket-chat-256.png"
    shutil.copy(ICONS / "bucket-chat-256.png", icon)
    monkeypatch.setattr(app, "__file__", str(internal / "bucket_chat_desktop" / "app.pyc"))
    assert app._app_icon() == str(icon)


# -- freedesktop metadata -------------------------------------------------------------------


def test_desktop_entry_names_the_launcher_and_icon() -> None:
    entry = desktop_entry()
    assert entry["Type"] == "Application" and entry["Exec"].split()[0] == "bucket-chat-desktop"
    assert entry["Icon"] == "bucket-chat-desktop"
    # Qt sets WM_CLASS to the executable's name; the app's desktop file name must match.
    assert entry["StartupWMClass"] == "bucket-chat-desktop"
    assert 'setDesktopFileName("bucket-chat-desktop")' in (
        ROOT / "bucket_chat_desktop" / "app.py"
    ).read_text(encoding="utf-8")
    assert {"Network", "Chat"} <= set(entry["Categories"].rstrip(";").split(";"))


@pytest.mark.skipif(shutil.which("desktop-file-validate") is None, reason="desktop-file-utils")
def test_desktop_entry_validates() -> None:
    run = subprocess.run(["desktop-file-validate", str(DESKTOP)], capture_output=True, text=True)
    assert run.returncode == 0 and not run.stdout.strip(), run.stdout + run.stderr


def test_metainfo_matches_the_desktop_entry() -> None:
    root = ET.parse(METAINFO).getroot()
    assert root.get("type") == "desktop-application"
    assert root.findtext("id") == "io.github.bucketchat.BucketChat"
    assert root.findtext("launchable") == DESKTOP.name
    assert root.findtext("project_license") == "AGPL-3.0-or-later"
    binaries = {b.text for b in root.iter("binary")}
    assert binaries == {"bucket-chat", "bucket-chat-desktop"}


@pytest.mark.skipif(shutil.which("appstreamcli") is None, reason="appstream")
def test_metainfo_validates() -> None:
    run = subprocess.run(
        ["appstreamcli", "validate", "--no-net", str(METAINFO)], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stdout + run.stderr


# -- build.spec -----------------------------------------------------------------------------


def test_spec_is_python_and_builds_both_executables_into_one_folder() -> None:
    tree = ast.parse(spec_text())
    calls = [
        n.func.id
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
    ]
    assert calls.count("Analysis") == 1 and calls.count("EXE") == 2 and calls.count("COLLECT") == 1
    text = spec_text()
    assert 'name="bucket-chat-desktop"' in text and 'name="bucket-chat"' in text
    assert "console=False" in text and "console=True" in text
    for entry in ("bucket_chat_desktop_gui.py", "bucket_chat_cli.py"):
        assert (ROOT / "installer" / "pyinstaller" / entry).is_file()


@pytest.mark.parametrize("entry", ["bucket_chat_desktop_gui.py", "bucket_chat_cli.py"])
def test_entry_points_become_a_worker_process_before_loading_the_app(entry: str) -> None:
    # A cold read verifies in worker processes started by ``spawn`` (sync/verifier.py): in
    # the frozen app that is the executable itself, run again, and it must turn into the
    # worker before importing the app (and Qt). ``--smoke`` proves the frozen result.
    tree = ast.parse((ROOT / "installer" / "pyinstaller" / entry).read_text("utf-8"))
    order = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("bucket_chat"):
            order.append("app")
        elif (
            isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Call)
            and ast.unparse(node.value.func) == "multiprocessing.freeze_support"
        ):
            order.append("freeze_support")
    assert order[:2] == ["freeze_support", "app"], order


def _spec_function(name: str, **names: object) -> object:
    """One top-level function of build.spec, defined with ``names`` as its globals."""
    tree = ast.parse(spec_text())
    node = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name)
    scope: dict[str, object] = {"sys": sys, "os": os, **names}
    exec(compile(ast.Module([node], []), str(SPEC), "exec"), scope)
    return scope[name]


def test_spec_gives_the_windows_executables_a_version_resource(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Built on Linux with PyInstaller's own classes and serialised as Windows would get it.
    (``versioninfo`` imports pefile and pywin32 for PE-file helpers this path never
    calls; where they are missing, empty stand-ins let the module load.)"""
    try:
        import pefile  # noqa: F401
    except ImportError:
        import types

        monkeypatch.setitem(sys.modules, "pefile", types.ModuleType("pefile"))
    if not hasattr(PyInstaller.compat, "win32api"):  # Windows-only, unused here
        monkeypatch.setattr(PyInstaller.compat, "win32api", None, raising=False)
    make = _spec_function("_windows_version_resource", VERSION="1.2.3", APP_NAME="Bucket Chat")
    resource = make("Bucket Chat", "bucket-chat-desktop")  # type: ignore[operator]
    text = str(resource)
    assert "filevers=(1, 2, 3, 0)" in text and "prodvers=(1, 2, 3, 0)" in text
    for needle in (
        "'ProductName', 'Bucket Chat'",
        "'ProductVersion', '1.2.3'",
        "'OriginalFilename', 'bucket-chat-desktop.exe'",
    ):
        assert needle in text
    assert len(resource.toRaw()) > 500  # type: ignore[attr-defined]
    spec = spec_text()
    assert spec.count("**_version_for(") == 2  # both executables


def test_spec_drops_dangling_links_on_linux_only() -> None:
    """On macOS the framework links (Versions/Current ...) point at folders that are not
    collected entries; dropping them breaks `codesign --verify --deep --strict`."""
    tree = ast.parse(spec_text())
    guarded = [
        n
        for n in tree.body
        if isinstance(n, ast.If)
        and "linux" in ast.unparse(n.test)
        and "_without_dangling_symlinks" in ast.unparse(n)
    ]
    assert len(guarded) == 1
    top_level_calls = [
        ast.unparse(n) for n in tree.body if "_without_dangling_symlinks(a." in ast.unparse(n)
    ]
    assert top_level_calls == [ast.unparse(guarded[0])]


@pytest.mark.parametrize(
    "needle",
    [
        '_submodules("s3fs")',
        '_submodules("aiobotocore")',
        '_submodules("gcsfs")',
        '_submodules("adlfs")',
        '"azure.storage.blob.aio"',
        '_submodules("keyring.backends")',
        '"secretstorage"',
        '_submodules("jeepney")',
        '_submodules("win32ctypes")',
        '_submodules("keyring.backends.macOS")',
        '"qasync"',
        '"PIL.Image"',
        '"markdown_it"',
        '"nacl.bindings"',
    ],
)
def test_spec_lists_what_is_loaded_by_name(needle: str) -> None:
    assert needle in spec_text()


@pytest.mark.parametrize("dist", ["bucket-chat-desktop", "keyring", "s3fs", "gcsfs", "adlfs"])
def test_spec_copies_metadata(dist: str) -> None:
    """importlib.metadata must work frozen: our version, keyring's entry points."""
    block = spec_text().split("for dist in (", 1)[1].split(")", 1)[0]
    assert f'"{dist}"' in block


def test_spec_macos_bundle_and_plist() -> None:
    text = spec_text()
    assert 'BUNDLE_ID = "io.github.bucketchat.BucketChat"' in text
    assert 'ICONS / "bucket-chat.icns"' in text and 'ICONS / "bucket-chat.ico"' in text
    with (ROOT / "installer" / "macos" / "Info.plist").open("rb") as f:
        plist = plistlib.load(f)
    assert plist["CFBundleIdentifier"] == "io.github.bucketchat.BucketChat"
    assert plist["NSHighResolutionCapable"] is True
    assert re.fullmatch(r"\d+\.\d+", plist["LSMinimumSystemVersion"])


def test_spec_excludes_what_the_app_does_not_need() -> None:
    for module in ("tkinter", "pytest", "moto", "PySide6.QtQml"):
        assert f'"{module}"' in spec_text()
    # QtNetwork's local socket is how a second start reaches the running app
    # (gui/single_instance.py); excluded, the bundled app could not start at all
    assert '"PySide6.QtNetwork"' not in spec_text()


# -- installers ------------------------------------------------------------------------------


@pytest.mark.parametrize("script", SHELL_SCRIPTS)
def test_shell_scripts_parse_and_are_executable(script: str) -> None:
    path = ROOT / script
    assert os.access(path, os.X_OK), f"chmod +x {script}"
    shell = "sh" if script.endswith(("AppRun", "launcher.sh")) else "bash"
    assert subprocess.run([shell, "-n", str(path)]).returncode == 0


def _fake_package(root: Path) -> Path:
    """ROOT/usr/bin/bucket-chat from the launcher template, ROOT/opt/bucket-chat/bucket-chat
    a stand-in that says where it runs from."""
    (root / "usr" / "bin").mkdir(parents=True)
    app_dir = root / "opt" / "bucket-chat"
    app_dir.mkdir(parents=True)
    stand_in = app_dir / "bucket-chat"
    stand_in.write_text('#!/bin/sh\necho "$0" "$@"\n')
    stand_in.chmod(0o755)
    template = (ROOT / "installer" / "linux" / "launcher.sh").read_text()
    launcher = root / "usr" / "bin" / "bucket-chat"
    launcher.write_text(template.replace("@NAME@", "bucket-chat"))
    launcher.chmod(0o755)
    return launcher


def test_launcher_runs_the_app_next_to_it(tmp_path: Path) -> None:
    """The same /usr/bin launcher works installed and unpacked with `dpkg -x` anywhere,
    also when reached through a symbolic link."""
    launcher = _fake_package(tmp_path / "root")
    expected = str((tmp_path / "root" / "opt" / "bucket-chat" / "bucket-chat").resolve())
    run = subprocess.run([str(launcher), "--version"], capture_output=True, text=True, check=True)
    program, argument = run.stdout.split()
    assert os.path.normpath(program) == expected and argument == "--version"
    link = tmp_path / "bin" / "bucket-chat"
    link.parent.mkdir()
    link.symlink_to(launcher)
    run = subprocess.run([str(link), "x y"], capture_output=True, text=True, check=True)
    assert os.path.normpath(run.stdout.split()[0]) == expected and run.stdout.endswith("x y\n")
    other = _fake_package(tmp_path / "other").parent.parent.parent / "opt" / "bucket-chat"
    env = dict(os.environ, BUCKET_CHAT_APPDIR=str(other))
    run = subprocess.run([str(launcher)], capture_output=True, text=True, check=True, env=env)
    assert run.stdout.startswith(str(other))


def test_deb_script_installs_the_freedesktop_files() -> None:
    text = (ROOT / "installer" / "linux" / "build-deb.sh").read_text()
    for needle in (
        "/opt/bucket-chat",
        "usr/share/applications",
        "usr/share/icons/hicolor",
        "usr/share/metainfo",
        "--root-owner-group",
        "libgl1",
        "libegl1",
        "libxkbcommon0",
        "libfontconfig1",
        "libdbus-1-3",
    ):
        assert needle in text


def test_inno_setup_script_installs_per_user() -> None:
    text = (ROOT / "installer" / "windows" / "bucket-chat.iss").read_text()
    settings = dict(
        line.split("=", 1) for line in text.splitlines() if re.match(r"^[A-Za-z]+=", line)
    )
    assert settings["PrivilegesRequired"] == "lowest"
    assert settings["DefaultDirName"].startswith("{autopf}")
    assert (ROOT / settings["SetupIconFile"].replace("\\", "/")).is_file()
    assert (ROOT / settings["LicenseFile"]).is_file()
    assert "{autoprograms}" in text and 'Source: "dist\\bucket-chat\\*"' in text


# -- release workflow -----------------------------------------------------------------------


def test_release_workflow_builds_on_three_systems_with_the_linux_scripts() -> None:
    doc = yaml.safe_load(RELEASE.read_text(encoding="utf-8"))
    triggers = doc.get("on", doc.get(True))  # YAML 1.1 reads the key `on` as True
    assert triggers["push"]["tags"] == ["v*"]
    jobs = doc["jobs"]
    runners = {job["runs-on"] for job in jobs.values()}
    assert {"ubuntu-latest", "windows-latest"} <= runners
    mac = jobs["macos"]
    assert mac["runs-on"] == "${{ matrix.runner }}"
    assert {(m["runner"], m["arch"]) for m in mac["strategy"]["matrix"]["include"]} == {
        ("macos-latest", "arm64"),
        ("macos-15-intel", "x86_64"),
    }
    linux_steps = " ".join(s.get("run", "") for s in jobs["linux"]["steps"])
    assert "bash installer/build-linux.sh" in linux_steps
    assert "bash installer/smoke-linux.sh" in linux_steps
    assert "installer\\windows\\bucket-chat.iss" in " ".join(
        s.get("run", "") for s in jobs["windows"]["steps"]
    )
    assert "installer/macos/build-dmg.sh" in " ".join(
        s.get("run", "") for s in jobs["macos"]["steps"]
    )
    publish = jobs["publish"]
    assert publish["permissions"] == {"contents": "write"}
    assert set(publish["needs"]) == {"linux", "windows", "macos"}


def test_release_workflow_pins_every_action_to_a_commit() -> None:
    uses = re.findall(r"^\s*-?\s*uses:\s*(\S+)(.*)$", RELEASE.read_text(encoding="utf-8"), re.M)
    assert uses
    for ref, comment in uses:
        assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", ref), ref
        assert re.fullmatch(r"\s*# v\d+\.\d+\.\d+", comment), f"{ref}: say which tag it was"


def test_release_workflow_proves_what_only_windows_and_macos_can_show() -> None:
    jobs = yaml.safe_load(RELEASE.read_text(encoding="utf-8"))["jobs"]

    def runs(job: str) -> str:
        return "\n".join(s.get("run", "") for s in jobs[job]["steps"])

    windows, macos = runs("windows"), runs("macos")
    assert windows.count("installer\\windows\\smoke.ps1") == 2  # frozen and installed
    assert "VersionInfo" in windows and "check_cli_output.py" in windows
    smoke_ps1 = (ROOT / "installer" / "windows" / "smoke.ps1").read_text(encoding="utf-8")
    for needle in (
        "WaitForExit(300000)",
        "WinVaultKeyring",
        "^ok   binary files",
        "AppUserModelID",
    ):
        assert needle in smoke_ps1
    assert "codesign --verify --deep --strict" in macos
    assert "keyring.backends.macOS.Keyring" in macos and "^ok   binary files" in macos
    assert "unins000.exe" in windows and 'rm -rf "$installed"' in macos
    dmg = (ROOT / "installer" / "macos" / "build-dmg.sh").read_text(encoding="utf-8")
    for command in ("hdiutil create", "hdiutil attach", "hdiutil detach"):
        assert f"retry {command}" in dmg


def test_spec_bundles_the_emoji_names_the_picker_reads_and_no_other_language() -> None:
    """PyInstaller's hook for ``emoji`` collects every language's names (4.5 MB); the
    picker reads the English ones (``emoji.json``) only."""
    wanted = _spec_function(
        "_wanted_data",
        _posix=lambda d: d.replace(os.sep, "/"),
        BOTOCORE_SERVICES=(),
        UNWANTED_QT=("PySide6/Qt/qml/",),
    )
    keep = [("emoji/unicode_codes/emoji.json", "src", "DATA")]
    drop = [(f"emoji/unicode_codes/emoji_{lang}.json", "src", "DATA") for lang in ("de", "zh")]
    assert [bool(wanted(e)) for e in keep + drop] == [True, False, False]  # type: ignore[operator]
    assert bool(wanted(("emoji/unicode_codes/data_dict.py", "src", "DATA")))  # type: ignore[operator]
