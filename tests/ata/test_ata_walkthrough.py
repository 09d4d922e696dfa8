"""The demo trace printer runs, reads the right data, and shows the statuses a real guest sees."""

from impl.testbed import spec_walkthrough


def test_walkthrough_prints_the_seabios_and_dma_traces(capsys):
    assert spec_walkthrough.main() == 0
    out = capsys.readouterr().out
    assert "d0  BSY DRDY DSC" in out and "58  DRDY DSC DRQ" in out
    assert "equal to LBA 7" in out and "equal to LBAs 100-107" in out
    assert "DMA  write 0x00020000  4096 bytes" in out
    assert "BM Status             04  INTERRUPT                        INTRQ 1" in out
