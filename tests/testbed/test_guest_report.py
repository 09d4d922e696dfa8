"""The guest's COM1 lines: what init.sh prints is what the readers find, and nothing else."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from impl.testbed import guest_report
from impl.testbed.initramfs import render_init

_sha256_hex = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
_noise = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=80)


@given(_sha256_hex, st.integers(min_value=0, max_value=1 << 40), st.lists(_noise, max_size=5), st.booleans())
def test_a_checksum_line_among_other_lines_is_found(sha256, length, noise, crlf):
    newline = "\r\n" if crlf else "\n"
    serial = newline.join([*noise, guest_report.format_checksum_line(sha256, length), *noise]) + newline
    assert guest_report.find_checksum(serial) == guest_report.Checksum(sha256, length)


@given(st.lists(_noise, max_size=5))
def test_no_checksum_line_means_none(lines):
    serial = "\n".join(line for line in lines if guest_report.CHECKSUM_TAG not in line)
    assert guest_report.find_checksum(serial) is None


def test_a_truncated_checksum_is_not_a_checksum():
    assert guest_report.find_checksum(f"{guest_report.CHECKSUM_TAG} sha256=abc bytes=4\n") is None


def test_the_error_line_gives_its_message():
    serial = f"booting\r\n{guest_report.ERROR_TAG} /dev/sda2 did not appear\r\n[ 2.1] reboot: Power down\r\n"
    assert guest_report.find_error(serial) == "/dev/sda2 did not appear"
    assert guest_report.find_error("booting\n") is None


def test_ata_device_lines_give_class_and_transfer_mode():
    serial = (
        f"{guest_report.ATA_DEVICE_TAG} dev1.0 class=ata xfer_mode=XFER_MW_DMA_2\r\n"
        f"{guest_report.ATA_DEVICE_TAG} dev1.1 class=unknown xfer_mode=XFER_PIO_SLOW\r\n"
    )
    devices = guest_report.find_ata_devices(serial)
    assert devices["dev1.0"] == guest_report.AtaDevice("dev1.0", "ata", "XFER_MW_DMA_2")
    assert devices["dev1.0"].uses_dma
    assert not devices["dev1.1"].uses_dma


def test_init_prints_the_tags_the_readers_look_for():
    init = render_init(["kernel/drivers/ata/libata.ko", "kernel/drivers/ata/ata_piix.ko"], "sda2")
    assert f'echo "{guest_report.CHECKSUM_TAG} sha256=' in init
    assert f'echo "{guest_report.ERROR_TAG} ' in init
    assert f'echo "{guest_report.ATA_DEVICE_TAG} ' in init
    assert "for module in kernel/drivers/ata/libata.ko kernel/drivers/ata/ata_piix.ko; do" in init

