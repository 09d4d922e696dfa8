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
        cmp bx, OP_POWER_OFF
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
        dw op_fwcfg_to_vmm, op_power_off

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

; ata_dma_read: READ DMA of LBA 0 into the PRD table at PRD_TABLE; BX = bus-master base
; -> AL = bus-master status after the wait, AH = ATA status
ata_dma_read:
        mov dx, bx
        xor al, al
        out dx, al                  ; BMIC: stop
        add dx, 2
        mov al, 0x06
        out dx, al                  ; BMIS: clear error and interrupt
        add dx, 2
        mov eax, PRD_TABLE
        out dx, eax                 ; BMIDTP
        mov dx, ATA_CONTROL
        mov al, 0x02                ; nIEN: the probe polls
        out dx, al
        mov dx, ATA_BASE + 6
        mov al, 0xE0
        out dx, al
        mov dx, ATA_BASE + 2
        mov al, 1
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

        times (1 + PROBE_SECTORS) * 512 - ($ - $$) db 0
