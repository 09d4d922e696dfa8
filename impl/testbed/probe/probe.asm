; The probe guest: a bare-metal program a BIOS boots from the MBR. It does on purpose what a
; well-behaved OS never does - read and write the VMM's memory, aim bus-master and fw_cfg
; DMA at it, print the E820 map it is given - and reports each result as one line on COM1:
;   probe: <operation> <fields...>
; What it does is a script: op bytes in the script sector (LBA SCRIPT_LBA, magic "PRB1"),
; written by the disk builder (probe.py), so tests choose sequences without reassembling.
; Runs in real mode with 4 GiB data-segment limits (FS, GS) to reach memory above 1 MiB.

        bits 16
        org 0x7C00

PROBE_SECTORS   equ 15              ; sectors after the MBR holding the rest of the probe
SCRIPT_LBA      equ 16
SCRIPT_BUFFER   equ 0x0600
PRD_TABLE       equ 0x5000          ; a PRD table in ordinary guest memory
FWCFG_DESC      equ 0x5100
DMA_BUFFER      equ 0x10000
VMM_ADDRESS     equ 0x08000000      ; where the VMM lives (impl/vmm/linker.ld)
COM1            equ 0x3F8
ATA_BASE        equ 0x1F0
ATA_CONTROL     equ 0x3F6

; script operations (keep in step with OPS in probe.py)
OP_END          equ 0
OP_E820         equ 1
OP_PEEK_VMM     equ 2
OP_POKE_VMM     equ 3
OP_DMA_TO_VMM   equ 4
OP_DMA_TO_RAM   equ 5
OP_PCI_IDE      equ 6
OP_FWCFG_TO_VMM equ 7
OP_POWER_OFF    equ 8
OP_MOVE_BAR4    equ 9
OP_DMA_TABLE_IN_VMM equ 10
OP_DMA_64K_INTO_VMM equ 11
OP_PIO_STRINGS  equ 12
OP_SVM_HIDDEN   equ 13
OP_DMA_SECONDARY_TO_VMM equ 14
OP_BAR4_OVER_IDE equ 15
OP_SELF_INIT    equ 16
OP_VMSAVE_INTO_VMM equ 17
OP_LAST         equ 17
NEW_BAR4        equ 0xD000          ; an I/O range nothing else decodes on QEMU's pc machine
PIO_LBA         equ 100
PIO_BUFFER      equ 0x2000          ; 512 bytes written
PIO_READBACK    equ 0x2400          ; 512 bytes read back

start:
        cli
        xor ax, ax
        mov ds, ax
        mov es, ax
        mov ss, ax
        mov sp, 0x7C00
        sti
        mov [boot_drive], dl
        mov si, load_packet         ; int 13h AH=42h: EDD read of the rest of the probe
        mov ah, 0x42
        int 0x13
        jc load_failed
        jmp main
load_failed:
        mov si, msg_load_failed
        call print
        jmp halt

load_packet:
        db 0x10, 0
        dw PROBE_SECTORS
        dw 0x7E00, 0
        dq 1
boot_drive: db 0x80

; print: the NUL-terminated string at DS:SI on COM1
print:
        push ax
        push dx
.next:  lodsb
        test al, al
        jz .done
        call putc
        jmp .next
.done:  pop dx
        pop ax
        ret

; putc: AL on COM1, waiting for the transmit holding register (16550 LSR bit 5)
putc:
        push dx
        push ax
        mov dx, COM1 + 5
.wait:  in al, dx
        test al, 0x20
        jz .wait
        pop ax
        mov dx, COM1
        out dx, al
        pop dx
        ret

halt:
        cli
        hlt
        jmp halt

msg_load_failed: db "probe: error load-failed", 13, 10, 0

        times 446 - ($ - $$) db 0
        times 64 db 0               ; an empty partition table
        dw 0xAA55

; ---- everything below is loaded by the MBR code above ----

main:
        call enter_unreal
        mov si, msg_start
        call print
        mov si, script_load_packet  ; the script sector
        mov dl, [boot_drive]
        mov ah, 0x42
        int 0x13
        jc .no_script
        cmp dword [SCRIPT_BUFFER], "PRB1"
        jne .no_script
        mov si, SCRIPT_BUFFER + 4
.step:  lodsb
        cmp al, OP_END
        je .end
        movzx bx, al
        cmp bx, OP_LAST
        ja .bad_op
        push si
        shl bx, 1
        call [op_table + bx]
        pop si
        jmp .step
