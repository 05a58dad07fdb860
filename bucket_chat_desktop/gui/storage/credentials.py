"""The credentials part of the storage form: for S3 an access key or the environment, for
Google Cloud a service-account key file or application default credentials, for Azure a
connection string, an account key or the environment.

`CredentialsForm` builds those rows and reads them back (`secrets`, `wants_secrets`);
`form.StorageForm` is one, with the location fields, the test and saving around it. The
keys typed here go to the OS keyring when the form is saved, never to a file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtWidgets import (
    QButtonGroup,
    QFileDialog,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from ...storage.profiles import check_secrets
from ...storage.url import StorageUrlError
from .parts import indented


class CredentialsForm(QWidget):
    """The credential rows of `StorageForm` (built by it, shown for the chosen kind)."""

    account_edit: QLineEdit  # the Azure account name (a location field of the form)

    def kind(self) -> str:
        raise NotImplementedError

    def _on_edited(self, *_args: Any) -> None:
        raise NotImplementedError

    def _radio_group(self, *labels: str) -> tuple[QButtonGroup, list[QRadioButton]]:
        group = QButtonGroup(self)
        buttons = []
        for i, text in enumerate(labels):
            button = QRadioButton(text)
            group.addButton(button, i)
            buttons.append(button)
        buttons[0].setChecked(True)
        group.idToggled.connect(lambda _i, _on: self._on_edited())
        return group, buttons

    def _build_s3_credentials(self) -> QWidget:
        box = QWidget()
        v = QVBoxLayout(box)
        v.setContentsMargins(0, 0, 0, 0)
        v.setSpacing(6)
        self.s3_group, (self.s3_keys_radio, self.s3_env_radio) = self._radio_group(
            "Access key", "Use my environment (AWS_* variables, ~/.aws, instance role)"
        )
        self.s3_key_id = QLineEdit()
        self.s3_key_id.setPlaceholderText("Access key id")
        self.s3_secret = QLineEdit()
        self.s3_secret.setPlaceholderText("Secret access key")
        self.s3_secret.setEchoMode(QLineEdit.EchoMode.Password)
        self.s3_profile = QLineEdit()
        self.s3_profile.setPlaceholderText("AWS profile (optional)")
        keys = indented(self.s3_key_id, self.s3_secret)
        env = indented(self.s3_profile)
        v.addWidget(self.s3_keys_radio)
        v.addWidget(keys)
        v.addWidget(self.s3_env_radio)
        v.addWidget(env)
        self.s3_keys_radio.toggled.connect(keys.setVisible)
        self.s3_env_radio.toggled.connect(env.setVisible)
        env.hide()
        for edit in (self.s3_key_id, self.s3_secret, self.s3_profile):
            edit.textChanged.connect(self._on_edited)
        return box

    def _build_gs_credentials(self) -> QWidget:
        box = QWidget()
        v = QVBoxLayout(box)
        v.setContentsMargins(0, 0, 0, 0)
        v.setSpacing(6)
        self.gs_group, (self.gs_keyfile_radio, self.gs_adc_radio) = self._radio_group(
            "Service-account key file (JSON)",
            "Application default credentials (gcloud auth application-default login)",
        )
        self.gs_keyfile = QLineEdit()
        self.gs_keyfile.setPlaceholderText("/path/to/service-account.json")
        self.gs_keyfile_browse = QPushButton("Browse…")
        self.gs_keyfile_browse.setAutoDefault(False)
        self.gs_keyfile_browse.clicked.connect(self._browse_keyfile)
        file_row = QWidget()
        h = QHBoxLayout(file_row)
        h.setContentsMargins(22, 0, 0, 0)
        h.addWidget(self.gs_keyfile, 1)
        h.addWidget(self.gs_keyfile_browse)
        v.addWidget(self.gs_keyfile_radio)
        v.addWidget(file_row)
        v.addWidget(self.gs_adc_radio)
        self.gs_keyfile_radio.toggled.connect(file_row.setVisible)
        self.gs_keyfile.textChanged.connect(self._on_edited)
        return box

    def _build_az_credentials(self) -> QWidget:
        box = QWidget()
        v = QVBoxLayout(box)
        v.setContentsMargins(0, 0, 0, 0)
        v.setSpacing(6)
        self.az_group, (self.az_conn_radio, self.az_key_radio, self.az_env_radio) = (
            self._radio_group(
                "Connection string",
                "Account key (with the account name above)",
                "Use my environment (AZURE_STORAGE_* variables, az login)",
            )
        )
        self.az_conn = QLineEdit()
        self.az_conn.setPlaceholderText("DefaultEndpointsProtocol=https;AccountName=…")
        self.az_conn.setEchoMode(QLineEdit.EchoMode.Password)
        self.az_key = QLineEdit()
        self.az_key.setPlaceholderText("Account key")
        self.az_key.setEchoMode(QLineEdit.EchoMode.Password)
        conn = indented(self.az_conn)
        key = indented(self.az_key)
        v.addWidget(self.az_conn_radio)
        v.addWidget(conn)
        v.addWidget(self.az_key_radio)
        v.addWidget(key)
        v.addWidget(self.az_env_radio)
        self.az_conn_radio.toggled.connect(conn.setVisible)
        self.az_key_radio.toggled.connect(key.setVisible)
        key.hide()
        for edit in (self.az_conn, self.az_key):
            edit.textChanged.connect(self._on_edited)
        return box

    def _browse_keyfile(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Service-account key file", str(Path.home()), "JSON key files (*.json)"
        )
        if path:
            self.gs_keyfile.setText(path)

    def wants_secrets(self) -> bool:
        kind = self.kind()
        return (kind == "s3" and self.s3_keys_radio.isChecked()) or (
            kind == "az" and not self.az_env_radio.isChecked()
        )

    def secrets(self) -> dict[str, str]:
        """The keys typed in (empty when the environment is to be used)."""
        kind = self.kind()
        values: dict[str, str] = {}
        if kind == "s3" and self.s3_keys_radio.isChecked():
            key_id, secret = self.s3_key_id.text().strip(), self.s3_secret.text().strip()
            if not key_id or not secret:
                raise StorageUrlError("enter the access key id and the secret access key")
            values = {"access_key_id": key_id, "secret_access_key": secret}
        elif kind == "az" and self.az_conn_radio.isChecked():
            text = self.az_conn.text().strip()
            if not text:
                raise StorageUrlError("paste the connection string")
            values = {"connection_string": text}
        elif kind == "az" and self.az_key_radio.isChecked():
            if not self.account_edit.text().strip():
                raise StorageUrlError("an account key needs the account name")
            text = self.az_key.text().strip()
            if not text:
                raise StorageUrlError("enter the account key")
            values = {"account_key": text}
        return check_secrets(kind, values) if values else {}
