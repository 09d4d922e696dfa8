# The C core's sources, headers and include paths, for every build that links the core:
# this folder's Makefile (host libraries) and the VMM image. Set CORE_DIR to this folder as the
# including Makefile sees it before `include`; the VMM's default is `core`.
# Each part of the core lives in its own folder and is picked up here without editing this file.
CORE_DIR ?= core
CORE_PARTS := ata storage aoe
CORE_SOURCES := $(sort $(foreach part,$(CORE_PARTS),$(wildcard $(CORE_DIR)/$(part)/*.c)))
CORE_HEADERS := $(wildcard $(CORE_DIR)/include/*.h $(foreach part,$(CORE_PARTS),$(CORE_DIR)/$(part)/*.h)) \
                $(CORE_DIR)/../ata/ata_commands.h
# ata_commands.h is the command table the VMM already generates from spec/ata/commands.py: one table.
CORE_INCLUDES := -I$(CORE_DIR)/include $(foreach part,$(CORE_PARTS),-I$(CORE_DIR)/$(part)) -I$(CORE_DIR)/../ata
