"""packaging/ stays honest: files parse, and their paths, variables, ports and arguments agree
with each other and with the CLI."""

from __future__ import annotations

import configparser
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest
import yaml

from azfed_helper import __version__
from azfed_helper._internal import config
from azfed_helper._internal.cli import build_parser
from azfed_helper._internal.options import OPTIONS

from . import dist_artefacts
from .conftest import REPO, run_cli

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

PACKAGING = REPO / "packaging"
TOKEN_DIR = "/var/run/azfed"
CONSUMER_VARIABLES = {
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_AUTHORITY_HOST",
}


def known_variables() -> set[str]:
    return {option.env for option in OPTIONS if option.env}


def assert_cli_accepts(argv: list[str]) -> None:
    """The arguments a manifest passes parse with our CLI (argparse exits on an unknown option)."""
    build_parser(argv).parse_args(argv)


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(PACKAGING / "systemd" / name)
    return parser


SERVICES = [
    "azfed-helper-write.service",
    "azfed-helper.service",
    "azfed-helper-write@.service",
    "azfed-helper@.service",
]
TIMERS = ["azfed-helper-write.timer", "azfed-helper-write@.timer"]
PROGRAM = "/usr/bin/azfed-helper"  # where the Debian package puts it


def test_systemd_units_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    binary = Path(sys.executable).with_name("azfed-helper")
    assert binary.exists(), "the console script must be installed (./scripts/test does it)"
    for name in SERVICES + TIMERS:
        text = (PACKAGING / "systemd" / name).read_text()
        (tmp_path / name).write_text(text.replace(PROGRAM, str(binary)))
    # A template is verified through an instance of it.
    names = [name.replace("@.", "@ci.") for name in SERVICES + TIMERS]
    done = subprocess.run(
        [analyze, "verify", "--man=no", *names],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == ""  # no ignored or misspelt settings


@pytest.mark.parametrize("name", SERVICES)
def test_systemd_services_are_hardened_and_consistent(name: str) -> None:
    service = unit(name)["Service"]
    template = "@" in name
    for key, value in {
        "User": "azfed-helper",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "CapabilityBoundingSet": "",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
        "RuntimeDirectory": "azfed-helper/%i" if template else "azfed-helper",
        "RuntimeDirectoryMode": "0750",
        # The .pyz unpacks its heavy dependencies there: never in a home.
        "CacheDirectory": "azfed-helper",
        "CacheDirectoryMode": "0700",
    }.items():
        assert service.get(key) == value, key
    assert "SystemCallFilter" in service
    command = service["ExecStart"].split()
    assert command[0] == PROGRAM
    assert_cli_accepts([arg.replace("%i", "ci") for arg in command[1:]])
    if template:
        # The instance is the profile; the unit, not the profile, places the token file.
        assert command[-2:] == ["--profile", "%i"]
        assert "EnvironmentFile" not in service
        environment = unit_environment(name)
        assert environment["AZFED_CONFIG"] == "/etc/azfed-helper/config.toml"
        runtime = f"%t/{service['RuntimeDirectory']}/"
        assert environment["AZURE_FEDERATED_TOKEN_FILE"] == runtime + "token"
    else:
        assert service["EnvironmentFile"] == "/etc/azfed-helper/azfed-helper.env"


def unit_environment(name: str) -> dict[str, str]:
    """Every Environment= line of a unit (configparser keeps only the last)."""
    values = {}
    for line in (PACKAGING / "systemd" / name).read_text().splitlines():
        if line.startswith("Environment="):
            variable, _, value = line.removeprefix("Environment=").partition("=")
            values[variable] = value
    return values


@pytest.mark.parametrize("name", ["azfed-helper.service", "azfed-helper@.service"])
def test_systemd_daemon_shape(name: str) -> None:
    daemon = unit(name)["Service"]
    assert daemon["Type"] == "notify"
    assert daemon["Restart"] == "on-failure"
    assert daemon["RuntimeDirectoryPreserve"] == "restart"  # the token file survives a restart
    assert unit_environment(name)["AZFED_CACHE_DIR"].startswith("%C/azfed-helper")


@pytest.mark.parametrize("name", TIMERS)
def test_systemd_timer_shape(name: str) -> None:
    timer = unit(name)["Timer"]
    assert timer["OnCalendar"] == "*:0/5"
    assert timer["Persistent"] == "true"
    assert "RandomizedDelaySec" in timer
    assert (PACKAGING / "systemd" / name.replace(".timer", ".service")).is_file()


def test_systemd_environment_file_matches_runtime_directory() -> None:
    variables: dict[str, str] = {}
    for raw in (PACKAGING / "systemd" / "azfed-helper.env").read_text().splitlines():
        line = raw.strip().lstrip("#")
        if "=" in line and not line.startswith(" ") and line.split("=")[0].isupper():
            name, _, value = line.partition("=")
            variables[name] = value
    assert set(variables) <= known_variables()
    assert variables["AZURE_FEDERATED_TOKEN_FILE"] == "/run/azfed-helper/token"  # RuntimeDirectory
    config.parse_mode(variables["AZFED_MODE"])


@pytest.mark.parametrize("profile", ["payments", "reports"])
def test_example_config_profiles_load(profile: str, tmp_path: Path) -> None:
    """The example config.toml the Debian package ships for the template units is valid."""
    example = PACKAGING / "systemd" / "config.toml"
    done = run_cli(
        "env", "--config", str(example), "--profile", profile, "--token-file", str(tmp_path / "t")
    )
    assert done.returncode == 0, done.stderr
    assert "export AZURE_CLIENT_ID=" in done.stdout
    assert "00000000" not in done.stdout


PYTHONS = ["3.10", "3.11", "3.12", "3.13"]


def test_build_system_and_metadata() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    # 77: the first setuptools that understands the SPDX `license = "MIT"` form.
    assert project["build-system"]["requires"] == ["setuptools>=77"]
    assert project["project"]["license"] == "MIT"
    assert project["project"]["requires-python"] == f">={PYTHONS[0]}"
    classifiers = project["project"]["classifiers"]
    for version in PYTHONS:
        assert f"Programming Language :: Python :: {version}" in classifiers
    assert (REPO / "LICENSE").read_text().startswith("MIT License\n")


def test_wheel_and_sdist_carry_the_licence() -> None:
    licence = (REPO / "LICENSE").read_bytes()
    wheel = dist_artefacts.artefact("azfed_helper-{version}-py3-none-any.whl")
    info = f"azfed_helper-{__version__}.dist-info"
    with zipfile.ZipFile(wheel) as archive:
        assert archive.read(f"{info}/licenses/LICENSE") == licence
        metadata = BytesParser().parsebytes(archive.read(f"{info}/METADATA"))
    assert metadata["License-Expression"] == "MIT"
    assert metadata.get_all("License-File") == ["LICENSE"]
    sdist = dist_artefacts.artefact("azfed_helper-{version}.tar.gz")
    with tarfile.open(sdist) as archive:
        member = archive.extractfile(f"azfed_helper-{__version__}/LICENSE")
        assert member is not None and member.read() == licence


def test_container_build_stage_copies_what_the_package_needs() -> None:
    """Every top-level entry of the sdist that a build reads is copied into the build stage."""
    build_stage = containerfile()[: [k for k, _ in containerfile()].index("FROM", 1)]
    copied = {
        source for keyword, rest in build_stage if keyword == "COPY" for source in rest.split()[:-1]
    }
    sdist = dist_artefacts.artefact("azfed_helper-{version}.tar.gz")
    with tarfile.open(sdist) as archive:
        tops = {name.split("/")[1] for name in archive.getnames() if name.count("/") >= 1}
    needed = tops - {"PKG-INFO", "setup.cfg", "azfed_helper.egg-info", "tests"}
    assert needed <= copied, needed - copied


@pytest.mark.parametrize("manifest", ["kubernetes/gke-sidecar.yaml", "cloudrun/service.yaml"])
def test_manifests_say_the_image_is_yours_to_build(manifest: str) -> None:
    """No image is published: each manifest shows the commands that build and push it, and
    uses the name those commands push."""
    text = (PACKAGING / manifest).read_text()
    image = "REGION-docker.pkg.dev/PROJECT_ID/REPO/azfed-helper:" + __version__
    assert f"docker build -f packaging/container/Containerfile -t {image} ." in text
    assert f"docker push {image}" in text
    assert f"image: {image}" in text


def containerfile() -> list[tuple[str, str]]:
    lines = []
    for raw in (
        (PACKAGING / "container" / "Containerfile").read_text().replace("\\\n", " ").splitlines()
    ):
        if raw.strip() and not raw.lstrip().startswith("#"):
            keyword, _, rest = raw.strip().partition(" ")
            lines.append((keyword.upper(), rest.strip()))
    return lines


def test_container_image_runs_daemon_as_non_root() -> None:
    final = containerfile()
    final = final[max(i for i, (k, _) in enumerate(final) if k == "FROM") :]  # the last stage
    values = {keyword: rest for keyword, rest in final}
    uid = values["USER"].split(":")[0]
    assert uid.isdigit()
    assert int(uid) != 0
    entrypoint = json.loads(values["ENTRYPOINT"])
    command = json.loads(values["CMD"])
    assert entrypoint == ["azfed-helper"]
    assert_cli_accepts(command)
    assert command[0] == "daemon"
    assert json.loads(values["VOLUME"]) == [TOKEN_DIR]
    assert f"AZURE_FEDERATED_TOKEN_FILE={TOKEN_DIR}/token" in values["ENV"]


def kubernetes_pod() -> dict[str, Any]:
    documents = list(
        yaml.safe_load_all((PACKAGING / "kubernetes" / "gke-sidecar.yaml").read_text())
    )
    deployment = next(doc for doc in documents if doc["kind"] == "Deployment")
    account = next(doc for doc in documents if doc["kind"] == "ServiceAccount")
    pod: dict[str, Any] = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account["metadata"]["name"]
    return pod


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container.get("env", [])}