.bad_op:
        mov si, msg_bad_op
        call print
.end:   mov si, msg_done
        call print
        jmp halt
.no_script:
        mov si, msg_no_script
        call print
        jmp halt

op_table:
        dw 0, op_e820, op_peek_vmm, op_poke_vmm, op_dma_to_vmm, op_dma_to_ram, op_pci_ide
        dw op_fwcfg_to_vmm, op_power_off, op_move_bar4, op_dma_table_in_vmm, op_dma_64k_into_vmm
        dw op_pio_strings, op_svm_hidden, op_dma_secondary_to_vmm, op_bar4_over_ide, op_self_init
        dw op_vmsave_into_vmm

script_load_packet:
        db 0x10, 0
        dw 1
        dw SCRIPT_BUFFER, 0
        dq SCRIPT_LBA

; enter_unreal: FS and GS keep a 4 GiB limit after a round trip through protected mode
enter_unreal:
        cli
        lgdt [gdt_pointer]
        mov eax, cr0
        or al, 1
        mov cr0, eax
        jmp .pm
.pm:    mov bx, 0x08
        mov fs, bx
        mov gs, bx
        and al, 0xFE
        mov cr0, eax
        jmp 0:.rm
.rm:    xor ax, ax
        mov fs, ax
        mov gs, ax
        sti
        ret

gdt:    dq 0
        dq 0x00CF92000000FFFF       ; flat 4 GiB data
gdt_pointer:
        dw 15
        dd gdt

; hex32: EAX as 8 hex digits; hex8: AL as 2
hex32:
        push eax
        push cx
        mov cx, 8
        call hex_digits
        pop cx
        pop eax
        ret

hex8:
        push eax
        push cx
        shl eax, 24
        mov cx, 2
        call hex_digits
        pop cx
        pop eax
        ret

; hex_digits: the top CX nibbles of EAX
hex_digits:
        rol eax, 4
        push ax
        and al, 0x0F
        add al, '0'
        cmp al, '9'
        jbe .put
        add al, 'a' - '0' - 10
.put:   call putc
        pop ax
        loop hex_digits
        ret

space:
        push ax
        mov al, ' '
        call putc
        pop ax
        ret

newline:
        push ax
        mov al, 13
        call putc
        mov al, 10
        call putc
        pop ax
        ret

; ---- op 1: the E820 map, one line per entry: base length type ----
op_e820:
        xor ebx, ebx
.next:  mov eax, 0xE820
        mov edx, 0x534D4150         ; 'SMAP'
        mov ecx, 24
        mov di, e820_entry
        int 0x15
        jc .done
        cmp eax, 0x534D4150
        jne .done
        mov si, msg_e820
        call print
        mov eax, [e820_entry + 4]
        call hex32
        mov eax, [e820_entry]
        call hex32
        call space
        mov eax, [e820_entry + 12]
        call hex32
        mov eax, [e820_entry + 8]
        call hex32
        call space
        mov eax, [e820_entry + 16]
        call hex32
        call newline
        test ebx, ebx
        jnz .next
.done:  ret

e820_entry: times 24 db 0

; ---- op 2: read three dwords of VMM memory ----
op_peek_vmm:
        mov esi, VMM_ADDRESS
        call peek
        mov esi, VMM_ADDRESS + 0x1000
        call peek
        mov esi, VMM_ADDRESS + 0x3FFFFC
        call peek
        ret

peek:
        push si
        mov si, msg_peek
        call print
        pop si
        mov eax, esi
        call hex32
        call space
        mov eax, [fs:esi]
        call hex32
        call newline
        ret

; ---- op 3: write VMM memory, then read it back ----
op_poke_vmm:
        mov esi, VMM_ADDRESS + 0x100
        mov dword [fs:esi], 0xDEADBEEF
        mov edi, VMM_ADDRESS + 0x2000   ; a string store too, as a copy loop would do
        mov eax, 0x5A5A5A5A
        push es
        push fs
        pop es
        mov ecx, 4
        a32 rep stosd
        pop es
        mov si, msg_poke
        call print
        mov eax, VMM_ADDRESS + 0x100
        call hex32
        call space
        mov esi, VMM_ADDRESS + 0x100
        mov eax, [fs:esi]
        call hex32
        call space
        mov esi, VMM_ADDRESS + 0x2000
        mov eax, [fs:esi]
        call hex32
        call newline
        ret

