"""Hypothesis strategies for AoE frames, shared by the AoE tests and the server's differential tests."""

from hypothesis import strategies as st

from spec.aoe.constants import AOE_VERSION, CONFIG_STRING_MAX, ETHERTYPE_AOE, AoeCommand
from spec.aoe.frames import (
    AoeHeader,
    AtaArgument,
    ConfigArgument,
    EthernetHeader,
    Frame,
    MaskArgument,
    MaskDirective,
    OpaqueArgument,
    ReserveArgument,
)

macs = st.binary(min_size=6, max_size=6)
u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
nibble = st.integers(0, 0xF)

ethernet_headers = st.builds(EthernetHeader, destination=macs, source=macs, ethertype=st.just(ETHERTYPE_AOE))


def aoe_headers(command: int) -> st.SearchStrategy[AoeHeader]:
    return st.builds(
        AoeHeader,
        version=st.one_of(st.just(AOE_VERSION), nibble),
        flags=nibble,
        error=u8,
        major=u16,
        minor=u8,
        command=st.just(command),
        tag=st.integers(0, 0xFFFFFFFF),
    )


ata_arguments = st.builds(
    AtaArgument,
    aflags=u8,
    err_feature=u8,
    sector_count=u8,
    cmd_status=u8,
    lba=st.integers(0, 2**48 - 1),
    reserved=u16,
    data=st.binary(max_size=1100),
)
config_arguments = st.builds(
    ConfigArgument,
    buffer_count=u16,
    firmware_version=u16,
    sector_count=u8,
    aoe_version=nibble,
    ccmd=nibble,
    config=st.binary(max_size=CONFIG_STRING_MAX),
)
mask_arguments = st.builds(
    MaskArgument,
    mcmd=u8,
    merror=u8,
    directives=st.lists(st.builds(MaskDirective, dcmd=u8, mac=macs, reserved=u8), max_size=20).map(tuple),
    reserved=u8,
)
reserve_arguments = st.builds(ReserveArgument, rcmd=u8, macs=st.lists(macs, max_size=20).map(tuple))
vendor_commands = st.integers(4, 0xFF)

ARGUMENTS_BY_COMMAND = {
    AoeCommand.ATA: ata_arguments,
    AoeCommand.QUERY_CONFIG: config_arguments,
    AoeCommand.MAC_MASK_LIST: mask_arguments,
    AoeCommand.RESERVE_RELEASE: reserve_arguments,
}


@st.composite
def frames(draw) -> Frame:
    """Any well-formed frame of any command, including commands without a layout."""
    command = draw(st.one_of(st.sampled_from(list(ARGUMENTS_BY_COMMAND)), vendor_commands))
    if command in ARGUMENTS_BY_COMMAND:
        argument = draw(ARGUMENTS_BY_COMMAND[command])
    else:
        argument = OpaqueArgument(draw(st.binary(max_size=64)))
    return Frame(draw(ethernet_headers), draw(aoe_headers(command)), argument)
