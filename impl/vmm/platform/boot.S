/* Multiboot v1 entry: QEMU's -kernel loader and GRUB hand over in 32-bit protected mode
 * without paging. Long mode needs paging anyway, and nested paging takes its table format
 * from the host's paging mode (AMD APM vol 2 §15.25.3), so the VMM turns on 4-level paging
 * with an identity map of the low 4 GiB before it runs any C. */

#define MULTIBOOT_MAGIC 0x1BADB002
#define MULTIBOOT_FLAGS 0x00000003 /* page-aligned modules, memory information */

#define CR0_PE (1 << 0)
#define CR0_PG (1 << 31)
#define CR4_PAE (1 << 5)
#define MSR_EFER 0xC0000080
#define EFER_LME (1 << 8)

    .section .multiboot, "a"
    .align 4
    .long MULTIBOOT_MAGIC
    .long MULTIBOOT_FLAGS
    .long -(MULTIBOOT_MAGIC + MULTIBOOT_FLAGS)

    .section .text.boot, "ax"
    .code32
    .global _start
_start:
    cli
    cld
    mov %eax, boot_magic
    mov %ebx, boot_info

    /* PML4[0] -> PDPT; PDPT[0..3] -> four page directories of 2 MiB pages (APM vol 2 §5.3). */
    lea host_pdpt, %edi
    or $0x3, %edi
    mov %edi, host_pml4
    lea host_pd, %edi
    xor %ecx, %ecx
1:  lea 0x3(%edi), %edx
    mov %edx, host_pdpt(,%ecx,8)
    add $4096, %edi
    inc %ecx
    cmp $4, %ecx
    jne 1b
    xor %ecx, %ecx
2:  mov %ecx, %eax
    shl $21, %eax
    or $0x83, %eax                      /* present, writable, 2 MiB page */
    mov %eax, host_pd(,%ecx,8)
    inc %ecx
    cmp $2048, %ecx
    jne 2b

    lea host_pml4, %eax
    mov %eax, %cr3
    mov %cr4, %eax
    or $CR4_PAE, %eax
    mov %eax, %cr4
    mov $MSR_EFER, %ecx
    rdmsr
    or $EFER_LME, %eax
    wrmsr
    mov %cr0, %eax
    or $(CR0_PG | CR0_PE), %eax
    mov %eax, %cr0

    lgdt gdt_pointer
    ljmp $0x08, $long_mode_entry

    .code64
long_mode_entry:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    xor %ax, %ax
    mov %ax, %fs
    mov %ax, %gs
    lea boot_stack_top(%rip), %rsp
    call idt_install
    mov boot_magic(%rip), %edi
    mov boot_info(%rip), %esi
    call vmm_main
3:  cli
    hlt
    jmp 3b

/* Exceptions in the VMM itself are bugs: every vector lands in vmm_exception(). */
    .macro exception_stub vector, has_error
    .align 16
exception_\vector:
    .if \has_error == 0
    push $0
    .endif
    push $\vector
    jmp exception_common
    .endm

    exception_stub 0, 0
    exception_stub 1, 0
    exception_stub 2, 0
    exception_stub 3, 0
    exception_stub 4, 0
    exception_stub 5, 0
    exception_stub 6, 0
    exception_stub 7, 0
    exception_stub 8, 1
    exception_stub 9, 0
    exception_stub 10, 1
    exception_stub 11, 1
    exception_stub 12, 1
    exception_stub 13, 1
    exception_stub 14, 1
    exception_stub 15, 0
    exception_stub 16, 0
    exception_stub 17, 1
    exception_stub 18, 0
    exception_stub 19, 0

exception_common:
    mov %rsp, %rdi                      /* vector, error code, rip, cs, rflags, ... */
    and $-16, %rsp
    call vmm_exception
4:  cli
    hlt
    jmp 4b

idt_install:
    lea idt(%rip), %rdi
    lea exception_0(%rip), %rsi
    xor %ecx, %ecx
5:  mov %rsi, %rax
    mov %ax, (%rdi)                     /* offset 15:0 */
    movw $0x08, 2(%rdi)                 /* code selector */
    movw $0x8E00, 4(%rdi)               /* present, 64-bit interrupt gate */
    shr $16, %rax
    mov %ax, 6(%rdi)                    /* offset 31:16 */
    shr $16, %rax
    mov %eax, 8(%rdi)                   /* offset 63:32 */
    movl $0, 12(%rdi)
    add $16, %rdi
    add $16, %rsi
    inc %ecx
    cmp $20, %ecx
    jne 5b
    lidt idt_pointer(%rip)
    ret

/* svm_run_guest(vmcb_pa, regs): VMLOAD/VMRUN/VMSAVE with the guest's general registers
 * swapped in; RAX and RSP travel in the VMCB (APM vol 2 §15.5.1). */
    .global svm_run_guest
svm_run_guest:
    push %rbx
    push %rbp
    push %r12
    push %r13
    push %r14
    push %r15
    push %rsi                           /* regs, needed again after #VMEXIT */
    mov %rdi, %rax
    mov 0x00(%rsi), %rbx
    mov 0x08(%rsi), %rcx
    mov 0x10(%rsi), %rdx
    mov 0x20(%rsi), %rdi
    mov 0x28(%rsi), %rbp
    mov 0x30(%rsi), %r8
    mov 0x38(%rsi), %r9
    mov 0x40(%rsi), %r10
    mov 0x48(%rsi), %r11
    mov 0x50(%rsi), %r12
    mov 0x58(%rsi), %r13
    mov 0x60(%rsi), %r14
    mov 0x68(%rsi), %r15
    mov 0x18(%rsi), %rsi
    vmload
    vmrun
    vmsave
    push %rsi
    mov 8(%rsp), %rsi
    mov %rbx, 0x00(%rsi)
    mov %rcx, 0x08(%rsi)
    mov %rdx, 0x10(%rsi)
    pop %rbx
    mov %rbx, 0x18(%rsi)
    mov %rdi, 0x20(%rsi)
    mov %rbp, 0x28(%rsi)
    mov %r8, 0x30(%rsi)
    mov %r9, 0x38(%rsi)
    mov %r10, 0x40(%rsi)
    mov %r11, 0x48(%rsi)
    mov %r12, 0x50(%rsi)
    mov %r13, 0x58(%rsi)
    mov %r14, 0x60(%rsi)
    mov %r15, 0x68(%rsi)
    pop %rsi
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %rbp
    pop %rbx
    ret

    .section .rodata
    .align 16
gdt:
    .quad 0
    .quad 0x00AF9A000000FFFF            /* 0x08: 64-bit code */
    .quad 0x00CF92000000FFFF            /* 0x10: data */
gdt_end:
gdt_pointer:
    .word gdt_end - gdt - 1
    .quad gdt
idt_pointer:
    .word 20 * 16 - 1
    .quad idt

    .section .bss
    .align 4096
    .global host_pml4
host_pml4: .skip 4096
host_pdpt: .skip 4096
host_pd: .skip 4 * 4096
idt: .skip 20 * 16
boot_magic: .skip 4
boot_info: .skip 4
    .align 16
boot_stack: .skip 32768
boot_stack_top:

    .section .note.GNU-stack, "", @progbits