; ---- PCI configuration mechanism #1 ----
; pci_read: EAX = address (enable | bus | dev | fn | reg) -> EAX = dword
pci_read:
        mov dx, 0xCF8
        out dx, eax
        mov dx, 0xCFC
        in eax, dx
        ret

; pci_write: EAX = address, ECX = value
pci_write:
        mov dx, 0xCF8
        out dx, eax
        mov dx, 0xCFC
        mov eax, ecx
        out dx, eax
        ret

; find_ide: EAX = config address of the first IDE controller (class 01:01), or 0
find_ide:
        mov ebx, 0x80000000
.next:  mov eax, ebx
        or eax, 0x08
        call pci_read
        shr eax, 16
        cmp ax, 0x0101
        je .found
        add ebx, 0x100
        cmp ebx, 0x80010000
        jb .next
        xor eax, eax
        ret
.found: mov eax, ebx
        ret

; busmaster_base: BX = BAR4 I/O base of the IDE controller, bus mastering enabled
busmaster_base:
        call find_ide
        mov [ide_address], eax
        or eax, 0x04                ; command register: set I/O space and bus master enable
        push eax
        call pci_read
        mov ecx, eax
        or ecx, 0x05
        pop eax
        call pci_write
        mov eax, [ide_address]
        or eax, 0x20
        call pci_read
        and ax, 0xFFF0
        mov bx, ax
        ret

ide_address: dd 0

; ---- op 6: the IDE controller's BAR4 as PCI config reports it ----
op_pci_ide:
        call busmaster_base
        mov si, msg_pci
        call print
        mov eax, [ide_address]
        call hex32
        call space
        movzx eax, bx
        call hex32
        call newline
        ret

; ata_dma_read: READ DMA of one sector at LBA 0 through the PRD table at PRD_TABLE;
; BX = bus-master base -> AL = bus-master status after the wait, AH = ATA status
ata_dma_read:
        mov byte [dma_sectors], 1
        mov dword [dma_table], PRD_TABLE
; ata_dma_read_custom: the same with [dma_sectors] sectors and the table at [dma_table]
ata_dma_read_custom:
        mov dx, bx
        xor al, al
        out dx, al                  ; BMIC: stop
        add dx, 2
        mov al, 0x06
        out dx, al                  ; BMIS: clear error and interrupt
        add dx, 2
        mov eax, [dma_table]
        out dx, eax                 ; BMIDTP
        mov dx, ATA_CONTROL
        mov al, 0x02                ; nIEN: the probe polls
        out dx, al
        mov dx, ATA_BASE + 6
        mov al, 0xE0
        out dx, al
        mov dx, ATA_BASE + 2
        mov al, [dma_sectors]
        out dx, al
        inc dx
        xor al, al
        out dx, al
        inc dx
        out dx, al
        inc dx
        out dx, al
        mov dx, ATA_BASE + 7
        mov al, 0xC8                ; READ DMA
        out dx, al
        mov dx, bx
        mov al, 0x09                ; BMIC: start, device-to-memory
        out dx, al
        mov ecx, 2000000
.wait:  mov dx, bx
        add dx, 2
        in al, dx
        test al, 0x06               ; interrupt or error
        jnz .done
        test al, 0x01
        jz .done
        dec ecx
        jnz .wait
.done:  push ax
        mov dx, bx
        xor al, al
        out dx, al                  ; BMIC: stop
        mov dx, ATA_BASE + 7
        in al, dx
        mov ah, al
        pop cx
        mov al, cl
        ret

dma_sectors: db 1
dma_table: dd PRD_TABLE

; ata_reset: software reset of the channel, so a refused command does not hang the device
ata_reset:
        mov dx, ATA_CONTROL
        mov al, 0x06
        out dx, al
        mov cx, 100
.hold:  in al, 0x80
        loop .hold
        mov al, 0x02
        out dx, al
        mov ecx, 1000000
.busy:  in al, dx
        test al, 0x80
        jz .ok
        dec ecx
        jnz .busy
.ok:    ret

dma_report:
        push ax
        call print
        pop ax
        push ax
        call hex8
        call space
        pop ax
        mov al, ah
        call hex8
        ret

; ---- op 4: a READ DMA whose PRD entry points at the VMM ----
op_dma_to_vmm:
        call busmaster_base
        mov dword [PRD_TABLE], VMM_ADDRESS
        mov dword [PRD_TABLE + 4], 0x80000200
        call ata_dma_read
        mov si, msg_dma_vmm
        call dma_report
        call newline
        call ata_reset
        ret