def mount_of(container: dict[str, Any], volume: str) -> dict[str, Any]:
    return next(m for m in container["volumeMounts"] if m["name"] == volume)


def test_kubernetes_native_sidecar_shares_a_directory() -> None:
    pod = kubernetes_pod()
    (sidecar,) = pod["initContainers"]
    (app,) = pod["containers"]
    assert sidecar["restartPolicy"] == "Always"  # native sidecar: starts before the app
    (volume,) = pod["volumes"]
    assert volume["emptyDir"]["medium"] == "Memory"
    sidecar_env, app_env = env_of(sidecar), env_of(app)
    token_file = app_env["AZURE_FEDERATED_TOKEN_FILE"]
    assert sidecar_env["AZURE_FEDERATED_TOKEN_FILE"] == token_file
    assert set(app_env) == CONSUMER_VARIABLES
    assert set(sidecar_env) <= known_variables()
    for container in (sidecar, app):
        mount = mount_of(container, volume["name"])
        assert os.path.dirname(token_file) == mount["mountPath"]  # the directory, not the file
        assert "subPath" not in mount
    assert mount_of(app, volume["name"])["readOnly"] is True
    assert_cli_accepts(sidecar["args"])
    for probe in ("startupProbe", "readinessProbe"):
        command = sidecar[probe]["exec"]["command"]
        assert command[0] == "azfed-helper"
        assert_cli_accepts(command[1:])


