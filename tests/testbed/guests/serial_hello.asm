; A boot sector for testing the launcher: it writes one line to COM1 and ends the machine,
; through QEMU's isa-debug-exit device when there is one, else by a triple fault, which
; -no-reboot turns into QEMU's exit. Assembled with -DHANG it only spins, for timeout tests.
bits 16
org 0x7c00

start:
    cli
    xor ax, ax
    mov ds, ax
%ifdef HANG
.spin:
    jmp .spin
%endif
    mov si, message
    mov dx, 0x3f8               ; COM1 transmit holding register: QEMU needs no UART set-up
.next:
    lodsb
    test al, al
    jz .done
    out dx, al
    jmp .next
.done:
    mov al, DEBUG_EXIT_VALUE
    out 0xf4, al                ; isa-debug-exit at iobase 0xf4: QEMU exits with (value << 1) | 1
    lidt [empty_ivt]
    int3                        ; an interrupt table of limit 0: #GP, #DF, triple fault, reset

empty_ivt:
    dw 0
    dd 0

message:
    db "storvisor-serial-hello", 13, 10, 0

DEBUG_EXIT_VALUE equ 0x10

    times 510 - ($ - $$) db 0
    dw 0xaa55
