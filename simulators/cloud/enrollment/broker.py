"""The broker, configured exactly as deploy/mosquitto/ (ports, paths and the log destination
substituted), so the tests exercise the configuration that ships."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from core.datafiles import write_atomic
from gateway.wire.certs import ensure_private_dir
from simulators.broker import MosquittoBroker, free_port, port_open
from simulators.cloud.enrollment.pki import CloudPki
from simulators.cloud.shipped import DEPLOY_DIR, substitute


def render_deploy_config(
    deploy_dir: Path,
    *,
    etc_dir: Path,
    data_dir: Path,
    log_file: Path,
    port: int,
    provision_port: int,
    run_as_root: bool,
) -> str:
    """deploy/mosquitto/storegw.conf with only ports, paths and the log destination changed."""
    substitutions = {
        "\nlistener 8883\n": f"\nlistener {port} 127.0.0.1\n",
        "\nlistener 8884\n": f"\nlistener {provision_port} 127.0.0.1\n",
        "/etc/mosquitto/storegw/": f"{etc_dir}/",
        "persistence_location /var/lib/mosquitto/\n": f"persistence_location {data_dir}/\n",
        "log_dest syslog\n": f"log_dest file {log_file}\n",
    }
    text = substitute(deploy_dir / "storegw.conf", substitutions)
    if run_as_root:
        # As root Mosquitto drops to user mosquitto, which cannot read a test's files.
        text = "user root\n" + text
    return text


class DeployedBroker(MosquittoBroker):
    """Mosquitto with the shipped cloud configuration, on two free loopback ports.

    The broker's directory gets copies of the shipped ACL files and of the broker's certificate,
    key and the CA certificate, as an operator would install them; never the CA key.
    """

    def __init__(
        self,
        pki: CloudPki,
        workdir: Path,
        *,
        port: int | None = None,
        provision_port: int | None = None,
        deploy_dir: Path = DEPLOY_DIR,
        die_with_parent: bool = False,
    ) -> None:
        super().__init__(port, workdir=workdir, die_with_parent=die_with_parent)
        self.pki = pki
        self.provision_port = provision_port or free_port()
        self.deploy_dir = deploy_dir

    @property
    def url(self) -> str:
        return f"mqtts://localhost:{self.port}"

    @property
    def provision_url(self) -> str:
        return f"mqtts://localhost:{self.provision_port}"

    @property
    def etc_dir(self) -> Path:
        return self.workdir / "etc"

    def _write_config(self) -> Path:
        ensure_private_dir(self.etc_dir)
        for name in ("storegw.acl", "provision.acl"):
            shutil.copyfile(self.deploy_dir / name, self.etc_dir / name)
        shutil.copyfile(self.pki.ca_file, self.etc_dir / "ca.pem")
        shutil.copyfile(self.pki.broker_cert, self.etc_dir / "broker.pem")
        write_atomic(self.etc_dir / "broker.key", self.pki.broker_key.read_bytes(), 0o600)
        (self.workdir / "data").mkdir(exist_ok=True)
        self.config_file.write_text(
            render_deploy_config(
                self.deploy_dir,
                etc_dir=self.etc_dir,
                data_dir=self.workdir / "data",
                log_file=self.log_file,
                port=self.port,
                provision_port=self.provision_port,
                run_as_root=os.geteuid() == 0,
            )
        )
        return self.config_file

    def start(self, timeout: float = 10.0) -> None:
        super().start(timeout)
        deadline = time.monotonic() + timeout
        while not port_open(self.provision_port):
            if time.monotonic() > deadline:
                self.kill()
                raise TimeoutError(f"the provisioning listener is not up on {self.provision_port}")
            time.sleep(0.01)
