/* The few C library functions a freestanding VMM needs (GCC may also emit calls to memset/memcpy). */
#include "platform.h"

void *memset(void *dst, int value, size_t n)
{
    uint8_t *d = dst;
    while (n--)
        *d++ = (uint8_t)value;
    return dst;
}

void *memcpy(void *dst, const void *src, size_t n)
{
    uint8_t *d = dst;
    const uint8_t *s = src;
    while (n--)
        *d++ = *s++;
    return dst;
}

size_t strlen(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}

int strncmp(const char *a, const char *b, size_t n)
{
    for (; n; n--, a++, b++) {
        if (*a != *b || !*a)
            return (unsigned char)*a - (unsigned char)*b;
    }
    return 0;
}

struct sink {
    char *buf;
    size_t size, used;
};

static void put(struct sink *s, char c)
{
    if (s->used + 1 < s->size)
        s->buf[s->used] = c;
    s->used++;
}

static void put_number(struct sink *s, uint64_t value, unsigned base, int width, char pad)
{
    char digits[24];
    int n = 0;
    do {
        digits[n++] = "0123456789abcdef"[value % base];
        value /= base;
    } while (value);
    while (width-- > n)
        put(s, pad);
    while (n)
        put(s, digits[--n]);
}

/* printf subset: %s %c %d %u %x %p with optional 0-padding, width and l/ll. */
int vformat(char *buf, size_t size, const char *fmt, va_list ap)
{
    struct sink s = { buf, size, 0 };
    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            put(&s, *fmt);
            continue;
        }
        fmt++;
        char pad = ' ';
        int width = 0, longs = 0;
        if (*fmt == '0')
            pad = '0', fmt++;
        while (*fmt >= '0' && *fmt <= '9')
            width = width * 10 + (*fmt++ - '0');
        while (*fmt == 'l')
            longs++, fmt++;
        switch (*fmt) {
        case 's': {
            const char *str = va_arg(ap, const char *);
            int len = (int)strlen(str);
            while (width-- > len)
                put(&s, ' ');
            while (*str)
                put(&s, *str++);
            break;
        }
        case 'c':
            put(&s, (char)va_arg(ap, int));
            break;
        case 'd': {
            int64_t v = longs ? va_arg(ap, int64_t) : va_arg(ap, int);
            if (v < 0)
                put(&s, '-'), v = -v;
            put_number(&s, (uint64_t)v, 10, width, pad);
            break;
        }
        case 'u':
            put_number(&s, longs ? va_arg(ap, uint64_t) : va_arg(ap, unsigned), 10, width, pad);
            break;
        case 'x':
            put_number(&s, longs ? va_arg(ap, uint64_t) : va_arg(ap, unsigned), 16, width, pad);
            break;
        case 'p':
            put(&s, '0'), put(&s, 'x');
            put_number(&s, (uintptr_t)va_arg(ap, void *), 16, 0, '0');
            break;
        case '%':
            put(&s, '%');
            break;
        default:
            put(&s, '?');
            break;
        }
    }
    if (size)
        buf[s.used < size ? s.used : size - 1] = 0;
    return (int)s.used;
}

uint32_t port_read(uint16_t port, unsigned size)
{
    return size == 1 ? inb(port) : size == 2 ? inw(port) : inl(port);
}

void port_write(uint16_t port, unsigned size, uint32_t value)
{
    if (size == 1)
        outb(port, (uint8_t)value);
    else if (size == 2)
        outw(port, (uint16_t)value);
    else
        outl(port, value);
}
