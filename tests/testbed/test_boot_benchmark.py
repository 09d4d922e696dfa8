"""The boot benchmark's reading of the VMM's COM1 counters."""

from __future__ import annotations

from benchmarks.boot_time import vmm_statistics


def test_the_boot_benchmark_reads_the_vmm_counters_in_order():
    serial = (
        "[    4.27] reboot: Power down\r\n"
        "storvisor-stats begin\r\n"
        "storvisor-stat exit.ioio 94748\r\n"
        "storvisor-stat ata.commands 185\r\n"
        "storvisor-stats end\r\n"
    )
    assert list(vmm_statistics(serial).items()) == [("exit.ioio", 94748), ("ata.commands", 185)]
    assert vmm_statistics("no counters here\n") == {}