def test_kubernetes_security_contexts_and_token_readability() -> None:
    pod = kubernetes_pod()
    (sidecar,) = pod["initContainers"]
    (app,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    for container in (sidecar, app):
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["readOnlyRootFilesystem"] is True
        assert context["runAsUser"] != 0
    assert sidecar["securityContext"]["runAsUser"] != app["securityContext"]["runAsUser"]
    env = env_of(sidecar)
    assert config.parse_mode(env["AZFED_MODE"]) & 0o040  # group-readable ...
    assert env["AZFED_GROUP"] == str(pod["securityContext"]["fsGroup"])  # ... by the app's group


def test_cloud_run_service() -> None:
    service = yaml.safe_load((PACKAGING / "cloudrun" / "service.yaml").read_text())
    template = service["spec"]["template"]
    containers = {c["name"]: c for c in template["spec"]["containers"]}
    dependencies = json.loads(
        template["metadata"]["annotations"]["run.googleapis.com/container-dependencies"]
    )
    assert dependencies == {"app": ["azfed-helper"]}
    assert set(dependencies) | set(dependencies["app"]) <= set(containers)
    (volume,) = template["spec"]["volumes"]
    assert volume["emptyDir"]["medium"] == "Memory"
    sidecar, app = containers["azfed-helper"], containers["app"]
    token_file = env_of(app)["AZURE_FEDERATED_TOKEN_FILE"]
    assert env_of(sidecar)["AZURE_FEDERATED_TOKEN_FILE"] == token_file
    assert set(env_of(app)) == CONSUMER_VARIABLES
    for container in (sidecar, app):
        assert os.path.dirname(token_file) == mount_of(container, volume["name"])["mountPath"]
    args = sidecar["args"]
    assert_cli_accepts(args)
    health_port = int(args[args.index("--health-addr") + 1].rsplit(":", 1)[1])
    assert sidecar["startupProbe"]["httpGet"]["port"] == health_port
    assert sidecar["startupProbe"]["httpGet"]["path"] == "/readyz"
    assert health_port != app["ports"][0]["containerPort"]
