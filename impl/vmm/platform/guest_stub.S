/* Real-mode code the VMM copies into 1 KiB it takes from the top of base memory.
 * The guest's first instructions: read the disk's MBR with int 13h and jump to it, as a BIOS
 * would. int 19h must not be used: it would restart QEMU's Multiboot loader over the VMM. */
    .section .rodata
    .code16
    .global guest_stub_start, guest_stub_boot, guest_stub_int15, guest_stub_end
guest_stub_start:
guest_stub_boot:
    cli
    xor %ax, %ax
    mov %ax, %ss
    mov $0x7C00, %sp
    mov %ax, %ds
    mov %ax, %es
    sti
    mov $3, %si                         /* a few tries, as BIOS boot code does */
1:  mov $0x0201, %ax                    /* int 13h AH=02h: read one sector */
    mov $0x0001, %cx                    /* cylinder 0, sector 1 */
    mov $0x0080, %dx                    /* head 0, first hard disk */
    mov $0x7C00, %bx
    int $0x13
    jnc 2f
    xor %ah, %ah                        /* AH=00h: reset the disk, then retry */
    int $0x13
    dec %si
    jnz 1b
    int $0x18                           /* no MBR: let the BIOS try the next boot device */
2:  mov $0x0080, %dx
    ljmp $0, $0x7C00

/* The guest's int 15h vector points here. The VMM answers E820 and E801 on the VMMCALL exit
 * and steps over it; every other function it sends on to the BIOS's own handler. `lret $2`
 * instead of `iret` keeps the carry flag the VMM sets (Ralf Brown's list: CF = error). */
guest_stub_int15:
    vmmcall
    lret $2
guest_stub_end:
    .code64

    .section .note.GNU-stack, "", @progbits