; ---- op 5: the same READ DMA into ordinary memory: the MBR's signature must arrive ----
op_dma_to_ram:
        call busmaster_base
        mov esi, DMA_BUFFER + 508
        mov dword [fs:esi], 0
        mov dword [PRD_TABLE], DMA_BUFFER
        mov dword [PRD_TABLE + 4], 0x80000200
        call ata_dma_read
        mov si, msg_dma_ram
        call dma_report
        call space
        mov esi, DMA_BUFFER + 510
        movzx eax, word [fs:esi]
        call hex32
        call newline
        call ata_reset
        ret

; ---- op 7: a fw_cfg DMA read of the signature into VMM memory ----
op_fwcfg_to_vmm:
        mov dword [FWCFG_DESC], 0x0A000000       ; big-endian control: select key 0, READ
        mov dword [FWCFG_DESC + 4], 0x04000000   ; big-endian length 4
        mov dword [FWCFG_DESC + 8], 0
        mov dword [FWCFG_DESC + 12], 0x00000008  ; big-endian 0x08000000
        mov dx, 0x514
        xor eax, eax
        out dx, eax
        mov dx, 0x518
        mov eax, FWCFG_DESC
        bswap eax
        out dx, eax
        mov si, msg_fwcfg
        call print
        mov eax, [FWCFG_DESC]
        bswap eax
        call hex32
        call newline
        ret

; ---- op 8: power off through ACPI: PIIX4 PM function 00:01.3, PMBA at 0x40, PM1a_CNT at +4 ----
op_power_off:
        mov si, msg_power_off
        call print
        mov eax, 0x80000B40
        call pci_read
        and ax, 0xFFC0
        mov dx, ax
        add dx, 4
        mov ax, 0x2000              ; SLP_EN, SLP_TYP 0 (QEMU's S5)
        out dx, ax
        jmp halt

; ---- op 9: move the IDE controller's bus-master registers (BAR4) to NEW_BAR4 ----
op_move_bar4:
        call busmaster_base
        mov eax, [ide_address]
        or eax, 0x20
        mov ecx, NEW_BAR4 | 1
        call pci_write
        mov si, msg_move_bar4
        call print
        call busmaster_base
        movzx eax, bx
        call hex32
        call newline
        ret

; ---- op 15: try to lay the bus-master registers over the IDE command block at 0x1F0 ----
op_bar4_over_ide:
        call busmaster_base
        mov eax, [ide_address]
        or eax, 0x20
        mov ecx, 0x1F0 | 1
        call pci_write
        mov si, msg_bar4_over_ide
        call print
        call busmaster_base
        movzx eax, bx
        call hex32
        call newline
        ret

; ---- op 16: an INIT IPI to all CPUs including this one, through the local APIC's ICR ----
; An INIT that reached the CPU in guest mode would reset it out of the VMM's control.
op_self_init:
        mov si, msg_self_init
        call print
        mov esi, 0xFEE00300         ; ICR low (Intel SDM vol 3 §10.6.1)
        mov dword [fs:esi], 0x000C4500 ; all including self, level assert, INIT
        mov ecx, 100000
.wait:  loop .wait
        mov si, msg_self_init_survived
        call print
        ret

; ---- op 17: VMSAVE with RAX in the VMM's window, from 16-bit protected mode ----
; SVM instructions need protected mode; VMSAVE takes a physical address. A #UD (the CPU shows
; no usable SVM) is caught by a 16-bit interrupt gate and stepped over.
op_vmsave_into_vmm:
        cli
        mov byte [ud_taken], 0
        sidt [real_idt]
        lgdt [pm16_gdt_pointer]
        lidt [pm16_idt_pointer]
        mov eax, cr0
        or al, 1
        mov cr0, eax
        jmp 0x08:.pm16
.pm16:  mov ax, 0x10
        mov ds, ax
        mov ss, ax
        mov eax, VMM_ADDRESS + 0x1000
        vmsave
        mov eax, cr0
        and al, 0xFE
        mov cr0, eax
        jmp 0:.rm
.rm:    xor ax, ax
        mov ds, ax
        mov ss, ax
        lidt [real_idt]
        call enter_unreal
        mov si, msg_vmsave
        call print
        mov al, [ud_taken]
        call hex8
        call newline
        ret

; ud_handler: a 16-bit interrupt gate's frame is IP, CS, FLAGS; VMSAVE is 3 bytes (0F 01 DB)
ud_handler:
        push bp
        mov bp, sp
        add word [bp + 2], 3
        mov byte [ud_taken], 1
        pop bp
        iret

