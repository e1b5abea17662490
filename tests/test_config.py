"""Configuration file, precedence, `ncpaste config`, log formats, SIGHUP reload."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import paste_blocking


def ncpaste(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NCPASTE_")}
    return subprocess.run(
        [sys.executable, "-m", "ncpaste", *args], capture_output=True, text=True, timeout=30,
        env={**clean, **(env or {})},
    )


def config_lines(done: subprocess.CompletedProcess) -> dict[str, str]:
    assert done.returncode == 0, done.stderr
    lines = {}
    for line in done.stdout.splitlines():
        if line.startswith("#"):
            continue
        key, rest = line.split(" = ", 1)
        lines[key] = rest
    return lines


def test_precedence_flag_over_env_over_file_over_default(tmp_path):
    conf = tmp_path / "ncpaste.toml"
    conf.write_text('max-size = "2MiB"\nidle-timeout = 2\ndefault-expire = "1d"\nallow = ["10.0.0.0/8"]\n')
    done = ncpaste("config", "--config", str(conf), "--max-size", "3MiB", env={"NCPASTE_IDLE_TIMEOUT": "5"})
    lines = config_lines(done)
    assert lines["max-size"] == '"3MiB"  # --max-size'
    assert lines["idle-timeout"] == "5  # NCPASTE_IDLE_TIMEOUT"
    assert lines["default-expire"] == f'"1d"  # {conf}: default-expire'
    assert lines["allow"] == f'["10.0.0.0/8"]  # {conf}: allow'
    assert lines["max-expire"] == '"90d"  # default'


def test_sweep_interval_is_a_flag_a_variable_and_a_key(tmp_path):
    assert config_lines(ncpaste("config"))["sweep-interval"] == "60  # default"
    assert config_lines(ncpaste("config", "--sweep-interval", "10s"))["sweep-interval"] == "10  # --sweep-interval"
    from_env = config_lines(ncpaste("config", env={"NCPASTE_SWEEP_INTERVAL": "5m"}))
    assert from_env["sweep-interval"] == "300  # NCPASTE_SWEEP_INTERVAL"
    conf = tmp_path / "c.toml"
    conf.write_text("sweep-interval = 30\n")
    assert config_lines(ncpaste("config", "--config", str(conf)))["sweep-interval"].startswith("30  #")
    refused = ncpaste("config", "--sweep-interval", "0.5")
    assert refused.returncode == 2 and "--sweep-interval must be 1 s..1 day" in refused.stderr


@pytest.mark.parametrize("flag", ["--allow", "--deny", "--trusted-proxy", "--metrics-allow"])
def test_a_cidr_with_host_bits_is_refused_on_every_list(flag):
    refused = ncpaste("config", flag, "10.1.2.3/16")
    assert refused.returncode == 2
    assert f"{flag}: bad CIDR '10.1.2.3/16': host bits are set; did you mean 10.1.0.0/16?" in refused.stderr


def test_config_output_is_itself_a_valid_config_file(tmp_path):
    first = ncpaste("config", "--max-size", "5MiB", "--deny", "192.0.2.0/24", "--redact")
    saved = tmp_path / "saved.toml"
    saved.write_text(first.stdout)
    again = config_lines(ncpaste("config", "--config", str(saved)))
    assert again["max-size"].startswith('"5MiB"') and again["redact"].startswith("true")
    assert again["deny"].startswith('["192.0.2.0/24"]')


def test_config_file_from_environment_variable(tmp_path):
    conf = tmp_path / "c.toml"
    conf.write_text("pastes-per-minute = 7\n")
    lines = config_lines(ncpaste("config", env={"NCPASTE_CONFIG": str(conf)}))
    assert lines["pastes-per-minute"].startswith("7  #")


@pytest.mark.parametrize(
    "text, message",
    [
        ("bogus = 1\n", "unknown key 'bogus'"),
        ('max-size = "lots"\n', "max-size: bad size 'lots'"),
        ("limits = 3\n", "limits: use on or off"),
        ("this is not toml\n", "is not valid TOML"),
        ('log-format = "xml"\n', "log-format: use one of text, logfmt, json"),
    ],
)
def test_bad_config_file_is_a_clear_error_naming_the_key(tmp_path, text, message):
    conf = tmp_path / "bad.toml"
    conf.write_text(text)
    done = ncpaste("serve", "--config", str(conf))
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert message in done.stderr.splitlines()[-1], done.stderr


def test_missing_config_file(tmp_path):
    done = ncpaste("serve", "--config", str(tmp_path / "nope.toml"))
    assert done.returncode == 2 and "cannot read config file" in done.stderr


@pytest.mark.parametrize("fmt", ["logfmt", "json"])
def test_log_formats_one_line_per_paste_without_bodies(cli_server, fmt):
    server = cli_server("--log-format", fmt)
    reply = paste_blocking(server.tcp_port, b"#!ncpaste token=1\nBODY-MARKER-123\n")
    token = reply.decode().split("token: ")[1].strip()
    time.sleep(0.3)
    server.stop()
    text = server.log_text()
    assert "BODY-MARKER-123" not in text and token not in text
    created = [line for line in text.splitlines() if "paste.created" in line]
    assert len(created) == 1
    if fmt == "json":
        record = json.loads(created[0])
        assert record["event"] == "paste.created" and record["client"] == "127.0.0.1"
        assert record["size"] == len(b"BODY-MARKER-123\n") and record["level"] == "info"
    else:
        assert " level=info " in created[0] and " client=127.0.0.1 " in created[0]
        assert created[0].startswith("ts=")


def test_sighup_reloads_limits_from_the_config_file(cli_server, tmp_path):
    conf = tmp_path / "live.toml"
    conf.write_text("pastes-per-minute = 1000\n")
    server = cli_server("--config", str(conf))
    for n in range(3):
        assert paste_blocking(server.tcp_port, b"%d\n" % n).startswith(b"http://")
    conf.write_text('pastes-per-minute = 1000\ndeny = ["127.0.0.0/8"]\nmax-size = "1KiB"\n')
    server.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    reply = b""
    while time.monotonic() < deadline:
        reply = paste_blocking(server.tcp_port, b"after reload\n")
        if reply.startswith(b"error:"):
            break
        time.sleep(0.1)
    assert reply == b"error: your address may not use this service\n"
    assert server.proc.poll() is None
    server.stop()
    log = server.log_text()
    assert "changed settings need a restart to apply: max_paste_bytes" in log


def test_admin_commands_through_the_real_cli(cli_server, tmp_path):
    server = cli_server("--limits", "off")
    url = paste_blocking(server.tcp_port, b"admin me\n").decode().strip()
    key = url.rsplit("/", 1)[1]
    data = str(server.data_dir)
    stats = ncpaste("stats", "--json", "--data-dir", data)
    assert stats.returncode == 0 and json.loads(stats.stdout)["pastes"] == 1
    got = subprocess.run([sys.executable, "-m", "ncpaste", "get", key, "--data-dir", data],
                         capture_output=True, timeout=30)
    assert got.returncode == 0 and got.stdout == b"admin me\n"
    export = tmp_path / "all.jsonl"
    assert ncpaste("export", str(export), "--data-dir", data, "-q").returncode == 0
    assert ncpaste("delete", key, "--data-dir", data).returncode == 0
    assert ncpaste("get", key, "--data-dir", data).returncode == 1
    restored = ncpaste("import", str(export), "--data-dir", data, "-q")
    assert restored.returncode == 0, restored.stderr
    got = subprocess.run([sys.executable, "-m", "ncpaste", "get", key, "--data-dir", data],
                         capture_output=True, timeout=30)
    assert got.stdout == b"admin me\n"
    # The running server sees the deletion and the re-import.
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == b"admin me\n"
    assert ncpaste("sweep", "--data-dir", data).returncode == 0
    for command in ("stats", "get", "delete", "sweep", "export", "import", "backup", "check", "config"):
        assert ncpaste(command, "--help").returncode == 0
