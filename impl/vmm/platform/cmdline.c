/* The VMM command line: space-separated key=value options after the image name.
 *   log=error|warn|info|debug|trace   how much the VMM writes to the serial console
 *   status=forwarded|served           ATA status polls: one exit each (default), or answered after the VMM waits out BSY
 *   stats=on|off                      print exit statistics when the guest powers off
 *   pio=direct|intercepted            ATA Data and Error/Features ports: the guest's own (default), or exits
 *   pio_blocks=multiple|single        a polled READ SECTORS reaches the disk as READ MULTIPLE (default), or as it is
 * Anything else is an error: the VMM says which word it did not understand and stops. */
#include "platform.h"

struct vmm_options options = { LOG_INFO, false, true, false, true };

struct choice {
    const char *name;
    int value;
};

static const struct choice log_choices[] = {
    { "error", LOG_ERROR }, { "warn", LOG_WARN }, { "info", LOG_INFO },
    { "debug", LOG_DEBUG }, { "trace", LOG_TRACE }, { 0, 0 },
};
static const struct choice status_choices[] = { { "forwarded", 0 }, { "served", 1 }, { 0, 0 } };
static const struct choice switch_choices[] = { { "on", 1 }, { "off", 0 }, { 0, 0 } };
static const struct choice pio_choices[] = { { "direct", 0 }, { "intercepted", 1 }, { 0, 0 } };
static const struct choice pio_blocks_choices[] = { { "multiple", 1 }, { "single", 0 }, { 0, 0 } };

enum option_key { OPTION_LOG, OPTION_STATUS, OPTION_STATS, OPTION_PIO, OPTION_PIO_BLOCKS };

struct option {
    enum option_key id;
    const char *key;
    const struct choice *choices;
    const char *expected;
};

static const struct option known_options[] = {
    { OPTION_LOG, "log", log_choices, "error, warn, info, debug or trace" },
    { OPTION_STATUS, "status", status_choices, "forwarded or served" },
    { OPTION_STATS, "stats", switch_choices, "on or off" },
    { OPTION_PIO, "pio", pio_choices, "direct or intercepted" },
    { OPTION_PIO_BLOCKS, "pio_blocks", pio_blocks_choices, "multiple or single" },
};

static void set_error(char *error, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vformat(error, size, fmt, ap);
    va_end(ap);
}

static bool word_is(const char *word, size_t length, const char *name)
{
    return strlen(name) == length && strncmp(word, name, length) == 0;
}

static bool apply(struct vmm_options *out, enum option_key id, int value)
{
    if (id == OPTION_LOG)
        out->log_level = (enum log_level)value;
    else if (id == OPTION_STATUS)
        out->status_served = value;
    else if (id == OPTION_STATS)
        out->stats_at_exit = value;
    else if (id == OPTION_PIO)
        out->pio_intercepted = value;
    else
        out->pio_blocks = value;
    return true;
}

static bool parse_word(const char *word, size_t length, struct vmm_options *out, char *error, size_t error_size)
{
    size_t key_length = 0;
    while (key_length < length && word[key_length] != '=')
        key_length++;
    for (size_t i = 0; i < sizeof known_options / sizeof known_options[0]; i++) {
        const struct option *option = &known_options[i];
        if (!word_is(word, key_length, option->key))
            continue;
        if (key_length == length) {
            set_error(error, error_size, "option '%s' needs a value (%s)", option->key, option->expected);
            return false;
        }
        const char *value = word + key_length + 1;
        size_t value_length = length - key_length - 1;
        for (const struct choice *c = option->choices; c->name; c++) {
            if (word_is(value, value_length, c->name))
                return apply(out, option->id, c->value);
        }
        char shown[64];
        size_t n = value_length < sizeof shown - 1 ? value_length : sizeof shown - 1;
        memcpy(shown, value, n);
        shown[n] = 0;
        set_error(error, error_size, "bad value '%s' for option '%s' (expected %s)", shown, option->key, option->expected);
        return false;
    }
    char shown[64];
    size_t n = length < sizeof shown - 1 ? length : sizeof shown - 1;
    memcpy(shown, word, n);
    shown[n] = 0;
    set_error(error, error_size, "unknown option '%s' (known: log=, status=, stats=, pio=, pio_blocks=)", shown);
    return false;
}

bool cmdline_parse(const char *cmdline, struct vmm_options *out, char *error, size_t error_size)
{
    const char *p = cmdline;
    /* The boot loader puts the image's own name first (Multiboot spec §3.3, QEMU and GRUB alike). */
    while (*p == ' ')
        p++;
    while (*p && *p != ' ')
        p++;
    for (;;) {
        while (*p == ' ')
            p++;
        if (!*p)
            return true;
        const char *word = p;
        while (*p && *p != ' ')
            p++;
        if (!parse_word(word, (size_t)(p - word), out, error, error_size))
            return false;
    }
}