ud_taken: db 0
real_idt: dw 0
        dd 0
pm16_gdt:
        dq 0
        dq 0x00009A000000FFFF       ; 0x08: 16-bit code, base 0, 64 KiB
        dq 0x000092000000FFFF       ; 0x10: 16-bit data, base 0, 64 KiB
pm16_gdt_pointer:
        dw 23
        dd pm16_gdt
pm16_idt:
        times 6 dq 0
        dw ud_handler, 0x08         ; vector 6: offset, selector
        db 0, 0x86                  ; 16-bit interrupt gate, present
        dw 0
pm16_idt_pointer:
        dw 7 * 8 - 1
        dd pm16_idt

; ---- op 10: a READ DMA whose PRD table itself lies in VMM memory ----
op_dma_table_in_vmm:
        call busmaster_base
        mov byte [dma_sectors], 1
        mov dword [dma_table], VMM_ADDRESS + 0x1000
        call ata_dma_read_custom
        mov si, msg_dma_table_vmm
        call dma_report
        call newline
        call ata_reset
        ret

; ---- op 11: 64 KiB by one entry whose size field is 1 (bit 0 ignored: 0 = 64 KiB), ending in the VMM ----
op_dma_64k_into_vmm:
        call busmaster_base
        mov dword [PRD_TABLE], VMM_ADDRESS - 0x8000
        mov dword [PRD_TABLE + 4], 0x80000001
        mov byte [dma_sectors], 128
        mov dword [dma_table], PRD_TABLE
        call ata_dma_read_custom
        mov si, msg_dma_64k_vmm
        call dma_report
        call newline
        call ata_reset
        ret

; ata_pio_command: LBA PIO_LBA, one sector, command AL; waits for DRQ
ata_pio_command:
        push ax
        mov dx, ATA_BASE + 6
        mov al, 0xE0
        out dx, al
        mov dx, ATA_BASE + 2
        mov al, 1
        out dx, al
        inc dx
        mov al, PIO_LBA
        out dx, al
        inc dx
        xor al, al
        out dx, al
        inc dx
        out dx, al
        pop ax
        mov dx, ATA_BASE + 7
        out dx, al
.wait:  in al, dx
        test al, 0x80
        jnz .wait
        ret

; ata_wait_idle: until BSY clears after the last data word
ata_wait_idle:
        mov dx, ATA_BASE + 7
.wait:  in al, dx
        test al, 0x80
        jnz .wait
        ret

; compare_readback: AL = 1 when PIO_READBACK equals PIO_BUFFER
compare_readback:
        push si
        push di
        push cx
        mov si, PIO_BUFFER
        mov di, PIO_READBACK
        mov cx, 256
        repe cmpsw
        sete al
        pop cx
        pop di
        pop si
        ret

; ---- op 12: string I/O in the forms a decoder must get right ----
; WRITE SECTORS with 16-bit `rep outsw` through a CS override; READ SECTORS back three ways:
; `o32 rep insd` with 32-bit addressing, `rep insw` through ES = PIO_READBACK >> 4, and
; `std; rep insw` filling backwards. Prints 1 for each read that matches what was written.
op_pio_strings:
        mov di, PIO_BUFFER          ; a pattern: word i = i * 0x0101 + 0x1234
        mov cx, 256
        mov ax, 0x1234
.fill:  stosw
        add ax, 0x0101
        loop .fill
        mov al, 0x30                ; WRITE SECTORS
        call ata_pio_command
        mov dx, ATA_BASE
        mov si, PIO_BUFFER
        mov cx, 256
        cs rep outsw
        call ata_wait_idle
        ; read 1: o32 rep insd, a32 addressing
        mov al, 0x20                ; READ SECTORS
        call ata_pio_command
        mov dx, ATA_BASE
        mov edi, PIO_READBACK
        mov ecx, 128
        a32 rep insd
        call ata_wait_idle
        call compare_readback
        mov [pio_results], al
        ; read 2: rep insw through ES with a non-zero base
        mov al, 0x20
        call ata_pio_command
        mov dx, ATA_BASE
        push es
        mov ax, PIO_READBACK >> 4
        mov es, ax
        xor di, di
        mov cx, 256
        rep insw
        pop es
        call ata_wait_idle
        call compare_readback
        mov [pio_results + 1], al
        ; read 3: std; rep insw from the last word down, then reverse the words in place
        mov al, 0x20
        call ata_pio_command
        mov dx, ATA_BASE
        mov di, PIO_READBACK + 510
        mov cx, 256
        std
        rep insw
        cld
        call ata_wait_idle
        mov si, PIO_READBACK
        mov di, PIO_READBACK + 510
