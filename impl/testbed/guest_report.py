"""The lines the test guest prints on COM1, defined once for its init script and its readers.

The guest's init (`init.sh`) prints one line per libata device with the transfer mode it is
set to, then one checksum line for the data partition it read through the kernel's block
layer (or one error line when it could not), and then powers off.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CHECKSUM_TAG = "STORVISOR-CHECKSUM"
ERROR_TAG = "STORVISOR-ERROR"
ATA_DEVICE_TAG = "STORVISOR-ATA"

_CHECKSUM_LINE = re.compile(rf"^{CHECKSUM_TAG} sha256=(?P<sha256>[0-9a-f]{{64}}) bytes=(?P<bytes>\d+)$", re.MULTILINE)
_ERROR_LINE = re.compile(rf"^{ERROR_TAG} (?P<message>.*)$", re.MULTILINE)
# One per /sys/class/ata_device/devP.D: port P (ata1 is the primary channel), device D (0 master).
_ATA_DEVICE_LINE = re.compile(
    rf"^{ATA_DEVICE_TAG} (?P<name>dev\d+\.\d+) class=(?P<device_class>\S+) xfer_mode=(?P<xfer_mode>\S+)$", re.MULTILINE
)


@dataclass(frozen=True)
class Checksum:
    sha256: str
    bytes: int


@dataclass(frozen=True)
class AtaDevice:
    name: str  # libata's sysfs name: dev1.0 is ata1.00, the primary master
    device_class: str  # ata, atapi, …
    xfer_mode: str  # e.g. MWDMA2, UDMA5, PIO4

    @property
    def uses_dma(self) -> bool:
        return "DMA" in self.xfer_mode


def _lines(serial: str) -> str:
    """COM1 text with the terminal's CR LF line ends made plain LF."""
    return serial.replace("\r\n", "\n").replace("\r", "\n")


def format_checksum_line(sha256: str, length: int) -> str:
    return f"{CHECKSUM_TAG} sha256={sha256} bytes={length}"


def find_checksum(serial: str) -> Checksum | None:
    """The guest's checksum line, or None when it never printed one."""
    match = _CHECKSUM_LINE.search(_lines(serial))
    return None if match is None else Checksum(match.group("sha256"), int(match.group("bytes")))


def find_error(serial: str) -> str | None:
    """The message of the guest's error line, or None when it printed none."""
    match = _ERROR_LINE.search(_lines(serial))
    return None if match is None else match.group("message")


def find_ata_devices(serial: str) -> dict[str, AtaDevice]:
    """The libata devices the guest reported, by sysfs name."""
    return {
        match.group("name"): AtaDevice(match.group("name"), match.group("device_class"), match.group("xfer_mode"))
        for match in _ATA_DEVICE_LINE.finditer(_lines(serial))
    }