.swap:  mov ax, [si]
        xchg ax, [di]
        mov [si], ax
        add si, 2
        sub di, 2
        cmp si, di
        jb .swap
        call compare_readback
        mov [pio_results + 2], al
        mov si, msg_pio             ; one line at the end: the VMM's log may write between reads
        call print
        mov al, [pio_results]
        call hex8
        call space
        mov al, [pio_results + 1]
        call hex8
        call space
        mov al, [pio_results + 2]
        call hex8
        call newline
        ret

pio_results: times 3 db 0

; ---- op 13: does the guest see SVM? CPUID 8000_0001h ECX, whether WRMSR VM_HSAVE_PA faults, EFER ----
op_svm_hidden:
        mov eax, 0x80000001
        cpuid
        mov [svm_ecx], ecx
        push dword [0x0D * 4]       ; real mode: #GP goes through IVT entry 13
        mov word [0x0D * 4], gp_handler
        mov word [0x0D * 4 + 2], 0
        mov byte [gp_taken], 0
        mov ecx, 0xC0010117         ; VM_HSAVE_PA
        mov eax, 0x00001000
        xor edx, edx
        wrmsr
        pop dword [0x0D * 4]
        mov ecx, 0xC0000080         ; EFER
        rdmsr
        mov [svm_efer], eax
        mov si, msg_svm
        call print
        mov eax, [svm_ecx]
        call hex32
        call space
        mov al, [gp_taken]
        call hex8
        call space
        mov eax, [svm_efer]
        call hex32
        call newline
        ret

; gp_handler: note the fault and step over the two-byte WRMSR
gp_handler:
        push bp
        mov bp, sp
        add word [bp + 2], 2
        mov byte [cs:gp_taken], 1
        pop bp
        iret

svm_ecx: dd 0
svm_efer: dd 0
gp_taken: db 0

; ---- op 14: START on the secondary channel's bus master with a PRD table aimed at the VMM ----
; No command is issued: the check happens when START is written, before any device asks for data.
op_dma_secondary_to_vmm:
        call busmaster_base
        add bx, 8                   ; the secondary channel's BMIC, BMIS, BMIDTP
        mov dword [PRD_TABLE], VMM_ADDRESS
        mov dword [PRD_TABLE + 4], 0x80000200
        mov dx, bx
        add dx, 4
        mov eax, PRD_TABLE
        out dx, eax
        mov dx, bx
        mov al, 0x09
        out dx, al
        add dx, 2
        in al, dx
        push ax
        mov dx, bx
        xor al, al
        out dx, al
        add dx, 2
        mov al, 0x06
        out dx, al                  ; clear error and interrupt
        mov si, msg_dma_secondary
        call print
        pop ax
        call hex8
        call newline
        ret

msg_start:      db "probe: start", 13, 10, 0
msg_done:       db "probe: done", 13, 10, 0
msg_no_script:  db "probe: error no-script", 13, 10, 0
msg_bad_op:     db "probe: error bad-op", 13, 10, 0
msg_e820:       db "probe: e820 ", 0
msg_peek:       db "probe: peek ", 0
msg_poke:       db "probe: poke ", 0
msg_pci:        db "probe: pci-ide ", 0
msg_dma_vmm:    db "probe: dma-to-vmm ", 0
msg_dma_ram:    db "probe: dma-to-ram ", 0
msg_fwcfg:      db "probe: fwcfg-to-vmm ", 0
msg_power_off:  db "probe: power-off", 13, 10, 0
msg_move_bar4:  db "probe: move-bar4 ", 0
msg_self_init:  db "probe: self-init", 13, 10, 0
msg_vmsave:     db "probe: vmsave-into-vmm ", 0
msg_self_init_survived: db "probe: self-init returned", 13, 10, 0
msg_bar4_over_ide: db "probe: bar4-over-ide ", 0
msg_dma_table_vmm: db "probe: dma-table-in-vmm ", 0
msg_dma_64k_vmm: db "probe: dma-64k-into-vmm ", 0
msg_pio:        db "probe: pio-strings ", 0
msg_svm:        db "probe: svm-hidden ", 0
msg_dma_secondary: db "probe: dma-secondary-to-vmm ", 0

        times (1 + PROBE_SECTORS) * 512 - ($ - $$) db 0
